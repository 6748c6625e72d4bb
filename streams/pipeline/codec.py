"""Every wire format inside the worker, each with its one encoder and one decoder.

* **flow-events messages** (the internal ``<app id>-flow-events`` topic): a batch of at most
  :data:`MAX_EVENTS_PER_MESSAGE` flow events one ingest batch routed to one join partition,
  or a tick carrying the ingest side's partition watermarks. Both are JSON (orjson) arrays
  in objects; batches and ticks go through the same producer queue, so a tick never
  overtakes the events it accounts for.
* **join positions**: the position of the ``i``-th event of the message at ``offset`` is
  ``offset << POSITION_BITS | i``; the cap on events per message is what keeps positions
  unique and increasing (:func:`position`).
* **table keys and values** of the join state: ``<partition>\\x1f<kind>\\x1f<flow>\\x1f<rest>``
  with kind ``e`` (an entity, rest = its key) or ``w`` (a stats window, rest = its minute),
  so a partition's rows can be found again after a rebalance. An entity value is the
  core's packed form of a pending start nothing has happened to yet (``S`` and binary
  fields, :func:`streams.core.join.pack_start`: the bytes the core holds in memory, so
  the most common row costs no encoding either way) or, for every other entity, a compact
  JSON array; window values are the window's JSON form.
* **output records** (``freshness.measurements`` and ``freshness.breaches``, DESIGN
  section 5): key and value bytes of a measurement, a breach and a retraction.

Decoders raise :class:`ValueError` naming what was wrong for anything this module did not
write; they never return a half-decoded value.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streams.core.join import START_TAG, Entity, Ref, unpack_start
from streams.core.model import Breach, EventRow, FlowEvent, Measurement, Side, Source
from streams.core.watermark import PartitionReport
from streams.stats.records import WindowStats

_SIDES: tuple[Side, Side] = ("start", "end")
SEP = "\x1f"
POSITION_BITS = 16
MAX_EVENTS_PER_MESSAGE = 1 << POSITION_BITS
"""Most flow events one flow-events message may carry (65,536)."""
_DECODE_ERRORS = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError)

# ---- flow-events messages ---------------------------------------------------------------


def route(flow: str, key: str, partitions: int) -> int:
    """The join partition of an entity: stable across processes and restarts."""
    return zlib.crc32(f"{flow}{SEP}{key}".encode()) % partitions


def position(offset: int, index: int) -> int:
    """The join position of event ``index`` of the flow-events message at ``offset``."""
    if not 0 <= index < MAX_EVENTS_PER_MESSAGE:
        raise ValueError(f"event index {index} outside 0..{MAX_EVENTS_PER_MESSAGE - 1}")
    return offset << POSITION_BITS | index


def event_chunks(events: Sequence[FlowEvent]) -> Iterator[Sequence[FlowEvent]]:
    """``events`` cut into slices that each fit one flow-events message, in order."""
    for i in range(0, len(events), MAX_EVENTS_PER_MESSAGE):
        yield events[i : i + MAX_EVENTS_PER_MESSAGE]


def encode_events(events: Sequence[FlowEvent]) -> bytes:
    """One batch message; raises ValueError above :data:`MAX_EVENTS_PER_MESSAGE` events
    (cut with :func:`event_chunks` first)."""
    if len(events) > MAX_EVENTS_PER_MESSAGE:
        raise ValueError(f"{len(events)} events exceed {MAX_EVENTS_PER_MESSAGE} per message")
    return orjson.dumps(
        {
            "e": [
                [
                    e.flow,
                    e.key,
                    0 if e.side == "start" else 1,
                    e.event_id,
                    e.occurred_at,
                    e.topic,
                    e.partition,
                    e.offset,
                ]
                for e in events
            ]
        }
    )


@dataclass(frozen=True, slots=True)
class Tick:
    """Partition watermarks of the inputs one ingest worker reads, at ``now``."""

    now: int
    reports: tuple[PartitionReport, ...]
    partition_counts: dict[str, int]


def encode_tick(now: int, reports: Iterable[PartitionReport], counts: dict[str, int]) -> bytes:
    return orjson.dumps(
        {
            "tick": now,
            "wm": [[r.topic, r.partition, r.watermark, r.lag_ms, r.behind] for r in reports],
            "n": counts,
        }
    )


def decode(raw: bytes | None) -> list[FlowEvent] | Tick:
    """Decode a flow-events message; raises ValueError for anything this code did not write."""
    msg = decode_rows(raw)
    if isinstance(msg, Tick):
        return msg
    return [FlowEvent(*row) for row in msg]


def decode_rows(raw: bytes | None) -> list[EventRow] | Tick:
    """:func:`decode` with the events as tuples of their fields (what the join applies)."""
    try:
        obj: Any = orjson.loads(raw)  # type: ignore[arg-type]
        if "e" in obj:
            rows: list[EventRow] = [
                (f, k, _SIDES[s], eid, at, t, p, o) for f, k, s, eid, at, t, p, o in obj["e"]
            ]
            if len(rows) > MAX_EVENTS_PER_MESSAGE:
                raise ValueError(f"{len(rows)} events in one message")
            return rows
        return Tick(
            now=int(obj["tick"]),
            reports=tuple(
                PartitionReport(t, p, wm, lag, behind) for t, p, wm, lag, behind in obj["wm"]
            ),
            partition_counts={str(k): int(v) for k, v in obj["n"].items()},
        )
    except _DECODE_ERRORS as exc:
        raise ValueError(f"not a flow-events message: {exc!r}") from None


# ---- join state: table keys and values ---------------------------------------------------


def partition_prefix(partition: int) -> bytes:
    """What every table key of join partition ``partition`` starts with."""
    return f"{partition}{SEP}".encode()


def entity_key(partition: int, flow: str, key: str) -> bytes:
    return f"{partition}{SEP}e{SEP}{flow}{SEP}{key}".encode()


def window_key(partition: int, flow: str, minute: int) -> bytes:
    return f"{partition}{SEP}w{SEP}{flow}{SEP}{minute}".encode()


@dataclass(frozen=True, slots=True)
class StateKey:
    """A decoded table key: an entity's ``(flow, key)`` or a window's ``(flow, minute)``."""

    partition: int
    kind: str
    flow: str
    rest: str


def decode_state_key(raw: bytes) -> StateKey:
    try:
        partition, kind, flow, rest = raw.decode().split(SEP, 3)
        if kind not in ("e", "w"):
            raise ValueError(f"unknown kind {kind!r}")
        return StateKey(int(partition), kind, flow, rest)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a join state key: {raw[:80]!r} ({exc})") from None


def encode_state(state: Entity | bytes) -> bytes:
    """The table value of an entity as :meth:`JoinCore.state` gives it."""
    return state if isinstance(state, bytes) else encode_entity(state)


def decode_state(raw: bytes) -> Entity | bytes:
    """A table value: a packed start (checked, returned as it is) or a decoded entity."""
    if raw[:1] == bytes((START_TAG,)):
        unpack_start(raw, "")  # raises ValueError for a broken value
        return raw
    return decode_entity(raw)


def encode_entity(ent: Entity) -> bytes:
    return orjson.dumps(
        [
            _ref_out(ent.start),
            _ref_out(ent.end),
            ent.out_of_order,
            ent.breach,
            ent.detected_at,
            ent.done,
            ent.pos,
            ent.retracted,
        ]
    )


def decode_entity(raw: bytes) -> Entity:
    try:
        start, end, ooo, breach, detected_at, done, pos, retracted = orjson.loads(raw)
        if breach not in (None, "overdue", "late", "lost"):
            raise ValueError(f"unknown breach kind {breach!r}")
        ent = Entity(
            _ref_in(start),
            _ref_in(end),
            bool(ooo),
            breach,
            None if detected_at is None else int(detected_at),
            bool(done),
            int(pos),
            bool(retracted),
        )
    except _DECODE_ERRORS as exc:
        raise ValueError(f"not a join entity value: {exc!r}") from None
    if ent.start is None and ent.end is None:
        raise ValueError("not a join entity value: neither a start nor a completion")
    return ent


def encode_window(win: WindowStats) -> bytes:
    return orjson.dumps(win.to_json())


def decode_window(raw: bytes) -> WindowStats:
    try:
        return WindowStats.from_json(orjson.loads(raw))
    except (*_DECODE_ERRORS, AttributeError) as exc:
        raise ValueError(f"not a join window value: {exc!r}") from None


def _ref_out(ref: Ref | None) -> list[Any] | None:
    if ref is None:
        return None
    return [ref.event_id, ref.at, ref.topic, ref.partition, ref.offset]


def _ref_in(data: Sequence[Any] | None) -> Ref | None:
    if data is None:
        return None
    event_id, at, topic, partition, offset = data
    return Ref(str(event_id), int(at), str(topic), int(partition), int(offset))


# ---- output records -------------------------------------------------------------------


def measurement_kv(m: Measurement) -> tuple[bytes, bytes]:
    """Key and value of a ``freshness.measurements`` record: the same bytes as
    ``orjson.dumps(asdict(m))``, from a dict built here in field order. (orjson serializes a
    dataclass with slots through its slow path, 9 µs a measurement; this is 2 µs.)"""
    value = {
        "flow": m.flow,
        "key": m.key,
        "start_event_id": m.start_event_id,
        "end_event_id": m.end_event_id,
        "started_at": m.started_at,
        "completed_at": m.completed_at,
        "lag_ms": m.lag_ms,
        "target_ms": m.target_ms,
        "on_time": m.on_time,
        "clock_skew": m.clock_skew,
        "out_of_order": m.out_of_order,
        "start_source": _source(m.start_source),
        "end_source": _source(m.end_source),
    }
    return f"{m.flow}:{m.key}".encode(), orjson.dumps(value)


def breach_kv(b: Breach) -> tuple[bytes, bytes]:
    """Key and value of a ``freshness.breaches`` record (the breach's current state), the
    same bytes as ``orjson.dumps(asdict(b))``, built like :func:`measurement_kv`."""
    value = {
        "breach_id": b.breach_id,
        "flow": b.flow,
        "key": b.key,
        "kind": b.kind,
        "status": b.status,
        "started_at": b.started_at,
        "deadline": b.deadline,
        "detected_at": b.detected_at,
        "completed_at": b.completed_at,
        "lag_ms": b.lag_ms,
        "target_ms": b.target_ms,
        "start_event_id": b.start_event_id,
        "start_source": _source(b.start_source),
        "end_source": _source(b.end_source),
    }
    return b.breach_id.encode(), orjson.dumps(value)


def _source(src: Source | None) -> dict[str, Any] | None:
    if src is None:
        return None
    return {"topic": src.topic, "partition": src.partition, "offset": src.offset}


def retraction_kv(breach_id: str) -> tuple[bytes, None]:
    """Key and tombstone that delete a retracted breach from the compacted topic."""
    return breach_id.encode(), None
