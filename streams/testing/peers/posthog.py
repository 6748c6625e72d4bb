"""A local PostHog capture endpoint: ``POST /batch/`` (what posthog-python sends) and
``POST /i/v0/e/`` (posthog-js; also ``/e/`` and ``/capture/``), answering as PostHog's
capture service does (``rust/capture`` in PostHog/posthog: ``src/router.rs`` routes,
``src/api.rs`` answers, ``src/v0_endpoint.rs`` checks).

What it checks and answers, in this order:

* the body: gzip when ``Content-Encoding: gzip`` or ``?compression=gzip``/``gzip-js``; a form
  with a base64 ``data`` field when ``application/x-www-form-urlencoded``; then JSON. A body
  it cannot read: 400 ``failed to decode request: ...`` / ``failed to parse request: ...``;
* the events: ``{"batch": [...]}``, a list, or one event object; none: 400 ``request holds
  no event``;
* the token (``api_key`` of the body, or ``api_key``/``token`` of an event or its
  properties): missing: 401 ``event submitted without an api_key``; two different: 401
  ``batch submitted with inconsistent api_key values``; a personal key (``phx_``): 401
  ``API key is not valid: personal api key``;
* each event: an empty ``event`` name: 400 ``event submitted with an empty event name``; no
  ``distinct_id`` (top level or in ``properties``): 400 ``event submitted without a
  distinct_id``;
* then 200 ``{"status":"Ok"}`` (serde's form of ``CaptureResponseCode::Ok``).

Errors are plain text, as axum renders ``(StatusCode, String)``. A batch can be scripted
to be refused (:meth:`PostHogCapture.reject`, e.g. 503 ``transient error, please retry``
that the SDK retries, or 400 it does not); every request that carried events is kept in
:attr:`PostHogCapture.batches` with the moment it was answered (:attr:`CapturedBatch.
answered_at`, on the injected clock), which is what a test compares the monitor's lag with.

``python -m streams.testing.peers.posthog --port 8010`` serves it until SIGINT/SIGTERM
(``freshness up`` runs it so the demo's SDK has an endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import signal
import sys
import urllib.parse
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from streams.core.clock import Clock, now_ms
from streams.testing.peers.server import Answer, LocalPeer

CAPTURE_PATHS = frozenset(
    p + s for p in ("/batch", "/i/v0/e", "/e", "/capture", "/track") for s in ("", "/")
)
"""Every path of the analytics capture router (with and without the trailing slash)."""
OK_BODY = b'{"status":"Ok"}'
ERROR_TEXT = {
    400: "invalid event could not be processed",
    401: "API key is not valid: unknown project",
    413: "maximum event size exceeded: batch",
    429: "rate limited",
    503: "transient error, please retry",
}
"""The text capture answers with for a scripted refusal, by status."""

Event = dict[str, Any]
Match = Callable[[Sequence[Event]], bool]


class CaptureError(Exception):
    """What capture refuses a request with: a status and its plain-text message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class CapturedBatch:
    """One request that carried events, and what the endpoint answered."""

    path: str
    events: tuple[Event, ...]
    status: int
    answered_at: int
    """When the answer was decided (epoch ms on the peer's clock), just before sending it."""
    token: str | None

    @property
    def uuids(self) -> tuple[str, ...]:
        return tuple(str(e["uuid"]) for e in self.events if e.get("uuid"))


@dataclass(slots=True)
class _Rejection:
    status: int
    times: int
    match: Match | None
    message: str


@dataclass(slots=True)
class _Script:
    rejections: list[_Rejection] = field(default_factory=list)

    def take(self, events: Sequence[Event]) -> _Rejection | None:
        for rule in self.rejections:
            if rule.match is None or rule.match(events):
                rule.times -= 1
                if rule.times <= 0:
                    self.rejections.remove(rule)
                return rule
        return None


class PostHogCapture(LocalPeer):
    """The capture endpoint; give the SDK :attr:`url` as its ``host``."""

    def __init__(self, clock: Clock = now_ms, port: int = 0) -> None:
        super().__init__(clock)
        self._port = port  # LocalPeer listens on it; 0: a free port the OS picks
        self.batches: list[CapturedBatch] = []
        self._script = _Script()

    def reject(
        self,
        status: int = 400,
        *,
        times: int = 1,
        match: Match | None = None,
        message: str | None = None,
    ) -> None:
        """Refuse the next ``times`` batches that ``match`` (any, by default) with ``status``
        and capture's text for it. The SDK retries 5xx, 408 and 429 (each retry is a
        request of its own and takes one of ``times``) and gives up at once on other 4xx."""
        text = message or ERROR_TEXT.get(status, "request refused")
        self._script.rejections.append(_Rejection(status, times, match, text))

    def accepted(self) -> list[CapturedBatch]:
        return [b for b in self.batches if b.status == 200]

    def answered_at(self) -> dict[str, int]:
        """Event uuid -> when capture answered 200 for the (first) batch holding it."""
        out: dict[str, int] = {}
        for batch in self.accepted():
            for uuid in batch.uuids:
                out.setdefault(uuid, batch.answered_at)
        return out

    async def answer(self, request: web.Request, body: bytes) -> Answer:
        if request.path not in CAPTURE_PATHS:
            return Answer(404, b"not found", {"Content-Type": "text/plain"})
        if request.method != "POST":
            return Answer(405, b"method not allowed", {"Content-Type": "text/plain"})
        try:
            events, token = parse_request(request.headers, request.query, body)
        except CaptureError as exc:
            return _text(exc.status, exc.message)
        rule = self._script.take(events)
        status = 200 if rule is None else rule.status
        self.batches.append(CapturedBatch(request.path, tuple(events), status, self.clock(), token))
        if rule is not None:
            return _text(rule.status, rule.message)
        return Answer(200, OK_BODY, {"Content-Type": "application/json"})


def parse_request(
    headers: Mapping[str, str], query: Mapping[str, str], body: bytes
) -> tuple[list[Event], str | None]:
    """The events and the token of one capture request; raises :class:`CaptureError`."""
    data = _decompress(headers, query, body)
    if headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        data = _form_data(data)
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CaptureError(400, f"failed to parse request: {exc}") from None
    events = _events(payload)
    token = _token(payload, events)
    for event in events:
        _check_event(event)
    return events, token


def _decompress(headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> bytes:
    wants_gzip = headers.get("Content-Encoding", "") == "gzip" or query.get("compression") in (
        "gzip",
        "gzip-js",
    )
    if not wants_gzip or (body[:2] != b"\x1f\x8b" and "Content-Encoding" in headers):
        return body  # aiohttp already decoded a Content-Encoding: gzip body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise CaptureError(400, f"failed to decode request: {exc}") from None


def _form_data(body: bytes) -> bytes:
    fields = urllib.parse.parse_qs(body.decode("latin-1"))
    if "data" not in fields:
        raise CaptureError(400, "failed to decode request: missing data field")
    try:
        return base64.b64decode(fields["data"][0])
    except ValueError:
        raise CaptureError(400, "failed to decode request: missing data field") from None


def _events(payload: object) -> list[Event]:
    if isinstance(payload, dict) and isinstance(payload.get("batch"), list):
        items: list[object] = payload["batch"]
    elif isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict) and "batch" not in payload:
        items = [payload]
    else:
        raise CaptureError(400, "failed to parse request: batch is not a list of events")
    if not items:
        raise CaptureError(400, "request holds no event")
    if not all(isinstance(e, dict) for e in items):
        raise CaptureError(400, "failed to parse request: an event is not an object")
    return [e for e in items if isinstance(e, dict)]


def _token(payload: object, events: list[Event]) -> str | None:
    tokens: set[str] = set()
    if isinstance(payload, dict) and isinstance(payload.get("api_key"), str):
        tokens.add(payload["api_key"])
    for event in events:
        props = _properties(event)
        for value in (event.get("api_key"), event.get("token"), props.get("token")):
            if isinstance(value, str) and value:
                tokens.add(value)
    tokens.discard("")
    if not tokens:
        raise CaptureError(401, "event submitted without an api_key")
    if len(tokens) > 1:
        raise CaptureError(401, "batch submitted with inconsistent api_key values")
    token = tokens.pop()
    if token.startswith("phx_"):
        raise CaptureError(401, "API key is not valid: personal api key")
    return token


def _check_event(event: Event) -> None:
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise CaptureError(400, "event submitted with an empty event name")
    props = _properties(event)
    distinct = event.get("distinct_id", props.get("distinct_id", props.get("$distinct_id")))
    if distinct is None or distinct == "":
        raise CaptureError(400, "event submitted without a distinct_id")


def _properties(event: Event) -> dict[str, Any]:
    props = event.get("properties")
    return props if isinstance(props, dict) else {}


def _text(status: int, message: str) -> Answer:
    return Answer(status, message.encode(), {"Content-Type": "text/plain; charset=utf-8"})


# -- standalone ---------------------------------------------------------------------------


async def serve(port: int, ready: Callable[[str], None]) -> None:
    """Serve on 127.0.0.1:``port`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with PostHogCapture(port=port) as peer:
        ready(peer.url)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=10)
            peer.requests.clear()  # a long demo must not keep every request
            del peer.batches[:-1000]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.testing.peers.posthog",
        description="A local PostHog capture endpoint (/batch/, /i/v0/e/) for demos and tests.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args(argv)

    def ready(url: str) -> None:
        print(f"PostHog capture endpoint listening on {url}", flush=True)

    asyncio.run(serve(args.port, ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
