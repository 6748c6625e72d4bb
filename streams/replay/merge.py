"""Input records of many partitions, fetched in any interleaving, put back in Kafka-time order.

A replay must give the same result however the fetches happened to interleave partitions,
so it cannot process records in the order they arrive. :class:`TimeMerge` buffers them per
partition and hands them out in *slices* of Kafka time: slice ``k`` holds the records whose
time lies in ``((k - 1) * interval, k * interval]``, and is handed out once every partition
still being read has moved past it. That makes the order a function of the records alone:

* within a partition, Kafka's order (offsets) is kept. A record's time for slicing is the
  largest Kafka timestamp of its partition so far (its *running maximum*), so a producer
  whose timestamps go backwards never makes a record overtake an earlier one;
* within a slice, records are ordered by that time; ties keep the order of the partitions
  passed to the constructor, then offsets;
* a record without a timestamp (negative) counts as time 0 until its partition has one.

Slices come out in increasing order and never twice. Memory: records wait in their buffer
until the slowest open partition has passed their slice; :meth:`TimeMerge.buffered` lets the
reader pause partitions that run ahead.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from streams.pipeline.ingest import InputRecord

TopicPartition = tuple[str, int]
_TIME = itemgetter(0)
_COMPACT_AT = 4096


@dataclass(slots=True)
class _Buffer:
    items: list[tuple[int, InputRecord]] = field(default_factory=list)
    """(running maximum time, record), in offset order."""
    head: int = 0
    running_max: int = 0
    seen: bool = False
    closed: bool = False

    def pending(self) -> int:
        return len(self.items) - self.head

    def take_until(self, until: int) -> list[tuple[int, InputRecord]]:
        """Remove and return the buffered records whose time is at or before ``until``."""
        items, head = self.items, self.head
        stop = bisect_right(items, until, lo=head, key=_TIME)
        out = items[head:stop]
        self.head = stop
        if stop >= _COMPACT_AT and stop * 2 >= len(items):
            del items[:stop]
            self.head = 0
        return out


class TimeMerge:
    """Slices of Kafka time over ``partitions`` (see the module docstring)."""

    def __init__(self, partitions: Iterable[TopicPartition], interval_ms: int) -> None:
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.interval_ms = interval_ms
        self._buffers: dict[TopicPartition, _Buffer] = {tp: _Buffer() for tp in partitions}

    def add(self, tp: TopicPartition, records: Sequence[InputRecord]) -> None:
        """Append records of ``tp`` read in offset order (after those added before)."""
        buf = self._buffers[tp]
        if buf.closed:
            raise ValueError(f"{tp[0]}[{tp[1]}] was closed; nothing more can be added")
        running = buf.running_max
        append = buf.items.append
        for rec in records:
            ts = rec[3]
            if ts > running:
                running = ts
            append((running, rec))
        if records:
            buf.running_max = running
            buf.seen = True

    def close(self, tp: TopicPartition) -> None:
        """``tp`` has nothing more to read."""
        self._buffers[tp].closed = True

    def buffered(self, tp: TopicPartition) -> int:
        """Records of ``tp`` waiting to be handed out."""
        return self._buffers[tp].pending()

    def done(self) -> bool:
        """Every partition is closed and every record was handed out."""
        return all(b.closed and not b.pending() for b in self._buffers.values())

    def _slice_of(self, at: int) -> int:
        return -(-at // self.interval_ms)

    def ahead(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` has read past the slowest open partition's slice (pausing it cannot
        hold the slices back)."""
        buf = self._buffers[tp]
        frontier = self._frontier()
        return buf.seen and frontier is not None and self._slice_of(buf.running_max) > frontier

    def _frontier(self) -> int | None:
        """The first slice that may still grow (None: every partition is closed)."""
        low: int | None = None
        for buf in self._buffers.values():
            if buf.closed:
                continue
            if not buf.seen:
                return -1  # nothing read yet: it may still hold records of any slice
            k = self._slice_of(buf.running_max)
            if low is None or k < low:
                low = k
        return low

    def _first_buffered_slice(self) -> int | None:
        first: int | None = None
        for buf in self._buffers.values():
            if buf.pending():
                k = self._slice_of(buf.items[buf.head][0])
                if first is None or k < first:
                    first = k
        return first

    def ready(self) -> Iterator[tuple[int, list[InputRecord]]]:
        """The complete slices, oldest first, as ``(end of the slice in ms, records)``."""
        frontier = self._frontier()
        while True:
            k = self._first_buffered_slice()
            if k is None or (frontier is not None and k >= frontier):
                return
            yield k * self.interval_ms, self._take(k)

    def _take(self, k: int) -> list[InputRecord]:
        until = k * self.interval_ms
        pairs: list[tuple[int, InputRecord]] = []
        for buf in self._buffers.values():
            if buf.pending():
                pairs += buf.take_until(until)
        pairs.sort(key=_TIME)  # stable: ties keep partition order, then offsets
        return [rec for _, rec in pairs]
