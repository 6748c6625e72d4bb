"""Alertmanager API v2 (``POST <url>/api/v2/alerts``): an alert state becomes one alert.

Alertmanager identifies an alert by its label set, so the labels are only what never
changes for an alert id: ``alertname`` (the alert, e.g. ``page-fast``), ``flow``,
``severity`` and ``alert_id``. The summary, the details (as JSON) and the links go into
annotations; the first link is the ``generatorURL``.

Alertmanager forgets a firing alert at its ``endsAt``. Like Prometheus, a firing state is
sent with ``endsAt`` = the time of the attempt + 4 x ``resend_ms`` and is re-sent every
``resend_ms`` while it fires, so the alert stays active for as long as the alerter lives and
expires on its own a few re-sends after the alerter stops, whatever Alertmanager's
``resolve_timeout``. A resolved state is sent with ``endsAt`` = when it resolved (in the
past), which resolves it at once. Alertmanager answers 200, 400 with the validation error
(never retried) and 5xx (retried).

Reference: prometheus/alertmanager ``api/v2/openapi.yaml`` (``postableAlert``).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from streams.connectors.http import JSON_HEADERS, HttpClient, dumps, unencodable
from streams.connectors.sink import AlertEvent, Attempt
from streams.core.timeparse import format_event_time
from streams.errors import ConfigError

RESEND_MS = 60_000
VALIDITY_RESENDS = 4
"""A firing alert's ``endsAt`` lies this many re-send periods after the attempt."""


@dataclass(frozen=True, slots=True)
class AlertmanagerConfig:
    """One Alertmanager (``url`` is its base, e.g. ``http://127.0.0.1:9093``)."""

    url: str
    resend_ms: int = RESEND_MS
    timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"FRESHNESS_ALERTMANAGER_URL must be an http(s) URL: {self.url!r}")
        if self.resend_ms < 1 or self.timeout_ms < 1:
            raise ConfigError("FRESHNESS_ALERTMANAGER_RESEND_MS and the timeout must be >= 1")

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"


def labels(event: AlertEvent) -> dict[str, str]:
    """The label set that is the alert's identity in Alertmanager."""
    return {
        "alertname": event.alert,
        "flow": event.flow,
        "severity": event.severity,
        "alert_id": event.alert_id,
    }


def postable_alert(event: AlertEvent, now_ms: int, resend_ms: int) -> dict[str, object]:
    """The ``postableAlert`` for one alert state sent at ``now_ms`` (pure, no I/O)."""
    if event.firing:
        ends = now_ms + VALIDITY_RESENDS * resend_ms
    else:
        ends = max(event.updated_at, event.since)
    annotations = {"summary": event.summary}
    if event.details:
        annotations["details"] = orjson.dumps(event.details).decode()
    if event.links:
        annotations["links"] = " ".join(link.href for link in event.links)
    alert: dict[str, object] = {
        "labels": labels(event),
        "annotations": annotations,
        "startsAt": format_event_time(event.since),
        "endsAt": format_event_time(ends),
    }
    if event.links:
        alert["generatorURL"] = event.links[0].href
    return alert


class AlertmanagerSink:
    """Delivers alert states to one Alertmanager (see :class:`~streams.connectors.sink.
    Sink`); firing alerts must be re-sent every ``resend_ms``. No rate limit."""

    name = "alertmanager"
    rate_limit = None

    def __init__(self, config: AlertmanagerConfig) -> None:
        self.config = config
        self.resend_ms: int | None = config.resend_ms
        self._http = HttpClient(config.timeout_ms)

    def rate_key(self, event: AlertEvent) -> str:
        return ""

    async def send(self, event: AlertEvent, now_ms: int) -> Attempt:
        url = self.config.endpoint
        try:
            body = [postable_alert(event, now_ms, self.config.resend_ms)]
        except orjson.JSONEncodeError:
            return unencodable(url, event)
        raw = dumps(body)
        if raw is None:
            return unencodable(url, body)
        return await self._http.post(url, raw, JSON_HEADERS, now_ms, raw.decode())

    async def aclose(self) -> None:
        await self._http.aclose()
