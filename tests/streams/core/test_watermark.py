"""Watermarks: the ingest-side partition clock and the join-side board (no broker)."""

from __future__ import annotations

from streams.core.watermark import PartitionClock, WatermarkBoard

NOW = 1_000_000


def test_a_partition_behind_stands_at_the_largest_event_time_forwarded() -> None:
    clock = PartitionClock()
    clock.start_at("t", 0, 10)
    clock.forwarded("t", 0, 10, 500)
    clock.forwarded("t", 0, 11, 400)  # out of order: the max stays
    r = clock.report("t", 0, highwater=20, now=NOW, grace_ms=200)
    assert (r.watermark, r.behind, r.lag_ms) == (500, 8, NOW - 500)


def test_a_caught_up_partition_stands_at_the_wall_clock_minus_the_grace() -> None:
    clock = PartitionClock()
    clock.start_at("t", 0, 0)
    clock.forwarded("t", 0, 0, 500)
    r = clock.report("t", 0, highwater=1, now=NOW, grace_ms=200)
    assert (r.watermark, r.behind, r.lag_ms) == (NOW - 200, 0, 0)
    # an event time ahead of the wall clock (within the allowance) is not walked back
    clock.forwarded("t", 0, 1, NOW + 50)
    assert clock.report("t", 0, 2, NOW, 200).watermark == NOW + 50


def test_an_idle_assigned_partition_is_caught_up_an_unplaced_one_has_no_watermark() -> None:
    clock = PartitionClock()
    clock.start_at("t", 0, 7)  # assigned; the committed offset is the high-water mark
    assert clock.report("t", 0, 7, NOW, 0).watermark == NOW
    assert clock.report("t", 1, 7, NOW, 0).watermark is None  # never placed
    assert clock.report("t", 0, None, NOW, 0).watermark is None  # high-water mark unknown


def test_start_at_never_moves_a_partition_back() -> None:
    clock = PartitionClock()
    clock.start_at("t", 0, 5)
    clock.forwarded("t", 0, 9, 100)
    clock.start_at("t", 0, 3)
    assert clock.report("t", 0, 10, NOW, 0).behind == 0


def test_forget_drops_partitions_no_longer_assigned() -> None:
    clock = PartitionClock()
    for p in range(3):
        clock.start_at("t", p, 0)
        clock.forwarded("t", p, 0, 100 + p)
    clock.forget([("t", 1)])
    assert clock.report("t", 0, 5, NOW, 0).watermark is None
    assert clock.report("t", 1, 5, NOW, 0).watermark == 101
    assert clock.report("t", 2, 5, NOW, 0).watermark is None


def test_the_board_waits_for_every_partition_then_takes_the_minimum() -> None:
    board = WatermarkBoard()
    assert board.topic_watermark("t") is None  # partition count unknown
    board.set_partition_counts({"t": 2})
    board.observe("t", 0, 900, 0)
    assert board.topic_watermark("t") is None  # partition 1 has not reported
    board.observe("t", 1, 700, 300)
    assert board.topic_watermark("t") == 700
    assert board.topic_watermarks(["t", "u"]) == {"t": 700}


def test_stale_reports_never_move_a_partition_back_and_counts_only_grow() -> None:
    board = WatermarkBoard()
    board.set_partition_counts({"t": 1})
    board.observe("t", 0, 900, 0)
    board.observe("t", 0, 800, 0)
    board.observe("t", 0, None, 0)
    assert board.topic_watermark("t") == 900
    board.set_partition_counts({"t": 2})
    board.set_partition_counts({"t": 1})
    assert board.partition_counts == {"t": 2}
    assert board.topic_watermark("t") is None  # a new partition holds the topic back


def test_monitor_lag_is_the_worst_partition_and_follows_the_latest_report() -> None:
    board = WatermarkBoard()
    board.set_partition_counts({"t": 2})
    board.observe("t", 0, 900, 4_000)
    board.observe("t", 1, 950, 1_000)
    assert board.monitor_lag("t") == 4_000
    board.observe("t", 0, 990, 0)
    assert board.monitor_lag("t") == 1_000
    assert board.monitor_lag("unknown") == 0
