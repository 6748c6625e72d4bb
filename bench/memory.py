"""Memory per pending entity in a real worker, and the API read model's memory per record
(DESIGN section 12: at most 200 bytes per pending entity, by RSS growth over 1,000,000).

    .venv/bin/python bench/memory.py --pending 1000000                 # worker + read model
    .venv/bin/python bench/memory.py --pending 1000000 --breakdown     # + where the bytes go
    .venv/bin/python bench/memory.py --pending 100000 --only worker --write-buffer-mb 4

**Worker.** A ``python -m streams.cli worker`` subprocess (its default settings, the
packaged flows, a real broker, real RocksDB) is started on empty topics and waited for
until every join partition has published its stats gauge. Its ``VmRSS`` (``/proc/<pid>/
status``) is sampled while it idles (the median of 10 samples over 5 s): *before*. Then
``--pending`` starts of ``approval_to_notification`` are written (starts only, no
completion; keys and event ids of 24 to 36 characters, like ``appr_6f1c…``; event times
200 s ahead of the wall clock so that no deadline falls inside the run, which the
monitor accepts since its future-skew guard allows 5 min). The worker is done when its
input group (``<app id>-ingest``) has committed every input partition to its end offset
*and* the latest gauges of the eight join partitions add up to ``--pending`` pending
entities; RSS is sampled the same way again: *after*. ``(after - before) / pending`` is
the figure. The run fails if any breach or quarantine record appears (the load must be
pending entities, nothing else).

``--breakdown`` runs the same worker through a bench-only launcher
(``python bench/memory.py _introspected_worker DIR``: the same ``runner.run``, plus a
Faust timer that, when asked through a file, walks the join state and reads RocksDB's own
memory properties; nothing in product code). It reports, per pending entity, the bytes of
every Python object the join core holds for it (each object counted once, by identity,
rounded up to pymalloc's 16-byte size classes) and RocksDB's memtables, block cache and
table readers. The walk is exact for what it counts; the rest of the RSS growth is the
allocator's slack and whatever else grew.

``--write-buffer-mb`` (with the launcher) lowers Faust's RocksDB ``write_buffer_size``
(64 MiB per partition by default) for the run, to show what the memtables cost.

**Read model.** An in-process :class:`api.readmodel.ReadModel` (in a fresh child process
per figure) is fed ``--readmodel`` records through ``apply_raw`` as the API's consumer
does: open ``overdue`` breaches (each its own entity), or measurements (each its own
timeline entity; ``entity_capacity`` set to fit them). Bytes per record by RSS growth
and, in a second child, by tracemalloc (Python heap only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import throughput as tp  # noqa: E402  (after the sys.path fix for `python bench/...`)

from streams import topics  # noqa: E402
from streams.core.model import Flow  # noqa: E402
from streams.flows.config import flow_topics, load_flows  # noqa: E402
from streams.process import Child  # noqa: E402
from streams.stats import records as stats  # noqa: E402
from streams.testing.records import valid_record  # noqa: E402

RESULT = ROOT / "bench" / "results" / "memory.json"
SCRIPT = Path(__file__).resolve()
BULK_FLOW = "approval_to_notification"
"""The flow of the pending load: its 5 min target keeps every deadline outside the run."""
AHEAD_MS = 200_000
"""Event times of the load lie this far ahead of the wall clock at preload (< the 5 min
future-skew guard), so a run of up to 8 minutes sees no deadline pass."""
PAGE = 16
"""pymalloc's size-class granularity on 64-bit CPython 3.11."""


# -- the pending load ---------------------------------------------------------------------


def realistic_id(rng: random.Random, prefix: str) -> str:
    """An identifier of 24 to 36 characters, ``prefix`` and lower-case hex."""
    length = rng.randint(24, 36)
    return (prefix + f"{rng.getrandbits(160):040x}")[:length]


def pending_starts(
    flow: Flow, n: int, base_ms: int, seed: int = 7, prefix: str = "appr_"
) -> list[tuple[str, bytes, bytes]]:
    """``n`` start records of ``flow`` (topic, key, value), event times from ``base_ms``
    (10,000 starts per ms, in order), each its own entity."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = realistic_id(rng, prefix)
        rec = valid_record(flow, "start", key, realistic_id(rng, "evt_"), base_ms + i // 10_000)
        out.append((flow.start_topic, key.encode(), orjson.dumps(rec)))
    return out


def flow_named(name: str) -> Flow:
    return next(f for f in load_flows(None) if f.name == name)


# -- reading the worker -------------------------------------------------------------------


def rss_kib(pid: int) -> dict[str, int]:
    """``VmRSS``, ``RssAnon`` and ``RssFile`` of ``pid`` in KiB (from /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            out[name] = int(rest.split()[0])
    return out


async def rss_median(pid: int, samples: int = 10, every_s: float = 0.5) -> dict[str, int]:
    """The median of ``samples`` readings of :func:`rss_kib`, ``every_s`` apart."""
    seen: list[dict[str, int]] = []
    for _ in range(samples):
        seen.append(rss_kib(pid))
        await asyncio.sleep(every_s)
    return {k: int(statistics.median(s[k] for s in seen)) for k in seen[0]}


async def latest_gauges(bootstrap: str) -> dict[tuple[str, int], stats.GaugeRecord]:
    """The newest gauge of every (flow, join partition) on ``freshness.stats``."""
    out: dict[tuple[str, int], stats.GaugeRecord] = {}
    for m in await tp.read_all(bootstrap, [topics.STATS]):
        if m.value is None:
            continue
        rec = stats.decode(m.value)
        if isinstance(rec, stats.GaugeRecord):
            old = out.get((rec.flow, rec.partition))
            if old is None or rec.updated_at >= old.updated_at:
                out[(rec.flow, rec.partition)] = rec
    return out


async def pending_total(bootstrap: str, flow: str) -> tuple[int, int]:
    """(pending entities of ``flow`` over its latest gauges, join partitions reporting)."""
    gauges = [g for (f, _), g in (await latest_gauges(bootstrap)).items() if f == flow]
    return sum(g.pending for g in gauges), len(gauges)


async def wait_ready(bootstrap: str, child: Child, timeout_s: float) -> None:
    """Until every join partition has published a gauge (the join agent runs)."""
    deadline = time.monotonic() + timeout_s
    while (await pending_total(bootstrap, BULK_FLOW))[1] < tp.PARTITIONS:
        tp.check(child)
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker published no gauges in {timeout_s}s ({child.log})")
        await asyncio.sleep(1.0)


async def wait_pending(
    bootstrap: str,
    child: Child,
    app_id: str,
    n: int,
    ends: dict[Any, int],
    timeout_s: float,
    flow: str = BULK_FLOW,
) -> float:
    """Until the input group committed ``ends`` and the gauges say ``n`` pending entities
    of ``flow``; returns the seconds it took."""
    t0 = time.monotonic()
    want = [p for p, e in ends.items() if e > 0]
    while True:
        tp.check(child)
        offs = await tp.committed(bootstrap, f"{app_id}-ingest", want)
        if all(offs.get(p, -1) >= ends[p] for p in want):
            got, _ = await pending_total(bootstrap, flow)
            if got == n:
                return time.monotonic() - t0
            if got > n:
                raise SystemExit(f"the gauges say {got} pending, more than the {n} written")
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"the worker did not take {n} pending starts in {timeout_s}s")
        await asyncio.sleep(1.0)


async def no_other_outputs(bootstrap: str) -> None:
    """The load must stay pending: no breach, no quarantine record."""
    counts = {
        t: len(await tp.read_all(bootstrap, [t])) for t in (topics.BREACHES, topics.QUARANTINE)
    }
    if any(counts.values()):
        raise SystemExit(f"the pending load produced other outputs: {counts}")


# -- the worker run -----------------------------------------------------------------------


@dataclass
class WorkerOptions:
    pending: int
    breakdown: bool
    write_buffer_mb: int | None
    timeout_s: float


def worker_argv(opts: WorkerOptions, probe_dir: Path) -> list[str]:
    if opts.breakdown or opts.write_buffer_mb is not None:
        return [sys.executable, str(SCRIPT), "_introspected_worker", str(probe_dir)]
    return [sys.executable, "-m", "streams.cli", "worker"]


def worker_env(bootstrap: str, home: Path, app_id: str, opts: WorkerOptions) -> dict[str, str]:
    env = tp._env(bootstrap, home, app_id)
    if opts.write_buffer_mb is not None:
        env["BENCH_ROCKSDB_WRITE_BUFFER"] = str(opts.write_buffer_mb * 1024 * 1024)
    return env


async def run_worker_memory(bootstrap: str, home: Path, opts: WorkerOptions) -> dict[str, Any]:
    flows = load_flows(None)
    inputs = flow_topics(flows)
    await tp.reset_topics(bootstrap, [*inputs, *tp.WORKER_OUTPUTS])
    app_id = f"bench-memory-{uuid.uuid4().hex[:8]}"
    probe_dir = home / f"{app_id}-probe"
    probe_dir.mkdir(parents=True)
    child = tp.worker_child(
        "memory worker",
        worker_argv(opts, probe_dir),
        worker_env(bootstrap, home, app_id, opts),
        home / f"{app_id}.log",
        cwd=ROOT,
    )
    child.start()
    try:
        return await _measure(bootstrap, child, app_id, inputs, probe_dir, opts)
    finally:
        child.stop()


async def _measure(
    bootstrap: str,
    child: Child,
    app_id: str,
    inputs: Sequence[str],
    probe_dir: Path,
    opts: WorkerOptions,
) -> dict[str, Any]:
    assert child.proc is not None
    pid = child.proc.pid
    await wait_ready(bootstrap, child, 180)
    await asyncio.sleep(3)
    before = await rss_median(pid)
    idle_probe = await probe(probe_dir, child) if opts.breakdown else None
    t = time.perf_counter()
    load = pending_starts(flow_named(BULK_FLOW), opts.pending, int(time.time() * 1000) + AHEAD_MS)
    await tp.preload(bootstrap, load)
    del load
    print(f"preloaded {opts.pending} starts in {time.perf_counter() - t:.1f}s", flush=True)
    ends = await tp.end_offsets(bootstrap, inputs)
    took = await wait_pending(bootstrap, child, app_id, opts.pending, ends, opts.timeout_s)
    await asyncio.sleep(5)
    after = await rss_median(pid)
    loaded_probe = await probe(probe_dir, child) if opts.breakdown else None
    await no_other_outputs(bootstrap)
    growth = {k: (after[k] - before[k]) * 1024 for k in after}
    result: dict[str, Any] = {
        "pending": opts.pending,
        "processed_in_s": round(took, 1),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "bytes_per_pending": {k: round(v / opts.pending, 1) for k, v in growth.items()},
        "rocksdb_write_buffer_mb": opts.write_buffer_mb or 64,
    }
    if idle_probe is not None and loaded_probe is not None:
        result["breakdown"] = breakdown_table(idle_probe, loaded_probe, opts.pending)
    return result


async def probe(probe_dir: Path, child: Child, timeout_s: float = 300) -> dict[str, Any]:
    """Ask the introspected worker for its walk (see :func:`introspect`) and wait for it."""
    out = probe_dir / "probe.json"
    out.unlink(missing_ok=True)
    (probe_dir / "trigger").write_text("go")
    deadline = time.monotonic() + timeout_s
    while not out.exists():
        tp.check(child)
        if time.monotonic() > deadline:
            raise SystemExit("the introspected worker did not answer the probe")
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.2)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def breakdown_table(idle: dict[str, Any], loaded: dict[str, Any], n: int) -> dict[str, Any]:
    """Bytes per pending entity, per category: loaded minus idle, divided by ``n``."""
    rows = {}
    for name, value in loaded["python"].items():
        rows[name] = round((value - idle["python"].get(name, 0)) / n, 1)
    for name, value in loaded["rocksdb"].items():
        rows[f"rocksdb {name}"] = round((value - idle["rocksdb"].get(name, 0)) / n, 1)
    return {
        "bytes_per_pending": rows,
        "python_objects_total": round(
            sum(v for k, v in rows.items() if not k.startswith("rocksdb")), 1
        ),
        "rocksdb_total": round(sum(v for k, v in rows.items() if k.startswith("rocksdb")), 1),
        "walk_seconds": loaded["walk_seconds"],
    }


# -- the introspected worker (bench-only launcher) ------------------------------------------


def introspected_worker_main(probe_dir: str) -> None:
    """``freshness worker`` in this process, with a timer answering :func:`probe`."""
    from streams.settings import load_settings
    from streams.worker import app as worker_app
    from streams.worker import runner

    size = os.environ.get("BENCH_ROCKSDB_WRITE_BUFFER")
    if size:
        import faust.stores.rocksdb as frocks

        frocks.RocksDBOptions.write_buffer_size = int(size)
    build = worker_app.build_worker

    def build_and_watch(*args: Any, **kwargs: Any) -> Any:
        worker = build(*args, **kwargs)
        trigger, out = Path(probe_dir) / "trigger", Path(probe_dir) / "probe.json"

        async def answer() -> None:
            if trigger.exists():
                trigger.unlink()
                data = introspect(worker)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                tmp.rename(out)

        worker.app.timer(interval=0.5)(answer)
        return worker

    worker_app.build_worker = build_and_watch
    runner.run(load_settings())


def _sz(obj: object, seen: set[int]) -> int:
    """Bytes of ``obj`` rounded up to pymalloc's size class; 0 if already counted."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    n = sys.getsizeof(obj)
    return n if n > 512 else -(-n // PAGE) * PAGE


def introspect(worker: Any) -> dict[str, Any]:
    """Bytes of the join state's Python objects by where they hang, and RocksDB's memory
    properties."""
    t = time.perf_counter()
    gc.collect()
    walker = StateWalker()
    for part in worker.joiner.partitions.values():
        core = part.core
        for name in ("entities", "dirty"):
            walker.walk(getattr(core, name), f"JoinCore.{name}")
        for fs in core.flows.values():
            for name in _attributes(fs):
                if name not in ("flow", "watermark", "pending", "open_breaches"):
                    walker.walk(getattr(fs, name), f"flow state.{name}")
    return {
        "python": walker.sizes,
        "rocksdb": rocksdb_memory(worker.app),
        "walk_seconds": round(time.perf_counter() - t, 2),
    }


class StateWalker:
    """Sizes of every object reachable from the roots it is given, each counted once (by
    identity) under the path of the first place it was found: ``JoinCore.entities key
    tuple``, ``JoinCore.entities value.start.event_id str``... Follows dicts, lists,
    tuples, sets and the slots or ``__dict__`` of objects; whatever the join core's
    representation is, its bytes are found."""

    LEAVES = (str, bytes, int, float, bool, type(None), bytearray)

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.sizes: dict[str, int] = {}

    def walk(self, root: object, path: str) -> None:
        stack = [(root, path)]
        while stack:
            obj, where = stack.pop()
            n = _sz(obj, self.seen)
            if not n:
                continue
            label = f"{where} {type(obj).__name__}"
            self.sizes[label] = self.sizes.get(label, 0) + n
            if not isinstance(obj, self.LEAVES):
                stack.extend(_children(obj, where))


def _children(obj: object, where: str) -> list[tuple[object, str]]:
    if isinstance(obj, dict):
        return [(k, f"{where} key") for k in obj] + [(v, f"{where} value") for v in obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(x, f"{where} item") for x in obj]
    return [(getattr(obj, a), f"{where}.{a}") for a in _attributes(obj) if hasattr(obj, a)]


def _attributes(obj: object) -> list[str]:
    names = [a for c in type(obj).__mro__ for a in getattr(c, "__slots__", ())]
    return names + list(getattr(obj, "__dict__", {}))


ROCKSDB_PROPERTIES = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block cache": "rocksdb.block-cache-usage",
    "table readers (index, filters)": "rocksdb.estimate-table-readers-mem",
}


def rocksdb_memory(app: Any) -> dict[str, int]:
    """RocksDB's own memory figures, summed over the open partition databases."""
    from streams.worker.app import TABLE_NAME

    out = dict.fromkeys(ROCKSDB_PROPERTIES, 0)
    store = app.tables[TABLE_NAME].data
    for db in store._dbs.values():
        for name, prop in ROCKSDB_PROPERTIES.items():
            with contextlib.suppress(Exception):
                out[name] += int(db.property_int_value(prop) or 0)
    return out


# -- the API read model ------------------------------------------------------------------------


def readmodel_records(kind: str, n: int, seed: int = 5) -> list[tuple[str, bytes, bytes]]:
    """``n`` output records as the worker writes them: open overdue breaches or measurements."""
    from streams.core.model import Breach, Measurement, Source
    from streams.pipeline import codec

    rng = random.Random(seed)
    flow = flow_named("lead_to_posthog")
    now = int(time.time() * 1000)
    out = []
    for i in range(n):
        key, sid, eid = (realistic_id(rng, p) for p in ("lead_", "evt_", "evt_"))
        at = now - 3_600_000 + i
        src = Source(flow.start_topic, i % 8, 1_000_000 + i)
        if kind == "breach":
            b = Breach(
                f"{flow.name}:{key}",
                flow.name,
                key,
                "overdue",
                "open",
                at,
                at + flow.target_ms,
                at + flow.target_ms + 150,
                None,
                None,
                flow.target_ms,
                sid,
                src,
                None,
            )
            out.append((topics.BREACHES, *codec.breach_kv(b)))
        else:
            end = Source(flow.end_topic, i % 8, 2_000_000 + i)
            m = Measurement(
                flow.name,
                key,
                sid,
                eid,
                at,
                at + 1_200,
                1_200,
                flow.target_ms,
                True,
                False,
                False,
                src,
                end,
            )
            out.append((topics.MEASUREMENTS, *codec.measurement_kv(m)))
    return out


def readmodel_child_main(kind: str, n: int, traced: bool) -> None:
    """Feed a fresh ReadModel ``n`` records of ``kind``; print bytes per record (JSON)."""
    from api.readmodel import ReadModel

    recs = readmodel_records(kind, n)
    model = ReadModel(load_flows(None), entity_capacity=n)
    gc.collect()
    if traced:
        tracemalloc.start()
    before = rss_kib(os.getpid())["VmRSS"]
    traced_before = tracemalloc.get_traced_memory()[0] if traced else 0
    for topic, key, value in recs:
        model.apply_raw(topic, key, value)
    gc.collect()
    after = rss_kib(os.getpid())["VmRSS"]
    held = len(model.breaches) if kind == "breach" else len(model.entities)
    if held != n:
        raise SystemExit(f"the read model holds {held} of {n} {kind} records")
    out = {"kind": kind, "records": n}
    if traced:
        out["tracemalloc_bytes_per_record"] = round(
            (tracemalloc.get_traced_memory()[0] - traced_before) / n, 1
        )
    else:
        out["rss_bytes_per_record"] = round((after - before) * 1024 / n, 1)
    print(json.dumps(out))


def run_readmodel(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"records": n}
    for kind, label in (("breach", "open_breach"), ("measurement", "timeline_entity")):
        figures: dict[str, Any] = {}
        for traced in (False, True):
            argv = [sys.executable, str(SCRIPT), "_readmodel", kind, str(n), "1" if traced else "0"]
            done = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT)
            figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
        figures.pop("kind")
        figures.pop("records")
        out[label] = figures
    return out


# -- driver -----------------------------------------------------------------------------------


def header(kafka: str) -> dict[str, Any]:
    return {
        "benchmark": "memory",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/memory.py " + " ".join(sys.argv[1:]),
        "machine": tp.machine(kafka),
    }


def run_with_broker(args: argparse.Namespace) -> dict[str, Any]:
    """The worker figure, on ``--bootstrap`` or an embedded broker of our own."""
    opts = WorkerOptions(args.pending, args.breakdown, args.write_buffer_mb, args.timeout)
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp,
        tp.broker(args.bootstrap, Path(tmp)) as (bootstrap, kafka),
    ):
        result = header(kafka)
        result["worker"] = asyncio.run(run_worker_memory(bootstrap, Path(tmp), opts))
    print(json.dumps(result["worker"], indent=2), flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_introspected_worker"]:
        introspected_worker_main(argv[1])
        return 0
    if argv[:1] == ["_readmodel"]:
        readmodel_child_main(argv[1], int(argv[2]), argv[3] == "1")
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pending", type=int, default=1_000_000)
    p.add_argument("--readmodel", type=int, default=100_000, help="records per read-model figure")
    p.add_argument("--only", default="worker,readmodel", help="worker, readmodel or both")
    p.add_argument("--breakdown", action="store_true", help="walk the join state (launcher)")
    p.add_argument("--write-buffer-mb", type=int, default=None, help="RocksDB write buffer")
    p.add_argument("--bootstrap", default=None, help="use this cluster instead of our own")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the load")
    p.add_argument("--out", type=Path, default=RESULT, help="result file")
    p.add_argument("--no-write", action="store_true", help="do not write the result file")
    args = p.parse_args(argv)
    result = header(kafka="none")
    if "worker" in args.only:
        result = run_with_broker(args)
    if "readmodel" in args.only:
        result["readmodel"] = run_readmodel(args.readmodel)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
