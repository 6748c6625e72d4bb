"""Unit tests of the join state machine: each rule of DESIGN section 4, no broker."""

from __future__ import annotations

from streams.core.join import JoinCore
from streams.core.model import Flow, FlowEvent
from streams.pipeline import codec

FLOW = Flow(
    name="lead",
    start_topic="s",
    end_topic="e",
    start_key=("lead_id",),
    end_key=("source_id",),
    target_ms=5_000,
    give_up_after_ms=60_000,
)


def start(key: str, at: int, eid: str | None = None) -> FlowEvent:
    return FlowEvent("lead", key, "start", eid or f"s-{key}", at, "s", 0, at)


def end(key: str, at: int, eid: str | None = None) -> FlowEvent:
    return FlowEvent("lead", key, "end", eid or f"e-{key}", at, "e", 0, at)


def core() -> JoinCore:
    return JoinCore([FLOW], done_retention_ms=10_000)


def test_on_time_completion_measures_lag_and_raises_no_breach() -> None:
    c = core()
    assert not c.apply(start("k", 1_000), 0).measurements
    out = c.apply(end("k", 3_500), 1)
    (m,) = out.measurements
    assert (m.lag_ms, m.on_time, m.clock_skew, m.out_of_order) == (2_500, True, False, False)
    assert out.breaches == []


def test_lag_equal_to_target_is_on_time() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    out = c.apply(end("k", 5_000), 1)
    assert out.measurements[0].on_time
    assert out.breaches == []


def test_late_completion_closes_a_late_breach() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    out = c.apply(end("k", 5_001), 1)
    (b,) = out.breaches
    assert (b.kind, b.status, b.lag_ms, b.completed_at, b.deadline) == (
        "late",
        "closed",
        5_001,
        5_001,
        5_000,
    )


def test_overdue_needs_the_completion_watermark_strictly_past_the_deadline() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    assert c.advance({"e": 5_000}).breaches == []
    assert c.advance({"s": 10_000_000}).breaches == []  # the start side says nothing
    (b,) = c.advance({"e": 5_001}).breaches
    assert (b.kind, b.status, b.detected_at) == ("overdue", "open", 5_001)
    assert c.advance({"e": 6_000}).breaches == []  # declared once
    (b2,) = c.apply(end("k", 7_000), 1).breaches
    assert (b2.kind, b2.status, b2.detected_at, b2.lag_ms) == ("late", "closed", 5_001, 7_000)
    assert c.gauges()["lead"].open_breaches == 0


def test_missing_completion_is_lost_after_give_up_and_stays_lost() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    c.advance({"e": 5_001})
    (b,) = c.advance({"e": 60_001}).breaches
    assert (b.kind, b.status, b.completed_at, b.detected_at) == ("lost", "closed", None, 5_001)
    out = c.apply(end("k", 70_000), 1)
    assert out.measurements == []
    assert out.breaches == []
    ent = c.entity("lead", "k")
    assert ent is not None
    assert (ent.breach, ent.end) == ("lost", None)  # the late completion changed nothing


def test_completion_before_start_is_held_then_joined() -> None:
    c = core()
    assert c.apply(end("k", 2_000), 0).measurements == []
    (m,) = c.apply(start("k", 1_000), 1).measurements
    assert (m.lag_ms, m.out_of_order) == (1_000, True)


def test_orphan_completion_expires_on_the_start_watermark() -> None:
    c = core()
    c.apply(end("k", 2_000), 0)
    c.advance({"s": 62_000})
    assert c.entity("lead", "k") is not None
    c.advance({"s": 62_001})
    assert c.entity("lead", "k") is None


def test_negative_lag_is_kept_flagged_and_on_time() -> None:
    c = core()
    c.apply(start("k", 10_000), 0)
    (m,) = c.apply(end("k", 9_000), 1).measurements
    assert (m.lag_ms, m.on_time, m.clock_skew) == (-1_000, True, True)


def test_first_start_and_first_completion_win_and_duplicates_are_ignored() -> None:
    c = core()
    c.apply(start("k", 0, "a"), 0)
    c.apply(start("k", 100, "b"), 1)
    c.apply(start("k", 0, "a"), 2)
    (m,) = c.apply(end("k", 1_000, "x"), 3).measurements
    assert (m.start_event_id, m.end_event_id) == ("a", "x")
    assert c.apply(end("k", 2_000, "y"), 4).measurements == []
    assert c.apply(end("k", 1_000, "x"), 5).measurements == []
    ent = c.entity("lead", "k")
    assert ent is not None
    assert ent.start is not None
    assert ent.end is not None
    assert (ent.start.event_id, ent.start.at, ent.end.event_id) == ("a", 0, "x")


def test_reprocessed_message_re_emits_the_same_outputs() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    first = c.apply(end("k", 9_000), 1)
    again = c.apply(end("k", 9_000), 1)  # same position: processed again after a crash
    assert again.measurements == first.measurements
    assert again.breaches == first.breaches
    assert c.apply(end("k", 9_000), 2).measurements == []  # a later copy is a duplicate


def test_another_start_is_ignored_until_the_outcome_is_purged() -> None:
    c = core()
    c.apply(start("k", 0, "a"), 0)
    c.apply(end("k", 1_000), 1)
    c.apply(start("k", 5_000, "b"), 2)
    assert c.gauges()["lead"].pending == 0
    ignored = c.entity("lead", "k")
    assert ignored is not None
    assert ignored.start is not None
    assert ignored.start.event_id == "a"
    c.advance({"e": 11_001})  # retention (10 s past the last event) is over
    c.apply(start("k", 20_000, "c"), 3)
    assert c.gauges()["lead"].pending == 1
    (b,) = c.advance({"e": 25_001}).breaches
    assert b.start_event_id == "c"


def test_done_entities_are_purged_after_retention() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    c.apply(end("k", 1_000), 1)
    c.advance({"e": 11_000})
    assert c.entity("lead", "k") is not None
    c.advance({"e": 11_001})
    assert c.entity("lead", "k") is None


def test_gauges_count_pending_and_oldest() -> None:
    c = core()
    c.apply(start("a", 1_000), 0)
    c.apply(start("b", 2_000), 1)
    c.apply(end("a", 1_500), 2)
    g = c.gauges()["lead"]
    assert (g.pending, g.oldest_pending_started_at, g.open_breaches) == (1, 2_000, 0)


def test_export_restore_round_trip_keeps_timers() -> None:
    c = core()
    c.apply(start("p", 0), 0)
    c.apply(end("o", 500), 1)
    c.apply(start("l", 0), 2)
    c.apply(end("l", 6_000), 3)
    c.advance({"e": 1})
    dirty, windows = c.take_dirty()
    r = core()
    r.restore_all(
        [(k, codec.decode_state(codec.encode_state(e))) for k in dirty if (e := c.state(*k))],
        [(w, codec.decode_window(codec.encode_window(c.windows[w]))) for w in windows],
    )
    assert r.windows == c.windows
    assert {b.breach_id for b in r.breaches()} == {"lead:l"}
    (b,) = r.advance({"e": 5_001}).breaches
    assert b.breach_id == "lead:p"
    assert b.kind == "overdue"
    (m,) = r.apply(start("o", 100), 4).measurements
    assert m.out_of_order
    assert m.lag_ms == 400


def test_overdue_then_on_time_completion_retracts_the_breach() -> None:
    c = core()
    c.apply(start("k", 0), 0)
    (b,) = c.advance({"e": 5_001}).breaches  # the completion was still on its way
    assert b.kind == "overdue"
    out = c.apply(end("k", 4_000), 1)
    assert out.breaches == []
    assert out.retractions == ["lead:k"]
    assert out.measurements[0].on_time
    assert c.gauges()["lead"].open_breaches == 0
    assert list(c.retractions()) == ["lead:k"]
    assert list(c.breaches()) == []
    assert c.apply(end("k", 4_000), 1).retractions == ["lead:k"]  # replayed: sent again


def test_overdue_breaches_come_in_deadline_order_across_slots() -> None:
    c = core()
    times = [950, 20, 3_070, 60, 1_999, 0, 2_000, 140]
    for i, at in enumerate(times):
        c.apply(start(f"k{i}", at), i)
    c.apply(end("k3", 100), 9)  # completed: no breach
    out = c.advance({"e": 7_000})
    got = [(b.deadline, b.key) for b in out.breaches]
    due = [(at + 5_000, f"k{i}") for i, at in enumerate(times) if i != 3 and at + 5_000 < 7_000]
    assert got == sorted(due)
    assert len(got) == 5


def test_a_deadline_inside_the_watermark_s_slot_waits_for_it() -> None:
    c = core()
    c.apply(start("a", 1_010), 0)
    c.apply(start("b", 1_090), 1)  # same 100 ms slot
    (b,) = c.advance({"e": 6_050}).breaches
    assert b.key == "a"
    assert c.advance({"e": 6_090}).breaches == []  # strictly past the deadline only
    (b2,) = c.advance({"e": 6_091}).breaches
    assert b2.key == "b"


def test_a_new_cycle_of_a_key_is_judged_on_its_own_start_only() -> None:
    c = core()  # retention 10 s, give up 60 s
    c.apply(start("k", 0, "first"), 0)
    c.apply(end("k", 1_000), 1)
    c.advance({"e": 20_000})  # the first cycle is purged
    assert c.entity("lead", "k") is None
    c.apply(start("k", 30_000, "second"), 2)
    assert c.advance({"e": 34_000}).breaches == []  # the first cycle's timers are stale
    (b,) = c.advance({"e": 35_001}).breaches
    assert (b.kind, b.start_event_id, b.deadline) == ("overdue", "second", 35_000)
    (lost,) = c.advance({"e": 90_001}).breaches
    assert (lost.kind, lost.start_event_id) == ("lost", "second")
    assert c.advance({"e": 200_000}).breaches == []
    assert c.gauges()["lead"].pending == 0


def test_an_untouched_start_is_held_packed_and_restored_packed() -> None:
    c = core()
    c.apply(start("p", 1_000), 0)
    c.apply(start("o", 1_000), 1)
    c.advance({"e": 6_001})  # o and p overdue: both become entities
    c.apply(start("q", 2_000), 2)
    state = c.state("lead", "q")
    assert isinstance(state, bytes)
    assert not isinstance(c.state("lead", "p"), bytes)
    r = core()
    r.restore_all(list(c.states()))
    assert isinstance(r.state("lead", "q"), bytes)
    assert r.entity("lead", "q") == c.entity("lead", "q")
    g, h = r.gauges()["lead"], c.gauges()["lead"]
    assert (g.pending, g.oldest_pending_started_at, g.open_breaches) == (3, 1_000, 2)
    assert (h.pending, h.oldest_pending_started_at, h.open_breaches) == (3, 1_000, 2)
    assert {b.key for b in r.breaches()} == {"o", "p"}
    (b,) = r.advance({"e": 7_001}).breaches
    assert (b.key, b.kind) == ("q", "overdue")


def test_with_no_retention_a_key_restarted_in_the_same_slot_is_lost_once() -> None:
    c = JoinCore([FLOW], done_retention_ms=0)
    c.apply(start("k", 0, "first"), 0)
    c.apply(end("k", 10), 1)
    c.advance({"e": 11})  # purged at once
    c.apply(start("k", 20, "second"), 2)  # its timers lie in the first one's slots
    (overdue,) = c.advance({"e": 5_021}).breaches
    assert (overdue.kind, overdue.start_event_id) == ("overdue", "second")
    (lost,) = c.advance({"e": 60_021}).breaches
    assert (lost.kind, lost.start_event_id) == ("lost", "second")
    assert sum(w.lost for w in c.windows.values()) == 1
    assert c.gauges()["lead"].pending == 0


def test_the_wheel_hands_out_each_due_key_once_and_keeps_only_what_is_not_due() -> None:
    from streams.core.join import _Wheel

    times = {"a": 1_010, "b": 1_090, "c": 1_250}
    wheel = _Wheel()
    for key, at in times.items():
        wheel.add(at, key)
    wheel.add(1_020, "stale")  # its key now has another time, in another slot
    times["stale"] = 5_000
    assert wheel.due(1_050, times.get) == [(1_010, "a")]
    assert wheel.slots == {10: ["b"], 12: ["c"]}
    assert wheel.due(2_000, times.get) == [(1_090, "b"), (1_250, "c")]
    assert wheel.slots == {}
    assert wheel.earliest(times.get) is None
