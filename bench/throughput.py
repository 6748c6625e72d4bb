"""Worker throughput on the real broker, side by side with three references (DESIGN
section 12).

    .venv/bin/python bench/throughput.py --events 200000          # own embedded broker
    .venv/bin/python bench/throughput.py --events 1000000 --runs 3 --other-src /tmp/base
    .venv/bin/python bench/throughput.py --bootstrap 127.0.0.1:9092 --runs 3
    .venv/bin/python bench/throughput.py --events 100000 --only c --profile /tmp/w.prof

One run preloads ``--events`` input records once (the four default flows in equal shares;
every start has an on-time completion; keys spread over 8 partitions of each of the 7
``funnel.*`` topics) and then measures, interleaved ``a b c k (o) a b c k (o) ...`` on that
same data:

(a) ceiling: a bare aiokafka consumer (``getmany``) over all input partitions with
    ``orjson.loads`` on every value, in this process. Time: from the first ``getmany`` that
    returned records to the moment the last of the N records was decoded.
(b) naive: a plain Faust agent (a ``python bench/throughput.py _naive`` worker subprocess,
    Faust defaults, RocksDB store) that iterates the input topics event by event,
    ``orjson.loads`` each value and writes one table key per event. Time: from the broker
    timestamp (producer CreateTime) of the first record on the table's changelog to that of
    the last; done when the changelog holds N records.
(c) the freshness worker (``python -m streams.cli worker`` subprocess, its default
    settings). Time: from the CreateTime of the first flow-events batch message (the input
    reader sends it right after decoding its first input batch; watermark ticks, sent from
    start-up on, are not counted) to the CreateTime of the last record on
    ``freshness.measurements``; done when the topic holds N/2 measurements AND the worker's
    input group (``<app id>-ingest``) has committed every input partition to its end offset.
    The check: exactly
    N/2 distinct measurement keys, all on time, no breach, no quarantine record; otherwise
    the run fails (a benchmark that drops work is worthless).
(k) Kafka Streams 4.0.2: the Processor API join of ``bench/peers/kstreams/`` (one RocksDB
    key-value store keyed by ``<flow>:<key>``, Jackson, Kafka Streams defaults: at-least-once,
    one stream thread), built on first use (``bench/peers/kstreams_app.py``). One JVM per run
    makes two passes over the same input, each a fresh application id (own group, state
    and changelog) with its own output topic: ``k_cold`` is the first pass of a fresh JVM,
    ``k_warm`` the second, after the first has warmed the JIT up (its figure is not counted
    for ``k_warm``). Time: from the JVM's wall clock at its first input record to the
    CreateTime of its last measurement (forwarded with the wall clock as timestamp); done
    when it has emitted N/2 measurements and ``close()`` has flushed and committed. The
    check: exactly N/2 distinct measurement keys, all on time, every input record read and
    none unreadable; otherwise the run fails.

events/s = N / time. Start-up (Faust boot, group join, table recovery) is not counted;
the commit catch-up time (Faust commits every ``broker_commit_interval``) is reported
separately. The result is the median of ``--runs`` runs per contender and the ratios c/a,
c/b, c/k_cold, c/k_warm (and c/o) of those medians; ``bench/results/throughput.json`` gets
the numbers, the command, its wall time and the machine.
Between (c) runs the worker's shared output topics are deleted and made again, so every run
starts from empty outputs; every (b)/(c) run has its own app id, and so (c) its own
``<app id>-flow-events`` topic, deleted after the run.

``--other-src DIR`` adds the worker of another source tree (e.g. ``git worktree add
/tmp/base <commit>``) as contender ``o``, interleaved with the others (``--only oc`` for just
the two): the effect of a change, measured side by side. Each (c)/(o)/(k) run also reports
the process's CPU time per input event between its first and last output (all threads,
from ``/proc``).

``--c-src DIR`` runs (c) from another tree, e.g. a ``git worktree`` of ``HEAD``: the
working tree is shared, and others' edits in progress would otherwise be what (c) measures
(the result file names the commit and any changed ``streams/`` files of both trees).

``--profile FILE`` runs the worker under cProfile (main thread, in a bench-only launcher:
no hook in product code) and also samples the CPU time of every thread of the worker from
``/proc`` (the aiokafka consumer runs in a thread of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streams import kafka, topics  # noqa: E402  (after the sys.path fix for `python bench/...`)
from streams.core.model import Flow  # noqa: E402
from streams.flows.config import flow_topics, load_flows  # noqa: E402
from streams.kafka import KafkaConnection  # noqa: E402
from streams.process import Child  # noqa: E402
from streams.testing.records import valid_record  # noqa: E402

RESULT = ROOT / "bench" / "results" / "throughput.json"
SCRIPT = Path(__file__).resolve()
PARTITIONS = 8
WORKER_OUTPUTS = (topics.MEASUREMENTS, topics.BREACHES, topics.QUARANTINE, topics.STATS)
"""The output topics every worker run shares (its flow-events topic is named after its app id)."""
LEGACY_FLOW_EVENTS = "freshness.flow-events"
"""The one flow-events topic of workers before it was named after the app id: an
``--other-src`` tree that old shares it, so it is emptied before each of its runs."""


# -- broker ------------------------------------------------------------------------------


@contextlib.contextmanager
def broker(bootstrap: str | None, home: Path) -> Iterator[tuple[str, str]]:
    """``(bootstrap, kafka version)``: the given cluster, or an embedded broker of our own."""
    from streams.broker import jars
    from streams.broker.process import BrokerConfig, EmbeddedBroker, free_port
    from streams.settings import Settings

    settings = Settings()
    if bootstrap is not None:
        yield bootstrap, "external"
        return
    libs = jars.ensure_jars(settings.kafka_dir, settings.kafka_version)
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    config = BrokerConfig(port=port, controller_port=controller, data_dir=home / "kafka", libs=libs)
    embedded = EmbeddedBroker(config)
    try:
        embedded.start(timeout_s=120)
        yield config.bootstrap, settings.kafka_version
    finally:
        embedded.stop()


# -- input -------------------------------------------------------------------------------


def funnel_records(
    flows: Sequence[Flow], n_events: int, now: int, seed: int = 11
) -> list[tuple[str, bytes, bytes]]:
    """``n_events`` input records (n/2 entities, each a start and an on-time completion),
    in event-time order, ``(topic, key, value)``; event times end a few minutes before now."""
    rng = random.Random(seed)
    entities = n_events // 2
    span = entities  # 1 ms between starts
    base = now - span - 5 * 60_000
    out: list[tuple[int, int, str, bytes, bytes]] = []
    for i in range(entities):
        flow = flows[i % len(flows)]
        key = f"k{i:08d}-{rng.randrange(1 << 30):08x}"
        started = base + i
        done = started + rng.randrange(min(flow.target_ms // 2, 3_000))
        for side, at, order in (("start", started, 0), ("end", done, 1)):
            topic = flow.start_topic if side == "start" else flow.end_topic
            payload = {"source": "bench", "n": i}
            rec = valid_record(flow, side, key, f"{key}-{side[0]}", at, payload=payload)
            out.append((at, order, topic, key.encode(), orjson.dumps(rec)))
    out.sort()
    return [(t, k, v) for _, _, t, k, v in out]


async def preload(bootstrap: str, records: list[tuple[str, bytes, bytes]]) -> None:
    p = kafka.new_producer(
        KafkaConnection(bootstrap), linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await p.start()
    try:
        for i in range(0, len(records), 5_000):
            futs = [await p.send(t, v, key=k) for t, k, v in records[i : i + 5_000]]
            await asyncio.gather(*futs)
    finally:
        await p.stop()


async def make_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Create ``names`` with :data:`PARTITIONS` partitions, compacted where the monitor's own
    topic of that name is."""
    known = {s.name: s for s in topics.required_topics(load_flows(None), "bench")}
    specs = [known.get(n, topics.TopicSpec(n)) for n in names]
    await kafka.ensure_topics(KafkaConnection(bootstrap), specs, PARTITIONS, 1)


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete ``names`` (those present) and wait until the cluster no longer lists them."""
    admin = kafka.new_admin(KafkaConnection(bootstrap))
    await admin.start()
    try:
        present = set(await admin.list_topics())
        doomed = [n for n in names if n in present]
        if doomed:
            await admin.delete_topics(doomed)
        deadline = time.monotonic() + 60
        while set(await admin.list_topics()) & set(doomed):
            if time.monotonic() > deadline:
                raise SystemExit(f"topics {doomed} were not deleted in time")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def reset_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete ``names`` (if present) and create them again, empty."""
    await delete_topics(bootstrap, names)
    for attempt in range(50):
        try:
            await make_topics(bootstrap, names)
            return
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.3)


# -- reading topics ----------------------------------------------------------------------


async def _consumer(bootstrap: str, **kw: Any) -> Any:
    c = kafka.new_consumer(
        KafkaConnection(bootstrap),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **kw,
    )
    await c.start()
    return c


async def _tps(c: Any, names: Sequence[str]) -> list[Any]:
    return kafka.partition_list(await kafka.topic_partitions(c, names))


async def end_offsets(bootstrap: str, names: Sequence[str]) -> dict[Any, int]:
    c = await _consumer(bootstrap)
    try:
        tps = await _tps(c, names)
        return dict(await c.end_offsets(tps))
    finally:
        await c.stop()


async def read_all(bootstrap: str, names: Sequence[str]) -> list[Any]:
    """Every record now on ``names`` (up to the end offsets read first)."""
    c = await _consumer(bootstrap)
    try:
        tps = await _tps(c, names)
        ends = await c.end_offsets(tps)
        want = {tp: e for tp, e in ends.items() if e > 0}
        if not want:
            return []
        c.assign(list(want))
        await c.seek_to_beginning(*want)
        out: list[Any] = []
        pos = dict.fromkeys(want, 0)
        while any(pos[tp] < want[tp] for tp in want):
            batches = await c.getmany(timeout_ms=500, max_records=50_000)
            for tp, msgs in batches.items():
                out += msgs
                if msgs:
                    pos[tp] = msgs[-1].offset + 1
        return out
    finally:
        await c.stop()


async def committed(bootstrap: str, group: str, tps: Sequence[Any]) -> dict[Any, int]:
    admin = kafka.new_admin(KafkaConnection(bootstrap))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=list(tps))
        return {tp: (meta.offset if meta is not None else -1) for tp, meta in offsets.items()}
    finally:
        await admin.close()


# -- (a) bare aiokafka -------------------------------------------------------------------


async def run_bare(bootstrap: str, inputs: Sequence[str], n: int) -> dict[str, Any]:
    c = await _consumer(bootstrap, max_poll_records=10_000)
    try:
        tps = await _tps(c, inputs)
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        loads = orjson.loads
        count = 0
        t0 = 0.0
        while count < n:
            batches = await c.getmany(timeout_ms=1_000, max_records=10_000)
            if batches and not t0:
                t0 = time.perf_counter()
            for msgs in batches.values():
                for m in msgs:
                    loads(m.value)
                count += len(msgs)
        elapsed = time.perf_counter() - t0
    finally:
        await c.stop()
    return {"events": count, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed)}


# -- subprocess workers ------------------------------------------------------------------


def worker_child(name: str, args: list[str], env: dict[str, str], log: Path, **kw: Any) -> Child:
    """A benchmark subprocess: a :class:`~streams.process.Child` with a minute to stop."""
    return Child(name, args, log, env, stop_grace_s=60.0, **kw)


def check(child: Child) -> None:
    """Stop the benchmark if ``child`` has exited (a run without its worker is void)."""
    failure = child.failure()
    if failure is not None:
        raise SystemExit(failure)


def thread_cpu(child: Child) -> dict[str, float]:
    """CPU seconds per thread name of the child process (from /proc)."""
    assert child.proc is not None
    pid = child.proc.pid
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
                key = name if name not in out else f"{name}#{tid}"
                out[key] = cpu
    return out


def _env(bootstrap: str, home: Path, app_id: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FRESHNESS_KAFKA_BOOTSTRAP=bootstrap,
        FRESHNESS_HOME=str(home),
        FRESHNESS_APP_ID=app_id,
        FRESHNESS_LOG_LEVEL="warn",
        PYTHONUNBUFFERED="1",
    )
    return env


# -- (b) naive Faust agent ----------------------------------------------------------------


def naive_main() -> None:
    """The (b) worker: one table write per input event (Faust defaults otherwise)."""
    import faust

    env = os.environ
    datadir = Path(env["FRESHNESS_HOME"]) / "naive" / env["FRESHNESS_APP_ID"]
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        env["FRESHNESS_APP_ID"],
        **kafka.faust_app_options(KafkaConnection(env["FRESHNESS_KAFKA_BOOTSTRAP"])),
        store="rocksdb://",
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
    )
    inputs = app.topic(*flow_topics(load_flows(None)), key_serializer="raw", value_serializer="raw")
    table = app.Table("naive", partitions=PARTITIONS, key_type=bytes, value_type=bytes)
    loads = orjson.loads

    @app.agent(inputs, name="naive", concurrency=1)
    async def naive(stream: Any) -> None:
        async for event in stream.events():
            rec = loads(event.value)
            table[rec["event_id"].encode()] = event.value

    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


async def run_naive(bootstrap: str, home: Path, n: int, timeout_s: float) -> dict[str, Any]:
    app_id = f"bench-naive-{uuid.uuid4().hex[:8]}"
    changelog = f"{app_id}-naive-changelog"
    proc = worker_child(
        "(b) naive Faust worker",
        [sys.executable, str(SCRIPT), "_naive"],
        _env(bootstrap, home, app_id),
        home / f"{app_id}.log",
        cwd=ROOT,
    )
    proc.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            check(proc)
            with contextlib.suppress(Exception):
                if sum((await end_offsets(bootstrap, [changelog])).values()) >= n:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"(b) did not write {n} table keys in {timeout_s}s")
            await asyncio.sleep(0.5)
    finally:
        proc.stop()
    recs = await read_all(bootstrap, [changelog])
    first = min(r.timestamp for r in recs)
    last = max(r.timestamp for r in recs)
    secs = (last - first) / 1000
    keys = {r.key for r in recs}
    if len(keys) != n:
        raise SystemExit(f"(b) wrote {len(keys)} distinct keys, expected {n}")
    return {
        "events": n,
        "changelog_records": len(recs),
        "seconds": round(secs, 3),
        "events_per_s": round(n / secs),
    }


# -- (c) the freshness worker --------------------------------------------------------------


@dataclass
class WorkerRun:
    """What was sampled while a (c) worker ran (wall times in seconds)."""

    t_measured: float | None = None
    """When ``freshness.measurements`` first held every expected measurement."""
    t_committed: float | None = None
    """When the input group first had every input partition committed to its end."""
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)
    """(wall time, CPU seconds of all threads), every ~0.3 s."""
    thread_samples: list[dict[str, float]] = field(default_factory=list)


async def run_worker(
    bootstrap: str,
    home: Path,
    n: int,
    inputs: Sequence[str],
    timeout_s: float,
    profile: Path | None = None,
    src: Path | None = None,
) -> dict[str, Any]:
    legacy = [LEGACY_FLOW_EVENTS] if src is not None else []
    await reset_topics(bootstrap, [*WORKER_OUTPUTS, *legacy])
    app_id = f"bench-worker-{uuid.uuid4().hex[:8]}"
    if profile is None:
        args = [sys.executable, "-m", "streams.cli", "worker"]
    else:
        args = [sys.executable, str(SCRIPT), "_profiled_worker", str(profile)]
    env = _env(bootstrap, home, app_id)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    proc = worker_child("(c) worker", args, env, home / f"{app_id}.log", cwd=src or ROOT)
    input_ends = await end_offsets(bootstrap, inputs)
    proc.start()
    try:
        run = await _watch_worker(bootstrap, proc, app_id, n // 2, input_ends, timeout_s)
    finally:
        proc.stop()
    events_topic = topics.flow_events_topic(app_id)
    flow_msgs = await read_all(bootstrap, [events_topic, *legacy])
    await delete_topics(bootstrap, [events_topic])  # one per run: do not pile them up
    batches = [m for m in flow_msgs if m.value and m.value.startswith(b'{"e"')]
    first = min(m.timestamp for m in batches)
    return await _checked_outputs(bootstrap, n, first, len(batches), run)


async def _watch_worker(
    bootstrap: str,
    proc: Child,
    app_id: str,
    expected: int,
    input_ends: dict[Any, int],
    timeout_s: float,
) -> WorkerRun:
    """Sample the worker until it has made ``expected`` measurements and committed every
    input partition to its end (``input_ends``)."""
    input_tps = [tp for tp in input_ends if input_ends[tp] > 0]
    run = WorkerRun()
    deadline = time.monotonic() + timeout_s
    while run.t_measured is None or run.t_committed is None:
        check(proc)
        if time.monotonic() > deadline:
            raise SystemExit(f"(c) not done in {timeout_s}s (see {proc.log})")
        await asyncio.sleep(0.25)
        run.cpu_samples.append((time.time(), sum(thread_cpu(proc).values())))
        if run.t_measured is None:
            with contextlib.suppress(Exception):
                got = sum((await end_offsets(bootstrap, [topics.MEASUREMENTS])).values())
                if got >= expected:
                    run.t_measured = time.time()
                    run.thread_samples.append(thread_cpu(proc))
        if run.t_committed is None:
            with contextlib.suppress(Exception):
                # the worker reads its inputs in the group "<app id>-ingest"
                offs = await committed(bootstrap, f"{app_id}-ingest", input_tps)
                if all(offs.get(tp, -1) >= input_ends[tp] for tp in input_tps):
                    run.t_committed = time.time()
    return run


async def _checked_outputs(
    bootstrap: str, n: int, first: int, batches: int, run: WorkerRun
) -> dict[str, Any]:
    """The (c) result, from the first of ``batches`` flow-events batches (CreateTime
    ``first``) to the last measurement; the run fails unless the output is exactly right."""
    expected = n // 2
    meas = await read_all(bootstrap, [topics.MEASUREMENTS])
    last = max(m.timestamp for m in meas)
    keys = {m.key for m in meas}
    late = sum(1 for m in meas if not orjson.loads(m.value)["on_time"])
    breaches = len(await read_all(bootstrap, [topics.BREACHES]))
    quarantined = len(await read_all(bootstrap, [topics.QUARANTINE]))
    problems = []
    if len(keys) != expected:
        problems.append(f"{len(keys)} distinct measurements, expected {expected}")
    if late or breaches or quarantined:
        problems.append(f"{late} late, {breaches} breach records, {quarantined} quarantined")
    if problems:
        raise SystemExit("(c) wrong output: " + "; ".join(problems))
    secs = (last - first) / 1000
    result: dict[str, Any] = {
        "events": n,
        "measurements": len(meas),
        "distinct_measurements": len(keys),
        "flow_event_batches": batches,
        "seconds": round(secs, 3),
        "events_per_s": round(n / secs),
        "commit_caught_up_after_last_output_s": round(
            max(0.0, (run.t_committed or 0) - last / 1000), 2
        ),
    }
    if run.thread_samples:
        result["thread_cpu_s"] = run.thread_samples[-1]
    busy = _interpolate(run.cpu_samples, last / 1000) - _interpolate(run.cpu_samples, first / 1000)
    # CPU of the worker process (all threads) between the first and the last output, per
    # input event (interpolated from samples taken every ~0.3 s)
    result["cpu_us_per_event"] = round(busy * 1e6 / n, 1)
    return result


def _interpolate(samples: Sequence[tuple[float, float]], t: float) -> float:
    """CPU seconds at wall time ``t`` from (time, cpu) samples, linearly."""
    before = [x for x in samples if x[0] <= t]
    after = [x for x in samples if x[0] >= t]
    if not before:
        return samples[0][1]
    if not after:
        return samples[-1][1]
    (t0, c0), (t1, c1) = before[-1], after[0]
    return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)


def profiled_worker_main(out: str) -> None:
    """Run ``freshness worker`` in this process under cProfile (main thread); dump on exit."""
    from streams.settings import load_settings
    from streams.worker import runner

    prof = cProfile.Profile()

    def dump(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)

    prof.enable()
    try:
        runner.run(load_settings())
    finally:
        dump()


# -- (k) Kafka Streams ------------------------------------------------------------------------

K_PASSES = ("cold", "warm")


async def run_kstreams(
    bootstrap: str, home: Path, n: int, flows: Sequence[Flow], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """One JVM of the Kafka Streams join: a cold pass, then a warm one over the same input;
    ``{"cold": result, "warm": result}``, each checked like (c)'s output."""
    from peers import kstreams_app

    app_id = f"bench-kstreams-{uuid.uuid4().hex[:8]}"
    outputs = [kstreams_app.output_topic(app_id, p) for p in K_PASSES]
    await make_topics(bootstrap, outputs)
    proc = kstreams_app.child(bootstrap, app_id, home, flows, n // 2, K_PASSES)
    samples: list[tuple[float, float]] = []
    proc.start()
    try:
        deadline = time.monotonic() + timeout_s * len(K_PASSES)
        while proc.alive():
            if time.monotonic() > deadline:
                raise SystemExit(f"(k) not done in {timeout_s}s a pass (see {proc.log})")
            samples.append((time.time(), sum(thread_cpu(proc).values())))
            await asyncio.sleep(0.25)
    finally:
        proc.stop()
    assert proc.proc is not None
    if proc.proc.returncode != 0:
        raise SystemExit(f"(k) exited with {proc.proc.returncode}:\n{proc.tail(40)}")
    done = kstreams_app.passes(proc.log)
    results = {p: await _checked_kstreams(bootstrap, n, done[p], samples) for p in K_PASSES}
    internal = [t for p in K_PASSES for t in kstreams_app.internal_topics(app_id, p)]
    await delete_topics(bootstrap, [*outputs, *internal])
    return results


async def _checked_kstreams(
    bootstrap: str, n: int, line: dict[str, Any], samples: Sequence[tuple[float, float]]
) -> dict[str, Any]:
    """A (k) pass, from its first input record (the JVM's wall clock) to the CreateTime of
    its last measurement (stamped with the wall clock when produced); the run fails unless
    the output is exactly right, as for (c)."""
    expected = n // 2
    meas = await read_all(bootstrap, [line["output_topic"]])
    keys = {m.key for m in meas}
    late = sum(1 for m in meas if not orjson.loads(m.value)["on_time"])
    problems = []
    if len(keys) != expected:
        problems.append(f"{len(keys)} distinct measurements, expected {expected}")
    if late or line["unreadable"]:
        problems.append(f"{late} late, {line['unreadable']} unreadable input records")
    if line["records"] != n:
        problems.append(f"read {line['records']} input records, expected {n}")
    if problems:
        raise SystemExit(f"(k) {line['pass']} pass wrong output: " + "; ".join(problems))
    first = int(line["first_record_ms"])
    last = max(m.timestamp for m in meas)
    secs = (last - first) / 1000
    busy = _interpolate(samples, last / 1000) - _interpolate(samples, first / 1000)
    return {
        "events": n,
        "measurements": len(meas),
        "distinct_measurements": len(keys),
        "seconds": round(secs, 3),
        "events_per_s": round(n / secs),
        "close_after_last_output_s": round((int(line["closed_ms"]) - last) / 1000, 2),
        "cpu_us_per_event": round(busy * 1e6 / n, 1),
    }


# -- driver ---------------------------------------------------------------------------------


def machine(kafka_version: str) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_version": kafka_version,
    }


async def bench(args: argparse.Namespace, bootstrap: str, home: Path, kafka: str) -> dict[str, Any]:
    flows = load_flows(None)
    inputs = flow_topics(flows)
    n = args.events - args.events % 2
    await make_topics(bootstrap, [*inputs, *WORKER_OUTPUTS])
    if sum((await end_offsets(bootstrap, inputs)).values()) == 0:
        t = time.perf_counter()
        await preload(bootstrap, funnel_records(flows, n, int(time.time() * 1000)))
        print(f"preloaded {n} events in {time.perf_counter() - t:.1f}s", flush=True)
    else:
        have = sum((await end_offsets(bootstrap, inputs)).values())
        if have != n:
            raise SystemExit(f"the input topics already hold {have} records, not {n}")
    runs: dict[str, list[dict[str, Any]]] = {w: [] for w in CONTENDERS}
    started = time.monotonic()
    result: dict[str, Any] = {}
    for r in range(args.runs):
        for who in args.only:
            for name, res in (await _one_run(args, who, bootstrap, home, n, flows)).items():
                runs[name].append(res)
                print(f"run {r + 1} ({name}): {res}", flush=True)
        result = summarize(args, kafka, n, runs, started, r + 1)
        write_result(args, result)  # after every round: a long run that is cut keeps its rounds
    return result


def summarize(
    args: argparse.Namespace,
    kafka: str,
    n: int,
    runs: dict[str, list[dict[str, Any]]],
    started: float,
    rounds: int,
) -> dict[str, Any]:
    """The result file after ``rounds`` complete rounds of every contender."""
    med = {w: statistics.median(x["events_per_s"] for x in v) for w, v in runs.items() if v}
    return {
        "benchmark": "worker_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:]),
        "rounds_done": f"{rounds} of {args.runs}",
        "wall_time_s": round(time.monotonic() - started),
        "events": n,
        "input": "4 default flows in equal shares; every start completed on time; 7 topics x 8 "
        "partitions; keyed by entity",
        "median_events_per_s": {CONTENDERS[w]: m for w, m in med.items()},
        "ratios": ratios(med),
        "goals": {"c_events_per_s": 50_000, "c_over_b": 15, "c_over_k_warm": 1},
        "runs": {w: v for w, v in runs.items() if v},
        "source": source_of(args.c_src or ROOT),
        "other_src": None if args.other_src is None else source_of(args.other_src),
        "machine": machine(kafka),
    }


def source_of(tree: Path) -> dict[str, Any]:
    """The commit a worker ran from, and the files of ``streams/`` that differed from it
    (the working tree is shared, so (c) may run edits not yet committed)."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=tree, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "streams").splitlines()
    return {"path": str(tree), "commit": git("rev-parse", "--short", "HEAD"), "dirty": changed}


CONTENDERS = {
    "a": "a_bare_aiokafka",
    "b": "b_naive_faust_table",
    "c": "c_freshness_worker",
    "k_cold": "k_kafka_streams_cold_jvm",
    "k_warm": "k_kafka_streams_warm_jvm",
    "o": "o_worker_of_other_src",
}
"""Result names by contender (``k`` runs once per run and gives both ``k_cold`` and
``k_warm``)."""


async def _one_run(
    args: argparse.Namespace, who: str, bootstrap: str, home: Path, n: int, flows: Sequence[Flow]
) -> dict[str, dict[str, Any]]:
    """One run of contender ``who``: its result(s) by name in :data:`CONTENDERS`."""
    inputs = flow_topics(flows)
    if who == "a":
        return {"a": await run_bare(bootstrap, inputs, n)}
    if who == "b":
        return {"b": await run_naive(bootstrap, home, n, args.timeout)}
    if who == "c":
        src = args.c_src
        return {"c": await run_worker(bootstrap, home, n, inputs, args.timeout, args.profile, src)}
    if who == "k":
        res = await run_kstreams(bootstrap, home, n, flows, args.timeout)
        return {f"k_{p}": r for p, r in res.items()}
    # "o": the worker of another source tree (--other-src)
    return {"o": await run_worker(bootstrap, home, n, inputs, args.timeout, src=args.other_src)}


def ratios(med: dict[str, float]) -> dict[str, float]:
    """c/x of the medians for every other contender x that ran."""
    digits = {"a": 4}
    return {
        f"c_over_{'other_src' if w == 'o' else w}": round(med["c"] / m, digits.get(w, 3))
        for w, m in med.items()
        if w != "c" and "c" in med
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_naive"]:
        naive_main()
        return 0
    if argv[:1] == ["_profiled_worker"]:
        profiled_worker_main(argv[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--bootstrap", default=None, help="use this cluster instead of our own")
    p.add_argument(
        "--only",
        default="abck",
        help="which contenders, e.g. 'ac'; 'k' = Kafka Streams, 'o' = the --other-src worker",
    )
    p.add_argument(
        "--other-src",
        type=Path,
        default=None,
        help="a source tree (e.g. a git worktree of an older commit) whose worker runs as 'o'",
    )
    p.add_argument(
        "--c-src",
        type=Path,
        default=None,
        help="run (c) from this tree (e.g. a git worktree of HEAD: the shared working tree "
        "may hold others' edits in progress) instead of this one",
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="per run, seconds (600 + events/1000)"
    )
    p.add_argument("--profile", type=Path, default=None, help="cProfile the worker into FILE")
    p.add_argument(
        "--no-write",
        action="store_true",
        help="do not write the result file (only a run of all of a, b, c and k writes it)",
    )
    args = p.parse_args(argv)
    if args.other_src is not None and "o" not in args.only:
        args.only += "o"
    if "o" in args.only and args.other_src is None:
        p.error("contender o needs --other-src DIR")
    if args.timeout is None:
        args.timeout = 600.0 + args.events / 1_000  # (b) makes ~2,000 to 3,500 events/s here
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        home = Path(tmp)
        with broker(args.bootstrap, home) as (bootstrap, kafka):
            result = asyncio.run(bench(args, bootstrap, home, kafka))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


def write_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """``bench/results/throughput.json``, for a run of every one of a, b, c and k."""
    if not args.no_write and args.profile is None and set("abck") <= set(args.only):
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    sys.exit(main())
