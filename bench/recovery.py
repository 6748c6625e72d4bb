"""A worker killed with a million pending entities: how soon it processes again, and that it
raises no false overdue and misses no deadline while it restores (DESIGN section 12:
1,000,000 pending entities restored and processing within 60 s of a restart).

    .venv/bin/python bench/recovery.py --pending 1000000       # writes bench/results/recovery.json
    .venv/bin/python bench/recovery.py --pending 100000 --scenarios lost --no-write

One run: a ``python -m streams.cli worker`` subprocess (default settings, except
``FRESHNESS_LOG_LEVEL=info`` for Faust's recovery lines) takes ``--pending`` starts of
``approval_to_notification`` (the load of ``bench/memory.py``: 24- to 36-character keys and
event ids, deadlines after the run). Then, per scenario, one round:

1. ``--due`` probe starts of ``dlq_first_retry`` (60 s target) are written, their deadlines
   spread from 10 s to 25 s after the moment they are written; the bench waits until the
   worker holds them (its gauges) and then kills it with SIGKILL (``kill -9``).
2. Right after the kill, ``--backlog`` entities of the same flow are written, started 2 s
   ago and completed 1 s ago (the input that arrives while the worker is down: the
   restarted worker must read through it), then half of the probes get their completion
   (event time: the wall clock, before every deadline): these are *on time*; the other
   half get none: these are *due*.
3. ``kept``: the worker restarts on its own state directory (a process restart).
   ``lost``: the state directory is deleted first (a new machine or container: the whole
   table is restored from its changelog topic).
4. The round ends when every on-time probe has its measurement and every due probe its
   ``overdue`` breach.

Figures per round, in seconds from the restart: Faust's changelog restore (its log lines
"Restoring state from changelog topics" to "Done reading from changelog topics", and
"Worker ready"), and the CreateTime of the first output made by new input (the first
measurement of a backlog entity or an on-time probe: written after the kill). Checks (the
run fails otherwise): every due probe has an ``overdue`` breach whose ``detected_at`` is
not before its deadline (missed none, raised none early); no on-time probe or backlog
entity has any breach record, not even a retracted one (no false overdue), and each has an
on-time measurement;
no breach of the pending load; the gauges count the load and the due probes as pending
afterwards. Also reported: how many due deadlines fell between the restart and the first
output (inside the restore), and how late their breaches came.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import memory as mem  # noqa: E402  (after the sys.path fix for `python bench/...`)
import throughput as tp  # noqa: E402

from streams import topics  # noqa: E402
from streams.core.model import Flow  # noqa: E402
from streams.flows.config import flow_topics, load_flows  # noqa: E402
from streams.process import Child  # noqa: E402
from streams.simulate.percentile import percentile  # noqa: E402
from streams.testing.records import valid_record  # noqa: E402

RESULT = ROOT / "bench" / "results" / "recovery.json"
SCRIPT = Path(__file__).resolve()
LOAD_TARGET = "2h"
"""The load's flow gets this target instead of its packaged 5 min (see :func:`bench_flows`)."""
PROBE_FLOW = "dlq_first_retry"
DUE_FROM_MS, DUE_TO_MS = 10_000, 25_000
"""Probe deadlines lie this far after the probes are written."""
LOG_LINES = {
    "restore_started": "Restoring state from changelog topics",
    "restore_done": "Done reading from changelog topics",
    "recovery_complete": "Recovery complete",
    "worker_ready": "Worker ready",
}
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bench_flows(home: Path) -> Path:
    """The packaged flows file with :data:`mem.BULK_FLOW`'s target raised to
    :data:`LOAD_TARGET`: restoring a million entities takes minutes here, and the load's
    deadlines must stay outside the run (the probes are what is judged at a deadline)."""
    text = (ROOT / "streams" / "flows" / "default.yaml").read_text()
    head, sep, tail = text.partition(f"  - name: {mem.BULK_FLOW}\n")
    if not sep or tail.count("    target: 5m\n") < 1:
        raise SystemExit(f"the packaged flows no longer have {mem.BULK_FLOW} with a 5m target")
    path = home / "flows.yaml"
    path.write_text(
        head + sep + tail.replace("    target: 5m\n", f"    target: {LOAD_TARGET}\n", 1)
    )
    return path


# -- the probes -------------------------------------------------------------------------------


@dataclass
class Probe:
    """One probe start: its key, event id and deadline; ``on_time`` ones get a completion."""

    key: str
    event_id: str
    deadline: int
    on_time: bool


def make_probes(round_name: str, n: int, written_at: int, seed: int) -> list[Probe]:
    """``n`` probes, deadlines spread over ``written_at + DUE_FROM_MS .. DUE_TO_MS``,
    alternately on time and due."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        deadline = written_at + DUE_FROM_MS + (DUE_TO_MS - DUE_FROM_MS) * i // max(1, n - 1)
        key = mem.realistic_id(rng, f"{round_name}_")
        out.append(Probe(key, mem.realistic_id(rng, "evt_"), deadline, on_time=i % 2 == 0))
    return out


def start_records(flow: Flow, probes: Sequence[Probe]) -> list[tuple[str, bytes, bytes]]:
    return [(flow.start_topic, p.key.encode(), orjson.dumps(_start(flow, p))) for p in probes]


def _start(flow: Flow, p: Probe) -> dict[str, object]:
    return valid_record(flow, "start", p.key, p.event_id, p.deadline - flow.target_ms)


def completion_records(
    flow: Flow, probes: Sequence[Probe], at: int
) -> list[tuple[str, bytes, bytes]]:
    """Completions at event time ``at`` of the on-time probes."""
    out = []
    for p in probes:
        if p.on_time:
            rec = valid_record(flow, "end", p.key, f"{p.event_id}-done", at)
            out.append((flow.end_topic, p.key.encode(), orjson.dumps(rec)))
    return out


# -- the worker ----------------------------------------------------------------------------


@dataclass
class Deployment:
    """Where the worker of this run lives: its broker, app id and home."""

    bootstrap: str
    home: Path
    app_id: str
    inputs: Sequence[str]
    flows_file: Path

    profile: Path | None = None
    patches: str = ""
    """Comma-separated :data:`PATCHES` for the restarted workers."""
    """Where the restarted workers dump a cProfile of their main thread (throughput.py's
    bench-only launcher), if anywhere."""

    def child(self, name: str, profiled: bool = False) -> Child:
        env = tp._env(self.bootstrap, self.home, self.app_id)
        env["FRESHNESS_LOG_LEVEL"] = "info"
        env["FRESHNESS_FLOWS"] = str(self.flows_file)
        argv = [sys.executable, "-m", "streams.cli", "worker"]
        if profiled and self.profile is not None:
            argv = [sys.executable, str(tp.SCRIPT), "_profiled_worker", f"{self.profile}.{name}"]
        elif profiled and self.patches:
            argv = [sys.executable, str(SCRIPT), "_patched_worker", self.patches]
        return tp.worker_child(name, argv, env, self.home / f"{self.app_id}-{name}.log", cwd=ROOT)

    def changelog(self) -> str:
        from streams.worker.app import TABLE_NAME

        return f"{self.app_id}-{TABLE_NAME}-changelog"

    def state_dir(self) -> Path:
        return self.home / "state" / self.app_id

    async def wait_pending(self, child: Child, flow: str, n: int, timeout_s: float) -> float:
        ends = await tp.end_offsets(self.bootstrap, self.inputs)
        return await mem.wait_pending(self.bootstrap, child, self.app_id, n, ends, timeout_s, flow)


def log_times(log: Path) -> dict[str, float]:
    """Epoch seconds of the first line of each of :data:`LOG_LINES` in the worker's log
    (and ``bulk_restore``: the seconds the ``--patch bulk-restore`` step says it took)."""
    out: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("bulk restore: "):  # "bulk restore: [N] records in S.SSs"
            words = line.split()
            out["bulk_restore"] = float(words[-1].rstrip("s"))
            out["bulk_restored_records"] = float(words[2].strip("[]") or 0)
        m = _STAMP.match(line)
        if m is None:
            continue
        for name, text in LOG_LINES.items():
            if name not in out and text in line:
                out[name] = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return out


# -- one round ----------------------------------------------------------------------------------


@dataclass
class Round:
    name: str
    state: str
    """``kept`` (restart on the same state directory) or ``lost`` (restored from the changelog)."""
    probes: list[Probe]
    backlog: list[Probe] = field(default_factory=list)
    """Entities started and completed on time after the kill, written before the probes'
    completions: the input the restarted worker is behind on."""
    killed_at: float = 0.0
    restarted_at: float = 0.0


async def run_round(
    dep: Deployment, child: Child, rnd: Round, held: int, timeout_s: float
) -> tuple[Child, dict[str, Any]]:
    """Kill ``child`` holding ``held`` earlier due probes plus this round's, restart it as
    the round says, and judge what it outputs; returns the new worker and the figures."""
    flow = mem.flow_named(PROBE_FLOW)
    written = now_ms()
    await tp.preload(dep.bootstrap, start_records(flow, rnd.probes))
    took = await dep.wait_pending(child, PROBE_FLOW, held + len(rnd.probes), DUE_FROM_MS / 1000)
    if now_ms() - written > DUE_FROM_MS - 3_000:
        raise SystemExit(f"the probes took {took:.1f}s to be held: no time left to kill first")
    child.kill()
    rnd.killed_at = time.time()
    await write_backlog(dep.bootstrap, flow, rnd)
    await tp.preload(dep.bootstrap, completion_records(flow, rnd.probes, now_ms()))
    if rnd.state == "lost":
        shutil.rmtree(dep.state_dir())
    new = dep.child(f"restart-{rnd.name}", profiled=True)
    rnd.restarted_at = time.time()
    new.start()
    await wait_outputs(dep.bootstrap, new, rnd, timeout_s)
    return new, await judge(dep, new, rnd, flow)


async def write_backlog(bootstrap: str, flow: Flow, rnd: Round) -> None:
    """Starts, then on-time completions, of :attr:`Round.backlog` (event times 2 s and 1 s
    ago): the completion topic's partitions hold them ahead of the probes' completions, so
    the restarted worker reads through a backlog before it sees those."""
    at = now_ms()
    for p in rnd.backlog:
        p.deadline = at - 2_000 + flow.target_ms
    await tp.preload(bootstrap, start_records(flow, rnd.backlog))
    await tp.preload(bootstrap, completion_records(flow, rnd.backlog, at - 1_000))


async def wait_outputs(bootstrap: str, child: Child, rnd: Round, timeout_s: float) -> None:
    """Until every on-time probe has a measurement and every due probe a breach."""
    want_m = {p.key for p in [*rnd.probes, *rnd.backlog] if p.on_time}
    want_b = {p.key for p in rnd.probes if not p.on_time}
    deadline = time.monotonic() + timeout_s
    while True:
        tp.check(child)
        got_m = {_entity(m.key) for m in await tp.read_all(bootstrap, [topics.MEASUREMENTS])}
        got_b = {_entity(m.key) for m in await tp.read_all(bootstrap, [topics.BREACHES])}
        if want_m <= got_m and want_b <= got_b:
            return
        if time.monotonic() > deadline:
            raise SystemExit(
                f"round {rnd.name}: {len(want_m - got_m)} measurements and "
                f"{len(want_b - got_b)} breaches missing after {timeout_s}s ({child.log})"
            )
        await asyncio.sleep(0.5)


def _entity(key: bytes | None) -> str:
    """The entity key of a ``<flow>:<key>`` record key."""
    return (key or b"").decode().partition(":")[2]


async def judge(dep: Deployment, child: Child, rnd: Round, flow: Flow) -> dict[str, Any]:
    """The round's figures; fails the run on any false or missed overdue."""
    meas = await tp.read_all(dep.bootstrap, [topics.MEASUREMENTS])
    breaches = await tp.read_all(dep.bootstrap, [topics.BREACHES])
    judged = [*rnd.probes, *rnd.backlog]
    by_key = {p.key: p for p in judged}
    ok_meas = [m for m in meas if (p := by_key.get(_entity(m.key))) is not None and p.on_time]
    problems = check_breaches(judged, breaches)
    late = [m for m in ok_meas if not orjson.loads(m.value)["on_time"]]
    if late:
        problems.append(f"{len(late)} on-time probes or backlog entities measured late")
    if problems:
        raise SystemExit(f"round {rnd.name}: " + "; ".join(problems))
    first_output = min(m.timestamp for m in ok_meas) / 1000
    out = {
        "state": rnd.state,
        "probes": len(rnd.probes),
        "backlog_entities": len(rnd.backlog),
        "changelog_records": sum((await tp.end_offsets(dep.bootstrap, [dep.changelog()])).values()),
        **timeline(rnd, log_times(child.log), first_output),
        **detection(rnd, breaches, first_output),
    }
    if rnd.state == "lost" and out.get("changelog_restore_s"):
        out["restored_records_per_s"] = round(out["changelog_records"] / out["changelog_restore_s"])
    return out


def check_breaches(probes: Sequence[Probe], breaches: Sequence[Any]) -> list[str]:
    """What is wrong with the breach records: a breach of an on-time probe or of the pending
    load, a due probe without an overdue, an overdue detected before its deadline."""
    by_key = {p.key: p for p in probes}
    problems = []
    latest: dict[str, dict[str, Any]] = {}
    false = 0
    for m in breaches:
        flow, _, key = (m.key or b"").decode().partition(":")
        if flow == mem.BULK_FLOW:
            problems.append(f"a breach of the pending load: {key}")
            continue
        p = by_key.get(key)
        if p is None:
            continue
        if p.on_time:
            false += 1
        elif m.value is not None:
            latest[key] = orjson.loads(m.value)
    if false:
        problems.append(f"{false} breach records of on-time entities (false overdue)")
    due = [p for p in probes if not p.on_time]
    missing = [p.key for p in due if latest.get(p.key, {}).get("kind") != "overdue"]
    early = [p.key for p in due if p.key in latest and latest[p.key]["detected_at"] < p.deadline]
    if missing:
        problems.append(f"{len(missing)} due probes without an overdue breach")
    if early:
        problems.append(f"{len(early)} overdue breaches detected before their deadline")
    return problems


def timeline(rnd: Round, logged: dict[str, float], first_output: float) -> dict[str, Any]:
    """Seconds from the restart to each log line and to the first output of new input."""
    t0 = rnd.restarted_at
    out: dict[str, Any] = {"killed_to_restart_s": round(t0 - rnd.killed_at, 2)}
    if "bulk_restore" in logged:
        out["bulk_restore_s"] = logged["bulk_restore"]
        out["bulk_restored_records"] = int(logged["bulk_restored_records"])
    for name in LOG_LINES:
        if name in logged:
            out[f"{name}_s"] = round(logged[name] - t0, 2)
    if "restore_started" in logged and "restore_done" in logged:
        out["changelog_restore_s"] = round(logged["restore_done"] - logged["restore_started"], 2)
    out["first_output_of_new_input_s"] = round(first_output - t0, 2)
    return out


def detection(rnd: Round, breaches: Sequence[Any], first_output: float) -> dict[str, Any]:
    """How the due probes' deadlines fell against the restore, and how late their first
    breach records were (CreateTime minus deadline)."""
    due = {p.key: p for p in rnd.probes if not p.on_time}
    first: dict[str, int] = {}
    for m in breaches:
        key = _entity(m.key)
        if key in due and m.value is not None:
            first[key] = min(m.timestamp, first.get(key, m.timestamp))
    delays = [at - due[key].deadline for key, at in first.items()]
    t0_ms, t1_ms = rnd.restarted_at * 1000, first_output * 1000
    inside = sum(1 for p in due.values() if t0_ms <= p.deadline <= t1_ms)
    return {
        "due_probes": len(due),
        "due_deadlines_before_restart": sum(1 for p in due.values() if p.deadline < t0_ms),
        "due_deadlines_during_restore": inside,
        "breach_after_deadline_ms": {
            "p50": percentile(delays, 0.5),
            "p99": percentile(delays, 0.99),
            "max": max(delays),
        },
    }


async def pending_after(
    dep: Deployment, child: Child, load: int, due: int, timeout_s: float
) -> dict[str, int]:
    """Wait until the restarted worker's gauges count the whole load and every due probe
    as pending (nothing lost by the restore)."""
    await dep.wait_pending(child, mem.BULK_FLOW, load, timeout_s)
    await dep.wait_pending(child, PROBE_FLOW, due, timeout_s)
    return {mem.BULK_FLOW: load, PROBE_FLOW: due}


# -- proposed fixes, tried in a bench-only launcher ------------------------------------------

PATCHES = ("rebuild-own-db", "bulk-restore")
"""What ``--patch`` can change in the restarted workers (``_patched_worker``), to measure a
change proposed for files this bench does not own before it is made:

* ``rebuild-own-db``: the join rebuilds a partition from that partition's own RocksDB
  database, raw, instead of ``table.items()`` (every active partition's rows, each through
  Faust's key and value codecs) filtered by prefix: one pass over N rows instead of
  partitions x N decoded ones.
* ``bulk-restore``: before Faust starts, the table's changelog is read with a plain
  aiokafka consumer (``getmany`` in batches) from each partition's persisted offset to its
  end and written to RocksDB in one ``WriteBatch`` per fetched batch, and the persisted
  offset is set; Faust's own recovery then finds nothing left to read.
"""


def patched_worker_main(patches: str) -> None:
    """``freshness worker`` in this process with the named :data:`PATCHES` applied."""
    from streams.settings import load_settings
    from streams.worker import app as worker_app
    from streams.worker import runner

    chosen = set(patches.split(","))
    if "rebuild-own-db" in chosen:
        _patch_rebuild_own_db()
    if "bulk-restore" in chosen:
        build = worker_app.build_worker

        def build_and_restore(settings: Any, *args: Any, **kwargs: Any) -> Any:
            worker = build(settings, *args, **kwargs)
            table = worker.app.tables[worker_app.TABLE_NAME]
            store, topic = table.data, table.changelog_topic.get_topic_name()
            done: list[int] = []
            # a thread of its own, so that its event loop is not the one Faust binds to
            t = time.perf_counter()
            th = threading.Thread(
                target=lambda: done.append(asyncio.run(bulk_restore(settings, store, topic)))
            )
            th.start()
            th.join()
            print(f"bulk restore: {done} records in {time.perf_counter() - t:.2f}s", flush=True)
            return worker

        worker_app.build_worker = build_and_restore
    runner.run(load_settings())


def _patch_rebuild_own_db() -> None:
    from streams.pipeline import join as pjoin

    read_state = pjoin._read_state

    class OwnRows:
        def __init__(self, store: Any, partition: int) -> None:
            self.store, self.partition = store, partition

        def items(self) -> Any:
            skip = self.store.offset_key
            db = self.store._db_for_partition(self.partition)
            return ((k, v) for k, v in db.items() if k != skip)

    def own_rows(partition: int, store: Any) -> Any:
        return read_state(partition, OwnRows(store.table.data, partition))

    pjoin._read_state = own_rows


async def bulk_restore(settings: Any, store: Any, topic: str) -> int:
    """Bring every partition of the RocksDB ``store`` up to the end of its changelog
    ``topic``; returns the records written."""
    import rocksdict
    from faust.types import TP

    from streams import kafka

    c = kafka.new_consumer(
        settings,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    await c.start()
    try:
        parts = kafka.partition_list(await kafka.topic_partitions(c, [topic]))
        ends = await c.end_offsets(parts)
        c.assign(parts)
        todo = {}
        for p in parts:
            done = store.persisted_offset(TP(topic, p.partition))
            start = 0 if done is None else done + 1
            if start < ends[p]:
                c.seek(p, start)
                todo[p] = ends[p]
        n = 0
        while todo:
            for p, msgs in (await c.getmany(*todo, timeout_ms=1000, max_records=50_000)).items():
                batch = rocksdict.WriteBatch(raw_mode=True)
                for m in msgs:
                    if m.value is None:
                        batch.delete(m.key)
                    else:
                        batch.put(m.key, m.value)
                store._db_for_partition(p.partition).write(batch)
                store.set_persisted_offset(TP(topic, p.partition), msgs[-1].offset)
                n += len(msgs)
                if msgs[-1].offset + 1 >= todo[p]:
                    del todo[p]
        return n
    finally:
        await c.stop()


# -- driver -----------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, bootstrap: str, home: Path) -> dict[str, Any]:
    flows_file = bench_flows(home)
    flows = load_flows(flows_file)
    app_id = f"bench-recovery-{uuid.uuid4().hex[:8]}"
    dep = Deployment(
        bootstrap, home, app_id, flow_topics(flows), flows_file, args.profile, args.patch
    )
    load_flow = next(f for f in flows if f.name == mem.BULK_FLOW)
    await tp.reset_topics(bootstrap, [*dep.inputs, *tp.WORKER_OUTPUTS])
    child = dep.child("first")
    child.start()
    rounds: list[dict[str, Any]] = []
    try:
        await mem.wait_ready(bootstrap, child, 180)
        base = now_ms() + mem.AHEAD_MS
        await tp.preload(bootstrap, mem.pending_starts(load_flow, args.pending, base))
        took = await dep.wait_pending(child, mem.BULK_FLOW, args.pending, args.timeout)
        print(f"worker holds {args.pending} pending after {took:.1f}s", flush=True)
        held = 0
        for i, state in enumerate(args.scenarios.split(",")):
            name = f"r{i}{state}"
            backlog = make_probes(f"{name}bk", args.backlog, 0, 100 + i)
            for b in backlog:
                b.on_time = True
            rnd = Round(name, state, make_probes(name, args.due, now_ms(), i), backlog)
            child, res = await run_round(dep, child, rnd, held, args.timeout)
            held += sum(1 for p in rnd.probes if not p.on_time)
            res["pending_after"] = await pending_after(dep, child, args.pending, held, args.timeout)
            rounds.append(res)
            print(f"round {rnd.name}: {res}", flush=True)
        if now_ms() > base + load_flow.target_ms:
            raise SystemExit("the run outlasted the load's deadlines: its checks mean nothing")
    finally:
        child.stop()
    return {"pending": args.pending, "rounds": rounds}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_patched_worker"]:
        patched_worker_main(argv[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pending", type=int, default=1_000_000)
    p.add_argument("--due", type=int, default=2_000, help="probe starts per round")
    p.add_argument(
        "--backlog", type=int, default=20_000, help="on-time entities written after each kill"
    )
    p.add_argument("--scenarios", default="kept,lost", help="rounds: kept and/or lost state")
    p.add_argument("--bootstrap", default=None, help="use this cluster instead of our own")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per wait")
    p.add_argument("--profile", type=Path, default=None, help="cProfile restarts to FILE.*")
    p.add_argument("--patch", default="", help=f"restart with proposed fixes: {','.join(PATCHES)}")
    p.add_argument("--no-write", action="store_true", help="do not write the result file")
    args = p.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp,
        tp.broker(args.bootstrap, Path(tmp)) as (bootstrap, kafka),
    ):
        result = {
            "benchmark": "recovery",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python bench/recovery.py " + " ".join(argv),
            "machine": tp.machine(kafka),
            **asyncio.run(bench(args, bootstrap, Path(tmp))),
        }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if not args.no_write and args.profile is None:
        out = RESULT.with_name("recovery_patched.json") if args.patch else RESULT
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
