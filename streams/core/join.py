"""The join state machine: one start, one completion, one outcome per (flow, key).

:class:`JoinCore` holds the state of the entities of one partition of the join and is the
only place the semantics of DESIGN section 4 live:

* ``lag_ms = completion.occurred_at - start.occurred_at``; ``deadline = start + target``.
* every start ends in exactly one outcome: ``on_time`` (lag <= target), ``late`` (lag >
  target) or ``lost`` (no completion before the completion side's watermark passes
  ``start + give_up_after``). Before that it may be ``overdue``: an open breach, declared
  only once the completion topic's watermark (see :mod:`streams.core.watermark`) is past
  the deadline, so a monitor that is behind never raises a false overdue;
* a completion read before its start is held until the start arrives, or until the start
  topic's watermark passes ``completion + give_up_after``;
* the first start per (flow, key) wins, the first completion wins, a repeated ``event_id``
  is ignored; once an outcome is decided the entity is kept for ``done_retention_ms``
  (event time, past its last event) so late duplicates, and other starts for the key, are
  still ignored; only a start after that retention opens a new cycle for the key;
* a negative lag is kept, flagged ``clock_skew`` and counted on time;
* a completion that arrives after the start was declared ``lost`` changes nothing;
* an ``overdue`` whose completion then turns out to have been on time (its event time lay
  behind the watermark when it was read: a producer delivered it later than the grace) is
  retracted: the breach record is deleted, since an on-time start has no breach.

Time never comes from a clock here: event times come with the events and watermarks come
from :meth:`JoinCore.advance`, which is what makes live and replayed runs agree.

At-least-once: every mutation is tagged with the position (offset) of the input message
that caused it. When a message is processed again after a crash (its position is at or
below the entity's), a duplicate of the event that decided the outcome re-emits the same
outputs, so nothing that was decided can be lost between the state and the output topics.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streams.core.model import (
    Breach,
    BreachKind,
    EventRow,
    Flow,
    FlowEvent,
    Measurement,
    Outputs,
    Source,
)
from streams.stats.records import WindowStats

MINUTE_MS = 60_000
EntityKey = tuple[str, str]
SLOT_MS = 100
"""Width of one slot of the deadline and give-up wheels (:class:`_Wheel`)."""


@dataclass(slots=True)
class Ref:
    """One side of an entity: the first event that counted."""

    event_id: str
    at: int
    topic: str
    partition: int
    offset: int

    def source(self) -> Source | None:
        return Source(self.topic, self.partition, self.offset) if self.topic else None


@dataclass(slots=True)
class Entity:
    start: Ref | None = None
    end: Ref | None = None
    out_of_order: bool = False
    breach: BreachKind | None = None
    detected_at: int | None = None
    done: bool = False
    pos: int = -1
    retracted: bool = False


# -- a pending start, packed ------------------------------------------------------------
#
# Nearly every entity a partition holds is a start waiting for its completion: no
# completion yet, no breach, not done. Such a start is kept as one bytes object (about 90
# bytes with a 30-character event id) instead of an Entity, a Ref and five ints (about
# 400 bytes); the same bytes are its table value (``streams.pipeline.codec``), so writing
# and restoring it costs no encoding. Layout: ``S`` (the tag), then little-endian
# occurred_at, position, offset (int64 each), partition (int32), how the topic is given
# (0: no source, 1: the flow's start topic, 2: a uint16 length and the UTF-8 topic
# follow), then the UTF-8 event id.

START_TAG = ord("S")
_START = struct.Struct("<BqqqiB")
_TOPIC_LEN = struct.Struct("<H")
_AT = struct.Struct("<q")
_POS = struct.Struct("<q")
"""The position field of a packed start, at byte 9 (after the tag and the time)."""


def pack_start(ref: Ref, pos: int, start_topic: str) -> bytes:
    """The packed form of a start that nothing has happened to yet."""
    return _pack(ref.event_id, ref.at, ref.topic, ref.partition, ref.offset, pos, start_topic)


def _pack(
    event_id: str, at: int, topic: str, partition: int, offset: int, pos: int, start_topic: str
) -> bytes:
    if topic == start_topic:
        form, raw_topic = 1, b""
    elif not topic:
        form, raw_topic = 0, b""
    else:
        raw = topic.encode()
        form, raw_topic = 2, _TOPIC_LEN.pack(len(raw)) + raw
    head = _START.pack(START_TAG, at, pos, offset, partition, form)
    return head + raw_topic + event_id.encode()


def unpack_start(raw: bytes, start_topic: str) -> tuple[Ref, int]:
    """``(start, position)`` of a packed start; raises ValueError for anything else."""
    try:
        tag, at, pos, offset, partition, form = _START.unpack_from(raw)
        rest = _START.size
        if tag != START_TAG or form not in (0, 1, 2):
            raise ValueError(f"tag {tag} form {form}")
        topic = start_topic if form == 1 else ""
        if form == 2:
            (n,) = _TOPIC_LEN.unpack_from(raw, rest)
            topic = raw[rest + 2 : rest + 2 + n].decode()
            rest += 2 + n
        event_id = raw[rest:].decode()
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a packed start: {exc}") from None
    if not event_id:
        raise ValueError("not a packed start: no event id")
    return Ref(event_id, at, topic, partition, offset), pos


def _start_at(raw: bytes) -> int:
    at: int = _AT.unpack_from(raw, 1)[0]
    return at


class _Wheel:
    """Keys due at event times, in slots of :data:`SLOT_MS`: one list entry (8 bytes, the
    key the entity map already holds) per key instead of a heap entry of a tuple and two
    ints (about 100 bytes). Entries are not removed when an entity completes: whoever
    takes them checks the entity's own time again (``time_of``) and drops stale ones."""

    __slots__ = ("order", "slots")

    def __init__(self) -> None:
        self.slots: dict[int, list[str]] = {}
        self.order: list[int] = []
        """Heap of the slot numbers in :attr:`slots`."""

    def add(self, at: int, key: str) -> None:
        slot = at // SLOT_MS
        keys = self.slots.get(slot)
        if keys is None:
            keys = self.slots[slot] = []
            heapq.heappush(self.order, slot)
        keys.append(key)

    def due(self, wm: int, time_of: Callable[[str], int | None]) -> list[tuple[int, str]]:
        """``(time, key)`` of every live entry strictly before ``wm``, in time order, taken
        out of the wheel; an entry whose key's time is now in another slot is dropped."""
        out: list[tuple[int, str]] = []
        order, slots = self.order, self.slots
        while order and order[0] * SLOT_MS < wm:
            slot = order[0]
            keys = slots[slot]
            later = []
            for key in keys:
                at = time_of(key)
                if at is None or at // SLOT_MS != slot:
                    continue
                if at < wm:
                    out.append((at, key))
                else:
                    later.append(key)
            if later:  # the slot holding the watermark: keep what is not due yet
                slots[slot] = later
                break
            heapq.heappop(order)
            del slots[slot]
        out.sort()
        return out

    def earliest(self, time_of: Callable[[str], int | None]) -> int | None:
        """The earliest live time in the wheel (dropping slots that hold none)."""
        order, slots = self.order, self.slots
        while order:
            slot = order[0]
            times = [at for k in slots[slot] if (at := time_of(k)) is not None]
            live = [at for at in times if at // SLOT_MS == slot]
            if live:
                return min(live)
            heapq.heappop(order)
            del slots[slot]
        return None


@dataclass(slots=True)
class FlowGauge:
    """Point-in-time figures of one flow in one join partition."""

    pending: int
    oldest_pending_started_at: int | None
    open_breaches: int
    watermark_ms: int | None


@dataclass(slots=True)
class _FlowState:
    flow: Flow
    starts: dict[str, bytes] = field(default_factory=dict)
    """Pending starts nothing has happened to yet, packed (:func:`pack_start`), by key; every
    other entity of the flow is an :class:`Entity` in :attr:`JoinCore.entities`."""
    deadlines: _Wheel = field(default_factory=_Wheel)
    give_ups: _Wheel = field(default_factory=_Wheel)
    purges: list[tuple[int, str, str]] = field(default_factory=list)
    orphans: list[tuple[int, str, str]] = field(default_factory=list)
    pending: int = 0
    open_breaches: int = 0
    watermark: int | None = None


class JoinCore:
    """State of the entities of one join partition. Not thread-safe; one owner at a time."""

    def __init__(self, flows: Sequence[Flow], *, done_retention_ms: int = 3_600_000) -> None:
        self.flows: dict[str, _FlowState] = {f.name: _FlowState(f) for f in flows}
        self.done_retention_ms = done_retention_ms
        self.entities: dict[EntityKey, Entity] = {}
        """Every entity but the untouched pending starts (those are :attr:`_FlowState.starts`)."""
        self.windows: dict[tuple[str, int], WindowStats] = {}
        self.dirty: set[EntityKey] = set()
        """Entity keys changed since the last :meth:`take_dirty` (absent from
        :attr:`entities` means deleted)."""
        self.dirty_windows: set[tuple[str, int]] = set()

    # -- input -------------------------------------------------------------------------

    def apply(self, ev: FlowEvent, pos: int) -> Outputs:
        """Apply one flow event read at position ``pos`` of the join's input."""
        out = Outputs()
        self.apply_row(
            (
                ev.flow,
                ev.key,
                ev.side,
                ev.event_id,
                ev.occurred_at,
                ev.topic,
                ev.partition,
                ev.offset,
            ),
            pos,
            out,
        )
        return out

    def apply_row(self, row: EventRow, pos: int, out: Outputs) -> None:
        """:meth:`apply` for a flow event given as the tuple of its fields, adding what it
        produces to ``out`` (the worker's path: no FlowEvent and no Outputs per event)."""
        flow, key, side, event_id, at, topic, partition, offset = row
        fs = self.flows.get(flow)
        if fs is None:
            return
        ekey = (flow, key)
        packed = fs.starts.get(key)
        ent: Entity | None
        if packed is not None:
            if side == "start":  # a repeat or another start: the first start wins
                if pos <= _POS.unpack_from(packed, 9)[0]:
                    self.dirty.add(ekey)  # a replay: write the row again (see _replayed)
                return
            ent = self._unpack(fs, key, packed)
        else:
            ent = self.entities.get(ekey)
            if ent is None and side == "start":  # the most common event: a new start
                fs.starts[key] = _pack(
                    event_id, at, topic, partition, offset, pos, fs.flow.start_topic
                )
                self.dirty.add(ekey)
                self._track_pending(fs, key, at)
                return
        ref = Ref(event_id, at, topic, partition, offset)
        if side == "start":
            assert ent is not None
            self._on_start(fs, ekey, ent, ref, pos, out)
        else:
            self._on_end(fs, ekey, ent, ref, pos, out)

    def _unpack(self, fs: _FlowState, key: str, packed: bytes) -> Entity:
        """Turn a packed pending start into an Entity (something is about to happen to it)."""
        del fs.starts[key]
        start, pos = unpack_start(packed, fs.flow.start_topic)
        ent = self.entities[(fs.flow.name, key)] = Entity(start=start, pos=pos)
        return ent

    def _on_start(
        self, fs: _FlowState, ekey: EntityKey, ent: Entity, ref: Ref, pos: int, out: Outputs
    ) -> None:
        """A start for a key the partition already holds (a new key's start is packed in
        :meth:`apply_row`)."""
        if ent.start is not None:
            if ent.start.event_id == ref.event_id:
                self._replayed(fs, ekey, ent, pos, out)
            return
        # a completion was waiting for this start
        ent.start = ref
        ent.out_of_order = True
        ent.pos = pos
        self.dirty.add(ekey)
        fs.pending += 1
        self._complete(fs, ekey, ent, out)

    def _on_end(
        self, fs: _FlowState, ekey: EntityKey, ent: Entity | None, ref: Ref, pos: int, out: Outputs
    ) -> None:
        if ent is None:
            self.entities[ekey] = Entity(end=ref, pos=pos)
            self.dirty.add(ekey)
            heapq.heappush(fs.orphans, (ref.at + fs.flow.give_up_after_ms, ekey[1], ref.event_id))
            return
        if ent.end is not None:
            if ent.end.event_id == ref.event_id:
                self._replayed(fs, ekey, ent, pos, out)
            return
        if ent.done:  # declared lost before this completion came: lost is final
            return
        ent.end = ref
        ent.pos = pos
        self.dirty.add(ekey)
        self._complete(fs, ekey, ent, out)

    def _replayed(
        self, fs: _FlowState, ekey: EntityKey, ent: Entity, pos: int, out: Outputs
    ) -> None:
        """A message at or before the entity's position is being processed again: after a
        crash, or a take-over of the partition. Its outcome's records are sent again, and
        its row is written again: the worker writes a step's rows to its local RocksDB
        before the step's changelog records are delivered, so a worker restarted on its own
        state directory may hold rows the changelog lacks, and the changelog is what the
        next owner of the partition restores."""
        if pos <= ent.pos:
            self.dirty.add(ekey)
            if ent.done:
                self._outcome_outputs(fs, ekey[1], ent, out)

    # -- outcomes ----------------------------------------------------------------------

    def _track_pending(self, fs: _FlowState, key: str, started_at: int) -> None:
        fs.pending += 1
        fs.deadlines.add(started_at + fs.flow.target_ms, key)
        fs.give_ups.add(started_at + fs.flow.give_up_after_ms, key)

    def _complete(self, fs: _FlowState, ekey: EntityKey, ent: Entity, out: Outputs) -> None:
        assert ent.start is not None
        assert ent.end is not None
        flow = fs.flow
        lag = ent.end.at - ent.start.at
        on_time = lag <= flow.target_ms
        fs.pending -= 1
        if ent.breach == "overdue":
            fs.open_breaches -= 1
        if not on_time:
            ent.breach = "late"
            if ent.detected_at is None:
                ent.detected_at = ent.end.at
        elif ent.breach == "overdue":
            ent.breach, ent.detected_at, ent.retracted = None, None, True
        ent.done = True
        win = self._window(flow.name, ent.end.at)
        win.count += 1
        win.on_time += on_time
        win.late += not on_time
        win.clock_skew += lag < 0
        win.sketch.add(lag)
        heapq.heappush(
            fs.purges,
            (max(ent.start.at, ent.end.at) + self.done_retention_ms, ekey[1], ent.start.event_id),
        )
        self._outcome_outputs(fs, ekey[1], ent, out)

    def _outcome_outputs(self, fs: _FlowState, key: str, ent: Entity, out: Outputs) -> None:
        if ent.start is not None and ent.end is not None:
            out.measurements.append(self._measurement(fs.flow, key, ent))
        if ent.breach is not None:
            out.breaches.append(self._breach(fs.flow, key, ent))
        if ent.retracted:
            out.retractions.append(f"{fs.flow.name}:{key}")

    @staticmethod
    def _measurement(flow: Flow, key: str, ent: Entity) -> Measurement:
        assert ent.start is not None
        assert ent.end is not None
        lag = ent.end.at - ent.start.at
        return Measurement(
            flow=flow.name,
            key=key,
            start_event_id=ent.start.event_id,
            end_event_id=ent.end.event_id,
            started_at=ent.start.at,
            completed_at=ent.end.at,
            lag_ms=lag,
            target_ms=flow.target_ms,
            on_time=lag <= flow.target_ms,
            clock_skew=lag < 0,
            out_of_order=ent.out_of_order,
            start_source=ent.start.source(),
            end_source=ent.end.source(),
        )

    @staticmethod
    def _breach(flow: Flow, key: str, ent: Entity) -> Breach:
        assert ent.start is not None
        assert ent.breach is not None
        assert ent.detected_at is not None
        end = ent.end if ent.done and ent.breach != "lost" else None
        return Breach(
            breach_id=f"{flow.name}:{key}",
            flow=flow.name,
            key=key,
            kind=ent.breach,
            status="open" if not ent.done else "closed",
            started_at=ent.start.at,
            deadline=ent.start.at + flow.target_ms,
            detected_at=ent.detected_at,
            completed_at=end.at if end is not None else None,
            lag_ms=end.at - ent.start.at if end is not None else None,
            target_ms=flow.target_ms,
            start_event_id=ent.start.event_id,
            start_source=ent.start.source(),
            end_source=end.source() if end is not None else None,
        )

    def _window(self, flow: str, at: int) -> WindowStats:
        wkey = (flow, at // MINUTE_MS)
        win = self.windows.get(wkey)
        if win is None:
            win = self.windows[wkey] = WindowStats()
        self.dirty_windows.add(wkey)
        return win

    # -- time --------------------------------------------------------------------------

    def advance(self, topic_watermarks: Mapping[str, int]) -> Outputs:
        """Judge pending entities against the watermarks (event time, per topic).

        A start becomes ``overdue`` once its completion topic's watermark is strictly past
        its deadline and ``lost`` once it is strictly past ``start + give_up_after``.
        """
        out = Outputs()
        for fs in self.flows.values():
            wm_end = topic_watermarks.get(fs.flow.end_topic)
            if wm_end is not None:
                if fs.watermark is None or wm_end > fs.watermark:
                    fs.watermark = wm_end
                self._sweep_overdue(fs, wm_end, out)
                self._sweep_lost(fs, wm_end, out)
                self._sweep_purges(fs, wm_end)
            wm_start = topic_watermarks.get(fs.flow.start_topic)
            if wm_start is not None:
                self._sweep_orphans(fs, wm_start)
        return out

    def _pending_at(self, fs: _FlowState, key: str) -> int | None:
        """When the pending start of ``key`` began, or None if the key has none."""
        packed = fs.starts.get(key)
        if packed is not None:
            return _start_at(packed)
        ent = self.entities.get((fs.flow.name, key))
        if ent is None or ent.done or ent.start is None:
            return None
        return ent.start.at

    def _timer(self, fs: _FlowState, after_ms: int) -> Callable[[str], int | None]:
        """``key`` -> its pending start's time plus ``after_ms`` (None: no pending start)."""
        pending_at = self._pending_at

        def time_of(key: str) -> int | None:
            at = pending_at(fs, key)
            return None if at is None else at + after_ms

        return time_of

    def _pending_entity(self, fs: _FlowState, key: str) -> Entity:
        packed = fs.starts.get(key)
        if packed is not None:
            return self._unpack(fs, key, packed)
        return self.entities[(fs.flow.name, key)]

    def _sweep_overdue(self, fs: _FlowState, wm: int, out: Outputs) -> None:
        for _, key in fs.deadlines.due(wm, self._timer(fs, fs.flow.target_ms)):
            ent = self._pending_entity(fs, key)
            if ent.breach is not None:
                continue
            ent.breach = "overdue"
            ent.detected_at = wm
            fs.open_breaches += 1
            self.dirty.add((fs.flow.name, key))
            out.breaches.append(self._breach(fs.flow, key, ent))

    def _sweep_lost(self, fs: _FlowState, wm: int, out: Outputs) -> None:
        for give_up_at, key in fs.give_ups.due(wm, self._timer(fs, fs.flow.give_up_after_ms)):
            ent = self._pending_entity(fs, key)
            if ent.done or ent.start is None:  # a second entry of the same start
                continue
            if ent.breach == "overdue":
                fs.open_breaches -= 1
            else:
                ent.detected_at = wm
            ent.breach = "lost"
            ent.done = True
            fs.pending -= 1
            self.dirty.add((fs.flow.name, key))
            self._window(fs.flow.name, give_up_at).lost += 1
            heapq.heappush(
                fs.purges, (give_up_at + self.done_retention_ms, key, ent.start.event_id)
            )
            out.breaches.append(self._breach(fs.flow, key, ent))

    def _sweep_purges(self, fs: _FlowState, wm: int) -> None:
        heap = fs.purges
        while heap and heap[0][0] < wm:
            _, key, start_id = heapq.heappop(heap)
            ekey = (fs.flow.name, key)
            ent = self.entities.get(ekey)
            if ent is None or not ent.done or ent.start is None:
                continue
            if ent.start.event_id == start_id:
                del self.entities[ekey]
                self.dirty.add(ekey)

    def _sweep_orphans(self, fs: _FlowState, wm: int) -> None:
        heap = fs.orphans
        while heap and heap[0][0] < wm:
            _, key, end_id = heapq.heappop(heap)
            ekey = (fs.flow.name, key)
            ent = self.entities.get(ekey)
            if ent is None or ent.start is not None or ent.end is None:
                continue
            if ent.end.event_id == end_id:
                del self.entities[ekey]
                self.dirty.add(ekey)

    # -- views ------------------------------------------------------------------------

    def gauges(self) -> dict[str, FlowGauge]:
        """Pending count, oldest pending start, open breaches and watermark per flow."""
        out: dict[str, FlowGauge] = {}
        for name, fs in self.flows.items():
            give_up = fs.flow.give_up_after_ms
            earliest = fs.give_ups.earliest(self._timer(fs, give_up))
            oldest = None if earliest is None else earliest - give_up
            out[name] = FlowGauge(fs.pending, oldest, fs.open_breaches, fs.watermark)
        return out

    def pending_starts(self) -> Iterator[tuple[str, str, Ref]]:
        """``(flow, key, start)`` of every pending start without a breach."""
        for name, fs in self.flows.items():
            for key, packed in fs.starts.items():
                yield name, key, unpack_start(packed, fs.flow.start_topic)[0]
        for (flow, key), ent in self.entities.items():
            if ent.start is not None and not ent.done and ent.breach is None:
                yield flow, key, ent.start

    def breaches(self) -> Iterator[Breach]:
        """Current state of every breach this partition still holds (open or retained)."""
        for (flow, key), ent in self.entities.items():
            if ent.breach is not None and ent.start is not None:
                yield self._breach(self.flows[flow].flow, key, ent)

    def retractions(self) -> Iterator[str]:
        """Ids of the retracted breaches this partition still holds."""
        for (flow, key), ent in self.entities.items():
            if ent.retracted:
                yield f"{flow}:{key}"

    def entity(self, flow: str, key: str) -> Entity | None:
        fs = self.flows.get(flow)
        packed = None if fs is None else fs.starts.get(key)
        if fs is not None and packed is not None:
            start, pos = unpack_start(packed, fs.flow.start_topic)
            return Entity(start=start, pos=pos)
        return self.entities.get((flow, key))

    def state(self, flow: str, key: str) -> Entity | bytes | None:
        """What the table holds for an entity: its packed start while nothing has happened
        to it (:func:`pack_start`), else the Entity; None once it is forgotten."""
        fs = self.flows.get(flow)
        packed = None if fs is None else fs.starts.get(key)
        if packed is not None:
            return packed
        return self.entities.get((flow, key))

    def prune_windows(self, before_minute: int) -> list[tuple[str, int]]:
        """Forget minute windows older than ``before_minute``; returns the dropped keys."""
        old = [wk for wk in self.windows if wk[1] < before_minute]
        for wk in old:
            del self.windows[wk]
        self.dirty_windows.difference_update(old)
        return old

    # -- persistence --------------------------------------------------------------------

    def take_dirty(self) -> tuple[set[EntityKey], set[tuple[str, int]]]:
        """Keys changed since the last call (entities, windows); the sets are handed over."""
        dirty, self.dirty = self.dirty, set()
        windows, self.dirty_windows = self.dirty_windows, set()
        return dirty, windows

    def states(self) -> Iterator[tuple[EntityKey, Entity | bytes]]:
        """Every entity as :meth:`state` gives it (what the table holds)."""
        for name, fs in self.flows.items():
            for key, packed in fs.starts.items():
                yield (name, key), packed
        yield from self.entities.items()

    def restore_entity(self, ekey: EntityKey, ent: Entity | bytes) -> None:
        """Take over one entity (decoded from the table after a restart or a rebalance, or
        still packed) and re-arm its timers; an entity of a flow no longer configured is
        dropped."""
        fs = self.flows.get(ekey[0])
        if fs is None:
            return
        flow, key = fs.flow, ekey[1]
        if isinstance(ent, bytes):
            unpack_start(ent, flow.start_topic)  # raises ValueError for a broken value
            fs.starts[key] = ent
            self._track_pending(fs, key, _start_at(ent))
            return
        if ent.start is not None and _untouched(ent):
            fs.starts[key] = pack_start(ent.start, ent.pos, flow.start_topic)
            self._track_pending(fs, key, ent.start.at)
            return
        self.entities[ekey] = ent
        if ent.start is None:
            assert ent.end is not None
            heapq.heappush(fs.orphans, (ent.end.at + flow.give_up_after_ms, key, ent.end.event_id))
        elif not ent.done:
            self._track_pending(fs, key, ent.start.at)
            fs.open_breaches += ent.breach == "overdue"
        else:
            last = ent.start.at + flow.give_up_after_ms
            if ent.end is not None and ent.breach != "lost":
                last = max(ent.start.at, ent.end.at)
            heapq.heappush(fs.purges, (last + self.done_retention_ms, key, ent.start.event_id))

    def restore_window(self, wkey: tuple[str, int], win: WindowStats) -> None:
        if wkey[0] in self.flows:
            self.windows[wkey] = win

    def restore_all(
        self,
        entities: Iterable[tuple[EntityKey, Entity | bytes]],
        windows: Iterable[tuple[tuple[str, int], WindowStats]] = (),
    ) -> None:
        for ekey, data in entities:
            self.restore_entity(ekey, data)
        for wkey, wdata in windows:
            self.restore_window(wkey, wdata)


def _untouched(ent: Entity) -> bool:
    """A start waiting for its completion that nothing else has happened to."""
    return (
        ent.end is None
        and not ent.done
        and ent.breach is None
        and ent.detected_at is None
        and not ent.out_of_order
        and not ent.retracted
    )
