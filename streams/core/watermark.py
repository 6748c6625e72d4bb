"""Watermarks: how far in event time each input partition has been read.

Two halves, both pure:

* :class:`PartitionClock` runs where input records are read (the ingest side). For each
  input partition it knows the largest event time *forwarded* to the join and the next
  offset to forward. Its watermark is that event time, or, once the partition is caught up
  (everything up to the high-water mark forwarded) or idle, the moment the broker last told
  us that high-water mark (the last fetch response), never later than the wall clock.
  Records that were read but not yet forwarded never count, so a watermark can never
  overtake a completion that is still on its way to the join; and while the broker cannot be
  reached the watermark stands still instead of running on with the wall clock, so an outage
  raises no false overdue. In the worker a partition not reported on for a few tick
  intervals (:attr:`PartitionClock.unwatched_after_ms`; the tick and the reader's loop can
  both block on the producer for a whole outage) counts as blind too. Such a blind partition
  reports its blindness as monitor lag once it exceeds :data:`BLIND_AFTER_MS`. When contact
  returns, the records the funnel's producers held during the outage arrive over the next
  moments, so the wall part of the watermark does not jump to the present: it stands still
  for as long as the gap it has to close, at most :data:`RECOVERY_HOLD_MS` (the producers
  deliver what they held), then catches up at :data:`RECOVERY_SPEED` times the wall clock (a
  20 s outage: held 10 s, caught up 40 s after contact returns), reported as monitor lag
  meanwhile.
* :class:`WatermarkBoard` runs beside the join. It merges the partition watermarks it is
  told about (max per partition, so stale reports never move it back) and answers, per
  topic, the minimum over *all* partitions of that topic, or ``None`` while any partition
  has not reported. A start is only ever judged against that minimum, which is what makes
  "no false overdue while the monitor is behind" hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]
BLIND_AFTER_MS = 1_000
"""A caught-up partition whose last fetch response is older than this reports the time
since as monitor lag (idle partitions are fetched every ~100 ms)."""
RECOVERY_HOLD_MS = 10_000
"""Longest time the wall-clock watermark stands still after contact returns."""
RECOVERY_SPEED = 2
"""After the hold, the wall-clock watermark advances this many times faster than the wall
clock until it is back at ``now - grace``."""


@dataclass(slots=True)
class _Position:
    max_event_time: int | None = None
    next_offset: int | None = None
    wall: int | None = None
    """The last wall-clock watermark reported while caught up (never moves back)."""
    blind: bool = False
    recovery: tuple[int, int] | None = None
    """(watermark, now) when contact returned after a blind spell, while catching up."""
    reported_at: int | None = None
    """When this partition was last reported on (a tick)."""


@dataclass(slots=True)
class PartitionReport:
    """One partition's watermark as the ingest side sees it at ``now``."""

    topic: str
    partition: int
    watermark: int | None
    lag_ms: int
    """How far this partition's reading is behind the wall clock; 0 when caught up."""
    behind: int
    """Records between what was forwarded and the high-water mark."""


@dataclass(slots=True)
class PartitionClock:
    """Ingest-side tracker; call :meth:`forwarded` only after the records were sent on."""

    _positions: dict[TopicPartition, _Position] = field(default_factory=dict)
    _walls: dict[TopicPartition, int] = field(default_factory=dict)
    """The last wall-clock watermark of every partition ever held here (kept when it is
    forgotten), where a re-assigned partition resumes."""
    unwatched_after_ms: int | None = None
    """A caught-up partition not reported on for longer than this counts as blind (the live
    worker sets it, a few tick intervals; None, as in a replay, whose reports are made in
    its own time: never)."""

    def forwarded(self, topic: str, partition: int, offset: int, event_time: int | None) -> None:
        """Record that the record at ``offset`` (with ``event_time``, if any) was sent on."""
        pos = self._positions.get((topic, partition))
        if pos is None:
            pos = self._positions[(topic, partition)] = _Position()
        if event_time is not None and (
            pos.max_event_time is None or event_time > pos.max_event_time
        ):
            pos.max_event_time = event_time
        if pos.next_offset is None or offset + 1 > pos.next_offset:
            pos.next_offset = offset + 1

    def start_at(self, topic: str, partition: int, offset: int) -> None:
        """The partition was (re)assigned and reading resumes at ``offset``.

        A partition this clock held before resumes from the wall-clock watermark it had
        then, catching up at :data:`RECOVERY_SPEED` (instantly after a quick rebalance,
        gradually after an outage, when the group rebalances as contact returns).
        """
        tp = (topic, partition)
        pos = self._positions.get(tp)
        if pos is None:
            pos = self._positions[tp] = _Position()
            if tp in self._walls:
                pos.wall, pos.blind = self._walls[tp], True
        if pos.next_offset is None or offset > pos.next_offset:
            pos.next_offset = offset

    def silent(self, topic: str, partition: int, silent_ms: int) -> None:
        """The broker has not answered for ``partition`` for ``silent_ms``: called by the
        reader on every pass of its loop, so a blind spell is seen even when no report is
        made during it (a tick can block on the producer for the whole outage)."""
        pos = self._positions.get((topic, partition))
        if pos is not None and silent_ms > BLIND_AFTER_MS:
            pos.blind, pos.recovery = True, None

    def forget(self, keep: Iterable[TopicPartition]) -> None:
        """Drop partitions no longer assigned here."""
        keep_set = set(keep)
        for tp in [tp for tp in self._positions if tp not in keep_set]:
            del self._positions[tp]

    def report(
        self,
        topic: str,
        partition: int,
        highwater: int | None,
        now: int,
        grace_ms: int = 0,
        fetched_at: int | None = None,
    ) -> PartitionReport:
        """Watermark of one partition given its high-water mark (None: unknown) as the
        broker reported it at ``fetched_at`` (None: now).

        A caught-up partition stands at ``min(now, fetched_at) - grace_ms``: the grace covers
        the time a producer takes to deliver a record that has already happened.
        """
        pos = self._positions.get((topic, partition), _Position())
        caught_up = (
            highwater is not None and pos.next_offset is not None and pos.next_offset >= highwater
        )
        behind = (
            0
            if highwater is None or pos.next_offset is None
            else max(0, highwater - pos.next_offset)
        )
        after = self.unwatched_after_ms
        unwatched = (
            after is not None and pos.reported_at is not None and now - pos.reported_at > after
        )
        pos.reported_at = now
        if caught_up:
            if unwatched and not pos.blind and pos.recovery is None:
                # No tick reported on it for a while, so nothing may have told the clock of
                # a blind spell (the tick and the reader's loop can both block on the
                # producer for a whole outage): the fetch that ended it must not jump the
                # watermark to the present either. (A recovery under way goes
                # on: its pace is set by the wall clock, not by how often it is reported.)
                pos.blind = True
            heard = now if fetched_at is None else min(now, fetched_at)
            wall, lag = _wall_mark(pos, heard - grace_ms, now - heard, now)
            self._walls[(topic, partition)] = wall
            wm = wall if pos.max_event_time is None else max(wall, pos.max_event_time)
            return PartitionReport(topic, partition, wm, lag, 0)
        lag = 0 if pos.max_event_time is None else max(0, now - pos.max_event_time)
        return PartitionReport(topic, partition, pos.max_event_time, lag, behind)


def _wall_mark(pos: _Position, target: int, silent_ms: int, now: int) -> tuple[int, int]:
    """The wall-clock watermark of a caught-up partition and its monitor lag: ``target``
    (the last fetch minus the grace), except while recovering from a blind spell."""
    if silent_ms > BLIND_AFTER_MS:
        pos.blind, pos.recovery = True, None
    elif pos.blind:
        pos.blind = False
        start = target if pos.wall is None else min(pos.wall, target)
        hold = min(target - start, RECOVERY_HOLD_MS)
        pos.recovery = (start, now + hold)
    wall = target
    if pos.recovery is not None:
        start, since = pos.recovery
        wall = min(target, start + RECOVERY_SPEED * max(0, now - since))
        if wall >= target:
            pos.recovery = None
    if pos.wall is not None and wall < pos.wall:
        wall = pos.wall
    pos.wall = wall
    lag = max(silent_ms, target - wall)
    return wall, lag if lag > BLIND_AFTER_MS else 0


@dataclass(slots=True)
class WatermarkBoard:
    """Join-side merge of partition watermarks into per-topic watermarks."""

    partition_counts: dict[str, int] = field(default_factory=dict)
    _marks: dict[TopicPartition, int] = field(default_factory=dict)
    _lags: dict[TopicPartition, int] = field(default_factory=dict)

    def set_partition_counts(self, counts: Mapping[str, int]) -> None:
        for topic, n in counts.items():
            if n > self.partition_counts.get(topic, 0):
                self.partition_counts[topic] = n

    def observe(self, topic: str, partition: int, watermark: int | None, lag_ms: int) -> None:
        tp = (topic, partition)
        self._lags[tp] = lag_ms
        if watermark is not None and watermark > self._marks.get(tp, watermark - 1):
            self._marks[tp] = watermark

    def topic_watermark(self, topic: str) -> int | None:
        """Minimum watermark over every partition of ``topic``; None until all have reported."""
        n = self.partition_counts.get(topic, 0)
        if n == 0:
            return None
        low: int | None = None
        for p in range(n):
            wm = self._marks.get((topic, p))
            if wm is None:
                return None
            if low is None or wm < low:
                low = wm
        return low

    def topic_watermarks(self, topics: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for topic in topics:
            wm = self.topic_watermark(topic)
            if wm is not None:
                out[topic] = wm
        return out

    def monitor_lag(self, topic: str) -> int:
        """Largest reading lag over the partitions of ``topic`` (ms)."""
        n = self.partition_counts.get(topic, 0)
        return max((self._lags.get((topic, p), 0) for p in range(n)), default=0)
