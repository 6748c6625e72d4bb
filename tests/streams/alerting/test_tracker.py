"""The alert tracker: changes only, since/updated_at, versions, stuck's hysteresis, restart
from the outbox, orphans; and a burn page that fires and resolves minute by minute."""

from __future__ import annotations

import dataclasses

from streams.alerting.evaluate import AlertCondition, OpenOverdue, build_snapshot, evaluate
from streams.alerting.policy import MINUTE_MS, AlertPolicy, default_policy
from streams.alerting.tracker import AlertTracker, alert_id
from streams.connectors.sink import AlertEvent
from streams.core.model import Flow
from streams.stats.records import GaugeRecord, WindowRecord, WindowStats
from streams.stats.windows import FlowStats

T0 = 1_767_225_600_000
M0 = T0 // MINUTE_MS
FLOW = Flow("lead", "a.start", "a.done", ("k",), ("k",), target_ms=5_000)
POLICY = default_policy(FLOW)
APP = "funnel-freshness"


def cond(
    alert: str = "stuck",
    *,
    holds: bool = False,
    cleared: bool = False,
    severity: str = "error",
    summary: str = "s",
    flow: str = "lead",
) -> AlertCondition:
    return AlertCondition(
        flow, alert, "stuck", holds, cleared, severity,  # type: ignore[arg-type]
        frozenset({"webhook"}), summary, {"n": 1},
    )  # fmt: skip


def tracker(*restored: AlertEvent, policies: tuple[AlertPolicy, ...] = (POLICY,)) -> AlertTracker:
    return AlertTracker(APP, policies, restored)


def test_fires_once_and_resolves_once() -> None:
    t = tracker()
    assert t.observe([cond(cleared=True)], T0) == []  # never fired: nothing to resolve
    [fired] = t.observe([cond(holds=True, summary="bad")], T0 + 1)
    assert fired == AlertEvent(
        alert_id="funnel-freshness/lead/stuck", version=1, flow="lead", alert="stuck",
        severity="error", status="firing", since=T0 + 1, updated_at=T0 + 1, summary="bad",
        details={"n": 1},
    )  # fmt: skip
    assert t.observe([cond(holds=True, summary="worse")], T0 + 2) == []
    assert t.observe([cond()], T0 + 3) == []  # neither: keeps firing
    [resolved] = t.observe([cond(cleared=True, summary="fine")], T0 + 4)
    assert (resolved.status, resolved.version, resolved.since, resolved.updated_at) == (
        "resolved", 2, T0 + 1, T0 + 4,
    )  # fmt: skip
    assert resolved.summary == "fine"
    assert t.observe([cond(cleared=True)], T0 + 5) == []
    [again] = t.observe([cond(holds=True)], T0 + 6)
    assert (again.status, again.version, again.since) == ("firing", 3, T0 + 6)
    assert t.states[again.alert_id] == again
    assert t.firing() == [again]


def test_a_severity_change_is_emitted_with_the_same_since() -> None:
    t = tracker()
    t.observe([cond(holds=True)], T0)
    [changed] = t.observe([cond(holds=True, severity="critical")], T0 + 10)
    assert (changed.status, changed.severity, changed.since, changed.updated_at) == (
        "firing", "critical", T0, T0 + 10,
    )  # fmt: skip
    assert changed.version == 2


def test_stuck_holds_until_no_overdue_is_left() -> None:
    t = tracker()
    deadline = T0
    policy = POLICY

    def step(now: int, *deadlines: int) -> list[AlertEvent]:
        ods = [OpenOverdue(f"k{d}", d, d) for d in deadlines]
        snap = build_snapshot(policy, None, ods, now_ms=now)
        return t.observe([c for c in evaluate(policy, snap, now) if c.alert == "stuck"], now)

    assert step(deadline + 4_999, deadline) == []
    [fired] = step(deadline + 5_000, deadline)
    assert fired.firing
    # the oldest completes; a younger one is open but not yet 5 s past: still firing
    assert step(deadline + 6_000, deadline + 3_000) == []
    [resolved] = step(deadline + 7_000)
    assert resolved.status == "resolved"
    assert resolved.since == deadline + 5_000


def test_restored_states_continue_without_a_second_page() -> None:
    fired = AlertEvent(
        alert_id(APP, "lead", "stuck"), 41, "lead", "stuck", "error", "firing", T0, T0, "s"
    )
    older = dataclasses.replace(fired, version=7, status="resolved")
    foreign = dataclasses.replace(fired, alert_id="other-app/lead/stuck")
    t = tracker(fired, older, foreign)
    assert list(t.states) == [fired.alert_id]
    assert t.observe([cond(holds=True)], T0 + 1) == []
    [resolved] = t.observe([cond(cleared=True)], T0 + 2)
    assert (resolved.version, resolved.since) == (42, T0)


def test_an_alert_no_policy_has_is_resolved_once() -> None:
    gone = AlertEvent(
        alert_id(APP, "removed", "page-fast"), 3, "removed", "page-fast", "critical", "firing",
        T0, T0, "removed: burning",
    )  # fmt: skip
    off = AlertEvent(alert_id(APP, "lead", "backlog"), 1, "lead", "backlog", "warning", "firing",
                     T0, T0, "lead: 70 pending")  # fmt: skip
    t = tracker(gone, off)
    changes = t.observe([], T0 + 1)
    assert [(c.alert_id, c.status, c.version) for c in changes] == [
        ("funnel-freshness/lead/backlog", "resolved", 2),
        ("funnel-freshness/removed/page-fast", "resolved", 4),
    ]
    assert changes[1].summary.startswith("removed: page-fast is no longer in the policy")
    long = dataclasses.replace(gone, alert_id=alert_id(APP, "removed", "stuck"), summary="y" * 1024)
    [capped] = tracker(long).observe([], T0)
    assert len(capped.summary) == 1024
    assert t.observe([], T0 + 2) == []
    assert t.routes(changes[1]) == {"pagerduty", "alertmanager", "webhook"}


def test_changes_are_sorted_by_alert_id_and_deterministic() -> None:
    def run() -> list[AlertEvent]:
        t = tracker()
        return t.observe(
            [cond("stuck", holds=True), cond("page-fast", holds=True, flow="lead")], T0
        )

    first = run()
    assert [e.alert for e in first] == ["page-fast", "stuck"]
    assert first == run()


def test_routes_come_from_the_policy() -> None:
    t = tracker()
    [e] = t.observe([cond("ticket", holds=True, severity="warning")], T0)
    assert t.routes(e) == {"alertmanager", "webhook"}


def test_thirty_percent_late_pages_and_resolves_once_the_short_window_recovers() -> None:
    """10 minutes of 20 starts a minute, 6 late (30 %: a 30x burn at 0.99), then on time.
    After k on-time minutes the 5 min window holds (5 - k) late minutes: 24x, 18x, 12x: the
    page resolves at the third, while the hour (60 late of 260) still burns at 23x."""
    stats = FlowStats()
    t = tracker()
    log: list[tuple[int, str, float, float]] = []
    for i in range(16):
        minute = M0 + i
        late = 6 if i < 10 else 0
        win = WindowStats(count=20, on_time=20 - late, late=late)
        stats.apply_window(WindowRecord("lead", 0, minute, win, updated_at=T0))
        now = minute * MINUTE_MS + MINUTE_MS - 1
        stats.apply_gauge(GaugeRecord("lead", 0, 0, None, 0, 0, now, updated_at=now))
        conds = evaluate(POLICY, build_snapshot(POLICY, stats, [], now_ms=now), now)
        fast = next(c for c in conds if c.alert == "page-fast")
        for change in t.observe([fast], now):
            long, short = fast.details["long"], fast.details["short"]
            assert isinstance(long, dict)
            assert isinstance(short, dict)
            log.append((i, change.status, long["burn_rate"], short["burn_rate"]))
    assert [(i, s) for i, s, _, _ in log] == [(0, "firing"), (12, "resolved")]
    _, _, long_rate, short_rate = log[1]
    assert round(long_rate, 6) == round(60 / 260 / 0.01, 6)
    assert round(short_rate, 6) == round(12 / 100 / 0.01, 6)
    assert long_rate > 14.4


def test_the_worked_example_of_docs_alerting() -> None:
    """docs/alerting.md, "Worked example": 10 starts a minute, an hour with 3 late of every
    10 (2 in one minute), then on time: when each tier fires and resolves, and its numbers."""
    flow = dataclasses.replace(FLOW, name="lead_to_posthog")
    policy = default_policy(flow)
    stats, t = FlowStats(), tracker(policies=(policy,))
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for i in range(420):
        late = (2 if i == 58 else 3) if i < 60 else 0
        win = WindowStats(count=10, on_time=10 - late, late=late)
        stats.apply_window(WindowRecord(flow.name, 0, M0 + i, win, updated_at=T0))
        now = (M0 + i) * MINUTE_MS + MINUTE_MS - 1
        stats.apply_gauge(GaugeRecord(flow.name, 0, 0, None, 0, 0, now, updated_at=now))
        for change in t.observe(
            evaluate(policy, build_snapshot(policy, stats, [], now_ms=now), now), now
        ):
            seen[(change.alert, change.status)] = (i, change.summary)
    assert {k: i for k, (i, _) in seen.items()} == {
        ("page-fast", "firing"): 1, ("page-slow", "firing"): 1, ("ticket", "firing"): 1,
        ("page-fast", "resolved"): 60 + 2, ("page-slow", "resolved"): 60 + 23,
        ("ticket", "resolved"): 60 + 347,
    }  # fmt: skip
    assert seen[("page-fast", "firing")][1] == (
        "lead_to_posthog: burning error budget 30.0x over 1 h and 30.0x over 5 min "
        "(page-fast > 14.4x); 6 bad (late 6, lost 0, overdue 0) of 20 in 1 h"
    )
    assert seen[("page-fast", "resolved")][1].startswith(
        "lead_to_posthog: error budget burn 28.3x over 1 h and 10.0x over 5 min"
    )
    assert "21.3x over 6 h and 5.67x over 30 min" in seen[("page-slow", "resolved")][1]
    assert "4.39x over 3 d and 0.97x over 6 h" in seen[("ticket", "resolved")][1]
