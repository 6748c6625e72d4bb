"""FlowStats: windows follow the latest record of each minute; totals never decrease."""

from __future__ import annotations

import random

from streams.stats.records import RETENTION_MINUTES, GaugeRecord, WindowRecord, WindowStats
from streams.stats.windows import Aggregate, FlowStats, Tally

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


def total_of(*records: WindowRecord) -> Aggregate:
    agg = Aggregate()
    for r in records:
        agg.add_stats(r.stats)
    return agg


def test_old_minutes_are_pruned_but_totals_kept() -> None:
    stats = FlowStats()
    stats.apply_window(rec([5.0], minute=MINUTE - 3000))
    stats.apply_gauge(gauge(NOW))
    assert stats.window(MINUTE, 1440 * 3).tally.count == 0
    assert stats.total.tally.count == 1
    stats.apply_window(rec([5.0, 6.0], minute=MINUTE - 3000))  # retired: a replay, not news
    assert stats.window(MINUTE, 1440 * 3).tally.count == 0
    assert stats.total.tally.count == 1


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


def test_a_smaller_record_lowers_the_window_but_not_the_total() -> None:
    stats = FlowStats()
    full, partial = rec([100.0, 9_000.0, -5.0], lost=2), rec([100.0])
    stats.apply_window(full)
    stats.apply_window(partial)  # replayed from older worker state
    assert stats.window(MINUTE, 1).tally == Tally.of(partial.stats)
    assert stats.total == total_of(full)
    stats.apply_window(full)  # caught up again: nothing new
    assert stats.total == total_of(full)


def test_totals_keep_the_per_field_maximum_of_a_slot() -> None:
    stats = FlowStats()
    stats.apply_window(rec([100.0, 200.0], lost=3))
    stats.apply_window(rec([100.0, 200.0, 9_000.0], lost=0))  # more late, fewer lost
    assert (stats.total.tally.late, stats.total.tally.lost, stats.total.tally.count) == (1, 3, 3)
    stats.apply_window(rec([100.0, 200.0, 9_000.0], lost=4))
    assert (stats.total.tally.late, stats.total.tally.lost) == (1, 4)
    stats.apply_window(rec([100.0, 200.0, 9_000.0, 9_000.0, 1.0], lost=4))
    assert stats.total == total_of(rec([100.0, 200.0, 9_000.0, 9_000.0, 1.0], lost=4))


def test_a_tombstone_retires_the_slot_and_a_new_record_counts_from_zero() -> None:
    stats = FlowStats()
    first = rec([100.0, 7_000.0], partition=2)
    stats.apply_window(first)
    stats.delete_window(2, MINUTE)
    assert stats.window(MINUTE, 5).tally == Tally()
    assert stats.total == total_of(first)
    again = rec([300.0], partition=2)  # a new window of the same key (the worker dropped it)
    stats.apply_window(again)
    assert stats.total == total_of(first, again)
    assert stats.window(MINUTE, 5).tally == Tally.of(again.stats)


def test_totals_never_decrease_under_random_replays_and_tombstones() -> None:
    rng = random.Random(12)
    stats = FlowStats()
    versions: dict[tuple[int, int], list[WindowRecord]] = {}
    before = Tally()
    for step in range(2_000):
        slot = (rng.randrange(3), MINUTE - rng.randrange(30))
        seen = versions.setdefault(slot, [])
        if seen and rng.random() < 0.2:
            stats.apply_window(rng.choice(seen))  # an older version comes back
        elif seen and rng.random() < 0.05:
            stats.delete_window(*slot)
            seen.clear()
        else:  # the worker's next cumulative version of the slot
            last = seen[-1].stats if seen else WindowStats()
            new = WindowStats(lost=last.lost + rng.randrange(2))
            new.sketch.merge(last.sketch)
            for v in [rng.choice((-9.0, 50.0, 4_000.0, 8_000.0)) for _ in range(rng.randrange(3))]:
                new.sketch.add(v)
                new.on_time += v <= 5_000
                new.clock_skew += v < 0
            new.on_time += last.on_time
            new.clock_skew += last.clock_skew
            new.count = new.sketch.count
            new.late = new.count - new.on_time
            seen.append(WindowRecord("lead", slot[0], slot[1], new, updated_at=NOW))
            stats.apply_window(seen[-1])
        now = stats.total.tally
        fields = ("count", "on_time", "late", "lost", "clock_skew")
        assert all(getattr(now, f) >= getattr(before, f) for f in fields), step
        assert stats.total.bins.count == now.count
        before = Tally(now.count, now.on_time, now.late, now.lost, now.clock_skew)


def test_records_older_than_the_retention_behind_the_watermark_are_dropped() -> None:
    stats = FlowStats()
    stats.apply_gauge(gauge(NOW))
    stats.apply_window(rec([1.0], minute=MINUTE - RETENTION_MINUTES - 1))
    stats.apply_window(rec([1.0], minute=MINUTE - RETENTION_MINUTES))
    assert stats.total.tally.count == 1
    assert stats.window(MINUTE, RETENTION_MINUTES + 1).tally.count == 1
