"""The compose stack's Prometheus and Alertmanager configurations, checked by the real
tools: ``promtool check config`` (with the rule file it names) and the Alertmanager binary
the sink tests use, started on our file (a broken file makes it exit)."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streams.broker.process import free_port
from streams.testing.peers.alertmanager import binary_path
from tests.rules.support import ROOT, promtool

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"


def test_promtool_accepts_the_prometheus_config_and_its_rules() -> None:
    done = promtool("check", "config", DEPLOY / "prometheus" / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
    assert "freshness.rules.yml" in done.stdout


def _alertmanager(config: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = binary_path(ROOT)
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run `make alertmanager`", pytrace=False)
    port = free_port()
    argv = [
        str(binary),
        f"--config.file={config}",
        f"--storage.path={workdir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with (workdir / "alertmanager.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    return False


def test_alertmanager_runs_with_the_compose_config(tmp_path: Path) -> None:
    proc, url = _alertmanager(DEPLOY / "alertmanager" / "alertmanager.yml", tmp_path)
    try:
        assert _ready(proc, url), (tmp_path / "alertmanager.log").read_text()[-2000:]
        with urllib.request.urlopen(f"{url}/api/v2/status", timeout=2) as r:
            loaded = r.read().decode()
        assert "receiver: ticket" in loaded.replace("\\n", "\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_alertmanager_refuses_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    broken.write_text(text.replace("receiver: page", "receiver: pager"))  # no such receiver
    proc, _ = _alertmanager(broken, tmp_path)
    try:
        assert proc.wait(timeout=20) != 0
        assert "pager" in (tmp_path / "alertmanager.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
