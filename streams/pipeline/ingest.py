"""Ingest: input records in, repartitioned flow-event batches and quarantine records out.

:meth:`Ingest.process` never raises for bad input: a record that cannot be used becomes a
quarantine record with its reason, so no record is lost and no partition stalls. The
caller sends what it returns and only then calls :meth:`Ingest.forwarded`, which is what
lets the partition clock's watermark pass those records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.core.model import FlowEvent
from streams.core.watermark import PartitionClock, PartitionReport
from streams.errors import InputError
from streams.pipeline.codec import route
from streams.pipeline.decoder import Decoder
from streams.pipeline.quarantine import quarantine_record

InputRecord = tuple[str, int, int, bytes | None]
"""topic, partition, offset, raw value."""


@dataclass(slots=True)
class IngestResult:
    batches: dict[int, list[FlowEvent]] = field(default_factory=dict)
    """Flow events per join partition, in input order."""
    quarantine: list[tuple[bytes, dict[str, object]]] = field(default_factory=list)
    """(key, record) for ``freshness.quarantine``."""
    read: list[tuple[str, int, int, int | None]] = field(default_factory=list)
    """(topic, partition, offset, event time) of every record, for the partition clock."""
    unmatched: int = 0
    """Valid records that matched no flow (e.g. a completion outside every filter)."""


@dataclass(slots=True)
class IngestCounters:
    records: int = 0
    flow_events: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    unmatched: int = 0


class Ingest:
    """Decoding, validation and routing for one worker process."""

    def __init__(self, decoder: Decoder, join_partitions: int) -> None:
        self.decoder = decoder
        self.join_partitions = join_partitions
        self.clock = PartitionClock()
        self.counters = IngestCounters()

    def process(self, records: Iterable[InputRecord], observed_at: int) -> IngestResult:
        result = IngestResult()
        batches = result.batches
        n = self.join_partitions
        for topic, partition, offset, raw in records:
            self.counters.records += 1
            try:
                events = self.decoder.decode(topic, partition, offset, raw)
            except InputError as exc:
                self.counters.quarantined[exc.reason] = (
                    self.counters.quarantined.get(exc.reason, 0) + 1
                )
                rec = quarantine_record(
                    topic, partition, offset, exc.reason, exc.detail, raw, observed_at
                )
                result.quarantine.append((f"{topic}:{partition}:{offset}".encode(), rec))
                result.read.append((topic, partition, offset, None))
                continue
            if not events:
                result.unmatched += 1
                result.read.append((topic, partition, offset, None))
                continue
            for ev in events:
                batches.setdefault(route(ev.flow, ev.key, n), []).append(ev)
            result.read.append((topic, partition, offset, max(e.occurred_at for e in events)))
            self.counters.flow_events += len(events)
        self.counters.unmatched += result.unmatched
        return result

    def forwarded(self, result: IngestResult) -> None:
        """Call once everything in ``result`` was handed to the producer."""
        for topic, partition, offset, event_time in result.read:
            self.clock.forwarded(topic, partition, offset, event_time)

    def reports(
        self,
        highwaters: Iterable[tuple[str, int, int | None]],
        now: int,
        grace_ms: int = 0,
    ) -> list[PartitionReport]:
        """Watermarks of the assigned input partitions, given (topic, partition, high-water
        mark); partitions no longer listed are forgotten. Where reading of a partition
        starts is told to :attr:`clock` on assignment (``start_at``)."""
        out = []
        tps = []
        for topic, partition, highwater in highwaters:
            tps.append((topic, partition))
            out.append(self.clock.report(topic, partition, highwater, now, grace_ms))
        self.clock.forget(tps)
        return out
