"""FlowStats: windows follow the latest record of each minute, hours equal minute sums."""

from __future__ import annotations

import random

from streams.stats.records import GaugeRecord, WindowRecord, WindowStats
from streams.stats.windows import FlowStats

NOW = 1_767_225_660_000
MINUTE = NOW // 60_000


def rec(
    lags: list[float], *, partition: int = 0, minute: int = MINUTE, lost: int = 0
) -> WindowRecord:
    win = WindowStats(lost=lost)
    for v in lags:
        win.sketch.add(v)
        win.count += 1
        win.on_time += v <= 5_000
        win.clock_skew += v < 0
    win.late = win.count - win.on_time
    return WindowRecord("lead", partition, minute, win, updated_at=NOW)


def gauge(watermark_ms: int) -> GaugeRecord:
    return GaugeRecord("lead", 0, 0, None, 0, 0, watermark_ms, updated_at=NOW)


def test_old_minutes_are_pruned_but_totals_kept() -> None:
    stats = FlowStats()
    stats.apply_window(rec([5.0], minute=MINUTE - 3000))
    stats.apply_gauge(gauge(NOW))
    assert stats.window(MINUTE, 1440 * 3).tally.count == 0
    assert stats.total.tally.count == 1
    stats.apply_window(rec([5.0, 6.0], minute=MINUTE - 3000))
    assert stats.window(MINUTE, 1440 * 3).tally.count == 0


def test_hour_aggregates_equal_minute_sums() -> None:
    rng = random.Random(3)
    a, b = FlowStats(), FlowStats()
    records = [
        rec([rng.uniform(1, 1e5) for _ in range(20)], partition=p, minute=MINUTE - m)
        for p in range(3)
        for m in range(0, 200, 7)
    ]
    for r in records:
        a.apply_window(r)
    rng.shuffle(records)
    for r in records:
        b.apply_window(r)
    for minutes in (1, 5, 60, 61, 119, 120, 1440):
        wa, wb = a.window(MINUTE, minutes), b.window(MINUTE, minutes)
        assert wa.tally == wb.tally
        assert wa.sketch == wb.sketch
