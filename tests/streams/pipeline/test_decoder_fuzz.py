"""The decoder's coverage-guided fuzz target (``fuzz/decoder.py``), bounded, in ``make test``.

The seed corpus is generated from the schemas and flows (``fuzz/seeds.py``), libFuzzer's
``-seed`` is fixed so a run is repeatable, and ``-timeout`` turns one record that takes
seconds to judge (a stalled partition) into a failure, like a crash. New inputs go to a
temporary directory; a crash leaves its input there and in the test's output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parents[3] / "fuzz"
RUNS = 200_000


def test_the_fuzz_target_survives_a_bounded_run(tmp_path: Path) -> None:
    seeds, found, artifacts = tmp_path / "seeds", tmp_path / "found", tmp_path / "crashes"
    made = subprocess.run(
        [sys.executable, str(FUZZ / "seeds.py"), str(seeds)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert len(list(seeds.iterdir())) > 500
    found.mkdir()
    artifacts.mkdir()
    argv = [sys.executable, str(FUZZ / "decoder.py"), f"-runs={RUNS}", "-seed=1", "-timeout=10"]
    argv += [
        f"-dict={FUZZ / 'json.dict'}",
        f"-artifact_prefix={artifacts}/",
        str(found),
        str(seeds),
    ]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    log = "\n".join(line for line in run.stderr.splitlines() if "Instrumenting" not in line)
    assert run.returncode == 0, log[-6000:]
    assert f"Done {RUNS} runs" in log, log[-3000:]
    assert list(artifacts.iterdir()) == []
