"""The Alertmanager connector: its mapping, and the real Alertmanager's view of what it sends
(``integration``: needs the binary of ``make alertmanager``, no broker)."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from streams.alerting.delivery import SinkDriver
from streams.broker.process import free_port
from streams.connectors.alertmanager import AlertmanagerConfig, AlertmanagerSink, postable_alert
from streams.connectors.sink import Link, Outcome
from streams.core.clock import now_ms
from streams.core.timeparse import parse_event_time
from streams.errors import ConfigError
from streams.testing.peers.alertmanager import AlertmanagerProcess, get_alerts
from streams.testing.peers.alerts import T0, alert_event

Alerts = list[dict[str, Any]]


def test_a_firing_state_is_valid_for_four_resend_periods() -> None:
    event = alert_event(links=(Link("http://api/v1/flows/lead_to_posthog", "flow"),))
    assert postable_alert(event, T0 + 10_000, resend_ms=60_000) == {
        "labels": {
            "alertname": "page-fast",
            "flow": "lead_to_posthog",
            "severity": "critical",
            "alert_id": "funnel-freshness/lead_to_posthog/page-fast",
        },
        "annotations": {
            "summary": event.summary,
            "details": '{"burn_rate_1h":20.5,"bad":42}',
            "links": "http://api/v1/flows/lead_to_posthog",
        },
        "startsAt": "2026-04-23T10:46:57.000Z",
        "endsAt": "2026-04-23T10:51:07.000Z",
        "generatorURL": "http://api/v1/flows/lead_to_posthog",
    }


def test_a_resolved_state_ends_when_it_resolved() -> None:
    resolved = alert_event(status="resolved", updated_at=T0 + 90_000, details={})
    alert = postable_alert(resolved, T0 + 99_000, resend_ms=60_000)
    assert (alert["startsAt"], alert["endsAt"]) == (
        "2026-04-23T10:46:57.000Z",
        "2026-04-23T10:48:27.000Z",
    )
    assert alert["annotations"] == {"summary": resolved.summary}
    assert "generatorURL" not in alert
    skewed = alert_event(status="resolved", updated_at=T0 - 5)
    assert postable_alert(skewed, T0, 60_000)["endsAt"] == "2026-04-23T10:46:57.000Z"


def test_the_config_names_the_endpoint_and_refuses_a_bad_url() -> None:
    assert AlertmanagerConfig("http://am:9093/").endpoint == "http://am:9093/api/v2/alerts"
    with pytest.raises(ConfigError, match="FRESHNESS_ALERTMANAGER_URL"):
        AlertmanagerConfig("am:9093")


async def test_an_unreachable_alertmanager_is_retried() -> None:
    sink = AlertmanagerSink(AlertmanagerConfig(f"http://127.0.0.1:{free_port()}"))
    try:
        attempt = await sink.send(alert_event(), T0)
    finally:
        await sink.aclose()
    assert (attempt.outcome, attempt.status) == (Outcome.RETRY, None)


def unique_id(alert: str = "page-fast") -> str:
    return f"test-{uuid.uuid4().hex[:8]}/lead_to_posthog/{alert}"


async def eventually(
    read: Callable[[], Awaitable[Alerts]], done: Callable[[Alerts], bool], timeout_s: float = 10
) -> Alerts:
    """Poll Alertmanager until ``done`` holds for what it shows (or fail with it)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        seen = await read()
        if done(seen) or asyncio.get_running_loop().time() > deadline:
            return seen
        await asyncio.sleep(0.1)


@pytest.mark.integration
async def test_alertmanager_shows_a_sent_alert_firing_then_resolved(
    alertmanager: AlertmanagerProcess,
) -> None:
    alert_id = unique_id()
    sink = AlertmanagerSink(AlertmanagerConfig(alertmanager.url))
    read = functools.partial(get_alerts, alertmanager.url, f'alert_id="{alert_id}"')
    since = now_ms() - 60_000
    link = (Link("http://127.0.0.1:8000/v1/flows/lead_to_posthog", "flow"),)
    try:
        firing = await sink.send(alert_event(alert_id, since=since, links=link), now_ms())
        assert (firing.outcome, firing.status) == (Outcome.DELIVERED, 200)
        shown = await eventually(read, lambda a: bool(a) and a[0]["status"]["state"] == "active")
        [alert] = shown
        assert alert["status"]["state"] == "active"
        assert alert["labels"] == {
            "alertname": "page-fast",
            "flow": "lead_to_posthog",
            "severity": "critical",
            "alert_id": alert_id,
        }
        assert orjson.loads(alert["annotations"]["details"]) == {"burn_rate_1h": 20.5, "bad": 42}
        assert parse_event_time(alert["startsAt"]) == since
        assert alert["generatorURL"] == link[0].href
        resolved = alert_event(alert_id, 2, status="resolved", since=since, updated_at=now_ms())
        attempt = await sink.send(resolved, now_ms())
        assert attempt.outcome is Outcome.DELIVERED
        assert await eventually(read, lambda a: a == []) == []
    finally:
        await sink.aclose()


@pytest.mark.integration
async def test_alertmanager_refuses_an_alert_that_ends_before_it_starts(
    alertmanager: AlertmanagerProcess,
) -> None:
    sink = AlertmanagerSink(AlertmanagerConfig(alertmanager.url))
    future = alert_event(unique_id(), since=now_ms() + 3_600_000)
    try:
        attempt = await sink.send(future, now_ms())
    finally:
        await sink.aclose()
    assert (attempt.outcome, attempt.status) == (Outcome.REJECTED, 400)
    assert "start time must be before end time" in attempt.body


@pytest.mark.integration
async def test_re_sends_keep_a_firing_alert_active_past_its_resolve_timeout(
    alertmanager: AlertmanagerProcess,
) -> None:
    """resolve_timeout is 1 s (conftest) and a state is valid for 4 x 500 ms: only the alert
    the driver re-sends is still active after 4 s; the one sent once has expired."""
    kept_id, once_id = unique_id("stuck"), unique_id("backlog")
    kept = AlertmanagerSink(AlertmanagerConfig(alertmanager.url, resend_ms=500))
    once = AlertmanagerSink(AlertmanagerConfig(alertmanager.url, resend_ms=500))
    driver = SinkDriver(kept)
    task = asyncio.create_task(driver.run())
    try:
        driver.offer(alert_event(kept_id, since=now_ms()))
        assert (await once.send(alert_event(once_id, since=now_ms()), now_ms())).status == 200
        await asyncio.sleep(4.0)
        active = {a["labels"]["alert_id"] for a in await get_alerts(alertmanager.url)}
        assert kept_id in active
        assert once_id not in active
        assert driver.counts.resent >= 4
        driver.offer(alert_event(kept_id, 2, status="resolved", updated_at=now_ms()))
        read = functools.partial(get_alerts, alertmanager.url, f'alert_id="{kept_id}"')
        assert await eventually(read, lambda a: a == []) == []
        assert driver.active == []
    finally:
        driver.stop()
        await task
        await kept.aclose()
        await once.aclose()
