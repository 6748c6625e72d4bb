"""Simulate + score at a given rate with every fault, against one worker (DESIGN section 12).

    .venv/bin/python bench/simulate_score.py --rate 500 --duration 10m
    .venv/bin/python bench/simulate_score.py --rate 14000 --duration 5m --name 70pct

Starts its own embedded broker (or uses ``--bootstrap``), creates every topic
(``freshness topics create``), starts one ``freshness worker`` with its default settings,
runs ``freshness simulate`` at ``--rate`` records/s for ``--duration`` with every fault the
simulator injects (late, missing, duplicate, out of order, clock skew, malformed), then
``freshness score`` on its truth file. The score (precision and recall per flow and kind,
every breach record ever written checked against the truth) goes to
``bench/results/simulate_score_<name>.txt`` with the commands, the times and the machine;
the exit status is score's (0: every precision and recall is 1.000).

The simulator must keep up with ``--rate`` for the run to mean what it says: the file
records the rate it achieved (records sent / duration) next to the one asked for.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
from throughput import ROOT, _env, broker, check, machine, worker_child

from streams.process import Child
from streams.simulate.truth import read_truth

FAULTS = (
    ("--late", "0.01"),
    ("--missing", "0.005"),
    ("--duplicate", "0.01"),
    ("--out-of-order", "0.01"),
    ("--skew", "0.005"),
    ("--malformed", "0.005"),
)
APP_ID = "bench-simscore"


def freshness(*argv: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *argv]


def duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def wait_ready(log: Path, child: Child, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check(child)
        if log.exists() and "Ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise SystemExit(f"the worker was not ready after {timeout_s:.0f} s (log: {log})")


def run(args: argparse.Namespace, bootstrap: str, home: Path, kafka_version: str) -> int:
    env = {**_env(bootstrap, home, APP_ID), "FRESHNESS_LOG_LEVEL": "info"}  # "Ready" is info
    subprocess.run(freshness("topics", "create"), env=env, check=True, capture_output=True)
    log = home / "worker.log"
    worker = worker_child("worker", freshness("worker"), env, log)
    worker.start()
    try:
        wait_ready(log, worker)
        truth = home / "truth.jsonl"
        sim = [*freshness("simulate", "--rate", str(args.rate), "--duration", args.duration)]
        sim += ["--seed", str(args.seed), "--truth", str(truth)]
        sim += [v for pair in FAULTS for v in pair]
        started = datetime.now(UTC)
        t0 = time.monotonic()
        sim_out = subprocess.run(sim, env=env, capture_output=True, text=True, check=False)
        sim_s = time.monotonic() - t0
        check(worker)
        if sim_out.returncode != 0:
            raise SystemExit(f"simulate failed ({sim_out.returncode}):\n{sim_out.stderr[-3000:]}")
        score = subprocess.run(
            [*freshness("score"), "--truth", str(truth), "--wait", "180"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        check(worker)
        ended = datetime.now(UTC)
    finally:
        worker.stop()
    summary = read_truth(truth).summary or {}
    sent = int(summary.get("records_sent", 0))
    header = [
        f"# freshness simulate + score, {args.duration} at {args.rate} records/s, every fault,"
        " against one worker (default settings); bench/simulate_score.py",
        f"# command: python bench/simulate_score.py {' '.join(sys.argv[1:])}",
        f"# {started.isoformat(timespec='seconds')} to {ended.isoformat(timespec='seconds')},"
        f" machine {orjson.dumps(machine(kafka_version)).decode()}",
        f"#   {' '.join(sim[2:])}",
        f"# achieved rate: {sent} records sent in {sim_s:.0f} s of simulate"
        f" ({sent / duration_s(args.duration):.0f} records/s over the asked duration)",
        f"# simulate summary: {orjson.dumps(summary).decode()}",
        "",
    ]
    text = "\n".join(header) + score.stdout
    print(text)
    if score.returncode != 0:
        print(score.stderr, file=sys.stderr)
    if not args.no_write:
        out = ROOT / "bench" / "results" / f"simulate_score_{args.name}.txt"
        out.write_text(text)
        print(f"wrote {out.relative_to(ROOT)}")
    return score.returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="records/s (500)")
    parser.add_argument("--duration", default="10m", help="e.g. 90s, 10m (10m)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default=None, help="result file suffix (default: <rate>)")
    parser.add_argument("--bootstrap", help="use this cluster instead of an embedded broker")
    parser.add_argument("--no-write", action="store_true", help="do not write the result file")
    args = parser.parse_args(argv)
    args.name = args.name or str(args.rate)
    with tempfile.TemporaryDirectory(prefix="simscore-") as tmp:
        home = Path(tmp)
        with broker(args.bootstrap, home) as (bootstrap, kafka_version):
            return run(args, bootstrap, home, kafka_version)


if __name__ == "__main__":
    sys.exit(main())
