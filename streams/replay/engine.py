"""The replay engine: input records of a time range in, the worker's verdicts out, in memory.

Pure (no Kafka): :class:`ReplayEngine` is fed the records of every input partition in the
Kafka-time slices of :class:`~streams.replay.merge.TimeMerge` and drives the worker's own
pipeline objects with them:

* :class:`~streams.pipeline.ingest.Ingest` (the same decoder, validation, quarantine
  reasons, future-time guard and partition clock as ``freshness worker``);
* one :class:`~streams.core.join.JoinCore` (the join state machine), applied the flow events
  of each slice at increasing positions of the worker's form
  (:func:`streams.pipeline.codec.position` of a message number and an index);
* a :class:`~streams.core.watermark.WatermarkBoard` told, after every slice, the partition
  watermarks the ingest side reports, exactly as the worker's ticks carry them.

It is the worker's code path minus what only moves the same events between processes: the
flow-events topic (``codec.encode_events`` then ``codec.decode``, which hand the join the
events unchanged), the RocksDB table and its changelog (a replay never restarts, so it never
rebuilds a partition from them) and the stats records. One join partition instead of
``FRESHNESS_PARTITIONS``: an entity's verdict depends only on its own events and the
watermarks, never on which partition holds it.

**Time.** The replay reads as a caught-up worker does: at replay time ``T`` (the end of the
current slice) every record written up to ``T`` has been read, so every partition reports
``max(T - grace, largest event time forwarded)`` (:meth:`PartitionClock.report` of a
caught-up partition) and the join sweeps for overdue and lost starts after each slice, i.e.
every ``tick_interval_ms`` of Kafka time in which records were written. A quiet stretch
without records is swept once, just before the next slice (the same verdicts a worker
ticking through it reaches; only their ``detected_at`` differs). At the end of the range
every partition reports the range's end with no grace, so what would have been overdue at
that moment is overdue in the replay.

**Scope.** A verdict belongs to the replay when its start record or its completion record
lies in the range (``Span.begin <= offset < Span.end`` of its partition); records from
``Span.read_from`` to ``Span.begin`` (the lookback) are only context: they are judged
like the others, so a completion in the range finds its start and duplicates are known,
but their own verdicts are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streams.core.join import JoinCore
from streams.core.model import Breach, Flow, FlowEvent, Measurement, Outputs, Source
from streams.core.watermark import WatermarkBoard
from streams.pipeline.codec import POSITION_BITS, event_chunks
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest, InputRecord
from streams.replay.merge import TopicPartition


@dataclass(frozen=True, slots=True)
class Span:
    """The offsets of one input partition a replay reads: ``read_from`` (start of the
    lookback) <= ``begin`` (first record of the range) <= ``end`` (first record after it)."""

    read_from: int
    begin: int
    end: int

    def in_range(self, offset: int) -> bool:
        return self.begin <= offset < self.end


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """The worker settings a replay judges with (``Settings`` fields of the same names)."""

    tick_interval_ms: int = 200
    watermark_grace_ms: int = 200
    max_future_skew_ms: int = 300_000
    done_retention_ms: int = 3_600_000


@dataclass(slots=True)
class ReplayResult:
    """What a replay decided, limited to its scope (see the module docstring)."""

    flows: tuple[Flow, ...]
    from_ms: int
    to_ms: int
    measurements: dict[str, Measurement] = field(default_factory=dict)
    """Latest measurement per key ``flow:key``."""
    breaches: dict[str, Breach] = field(default_factory=dict)
    """Current state per breach id; a retracted breach is absent (its tombstone deleted it)."""
    pending: dict[str, int] = field(default_factory=dict)
    """Per flow: starts in the range still within their target at the end."""
    quarantined: dict[str, int] = field(default_factory=dict)
    """Per input topic: records in the range that were quarantined."""
    reasons: dict[str, int] = field(default_factory=dict)
    """Per quarantine reason: records in the range."""
    records_read: int = 0
    records_in_range: int = 0
    watermarks: dict[str, int] = field(default_factory=dict)
    """Per input topic: the watermark the range ended with."""


class ReplayEngine:
    """Judges the records of ``spans`` (every partition of every input topic of ``flows``)
    up to ``to_ms``; feed it slices in order, then call :meth:`finish` once."""

    def __init__(
        self,
        flows: Sequence[Flow],
        spans: Mapping[TopicPartition, Span],
        *,
        from_ms: int,
        to_ms: int,
        options: ReplayOptions | None = None,
    ) -> None:
        self.options = options or ReplayOptions()
        self.spans = dict(spans)
        self.result = ReplayResult(tuple(flows), from_ms, to_ms)
        self.ingest = Ingest(Decoder(flows), 1, max_future_skew_ms=self.options.max_future_skew_ms)
        self.core = JoinCore(flows, done_retention_ms=self.options.done_retention_ms)
        self.board = WatermarkBoard()
        self.board.set_partition_counts(_partition_counts(self.spans))
        self._next = {tp: span.read_from for tp, span in self.spans.items()}
        for (topic, partition), span in self.spans.items():
            self.ingest.clock.start_at(topic, partition, span.read_from)
        self._message = 0
        self._last_tick: int | None = None
        self._finished = False

    # -- input -----------------------------------------------------------------------------

    def feed(self, until: int, records: Sequence[InputRecord]) -> None:
        """Apply one slice: the records written up to Kafka time ``until`` (after the last
        slice's), then sweep at ``until`` (capped by the range's end)."""
        if self._finished:
            raise RuntimeError("the replay has finished")
        now = min(until, self.result.to_ms)
        interval = self.options.tick_interval_ms
        if self._last_tick is not None and now - self._last_tick > interval:
            self._tick(now - interval, self.options.watermark_grace_ms)
        result = self.ingest.process(records, now)
        self._count_quarantine(result.quarantine)
        self._apply(result.batches.get(0, ()))
        self.ingest.forwarded(result)
        nxt, spans = self._next, self.spans
        in_range = 0
        for topic, partition, offset, _, _ in records:
            tp = (topic, partition)
            nxt[tp] = offset + 1
            in_range += spans[tp].begin <= offset
        self.result.records_read += len(records)
        self.result.records_in_range += in_range
        self._tick(now, self.options.watermark_grace_ms)

    def _apply(self, events: Sequence[FlowEvent]) -> None:
        apply, collect = self.core.apply, self._collect
        for chunk in event_chunks(events):
            base = self._message << POSITION_BITS
            self._message += 1
            for i, ev in enumerate(chunk):
                out = apply(ev, base | i)
                if out.measurements or out.breaches or out.retractions:
                    collect(out)
        self.core.take_dirty()  # no table to write them to

    def _tick(self, now: int, grace_ms: int) -> None:
        """What a worker's tick at ``now`` does: partition watermarks to the board, then a
        sweep of the join against the topic watermarks."""
        highwaters = [(t, p, self._next[(t, p)], None) for t, p in self.spans]
        board = self.board
        for r in self.ingest.reports(highwaters, now, grace_ms):
            board.observe(r.topic, r.partition, r.watermark, r.lag_ms)
        out = self.core.advance(board.topic_watermarks(board.partition_counts))
        self._collect(out)
        self._last_tick = now

    # -- verdicts --------------------------------------------------------------------------

    def _in_range(self, src: Source | None) -> bool:
        if src is None:
            return False
        span = self.spans.get((src.topic, src.partition))
        return span is not None and span.begin <= src.offset < span.end

    def _collect(self, out: Outputs) -> None:
        res, in_range = self.result, self._in_range
        for m in out.measurements:
            if in_range(m.start_source) or in_range(m.end_source):
                res.measurements[f"{m.flow}:{m.key}"] = m
        for b in out.breaches:
            if in_range(b.start_source) or in_range(b.end_source):
                res.breaches[b.breach_id] = b
        for breach_id in out.retractions:
            res.breaches.pop(breach_id, None)

    def _count_quarantine(self, records: Sequence[tuple[bytes, dict[str, object]]]) -> None:
        res = self.result
        for _, rec in records:
            topic, partition, offset = rec["topic"], rec["partition"], rec["offset"]
            assert isinstance(topic, str)
            assert isinstance(partition, int)
            assert isinstance(offset, int)
            span = self.spans.get((topic, partition))
            if span is not None and span.in_range(offset):
                res.quarantined[topic] = res.quarantined.get(topic, 0) + 1
                reason = str(rec["reason"])
                res.reasons[reason] = res.reasons.get(reason, 0) + 1

    # -- end -------------------------------------------------------------------------------

    def finish(self) -> ReplayResult:
        """Sweep at the range's end (every partition's watermark is ``to_ms``) and return
        the verdicts; the engine takes no more input."""
        if not self._finished:
            self._tick(self.result.to_ms, 0)
            self._finished = True
            board = self.board
            self.result.watermarks = board.topic_watermarks(board.partition_counts)
            self.result.pending = dict(self._pending())
        return self.result

    def _pending(self) -> Iterator[tuple[str, int]]:
        counts = {f.name: 0 for f in self.result.flows}
        for flow, _, start in self.core.pending_starts():
            if self._in_range(start.source()):
                counts[flow] += 1
        yield from counts.items()


def _partition_counts(spans: Mapping[TopicPartition, Span]) -> dict[str, int]:
    """Partitions per topic; ``spans`` must hold every partition ``0..n-1`` of each topic."""
    by_topic: dict[str, set[int]] = {}
    for topic, partition in spans:
        by_topic.setdefault(topic, set()).add(partition)
    counts = {}
    for topic, parts in by_topic.items():
        if parts != set(range(len(parts))):
            raise ValueError(f"spans of {topic} must cover partitions 0..n-1, got {sorted(parts)}")
        counts[topic] = len(parts)
    return counts
