"""A live stack for the browser tests: a broker of the test's own, a real ``freshness
worker``, ``freshness alerter`` (delivering to a real Alertmanager) and ``freshness api``
behind a read token, over the scripted scenario of ``streams.simulate.scenario``; and
Debian's Chromium driven by Playwright (``make chromium`` installs it).

The browser plays the reverse proxy of ``docs/operations.md`` ("Status page"): every
request it sends carries ``Authorization: Bearer <token>``, as a proxy in front of the API
would add it, and the pages never see the token.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from streams.broker.process import free_port
from streams.process import Child
from streams.simulate.scenario import Scenario, scripted
from tests.integration.alerting_support import (
    AlerterProcess,
    alert_broker,
    alerter_env,
    alertmanager,
    create_topics,
    now_ms,
)
from tests.integration.conftest import WorkerProcess, produce

__all__ = ["alert_broker", "alertmanager"]  # fixtures this module re-exports

CHROMIUM = Path(os.environ.get("FRESHNESS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""This machine's closed network refuses Chromium's own connections; these keep it quiet."""
TOKEN = "browser-test-read-token-0123456789"
STARTS = 400


@dataclass
class Stack:
    """The running stack: the API's URL and token, the scenario it was fed, its prefix."""

    url: str
    token: str
    scenario: Scenario
    prefix: str
    home: Path

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return r.json()


def _api(bootstrap: str, home: Path, app_id: str) -> tuple[Child, str]:
    port = free_port()
    env = {
        **os.environ,
        "FRESHNESS_KAFKA_BOOTSTRAP": bootstrap,
        "FRESHNESS_HOME": str(home),
        "FRESHNESS_APP_ID": app_id,
        "FRESHNESS_API_PORT": str(port),
        "FRESHNESS_API_TOKEN": TOKEN,
    }
    child = Child("api", [sys.executable, "-m", "streams.cli", "api"], home / "api.log", env)
    child.start()
    return child, f"http://127.0.0.1:{port}"


def _wait_ready(child: Child, url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (failure := child.failure()) is not None:
            pytest.fail(failure)
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"api not ready after {timeout_s} s:\n{child.tail()}")


@pytest.fixture
async def stack(alert_broker: str, alertmanager: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """Worker, alerter and API over the scripted scenario, all caught up on it."""
    prefix = f"b{uuid.uuid4().hex[:8]}"
    app_id = f"app-{prefix}"
    await create_topics(alert_broker, None, app_id)
    from streams.flows.config import load_flows

    sc = scripted(load_flows(None), STARTS, now=now_ms(), prefix=prefix)
    await produce(alert_broker, sc.records)
    worker = WorkerProcess(alert_broker, tmp_path, app_id)
    env = alerter_env(app_id, None, None, alertmanager.url)
    alerter = AlerterProcess(alert_broker, tmp_path, "a", **env)
    api, url = _api(alert_broker, tmp_path, app_id)
    try:
        worker.start()
        alerter.start()
        _wait_ready(api, url)
        await alerter.wait_ready()
        yield Stack(url, TOKEN, sc, prefix, tmp_path)
    finally:
        for part in (api, alerter, worker):
            part.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium (never a browser Playwright downloads)."""
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium`", pytrace=False)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_FLAGS))
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the test saves what it saw: the test's own directory, or ``docs/img/``
    (committed, shown in the README) with ``FRESHNESS_UPDATE_SCREENSHOTS=1``, so a test run
    does not rewrite committed files."""
    if os.environ.get("FRESHNESS_UPDATE_SCREENSHOTS") == "1":
        out = Path(__file__).resolve().parents[2] / "docs" / "img"
    else:
        out = tmp_path / "img"
    out.mkdir(parents=True, exist_ok=True)
    return out
