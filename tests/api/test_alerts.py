"""GET /v1/alerts, the flow view's alerts and error budget, and the alert metrics: all from
freshness.alerts and freshness.alert-deliveries records, as the alerter writes them."""

from __future__ import annotations

import httpx
import orjson
import pytest

from api.readmodel import ReadModel
from streams import topics
from streams.alerting.records import (
    AlertState,
    DeliveryRecord,
    SinkCounts,
    encode_alert,
    encode_progress,
)
from streams.connectors.sink import AlertEvent
from tests.api.records import NOW, Records
from tests.api.test_metrics import scrape

STUCK = "app/lead_to_posthog/stuck"
FAST = "app/lead_to_posthog/page-fast"
BACKLOG = "app/dlq_first_retry/backlog"
DAY_MS = 24 * 3_600_000


def put(model: ReadModel, alert_id: str, offset: int, **kw: object) -> None:
    _, flow, alert = alert_id.split("/")
    event = AlertEvent(
        alert_id=alert_id,
        version=0,
        flow=flow,
        alert=alert,
        severity=str(kw.get("severity", "error")),  # type: ignore[arg-type]
        status=str(kw.get("status", "firing")),  # type: ignore[arg-type]
        since=NOW - 120_000,
        updated_at=int(kw.get("updated_at", NOW - 60_000)),  # type: ignore[call-overload]
        summary=f"{alert} on {flow}",
        details={"open_overdue": 1},
    )
    routes = tuple(kw.get("routes", ("pagerduty", "webhook")))  # type: ignore[call-overload]
    model.apply_raw(topics.ALERTS, *encode_alert(AlertState(event, routes)), offset)


def progress(model: ReadModel, record: DeliveryRecord | SinkCounts) -> None:
    model.apply_raw(topics.ALERT_DELIVERIES, *encode_progress(record))


@pytest.fixture
def alerts(model: ReadModel) -> ReadModel:
    put(model, STUCK, 4)
    put(model, FAST, 2, severity="critical", updated_at=NOW - 30_000)
    put(model, FAST, 7, status="resolved", severity="critical", updated_at=NOW - 10_000)
    put(model, BACKLOG, 5, status="resolved", updated_at=NOW - DAY_MS - 1, routes=("webhook",))
    progress(model, DeliveryRecord("pagerduty", STUCK, 4, "firing", "delivered", NOW - 59_000))
    progress(
        model, DeliveryRecord("webhook", STUCK, 4, "firing", "dead_lettered", NOW, 410, "gone")
    )
    progress(model, DeliveryRecord("pagerduty", FAST, 2, "firing", "delivered", NOW - 29_000))
    progress(model, SinkCounts("pagerduty", delivered=2, retried=3, updated_at=NOW))
    return model


async def test_firing_alerts_come_first_then_the_recently_resolved(
    alerts: ReadModel, client: httpx.AsyncClient
) -> None:
    r = await client.get("/v1/alerts")
    assert r.status_code == 200
    body = r.json()["alerts"]
    assert [(a["alert_id"], a["status"], a["version"]) for a in body] == [
        (STUCK, "firing", 4),
        (FAST, "resolved", 7),
    ]  # the backlog resolved more than 24 h ago is left out
    stuck = body[0]
    assert stuck["routes"] == ["pagerduty", "webhook"]
    assert stuck["deliveries"] == [
        {
            "sink": "pagerduty",
            "state": "delivered",
            "version": 4,
            "at": NOW - 59_000,
            "http_status": None,
            "response": "",
        },
        {
            "sink": "webhook",
            "state": "dead_lettered",
            "version": 4,
            "at": NOW,
            "http_status": 410,
            "response": "gone",
        },
    ]
    fast = body[1]["deliveries"]
    assert [(d["sink"], d["state"], d["version"]) for d in fast] == [
        ("pagerduty", "pending", 2),  # took the trigger, not yet the resolve
        ("webhook", "pending", None),
    ]


async def test_alerts_filter_by_flow_and_status_and_refuse_unknown_ones(
    alerts: ReadModel, client: httpx.AsyncClient
) -> None:
    firing = (await client.get("/v1/alerts", params={"status": "firing"})).json()["alerts"]
    assert [a["alert_id"] for a in firing] == [STUCK]
    other = (await client.get("/v1/alerts", params={"flow": "dlq_first_retry"})).json()
    assert other == {"alerts": []}
    assert (await client.get("/v1/alerts", params={"flow": "nope"})).status_code == 404
    assert (await client.get("/v1/alerts", params={"status": "open"})).status_code == 422


async def test_the_flow_view_shows_its_firing_alerts_and_its_error_budget(
    alerts: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    window = rec.window([1_000] * 98 + [9_000] * 2)
    alerts.apply(topics.STATS, window, Records.stats_key(window))
    overdue = rec.breach("stuck-1")
    alerts.apply(topics.BREACHES, overdue, str(overdue["breach_id"]))
    view = (await client.get("/v1/flows/lead_to_posthog")).json()
    assert view["alerts_firing"] == ["stuck"]
    budget = view["error_budget"]
    assert (budget["good"], budget["bad"], budget["objective"]) == (98, 3, 0.99)
    assert budget["burn_rate"] == pytest.approx(3 / 101 / 0.01)
    assert budget["remaining_ratio"] == 0.0  # 2.97x: more than the budget is spent
    calm = (await client.get("/v1/flows/dlq_first_retry")).json()
    assert calm["alerts_firing"] == []
    assert calm["error_budget"]["remaining_ratio"] == 1.0


async def test_alert_metrics_come_from_the_alerting_topics(
    alerts: ReadModel, client: httpx.AsyncClient
) -> None:
    m = await scrape(client)
    firing = m["freshness_alerts_firing"]
    assert firing[(("alert", "stuck"), ("flow", "lead_to_posthog"))] == 1.0
    assert firing[(("alert", "page-fast"), ("flow", "lead_to_posthog"))] == 0.0
    deliveries = m["freshness_alert_deliveries_total"]
    assert deliveries[(("result", "delivered"), ("sink", "pagerduty"))] == 2
    assert deliveries[(("result", "retried"), ("sink", "pagerduty"))] == 3
    budget = m["freshness_error_budget_remaining_ratio"]
    assert budget[(("flow", "dlq_first_retry"),)] == 1.0


async def test_counts_never_go_down_when_an_older_record_is_read(
    alerts: ReadModel, client: httpx.AsyncClient
) -> None:
    progress(alerts, SinkCounts("pagerduty", delivered=1, retried=1, updated_at=NOW - 5))
    deliveries = (await scrape(client))["freshness_alert_deliveries_total"]
    assert deliveries[(("result", "delivered"), ("sink", "pagerduty"))] == 2


def test_a_bad_alert_record_is_counted_not_applied(model: ReadModel) -> None:
    model.apply_raw(topics.ALERTS, STUCK.encode(), orjson.dumps({"alert_id": STUCK}), 1)
    assert model.progress.bad_records == 1
    assert model.alerts.states == {}
