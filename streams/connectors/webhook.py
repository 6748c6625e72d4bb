"""A signed webhook (Standard Webhooks 1.0): an alert state becomes one signed POST.

Headers: ``webhook-id`` (the alert id and the state's version, the same on every retry of
that state, so a receiver can de-duplicate), ``webhook-timestamp`` (integer Unix seconds of
the attempt) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` over
``"<id>.<timestamp>.<body>"``). A secret written ``whsec_<base64>`` is the base64-decoded
key, as the specification serialises secrets; any other secret is used as its UTF-8 bytes.
Any 2xx is delivery; 429 and 5xx are retried; every other status is refused for good (410
Gone included: the receiver does not want the webhook).

Body: ``{"type": "freshness.alert.firing" | "freshness.alert.resolved", "timestamp":
RFC 3339 of the state change, "data": {the alert state, times in epoch ms}}``.

Reference: standard-webhooks/standard-webhooks ``spec/standard-webhooks.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

from streams.connectors.http import HttpClient, dumps, unencodable
from streams.connectors.sink import AlertEvent, Attempt
from streams.core.timeparse import format_event_time
from streams.errors import ConfigError

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24
"""The specification's smallest symmetric signing secret (192 bits)."""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One receiver URL and its signing secret (``whsec_<base64>`` or plain text)."""

    url: str
    secret: str = field(repr=False)
    timeout_ms: int = 15_000

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"FRESHNESS_WEBHOOK_URL must be an http(s) URL: {self.url!r}")
        signing_key(self.secret)
        if self.timeout_ms < 1:
            raise ConfigError("the webhook timeout must be >= 1 ms")


def signing_key(secret: str) -> bytes:
    """The HMAC key a secret stands for; raises :class:`ConfigError` for a weak or bad one."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            raise ConfigError(
                "FRESHNESS_WEBHOOK_SECRET starts with whsec_ but the rest is not base64"
            ) from None
    else:
        key = secret.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"FRESHNESS_WEBHOOK_SECRET must stand for at least {MIN_KEY_BYTES} bytes "
            f"(got {len(key)}); generate one, e.g. whsec_ + 32 random bytes in base64"
        )
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (one ``v1`` signature) for this id, time and body."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def message_id(event: AlertEvent) -> str:
    """``<alert_id>/<version>``, with ``%`` and ``.`` percent-encoded (the specification
    keeps full stops out of ids, since they delimit the signed content)."""
    stem = event.alert_id.replace("%", "%25").replace(".", "%2E")
    return f"{stem}/{event.version}"


def webhook_body(event: AlertEvent) -> dict[str, object]:
    """The JSON payload for one alert state (a pure mapping, no I/O)."""
    return {
        "type": f"freshness.alert.{event.status}",
        "timestamp": format_event_time(event.updated_at),
        "data": {
            "alert_id": event.alert_id,
            "version": event.version,
            "flow": event.flow,
            "alert": event.alert,
            "severity": event.severity,
            "status": event.status,
            "since": event.since,
            "updated_at": event.updated_at,
            "summary": event.summary,
            "details": event.details,
            "links": [{"href": link.href, "text": link.text} for link in event.links],
        },
    }


class WebhookSink:
    """Delivers alert states to one signed-webhook receiver (see :class:`~streams.
    connectors.sink.Sink`). No rate limit and no re-sends."""

    name = "webhook"
    rate_limit = None
    resend_ms = None

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._key = signing_key(config.secret)
        self._http = HttpClient(config.timeout_ms)

    def rate_key(self, event: AlertEvent) -> str:
        return ""

    async def send(self, event: AlertEvent, now_ms: int) -> Attempt:
        body = webhook_body(event)
        raw = dumps(body)
        if raw is None:
            return unencodable(self.config.url, body)
        msg_id = message_id(event)
        timestamp = now_ms // 1000
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, msg_id, timestamp, raw),
        }
        return await self._http.post(self.config.url, raw, headers, now_ms, raw.decode())

    async def aclose(self) -> None:
        await self._http.aclose()
