"""The input side of a worker: a plain aiokafka consumer feeding :class:`Ingest` in batches.

Faust's stream machinery costs about 75 µs per record on this kind of machine, which caps
a Faust agent near 13,000 records/s before any work is done; the input records need no
Faust feature (no table, no co-partitioning), so they are read with ``getmany`` instead,
in their own consumer group (``<app id>-ingest``). The join stays a Faust agent over the
repartitioned ``<app id>-flow-events`` batches, where one message carries many events.

Guarantees:

* at-least-once: offsets are committed only after the producer has been flushed, i.e.
  after every batch, quarantine record and tick derived from those records was delivered;
  a crash replays from the last commit, and the join ignores what it has already applied;
* a partition's watermark never passes a record before that record was handed to the
  producer (:meth:`Ingest.forwarded` runs after the sends), and reading resumes exactly at
  the committed offset, which is where the partition clock starts after an assignment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError

from streams import topics
from streams.core.clock import Clock, now_ms
from streams.core.watermark import PartitionReport
from streams.kafka.clients import KafkaConnection, new_consumer
from streams.kafka.errors import fatal, retriable
from streams.pipeline.codec import encode_events, event_chunks
from streams.pipeline.ingest import Ingest

log = logging.getLogger(__name__)

Send = Callable[[str, bytes | None, bytes | None, int | None], Awaitable[Any]]
COMMIT_INTERVAL_S = 1.0
LINGER_S = 0.05
"""How long a batch may wait for more records once it has some (adds at most this to the
detection delay, which a 200 ms tick dominates)."""
FETCH_MAX_WAIT_MS = 100
MAX_FETCH_BYTES = 8 * 1024 * 1024
"""Per-partition fetch limit: above the broker's 4 MiB record limit, so an oversize record
(quarantined as too_large) is always fetched."""


class InputReader:
    """Reads the flows' input topics and forwards them to the join; one per worker."""

    def __init__(
        self,
        *,
        kafka: KafkaConnection,
        group_id: str,
        input_topics: Sequence[str],
        events_topic: str,
        ingest: Ingest,
        send: Send,
        flush: Callable[[], Awaitable[None]],
        max_records: int,
        session_timeout_ms: int,
        clock: Clock = now_ms,
    ) -> None:
        self.input_topics = tuple(input_topics)
        self.events_topic = events_topic
        self.clock = clock
        self.ingest = ingest
        self.send = send
        self.flush = flush
        self.max_records = max_records
        self.kafka = kafka
        self._consumer_options: dict[str, Any] = {
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_partition_fetch_bytes": MAX_FETCH_BYTES,
            # An idle partition's high-water mark (and so its watermark) is refreshed by
            # every fetch response: at most this long apart (aiokafka's default is 500 ms).
            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": session_timeout_ms // 3,
        }
        self._consumer: AIOKafkaConsumer | None = None
        self._processed: dict[TopicPartition, int] = {}
        """Next offset to commit per partition: everything before it was forwarded."""
        self._last_commit = time.monotonic()
        self._lock = asyncio.Lock()
        self._unplaced: set[TopicPartition] = set()
        """Assigned partitions whose resume offset the clock does not know yet."""

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the input reader is not running")
        return self._consumer

    async def run(self) -> None:
        """Read until cancelled; commits what was delivered on the way out."""
        self._consumer = new_consumer(self.kafka, **self._consumer_options)  # in the loop
        await self.consumer.start()
        self.consumer.subscribe(self.input_topics, listener=_Listener(self))
        try:
            while True:
                if self._unplaced:
                    await self._place()
                batches = await self._fetch()
                self._watch_contact()
                if batches:
                    await self._forward(batches)
                if time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
                    await self._commit_or_retry_later()
        finally:
            try:
                await self.commit()
            finally:
                await self.consumer.stop()

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        """Up to ``max_records`` records, waiting at most ``LINGER_S`` after the first ones:
        at modest rates that makes one batch of many records instead of many small ones
        (each batch costs the join one Faust message per partition)."""
        consumer = self.consumer
        batches: dict[TopicPartition, list[Any]] = await consumer.getmany(
            timeout_ms=100, max_records=self.max_records
        )
        n = sum(len(msgs) for msgs in batches.values())
        until = time.monotonic() + LINGER_S
        while batches and n < self.max_records:
            left = until - time.monotonic()
            if left <= 0:
                break
            more = await consumer.getmany(
                timeout_ms=max(1, int(left * 1000)), max_records=self.max_records - n
            )
            for tp, msgs in more.items():
                batches.setdefault(tp, []).extend(msgs)
                n += len(msgs)
        return batches

    async def _forward(self, batches: dict[TopicPartition, list[Any]]) -> None:
        records = [
            (tp.topic, tp.partition, m.offset, m.timestamp, m.value)
            for tp, msgs in batches.items()
            for m in msgs
        ]
        result = self.ingest.process(records, self.clock())
        send = self.send
        for partition, evs in result.batches.items():
            for chunk in event_chunks(evs):
                await send(self.events_topic, None, encode_events(chunk), partition)
        for key, rec in result.quarantine:
            await send(topics.QUARANTINE, key, orjson.dumps(rec), None)
        self.ingest.forwarded(result)
        for tp, msgs in batches.items():
            self._processed[tp] = msgs[-1].offset + 1

    async def _commit_or_retry_later(self) -> None:
        try:
            await self.commit()
        except CommitFailedError:  # the group rebalanced under the commit (the kill -9 test)
            log.warning("commit failed: the group rebalanced; what it held is read again")
        except Exception as exc:
            if not retriable(exc):  # e.g. not authorized: retrying cannot fix it
                raise fatal(exc, "the input reader") from exc
            log.warning("commit failed (%r); retrying at the next interval", exc)

    def _watch_contact(self) -> None:
        """Tell the partition clock which partitions the broker has not answered for."""
        consumer, clock, now = self.consumer, self.ingest.clock, self.clock()
        for tp in consumer.assignment():
            heard = consumer.last_poll_timestamp(tp)
            if heard is not None:
                clock.silent(tp.topic, tp.partition, now - heard)

    async def commit(self) -> None:
        """Flush the producer, then commit what it delivered (never the other way round)."""
        async with self._lock:
            self._last_commit = time.monotonic()
            offsets = {
                tp: o for tp, o in self._processed.items() if tp in self.consumer.assignment()
            }
            if not offsets:
                return
            await self.flush()
            await self.consumer.commit(offsets)
            for tp, o in offsets.items():
                if self._processed.get(tp) == o:
                    del self._processed[tp]

    def reports(self, now: int, grace_ms: int) -> tuple[list[PartitionReport], dict[str, int]]:
        """Watermarks of the assigned input partitions and the partition count per topic."""
        consumer = self._consumer
        if consumer is None:
            return [], {}
        marks = [
            (tp.topic, tp.partition, consumer.highwater(tp), consumer.last_poll_timestamp(tp))
            for tp in consumer.assignment()
        ]
        counts = {t: len(consumer.partitions_for_topic(t) or ()) for t in self.input_topics}
        return self.ingest.reports(marks, now, grace_ms), counts

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Reading resumes at the committed offset (or the log start): the clock starts there.

        Until it knows that offset a partition has no watermark (nothing is declared overdue
        against its topic), so a failed look-up is retried from the read loop.
        """
        self._unplaced.update(assigned)
        await self._place()

    async def _place(self) -> None:
        for tp in list(self._unplaced):
            if tp not in self.consumer.assignment():
                self._unplaced.discard(tp)
                continue
            try:
                committed = await self.consumer.committed(tp)
                if committed is None:
                    committed = (await self.consumer.beginning_offsets([tp]))[tp]
            except Exception as exc:
                if not retriable(exc):
                    raise fatal(exc, "the input reader") from exc
                log.warning("cannot read where %s resumes (%r); retrying", tp, exc)
                return
            self.ingest.clock.start_at(tp.topic, tp.partition, committed)
            self._unplaced.discard(tp)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Hand over cleanly: commit what was delivered so the next owner starts there."""
        try:
            await self.commit()
        except Exception as exc:  # the next owner replays from the last commit instead
            log.warning("commit on revocation failed (%r); the next owner replays more", exc)
        for tp in revoked:
            self._processed.pop(tp, None)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, reader: InputReader) -> None:
        self.reader = reader

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.reader.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.reader.on_assigned(assigned)
