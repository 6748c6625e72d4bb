"""``freshness kafka start|stop|status``: the embedded dev broker behind the CLI.

Exit codes: 0 success (``status``: running and answering), 1 ``status``: a broker process
exists but does not answer, 3 ``status``: not running (the LSB convention), 2 (from the
CLI) for every :class:`~streams.errors.BrokerError`, printed as one line that says what to do.
"""

from __future__ import annotations

import time

from streams.broker import jars
from streams.broker.process import BrokerConfig, EmbeddedBroker, answers, find_java
from streams.errors import BrokerError
from streams.settings import Settings

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
STATUS_NOT_RUNNING = 3
STATUS_NOT_ANSWERING = 1


def parse_local_bootstrap(bootstrap: str) -> tuple[str, int]:
    """``host, port`` of a single local bootstrap address, or :class:`BrokerError`."""
    host, sep, port_text = bootstrap.strip().rpartition(":")
    if "," in bootstrap or not sep or not port_text.isdigit():
        raise BrokerError(
            f"FRESHNESS_KAFKA_BOOTSTRAP={bootstrap!r} is not one host:port; the embedded broker "
            "needs exactly one, e.g. 127.0.0.1:9092."
        )
    if host not in LOCAL_HOSTS:
        raise BrokerError(
            f"FRESHNESS_KAFKA_BOOTSTRAP={bootstrap!r} is not a local address; the embedded "
            "broker only listens on 127.0.0.1. Unset it (or use 127.0.0.1:<port>) to run it, "
            "or leave the broker to that cluster."
        )
    port = int(port_text)
    if not 1 <= port <= 65534:
        raise BrokerError(f"FRESHNESS_KAFKA_BOOTSTRAP port {port} is out of range (1..65534).")
    return "127.0.0.1", port


def broker_for(settings: Settings, *, fetch: bool) -> EmbeddedBroker:
    """The dev broker of these settings: data in ``<kafka_dir>/broker``, controller on port+1."""
    host, port = parse_local_bootstrap(settings.kafka_bootstrap)
    version = settings.kafka_version
    if fetch and not jars.is_cached(settings.kafka_dir, version):
        find_java()  # no point fetching a broker that cannot run
        jars.find_maven()
        print(f"fetching Apache Kafka {version} from Maven Central into {settings.kafka_dir} ...")
    libs = (
        jars.ensure_jars(settings.kafka_dir, version)
        if fetch
        else jars.libs_dir(settings.kafka_dir, version)
    )
    config = BrokerConfig(
        host=host,
        port=port,
        controller_port=port + 1,
        data_dir=settings.kafka_dir / "broker",
        libs=libs,
    )
    return EmbeddedBroker(config)


def start(settings: Settings) -> int:
    probe_only = broker_for(settings, fetch=False)
    running = probe_only.pid()
    cfg = probe_only.config
    if running is not None:
        print(f"kafka already running (pid {running}) on {cfg.bootstrap}; log: {cfg.log_file}")
        return 0
    broker = broker_for(settings, fetch=True)
    began = time.monotonic()
    pid = broker.start(detach=True)
    print(
        f"kafka {settings.kafka_version} started (pid {pid}) on {cfg.bootstrap} "
        f"in {time.monotonic() - began:.1f} s; log: {cfg.log_file}"
    )
    return 0


def stop(settings: Settings) -> int:
    broker = broker_for(settings, fetch=False)
    pid = broker.stop()
    if pid is None:
        print("kafka not running; nothing to stop")
    else:
        print(f"kafka stopped (pid {pid})")
    return 0


def status(settings: Settings) -> int:
    broker = broker_for(settings, fetch=False)
    cfg = broker.config
    pid = broker.pid()
    if pid is None:
        if answers(cfg.bootstrap, timeout_s=3.0):
            print(
                f"kafka not running here, but another broker answers on {cfg.bootstrap} "
                "(not started by freshness)"
            )
        else:
            print(f"kafka not running (nothing on {cfg.bootstrap})")
        return STATUS_NOT_RUNNING
    if answers(cfg.bootstrap, timeout_s=5.0):
        print(f"kafka running (pid {pid}) on {cfg.bootstrap}; log: {cfg.log_file}")
        return 0
    print(
        f"kafka process {pid} is up but does not answer on {cfg.bootstrap} "
        f"(starting or stuck); see {cfg.log_file}"
    )
    return STATUS_NOT_ANSWERING


ACTIONS = {"start": start, "stop": stop, "status": status}


def run(action: str, settings: Settings) -> int:
    """Dispatch one ``freshness kafka <action>``; errors propagate as :class:`BrokerError`."""
    return ACTIONS[action](settings)
