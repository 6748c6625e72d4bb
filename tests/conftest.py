"""Fixtures shared by the whole suite.

``kafka_bootstrap`` (session): a real Apache Kafka broker (KRaft, the version of
``Settings().kafka_version``) started once per test session on free ports with a temporary
data directory, and always stopped afterwards. Jars come from the shared cache
(``$FRESHNESS_HOME/kafka/<version>/libs``), fetched with Maven the first time. If the broker
cannot start, every test that uses it errors with the reason and the broker's log tail: it
fails loudly, it never skips. Tests that use it are marked ``integration`` automatically.

``make_topics`` and ``unique_topic`` help integration tests make their own, unshared topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator

import pytest

from streams.broker import jars
from streams.broker.process import BrokerConfig, EmbeddedBroker, free_port
from streams.errors import BrokerError
from streams.kafka import KafkaConnection, ensure_topics
from streams.settings import Settings
from streams.topics import TopicSpec

TEST_JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
)

MakeTopics = Callable[..., Awaitable[list[str]]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the broker carries the ``integration`` marker."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "kafka_bootstrap" in names or "kafka_broker" in names:
            item.add_marker(pytest.mark.integration)


def _two_free_ports() -> tuple[int, int]:
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    return port, controller


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The session's :class:`EmbeddedBroker` (use ``kafka_bootstrap`` unless you need its log)."""
    settings = Settings()
    try:
        libs = jars.ensure_jars(settings.kafka_dir, settings.kafka_version)
    except BrokerError as exc:
        pytest.fail(f"cannot fetch Kafka {settings.kafka_version} for the tests: {exc}", False)
    port, controller = _two_free_ports()
    config = BrokerConfig(
        port=port,
        controller_port=controller,
        data_dir=tmp_path_factory.mktemp("kafka"),
        libs=libs,
        jvm_opts=TEST_JVM_OPTS,
    )
    broker = EmbeddedBroker(config)
    try:
        try:
            broker.start(timeout_s=120)
        except BrokerError as exc:
            pytest.fail(f"the test broker did not start: {exc}", pytrace=False)
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: EmbeddedBroker) -> str:
    """``127.0.0.1:<port>`` of the session's real Kafka broker."""
    return kafka_broker.config.bootstrap


async def make_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    compacted: bool = False,
) -> list[str]:
    """Create ``names`` (idempotently) with ``partitions`` each; return the names."""
    wanted = list(names)
    specs = [TopicSpec(name, compacted=compacted) for name in wanted]
    await ensure_topics(KafkaConnection(bootstrap), specs, partitions, replication_factor=1)
    return wanted


@pytest.fixture(name="make_topics")
def make_topics_fixture() -> MakeTopics:
    """``await make_topics(bootstrap, names, partitions=1, compacted=False)``."""
    return make_topics


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_topic("orders")`` → ``"test.orders.<test name>.<random>"``: never shared."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]

    def name(prefix: str) -> str:
        return f"test.{prefix}.{test}.{uuid.uuid4().hex[:8]}"

    return name
