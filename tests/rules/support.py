"""promtool for the rule and dashboard tests: the binary ``make promtool`` builds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_VERSION = "3.16.0"
"""Must match ``PROMETHEUS_VERSION`` in the Makefile."""


def promtool_path() -> Path:
    """The built promtool; fails the test (never skips) when it is missing."""
    path = ROOT / ".tools" / f"promtool-{PROMETHEUS_VERSION}" / "promtool"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make promtool` (needs Go)", pytrace=False)
    return path


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool args...``, its output captured as text."""
    return subprocess.run(
        [str(promtool_path()), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
