"""The scheduler with a frozen clock and an in-memory sink: order, timing, and a truth file
that says exactly what was produced."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from streams.core.timeparse import parse_event_time
from streams.flows import load_flows
from streams.simulate.scheduler import Position, Scheduler
from streams.simulate.traffic import Fractions, Planner, TrafficConfig
from streams.simulate.truth import TruthWriter, read_truth

FLOWS = load_flows(None)
T0 = 1_776_941_217_000
BY_NAME = {f.name: f for f in FLOWS}


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now
        self.sleeps = 0

    def now_ms(self) -> int:
        return self.now

    async def sleep_ms(self, ms: int) -> None:
        assert ms > 0
        self.sleeps += 1
        self.now += ms
        await asyncio.sleep(0)


@dataclass
class Sent:
    at: int
    topic: str
    key: bytes
    value: bytes | None
    offset: int


@dataclass
class FakeSink:
    clock: FakeClock
    sent: list[Sent] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        self.sent.append(Sent(self.clock.now, topic, key, value, offset))
        fut: asyncio.Future[Position] = asyncio.get_running_loop().create_future()
        fut.set_result(Position(topic, 0, offset))
        return fut

    async def flush(self) -> None:
        await asyncio.sleep(0)


def planner(end: int | None, seed: int = 9) -> Planner:
    cfg = TrafficConfig(
        flows=FLOWS,
        run_id="s1",
        rate=300.0,
        seed=seed,
        fractions=Fractions(
            late=0.1, missing=0.1, out_of_order=0.1, skew=0.1, duplicate=0.1, malformed=0.05
        ),
    )
    return Planner(cfg, T0, end)


def produced_outcomes(sent: list[Sent]) -> dict[str, tuple[str, int | None]]:
    """What the produced records imply, per ``flow:key`` (recomputed independently)."""
    starts: dict[str, int] = {}
    ends: dict[str, int] = {}
    flow_of: dict[str, str] = {}
    for s in sent:
        if b"-bad-" in s.key:
            continue
        rec = orjson.loads(s.value or b"null")
        at = parse_event_time(rec["occurred_at"])
        for flow in FLOWS:
            key = s.key.decode()
            if s.topic == flow.start_topic:
                starts.setdefault(f"{flow.name}:{key}", at)
                flow_of[f"{flow.name}:{key}"] = flow.name
            elif s.topic == flow.end_topic and flow.end_filter is not None:
                if flow.end_filter.matches(rec):
                    ends.setdefault(f"{flow.name}:{key}", at)
            elif s.topic == flow.end_topic:
                ends.setdefault(f"{flow.name}:{key}", at)
    out: dict[str, tuple[str, int | None]] = {}
    for ident, started in starts.items():
        end = ends.get(ident)
        if end is None:
            out[ident] = ("overdue", None)
        else:
            lag = end - started
            target = BY_NAME[flow_of[ident]].target_ms
            out[ident] = ("on_time" if lag <= target else "late", lag)
    for ident in ends.keys() - starts.keys():
        out[ident] = ("orphan", None)
    return out


async def test_finite_run_sends_in_due_order_on_time_and_truth_matches(tmp_path: Path) -> None:
    end = T0 + 20_000
    clock = FakeClock(T0)
    sink = FakeSink(clock)
    truth_path = tmp_path / "truth.jsonl"
    writer = TruthWriter(truth_path)
    writer.header({"run_id": "s1", "key_prefix": "sim-s1-", "flows": [], "started_at": T0})
    sched = Scheduler(planner(end), sink, clock, writer)
    stats = await sched.run(asyncio.Event())
    writer.close()

    assert not sched.interrupted
    assert stats.sent == len(sink.sent) == stats.acked > 1000
    assert all(late == 0 for late in stats.send_late), "every record at its due time, exactly"
    ats = [s.at for s in sink.sent]
    assert ats == sorted(ats)
    assert ats[-1] < end
    # a completion is produced at its occurred_at (out-of-order starts and copies excepted)
    for s in sink.sent:
        if b"-bad-" in s.key:
            continue
        rec = orjson.loads(s.value or b"null")
        if s.topic.endswith(("ingested", "attempted", "acknowledged")):
            at = parse_event_time(rec["occurred_at"])
            assert s.at >= at
            assert s.at == at or stats.by_role.get("dup_end")

    truth = read_truth(truth_path)
    got = {s.ident: (s.outcome, s.lag_ms) for s in truth.starts}
    assert got == produced_outcomes(sink.sent)
    assert {o for o, _ in got.values()} == {"on_time", "late", "overdue"}
    cases = {s.case for s in truth.starts}
    assert cases == {"on_time", "late", "missing", "out_of_order", "skew", "duplicate"}
    for s in truth.starts:
        assert s.deadline == s.started_at + BY_NAME[s.flow].target_ms
        if s.case == "skew":
            assert s.lag_ms is not None
            assert s.lag_ms < 0
    bad = {(m.topic, m.offset): m.reason for m in truth.malformed}
    sent_bad = {(s.topic, s.offset) for s in sink.sent if b"-bad-" in s.key}
    assert set(bad) == sent_bad
    assert len(bad) == sum(stats.malformed.values()) > 0


async def test_out_of_order_start_is_sent_after_its_completion() -> None:
    clock = FakeClock(T0)
    sink = FakeSink(clock)
    p = planner(T0 + 15_000)
    await Scheduler(p, sink, clock, None).run(asyncio.Event())
    order = {(s.topic, s.key): i for i, s in enumerate(sink.sent)}
    checked = 0
    for i, s in enumerate(sink.sent):
        if b"-bad-" in s.key or not orjson.loads(s.value or b"{}")["event_id"].endswith("-c"):
            continue
        for flow in FLOWS:
            start_i = order.get((flow.start_topic, s.key))
            if start_i is not None and s.topic == flow.end_topic and start_i > i:
                checked += 1
    assert checked > 10, "out-of-order and skewed entities deliver the completion first"


async def test_interrupted_run_writes_what_was_produced(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sink = FakeSink(clock)
    truth_path = tmp_path / "truth.jsonl"
    writer = TruthWriter(truth_path)
    writer.header({"run_id": "s1", "key_prefix": "sim-s1-", "flows": [], "started_at": T0})
    stop = asyncio.Event()
    sched = Scheduler(planner(None, seed=4), sink, clock, writer)

    async def interrupt() -> None:
        while clock.now < T0 + 12_000:
            await asyncio.sleep(0)
        stop.set()

    task = asyncio.create_task(interrupt())
    await sched.run(stop)
    await task
    writer.close()
    assert sched.interrupted
    truth = read_truth(truth_path)
    got = {s.ident: (s.outcome, s.lag_ms) for s in truth.starts}
    assert got == produced_outcomes(sink.sent)
    outcomes = {o for o, _ in got.values()}
    assert "overdue" in outcomes, "starts whose completion was not produced yet are overdue"
    assert len(truth.starts) == len({s.ident for s in truth.starts})
