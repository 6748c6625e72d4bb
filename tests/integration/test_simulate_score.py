"""``freshness simulate`` against a real worker, then ``freshness score``: every precision and
recall is 1.000 with every kind of fault injected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streams.simulate.truth import read_truth

pytestmark = pytest.mark.integration

SIM_SECONDS = 25
FAULTS = {
    "--late": "0.05",
    "--missing": "0.03",
    "--duplicate": "0.05",
    "--out-of-order": "0.05",
    "--skew": "0.05",
    "--malformed": "0.03",
}


def cli(bootstrap: str, home: Path, *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FRESHNESS_KAFKA_BOOTSTRAP=bootstrap, FRESHNESS_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_simulate_then_score_is_perfect(workers: Any, funnel_topics: str, tmp_path: Path) -> None:
    workers()
    truth_path = tmp_path / "truth.jsonl"
    faults = [x for pair in FAULTS.items() for x in pair]
    sim = cli(
        funnel_topics,
        tmp_path,
        "simulate",
        "--rate",
        "60",
        "--duration",
        f"{SIM_SECONDS}s",
        "--seed",
        "42",
        "--truth",
        str(truth_path),
        *faults,
        timeout=SIM_SECONDS + 60,
    )
    assert sim.returncode == 0, sim.stderr
    truth = read_truth(truth_path)
    assert truth.summary is not None
    assert not truth.summary["interrupted"]
    cases = {s.case for s in truth.starts}
    assert cases == {"on_time", "late", "missing", "out_of_order", "skew", "duplicate"}
    assert {s.outcome for s in truth.starts} == {"on_time", "late", "overdue"}
    assert len({m.reason for m in truth.malformed}) >= 4
    assert truth.summary["records_sent"] > SIM_SECONDS * 60 * 0.7

    score = cli(
        funnel_topics, tmp_path, "score", "--truth", str(truth_path), "--wait", "60", timeout=180
    )
    print(score.stdout)
    assert score.returncode == 0, score.stdout + score.stderr
    assert "PASS: every precision and recall is 1.000" in score.stdout
    table = [line.split() for line in score.stdout.splitlines()]
    rows = [r for r in table if len(r) == 7 and r[2].isdigit()]
    assert len(rows) == 4 * 5 + 6, "every flow and kind, every quarantine reason"
    assert all(r[5] in ("1.000", "-") and r[6] in ("1.000", "-") for r in rows)
    assert all(r[5] == r[6] == "1.000" for r in rows if r[0] == "quarantine" and r[2] != "0")
    assert "note:" not in score.stdout, "the monitor caught up before the score was judged"
