"""PagerDuty Events API v2 (``POST /v2/enqueue``): an alert state becomes one event.

A firing state is a ``trigger`` and a resolved state a ``resolve``, both with
``dedup_key`` = the alert id, so every re-send of the same alert lands on the same
PagerDuty alert and incident (PagerDuty de-duplicates triggers with an open key). PagerDuty
answers 202 when it took the event, 400 with ``{"status", "message", "errors"}`` when the
event is invalid (never retried), 429 when the routing key is over its budget and 5xx when
it fails (both retried). The budget is 120 events per minute per routing key.

Reference: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and the
schema in PagerDuty/api-schema ``reference/events-v2/openapiv3.json``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field

import orjson

from streams.connectors.http import JSON_HEADERS, HttpClient, dumps, unencodable
from streams.connectors.sink import AlertEvent, Attempt, RateLimit
from streams.core.timeparse import format_event_time
from streams.errors import ConfigError

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
"""PagerDuty's limit on ``payload.summary``, in characters."""
DEDUP_KEY_MAX = 255
ROUTING_KEY_LENGTH = 32
EVENTS_PER_MINUTE = 120
"""PagerDuty's documented Events API budget per routing key (integration key)."""
ELLIPSIS = "\u2026"


@dataclass(frozen=True, slots=True)
class PagerDutyConfig:
    """One PagerDuty Events v2 integration (a routing key) and how events are labelled.

    ``source``, ``group`` and ``client`` go into every trigger; ``client_url`` (e.g. the
    monitor's status page) becomes PagerDuty's "view in client" link when set.
    """

    routing_key: str = field(repr=False)
    url: str = DEFAULT_URL
    source: str = "funnel-freshness"
    group: str = "funnel-freshness"
    client: str = "funnel-freshness"
    client_url: str | None = None
    events_per_minute: int = EVENTS_PER_MINUTE
    timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if len(self.routing_key) != ROUTING_KEY_LENGTH:
            raise ConfigError(
                "FRESHNESS_PAGERDUTY_ROUTING_KEY must be the 32-character integration key of "
                f"an Events API v2 integration (got {len(self.routing_key)} characters)"
            )
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"FRESHNESS_PAGERDUTY_URL must be an http(s) URL: {self.url!r}")
        if self.events_per_minute < 1 or self.timeout_ms < 1:
            raise ConfigError("PagerDuty events_per_minute and timeout_ms must be >= 1")


def dedup_key(alert_id: str) -> str:
    """The alert id, or when it is over 255 characters a stable shortened form of it."""
    if len(alert_id) <= DEDUP_KEY_MAX:
        return alert_id
    digest = hashlib.sha256(alert_id.encode("utf-8", errors="surrogatepass")).hexdigest()
    return f"{alert_id[: DEDUP_KEY_MAX - len(digest) - 1]}#{digest}"


def summary(text: str, fallback: str) -> str:
    """``text`` made fit for ``payload.summary``: valid UTF-8, 1..1024 characters.

    Longer text is cut and ends with an ellipsis; a character whose combining marks would
    be cut off is dropped with them. Unpaired surrogates become ``?``; empty text becomes
    ``fallback``.
    """
    clean = text.encode("utf-8", errors="replace").decode("utf-8").strip() or fallback
    if len(clean) <= SUMMARY_MAX:
        return clean
    end = SUMMARY_MAX - len(ELLIPSIS)
    while end > 0 and unicodedata.combining(clean[end]):
        end -= 1
    return clean[:end] + ELLIPSIS


def enqueue_body(event: AlertEvent, config: PagerDutyConfig) -> dict[str, object]:
    """The Events v2 request for one alert state (a pure mapping, no I/O)."""
    body: dict[str, object] = {
        "routing_key": config.routing_key,
        "dedup_key": dedup_key(event.alert_id),
    }
    if not event.firing:
        body["event_action"] = "resolve"
        return body
    body["event_action"] = "trigger"
    body["client"] = config.client
    if config.client_url:
        body["client_url"] = config.client_url
    body["payload"] = _payload(event, config)
    if event.links:
        body["links"] = [{"href": link.href, "text": link.text} for link in event.links]
    return body


def _payload(event: AlertEvent, config: PagerDutyConfig) -> dict[str, object]:
    details: dict[str, object] = {
        **event.details,
        "alert_id": event.alert_id,
        "flow": event.flow,
        "alert": event.alert,
        "since": format_event_time(event.since),
    }
    return {
        "summary": summary(event.summary, f"{event.alert} on {event.flow}"),
        "source": config.source,
        "severity": event.severity,
        "timestamp": format_event_time(event.updated_at),
        "component": event.flow,
        "group": config.group,
        "class": event.alert,
        "custom_details": details,
    }


def redact(body: dict[str, object]) -> str:
    """The request as JSON with the routing key cut to its last 4 characters."""
    key = str(body.get("routing_key", ""))
    shown = {**body, "routing_key": f"...{key[-4:]}"}
    return orjson.dumps(shown).decode()


class PagerDutySink:
    """Delivers alert states to one PagerDuty routing key (see :class:`~streams.connectors.
    sink.Sink`). Its rate limit is ``events_per_minute`` per routing key; no re-sends are
    needed (PagerDuty keeps an alert open until it is resolved)."""

    name = "pagerduty"
    resend_ms = None

    def __init__(self, config: PagerDutyConfig) -> None:
        self.config = config
        self.rate_limit: RateLimit | None = RateLimit(config.events_per_minute, 60_000)
        self._http = HttpClient(config.timeout_ms)

    def rate_key(self, event: AlertEvent) -> str:
        return self.config.routing_key

    async def send(self, event: AlertEvent, now_ms: int) -> Attempt:
        body = enqueue_body(event, self.config)
        raw = dumps(body)
        if raw is None:
            return unencodable(self.config.url, {**body, "routing_key": "..."})
        return await self._http.post(self.config.url, raw, JSON_HEADERS, now_ms, redact(body))

    async def aclose(self) -> None:
        await self._http.aclose()
