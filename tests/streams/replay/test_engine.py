"""The replay engine without a broker: the worker's verdicts over a range, the range's end
as every partition's watermark, sweeps as a caught-up worker's ticks, the lookback as
context only, and the same verdicts as the worker's own pipeline on the scripted scenario."""

from __future__ import annotations

import zlib
from dataclasses import replace

import orjson
import pytest

from streams.core.model import Flow
from streams.pipeline import codec
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest
from streams.pipeline.join import Joiner
from streams.replay.engine import ReplayEngine, ReplayOptions, Span
from streams.replay.output import output_lines
from streams.replay.summary import summarize
from streams.simulate.scenario import scripted
from tests.streams.replay.kit import FLOWS, LEAD, PARTITIONS, T0, Log, replay

END = T0 + 600_000


def kinds(result: object) -> dict[str, tuple[str, str]]:
    return {bid: (b.kind, b.status) for bid, b in result.breaches.items()}  # type: ignore[attr-defined]


def test_each_start_gets_the_workers_verdict_as_of_the_range_end() -> None:
    log = Log()
    log.start(LEAD, "on", T0)
    log.end(LEAD, "on", T0 + 4_000)
    log.start(LEAD, "late", T0 + 100)
    log.end(LEAD, "late", T0 + 7_100)
    log.start(LEAD, "missing", T0 + 200)
    log.start(LEAD, "young", END - 4_000)
    result = replay(log, T0, END)
    assert {k: (m.lag_ms, m.on_time) for k, m in result.measurements.items()} == {
        f"{LEAD.name}:on": (4_000, True),
        f"{LEAD.name}:late": (7_000, False),
    }
    assert kinds(result) == {
        f"{LEAD.name}:late": ("late", "closed"),
        f"{LEAD.name}:missing": ("overdue", "open"),
    }
    assert result.pending[LEAD.name] == 1  # "young" is within its target at the end
    (row,) = [r for r in summarize(result) if r.flow == LEAD.name]
    assert (row.starts, row.on_time, row.late, row.overdue, row.pending) == (4, 1, 1, 1, 1)


def test_the_range_end_is_the_watermark_with_no_grace() -> None:
    log = Log()
    log.start(LEAD, "due-before-end", END - LEAD.target_ms - 1)
    log.start(LEAD, "due-at-end", END - LEAD.target_ms)
    result = replay(log, T0, END)
    assert kinds(result) == {f"{LEAD.name}:due-before-end": ("overdue", "open")}
    b = result.breaches[f"{LEAD.name}:due-before-end"]
    assert b.detected_at == END
    assert result.watermarks[LEAD.end_topic] == END


def test_overdue_is_declared_by_the_first_sweep_past_the_deadline_minus_the_grace() -> None:
    log = Log()
    log.start(LEAD, "missing", T0)
    for i in range(1, 120):  # traffic every 100 ms of Kafka time, as a live funnel has
        log.start(LEAD, f"busy-{i}", T0 + 100 * i, partition=1)
    options = ReplayOptions(tick_interval_ms=100, watermark_grace_ms=250)
    result = replay(log, T0, T0 + 12_000, options=options)
    b = result.breaches[f"{LEAD.name}:missing"]
    # a caught-up worker's tick at T stands at T - grace; the first sweep past the deadline
    # is the one at T0 + 5300, whose watermark is T0 + 5050
    assert b.detected_at == T0 + LEAD.target_ms + 50


def test_a_quiet_stretch_is_swept_before_the_records_after_it() -> None:
    flow = replace(LEAD, give_up_after_ms=60_000)
    log = Log(flows=(flow,))
    log.start(flow, "a", T0)
    log.end(flow, "a", T0 + 120_000)  # two minutes of silence, then the completion
    result = replay(log, T0, T0 + 200_000)
    # a worker ticking through the silence gave up at 60 s: lost is final
    assert kinds(result) == {f"{flow.name}:a": ("lost", "closed")}
    assert result.measurements == {}


def test_an_on_time_completion_written_after_the_deadline_retracts_the_overdue() -> None:
    log = Log()
    log.start(LEAD, "a", T0)
    log.end(LEAD, "a", T0 + 1_000, ts=T0 + 7_000)  # its producer sat on it for 6 s
    engine_result = replay(log, T0, T0 + 60_000)
    assert engine_result.breaches == {}  # declared overdue at ~T0+6.6 s, then retracted
    m = engine_result.measurements[f"{LEAD.name}:a"]
    assert (m.lag_ms, m.on_time) == (1_000, True)


def test_records_at_or_after_the_range_end_are_not_read() -> None:
    log = Log()
    log.start(LEAD, "a", T0)
    log.end(LEAD, "a", T0 + 1_000, ts=T0 + 30_000)
    result = replay(log, T0, T0 + 30_000)
    assert kinds(result) == {f"{LEAD.name}:a": ("overdue", "open")}


def test_the_lookback_is_context_and_only_the_range_is_judged() -> None:
    start = T0 + 3_600_000
    log = Log()  # records in Kafka-time order, as producers write them
    log.start(LEAD, "all-back", start - 50_000)
    log.end(LEAD, "all-back", start - 49_000)  # both in the lookback: not judged
    log.start(LEAD, "back-overdue", start - 40_000)  # overdue in the lookback: not judged
    first = log.start(LEAD, "dup", start - 30_000)
    log.end(LEAD, "dup", start - 29_000)
    log.start(LEAD, "back-to-range", start - 2_000)
    log.add(LEAD.start_topic, start + 10, first[4])  # a late duplicate of a decided start
    log.end(LEAD, "back-to-range", start + 1_000)  # completion in range: judged
    result = replay(log, start, start + 60_000, lookback_ms=60_000)
    assert set(result.measurements) == {f"{LEAD.name}:back-to-range"}
    assert result.breaches == {}
    assert result.pending[LEAD.name] == 0
    # without the lookback the duplicate looks like a new start: a false overdue, and the
    # completion in the range finds no start
    blind = replay(log, start, start + 60_000, lookback_ms=0)
    assert kinds(blind) == {f"{LEAD.name}:dup": ("overdue", "open")}
    assert blind.measurements == {}


def test_quarantine_is_counted_for_records_in_the_range() -> None:
    log = Log()
    log.add(LEAD.start_topic, T0 - 1_000, b"{not json")  # lookback
    log.add(LEAD.start_topic, T0 + 1, b"[1, 2]")
    log.add(LEAD.start_topic, T0 + 2, None)
    result = replay(log, T0, T0 + 10_000)
    assert result.quarantined == {LEAD.start_topic: 2}
    assert result.reasons == {"not_object": 1, "not_json": 1}
    assert result.records_read == 3
    assert result.records_in_range == 2


def scenario_log(starts: int = 400) -> tuple[Log, object]:
    sc = scripted(FLOWS, starts, now=T0, prefix="r")
    log = Log()
    for i, (topic, key, value) in enumerate(sc.records):
        log.add(topic, T0 + 1_000 + i // 10, value, partition=zlib.crc32(key) % PARTITIONS)
    return log, sc


def worker_final_state(log: Log, now: int) -> dict[tuple[str, str], dict[str, object] | None]:
    """The scripted records through the worker's own Ingest + Joiner (8 join partitions,
    flow-events messages and ticks), as a caught-up worker reads them: latest per key."""
    ingest = Ingest(Decoder(FLOWS), 8)
    joiner = Joiner(FLOWS, events_topic="e", done_retention_ms=3_600_000, stats_interval_ms=10**9)
    table: dict[bytes, bytes] = {}
    store = type("Store", (), {"rows": lambda self, partition: list(table.items())})()
    offsets = dict.fromkeys(range(8), 0)
    state: dict[tuple[str, str], dict[str, object] | None] = {}
    records = sorted((r for rs in log.records.values() for r in rs), key=lambda r: r[3])
    counts = {t: PARTITIONS for t, _ in log.records}
    nxt = dict.fromkeys(log.records, 0)

    def run(p: int, raw: bytes) -> None:
        step = joiner.on_message(p, offsets[p], raw, store, now)
        offsets[p] += 1
        for k, v in step.writes:
            table.pop(k, None) if v is None else table.__setitem__(k, v)
        for topic, key, value in step.records:
            if topic in ("freshness.measurements", "freshness.breaches"):
                state[(topic, key.decode())] = None if value is None else orjson.loads(value)

    for i in range(0, len(records), 500):
        batch = records[i : i + 500]
        res = ingest.process(batch, now)
        for p, evs in res.batches.items():
            run(p, codec.encode_events(evs))
        ingest.forwarded(res)
        for t, p, o, _, _ in batch:
            nxt[(t, p)] = o + 1
        reports = ingest.reports([(t, p, n, None) for (t, p), n in nxt.items()], now, 200)
        tick = codec.encode_tick(now, reports, counts)
        for p in range(8):
            run(p, tick)
    return state


def test_the_same_verdicts_as_the_workers_pipeline_on_the_scripted_scenario() -> None:
    log, _ = scenario_log()
    now = T0 + 5_000  # every event time of the scenario lies before it
    live = {k: v for k, v in worker_final_state(log, now).items() if v is not None}
    result = replay(log, T0 + 1_000, now)
    replayed = {}
    for line in output_lines(result):
        rec = orjson.loads(line)
        replayed[(rec["topic"], rec["key"])] = rec["value"]
    assert live.keys() == replayed.keys()
    ignored = {"out_of_order", "detected_at"}
    for k, v in live.items():
        assert {f: x for f, x in v.items() if f not in ignored} == {
            f: x for f, x in replayed[k].items() if f not in ignored
        }, k
    assert len(live) > 300


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_fetch_interleaving_gives_byte_identical_output(seed: int) -> None:
    log, _ = scenario_log(200)
    reference = b"".join(output_lines(replay(log, T0 + 1_000, T0 + 5_000)))
    assert b"".join(output_lines(replay(log, T0 + 1_000, T0 + 5_000, seed=seed))) == reference
    assert reference.count(b"\n") > 150


def test_spans_must_cover_every_partition() -> None:
    spans = {(LEAD.start_topic, 1): Span(0, 0, 0)}
    with pytest.raises(ValueError, match=r"0\.\.n-1"):
        ReplayEngine([LEAD], spans, from_ms=T0, to_ms=END)


def test_a_finished_engine_takes_no_more_input() -> None:
    flow: Flow = LEAD
    log = Log(flows=(flow,))
    spans = log.spans(T0, END, 0)
    engine = ReplayEngine([flow], spans, from_ms=T0, to_ms=END, options=ReplayOptions())
    engine.finish()
    with pytest.raises(RuntimeError):
        engine.feed(T0, [])
