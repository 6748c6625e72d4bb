"""Reading ranges of Kafka offsets for replay and explain: group-less, in large batches.

* :func:`plan_range` turns a time range into offsets per input partition
  (:class:`~streams.replay.engine.Span`) with :func:`streams.kafka.offsets_for_time`:
  the lookback's start, the range's first record, the first record after the range.
* :class:`RangeReader` reads given ``[start, end)`` offsets of many partitions with one
  assigned consumer (no group, nothing committed, nothing written) and hands every batch
  to a callback. A partition is done once its position reaches its end, so an offset gap
  (a transaction marker, a compacted record) never stalls it.
* :func:`read_inputs` is the replay's read loop: batches into a
  :class:`~streams.replay.merge.TimeMerge`, its complete slices to a callback after every
  fetch; a partition that runs far ahead of the slowest one is paused until the slices
  catch up, so memory is bounded by how unevenly partitions fill, not by the range.

Kafka errors: a retriable one (:func:`streams.kafka.retriable`) is retried until nothing
has arrived for ``stall_s`` seconds; then, or at once for any other error, a
:class:`~streams.errors.BrokerError` says which and what to check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition as KafkaTP

from streams.errors import BrokerError, ConfigError
from streams.kafka import (
    KafkaConnection,
    connection,
    fatal,
    offsets_for_time,
    partition_list,
    retriable,
    topic_partitions,
)
from streams.pipeline.ingest import InputRecord
from streams.replay.engine import Span
from streams.replay.merge import TimeMerge, TopicPartition
from streams.settings import Settings

FETCH_RECORDS = 50_000
"""Most records one ``getmany`` returns."""
CONSUMER_OPTIONS: dict[str, Any] = {
    "group_id": None,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "client_id": "freshness-replay",
}
"""A group-less reader; per partition above the broker's record size limit."""
PAUSE_AHEAD = 200_000
"""Buffered records of a partition ahead of the others above which it is paused."""
STALL_S = 60.0

Batch = Callable[[TopicPartition, Sequence[Any]], None]
"""Called with a partition and its next records (ConsumerRecords before its end)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a replay of ``[from_ms, to_ms)`` reads, with ``lookback_ms`` before it."""

    from_ms: int
    to_ms: int
    lookback_ms: int
    spans: dict[TopicPartition, Span]

    def to_read(self) -> int:
        return sum(s.end - s.read_from for s in self.spans.values())

    def in_range(self) -> int:
        return sum(s.end - s.begin for s in self.spans.values())


async def plan_range(
    consumer: Any, names: Sequence[str], from_ms: int, to_ms: int, lookback_ms: int
) -> Plan:
    """Offsets of the range on every partition of ``names``; a missing topic is an error."""
    parts = await topic_partitions(consumer, names)
    missing = sorted(t for t, ps in parts.items() if not ps)
    if missing:
        raise ConfigError(
            f"input topic(s) {', '.join(missing)} do not exist on the cluster; check "
            "FRESHNESS_KAFKA_BOOTSTRAP and the flows (--flows, FRESHNESS_FLOWS)"
        )
    tps = partition_list(parts)
    read_from = await offsets_for_time(consumer, tps, from_ms - lookback_ms)
    begin = await offsets_for_time(consumer, tps, from_ms)
    end = await offsets_for_time(consumer, tps, to_ms)
    spans = {}
    for tp in tps:
        stop = end[tp]
        first = min(max(begin[tp], read_from[tp]), stop)
        spans[(tp.topic, tp.partition)] = Span(min(read_from[tp], first), first, stop)
    return Plan(from_ms, to_ms, lookback_ms, spans)


def quiet_client_logs() -> None:
    """aiokafka logs every failed connection attempt; a command says itself, in one line,
    what failed, so the client's own warnings are not shown."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def start_consumer(consumer: Any, settings: Settings | KafkaConnection) -> None:
    """Start ``consumer``; an unreachable broker is a :class:`BrokerError` naming it."""
    try:
        await consumer.start()
    except Exception as exc:
        if not retriable(exc):
            raise fatal(exc, "the reader") from exc
        raise BrokerError(
            f"cannot reach Kafka at {connection(settings).bootstrap} ({type(exc).__name__}); "
            "start it (freshness kafka start) or set FRESHNESS_KAFKA_BOOTSTRAP"
        ) from None


class RangeReader:
    """Reads ``ranges`` (partition -> [start, end) offsets) once; see the module docstring."""

    def __init__(
        self,
        consumer: Any,
        ranges: Mapping[TopicPartition, tuple[int, int]],
        *,
        what: str = "the replay's reader",
        stall_s: float = STALL_S,
    ) -> None:
        self.consumer = consumer
        self.ends = {KafkaTP(t, p): e for (t, p), (s, e) in ranges.items() if s < e}
        self.starts = {KafkaTP(t, p): s for (t, p), (s, e) in ranges.items() if s < e}
        self.what = what
        self.stall_s = stall_s
        self.paused: set[TopicPartition] = set()

    def open_partitions(self) -> list[TopicPartition]:
        return [(tp.topic, tp.partition) for tp in self.ends]

    def pause(self, tp: TopicPartition) -> None:
        if tp not in self.paused:
            self.paused.add(tp)
            self.consumer.pause(KafkaTP(*tp))

    def resume(self, tp: TopicPartition) -> None:
        if tp in self.paused:
            self.paused.discard(tp)
            self.consumer.resume(KafkaTP(*tp))

    async def run(
        self,
        on_batch: Batch,
        on_done: Callable[[TopicPartition], None] = lambda tp: None,
        after_fetch: Callable[[], None] = lambda: None,
    ) -> None:
        """Read every range to its end. ``on_done`` is called once per partition when it is
        complete, ``after_fetch`` after each fetch's batches were handed over."""
        if not self.ends:
            return
        self.consumer.assign(list(self.ends))
        for tp, start in self.starts.items():
            self.consumer.seek(tp, start)
        heard = time.monotonic()
        while self.ends:
            batches = await self._fetch(heard)
            for tp, msgs in batches.items():
                end = self.ends.get(tp)
                if end is not None and msgs and msgs[-1].offset >= end:
                    msgs = [m for m in msgs if m.offset < end]
                if end is not None and msgs:
                    on_batch((tp.topic, tp.partition), msgs)
            if await self._close_finished(on_done) or batches:
                heard = time.monotonic()
            elif time.monotonic() - heard > self.stall_s:
                raise _stalled(self.what, self.stall_s, None)
            after_fetch()

    async def _fetch(self, heard: float) -> dict[Any, list[Any]]:
        while True:
            try:
                result: dict[Any, list[Any]] = await self.consumer.getmany(
                    timeout_ms=200, max_records=FETCH_RECORDS
                )
                return result
            except Exception as exc:
                if not retriable(exc):
                    raise fatal(exc, self.what) from exc
                if time.monotonic() - heard > self.stall_s:
                    raise _stalled(self.what, self.stall_s, exc) from exc
                await asyncio.sleep(0.5)

    async def _close_finished(self, on_done: Callable[[TopicPartition], None]) -> bool:
        closed = False
        for tp, end in list(self.ends.items()):
            if await self.consumer.position(tp) >= end:
                del self.ends[tp]
                self.consumer.pause(tp)
                on_done((tp.topic, tp.partition))
                closed = True
        return closed


def _stalled(what: str, stall_s: float, exc: BaseException | None) -> BrokerError:
    why = "" if exc is None else f" ({type(exc).__name__}: {exc})"
    return BrokerError(
        f"{what}: Kafka returned nothing for {stall_s:.0f} s{why}; check that the broker at "
        "FRESHNESS_KAFKA_BOOTSTRAP is up"
    )


async def read_inputs(
    consumer: Any,
    plan: Plan,
    merge: TimeMerge,
    on_slice: Callable[[int, list[InputRecord]], None],
    progress: Callable[[int], None] = lambda n: None,
) -> None:
    """Read the plan's records (lookback included) and hand out the merge's slices in order."""
    reader = RangeReader(consumer, {tp: (s.read_from, s.end) for tp, s in plan.spans.items()})
    for tp in set(plan.spans) - set(reader.open_partitions()):
        merge.close(tp)

    def batch(tp: TopicPartition, msgs: Sequence[Any]) -> None:
        topic, partition = tp
        merge.add(tp, [(topic, partition, m.offset, m.timestamp, m.value) for m in msgs])
        progress(len(msgs))

    def drain() -> None:
        for until, records in merge.ready():
            on_slice(until, records)
        for tp in reader.open_partitions():
            if merge.buffered(tp) > PAUSE_AHEAD and merge.ahead(tp):
                reader.pause(tp)
            elif tp in reader.paused and not (
                merge.buffered(tp) > PAUSE_AHEAD // 2 and merge.ahead(tp)
            ):
                reader.resume(tp)

    await reader.run(batch, merge.close, drain)
    drain()
    if not merge.done():  # every partition is closed: ready() hands out everything
        raise RuntimeError("records left in the merge after the last slice")
