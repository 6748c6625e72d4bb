"""The worker's wire formats: every encoder round-trips, every decoder refuses what it did
not write, and join positions stay unique at the per-message cap."""

from __future__ import annotations

from dataclasses import asdict

import orjson
import pytest

from streams.core.join import Entity, Ref, pack_start, unpack_start
from streams.core.model import Breach, FlowEvent, Measurement, Source
from streams.core.watermark import PartitionReport
from streams.pipeline import codec
from streams.stats.records import WindowStats


def ev(i: int, side: str = "start") -> FlowEvent:
    return FlowEvent("lead", f"k{i}", side, f"e{i}", 1_000 + i, "t", 3, 40 + i)  # type: ignore[arg-type]


def test_events_round_trip() -> None:
    events = [ev(1), ev(2, "end")]
    assert codec.decode(codec.encode_events(events)) == events


def test_tick_round_trip() -> None:
    reports = [PartitionReport("t", 0, 5_000, 10, 2), PartitionReport("t", 1, None, 0, 0)]
    tick = codec.decode(codec.encode_tick(7_000, reports, {"t": 2}))
    assert tick == codec.Tick(7_000, tuple(reports), {"t": 2})


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        b'{"e": [["lead", "k"]]}',
        b'{"e": [["lead", "k", 7, "e", 1, "t", 0, 0]]}',
        b'{"tick": 1, "wm": [["t", 0]], "n": {}}',
        b'{"tick": "x", "wm": [], "n": {}}',
        b'{"something": "else"}',
    ],
)
def test_decode_refuses_what_it_did_not_write(raw: bytes | None) -> None:
    with pytest.raises(ValueError, match="not a flow-events message"):
        codec.decode(raw)


def test_positions_are_unique_and_increasing_at_the_cap() -> None:
    cap = codec.MAX_EVENTS_PER_MESSAGE
    assert cap == 65_536
    last_of_first = codec.position(10, cap - 1)
    assert codec.position(10, 0) < last_of_first < codec.position(11, 0)
    with pytest.raises(ValueError, match="outside"):
        codec.position(10, cap)


def test_a_batch_over_the_cap_is_cut_into_messages_in_order() -> None:
    cap = codec.MAX_EVENTS_PER_MESSAGE
    events = [ev(i) for i in range(cap + 1)]
    with pytest.raises(ValueError, match="exceed"):
        codec.encode_events(events)
    chunks = list(codec.event_chunks(events))
    assert [len(c) for c in chunks] == [cap, 1]
    decoded = [e for c in chunks for e in codec.decode(codec.encode_events(c))]  # type: ignore[union-attr]
    assert decoded == events
    assert list(codec.event_chunks(events[:cap])) == [events[:cap]]


def test_state_keys_round_trip_and_bad_keys_are_refused() -> None:
    k = codec.decode_state_key(codec.entity_key(3, "lead", "a\x1fb"))
    assert (k.partition, k.kind, k.flow, k.rest) == (3, "e", "lead", "a\x1fb")
    w = codec.decode_state_key(codec.window_key(12, "lead", 29_000_000))
    assert (w.partition, w.kind, w.flow, w.rest) == (12, "w", "lead", "29000000")
    assert codec.entity_key(3, "f", "k").startswith(codec.partition_prefix(3))
    assert not codec.entity_key(13, "f", "k").startswith(codec.partition_prefix(1))
    for raw in (b"3\x1fx\x1ff\x1fk", b"three\x1fe\x1ff\x1fk", b"3\x1fe", b"\xff\xfe"):
        with pytest.raises(ValueError, match="not a join state key"):
            codec.decode_state_key(raw)


@pytest.mark.parametrize(
    "ent",
    [
        Entity(start=Ref("s", 1, "t", 0, 5), pos=9),
        Entity(end=Ref("c", 2, "u", 1, 6), pos=10),
        Entity(Ref("s", 1, "t", 0, 5), Ref("c", 9, "u", 1, 6), True, "late", 9, True, 11, False),
        Entity(Ref("s", 1, "", -1, -1), None, False, "overdue", 6_001, False, 12, False),
        Entity(Ref("s", 1, "t", 0, 5), None, False, "lost", 6_001, True, 13, False),
        Entity(Ref("s", 1, "t", 0, 5), Ref("c", 2, "u", 1, 6), False, None, None, True, 14, True),
    ],
)
def test_entities_round_trip(ent: Entity) -> None:
    assert codec.decode_entity(codec.encode_entity(ent)) == ent


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{}",
        b"[null, null, false, null, null, false, 1, false]",
        b'[["s", 1, "t", 0, 5], null, false, "weird", null, false, 1, false]',
        b'[["s", 1, "t", 0], null, false, null, null, false, 1, false]',
        b'[["s", 1, "t", 0, 5], null, false, null, null, false]',
    ],
)
def test_decode_entity_refuses_what_it_did_not_write(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a join entity value"):
        codec.decode_entity(raw)


def test_windows_round_trip_and_refuse_garbage() -> None:
    win = WindowStats(count=3, on_time=2, late=1, clock_skew=1)
    for lag in (-50, 0, 1_200, 7_000):
        win.sketch.add(lag)
    assert codec.decode_window(codec.encode_window(win)) == win
    for raw in (b"x", b"[]", b'{"count": 1}'):
        with pytest.raises(ValueError, match="not a join window value"):
            codec.decode_window(raw)


def test_output_records_have_the_contract_keys() -> None:
    assert codec.retraction_kv("lead:k") == (b"lead:k", None)


@pytest.mark.parametrize(
    "ref",
    [
        Ref("lead-0123456789abcdef01234567", 1_700_000_000_123, "funnel.lead.captured", 7, 10**9),
        Ref("s", 1, "", -1, -1),  # no source (built in tests and replays)
        Ref("ünïcode-id", -5, "some.other.topic", 0, 0),  # a start topic not the flow's
    ],
)
def test_a_pending_start_is_its_own_table_value(ref: Ref) -> None:
    raw = pack_start(ref, 123 << 16 | 4, "funnel.lead.captured")
    assert codec.decode_state(codec.encode_state(raw)) == raw
    assert unpack_start(raw, "funnel.lead.captured") == (ref, 123 << 16 | 4)
    ent = Entity(start=ref, pos=9)
    assert codec.decode_state(codec.encode_state(ent)) == ent


@pytest.mark.parametrize(
    "raw",
    [
        b"S",
        b"S" + bytes(20),
        pack_start(Ref("e", 1, "t", 0, 5), 1, "t")[:-1],  # no event id left
        pack_start(Ref("e", 1, "x", 0, 5), 1, "t")[:31],  # topic cut short
        pack_start(Ref("e", 1, "t", 0, 5), 1, "t")[:30] + b"\xff\xfe",
    ],
)
def test_decode_state_refuses_a_broken_packed_start(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a packed start"):
        codec.decode_state(raw)


@pytest.mark.parametrize("with_sources", [True, False])
def test_output_records_are_the_bytes_of_the_dataclasses_as_dicts(with_sources: bool) -> None:
    src = Source("funnel.lead.captured", 3, 10**12) if with_sources else None
    end = Source("funnel.contact.created", 0, 7) if with_sources else None
    m = Measurement("f", "k", "s1", "e1", 1, 9, 8, 5, False, True, True, src, end)
    assert codec.measurement_kv(m) == (b"f:k", orjson.dumps(asdict(m)))
    b = Breach("f:k", "f", "k", "late", "closed", 1, 6, 9, 9, 8, 5, "s1", src, end)
    assert codec.breach_kv(b) == (b"f:k", orjson.dumps(asdict(b)))
    o = Breach("f:k", "f", "k", "overdue", "open", 1, 6, 7, None, None, 5, "s1", src, None)
    assert codec.breach_kv(o) == (b"f:k", orjson.dumps(asdict(o)))
