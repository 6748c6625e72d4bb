"""The live view of ``freshness up`` (rendering only), and the installed package: every
command module imports with the runtime dependencies alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streams.up import fetch_flows, render

ROOT = Path(__file__).resolve().parents[2]


def flow(name: str, ratio: float | None, p95: float | None, status: str) -> dict[str, object]:
    return {
        "name": name,
        "target_ms": 5_000,
        "open_breaches": 3,
        "pending": 12,
        "status": status,
        "windows": {"last_5m": {"on_time_ratio": ratio, "lag_ms": {"p95": p95}}},
    }


def test_render_shows_each_flow_with_ratio_p95_and_status() -> None:
    text = render(
        {
            "flows": [
                flow("lead_to_posthog", 0.9875, 4_200.0, "warning"),
                flow("x", None, None, "ok"),
            ]
        },
        "http://127.0.0.1:8000",
    )
    assert "API http://127.0.0.1:8000" in text
    row = next(line for line in text.splitlines() if line.startswith("lead_to_posthog"))
    assert row.split() == ["lead_to_posthog", "5.00s", "98.75%", "4.20s", "3", "12", "warning"]
    empty = next(line for line in text.splitlines() if line.startswith("x "))
    assert empty.split() == ["x", "5.00s", "-", "-", "3", "12", "ok"]


def test_render_before_the_api_answers_says_so() -> None:
    text = render(None, "http://127.0.0.1:8000", "waiting for the API: ConnectError")
    assert text.rstrip().endswith("waiting for the API: ConnectError")


class _FlowsHandler(BaseHTTPRequestHandler):
    """``/v1/flows`` of a stand-in API that wants ``Bearer t0k``."""

    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == "Bearer t0k"
        body = b'{"flows": []}' if ok else b'{"error": "unauthorized"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_the_live_view_reads_the_api_with_its_token_and_says_when_it_cannot() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlowsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert fetch_flows(url, "t0k") == ({"flows": []}, "")
        assert fetch_flows(url, None) == (None, "waiting for the API: HTTPError")
    finally:
        server.shutdown()
        server.server_close()
    assert fetch_flows(url, "t0k") == (None, "waiting for the API: URLError")


def _uv() -> str:
    """The project's pinned uv (``.tools/uv-*/bin/uv``), else one on ``PATH``."""
    pinned = sorted(ROOT.glob(".tools/uv-*/bin/uv"))
    found = str(pinned[-1]) if pinned else shutil.which("uv")
    if found is None:
        pytest.fail("no uv: run `make env` (it installs the pinned uv under .tools/)")
    return found


def test_the_wheel_installed_with_runtime_dependencies_only_imports_and_runs(
    tmp_path: Path,
) -> None:
    """``pip install .`` gives no dev dependency (httpx, pytest, ...): every command module
    must import without them, ``freshness up`` included."""
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}

    def run(*argv: str | Path, cwd: Path = ROOT) -> str:
        done = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    run(uv, "build", "--wheel", "--out-dir", tmp_path / "dist", ".")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    requirements = tmp_path / "requirements.txt"
    run(
        uv,
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-emit-project",
        "-q",
        "-o",
        requirements,
    )
    venv = tmp_path / "venv"
    run(uv, "venv", "-q", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    run(uv, "pip", "install", "-q", "--python", python, "-r", requirements, wheel)
    # from outside the source tree, so only the installed package can be imported
    modules = (
        "streams.up, streams.cli, streams.worker.runner, streams.simulate.runner, api.server, "
        "streams.alerting.alerter"
    )
    run(python, "-c", f"import {modules}", cwd=tmp_path)
    assert "freshness" in run(venv / "bin" / "freshness", "--help", cwd=tmp_path)
