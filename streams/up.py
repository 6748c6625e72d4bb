"""``freshness up``: the whole monitor on one machine, with a live terminal view.

Starts, in order: the embedded broker (only when nothing answers on a local
``FRESHNESS_KAFKA_BOOTSTRAP``), the topics, one worker, the alerter (it delivers to the
sinks the ``FRESHNESS_*`` settings enable, none by default), the API and, unless told not
to, a local PostHog capture endpoint and the traffic simulator; then shows the four flows
from the API once a second. The demo traffic takes the real paths: the PostHog flows'
completions are captured through the real posthog SDK against that endpoint and written by
the SDK bridge when it answers; the notification acknowledgements go through the API's
receiver (``POST /v1/events/...``, with ``FRESHNESS_INGEST_TOKEN``, a random one unless
set); everything else straight to Kafka. Ctrl-C (or
SIGTERM, or ``--duration`` running out) stops them in the reverse order, waits for each,
and stops the broker only if it started it: nothing it started is left running.

Every child writes its log under ``$FRESHNESS_HOME/up/``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from typing import Any

import orjson

from streams.broker.commands import broker_for
from streams.broker.process import EmbeddedBroker, answers, free_port
from streams.flows.config import load_flows
from streams.kafka.admin import ensure_required_topics
from streams.process import Child
from streams.settings import Settings

API_TIMEOUT_S = 2.0
DEMO_FAULTS = (
    *("--late", "0.03", "--missing", "0.01", "--duplicate", "0.01"),
    *("--out-of-order", "0.01", "--skew", "0.005", "--malformed", "0.005"),
)
"""Injected faults of the demo traffic, so the live view has breaches to show."""


@dataclass
class Stack:
    settings: Settings
    rate: float
    simulate: bool
    children: list[Child] = field(default_factory=list)
    broker: EmbeddedBroker | None = None

    @property
    def logs(self) -> Path:
        return self.settings.home / "up"

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start(self) -> None:
        s = self.settings
        if not answers(s.kafka_bootstrap, timeout_s=3.0):
            broker = broker_for(s, fetch=True)
            say(f"starting Apache Kafka {s.kafka_version} on {s.kafka_bootstrap} ...")
            broker.start(detach=True)
            self.broker = broker
        created, _ = asyncio.run(ensure_required_topics(s, load_flows(s.flows)))
        if created:
            say(f"created {len(created)} topics")
        env = dict(os.environ)
        if s.ingest_token is None and self.simulate:
            env["FRESHNESS_INGEST_TOKEN"] = secrets.token_urlsafe(24)
        cli = [sys.executable, "-m", "streams.cli"]
        self.children.append(Child("worker", [*cli, "worker"], self.logs / "worker.log", env))
        self.children.append(Child("alerter", [*cli, "alerter"], self.logs / "alerter.log", env))
        self.children.append(Child("api", [*cli, "api"], self.logs / "api.log", env))
        if self.simulate:
            capture = f"http://127.0.0.1:{free_port()}"
            port = capture.rsplit(":", 1)[1]
            peer = [sys.executable, "-m", "streams.testing.peers.posthog", "--port", port]
            self.children.append(Child("posthog", peer, self.logs / "posthog.log", env))
            argv = [
                *cli,
                "simulate",
                "--rate",
                str(self.rate),
                "--truth",
                str(self.logs / "truth.jsonl"),
                *("--posthog-host", capture, "--receiver-url", self.api_url),
                *DEMO_FAULTS,
            ]
            self.children.append(Child("simulate", argv, self.logs / "simulate.log", env))
        for child in self.children:
            child.start()
            say(f"started {child.name} (log: {child.log})")

    def stop(self) -> None:
        """Stop every child (last started first), then the broker if this stack started it."""
        for child in reversed(self.children):
            if child.alive():
                say(f"stopping {child.name} ...")
            child.stop()
        if self.broker is not None:
            say("stopping Apache Kafka ...")
            self.broker.stop()

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.alive()]


def _fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f}s" if abs(ms) < 60_000 else f"{ms / 60_000:.1f}m"


def render(view: Mapping[str, Any] | None, api_url: str, problem: str = "") -> str:
    """The live view as text: one row per flow (5 minute window)."""
    lines = [f"funnel freshness  |  API {api_url}  (/v1/flows, /docs, /metrics)  |  Ctrl-C stops"]
    header = (
        f"{'flow':<26} {'target':>7} {'on time (5m)':>13} {'p95 lag':>9} "
        f"{'open':>5} {'pending':>8}  status"
    )
    lines += ["", header, "-" * len(header)]
    for f in (view or {}).get("flows", []):
        w = f["windows"]["last_5m"]
        ratio = w["on_time_ratio"]
        lines.append(
            f"{f['name']:<26} {_fmt_ms(f['target_ms']):>7} "
            f"{'-' if ratio is None else f'{ratio:.2%}':>13} {_fmt_ms(w['lag_ms']['p95']):>9} "
            f"{f['open_breaches']:>5} {f['pending']:>8}  {f['status']}"
        )
    if problem:
        lines += ["", problem]
    return "\n".join(lines)


def say(text: str) -> None:
    """Print a line. A closed stdout (e.g. ``make demo | tee log`` whose ``tee`` died of the
    same Ctrl-C) must not interrupt the shutdown: output is dropped from then on."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _show(text: str, tty: bool) -> None:
    say("\x1b[H\x1b[2J" + text if tty else text + "\n")


def fetch_flows(api_url: str, token: str | None) -> tuple[Mapping[str, Any] | None, str]:
    """``GET /v1/flows`` (standard library only: ``freshness up`` runs from a plain install)
    as ``(view, problem)``: the view, or None and why there is none yet."""
    request = urllib.request.Request(f"{api_url}/v1/flows")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT_S) as response:
            view: Mapping[str, Any] = orjson.loads(response.read())
            return view, ""
    except (OSError, HTTPException, ValueError) as exc:  # URLError and HTTPError are OSErrors
        return None, f"waiting for the API: {type(exc).__name__}"


def watch(stack: Stack, duration_s: float | None, interval_s: float = 1.0) -> None:
    tty = sys.stdout.isatty()
    every = interval_s if tty else max(interval_s, 10.0)
    ends = None if duration_s is None else time.monotonic() + duration_s
    secret = stack.settings.api_token
    token = None if secret is None else secret.get_secret_value()
    while ends is None or time.monotonic() < ends:
        dead = stack.dead()
        if dead:
            names = ", ".join(f"{c.name} (see {c.log})" for c in dead)
            raise SystemExit(f"freshness up: {names} stopped unexpectedly")
        view, problem = fetch_flows(stack.api_url, token)
        _show(render(view, stack.api_url, problem), tty)
        time.sleep(every)


def run(settings: Settings, rate: float, duration_s: float | None, simulate: bool) -> int:
    stack = Stack(settings, rate, simulate)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        stack.start()
        watch(stack, duration_s)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan children
        stack.stop()
        say("stopped.")
