"""``freshness kafka start|stop|status`` as a user runs it: real JVM, own home, free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import jars
from streams.broker.process import free_port
from streams.settings import Settings


def _freshness(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "streams.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150, check=False)


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private FRESHNESS_HOME whose jar cache links to the shared one (no second fetch)."""
    shared = Settings()
    libs = jars.ensure_jars(shared.kafka_dir, shared.kafka_version)
    version_dir = tmp_path / "kafka" / shared.kafka_version
    version_dir.mkdir(parents=True)
    (version_dir / "libs").symlink_to(libs)
    (version_dir / jars.COMPLETE_MARKER).write_text(shared.kafka_version + "\n")
    port = free_port()
    while free_port() == port + 1:  # the controller takes port + 1; it must be free
        port = free_port()
    env = {
        **os.environ,
        "FRESHNESS_HOME": str(tmp_path),
        "FRESHNESS_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
    }
    try:
        yield env
    finally:
        _freshness(env, "kafka", "stop")


@pytest.mark.integration
def test_start_twice_status_stop_status(cli_env: dict[str, str]) -> None:
    bootstrap = cli_env["FRESHNESS_KAFKA_BOOTSTRAP"]

    first = _freshness(cli_env, "kafka", "start")
    assert first.returncode == 0, first.stderr
    assert "started (pid " in first.stdout
    assert bootstrap in first.stdout
    assert "log: " in first.stdout
    pid = int(first.stdout.split("(pid ")[1].split(")")[0])

    second = _freshness(cli_env, "kafka", "start")
    assert (second.returncode, second.stderr) == (0, "")
    assert f"already running (pid {pid})" in second.stdout

    status = _freshness(cli_env, "kafka", "status")
    assert status.returncode == 0
    assert f"kafka running (pid {pid}) on {bootstrap}" in status.stdout

    stop = _freshness(cli_env, "kafka", "stop")
    assert stop.returncode == 0
    assert f"kafka stopped (pid {pid})" in stop.stdout
    assert (
        not Path(f"/proc/{pid}").exists()
        or b"kafka.Kafka" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    )

    after = _freshness(cli_env, "kafka", "status")
    assert after.returncode == 3
    assert "kafka not running" in after.stdout
