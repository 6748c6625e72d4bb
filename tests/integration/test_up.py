"""``freshness up`` end to end: it brings everything up, shows the live view with traffic,
and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker.process import EmbeddedBroker, free_port, port_in_use


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


def test_up_shows_live_flows_and_ctrl_c_leaves_nothing_running(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / "kafka").mkdir(parents=True)
    version_dir = kafka_broker.config.libs.parent
    (home / "kafka" / version_dir.name).symlink_to(version_dir)  # reuse the jar cache
    kafka_port = free_port()
    while port_in_use("127.0.0.1", kafka_port + 1):  # the controller takes the next port
        kafka_port = free_port()
    api_port = free_port()
    env = dict(
        os.environ,
        FRESHNESS_HOME=str(home),
        FRESHNESS_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
        FRESHNESS_API_PORT=str(api_port),
    )
    out = tmp_path / "up.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "up", "--rate", "40"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            rows = [
                line for line in out.read_text().splitlines() if line.startswith("lead_to_posthog")
            ]
            if rows and "%" in rows[-1]:  # an on-time ratio: traffic flowed end to end
                break
            time.sleep(1)
        else:
            pytest.fail(f"no live view with traffic:\n{out.read_text()[-3000:]}")
        children = processes_with_home(home)
        assert len(children) >= 5, children  # up itself, broker, worker, API, simulator
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert f"API http://127.0.0.1:{api_port}" in text
    for name in (
        "lead_to_posthog",
        "payment_to_posthog",
        "dlq_first_retry",
        "approval_to_notification",
    ):
        assert name in text
    assert text.rstrip().endswith("stopped.")
    # nothing it started is left: no process runs with its home, no port is still open
    assert processes_with_home(home) == []
    for port in (kafka_port, kafka_port + 1, api_port):
        assert not port_in_use("127.0.0.1", port), port
