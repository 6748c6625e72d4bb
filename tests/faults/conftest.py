"""The fault suite (marker ``faults``): real broker, traffic flowing, a ground truth.

Every test here is marked ``faults`` (and ``integration``). When every fault test (every
test of every ``test_*.py`` here) was selected, ran and passed, the suite rewrites the figure
table of ``docs/reliability.md`` from what the tests recorded (``tests/faults/figures.py``);
a partial or failed run leaves it alone. A test marked ``xfail`` (a known, open failure)
counts as run: it records its row before its checks, so the table shows what it found.
"""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

import pytest

from tests.faults import figures

SUITE = Path(__file__).parent

_passed: set[str] = set()
_failed: set[str] = set()
_known: set[str] = set()
"""Fault tests marked xfail (a known, open failure) that ran: their rows are the finding."""
_deselected: list[str] = []


def _is_fault(nodeid: str) -> bool:
    return nodeid.startswith("tests/faults/") or "/tests/faults/" in nodeid


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_fault(item.nodeid):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(i.nodeid for i in items if _is_fault(i.nodeid))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _is_fault(report.nodeid):
        return
    if report.when == "call" and hasattr(report, "wasxfail"):
        _passed.add(report.nodeid)
        if report.skipped:  # it failed, as known
            _known.add(report.nodeid)
    elif report.failed:
        _failed.add(report.nodeid)
    elif report.when == "call" and report.passed:
        _passed.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ran = [i.nodeid for i in session.items if _is_fault(i.nodeid)]
    files = {Path(str(i.path)).name for i in session.items if _is_fault(i.nodeid)}
    whole = {p.name for p in SUITE.glob("test_*.py")} <= files
    if not ran or not whole or _deselected or not figures.ROWS:
        return
    if _failed or not set(ran) <= _passed:
        return
    stamp = (
        f"Written by the fault suite on {dt.date.today().isoformat()}"
        f" ({platform.machine()}, Python {platform.python_version()}, {len(ran)} fault tests)."
    )
    if _known:
        names = ", ".join(sorted(n.rsplit("::", 1)[-1] for n in _known))
        stamp += f" Known and open (xfail), its row is what it found: {names}."
    figures.write(figures.ROWS, stamp)
