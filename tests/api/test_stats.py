"""Statistics in the read model: windows over partitions and minutes against exact answers,
replacement, tombstones and gauges (the window arithmetic itself: tests/streams/stats)."""

from __future__ import annotations

import math
import random

import pytest

from api.readmodel import ReadModel
from tests.api.records import NOW, Records

MINUTE = NOW // 60_000


def exact_quantile(values: list[float], q: float) -> float:
    """The value at rank ``q * (n - 1)`` (lower), the rank the sketch estimates."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def test_percentiles_merged_over_partitions_and_minutes_are_within_2_percent(
    model: ReadModel, rec: Records
) -> None:
    rng = random.Random(7)
    all_lags: dict[int, list[float]] = {5: [], 60: [], 1440: []}
    for partition in range(8):
        for age in (0, 3, 4, 10, 59, 61, 300, 1439):
            minute = MINUTE - age
            lags = [rng.lognormvariate(7.5, 1.2) for _ in range(rng.randint(20, 200))]
            lags += [-rng.uniform(1, 50) for _ in range(rng.randint(0, 3))]  # clock skew
            model.apply("freshness.stats", rec.window(lags, partition=partition, minute=minute))
            for window, values in all_lags.items():
                if age < window:
                    values.extend(lags)
    model.apply("freshness.stats", rec.gauge(watermark_ms=NOW))
    view = model.flow_view("lead_to_posthog").windows
    for window, wv in ((5, view.last_5m), (60, view.last_1h), (1440, view.last_24h)):
        values = all_lags[window]
        assert wv.count == len(values)
        assert wv.clock_skew == sum(1 for v in values if v < 0)
        assert wv.on_time + wv.late == len(values)
        for q, got in ((0.5, wv.lag_ms.p50), (0.95, wv.lag_ms.p95), (0.99, wv.lag_ms.p99)):
            want = exact_quantile(values, q)
            assert got is not None
            assert abs(got - want) <= 0.02 * abs(want), (window, q, got, want)
        assert wv.lag_ms.max == max(values)


def test_cumulative_minute_record_replaces_the_previous_one(model: ReadModel, rec: Records) -> None:
    first = [100.0, 200.0]
    model.apply("freshness.stats", rec.window(first))
    model.apply("freshness.stats", rec.window([*first, 9_000.0], lost=1))
    model.apply("freshness.stats", rec.window([*first, 9_000.0], lost=1))  # replayed
    w = model.flow_view("lead_to_posthog").windows.last_5m
    assert (w.count, w.on_time, w.late, w.lost, w.outcomes) == (3, 2, 1, 1, 4)
    assert w.on_time_ratio == pytest.approx(0.5)
    assert w.lag_ms.max == 9_000.0
    assert model.flow_totals("lead_to_posthog").tally.count == 3


def test_window_bounds_follow_the_flows_watermark(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.stats", rec.window([1.0], minute=MINUTE - 5))  # just outside 5 min
    model.apply("freshness.stats", rec.window([2.0], minute=MINUTE - 4))
    model.apply("freshness.stats", rec.gauge(watermark_ms=NOW + 30_000))
    view = model.flow_view("lead_to_posthog")
    assert view.as_of == NOW + 30_000
    w = view.windows.last_5m
    assert (w.from_ms, w.to_ms) == ((MINUTE - 4) * 60_000, (MINUTE + 1) * 60_000)
    assert w.count == 1
    assert view.windows.last_1h.count == 2


def test_empty_window_has_null_ratio_and_quantiles(model: ReadModel) -> None:
    w = model.flow_view("dlq_first_retry").windows.last_24h
    assert w.count == 0
    assert w.on_time_ratio is None
    assert w.lag_ms.model_dump() == {"p50": None, "p95": None, "p99": None, "max": None}


def test_gauges_merge_sum_min_max(model: ReadModel, rec: Records) -> None:
    model.apply(
        "freshness.stats",
        rec.gauge(partition=0, pending=3, oldest_pending_started_at=NOW - 9_000, monitor_lag_ms=5),
    )
    model.apply(
        "freshness.stats",
        rec.gauge(partition=1, pending=4, oldest_pending_started_at=NOW - 2_000, monitor_lag_ms=80),
    )
    model.apply("freshness.stats", rec.gauge(partition=2, pending=0, watermark_ms=None))
    view = model.flow_view("lead_to_posthog")
    assert view.pending == 7
    assert view.oldest_pending_started_at == NOW - 9_000
    assert view.oldest_pending_age_ms == 9_000
    assert view.monitor_lag_ms == 80
    assert view.stats.partitions == 3
    assert view.stats.stale_partitions == []


def test_stale_gauge_is_reported(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.stats", rec.gauge(partition=5, updated_at=NOW - 6_001))
    view = model.flow_view("lead_to_posthog")
    assert view.stats.stale_partitions == [5]
    assert view.status == "warning"
    assert any("stale" in r for r in view.status_reasons)


def test_tombstones_remove_window_and_gauge(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.stats", rec.window([10.0, 20.0], partition=3))
    model.apply("freshness.stats", rec.gauge(partition=3, pending=2))
    model.apply_raw("freshness.stats", f"window:lead_to_posthog:3:{MINUTE}".encode(), None)
    model.apply_raw("freshness.stats", b"gauge:lead_to_posthog:3", None)
    view = model.flow_view("lead_to_posthog")
    assert view.windows.last_5m.count == 0
    assert view.pending == 0
