"""The leader session without Kafka: an in-memory outbox (offsets as versions), a lease the
test holds, the real PagerDuty connector against the local PagerDuty peer.

What it must guarantee: a state is in the outbox before any sink sees it; a restarted
session offers each sink exactly what it is owed (nothing delivered twice when progress
was recorded, everything not delivered); nothing is written or sent without the lease."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from streams import topics
from streams.alerting.inputs import AlerterInputs
from streams.alerting.policy import StuckRule, default_policy
from streams.alerting.records import (
    AlertState,
    DeliveryRecord,
    ProgressRecord,
    SinkCounts,
    encode_alert,
    encode_progress,
)
from streams.alerting.session import LeaderSession, SessionConfig
from streams.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from streams.connectors.sink import AlertEvent, Attempt, Outcome, RateLimit
from streams.core.model import Flow
from streams.flows.config import load_flows
from streams.pipeline.codec import breach_kv
from streams.testing.peers.pagerduty import PagerDutyPeer
from tests.streams.alerting.test_alerter_inputs import breach

LEAD: Flow = next(f for f in load_flows(None) if f.name == "lead_to_posthog")
CONFIG = SessionConfig("app", {LEAD.name: default_policy(LEAD)}, eval_ms=20)
STUCK = "app/lead_to_posthog/stuck"
KEY = "K" * 32
NOW = 1_776_941_300_000
"""Well past the test breach's deadline (``test_alerter_inputs.T`` + 5 s) plus the target."""


@dataclass
class MemoryOutbox:
    """The outbox's interface, in memory: every write gets the next offset."""

    log: list[tuple[str, str]]
    states: list[AlertState] = field(default_factory=list)
    progress: list[ProgressRecord] = field(default_factory=list)
    offset: int = 0
    started: int = 0

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        return None

    async def write_states(self, states: Sequence[AlertState]) -> list[AlertState]:
        out = []
        for state in states:
            self.offset += 1
            out.append(state.at_version(self.offset))
            self.log.append(("write", state.alert_id))
        self.states += out
        return out

    async def write_progress(self, records: Sequence[ProgressRecord]) -> None:
        self.progress += records

    def replay(self) -> AlerterInputs:
        """What a reader of the two topics would have applied."""
        inputs = AlerterInputs()
        for state in self.states:
            inputs.apply(topics.ALERTS, *encode_alert(state), state.event.version)
        for record in self.progress:
            inputs.apply(topics.ALERT_DELIVERIES, *encode_progress(record), 0)
        return inputs


class Lease:
    def __init__(self, valid: bool = True) -> None:
        self.valid = valid

    def lease_valid(self) -> bool:
        return self.valid

    async def wait_lease(self) -> None:
        while not self.valid:
            await asyncio.sleep(0.005)


class Reader:
    async def caught_up(self) -> None:
        return None


class LoggingSink:
    """A sink that logs what it is sent and takes everything."""

    name = "webhook"
    rate_limit: RateLimit | None = None
    resend_ms: int | None = None

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log

    def rate_key(self, event: AlertEvent) -> str:
        return ""

    async def send(self, event: AlertEvent, now_ms: int) -> Attempt:
        self.log.append(("send", event.alert_id))
        return Attempt(Outcome.DELIVERED, 200, "memory://", "")

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def pd() -> AsyncIterator[PagerDutyPeer]:
    async with PagerDutyPeer() as peer:
        yield peer


def with_breaches(inputs: AlerterInputs, *breaches: object) -> AlerterInputs:
    for b in breaches:
        inputs.apply(topics.BREACHES, *breach_kv(b), 0)  # type: ignore[arg-type]
    return inputs


@contextlib.asynccontextmanager
async def running(session: LeaderSession) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(session.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def session(
    inputs: AlerterInputs, outbox: MemoryOutbox, sinks: list[object], lease: Lease
) -> LeaderSession:
    return LeaderSession(
        CONFIG,
        inputs,
        Reader(),  # type: ignore[arg-type]
        outbox,  # type: ignore[arg-type]
        sinks,  # type: ignore[arg-type]
        lease,  # type: ignore[arg-type]
        clock=lambda: NOW,
    )


async def until(check, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_state_is_in_the_outbox_before_any_sink_sees_it() -> None:
    log: list[tuple[str, str]] = []
    outbox = MemoryOutbox(log)
    inputs = with_breaches(AlerterInputs(), breach("a"))
    async with running(session(inputs, outbox, [LoggingSink(log)], Lease())):
        await until(lambda: ("send", STUCK) in log)
    assert log.index(("write", STUCK)) < log.index(("send", STUCK))
    [state] = outbox.states
    assert (state.event.status, state.routes) == ("firing", ("webhook",))


async def test_progress_and_counts_are_recorded_after_a_delivery() -> None:
    log: list[tuple[str, str]] = []
    outbox = MemoryOutbox(log)
    inputs = with_breaches(AlerterInputs(), breach("a"))
    async with running(session(inputs, outbox, [LoggingSink(log)], Lease())):
        await until(lambda: len(outbox.progress) >= 2)
    delivery, counts = outbox.progress[:2]
    assert delivery == DeliveryRecord("webhook", STUCK, 1, "firing", "delivered", NOW)
    assert isinstance(counts, SinkCounts)
    assert counts.delivered == 1


async def test_a_restart_after_delivery_sends_only_the_new_state(pd: PagerDutyPeer) -> None:
    outbox = MemoryOutbox([])
    sink = PagerDutySink(PagerDutyConfig(KEY, url=pd.enqueue_url))
    inputs = with_breaches(AlerterInputs(), breach("a"))
    async with running(session(inputs, outbox, [sink], Lease())):
        await until(lambda: len(outbox.progress) >= 2)
    restarted = with_breaches(outbox.replay(), breach("a", "late"))
    sink = PagerDutySink(PagerDutyConfig(KEY, url=pd.enqueue_url))
    async with running(session(restarted, outbox, [sink], Lease())):
        await until(lambda: len(pd.events()) >= 2)
        await asyncio.sleep(0.2)
    assert [e["event_action"] for e in pd.events()] == ["trigger", "resolve"]
    assert pd.incidents[STUCK].opened == 1


async def test_a_crash_between_the_write_and_the_delivery_delivers_after_restart(
    pd: PagerDutyPeer,
) -> None:
    outbox = MemoryOutbox([])
    inputs = with_breaches(AlerterInputs(), breach("a"))
    await pd.stop()  # PagerDuty unreachable: the state is written, never delivered
    sink = PagerDutySink(PagerDutyConfig(KEY, url=pd.enqueue_url, timeout_ms=200))
    async with running(session(inputs, outbox, [sink], Lease())):
        await until(lambda: bool(outbox.states))
        await asyncio.sleep(0.1)
    assert [r for r in outbox.progress if isinstance(r, DeliveryRecord)] == []
    await pd.start()
    sink = PagerDutySink(PagerDutyConfig(KEY, url=pd.enqueue_url))
    fresh = session(with_breaches(outbox.replay(), breach("a")), outbox, [sink], Lease())
    async with running(fresh):
        await until(lambda: bool(pd.events()))
        await asyncio.sleep(0.2)
    assert [e["event_action"] for e in pd.events()] == ["trigger"]
    assert len(outbox.states) == 1  # restored as firing: not written again
    assert pd.events()[0]["dedup_key"] == STUCK


async def test_nothing_is_written_or_sent_without_the_lease() -> None:
    log: list[tuple[str, str]] = []
    outbox = MemoryOutbox(log)
    lease = Lease(valid=False)
    inputs = with_breaches(AlerterInputs(), breach("a"))
    async with running(session(inputs, outbox, [LoggingSink(log)], lease)):
        await asyncio.sleep(0.3)
        assert (outbox.started, log) == (0, [])
        lease.valid = True
        await until(lambda: ("send", STUCK) in log)
    assert outbox.started == 1


async def test_a_sink_outside_an_alerts_routes_gets_nothing(pd: PagerDutyPeer) -> None:
    webhook_only = StuckRule(after_ms=LEAD.target_ms, routes=frozenset({"webhook"}))
    policy = dataclasses.replace(default_policy(LEAD), stuck=webhook_only)
    config = dataclasses.replace(CONFIG, policies={LEAD.name: policy})
    log: list[tuple[str, str]] = []
    outbox = MemoryOutbox(log)
    sink = PagerDutySink(PagerDutyConfig(KEY, url=pd.enqueue_url))
    inputs = with_breaches(AlerterInputs(), breach("a"))
    lead = LeaderSession(
        config,
        inputs,
        Reader(),
        outbox,
        [sink, LoggingSink(log)],
        Lease(),  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    async with running(lead):
        await until(lambda: ("send", STUCK) in log)
        await asyncio.sleep(0.1)
    assert outbox.states[0].routes == ("webhook",)
    assert pd.requests == []
