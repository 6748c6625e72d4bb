"""Child processes in their own process groups: the one runner ``freshness up``, the test
harness and the benchmarks start workers, APIs and simulators with.

Guarantees: a started :class:`Child` writes stdout and stderr to its log file (appended)
and reads nothing; :meth:`Child.stop` signals the whole group, so grandchildren stop too,
and returns only once the child is gone (SIGTERM, then SIGKILL after ``stop_grace_s``);
stopping a child that never started or already exited does nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_S = 20.0
"""How long a child may take to stop after SIGTERM, unless it says otherwise."""
KILL_WAIT_S = 10.0
"""How long a SIGKILLed child may take to be reaped."""


@dataclass
class Child:
    """One child process in a process group of its own."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str]
    cwd: Path | None = None
    stop_grace_s: float = STOP_GRACE_S
    """How long :meth:`stop` waits after SIGTERM before it sends SIGKILL."""
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                env=dict(self.env),
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, lines: int = 40) -> str | None:
        """None while the child runs (or before it starts); once it has exited, one message
        with its exit code and the last ``lines`` of its log."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"{self.name} exited with {self.proc.returncode}:\n{self.tail(lines)}"

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` of the log ('' before anything was written)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the group; SIGKILL after ``stop_grace_s``; returns once it is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the group (a crash, as ``kill -9`` does it); returns once it is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait(KILL_WAIT_S)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):  # gone between the poll and the signal
            os.killpg(self.proc.pid, sig)
