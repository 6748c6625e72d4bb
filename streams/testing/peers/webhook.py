"""A local Standard Webhooks receiver for tests: it verifies every request the way the
specification tells a consumer to, with its own implementation (independent of the
sender's in :mod:`streams.connectors.webhook`): ``webhook-id``, ``webhook-timestamp``
within ``tolerance_s`` of its clock, and one of the space-separated ``v1,<base64>``
signatures equal (compared in constant time) to HMAC-SHA256 of ``"<id>.<timestamp>.<body>"``
under the secret (``whsec_<base64>`` decoded, any other secret as its UTF-8 bytes).

A verified request is answered 204 and kept in :attr:`WebhookReceiver.deliveries`
(``duplicate`` when its ``webhook-id`` came before); an unverified one is answered 401 with
the reason, and kept in :attr:`WebhookReceiver.refused`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from streams.core.clock import Clock, now_ms
from streams.testing.peers.server import Answer, LocalPeer


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The base64 ``v1`` signature a sender holding ``secret`` must have sent."""
    if secret.startswith("whsec_"):
        key = base64.b64decode(secret[len("whsec_") :])
    else:
        key = secret.encode("utf-8")
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify(
    secret: str, headers: dict[str, str], body: bytes, now_s: int, tolerance_s: int
) -> str | None:
    """``None`` when the request is authentic; otherwise why it is not."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not timestamp.isdigit():
        return f"webhook-timestamp is not integer seconds: {timestamp!r}"
    if abs(now_s - int(timestamp)) > tolerance_s:
        return f"webhook-timestamp {timestamp} is more than {tolerance_s} s from now ({now_s})"
    wanted = expected_signature(secret, msg_id, timestamp, body).encode()
    for signature in signatures.split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), wanted):
            return None
    return "no v1 signature matches"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified webhook."""

    arrived_at: int
    webhook_id: str
    timestamp: int
    body: bytes
    duplicate: bool

    def json(self) -> Any:
        return orjson.loads(self.body)


class WebhookReceiver(LocalPeer):
    """Receives signed webhooks on any path (give the connector :attr:`url`)."""

    def __init__(self, secret: str, clock: Clock = now_ms, tolerance_s: int = 300) -> None:
        super().__init__(clock)
        self.secret = secret
        self.tolerance_s = tolerance_s
        self.deliveries: list[Delivery] = []
        self.refused: list[str] = []

    def payloads(self) -> list[Any]:
        """The JSON bodies of the first delivery of each webhook id, in arrival order."""
        return [d.json() for d in self.deliveries if not d.duplicate]

    async def answer(self, request: web.Request, body: bytes) -> Answer:
        headers = {k.lower(): v for k, v in request.headers.items()}
        now = self.clock()
        reason = verify(self.secret, headers, body, now // 1000, self.tolerance_s)
        if reason is not None:
            self.refused.append(reason)
            return Answer.of_json(401, {"error": reason})
        msg_id = headers["webhook-id"]
        duplicate = any(d.webhook_id == msg_id for d in self.deliveries)
        stamp = int(headers["webhook-timestamp"])
        self.deliveries.append(Delivery(now, msg_id, stamp, body, duplicate))
        return Answer(204)
