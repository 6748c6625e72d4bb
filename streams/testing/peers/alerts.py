"""A builder of :class:`~streams.connectors.sink.AlertEvent` records for connector and
delivery tests (the one place their defaults live)."""

from __future__ import annotations

from streams.connectors.sink import AlertEvent, Link, Severity, Status

T0 = 1_776_941_217_000
"""2026-04-23T10:46:57Z, a whole second, in epoch ms."""


def alert_event(
    alert_id: str = "funnel-freshness/lead_to_posthog/page-fast",
    version: int = 1,
    *,
    status: Status = "firing",
    severity: Severity = "critical",
    since: int = T0,
    updated_at: int | None = None,
    summary: str = "lead_to_posthog burns its error budget 20x over 1 h and 5 min",
    details: dict[str, object] | None = None,
    links: tuple[Link, ...] = (),
) -> AlertEvent:
    """An alert state; ``flow`` and ``alert`` are read off ``<app>/<flow>/<alert>``."""
    _, flow, alert = alert_id.split("/", 2)
    return AlertEvent(
        alert_id=alert_id,
        version=version,
        flow=flow,
        alert=alert,
        severity=severity,
        status=status,
        since=since,
        updated_at=since if updated_at is None else updated_at,
        summary=summary,
        details={"burn_rate_1h": 20.5, "bad": 42} if details is None else details,
        links=links,
    )
