"""Ingest: input records in, repartitioned flow-event batches and quarantine records out.

:meth:`Ingest.process` never raises for bad input: a record that cannot be used becomes a
quarantine record with its reason, so no record is lost and no partition stalls. The
caller sends what it returns and only then calls :meth:`Ingest.forwarded`, which is what
lets the partition clock's watermark pass those records.

A record whose event time lies more than ``max_future_skew_ms`` ahead of when it was
written (its Kafka timestamp, capped by the moment it was read) is quarantined as
``future_time`` and never reaches the partition clock: one record dated 9999 must not carry a
watermark to 9999 and declare every pending start lost. Because the reference is the
record's own timestamp, a replay of the same records quarantines the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.core.model import FlowEvent
from streams.core.timeparse import format_event_time
from streams.core.watermark import PartitionClock, PartitionReport
from streams.errors import InputError
from streams.pipeline.codec import route
from streams.pipeline.decoder import Decoder
from streams.pipeline.quarantine import quarantine_record

DEFAULT_MAX_FUTURE_SKEW_MS = 300_000

InputRecord = tuple[str, int, int, int, bytes | None]
"""topic, partition, offset, Kafka timestamp (epoch ms; negative: none), raw value."""


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


class Ingest:
    """Decoding, validation and routing for one worker (or one replay)."""

    def __init__(
        self,
        decoder: Decoder,
        join_partitions: int,
        *,
        max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    ) -> None:
        self.decoder = decoder
        self.join_partitions = join_partitions
        self.max_future_skew_ms = max_future_skew_ms
        self.clock = PartitionClock()

    def process(self, records: Iterable[InputRecord], observed_at: int) -> IngestResult:
        """Decode, validate and route ``records`` read at wall time ``observed_at``."""
        result = IngestResult()
        batches, read = result.batches, result.read
        n, skew, decode = self.join_partitions, self.max_future_skew_ms, self.decoder.decode
        for topic, partition, offset, timestamp, raw in records:
            try:
                events = decode(topic, partition, offset, raw)
                if not events:
                    result.unmatched += 1
                    read.append((topic, partition, offset, None))
                    continue
                at = (
                    events[0].occurred_at
                    if len(events) == 1
                    else max(e.occurred_at for e in events)
                )
                written = timestamp if 0 <= timestamp < observed_at else observed_at
                if at > written + skew:
                    raise _future(at, written, skew)
            except InputError as exc:
                rec = quarantine_record(
                    topic, partition, offset, exc.reason, exc.detail, raw, observed_at
                )
                result.quarantine.append((f"{topic}:{partition}:{offset}".encode(), rec))
                read.append((topic, partition, offset, None))
                continue
            for ev in events:
                batches.setdefault(route(ev.flow, ev.key, n), []).append(ev)
            read.append((topic, partition, offset, at))
        return result

    def forwarded(self, result: IngestResult) -> None:
        """Call once everything in ``result`` was handed to the producer."""
        for topic, partition, offset, event_time in result.read:
            self.clock.forwarded(topic, partition, offset, event_time)

    def reports(
        self,
        highwaters: Iterable[tuple[str, int, int | None, int | None]],
        now: int,
        grace_ms: int = 0,
    ) -> list[PartitionReport]:
        """Watermarks of the assigned input partitions, given (topic, partition, high-water
        mark, when the broker reported that mark or None); partitions no longer listed are
        forgotten. Where reading of a partition
        starts is told to :attr:`clock` on assignment (``start_at``)."""
        out = []
        tps = []
        for topic, partition, highwater, fetched_at in highwaters:
            tps.append((topic, partition))
            out.append(self.clock.report(topic, partition, highwater, now, grace_ms, fetched_at))
        self.clock.forget(tps)
        return out


def _future(at: int, written: int, skew_ms: int) -> InputError:
    return InputError(
        "future_time",
        f"occurred_at {format_event_time(at)} is {at - written} ms after the record was "
        f"written ({format_event_time(written)}); at most {skew_ms} ms "
        "(FRESHNESS_MAX_FUTURE_SKEW_MS) is accepted",
    )
