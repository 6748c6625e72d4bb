"""``freshness up`` end to end: it brings everything up, shows the live view with traffic,
and Ctrl-C stops every process it started, even when its stdout has gone away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.broker.process import EmbeddedBroker, free_port, port_in_use

FLOWS = ("lead_to_posthog", "payment_to_posthog", "dlq_first_retry", "approval_to_notification")


def processes_with_home(home: Path) -> list[str]:
    """Command lines of live processes whose environment or arguments name ``home``."""
    mark = str(home).encode()
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            env = (pid_dir / "environ").read_bytes()
            cmd = (pid_dir / "cmdline").read_bytes()
        except OSError:
            continue
        if mark in env or mark in cmd:
            found.append(cmd.replace(b"\0", b" ").decode(errors="replace"))
    return found


class Up:
    """A ``freshness up`` process on ports and a home of its own."""

    def __init__(self, kafka_broker: EmbeddedBroker, tmp_path: Path, stdout: int | Path) -> None:
        self.home = tmp_path / "home"
        (self.home / "kafka").mkdir(parents=True)
        version_dir = kafka_broker.config.libs.parent
        (self.home / "kafka" / version_dir.name).symlink_to(version_dir)  # reuse the jar cache
        self.kafka_port = free_port()
        while port_in_use("127.0.0.1", self.kafka_port + 1):  # the controller takes port + 1
            self.kafka_port = free_port()
        self.api_port = free_port()
        env = dict(
            os.environ,
            FRESHNESS_HOME=str(self.home),
            FRESHNESS_KAFKA_BOOTSTRAP=f"127.0.0.1:{self.kafka_port}",
            FRESHNESS_API_PORT=str(self.api_port),
        )
        argv = [sys.executable, "-m", "streams.cli", "up", "--rate", "40"]
        if isinstance(stdout, Path):
            with stdout.open("wb") as sink:
                self.proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
        else:
            self.proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.DEVNULL)

    def wait_for(self, seen: Callable[[], str], timeout_s: float = 120) -> None:
        """Until a live-view row shows an on-time ratio: traffic flowed end to end."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            rows = [line for line in seen().splitlines() if line.startswith(FLOWS[0])]
            if rows and "%" in rows[-1]:
                return
            time.sleep(1)
        pytest.fail(f"no live view with traffic:\n{seen()[-3000:]}")

    def ctrl_c(self) -> int:
        children = processes_with_home(self.home)
        assert len(children) >= 6, children  # up itself, broker, worker, alerter, API, simulator
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        return self.proc.wait(90)

    def assert_nothing_left(self) -> None:
        assert processes_with_home(self.home) == []
        for port in (self.kafka_port, self.kafka_port + 1, self.api_port):
            assert not port_in_use("127.0.0.1", port), port

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


def test_up_shows_live_flows_and_ctrl_c_leaves_nothing_running(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    out = tmp_path / "up.out"
    up = Up(kafka_broker, tmp_path, out)
    try:
        up.wait_for(out.read_text)
        assert up.ctrl_c() == 0
    finally:
        up.kill()
    text = out.read_text()
    assert f"API http://127.0.0.1:{up.api_port}" in text
    for name in FLOWS:
        assert name in text
    assert text.rstrip().endswith("stopped.")
    up.assert_nothing_left()


def test_ctrl_c_with_a_closed_stdout_still_stops_everything(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """``make demo | tee log``: Ctrl-C kills ``tee`` too, so every later line hits a closed
    pipe; the shutdown must go on regardless."""
    up = Up(kafka_broker, tmp_path, subprocess.PIPE)
    assert up.proc.stdout is not None
    os.set_blocking(up.proc.stdout.fileno(), False)
    seen = bytearray()

    def read() -> str:
        assert up.proc.stdout is not None
        seen.extend(up.proc.stdout.read() or b"")
        return seen.decode(errors="replace")

    try:
        up.wait_for(read)
        up.proc.stdout.close()  # the reader is gone
        up.ctrl_c()
    finally:
        up.kill()
    up.assert_nothing_left()
