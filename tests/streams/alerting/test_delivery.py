"""The delivery queue's guarantees, with virtual time, against real local HTTP peers (the
PagerDuty peer and the webhook receiver) through the real connectors."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from streams.alerting.delivery import (
    DeadLetter,
    Delivered,
    DeliveryPolicy,
    SinkDriver,
)
from streams.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from streams.connectors.sink import AlertEvent, Sink
from streams.connectors.webhook import WebhookConfig, WebhookSink
from streams.testing.peers.alerts import T0, alert_event
from streams.testing.peers.pagerduty import PagerDutyPeer
from streams.testing.peers.server import Answer
from streams.testing.peers.webhook import WebhookReceiver

KEY = "R0UT1NGK3Y0000000000000000000001"
SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="
A = "funnel-freshness/lead_to_posthog/page-fast"
B = "funnel-freshness/payment_to_posthog/stuck"
C = "funnel-freshness/dlq_first_retry/backlog"


class VirtualTime:
    """A clock that moves only when :meth:`advance` moves it to the earliest sleeper."""

    def __init__(self, start: int = T0) -> None:
        self.now = start
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> int:
        return self.now

    @property
    def sleeping(self) -> bool:
        return any(not fut.done() for _, _, fut in self._sleepers)

    async def sleep(self, ms: int) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self.now + ms, self._seq, fut))
        await fut

    def advance(self) -> None:
        while self._sleepers:
            wake, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                self.now = max(self.now, wake)
                fut.set_result(None)
                return


async def settle(vt: VirtualTime, done: Callable[[], bool], real_s: float = 15.0) -> None:
    """Run the driver and its peer, moving virtual time whenever the driver sleeps, until
    ``done()``; fail after ``real_s`` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + real_s
    while not done():
        assert loop.time() < deadline, "the driver never got there"
        await asyncio.sleep(0.002)
        if not done() and vt.sleeping:
            vt.advance()


class Recorder:
    def __init__(self) -> None:
        self.delivered: list[Delivered] = []
        self.dead: list[DeadLetter] = []

    async def on_delivered(self, progress: Delivered) -> None:
        self.delivered.append(progress)

    async def on_dead_letter(self, letter: DeadLetter) -> None:
        self.dead.append(letter)


@asynccontextmanager
async def running(
    sink: Sink, vt: VirtualTime, policy: DeliveryPolicy | None = None, draw: float = 0.0
) -> AsyncIterator[tuple[SinkDriver, Recorder]]:
    recorder = Recorder()
    driver = SinkDriver(
        sink,
        policy,
        clock=vt.clock,
        sleep=vt.sleep,
        draw=lambda: draw,
        on_delivered=recorder.on_delivered,
        on_dead_letter=recorder.on_dead_letter,
    )
    task = asyncio.create_task(driver.run())
    try:
        yield driver, recorder
    finally:
        driver.stop()
        await task
        await sink.aclose()


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
async def receiver(vt: VirtualTime) -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET, clock=vt.clock, tolerance_s=10**9) as peer:
        yield peer


@pytest.fixture
async def pagerduty(vt: VirtualTime) -> AsyncIterator[PagerDutyPeer]:
    async with PagerDutyPeer(clock=vt.clock) as peer:
        yield peer


def webhook_sink(receiver: WebhookReceiver) -> WebhookSink:
    return WebhookSink(WebhookConfig(receiver.url, SECRET))


def pagerduty_sink(peer: PagerDutyPeer) -> PagerDutySink:
    return PagerDutySink(PagerDutyConfig(KEY, url=peer.enqueue_url))


def versions(receiver: WebhookReceiver, alert_id: str) -> list[int]:
    """The versions of ``alert_id`` the receiver got, in arrival order."""
    return [p["data"]["version"] for p in receiver.payloads() if p["data"]["alert_id"] == alert_id]


def state(alert_id: str, version: int, status: str = "firing") -> AlertEvent:
    return alert_event(alert_id, version, status=status)  # type: ignore[arg-type]


async def test_states_are_delivered_in_order_and_each_is_reported(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        driver.offer(state(A, 1))
        await settle(vt, lambda: len(recorder.delivered) == 1)
        driver.offer(state(A, 2, "resolved"))
        driver.offer(state(B, 1))
        await settle(vt, lambda: len(recorder.delivered) == 3)
    assert versions(receiver, A) == [1, 2]
    assert versions(receiver, B) == [1]
    assert recorder.delivered == [
        Delivered("webhook", A, 1),
        Delivered("webhook", A, 2),
        Delivered("webhook", B, 1),
    ]
    assert driver.counts.by_result() == {
        "delivered": 3,
        "resent": 0,
        "retried": 0,
        "dead_lettered": 0,
    }


async def test_a_state_waiting_for_a_retry_is_replaced_by_a_newer_one(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    receiver.cue(Answer(503), times=2)
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        driver.offer(state(A, 1))
        await settle(vt, lambda: len(receiver.requests) == 1)
        driver.offer(state(A, 2, "resolved"))
        await settle(vt, lambda: len(recorder.delivered) == 1)
    assert versions(receiver, A) == [2]
    assert recorder.delivered == [Delivered("webhook", A, 2)]
    assert (driver.counts.retried, driver.counts.coalesced) == (2, 1)


async def test_a_state_that_fails_while_a_newer_one_arrives_is_dropped_for_it(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    receiver.cue(Answer(503), delay_s=0.2)
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        driver.offer(state(A, 1))
        await settle(vt, lambda: not driver.idle and driver.pending == 0)  # A1 in flight
        driver.offer(state(B, 1))
        driver.offer(state(A, 2, "resolved"))
        await settle(vt, lambda: len(recorder.delivered) == 2)
    assert [(d.alert_id, d.version) for d in recorder.delivered] == [(A, 2), (B, 1)]
    assert versions(receiver, A) == [2]
    assert driver.counts.coalesced == 1


async def test_a_queued_state_is_replaced_in_place_by_a_newer_one(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    receiver.cue(Answer(503))
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        driver.offer(state(C, 1))
        await settle(vt, lambda: len(receiver.requests) == 1)
        driver.offer(state(A, 1))
        driver.offer(state(B, 1))
        for version in range(2, 6):
            driver.offer(state(A, version))
        await settle(vt, lambda: len(recorder.delivered) == 3)
    assert [(d.alert_id, d.version) for d in recorder.delivered] == [(C, 1), (A, 5), (B, 1)]
    assert versions(receiver, A) == [5]
    assert driver.counts.coalesced == 4


async def test_an_older_state_offered_late_is_never_sent(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        assert driver.offer(state(A, 2))
        await settle(vt, lambda: len(recorder.delivered) == 1)
        assert not driver.offer(state(A, 1))
        assert not driver.offer(state(A, 2))
        driver.offer(state(B, 1))
        await settle(vt, lambda: len(recorder.delivered) == 2)
    assert versions(receiver, A) == [2]
    assert driver.counts.stale == 2


@pytest.mark.parametrize("seed", range(8))
async def test_any_interleaving_of_offers_and_failures_keeps_each_alert_in_order(
    vt: VirtualTime, receiver: WebhookReceiver, seed: int
) -> None:
    rng = random.Random(seed)
    newest = dict.fromkeys((A, B, C), 0)
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        for _ in range(30):
            alert_id = rng.choice((A, B, C))
            newest[alert_id] += rng.randint(1, 3)
            driver.offer(state(alert_id, newest[alert_id], rng.choice(("firing", "resolved"))))
            if rng.random() < 0.3:
                receiver.cue(Answer(rng.choice((429, 500, 503))), times=rng.randint(1, 2))
            if rng.random() < 0.5:
                await settle(vt, lambda: driver.idle)
        await settle(vt, lambda: driver.idle)
    for alert_id, last in newest.items():
        seen = versions(receiver, alert_id)
        assert seen == sorted(set(seen)), (alert_id, seen)
        assert seen[-1] == last
    assert len(recorder.delivered) == len(receiver.payloads())


async def test_never_more_than_120_requests_in_any_minute_per_routing_key(
    vt: VirtualTime, pagerduty: PagerDutyPeer
) -> None:
    pagerduty.cue(Answer(503), times=5)
    policy = DeliveryPolicy(backoff_initial_ms=10)
    async with running(pagerduty_sink(pagerduty), vt, policy) as (driver, recorder):
        for n in range(300):
            driver.offer(state(f"app/flow{n}/stuck", 1))
        await settle(vt, lambda: len(recorder.delivered) == 300)
    arrivals = sorted(r.arrived_at for r in pagerduty.requests)
    assert len(arrivals) == 305
    busiest = max(sum(1 for t in arrivals if start <= t < start + 60_000) for start in arrivals)
    assert busiest == 120
    assert arrivals[-1] - arrivals[0] < 130_000  # no slower than the budget needs
    assert all(incident.opened == 1 for incident in pagerduty.incidents.values())
    assert len(pagerduty.incidents) == 300


async def test_the_rate_limit_is_per_routing_key(vt: VirtualTime, pagerduty: PagerDutyPeer) -> None:
    other = PagerDutySink(PagerDutyConfig("0" * 32, url=pagerduty.enqueue_url))
    async with (
        running(pagerduty_sink(pagerduty), vt) as (first, _),
        running(other, vt) as (second, _),
    ):
        for n in range(120):
            first.offer(state(f"app/flow{n}/stuck", 1))
            second.offer(state(f"app/flow{n}/ticket", 1))
        await settle(vt, lambda: len(pagerduty.requests) == 240)
    assert {r.arrived_at for r in pagerduty.requests} == {T0}


@pytest.mark.parametrize(
    ("retry_after", "gap_ms"),
    [("7", 7_000), ("Thu, 23 Apr 2026 10:47:27 GMT", 30_000), ("0", 0)],
)
async def test_retry_after_is_honoured(
    vt: VirtualTime, pagerduty: PagerDutyPeer, retry_after: str, gap_ms: int
) -> None:
    pagerduty.cue(Answer.of_json(429, {"status": "throttled"}, **{"Retry-After": retry_after}))
    async with running(pagerduty_sink(pagerduty), vt) as (driver, recorder):
        driver.offer(state(A, 1))
        await settle(vt, lambda: len(recorder.delivered) == 1)
    assert [r.arrived_at - T0 for r in pagerduty.requests] == [0, gap_ms]
    assert [r.status for r in pagerduty.requests] == [429, 202]


async def test_failures_back_off_exponentially_with_jitter_up_to_the_cap(
    vt: VirtualTime, pagerduty: PagerDutyPeer
) -> None:
    pagerduty.cue(Answer(500), times=5)
    policy = DeliveryPolicy(backoff_initial_ms=1000, backoff_max_ms=4000, backoff_jitter=0.2)
    async with running(pagerduty_sink(pagerduty), vt, policy, draw=0.5) as (driver, recorder):
        driver.offer(state(A, 1))
        await settle(vt, lambda: len(recorder.delivered) == 1)
    arrivals = [r.arrived_at - T0 for r in pagerduty.requests]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps == [900, 1800, 3600, 3600, 3600]
    assert driver.counts.retried == 5


async def test_a_refused_state_is_dead_lettered_without_blocking_the_others(
    vt: VirtualTime, pagerduty: PagerDutyPeer
) -> None:
    async with running(pagerduty_sink(pagerduty), vt) as (driver, recorder):
        driver.offer(alert_event(A, 1, severity="fatal"))  # type: ignore[arg-type]
        driver.offer(state(B, 1))
        driver.offer(state(C, 1))
        await settle(vt, lambda: len(recorder.delivered) == 2)
    [letter] = recorder.dead
    assert (letter.sink, letter.alert_id, letter.version, letter.status) == ("pagerduty", A, 1, 400)
    assert letter.url == pagerduty.enqueue_url
    assert '"status":"invalid event"' in letter.body
    assert '"severity":"fatal"' in letter.request
    assert KEY not in letter.request
    assert [d.alert_id for d in recorder.delivered] == [B, C]
    assert [r.arrived_at for r in pagerduty.requests] == [T0, T0, T0]
    assert driver.counts.by_result()["dead_lettered"] == 1


async def test_an_outage_queues_and_catches_up_with_each_alerts_newest_state(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    await receiver.stop()
    async with running(webhook_sink(receiver), vt) as (driver, recorder):
        for alert_id, version in ((A, 1), (B, 1), (A, 2), (C, 1), (B, 2), (A, 3)):
            driver.offer(state(alert_id, version))
        await settle(vt, lambda: driver.counts.retried >= 4)
        await receiver.start()
        await settle(vt, lambda: driver.idle)
    assert [(p["data"]["alert_id"], p["data"]["version"]) for p in receiver.payloads()] == [
        (A, 3),
        (B, 2),
        (C, 1),
    ]
    assert [(d.alert_id, d.version) for d in recorder.delivered] == [(A, 3), (B, 2), (C, 1)]
    assert driver.counts.coalesced == 3
    assert driver.counts.dead_lettered == 0


async def test_stop_returns_while_the_sink_is_held(
    vt: VirtualTime, receiver: WebhookReceiver
) -> None:
    receiver.cue(Answer(503, b"", {"Retry-After": "3600"}))
    async with running(webhook_sink(receiver), vt) as (driver, _):
        driver.offer(state(A, 1))
        await settle(vt, lambda: len(receiver.requests) == 1)
    assert driver.pending == 1
