"""The alert policy: the defaults of DESIGN section 9, the escalation levels, and the
checks every rule makes on itself."""

from __future__ import annotations

import dataclasses

import pytest

from streams.alerting.policy import (
    ALL_ROUTES,
    DAY_MS,
    ESCALATION,
    HOUR_MS,
    MINUTE_MS,
    AlertPolicy,
    BacklogRule,
    BurnTier,
    StuckRule,
    default_policy,
    routes_of,
)
from streams.core.model import Flow
from streams.flows.config import load_flows

FLOWS = {f.name: f for f in load_flows(None)}


def test_defaults_are_the_design_table() -> None:
    policy = default_policy(FLOWS["lead_to_posthog"])
    pager = {"pagerduty", "alertmanager", "webhook"}
    assert [
        (t.name, t.factor, t.long_window_ms, t.short_window_ms, t.severity, t.routes, t.min_bad)
        for t in policy.tiers
    ] == [
        ("page-fast", 14.4, HOUR_MS, 5 * MINUTE_MS, "critical", pager, 5),
        ("page-slow", 6.0, 6 * HOUR_MS, 30 * MINUTE_MS, "critical", pager, 5),
        ("ticket", 1.0, 3 * DAY_MS, 6 * HOUR_MS, "warning", {"alertmanager", "webhook"}, 5),
    ]
    assert policy.stuck == StuckRule(after_ms=5_000, min_open=1, severity="error", routes=pager)
    assert policy.backlog is None
    assert policy.objective == 0.99
    assert policy.alerts == ("page-fast", "page-slow", "ticket", "stuck")


def test_stuck_defaults_to_the_flows_target_and_backlog_only_for_the_dlq() -> None:
    assert {n: default_policy(f).stuck.after_ms for n, f in FLOWS.items()} == {  # type: ignore[union-attr]
        "lead_to_posthog": 5_000,
        "payment_to_posthog": 10_000,
        "dlq_first_retry": 60_000,
        "approval_to_notification": 300_000,
    }
    backlogs = {n: default_policy(f).backlog for n, f in FLOWS.items()}
    assert backlogs == {
        "lead_to_posthog": None,
        "payment_to_posthog": None,
        "dlq_first_retry": BacklogRule(50, "warning", frozenset({"alertmanager", "webhook"})),
        "approval_to_notification": None,
    }
    assert default_policy(FLOWS["dlq_first_retry"]).alerts[-1] == "backlog"


def test_severities_map_to_the_funnels_escalation_levels() -> None:
    assert ESCALATION == {"critical": "P1", "error": "P2", "warning": "P3", "info": "P4"}


def test_routes_and_severity_by_alert_name() -> None:
    policy = default_policy(FLOWS["dlq_first_retry"])
    assert policy.routes_for("ticket") == {"alertmanager", "webhook"}
    assert policy.routes_for("stuck") == ALL_ROUTES
    assert policy.routes_for("backlog") == {"alertmanager", "webhook"}
    assert policy.routes_for("gone") == ALL_ROUTES
    assert policy.severity_for("page-slow") == "critical"
    assert policy.severity_for("backlog") == "warning"
    assert policy.severity_for("gone") is None
    assert policy.windows_ms() == (
        5 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, 3 * DAY_MS,
    )  # fmt: skip


def test_routes_of_names_the_unknown_route() -> None:
    assert routes_of(["webhook", "pagerduty"]) == {"webhook", "pagerduty"}
    with pytest.raises(ValueError, match="unknown route 'slack'"):
        routes_of(["webhook", "slack"])


TIER = BurnTier("page-fast", 14.4, HOUR_MS, 5 * MINUTE_MS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"factor": 0.0}, "factor must be greater than 0"),
        ({"long_window_ms": HOUR_MS + 1}, "whole number of minutes"),
        ({"short_window_ms": 0}, "whole number of minutes"),
        ({"long_window_ms": 31 * DAY_MS}, "at most 30d"),
        ({"short_window_ms": HOUR_MS}, "short window must be shorter"),
        ({"min_bad": 0}, "min_bad must be at least 1"),
        ({"severity": "fatal"}, "unknown severity 'fatal'"),
        ({"routes": frozenset({"slack"})}, "unknown route 'slack'"),
    ],
)
def test_a_burn_tier_checks_itself(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TIER, **change)  # type: ignore[arg-type]


def test_stuck_backlog_and_policy_check_themselves() -> None:
    with pytest.raises(ValueError, match="min_open must be at least 1"):
        StuckRule(after_ms=1, min_open=0)
    with pytest.raises(ValueError, match="after must not be negative"):
        StuckRule(after_ms=-1)
    with pytest.raises(ValueError, match="max_pending must not be negative"):
        BacklogRule(-1)
    with pytest.raises(ValueError, match="objective must be between 0 and 1"):
        AlertPolicy("f", 1.0)
    with pytest.raises(ValueError, match="must be unique"):
        AlertPolicy("f", 0.99, (TIER, TIER))
    with pytest.raises(ValueError, match="must be unique and not stuck"):
        AlertPolicy("f", 0.99, (dataclasses.replace(TIER, name="stuck"),))


def test_a_rule_that_is_off_has_no_alert() -> None:
    flow = Flow("f", "a", "b", ("k",), ("k",))
    policy = dataclasses.replace(default_policy(flow), tiers=(), stuck=None)
    assert policy.alerts == ()
    assert policy.windows_ms() == ()
