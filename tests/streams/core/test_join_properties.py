"""Property tests of the join core: outcomes equal an independent ground truth for any
cross-partition interleaving, any watermark schedule, and any crash-and-replay point.

The scenario is read the way the worker reads it: each input topic has partitions, each
key lives in one partition, records in a partition are in event-time order, watermarks
come from :class:`PartitionClock` / :class:`WatermarkBoard`.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.join import JoinCore
from streams.core.model import Breach, Flow, FlowEvent, Measurement, Outputs
from streams.core.watermark import PartitionClock, WatermarkBoard
from streams.pipeline import codec

PARTITIONS = 2
GIVE_UP = 60_000
FLOWS = (
    Flow("a", "a.start", "a.end", ("k",), ("k",), target_ms=5_000, give_up_after_ms=GIVE_UP),
    Flow("b", "b.start", "b.end", ("k",), ("k",), target_ms=10_000, give_up_after_ms=GIVE_UP),
)
BY_NAME = {f.name: f for f in FLOWS}


@dataclass(frozen=True)
class Case:
    flow: str
    key: str
    start_at: int | None  # None: a completion that matches no start
    lag: int | None  # None: the completion never comes
    dup_start: bool
    dup_end: bool


cases = st.builds(
    Case,
    flow=st.sampled_from(["a", "b"]),
    key=st.just(""),
    start_at=st.one_of(st.none(), st.integers(0, 120_000)),
    lag=st.one_of(st.none(), st.integers(-3_000, 40_000), st.sampled_from([5_000, 10_000])),
    dup_start=st.booleans(),
    dup_end=st.booleans(),
)


def build_partitions(
    scenario: list[Case], shuffle: random.Random | None = None, orphan_base: int = 50_000
) -> dict[tuple[str, int], list[FlowEvent]]:
    """Records per (topic, partition), each partition sorted by event time (or, with
    ``shuffle``, in a random order: producers that deliver records out of event-time order)."""
    parts: dict[tuple[str, int], list[FlowEvent]] = {}
    for c in scenario:
        flow = BY_NAME[c.flow]
        p = zlib.crc32(c.key.encode()) % PARTITIONS
        recs: list[tuple[str, str, int]] = []
        if c.start_at is not None:
            recs.append((flow.start_topic, "start", c.start_at))
            if c.dup_start:
                recs.append((flow.start_topic, "start", c.start_at))
        if c.lag is not None:
            at = (c.start_at if c.start_at is not None else orphan_base) + c.lag
            recs.append((flow.end_topic, "end", at))
            if c.dup_end:
                recs.append((flow.end_topic, "end", at))
        for topic, side, at in recs:
            ev = FlowEvent(c.flow, c.key, side, f"{side}-{c.flow}-{c.key}", at, topic, p, -1)  # type: ignore[arg-type]
            parts.setdefault((topic, p), []).append(ev)
    for tp, evs in parts.items():
        if shuffle is None:
            evs.sort(key=lambda e: e.occurred_at)
        else:
            shuffle.shuffle(evs)
        parts[tp] = [
            FlowEvent(e.flow, e.key, e.side, e.event_id, e.occurred_at, tp[0], tp[1], i)
            for i, e in enumerate(evs)
        ]
    return parts


Step = FlowEvent | dict[str, int]


def interleave(
    parts: dict[tuple[str, int], list[FlowEvent]], choices: list[int], tick_every: list[bool]
) -> list[Step]:
    """Merge partitions in an order drawn by hypothesis, with ticks whose watermarks are
    computed exactly as the worker computes them ("now" is just past the newest event)."""
    all_topics = sorted({f.start_topic for f in FLOWS} | {f.end_topic for f in FLOWS})
    now = max((e.occurred_at for evs in parts.values() for e in evs), default=0) + 1
    clock = PartitionClock()
    board = WatermarkBoard()
    board.set_partition_counts(dict.fromkeys(all_topics, PARTITIONS))
    for t in all_topics:
        for p in range(PARTITIONS):
            clock.start_at(t, p, 0)
    cursors = dict.fromkeys(parts, 0)
    steps: list[Step] = []
    i = 0
    while any(cursors[tp] < len(parts[tp]) for tp in parts):
        open_tps = sorted(tp for tp in parts if cursors[tp] < len(parts[tp]))
        tp = open_tps[choices[i % len(choices)] % len(open_tps)] if choices else open_tps[0]
        ev = parts[tp][cursors[tp]]
        cursors[tp] += 1
        steps.append(ev)
        clock.forwarded(tp[0], tp[1], ev.offset, ev.occurred_at)
        if tick_every and tick_every[i % len(tick_every)]:
            for t in all_topics:
                for p in range(PARTITIONS):
                    r = clock.report(t, p, len(parts.get((t, p), [])), now)
                    board.observe(t, p, r.watermark, r.lag_ms)
            steps.append(board.topic_watermarks(all_topics))
        i += 1
    return steps


FINAL_TICK = {t: 10**12 for f in FLOWS for t in (f.start_topic, f.end_topic)}


def run(steps: list[Step], core: JoinCore, first_pos: int = 0) -> list[Outputs]:
    outs: list[Outputs] = []
    for pos, step in enumerate(steps[first_pos:], start=first_pos):
        if isinstance(step, FlowEvent):
            outs.append(core.apply(step, pos))
        else:
            outs.append(core.advance(step))
    return outs


def final_state(outs: list[Outputs]) -> tuple[dict[str, Measurement], dict[str, Breach]]:
    ms: dict[str, Measurement] = {}
    bs: dict[str, Breach] = {}
    for o in outs:
        for m in o.measurements:
            ident = f"{m.flow}:{m.key}"
            assert ident not in ms or ms[ident] == m, "a repeated measurement must be identical"
            ms[ident] = m
        for b in o.breaches:
            bs[b.breach_id] = b
        for breach_id in o.retractions:
            bs.pop(breach_id, None)
    return ms, bs


def truth(
    scenario: list[Case],
) -> tuple[dict[str, tuple[int, bool]], dict[str, tuple[str, int | None]]]:
    """Expected measurements (lag, on_time) and final breaches (kind, lag), by identity."""
    ms: dict[str, tuple[int, bool]] = {}
    bs: dict[str, tuple[str, int | None]] = {}
    for c in scenario:
        if c.start_at is None:
            continue
        flow = BY_NAME[c.flow]
        ident = f"{c.flow}:{c.key}"
        if c.lag is None:
            bs[ident] = ("lost", None)
            continue
        ms[ident] = (c.lag, c.lag <= flow.target_ms)
        if c.lag > flow.target_ms:
            bs[ident] = ("late", c.lag)
    return ms, bs


def unique_keys(raw: list[Case]) -> list[Case]:
    return [
        Case(c.flow, f"k{i}", c.start_at, c.lag, c.dup_start, c.dup_end) for i, c in enumerate(raw)
    ]


def check(scenario: list[Case], ms: dict[str, Measurement], bs: dict[str, Breach]) -> None:
    want_ms, want_bs = truth(scenario)
    assert {k: (m.lag_ms, m.on_time) for k, m in ms.items()} == want_ms
    assert {k: (b.kind, b.lag_ms) for k, b in bs.items()} == want_bs
    assert all(b.status == "closed" for b in bs.values())
    for m in ms.values():
        assert m.clock_skew == (m.lag_ms < 0)


scenarios = st.lists(cases, min_size=1, max_size=25).map(unique_keys)
orders = st.lists(st.integers(0, 10**6), min_size=1, max_size=60)
ticks = st.lists(st.booleans(), min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios, order=orders, tick=ticks)
def test_outcomes_match_ground_truth_for_any_interleaving(
    scenario: list[Case], order: list[int], tick: list[bool]
) -> None:
    steps = [*interleave(build_partitions(scenario), order, tick), FINAL_TICK]
    outs = run(steps, JoinCore(FLOWS, done_retention_ms=10**9))
    ms, bs = final_state(outs)
    check(scenario, ms, bs)
    assert sum(len(o.measurements) for o in outs) == len(ms), "one measurement per start"


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios, o1=orders, o2=orders, t1=ticks, t2=ticks)
def test_two_interleavings_agree(
    scenario: list[Case], o1: list[int], o2: list[int], t1: list[bool], t2: list[bool]
) -> None:
    parts = build_partitions(scenario)
    results = []
    for order, tick in ((o1, t1), (o2, t2)):
        steps = [*interleave(parts, order, tick), FINAL_TICK]
        ms, bs = final_state(run(steps, JoinCore(FLOWS, done_retention_ms=10**9)))
        # out_of_order tells the arrival order this run saw; it is the one field that may
        # differ between interleavings, by design.
        results.append(
            (
                {k: replace(m, out_of_order=False) for k, m in ms.items()},
                {k: (b.kind, b.status, b.lag_ms, b.completed_at) for k, b in bs.items()},
            )
        )
    assert results[0] == results[1]


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios, order=orders, tick=ticks, data=st.data())
def test_crash_and_replay_loses_nothing(
    scenario: list[Case], order: list[int], tick: list[bool], data: st.DataObject
) -> None:
    """State saved at step ``crash``, offsets committed at ``commit`` <= ``crash``: outputs
    of steps from ``commit`` on were never delivered; a new core restored from the saved
    state replays from ``commit``. What is delivered still matches the ground truth."""
    steps = interleave(build_partitions(scenario), order, tick)
    crash = data.draw(st.integers(0, len(steps)))
    commit = data.draw(st.integers(0, crash))
    first = JoinCore(FLOWS, done_retention_ms=10**9)
    delivered = run(steps[:crash], first)[:commit]
    second = JoinCore(FLOWS, done_retention_ms=10**9)
    second.restore_all(  # through the bytes the table would hold
        [(k, codec.decode_state(codec.encode_state(e))) for k, e in first.states()],
        [(w, codec.decode_window(codec.encode_window(s))) for w, s in first.windows.items()],
    )
    delivered.append(
        Outputs(breaches=list(second.breaches()), retractions=list(second.retractions()))
    )
    delivered += run([*steps, FINAL_TICK], second, first_pos=commit)
    ms, bs = final_state(delivered)
    check(scenario, ms, bs)


narrow_cases = st.builds(
    Case,
    flow=st.sampled_from(["a", "b"]),
    key=st.just(""),
    start_at=st.one_of(st.none(), st.integers(0, 15_000)),
    lag=st.one_of(st.none(), st.integers(-3_000, 40_000)),
    dup_start=st.booleans(),
    dup_end=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    scenario=st.lists(narrow_cases, min_size=1, max_size=25).map(unique_keys),
    order=orders,
    tick=ticks,
    seed=st.integers(0, 2**32),
)
def test_disorder_inside_partitions_is_retracted_not_reported(
    scenario: list[Case], order: list[int], tick: list[bool], seed: int
) -> None:
    """Records out of event-time order can push a watermark past a deadline before the
    completion is read: the false overdue is retracted, so the final state is still the
    ground truth (every event time, orphans' too, stays below give_up_after, so nothing is
    falsely lost)."""
    parts = build_partitions(scenario, shuffle=random.Random(seed), orphan_base=0)
    steps = [*interleave(parts, order, tick), FINAL_TICK]
    outs = run(steps, JoinCore(FLOWS, done_retention_ms=10**9))
    ms, bs = final_state(outs)
    check(scenario, ms, bs)


def _events(core: JoinCore) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """Per entity of ``core``: the event ids of its start and its completion."""
    out = {}
    for (flow, key), _ in core.states():
        ent = core.entity(flow, key)
        assert ent is not None
        out[(flow, key)] = (
            None if ent.start is None else ent.start.event_id,
            None if ent.end is None else ent.end.event_id,
        )
    return out


def _restored(rows: dict[tuple[str, str], bytes]) -> JoinCore:
    core = JoinCore(FLOWS, done_retention_ms=10**9)
    core.restore_all([(k, codec.decode_state(v)) for k, v in rows.items()])
    return core


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios, order=orders, tick=ticks, data=st.data())
def test_a_replay_writes_every_event_the_local_state_holds_into_the_changelog(
    scenario: list[Case], order: list[int], tick: list[bool], data: st.DataObject
) -> None:
    """The worker writes a step's rows into its local RocksDB before the step's changelog
    records are delivered, so a worker killed at step ``crash`` and restarted on its own
    state directory holds rows the changelog may lack (at worst every row changed since the
    committed step ``commit``). Its replay from ``commit`` must write each event those rows
    hold again: the changelog is what the next owner of the partition restores, and a start
    only the dead worker's disk held would be lost for good (its completion then an orphan,
    the on-time start reported as nothing). What ticks decided (overdue, lost, purged) may
    lag in the changelog: the next owner decides it again from the same watermarks."""
    steps = interleave(build_partitions(scenario), order, tick)
    crash = data.draw(st.integers(0, len(steps)))
    commit = data.draw(st.integers(0, crash))
    first = JoinCore(FLOWS, done_retention_ms=10**9)
    run(steps[:commit], first)
    changelog = {k: codec.encode_state(e) for k, e in first.states()}
    run(steps[:crash], first, first_pos=commit)
    local = JoinCore(FLOWS, done_retention_ms=10**9)
    local.restore_all(
        [(k, codec.decode_state(codec.encode_state(e))) for k, e in first.states()],
        [(w, codec.decode_window(codec.encode_window(s))) for w, s in first.windows.items()],
    )
    local.take_dirty()
    for pos in range(commit, len(steps)):
        run(steps[: pos + 1], local, first_pos=pos)
        for flow, key in local.take_dirty()[0]:
            state = local.state(flow, key)
            if state is None:
                changelog.pop((flow, key), None)
            else:
                changelog[(flow, key)] = codec.encode_state(state)
    held = _events(_restored(changelog))
    assert {k: held.get(k) for k in _events(local)} == _events(local)
