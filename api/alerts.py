"""``GET /v1/alerts``: the alerter's alerts as ``freshness.alerts`` and
``freshness.alert-deliveries`` hold them (the read model's
:class:`~streams.alerting.ledger.Ledger`), never the alerter's memory.

Firing alerts come first, then those resolved within :data:`RESOLVED_KEEP_MS`; newest
change first in each group. Every alert lists, per sink of its routes, whether that sink
has taken its current state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.models import AlertList, AlertView, ErrorBody, SinkDelivery
from api.readmodel import ReadModel
from streams.alerting.ledger import Ledger
from streams.alerting.records import AlertState
from streams.connectors.sink import Status as AlertStatus

RESOLVED_KEEP_MS = 24 * 3_600_000
"""How long a resolved alert stays in the list."""

_ERR: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "Unknown flow."},
    422: {"model": ErrorBody, "description": "Bad query parameter."},
}


def alert_list(
    ledger: Ledger, now: int, *, flow: str | None = None, status: AlertStatus | None = None
) -> AlertList:
    """The alerts of ``ledger`` worth showing at ``now``, filtered by flow and status."""
    shown = [
        s
        for s in ledger.states.values()
        if (flow is None or s.event.flow == flow)
        and (status is None or s.event.status == status)
        and (s.event.firing or now - s.event.updated_at <= RESOLVED_KEEP_MS)
    ]
    shown.sort(key=lambda s: (not s.event.firing, -s.event.updated_at, s.alert_id))
    return AlertList(alerts=[alert_view(ledger, s) for s in shown])


def alert_view(ledger: Ledger, state: AlertState) -> AlertView:
    e = state.event
    deliveries = [
        SinkDelivery(
            sink=p.sink,
            state=p.state,
            version=p.version,
            at=p.at,
            http_status=p.http_status,
            response=p.response,
        )
        for p in ledger.progress(state)
    ]
    return AlertView(
        alert_id=e.alert_id,
        flow=e.flow,
        alert=e.alert,
        severity=e.severity,
        status=e.status,
        since=e.since,
        updated_at=e.updated_at,
        summary=e.summary,
        details=dict(e.details),
        version=e.version,
        routes=list(state.routes),
        deliveries=deliveries,
    )


def router(model: ReadModel) -> APIRouter:
    """The ``/v1/alerts`` route over ``model``."""
    routes = APIRouter(prefix="/v1")

    @routes.get(
        "/alerts",
        response_model=AlertList,
        responses=_ERR,
        summary="Firing and recently resolved alerts, with per-sink delivery state",
    )
    async def alerts(
        flow: Annotated[str | None, Query(description="Only this flow (404 if unknown).")] = None,
        status: Annotated[AlertStatus | None, Query(description="Only this status.")] = None,
    ) -> AlertList:
        if flow is not None:
            model.require_flow(flow)
        return alert_list(model.alerts, model.clock(), flow=flow, status=status)

    return routes
