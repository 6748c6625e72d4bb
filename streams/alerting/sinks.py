"""The sinks the settings enable, and what every alert state carries to them besides the
outbox record: links to the API's views of its flow and of its stuck entities.

Each sink is enabled by its own settings (DESIGN section 9); several may be at once.
Misconfiguration stops start-up with :class:`~streams.errors.ConfigError` naming the
variable (the connectors' own checks: the routing key's length, URLs, the secret).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from urllib.parse import quote

from streams.connectors.alertmanager import AlertmanagerConfig, AlertmanagerSink
from streams.connectors.pagerduty import PagerDutyConfig, PagerDutySink
from streams.connectors.sink import AlertEvent, Link, Sink
from streams.connectors.webhook import WebhookConfig, WebhookSink
from streams.settings import Settings

ENTITY_LINKS = 3
"""How many of a stuck alert's oldest entities get a link."""


def build_sinks(settings: Settings) -> list[Sink]:
    """A new sink (with its own HTTP session) for every sink the settings enable."""
    sinks: list[Sink] = []
    if settings.pagerduty_routing_key is not None:
        config = PagerDutyConfig(
            routing_key=settings.pagerduty_routing_key.get_secret_value(),
            url=settings.pagerduty_url,
            client_url=settings.api_public_url,
        )
        sinks.append(PagerDutySink(config))
    if settings.alertmanager_url:
        am = AlertmanagerConfig(settings.alertmanager_url, settings.alertmanager_resend_ms)
        sinks.append(AlertmanagerSink(am))
    if settings.webhook_url:
        assert settings.webhook_secret is not None  # Settings refuses a URL without one
        secret = settings.webhook_secret.get_secret_value()
        sinks.append(WebhookSink(WebhookConfig(settings.webhook_url, secret)))
    return sinks


def with_links(event: AlertEvent, api_url: str | None) -> AlertEvent:
    """``event`` with links to its flow's view and, for a stuck alert, to its oldest stuck
    entities' timelines, when the API's public URL is known (else unchanged)."""
    if not api_url:
        return event
    base = api_url.rstrip("/")
    flow = quote(event.flow, safe="")
    links = [Link(f"{base}/v1/flows/{flow}", f"{event.flow} in the freshness API")]
    for key in _stuck_keys(event)[:ENTITY_LINKS]:
        href = f"{base}/v1/entities/{flow}/{quote(key, safe='')}"
        links.append(Link(href, f"timeline of {key}"))
    return dataclasses.replace(event, links=tuple(links))


def _stuck_keys(event: AlertEvent) -> Sequence[str]:
    oldest = event.details.get("oldest")
    if not isinstance(oldest, list):
        return ()
    return [str(o["key"]) for o in oldest if isinstance(o, dict) and "key" in o]
