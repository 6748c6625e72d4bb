"""streams.process.Child: the one process-group runner (up, the test harness, the benchmarks)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from streams.process import Child


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (a container's init may be slow to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _wait_for_line(log: Path) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if text.strip():
            return text.strip().splitlines()[0]
        time.sleep(0.02)
    raise AssertionError(f"nothing written to {log}")


def test_stop_ends_the_whole_group_and_the_log_has_the_output(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    script = (
        "import subprocess, sys, time; g = subprocess.Popen(['sleep', '60']); "
        "print(g.pid, flush=True); time.sleep(60)"
    )
    child = Child("sleeper", [sys.executable, "-c", script], log, dict(os.environ))
    child.start()
    grandchild = int(_wait_for_line(log))
    assert child.alive()
    assert child.failure() is None
    child.stop()
    assert not child.alive()
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(grandchild), "the grandchild outlived the group"
    child.stop()  # stopping again does nothing


def test_a_child_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    child = Child("stubborn", [sys.executable, "-c", script], log, {}, stop_grace_s=0.2)
    child.start()
    _wait_for_line(log)
    started = time.monotonic()
    child.stop()
    assert not child.alive()
    assert time.monotonic() - started < 5


def test_failure_names_the_exit_code_and_the_log_tail(tmp_path: Path) -> None:
    script = "import sys; print('line 1', flush=True); print('boom', file=sys.stderr); sys.exit(3)"
    child = Child("broken", [sys.executable, "-c", script], tmp_path / "b.log", {}, cwd=tmp_path)
    assert child.failure() is None
    assert child.tail() == ""
    child.start()
    assert child.proc is not None
    child.proc.wait(10)
    assert child.failure() == "broken exited with 3:\nline 1\nboom"
