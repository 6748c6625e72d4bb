"""Which sinks the settings enable, and the links every alert state carries to them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from streams.alerting.alerter import check_sinks
from streams.alerting.sinks import build_sinks, with_links
from streams.errors import ConfigError
from streams.settings import Settings
from streams.testing.peers.alerts import alert_event

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="


def test_no_sink_settings_enable_no_sink() -> None:
    assert build_sinks(Settings()) == []


def test_each_sink_is_enabled_by_its_own_settings() -> None:
    settings = Settings(
        pagerduty_routing_key=SecretStr("K" * 32),
        alertmanager_url="http://am:9093",
        alertmanager_resend_ms=5_000,
        webhook_url="https://hooks.example.com/freshness",
        webhook_secret=SecretStr(SECRET),
    )
    sinks = build_sinks(settings)
    assert [s.name for s in sinks] == ["pagerduty", "alertmanager", "webhook"]
    assert sinks[1].resend_ms == 5_000
    assert sinks[0].rate_limit is not None
    assert sinks[0].rate_limit.events == 120


def test_a_bad_sink_setting_stops_start_up_naming_it() -> None:
    with pytest.raises(ConfigError, match="FRESHNESS_PAGERDUTY_ROUTING_KEY"):
        check_sinks(Settings(pagerduty_routing_key=SecretStr("short")))
    with pytest.raises(ConfigError, match="FRESHNESS_ALERTMANAGER_URL"):
        check_sinks(Settings(alertmanager_url="am:9093"))


def test_links_point_at_the_flow_and_the_oldest_stuck_entities() -> None:
    stuck = alert_event(
        "app/lead_to_posthog/stuck",
        details={"oldest": [{"key": f"lead/{i}"} for i in range(5)]},
    )
    linked = with_links(stuck, "https://freshness.example.com/")
    assert [link.href for link in linked.links] == [
        "https://freshness.example.com/v1/flows/lead_to_posthog",
        "https://freshness.example.com/v1/entities/lead_to_posthog/lead%2F0",
        "https://freshness.example.com/v1/entities/lead_to_posthog/lead%2F1",
        "https://freshness.example.com/v1/entities/lead_to_posthog/lead%2F2",
    ]
    assert with_links(stuck, None) is stuck
