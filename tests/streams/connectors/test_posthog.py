"""The PostHog SDK bridge with the real posthog client against the local capture endpoint:
what it emits, when, and what it does not (no broker: the bridge's delivery is in memory)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import orjson
import pytest
from posthog import Posthog

from streams.connectors.monitor import DeliveryError, Record
from streams.connectors.posthog import (
    SDK_VERSION,
    Completion,
    LinkError,
    LinkProperties,
    PostHogBridge,
    completion_of,
    event_id_for,
)
from streams.errors import ConfigError
from streams.testing.peers.posthog import PostHogCapture

TOLERANCE_MS = 50


class MemoryDelivery:
    """Keeps what it is given; fails the next ``failures`` deliveries with ``retriable``."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self.failures: list[DeliveryError] = []
        self.calls = 0
        self.closed = False
        self._lock = threading.Lock()

    def deliver(self, topic: str, records: Sequence[Record]) -> None:
        with self._lock:
            self.calls += 1
            if self.failures:
                raise self.failures.pop(0)
            self.records.extend((topic, k, orjson.loads(v)) for k, v in records)

    def close(self) -> None:
        self.closed = True

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return [v for _, _, v in self.records]


@pytest.fixture
async def capture() -> AsyncIterator[PostHogCapture]:
    async with PostHogCapture() as peer:
        yield peer


@pytest.fixture
def delivery() -> MemoryDelivery:
    return MemoryDelivery()


@pytest.fixture
def make_client(capture: PostHogCapture) -> Iterator[Callable[..., Posthog]]:
    clients: list[Posthog] = []

    def make(**options: Any) -> Posthog:
        options.setdefault("max_retries", 3)
        client = Posthog(f"phc_test_{uuid.uuid4().hex}", host=capture.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown()


def lead(client: Posthog, key: str, **extra: Any) -> str | None:
    props = {"funnel_source": "lead.captured", "funnel_source_id": key, **extra}
    return client.capture("lead captured", distinct_id=key, properties=props)


async def until(done: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_each_linked_event_of_an_accepted_batch_becomes_one_accepted_completion(
    capture: PostHogCapture, delivery: MemoryDelivery, make_client: Callable[..., Posthog]
) -> None:
    bridge = PostHogBridge(delivery)
    client = bridge.instrument(make_client(flush_at=10))
    uuids = {f"L-{i}": lead(client, f"L-{i}") for i in range(25)}
    client.capture("page viewed", distinct_id="someone")  # not a funnel event
    await asyncio.to_thread(client.flush)
    await asyncio.to_thread(bridge.flush)
    values = delivery.values()
    assert sorted(v["source_id"] for v in values) == sorted(uuids)
    answered = capture.answered_at()
    assert len(capture.accepted()) == 3  # 10 + 10 + 6 (the page view rides along)
    for v in values:
        assert v["uuid"] == uuids[v["source_id"]]
        assert v["event_id"] == event_id_for(v["uuid"], "accepted")
        assert (v["source"], v["stage"], v["posthog_event"]) == (
            "lead.captured",
            "accepted",
            "lead captured",
        )
        assert 0 <= v["occurred_at"] - answered[v["uuid"]] <= TOLERANCE_MS
    assert {t for t, _, _ in delivery.records} == {"funnel.posthog.ingested"}
    assert all(k == v["source_id"].encode() for _, k, v in delivery.records)
    assert (bridge.stats.batches_accepted, bridge.stats.completions) == (3, 25)


async def test_a_refused_batch_emits_nothing_and_is_logged_with_the_sdk_error(
    capture: PostHogCapture,
    delivery: MemoryDelivery,
    make_client: Callable[..., Posthog],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridge = PostHogBridge(delivery)
    client = bridge.instrument(make_client(flush_at=5))
    capture.reject(400, match=lambda events: any(e["distinct_id"] == "L-7" for e in events))
    for i in range(15):
        lead(client, f"L-{i}")
    with caplog.at_level(logging.ERROR, "streams.connectors.posthog"):
        await asyncio.to_thread(client.flush)
        await asyncio.to_thread(bridge.flush)
    assert sorted(v["source_id"] for v in delivery.values()) == sorted(
        f"L-{i}" for i in (*range(5), *range(10, 15))
    )
    assert [b.status for b in capture.batches].count(400) == 1
    assert (bridge.stats.batches_refused, bridge.stats.not_emitted) == (1, 5)
    refusal = [r for r in caplog.records if "did not accept" in r.getMessage()]
    assert len(refusal) == 1
    assert "invalid event could not be processed (400)" in refusal[0].getMessage()


async def test_the_sdk_retries_a_batch_and_the_completion_is_the_moment_of_the_2xx(
    capture: PostHogCapture, delivery: MemoryDelivery, make_client: Callable[..., Posthog]
) -> None:
    bridge = PostHogBridge(delivery)
    client = bridge.instrument(make_client(flush_at=1))
    capture.reject(503, times=2)
    lead(client, "L-r")
    await until(lambda: len(delivery.values()) == 1)
    statuses = [b.status for b in capture.batches]
    assert statuses == [503, 503, 200]
    (value,) = delivery.values()
    ok = capture.batches[-1]
    assert 0 <= value["occurred_at"] - ok.answered_at <= TOLERANCE_MS
    assert value["occurred_at"] - capture.batches[0].answered_at >= 2_900  # 1 s + 2 s backoff
    await asyncio.to_thread(client.flush)
    await asyncio.to_thread(bridge.flush)
    assert len(delivery.values()) == 1


async def test_sync_mode_emits_for_each_capture_as_it_returns(
    capture: PostHogCapture, delivery: MemoryDelivery, make_client: Callable[..., Posthog]
) -> None:
    bridge = PostHogBridge(delivery)
    client = bridge.instrument(make_client(sync_mode=True))
    capture.reject(400, match=lambda events: events[0]["distinct_id"] == "L-bad")
    for key in ("L-a", "L-bad", "L-b"):
        await asyncio.to_thread(lead, client, key)
    await asyncio.to_thread(bridge.flush)
    assert [v["source_id"] for v in delivery.values()] == ["L-a", "L-b"]
    answered = capture.answered_at()
    assert all(
        0 <= v["occurred_at"] - answered[v["uuid"]] <= TOLERANCE_MS for v in delivery.values()
    )
    assert bridge.stats.batches_refused == 1


async def test_a_uuid_captured_twice_is_the_same_event_id(
    delivery: MemoryDelivery, make_client: Callable[..., Posthog]
) -> None:
    bridge = PostHogBridge(delivery)
    client = bridge.instrument(make_client(flush_at=1))
    same = str(uuid.uuid4())
    for _ in range(2):
        client.capture(
            "lead captured",
            distinct_id="L-1",
            uuid=same,
            properties={"funnel_source": "lead.captured", "funnel_source_id": "L-1"},
        )
    await until(lambda: len(delivery.values()) == 2)
    assert {v["event_id"] for v in delivery.values()} == {f"posthog-accepted-{same}"}


async def test_link_property_names_and_sources_are_configurable(
    delivery: MemoryDelivery, make_client: Callable[..., Posthog]
) -> None:
    link = LinkProperties(source="funnel", source_id="funnel_key")
    bridge = PostHogBridge(delivery, link=link)
    client = bridge.instrument(make_client(flush_at=3))
    client.capture("x", distinct_id="d", properties={"funnel": "lead.captured", "funnel_key": 7})
    client.capture("y", distinct_id="d", properties={"funnel": "signup", "funnel_key": "k"})
    client.capture("z", distinct_id="d", properties={"funnel_source": "lead.captured"})
    await until(lambda: bridge.stats.batches_accepted == 1)
    await asyncio.to_thread(bridge.flush)
    assert [(v["source"], v["source_id"]) for v in delivery.values()] == [("lead.captured", "7")]


async def test_delivery_is_retried_while_retriable_and_dropped_when_not(
    delivery: MemoryDelivery, make_client: Callable[..., Posthog], caplog: pytest.LogCaptureFixture
) -> None:
    bridge = PostHogBridge(delivery, retry_s=(0.01, 0.05))
    client = bridge.instrument(make_client(flush_at=1))
    delivery.failures = [DeliveryError("down", retriable=True)] * 3
    lead(client, "L-1")
    await until(lambda: len(delivery.values()) == 1)
    assert delivery.calls == 4
    delivery.failures = [DeliveryError("401 wrong token", retriable=False)]
    with caplog.at_level(logging.ERROR, "streams.connectors.posthog"):
        lead(client, "L-2")
        await until(lambda: bridge.stats.dropped == 1)
    assert [v["source_id"] for v in delivery.values()] == ["L-1"]
    assert any("401 wrong token" in r.getMessage() for r in caplog.records)
    assert bridge.stats.delivery_errors == 4


async def test_instrument_refuses_what_it_cannot_vouch_for(
    make_client: Callable[..., Posthog],
) -> None:
    bridge = PostHogBridge(MemoryDelivery())
    with pytest.raises(ConfigError, match="capture_mode v0"):
        bridge.instrument(make_client(capture_mode="v1"))
    used = make_client(flush_interval=60)
    used.capture("before", distinct_id="d")
    with pytest.raises(ConfigError, match="before its first capture"):
        bridge.instrument(used)
    await asyncio.to_thread(used.flush)
    with pytest.raises(ConfigError, match=f"posthog=={SDK_VERSION}"):
        bridge.instrument(object())
    fresh = make_client()
    assert bridge.instrument(fresh) is bridge.instrument(fresh)
    with pytest.raises(ConfigError, match="another bridge"):
        PostHogBridge(MemoryDelivery()).instrument(fresh)
    bridge.close()


def test_the_pinned_sdk_is_the_installed_one() -> None:
    from posthog.version import VERSION

    assert VERSION == SDK_VERSION


def test_close_delivers_what_is_queued_then_closes_the_delivery() -> None:
    delivery = MemoryDelivery()
    bridge = PostHogBridge(delivery)
    bridge.accepted([_event("L-1")], 1_000)
    bridge.close()
    assert [v["source_id"] for v in delivery.values()] == ["L-1"]
    assert delivery.closed
    bridge.accepted([_event("L-2")], 2_000)
    assert bridge.stats.dropped == 1


def test_the_outbox_is_bounded() -> None:
    delivery = MemoryDelivery()
    gate = threading.Event()
    original = delivery.deliver

    def slow(topic: str, records: Sequence[Record]) -> None:
        gate.wait(5)
        original(topic, records)

    delivery.deliver = slow  # type: ignore[method-assign]
    bridge = PostHogBridge(delivery, max_pending=3)
    bridge.accepted([_event(f"L-{i}") for i in range(5)], 1_000)
    gate.set()
    assert bridge.flush(5)
    assert len(delivery.values()) == 3
    assert bridge.stats.dropped == 2
    bridge.close()


def _event(key: str, **props: object) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "event": "lead captured",
        "properties": {"funnel_source": "lead.captured", "funnel_source_id": key, **props},
    }


def test_completion_of_an_event() -> None:
    event = _event("L-1")
    c = completion_of(event, "delivered", 123)
    assert c == Completion(
        f"posthog-delivered-{event['uuid']}",
        123,
        "lead.captured",
        "L-1",
        "delivered",
        event["uuid"],
        "lead captured",
    )
    assert completion_of({"uuid": "u", "properties": {"other": 1}}, "accepted", 1) is None
    assert completion_of({"uuid": "u"}, "accepted", 1) is None
    with pytest.raises(LinkError, match="no uuid"):
        completion_of({"properties": event["properties"]}, "accepted", 1)
    with pytest.raises(LinkError, match="non-empty strings"):
        completion_of({"uuid": "u", "properties": {"funnel_source_id": "x"}}, "accepted", 1)
    with pytest.raises(LinkError, match="non-empty strings"):
        completion_of(_event("L", funnel_source_id=True), "accepted", 1)
