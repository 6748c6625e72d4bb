"""HTTP plumbing shared by the alert connectors: one aiohttp session per sink, the usual
classification of an answer (2xx delivered; 429 and 5xx retried; any other status
rejected), and ``Retry-After`` in both of its forms (RFC 9110 section 10.2.3).

aiohttp is the client because it is already a runtime dependency (faust-streaming needs it);
httpx is only a development dependency here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

import aiohttp
import orjson

from streams.connectors.sink import Attempt, Outcome

BODY_LIMIT = 65_536
"""Most response bytes kept in an :class:`Attempt` (and so in a dead letter)."""
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class HttpClient:
    """POSTs bodies for one sink. The session opens on first use inside the running loop.

    Redirects are never followed (a 3xx is an answer, and a wrong URL to fix). Every
    request is bounded by ``timeout_ms`` in total.
    """

    def __init__(self, timeout_ms: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], now_ms: int, request: str
    ) -> Attempt:
        """POST ``body`` and classify the answer; network errors and timeouts are RETRY.

        ``request`` is the redacted form of ``body`` that the :class:`Attempt` carries.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                raw = await _read_limited(response.content)
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as exc:
            text = f"{type(exc).__name__}: {exc}"
            return Attempt(Outcome.RETRY, None, url, request, text)
        text = raw.decode("utf-8", errors="replace")
        delay = retry_after_ms(retry_after, now_ms)
        return Attempt(classify(status), status, url, request, text, delay)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_limited(stream: aiohttp.StreamReader) -> bytes:
    """The first :data:`BODY_LIMIT` bytes of a response body (the rest is not read)."""
    raw = b""
    while len(raw) < BODY_LIMIT:
        chunk = await stream.read(BODY_LIMIT - len(raw))
        if not chunk:
            break
        raw += chunk
    return raw


def dumps(body: object) -> bytes | None:
    """``body`` as JSON, or ``None`` when it holds something JSON cannot carry."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return None


def unencodable(url: str, body: object) -> Attempt:
    """The REJECTED attempt for a request that could not be encoded (it was never sent)."""
    reason = "the request cannot be encoded as JSON (invalid text or a non-JSON detail value)"
    return Attempt(Outcome.REJECTED, None, url, repr(body)[:BODY_LIMIT], reason)


def classify(status: int) -> Outcome:
    """2xx delivered; 429 and 5xx worth retrying; every other status refused for good."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


def retry_after_ms(value: str | None, now_ms: int) -> int | None:
    """A ``Retry-After`` header as a delay in ms from ``now_ms``; ``None`` if absent or bad.

    Accepts delay-seconds (``"7"``) and an HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``);
    a date in the past is a delay of 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text) * 1000
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, int(when.timestamp() * 1000) - now_ms)
