"""Watermarks: the ingest-side partition clock and the join-side board (no broker)."""

from __future__ import annotations

from streams.core.watermark import (
    BLIND_AFTER_MS,
    RECOVERY_HOLD_MS,
    RECOVERY_SPEED,
    PartitionClock,
    WatermarkBoard,
)

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


def test_a_caught_up_partition_stands_where_the_broker_last_answered() -> None:
    """While the broker cannot be reached the watermark stands still (no false overdue),
    and the blindness shows as monitor lag once it exceeds BLIND_AFTER_MS."""
    clock = PartitionClock()
    clock.start_at("t", 0, 3)
    last_fetch = NOW - 20_000  # the broker went away 20 s ago
    r = clock.report("t", 0, 3, NOW, grace_ms=200, fetched_at=last_fetch)
    assert (r.watermark, r.lag_ms, r.behind) == (last_fetch - 200, 20_000, 0)
    other = PartitionClock()
    other.start_at("t", 0, 3)
    fresh = other.report("t", 0, 3, NOW, grace_ms=200, fetched_at=NOW - BLIND_AFTER_MS)
    assert (fresh.watermark, fresh.lag_ms) == (NOW - BLIND_AFTER_MS - 200, 0)
    ahead = other.report("t", 0, 3, NOW, grace_ms=200, fetched_at=NOW + 5)  # clocks differ
    assert ahead.watermark == NOW - 200


def test_after_a_blind_spell_the_watermark_catches_up_at_recovery_speed() -> None:
    """Producers deliver what they held during an outage over the next moments: the
    watermark resumes from where it stood instead of jumping to the present."""
    clock = PartitionClock()
    clock.start_at("t", 0, 3)
    t0 = NOW
    assert clock.report("t", 0, 3, t0, 200, fetched_at=t0).watermark == t0 - 200
    blind = clock.report("t", 0, 3, t0 + 20_000, 200, fetched_at=t0)  # 20 s without an answer
    assert (blind.watermark, blind.lag_ms) == (t0 - 200, 20_000)
    back = t0 + 20_000
    first = clock.report("t", 0, 3, back, 200, fetched_at=back)  # contact again
    assert (first.watermark, first.lag_ms) == (t0 - 200, 20_000)
    held = clock.report("t", 0, 3, back + RECOVERY_HOLD_MS, 200, fetched_at=back + 10_000)
    assert held.watermark == t0 - 200  # the producers deliver what they held meanwhile
    mid_at = back + RECOVERY_HOLD_MS + 5_000
    mid = clock.report("t", 0, 3, mid_at, 200, fetched_at=mid_at)
    assert mid.watermark == t0 - 200 + RECOVERY_SPEED * 5_000
    assert mid.lag_ms == (mid_at - 200) - mid.watermark
    done_at = back + 2 * RECOVERY_HOLD_MS + 20_000  # the gap grew during the hold
    done = clock.report("t", 0, 3, done_at, 200, fetched_at=done_at)
    assert (done.watermark, done.lag_ms) == (done_at - 200, 0)
    after = clock.report("t", 0, 3, done_at + 100, 200, fetched_at=done_at + 100)
    assert (after.watermark, after.lag_ms) == (done_at + 100 - 200, 0)


def test_short_silences_between_fetches_change_nothing() -> None:
    clock = PartitionClock()
    clock.start_at("t", 0, 0)
    for step in range(20):  # fetch responses 400 ms apart, reports every 200 ms
        now = NOW + step * 200
        r = clock.report("t", 0, 0, now, 200, fetched_at=NOW + (step // 2) * 400)
        assert r.lag_ms == 0
        assert r.watermark == NOW + (step // 2) * 400 - 200


def test_a_reassigned_partition_resumes_from_its_last_watermark() -> None:
    """After an outage the group rebalances as contact returns: the partitions come back
    to the same reader, which must not jump their watermarks to the present."""
    clock = PartitionClock()
    clock.start_at("t", 0, 3)
    assert clock.report("t", 0, 3, NOW, 200, fetched_at=NOW).watermark == NOW - 200
    clock.forget([])  # revoked while the broker was away
    back = NOW + 20_000
    clock.start_at("t", 0, 3)
    first = clock.report("t", 0, 3, back, 200, fetched_at=back)
    assert first.watermark == NOW - 200
    hold = RECOVERY_HOLD_MS  # the 20 s gap is longer than the hold
    later = clock.report("t", 0, 3, back + hold + 1_000, 200, fetched_at=back + hold + 1_000)
    assert later.watermark == NOW - 200 + RECOVERY_SPEED * 1_000
    new = PartitionClock()  # a partition never held here starts at the present
    new.start_at("t", 1, 0)
    assert new.report("t", 1, 0, back, 200, fetched_at=back).watermark == back - 200


def test_a_quick_rebalance_holds_only_as_long_as_its_gap() -> None:
    clock = PartitionClock()
    clock.start_at("t", 0, 3)
    clock.report("t", 0, 3, NOW, 200, fetched_at=NOW)
    clock.forget([])
    back = NOW + 3_000  # a 3 s rebalance
    clock.start_at("t", 0, 3)
    assert clock.report("t", 0, 3, back, 200, fetched_at=back).watermark == NOW - 200
    r = clock.report("t", 0, 3, back + 3_000, 200, fetched_at=back + 3_000)
    assert r.watermark == NOW - 200  # held for the 3 s gap
    caught = clock.report("t", 0, 3, back + 9_000, 200, fetched_at=back + 9_000)
    assert (caught.watermark, caught.lag_ms) == (back + 9_000 - 200, 0)


def test_a_blind_spell_seen_only_by_the_reader_still_holds_the_watermark() -> None:
    """The tick that makes reports can block on the producer for a whole outage: the first
    report after it sees a fresh fetch, and only the reader saw the silence."""
    clock = PartitionClock()
    clock.start_at("t", 0, 3)
    assert clock.report("t", 0, 3, NOW, 200, fetched_at=NOW).watermark == NOW - 200
    clock.silent("t", 0, 500)  # a short silence changes nothing
    clock.silent("t", 0, 20_000)  # the reader saw 20 s without an answer
    back = NOW + 29_000
    first = clock.report("t", 0, 3, back, 200, fetched_at=back)
    assert first.watermark == NOW - 200
    assert first.lag_ms == back - 200 - (NOW - 200)
    clock.silent("t", 9, 20_000)  # a partition not held here: nothing to do


def test_a_blind_spell_nobody_saw_still_holds_the_watermark() -> None:
    """The tick and the reader can both block on the producer for a whole outage: the first
    report after it sees a fresh fetch, and no silence was ever told to the clock."""
    clock = PartitionClock(unwatched_after_ms=BLIND_AFTER_MS)
    clock.start_at("t", 0, 3)
    assert clock.report("t", 0, 3, NOW, 200, fetched_at=NOW).watermark == NOW - 200
    back = NOW + 20_000
    first = clock.report("t", 0, 3, back, 200, fetched_at=back)
    assert first.watermark == NOW - 200
    assert first.lag_ms == back - 200 - (NOW - 200)
    held = clock.report("t", 0, 3, back + 5_000, 200, fetched_at=back + 5_000)
    assert held.watermark == NOW - 200  # the producers deliver what they held meanwhile
    replayed = PartitionClock()  # a replay reports in its own time: gaps are no outage
    replayed.start_at("t", 0, 3)
    replayed.report("t", 0, 3, NOW, 200, fetched_at=NOW)
    assert replayed.report("t", 0, 3, back, 200, fetched_at=back).watermark == back - 200
    steady = PartitionClock(unwatched_after_ms=BLIND_AFTER_MS)  # 200 ms apart: no hold
    steady.start_at("t", 0, 3)
    for step in range(10):
        at = NOW + step * 200
        assert steady.report("t", 0, 3, at, 200, fetched_at=at).watermark == at - 200
