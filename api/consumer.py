"""Feeds a :class:`~api.readmodel.ReadModel` from the output topics (aiokafka).

Guarantees:

* Group-less: every partition of every output topic is assigned and read from its
  beginning, so each API process builds the whole read model on its own and a restart
  loses nothing (the topics are the state; breaches and stats are compacted).
* Never gives up: while Kafka is down or a topic does not exist yet it retries every
  ``retry_ms`` and says what it is waiting for in ``model.progress.waiting_for``. After a
  reconnect it resumes from the offsets it had reached (re-reading would also be safe: the
  read model is idempotent).
* Ready once it has read up to the end offsets captured when it first connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from api.readmodel import ReadModel
from streams import topics

log = logging.getLogger(__name__)

READ_TOPICS: tuple[str, ...] = (
    topics.BREACHES,
    topics.STATS,
    topics.MEASUREMENTS,
    topics.QUARANTINE,
)
"""The output topics the read model is built from, in the order they are assigned."""


class OutputConsumer:
    """One background task reading :data:`READ_TOPICS` into ``model``."""

    def __init__(
        self,
        bootstrap: str,
        model: ReadModel,
        *,
        topic_map: Mapping[str, str] | None = None,
        retry_ms: int = 1000,
        max_records: int = 2000,
    ) -> None:
        self.bootstrap = bootstrap
        self.model = model
        self.topic_map = dict(topic_map or {t: t for t in READ_TOPICS})
        """Topic to read -> output topic it holds (tests read renamed, unshared topics)."""
        self.read_topics = tuple(self.topic_map)
        self.retry_ms = retry_ms
        self.max_records = max_records
        self._next: dict[TopicPartition, int] = {}
        self._targets: dict[TopicPartition, int] | None = None
        self._task: asyncio.Task[None] | None = None
        model.progress.waiting_for = [f"connection to Kafka at {bootstrap}"]

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="freshness-api-consumer")

    async def stop(self) -> None:
        """Cancel the task and close the Kafka client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until caught up; raises ``TimeoutError`` naming what is still missing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.model.progress.ready:
            if loop.time() > deadline:
                missing = "; ".join(self.model.progress.waiting_for)
                raise TimeoutError(f"read model not ready: {missing}")
            await asyncio.sleep(0.02)

    async def _run(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="freshness-api",
            )
            try:
                await consumer.start()
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("output consumer: %s; retrying in %d ms", exc, self.retry_ms)
                if not self.model.progress.ready:
                    self.model.progress.waiting_for = [
                        f"connection to Kafka at {self.bootstrap} ({type(exc).__name__})"
                    ]
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self.retry_ms / 1000)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        while True:
            # A fresh metadata snapshot: partitions_for_topic() only knows topics the client
            # already tracks, and a group-less consumer tracks none before assign().
            cluster = await consumer._client.fetch_all_metadata()
            parts = {t: sorted(cluster.partitions_for_topic(t) or ()) for t in self.read_topics}
            missing = [t for t, ps in parts.items() if not ps]
            if not missing:
                break
            if not self.model.progress.ready:
                self.model.progress.waiting_for = [f"topic {t} to exist" for t in missing]
            await asyncio.sleep(self.retry_ms / 1000)
        tps = [TopicPartition(t, p) for t in self.read_topics for p in parts[t]]
        consumer.assign(tps)
        for tp in tps:
            if tp in self._next:
                consumer.seek(tp, self._next[tp])
            else:
                await consumer.seek_to_beginning(tp)
        if self._targets is None:
            self._targets = dict(await consumer.end_offsets(tps))
        return tps

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        tps = await self._assign(consumer)
        while True:
            if not self.model.progress.ready:
                await self._check_ready(consumer, tps)
            batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
            for tp, records in batches.items():
                logical = self.topic_map[tp.topic]
                for rec in records:
                    self.model.apply_raw(logical, rec.key, rec.value)
                if records:
                    self._next[tp] = records[-1].offset + 1
            await asyncio.sleep(0)  # let requests in between batches

    async def _check_ready(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        assert self._targets is not None
        behind: list[str] = []
        for tp in tps:
            target = self._targets.get(tp, 0)
            at = self._next.get(tp, 0)
            if at < target:
                at = max(at, await consumer.position(tp))
            if at < target:
                behind.append(f"{tp.topic}[{tp.partition}]: at offset {at} of {target}")
        if behind:
            self.model.progress.waiting_for = behind
        else:
            self.model.progress.mark_caught_up()
            log.info("read model caught up with the output topics")
