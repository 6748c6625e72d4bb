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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streams.core.model import Breach, BreachKind, Flow, FlowEvent, Measurement, Outputs, Source
from streams.stats.records import WindowStats

MINUTE_MS = 60_000
EntityKey = tuple[str, str]


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
    deadlines: list[tuple[int, str, str]] = field(default_factory=list)
    give_ups: list[tuple[int, str, str]] = field(default_factory=list)
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
        self.windows: dict[tuple[str, int], WindowStats] = {}
        self.dirty: set[EntityKey] = set()
        """Entity keys changed since the last :meth:`take_dirty` (absent from
        :attr:`entities` means deleted)."""
        self.dirty_windows: set[tuple[str, int]] = set()

    # -- input -------------------------------------------------------------------------

    def apply(self, ev: FlowEvent, pos: int) -> Outputs:
        """Apply one flow event read at position ``pos`` of the join's input."""
        fs = self.flows.get(ev.flow)
        if fs is None:
            return Outputs()
        ekey = (ev.flow, ev.key)
        ent = self.entities.get(ekey)
        ref = Ref(ev.event_id, ev.occurred_at, ev.topic, ev.partition, ev.offset)
        if ev.side == "start":
            return self._on_start(fs, ekey, ent, ref, pos)
        return self._on_end(fs, ekey, ent, ref, pos)

    def _on_start(
        self, fs: _FlowState, ekey: EntityKey, ent: Entity | None, ref: Ref, pos: int
    ) -> Outputs:
        if ent is not None and ent.start is not None:
            if ent.start.event_id == ref.event_id:
                return self._replayed(fs, ekey, ent, pos)
            return Outputs()
        if ent is None:
            ent = Entity(start=ref, pos=pos)
            self.entities[ekey] = ent
            self.dirty.add(ekey)
            self._track_pending(fs, ekey[1], ref)
            return Outputs()
        # a completion was waiting for this start
        ent.start = ref
        ent.out_of_order = True
        ent.pos = pos
        self.dirty.add(ekey)
        fs.pending += 1
        return self._complete(fs, ekey, ent)

    def _on_end(
        self, fs: _FlowState, ekey: EntityKey, ent: Entity | None, ref: Ref, pos: int
    ) -> Outputs:
        if ent is None:
            self.entities[ekey] = Entity(end=ref, pos=pos)
            self.dirty.add(ekey)
            heapq.heappush(fs.orphans, (ref.at + fs.flow.give_up_after_ms, ekey[1], ref.event_id))
            return Outputs()
        if ent.end is not None:
            if ent.end.event_id == ref.event_id:
                return self._replayed(fs, ekey, ent, pos)
            return Outputs()
        if ent.done:  # declared lost before this completion came: lost is final
            return Outputs()
        ent.end = ref
        ent.pos = pos
        self.dirty.add(ekey)
        return self._complete(fs, ekey, ent)

    def _replayed(self, fs: _FlowState, ekey: EntityKey, ent: Entity, pos: int) -> Outputs:
        """A message at or before the entity's position is being processed again."""
        if pos > ent.pos or not ent.done:
            return Outputs()
        return self._outcome_outputs(fs, ekey[1], ent)

    # -- outcomes ----------------------------------------------------------------------

    def _track_pending(self, fs: _FlowState, key: str, start: Ref) -> None:
        fs.pending += 1
        heapq.heappush(fs.deadlines, (start.at + fs.flow.target_ms, key, start.event_id))
        heapq.heappush(fs.give_ups, (start.at + fs.flow.give_up_after_ms, key, start.event_id))

    def _complete(self, fs: _FlowState, ekey: EntityKey, ent: Entity) -> Outputs:
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
        return self._outcome_outputs(fs, ekey[1], ent)

    def _outcome_outputs(self, fs: _FlowState, key: str, ent: Entity) -> Outputs:
        out = Outputs()
        if ent.start is not None and ent.end is not None:
            out.measurements.append(self._measurement(fs.flow, key, ent))
        if ent.breach is not None:
            out.breaches.append(self._breach(fs.flow, key, ent))
        if ent.retracted:
            out.retractions.append(f"{fs.flow.name}:{key}")
        return out

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

    def _live(self, fs: _FlowState, key: str, start_id: str) -> Entity | None:
        """The pending entity a heap entry still refers to, if any."""
        ent = self.entities.get((fs.flow.name, key))
        if ent is None or ent.done or ent.start is None or ent.start.event_id != start_id:
            return None
        return ent

    def _sweep_overdue(self, fs: _FlowState, wm: int, out: Outputs) -> None:
        heap = fs.deadlines
        while heap and heap[0][0] < wm:
            _, key, start_id = heapq.heappop(heap)
            ent = self._live(fs, key, start_id)
            if ent is None or ent.breach is not None:
                continue
            ent.breach = "overdue"
            ent.detected_at = wm
            fs.open_breaches += 1
            self.dirty.add((fs.flow.name, key))
            out.breaches.append(self._breach(fs.flow, key, ent))

    def _sweep_lost(self, fs: _FlowState, wm: int, out: Outputs) -> None:
        heap = fs.give_ups
        while heap and heap[0][0] < wm:
            give_up_at, key, start_id = heapq.heappop(heap)
            ent = self._live(fs, key, start_id)
            if ent is None:
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
            heapq.heappush(fs.purges, (give_up_at + self.done_retention_ms, key, start_id))
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
            heap = fs.give_ups
            while heap and self._live(fs, heap[0][1], heap[0][2]) is None:
                heapq.heappop(heap)
            oldest = heap[0][0] - fs.flow.give_up_after_ms if heap else None
            out[name] = FlowGauge(fs.pending, oldest, fs.open_breaches, fs.watermark)
        return out

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

    def restore_entity(self, ekey: EntityKey, ent: Entity) -> None:
        """Take over one entity (decoded from the table after a restart or a rebalance) and
        re-arm its timers; an entity of a flow no longer configured is dropped."""
        fs = self.flows.get(ekey[0])
        if fs is None:
            return
        self.entities[ekey] = ent
        flow, key = fs.flow, ekey[1]
        if ent.start is None:
            assert ent.end is not None
            heapq.heappush(fs.orphans, (ent.end.at + flow.give_up_after_ms, key, ent.end.event_id))
        elif not ent.done:
            self._track_pending(fs, key, ent.start)
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
        entities: Iterable[tuple[EntityKey, Entity]],
        windows: Iterable[tuple[tuple[str, int], WindowStats]] = (),
    ) -> None:
        for ekey, data in entities:
            self.restore_entity(ekey, data)
        for wkey, wdata in windows:
            self.restore_window(wkey, wdata)
