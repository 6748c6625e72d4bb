"""Limits on a request's head, answered in the API's JSON error shape.

Two layers, because h11 (uvicorn's parser) only bounds what it has to *buffer*: a head that
arrives in one read is parsed whatever its size, and one that arrives in pieces is refused
once more than :data:`MAX_HEAD_BYTES` are pending. So:

* :class:`HeadLimits` (ASGI middleware, every request that h11 parsed): a request target
  (path and query) over :data:`MAX_TARGET_BYTES` is a ``414 uri_too_long``; headers over
  :data:`MAX_HEAD_BYTES` in all are a ``431 headers_too_large``.
* h11's buffer limit, set to :data:`MAX_HEAD_BYTES` (``api.server.uvicorn_config``), and
  every head it cannot parse: a ``400 bad_request`` from
  :class:`api.server.JsonErrorH11Protocol`.

Request *bodies* are bounded where they are read (``FRESHNESS_INGEST_MAX_BYTES``,
``api/receivers.py``: 413); no other route reads a body.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_TARGET_BYTES = 8 * 1024
"""Longest request target (path plus query string), as most proxies allow (nginx: 8 KiB)."""
MAX_HEAD_BYTES = 16 * 1024
"""Most bytes of header names and values in one request (and h11's buffer limit)."""


def error_body(code: str, message: str) -> bytes:
    """The :class:`~api.models.ErrorBody` JSON, for answers made below FastAPI."""
    return orjson.dumps({"error": {"code": code, "message": message, "detail": None}})


class HeadLimits:
    """Refuses a request whose target or headers exceed the limits, before any route."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = _refusal(scope)
            if refusal is not None:
                await _answer(send, *refusal)
                return
        await self.app(scope, receive, send)


def _refusal(scope: dict[str, Any]) -> tuple[int, bytes] | None:
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    if target > MAX_TARGET_BYTES:
        message = f"the request target has {target} bytes; at most {MAX_TARGET_BYTES}"
        return 414, error_body("uri_too_long", message)
    head = sum(len(name) + len(value) for name, value in scope["headers"])
    if head > MAX_HEAD_BYTES:
        message = f"the request headers have {head} bytes; at most {MAX_HEAD_BYTES}"
        return 431, error_body("headers_too_large", message)
    return None


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
