"""``freshness worker`` start-up: one process per state directory, refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.errors import ConfigError
from streams.worker.runner import claim_state_dir


def test_a_state_directory_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    first = claim_state_dir(tmp_path / "state")
    with pytest.raises(ConfigError, match=rf"pid {os.getpid()}\b.*FRESHNESS_WORKER_ID"):
        claim_state_dir(tmp_path / "state")
    first.close()
    claim_state_dir(tmp_path / "state").close()  # free again once the holder is gone


def test_a_second_worker_with_the_same_id_refuses_in_one_line(tmp_path: Path) -> None:
    held = claim_state_dir(tmp_path / "state" / "app-x" / "w1")
    try:
        env = dict(
            os.environ,
            FRESHNESS_HOME=str(tmp_path),
            FRESHNESS_APP_ID="app-x",
            FRESHNESS_WORKER_ID="w1",
            FRESHNESS_KAFKA_BOOTSTRAP="127.0.0.1:1",  # never reached: it refuses first
        )
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        held.close()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"another worker (pid {os.getpid()})" in lines[0]
    assert "FRESHNESS_WORKER_ID" in lines[0]
