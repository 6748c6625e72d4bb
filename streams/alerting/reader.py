"""Feeds :class:`~streams.alerting.inputs.AlerterInputs` from Kafka (aiokafka).

Guarantees, like the API's output consumer:

* Group-less: every partition of the four topics is assigned and read from its beginning,
  so each replica has the whole picture on its own (the topics are compacted where it
  matters) and a standby is ready to lead without reading anything first.
* ``read_committed``: a state change or delivery record of an aborted transaction (a
  fenced leader's) is never applied.
* Waits out what can pass (Kafka down, a topic missing, a retriable error) and resumes
  from the offsets it reached; stops with :class:`~streams.kafka.KafkaFatalError` on the
  rest.
* :meth:`InputReader.caught_up` returns once everything that was in the topics when it was
  called (up to the last stable offset) has been applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition

from streams import topics
from streams.alerting.inputs import AlerterInputs
from streams.kafka import (
    KafkaConnection,
    fatal,
    new_consumer,
    partition_list,
    retriable,
    topic_partitions,
)
from streams.settings import Settings

log = logging.getLogger(__name__)

READ_TOPICS: tuple[str, ...] = (
    topics.BREACHES,
    topics.STATS,
    topics.ALERTS,
    topics.ALERT_DELIVERIES,
)


class InputReader:
    """One background loop reading :data:`READ_TOPICS` into ``inputs``."""

    def __init__(
        self,
        kafka: Settings | KafkaConnection,
        inputs: AlerterInputs,
        *,
        read_topics: Sequence[str] = READ_TOPICS,
        retry_ms: int = 500,
        max_records: int = 5000,
    ) -> None:
        self.kafka = kafka
        self.inputs = inputs
        self.read_topics = tuple(read_topics)
        self.retry_ms = retry_ms
        self.max_records = max_records
        self._next: dict[TopicPartition, int] = {}
        self._waiters: list[tuple[asyncio.Future[None], dict[TopicPartition, int] | None]] = []

    async def caught_up(self) -> None:
        """Return once every record in the topics at the time of the call is applied."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((done, None))
        await done

    async def run(self) -> None:
        """Read until cancelled; raises :class:`~streams.kafka.KafkaFatalError` when Kafka
        refuses in a way retrying cannot fix."""
        while True:
            consumer = new_consumer(
                self.kafka,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                client_id="freshness-alerter-reader",
            )
            try:
                await consumer.start()
                await self._consume(consumer)
            except Exception as exc:
                if not retriable(exc):
                    raise fatal(exc, "the alerter's reader") from exc
                log.warning("alerter reader: %r; retrying in %d ms", exc, self.retry_ms)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self.retry_ms / 1000)

    async def _assign(self, consumer: Any) -> list[TopicPartition]:
        while True:
            parts = await topic_partitions(consumer, self.read_topics)
            missing = [t for t, ps in parts.items() if not ps]
            if not missing:
                break
            log.info("alerter reader: waiting for topics %s", ", ".join(missing))
            await asyncio.sleep(self.retry_ms / 1000)
        tps = partition_list(parts)
        consumer.assign(tps)
        for tp in tps:
            if tp in self._next:
                consumer.seek(tp, self._next[tp])
        fresh = [tp for tp in tps if tp not in self._next]
        if fresh:
            # One call for all: each call waits for the fetch in flight (up to 500 ms on an
            # empty partition), so one call per partition took 16 s for 32 empty ones.
            await consumer.seek_to_beginning(*fresh)
        return tps

    async def _consume(self, consumer: Any) -> None:
        tps = await self._assign(consumer)
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=self.max_records)
            for tp, records in batches.items():
                for rec in records:
                    self.inputs.apply(tp.topic, rec.key, rec.value, rec.offset)
                if records:
                    self._next[tp] = records[-1].offset + 1
            if self._waiters:
                await self._serve(consumer, tps)

    async def _serve(self, consumer: Any, tps: list[TopicPartition]) -> None:
        """Give waiters their targets (the end offsets now) and release the caught-up ones."""
        pending: list[tuple[asyncio.Future[None], dict[TopicPartition, int] | None]] = []
        for done, targets in self._waiters:
            if done.done():
                continue
            if targets is None:
                targets = dict(await consumer.end_offsets(tps))
            if await self._reached(consumer, targets):
                done.set_result(None)
            else:
                pending.append((done, targets))
        self._waiters = pending

    async def _reached(self, consumer: Any, targets: Mapping[TopicPartition, int]) -> bool:
        for tp, target in targets.items():
            if self._next.get(tp, 0) >= target:
                continue
            at = await consumer.position(tp)
            if at < target:
                return False
            self._next[tp] = max(self._next.get(tp, 0), at)
        return True
