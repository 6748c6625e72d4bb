"""Evaluation of a flow snapshot: burn rates by hand, low-traffic safety, the stuck
deadline boundary, the backlog threshold, and what counts as bad in a window."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from streams.alerting.evaluate import (
    SUMMARY_MAX,
    AlertCondition,
    FlowSnapshot,
    OpenOverdue,
    build_snapshot,
    cap_summary,
    evaluate,
)
from streams.alerting.policy import (
    HOUR_MS,
    MINUTE_MS,
    AlertPolicy,
    BacklogRule,
    BurnTier,
    StuckRule,
    default_policy,
)
from streams.core.model import Breach, Flow
from streams.stats.records import RETENTION_MINUTES, GaugeRecord, WindowRecord, WindowStats
from streams.stats.windows import FlowStats

T0 = 1_767_225_600_000
"""An epoch ms on a whole hour."""
M0 = T0 // MINUTE_MS
FLOW = Flow("lead", "a.start", "a.done", ("k",), ("k",), target_ms=5_000, objective=0.99)
POLICY = default_policy(FLOW)


def add_minute(
    stats: FlowStats, minute: int, *, on_time: int = 0, late: int = 0, lost: int = 0, part: int = 0
) -> None:
    win = WindowStats(count=on_time + late, on_time=on_time, late=late, lost=lost)
    stats.apply_window(WindowRecord("lead", part, minute, win, updated_at=T0))


def watermark(stats: FlowStats, ms: int, *, pending: int = 0, part: int = 0) -> None:
    stats.apply_gauge(GaugeRecord("lead", part, pending, None, 0, 0, ms, updated_at=ms))


def end_of(minute: int) -> int:
    return minute * MINUTE_MS + MINUTE_MS - 1


def by_alert(conditions: list[AlertCondition]) -> dict[str, AlertCondition]:
    return {c.alert: c for c in conditions}


def run(
    stats: FlowStats | None,
    now_ms: int,
    breaches: list[Breach | OpenOverdue] | None = None,
    policy: AlertPolicy = POLICY,
    pending: int | None = None,
) -> dict[str, AlertCondition]:
    snap = build_snapshot(policy, stats, breaches or [], now_ms=now_ms, pending=pending)
    return by_alert(evaluate(policy, snap, now_ms))


def rates(cond: AlertCondition) -> tuple[float, float]:
    long, short = cond.details["long"], cond.details["short"]
    assert isinstance(long, dict)
    assert isinstance(short, dict)
    return long["burn_rate"], short["burn_rate"]


def burning_hour() -> tuple[FlowStats, int]:
    """An hour of 10 starts a minute: 3 late in each of the first 55 minutes, then
    3, 3, 3, 2, 3 late in the last five (179 of 600; 14 of 50)."""
    stats = FlowStats()
    last = M0 + 59
    for m in range(M0, last + 1):
        late = 2 if m == last - 1 else 3
        add_minute(stats, m, on_time=10 - late, late=late)
    watermark(stats, end_of(last))
    return stats, end_of(last)


# ---- burn rates -------------------------------------------------------------------------


def test_burn_rates_equal_a_hand_computation() -> None:
    stats, now = burning_hour()
    got = run(stats, now)
    budget = 1 - 0.99
    assert rates(got["page-fast"]) == pytest.approx((179 / 600 / budget, 14 / 50 / budget))
    # page-slow: 6 h holds only this hour; its 30 min: 25 minutes of 3 late plus the last 14
    assert rates(got["page-slow"]) == pytest.approx((179 / 600 / budget, 89 / 300 / budget))
    assert rates(got["ticket"]) == pytest.approx((179 / 600 / budget, 179 / 600 / budget))
    assert all(got[t].holds and not got[t].cleared for t in ("page-fast", "page-slow", "ticket"))
    assert got["page-fast"].summary == (
        "lead: burning error budget 29.8x over 1 h and 28.0x over 5 min (page-fast > 14.4x); "
        "179 bad (late 179, lost 0, overdue 0) of 600 in 1 h"
    )
    assert got["page-fast"].severity == "critical"
    assert got["ticket"].severity == "warning"
    assert got["page-fast"].routes == {"pagerduty", "alertmanager", "webhook"}
    assert got["ticket"].routes == {"alertmanager", "webhook"}


def test_thirty_percent_late_is_a_thirty_fold_burn_that_pages() -> None:
    stats = FlowStats()
    for m in range(M0, M0 + 60):
        add_minute(stats, m, on_time=7, late=3)
    watermark(stats, end_of(M0 + 59))
    fast = run(stats, end_of(M0 + 59))["page-fast"]
    assert rates(fast) == pytest.approx((30.0, 30.0))
    assert fast.holds
    assert fast.details["factor"] == 14.4


def test_windows_count_whole_minutes_ending_with_the_reference_minute() -> None:
    stats = FlowStats()
    add_minute(stats, M0, late=10)  # five minutes before the reference minute: outside 5 min
    add_minute(stats, M0 + 1, late=5, on_time=5)  # four before: the 5 min window's first
    add_minute(stats, M0 + 5, on_time=10)
    watermark(stats, M0 * MINUTE_MS + 5 * MINUTE_MS)  # the first ms of minute M0 + 5
    got = run(stats, T0 + 10 * MINUTE_MS)
    long, short = rates(got["page-fast"])
    assert short == pytest.approx(5 / 20 / 0.01)
    assert long == pytest.approx(15 / 30 / 0.01)
    assert got["page-fast"].details["short"] == {
        "window_ms": 5 * MINUTE_MS, "covered_ms": 5 * MINUTE_MS, "burn_rate": short,
        "on_time": 15, "late": 5, "lost": 0, "overdue": 0, "bad": 5, "judged": 20,
    }  # fmt: skip


def test_lost_starts_are_bad() -> None:
    stats = FlowStats()
    add_minute(stats, M0 + 59, on_time=4, lost=6)
    watermark(stats, end_of(M0 + 59))
    fast = run(stats, end_of(M0 + 59))["page-fast"]
    assert rates(fast) == pytest.approx((60.0, 60.0))
    assert fast.holds


def test_both_windows_must_burn_above_the_factor() -> None:
    stats, now = burning_hour()
    for m in range(M0 + 60, M0 + 65):  # five on-time minutes: the short window recovers
        add_minute(stats, m, on_time=10)
    now = end_of(M0 + 64)
    watermark(stats, now)
    fast = run(stats, now)["page-fast"]
    long, short = rates(fast)
    assert short == 0.0
    assert long > 14.4  # the hour still burns
    assert not fast.holds
    assert fast.cleared


def test_a_burn_rate_equal_to_the_factor_does_not_fire() -> None:
    tier = BurnTier("t", 2.0, HOUR_MS, 5 * MINUTE_MS, min_bad=1)
    policy = AlertPolicy("lead", 0.5, (tier,))  # budget 0.5: all bad is exactly 2x
    stats = FlowStats()
    add_minute(stats, M0, late=10)
    watermark(stats, end_of(M0))
    assert rates(run(stats, end_of(M0), policy=policy)["t"]) == (2.0, 2.0)
    assert not run(stats, end_of(M0), policy=policy)["t"].holds
    lower = dataclasses.replace(tier, factor=1.999)
    assert run(stats, end_of(M0), policy=AlertPolicy("lead", 0.5, (lower,)))["t"].holds


def test_one_late_start_of_three_in_an_hour_does_not_page() -> None:
    stats = FlowStats()
    add_minute(stats, M0 + 58, on_time=2)
    add_minute(stats, M0 + 59, late=1)
    watermark(stats, end_of(M0 + 59))
    fast = run(stats, end_of(M0 + 59))["page-fast"]
    assert min(rates(fast)) > 14.4  # a 33x burn in both windows...
    assert not fast.holds  # ...but 1 bad start is below min_bad 5
    tier = dataclasses.replace(POLICY.tiers[0], min_bad=1)
    assert run(stats, end_of(M0 + 59), policy=AlertPolicy("lead", 0.99, (tier,)))["page-fast"].holds


def test_min_bad_counts_the_long_window() -> None:
    stats = FlowStats()
    add_minute(stats, M0, late=4)  # in the hour, not in the last five minutes
    add_minute(stats, M0 + 59, on_time=1, late=1)
    watermark(stats, end_of(M0 + 59))
    assert run(stats, end_of(M0 + 59))["page-fast"].holds  # 4 + 1 = 5 bad in the hour
    add_minute(stats, M0, late=3)  # the minute's record is replaced: 3 + 1 = 4 bad
    fast = run(stats, end_of(M0 + 59))["page-fast"]
    assert min(rates(fast)) > 14.4
    assert not fast.holds


# ---- what counts as bad -----------------------------------------------------------------


def breach(key: str, *, deadline: int, detected_at: int, kind: str = "overdue") -> Breach:
    status = "open" if kind == "overdue" else "closed"
    return Breach(
        f"lead:{key}", "lead", key, kind, status, deadline - 5_000, deadline, detected_at,  # type: ignore[arg-type]
        None, None, 5_000, f"e-{key}",
    )  # fmt: skip


def test_open_overdue_counts_from_its_detection_and_once() -> None:
    stats = FlowStats()
    add_minute(stats, M0 + 59, on_time=9, late=1)
    now = end_of(M0 + 59)
    watermark(stats, now)
    in_short = breach("a", deadline=now - 10_000, detected_at=now - 9_000)
    in_long = breach("b", deadline=now - 30 * MINUTE_MS, detected_at=now - 30 * MINUTE_MS)
    before = breach("c", deadline=now - 2 * HOUR_MS, detected_at=now - 2 * HOUR_MS)
    closed = breach("d", deadline=now - 20_000, detected_at=now - 19_000, kind="late")
    other = dataclasses.replace(in_short, flow="other", breach_id="other:a")
    fast = run(stats, now, [in_short, in_long, before, closed, other])["page-fast"]
    long, short = fast.details["long"], fast.details["short"]
    assert isinstance(long, dict)
    assert isinstance(short, dict)
    assert (short["overdue"], short["bad"], short["judged"]) == (1, 2, 11)
    assert (long["overdue"], long["bad"], long["judged"]) == (2, 3, 12)
    assert long["burn_rate"] == pytest.approx(3 / 12 / 0.01)


def test_an_overdue_counts_in_a_window_from_the_first_ms_of_its_first_minute() -> None:
    now = end_of(M0 + 59)
    first_ms = (M0 + 55) * MINUTE_MS  # the 5 min window is minutes M0+55 .. M0+59
    inside = breach("in", deadline=first_ms - 5_000, detected_at=first_ms)
    outside = breach("out", deadline=first_ms - 5_001, detected_at=first_ms - 1)
    snap = build_snapshot(POLICY, None, [inside, outside], now_ms=now)
    assert (snap.window(5 * MINUTE_MS).from_minute, snap.window(5 * MINUTE_MS).overdue) == (
        M0 + 55, 1,
    )  # fmt: skip
    assert snap.window(HOUR_MS).overdue == 2


def test_a_retracted_or_completed_overdue_stops_counting() -> None:
    stats = FlowStats()
    now = end_of(M0 + 59)
    watermark(stats, now)
    ods = [breach(f"k{i}", deadline=now - 5_000, detected_at=now - 4_000) for i in range(6)]
    assert run(stats, now, list(ods))["page-fast"].holds  # 6 overdue, nothing good: fires
    # all retracted (tombstoned): no breach left; or all completed on time: stats say so
    assert run(stats, now, [])["page-fast"].cleared
    add_minute(stats, M0 + 59, on_time=6)
    assert run(stats, now, [])["page-fast"].details["long"] == {
        "window_ms": HOUR_MS, "covered_ms": HOUR_MS, "burn_rate": 0.0, "on_time": 6,
        "late": 0, "lost": 0, "overdue": 0, "bad": 0, "judged": 6,
    }  # fmt: skip


def test_windows_end_at_the_stats_watermark_never_after_now() -> None:
    stats = FlowStats()
    add_minute(stats, M0, late=10)
    watermark(stats, end_of(M0))
    later = end_of(M0) + 2 * HOUR_MS  # the monitor lags: the windows stay where it read
    assert build_snapshot(POLICY, stats, [], now_ms=later).as_of_ms == end_of(M0)
    assert run(stats, later)["page-fast"].holds
    earlier = end_of(M0) - 3 * MINUTE_MS
    assert build_snapshot(POLICY, stats, [], now_ms=earlier).as_of_ms == earlier
    assert build_snapshot(POLICY, None, [], now_ms=earlier).as_of_ms == earlier


def test_a_window_longer_than_the_stats_keep_says_how_much_it_covers() -> None:
    stats, now = burning_hour()
    ticket = run(stats, now)["ticket"]
    assert isinstance(ticket.details["long"], dict)
    assert ticket.details["long"]["window_ms"] == 3 * 24 * HOUR_MS
    assert ticket.details["long"]["covered_ms"] == RETENTION_MINUTES * MINUTE_MS


# ---- stuck ------------------------------------------------------------------------------


def test_stuck_fires_at_exactly_after_past_the_deadline() -> None:
    deadline = T0 + 7_000
    od = breach("L-1", deadline=deadline, detected_at=deadline + 300)
    assert POLICY.stuck is not None
    assert POLICY.stuck.after_ms == FLOW.target_ms
    before = run(None, deadline + 4_999, [od])["stuck"]
    assert not before.holds
    assert not before.cleared  # one is open: not clear either
    at = run(None, deadline + 5_000, [od])["stuck"]
    assert at.holds
    assert at.severity == "error"
    assert at.routes == {"pagerduty", "alertmanager", "webhook"}
    assert at.summary == (
        "lead: 1 entity stuck past its deadline; oldest 'L-1' overdue by 5 s "
        "(stuck fires at >= 1 open, oldest >= 5 s)"
    )
    assert run(None, deadline + 5_000, [])["stuck"].cleared


def test_stuck_needs_min_open_and_judges_the_oldest() -> None:
    policy = dataclasses.replace(POLICY, stuck=StuckRule(after_ms=60_000, min_open=2))
    old = breach("old", deadline=T0, detected_at=T0 + 100)
    young = breach("young", deadline=T0 + 50_000, detected_at=T0 + 50_100)
    assert not run(None, T0 + 60_000, [old], policy=policy)["stuck"].holds
    assert run(None, T0 + 60_000, [young, old], policy=policy)["stuck"].holds
    assert not run(None, T0 + 59_999, [young, old], policy=policy)["stuck"].holds


def test_stuck_details_list_the_ten_oldest_keys_with_deadlines() -> None:
    ods = [
        breach(f"k{i:02}", deadline=T0 + i * 1_000, detected_at=T0 + i * 1_000) for i in range(15)
    ]
    got = run(None, T0 + 20_000, list(reversed(ods)))["stuck"]
    oldest = got.details["oldest"]
    assert isinstance(oldest, list)
    assert [e["key"] for e in oldest] == [f"k{i:02}" for i in range(10)]
    assert oldest[0] == {"key": "k00", "deadline": T0, "detected_at": T0, "overdue_ms": 20_000}
    assert got.details["open_overdue"] == 15


# ---- backlog ----------------------------------------------------------------------------


def test_backlog_of_dlq_first_retry_fires_above_fifty() -> None:
    dlq = default_policy(dataclasses.replace(FLOW, name="dlq_first_retry", target_ms=60_000))
    assert dlq.backlog == BacklogRule(50)
    at_50 = run(None, T0, policy=dlq, pending=50)["backlog"]
    assert not at_50.holds
    assert at_50.cleared
    at_51 = run(None, T0, policy=dlq, pending=51)["backlog"]
    assert at_51.holds
    assert (at_51.severity, at_51.routes) == ("warning", {"alertmanager", "webhook"})
    assert at_51.summary == "dlq_first_retry: 51 pending (backlog fires above 50)"
    unknown = run(None, T0, policy=dlq)["backlog"]
    assert not unknown.holds
    assert not unknown.cleared  # no gauge yet: keep the state


def test_backlog_pending_is_the_sum_of_the_partitions_gauges() -> None:
    policy = dataclasses.replace(POLICY, backlog=BacklogRule(10))
    stats = FlowStats()
    watermark(stats, T0, pending=6, part=0)
    watermark(stats, T0, pending=5, part=1)
    got = run(stats, T0, policy=policy)["backlog"]
    assert got.details["pending"] == 11
    assert got.holds


def test_backlog_is_off_by_default_for_other_flows() -> None:
    assert "backlog" not in run(None, T0, pending=10**6)


# ---- shape ------------------------------------------------------------------------------


def test_summaries_are_capped_and_details_are_json() -> None:
    key = "x" * 5000
    ods = [breach(key + str(i), deadline=T0, detected_at=T0) for i in range(3)]
    got = run(None, T0 + 10**9, list(ods))
    assert all(len(c.summary) <= SUMMARY_MAX for c in got.values())
    assert len(got["stuck"].summary) < 300  # the key is shortened in the summary...
    assert got["stuck"].details["oldest"][0]["key"] == key + "0"  # type: ignore[index]
    assert "lead: 3 entities stuck" in got["stuck"].summary
    for cond in got.values():
        orjson.dumps(cond.details)
    assert cap_summary("a" * 1024) == "a" * 1024
    assert cap_summary("a" * 1025) == "a" * 1023 + "…"


def test_evaluate_is_deterministic_and_follows_the_policy_order() -> None:
    stats, now = burning_hour()
    snap = build_snapshot(POLICY, stats, [], now_ms=now)
    first, again = evaluate(POLICY, snap, now), evaluate(POLICY, snap, now)
    assert first == again
    assert [c.alert for c in first] == ["page-fast", "page-slow", "ticket", "stuck"]
    assert isinstance(snap, FlowSnapshot)
    with pytest.raises(KeyError):
        snap.window(7 * MINUTE_MS)
