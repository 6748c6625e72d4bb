"""A real Prometheus Alertmanager for tests: the binary ``make alertmanager`` builds into
``.tools/alertmanager-<version>/``, started on a free loopback port with a minimal
configuration (one null receiver, short group timings), its own storage directory and
clustering off, and stopped with its process group.

:func:`get_alerts` reads Alertmanager's own view (``GET /api/v2/alerts``), which lists the
alerts whose ``endsAt`` has not passed.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from streams.broker.process import free_port, log_tail
from streams.process import Child

VERSION = "0.35.0"
"""Must match ``ALERTMANAGER_VERSION`` in the Makefile."""


def binary_path(root: Path) -> Path:
    """Where ``make alertmanager`` puts the binary, under the repository ``root``."""
    return root / ".tools" / f"alertmanager-{VERSION}" / "alertmanager"


def minimal_config(resolve_timeout: str) -> str:
    return f"""\
global:
  resolve_timeout: {resolve_timeout}
route:
  receiver: "null"
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class AlertmanagerProcess:
    """One Alertmanager process; :attr:`url` is its base URL once :meth:`start` returned."""

    def __init__(self, binary: Path, workdir: Path, resolve_timeout: str = "5m") -> None:
        self.binary = binary
        self.workdir = workdir
        self.resolve_timeout = resolve_timeout
        self.port = 0
        self._child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "alertmanager.log"

    def start(self, timeout_s: float = 30.0) -> None:
        """Start it and wait for ``/-/ready``; raise ``RuntimeError`` with its log tail."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(minimal_config(self.resolve_timeout))
        self.port = free_port()
        argv = [
            str(self.binary),
            f"--config.file={config}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        self._child = Child("alertmanager", argv, self.log, {})
        self._child.start()
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._child is None or not self._child.alive():
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Alertmanager did not become ready: {log_tail(self.log)}")

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None


async def get_alerts(url: str, *matchers: str) -> list[dict[str, Any]]:
    """Alertmanager's ``GET /api/v2/alerts`` with ``filter`` matchers like ``alert_id="x"``."""
    params = [("filter", m) for m in matchers]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v2/alerts", params=params) as response,
    ):
        response.raise_for_status()
        alerts: list[dict[str, Any]] = orjson.loads(await response.read())
        return alerts
