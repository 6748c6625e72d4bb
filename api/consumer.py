"""Feeds a :class:`~api.readmodel.ReadModel` from the output topics (aiokafka).

Guarantees:

* Group-less: every partition of every output topic is assigned and read from its
  beginning, so each API process builds the whole read model on its own and a restart
  loses nothing (the topics are the state; breaches and stats are compacted).
* Waits out what can pass: while Kafka is down, a topic does not exist yet, or Kafka
  answers with an error it marks retriable (:func:`streams.kafka.retriable`), it retries
  every ``retry_ms`` and says what it is waiting for in ``model.progress.waiting_for``.
  After a reconnect it resumes from the offsets it had reached (re-reading would also be
  safe: the read model is idempotent).
* Says when it is blind: aiokafka hides an outage (``getmany`` just returns nothing), so the
  reader watches when the broker last answered a fetch of any of its partitions
  (``last_poll_timestamp``, every ``fetch_max_wait_ms`` even when idle). After
  :data:`SILENT_AFTER_MS` without an answer the model is marked disconnected
  (``/readyz`` 503 ``kafka: unreachable since ...``, ``source.stale_for_ms`` in the flow
  views) and keeps serving its last state; the first answer after that makes it ready again.
* Stops loudly on the rest: any other error (an authorization failure, an unsupported
  version, a bug) ends the reader with one ERROR log line; :attr:`OutputConsumer.error`
  holds it as a :class:`~streams.kafka.KafkaFatalError`, the model is marked not ready and
  ``waiting_for`` names it (``/readyz`` answers 503 with it), and ``on_fatal`` is called.
* Ready once it has read up to the end offsets captured when it first connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import TopicPartition

from api.readmodel import ReadModel
from streams import topics
from streams.kafka import (
    KafkaConnection,
    KafkaFatalError,
    connection,
    fatal,
    new_consumer,
    partition_list,
    retriable,
    topic_partitions,
)
from streams.settings import Settings

log = logging.getLogger(__name__)

SILENT_AFTER_MS = 3_000
"""How long the broker may leave every fetch unanswered before the model is marked
disconnected: six times aiokafka's 500 ms ``fetch_max_wait_ms``, so a slow answer is not an
outage."""

READ_TOPICS: tuple[str, ...] = (
    topics.BREACHES,
    topics.STATS,
    topics.MEASUREMENTS,
    topics.QUARANTINE,
    topics.ALERTS,
    topics.ALERT_DELIVERIES,
)
"""The output topics the read model is built from, in the order they are assigned."""


class OutputConsumer:
    """One background task reading :data:`READ_TOPICS` into ``model``."""

    def __init__(
        self,
        kafka: Settings | KafkaConnection | str,
        model: ReadModel,
        *,
        topic_map: Mapping[str, str] | None = None,
        retry_ms: int = 1000,
        max_records: int = 2000,
        on_fatal: Callable[[KafkaFatalError], None] | None = None,
    ) -> None:
        """``kafka``: the settings or connection to read from (a bare bootstrap string is a
        plaintext connection, for tests)."""
        self.kafka = KafkaConnection(kafka) if isinstance(kafka, str) else connection(kafka)
        self.bootstrap = self.kafka.bootstrap
        self.model = model
        self.topic_map = dict(topic_map or {t: t for t in READ_TOPICS})
        """Topic to read -> output topic it holds (tests read renamed, unshared topics)."""
        self.read_topics = tuple(self.topic_map)
        self.retry_ms = retry_ms
        self.max_records = max_records
        self._next: dict[TopicPartition, int] = {}
        self._targets: dict[TopicPartition, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.on_fatal = on_fatal
        self.error: KafkaFatalError | None = None
        """Why the reader stopped for good (None while it runs or retries)."""
        model.progress.silent(model.clock(), f"connection to Kafka at {self.bootstrap}")

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
            consumer = new_consumer(
                self.kafka,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # The alerter writes its two topics in transactions: skip aborted ones.
                isolation_level="read_committed",
                client_id="freshness-api",
            )
            try:
                await consumer.start()
                await self._consume(consumer)
            except Exception as exc:
                if not retriable(exc):
                    self._stop_for_good(exc)
                    return
                self._retrying(exc)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await asyncio.sleep(self.retry_ms / 1000)

    def _retrying(self, exc: Exception) -> None:
        log.warning("output consumer: %r; retrying in %d ms", exc, self.retry_ms)
        progress = self.model.progress
        if progress.caught_up:
            self._mark_silent(progress.last_contact_at or self.model.clock())
        else:
            progress.silent(
                self.model.clock(),
                f"connection to Kafka at {self.bootstrap} ({type(exc).__name__})",
            )

    def _watch_contact(self, consumer: Any, tps: list[TopicPartition]) -> None:
        """Mark the model connected when the broker answered a fetch lately, else silent."""
        progress, now = self.model.progress, self.model.clock()
        heard = [t for tp in tps if (t := consumer.last_poll_timestamp(tp)) is not None]
        last = max(heard, default=None)
        if last is not None and last > (progress.last_contact_at or 0):
            self._heard(last)
        since = progress.last_contact_at
        if since is not None and now - since > SILENT_AFTER_MS:
            self._mark_silent(since)

    def _heard(self, at: int) -> None:
        progress = self.model.progress
        if not progress.connected and progress.last_contact_at is not None:
            log.warning("output consumer: Kafka at %s answers again", self.bootstrap)
        progress.heard(at)

    def _mark_silent(self, since: int) -> None:
        progress = self.model.progress
        if progress.connected:
            log.warning(
                "output consumer: no answer from Kafka at %s since %s; serving the last state",
                self.bootstrap,
                _iso(since),
            )
        start = since if progress.connected else (progress.silent_since or since)
        progress.silent(
            start,
            f"kafka: unreachable since {_iso(start)} (no answer from {self.bootstrap}); "
            "serving the last state",
        )

    def _stop_for_good(self, exc: Exception) -> None:
        self.error = fatal(exc, "the API's output reader")
        log.error("%s", self.error)
        self.model.progress.ready = False
        self.model.progress.waiting_for = [str(self.error)]
        if self.on_fatal is not None:
            self.on_fatal(self.error)

    async def _assign(self, consumer: Any) -> list[TopicPartition]:
        while True:
            parts = await topic_partitions(consumer, self.read_topics)
            missing = [t for t, ps in parts.items() if not ps]
            if not missing:
                break
            if not self.model.progress.ready:
                self.model.progress.waiting_for = [f"topic {t} to exist" for t in missing]
            await asyncio.sleep(self.retry_ms / 1000)
        tps = partition_list(parts)
        consumer.assign(tps)
        for tp in tps:
            if tp in self._next:
                consumer.seek(tp, self._next[tp])
        fresh = [tp for tp in tps if tp not in self._next]
        if fresh:
            # One call for all: each call waits for the fetch in flight (up to 500 ms on an
            # empty partition), so one call per partition took 0.5 s a partition.
            await consumer.seek_to_beginning(*fresh)
        if self._targets is None:
            self._targets = dict(await consumer.end_offsets(tps))
        return tps

    async def _consume(self, consumer: Any) -> None:
        tps = await self._assign(consumer)
        self._heard(self.model.clock())  # it answered the metadata and offset requests
        while True:
            self._watch_contact(consumer, tps)
            if not self.model.progress.caught_up:
                await self._check_ready(consumer, tps)
            batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
            for tp, records in batches.items():
                logical = self.topic_map[tp.topic]
                for rec in records:
                    self.model.apply_raw(logical, rec.key, rec.value, rec.offset)
                if records:
                    self._next[tp] = records[-1].offset + 1
            await asyncio.sleep(0)  # let requests in between batches

    async def _check_ready(self, consumer: Any, tps: list[TopicPartition]) -> None:
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


def _iso(ms: int) -> str:
    """``ms`` (epoch) as an RFC 3339 UTC time to the second, for ``waiting_for``."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
