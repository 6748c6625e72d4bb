"""Replay throughput on the real broker, side by side with a bare aiokafka loop (DESIGN 12).

    .venv/bin/python bench/replay.py                         # 1,000,000 events, own broker
    .venv/bin/python bench/replay.py --events 200000 --runs 1 --no-write

One run preloads ``--events`` input records once (the four default flows in equal shares,
each entity a start and an on-time completion, keyed by entity over 8 partitions of each
of the 7 ``funnel.*`` topics: ``bench/throughput.py``'s ``funnel_records``) and then
measures, interleaved ``a r a r ...`` on that same data:

(a) ceiling: the bare aiokafka ``getmany`` + ``orjson.loads`` loop of ``bench/throughput.py``
    over every input partition, in this process; timed from the first ``getmany`` that
    returned records to the last record decoded.
(r) the replay: :func:`streams.replay.replay_command.replay`, the function ``freshness
    replay`` runs (group-less consumer, the Kafka-time merge, the worker's Ingest,
    JoinCore and WatermarkBoard), over the whole range, in this process; timed from the
    start of reading (its first fetch request, after the range's offsets were looked up)
    to the verdicts. Checked: exactly N/2 starts, all on time, nothing late, overdue,
    lost, pending or quarantined; otherwise the run fails.

events/s = N / time; the result is the median of ``--runs`` runs of each, and the ratio
r/a, with the CPU time the replay used per event. Then, to say where that time goes, the
same pipeline runs on the first ``--sample`` records already in memory (no Kafka), timed in
CPU: the worker's Ingest alone, and the engine fed as the replay feeds it (Ingest, the join
core, the merge and the rest); the replay's CPU per event minus the engine's is what reading
from Kafka costs. ``bench/results/replay.json`` gets the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from throughput import (  # noqa: E402  (after the sys.path fix for `python bench/...`)
    broker,
    end_offsets,
    funnel_records,
    machine,
    make_topics,
    preload,
    run_bare,
)

from streams import kafka  # noqa: E402
from streams.core.model import Flow  # noqa: E402
from streams.flows.config import flow_topics, load_flows  # noqa: E402
from streams.kafka import KafkaConnection  # noqa: E402
from streams.pipeline.decoder import Decoder  # noqa: E402
from streams.pipeline.ingest import Ingest, InputRecord  # noqa: E402
from streams.replay import console  # noqa: E402
from streams.replay.engine import ReplayEngine, ReplayOptions, ReplayResult, Span  # noqa: E402
from streams.replay.merge import TimeMerge  # noqa: E402
from streams.replay.replay_command import quiet_gc, replay  # noqa: E402
from streams.replay.source import CONSUMER_OPTIONS, Plan, plan_range  # noqa: E402
from streams.replay.summary import summarize  # noqa: E402

RESULT = ROOT / "bench" / "results" / "replay.json"
GOAL = 200_000


async def run_replay(bootstrap: str, flows: Sequence[Flow], n: int, to_ms: int) -> dict[str, Any]:
    consumer = kafka.new_consumer(KafkaConnection(bootstrap), **CONSUMER_OPTIONS)
    await consumer.start()
    try:
        plan = await plan_range(consumer, flow_topics(flows), 1, to_ms, 0)
        cpu, t0 = time.process_time(), time.perf_counter()
        result = await replay(consumer, plan, flows, ReplayOptions(), console.Ui(quiet=True))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu
    finally:
        await consumer.stop()
    check(result, n)
    return {
        "events": result.records_read,
        "seconds": round(elapsed, 3),
        "events_per_s": round(n / elapsed),
        "cpu_us_per_event": round(cpu * 1e6 / n, 2),
    }


def check(result: ReplayResult, n: int) -> None:
    """The run counts only if every start was judged, and judged on time."""
    rows = summarize(result)
    starts = sum(r.starts for r in rows)
    wrong = sum(r.late + r.overdue + r.lost + r.pending + r.quarantined for r in rows)
    if result.records_read != n or starts != n // 2 or wrong or len(result.measurements) != n // 2:
        raise SystemExit(
            f"(r) wrong result: {result.records_read} read, {starts} starts, {wrong} not on time, "
            f"{len(result.measurements)} measurements (expected {n} / {n // 2} / 0 / {n // 2})"
        )


async def sample(bootstrap: str, flows: Sequence[Flow], size: int, to_ms: int) -> dict[str, Any]:
    """The pipeline on ``size`` records held in memory: where the replay's time goes (CPU
    time, under the same garbage-collector settings as the replay)."""
    consumer = kafka.new_consumer(KafkaConnection(bootstrap), **CONSUMER_OPTIONS)
    await consumer.start()
    try:
        plan = await plan_range(consumer, flow_topics(flows), 1, to_ms, 0)
        records = await _fetch(consumer, plan, size)
    finally:
        await consumer.stop()
    spans = {tp: Span(0, 0, s.end) for tp, s in plan.spans.items()}
    by_tp: dict[tuple[str, int], list[InputRecord]] = {tp: [] for tp in spans}
    for r in records:
        by_tp[(r[0], r[1])].append(r)
    with quiet_gc():
        ingest = Ingest(Decoder(flows), 1)
        t0 = time.process_time()
        for i in range(0, len(records), 5_000):
            ingest.process(records[i : i + 5_000], to_ms)
        ingest_s = time.process_time() - t0
    with quiet_gc():
        engine = ReplayEngine(flows, spans, from_ms=1, to_ms=to_ms)
        merge = TimeMerge(spans, ReplayOptions().tick_interval_ms)
        t0 = time.process_time()
        for tp, recs in by_tp.items():
            merge.add(tp, recs)
            merge.close(tp)
        for until, recs in merge.ready():
            engine.feed(until, recs)
        engine.finish()
        engine_s = time.process_time() - t0
    n = len(records)
    return {
        "records": n,
        "ingest_cpu_us_per_record": round(ingest_s * 1e6 / n, 2),
        "engine_cpu_us_per_record": round(engine_s * 1e6 / n, 2),
        "join_and_merge_cpu_us_per_record": round((engine_s - ingest_s) * 1e6 / n, 2),
    }


async def _fetch(consumer: Any, plan: Plan, size: int) -> list[InputRecord]:
    from streams.replay.source import RangeReader

    out: list[InputRecord] = []

    def batch(tp: tuple[str, int], msgs: Sequence[Any]) -> None:
        out.extend((tp[0], tp[1], m.offset, m.timestamp, m.value) for m in msgs)

    per = max(1, size // max(1, len(plan.spans)))
    ranges = {tp: (s.read_from, min(s.end, s.read_from + per)) for tp, s in plan.spans.items()}
    await RangeReader(consumer, ranges).run(batch)
    return out


async def bench(args: argparse.Namespace, bootstrap: str, kafka_version: str) -> dict[str, Any]:
    flows = load_flows(None)
    inputs = flow_topics(flows)
    n = args.events - args.events % 2
    await make_topics(bootstrap, inputs)
    have = sum((await end_offsets(bootstrap, inputs)).values())
    if have == 0:
        t = time.perf_counter()
        await preload(bootstrap, funnel_records(flows, n, int(time.time() * 1000)))
        print(f"preloaded {n} events in {time.perf_counter() - t:.1f}s", flush=True)
    elif have != n:
        raise SystemExit(f"the input topics already hold {have} records, not {n}")
    to_ms = int(time.time() * 1000) + 1
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "r": []}
    for i in range(args.runs):
        for who in "ar":
            if who == "a":
                res = await run_bare(bootstrap, inputs, n)
            else:
                res = await run_replay(bootstrap, flows, n, to_ms)
            runs[who].append(res)
            print(f"run {i + 1} ({who}): {res}", flush=True)
    med = {w: statistics.median(x["events_per_s"] for x in v) for w, v in runs.items()}
    breakdown = await sample(bootstrap, flows, args.sample, to_ms)
    print(f"in memory: {breakdown}", flush=True)
    return {
        "benchmark": "replay_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/replay.py " + " ".join(sys.argv[1:]),
        "events": n,
        "input": "4 default flows in equal shares; every start completed on time; 7 topics x 8 "
        "partitions; keyed by entity (bench/throughput.py funnel_records)",
        "median_events_per_s": {"a_bare_aiokafka": med["a"], "r_replay": med["r"]},
        "ratios": {"r_over_a": round(med["r"] / med["a"], 4)},
        "goal_r_events_per_s": GOAL,
        "goal_met": med["r"] >= GOAL,
        "in_memory_sample": breakdown,
        "runs": runs,
        "machine": machine(kafka_version),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--sample", type=int, default=200_000, help="records of the in-memory part")
    p.add_argument("--bootstrap", default=None, help="use this cluster instead of our own")
    p.add_argument("--no-write", action="store_true", help="do not write the result file")
    args = p.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp,
        broker(args.bootstrap, Path(tmp)) as (bootstrap, kafka_version),
    ):
        result = asyncio.run(bench(args, bootstrap, kafka_version))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
