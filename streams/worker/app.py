"""Wiring of the worker: an input reader, a Faust agent, a timer, one RocksDB table.

* the input reader (:mod:`streams.worker.reader`, a plain aiokafka consumer in group
  ``<app id>-ingest``, run as a Faust task): decodes batches of input records, sends bad
  ones to ``freshness.quarantine`` and the rest, grouped by join partition, to
  ``freshness.flow-events``; then advances the partition clock. It commits its offsets
  only after flushing the producer.
* ``tick`` (timer): sends the ingest side's partition watermarks to every join partition.
  Timers may not touch tables, so overdue and lost are found by the join agent when it
  reads a tick: an idle funnel still raises them within one tick interval.
* ``join`` (``freshness.flow-events``, concurrency 1): applies batches and ticks to the
  join core, writes changed state to the ``freshness-state`` table (RocksDB, changelog in
  Kafka) and sends measurements, breaches and stats.

Output records (flow-events batches and ticks, measurements, breaches, quarantine, stats)
are appended straight to the aiokafka producer (:class:`Sender`), in the order they are
made, and so are the table's changelog records (:class:`TableWriter`). Before it commits
offsets Faust (and the input reader) flushes the producer, waiting for every batch:
at-least-once.
A tick only reports records whose batches were appended before it was computed, so it never
overtakes the events it accounts for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from faust.utils.terminal.spinners import SpinnerHandler

from streams import topics
from streams.core.model import Flow
from streams.flows.config import flow_topics
from streams.pipeline.codec import encode_tick
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest
from streams.pipeline.join import Joiner
from streams.settings import Settings
from streams.worker.adapters import Sender, TableStore, TableWriter
from streams.worker.reader import InputReader

log = logging.getLogger(__name__)

TABLE_NAME = "freshness-state"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip()]


def quiet_root_logger() -> None:
    """Undo what ``faust.Worker`` does to the root logger for its start-up spinner.

    The worker adds a spinner handler and puts the root logger at DEBUG so the spinner
    turns on every record; the real handler still drops everything below the configured
    level. But a DEBUG root logger makes every ``log.debug`` in aiokafka and Faust (one
    per produced message, and more) build a ``LogRecord``: about 6 % of a busy worker's
    time. Nothing reaches the log that did not before.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, SpinnerHandler):
            root.removeHandler(handler)
    levels = [h.level for h in root.handlers]
    if levels and min(levels) > root.level:
        root.setLevel(min(levels))


@dataclass
class Worker:
    """A built worker: the Faust app and the processors it drives (for tests and stats)."""

    app: faust.App
    ingest: Ingest
    joiner: Joiner
    input_topics: tuple[str, ...]


def build_worker(settings: Settings, flows: Sequence[Flow]) -> Worker:
    """Create the Faust app with its agents; nothing connects until it is started."""
    n = settings.partitions
    datadir = settings.state_dir / settings.app_id / settings.worker_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.kafka_bootstrap),
        store="rocksdb://",
        datadir=str(datadir),
        web_enabled=False,
        topic_partitions=n,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        table_standby_replicas=0,
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        broker_max_poll_records=2000,
        stream_buffer_maxsize=8192,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.session_timeout_ms / 3000,
    )
    input_names = flow_topics(flows)
    flow_topic = app.topic(
        topics.FLOW_EVENTS, partitions=n, key_serializer="raw", value_serializer="raw"
    )
    sender = Sender(app)
    send = sender.send
    # bytes key and value types make Faust use the raw codec for the store and changelog.
    table = app.Table(TABLE_NAME, partitions=n, key_type=bytes, value_type=bytes)
    store = TableStore(table)
    writer = TableWriter(table, sender)
    ingest = Ingest(Decoder(flows), n)
    joiner = Joiner(
        flows,
        done_retention_ms=settings.done_retention_ms,
        stats_interval_ms=settings.stats_interval_ms,
    )

    reader = InputReader(
        bootstrap=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-ingest",
        input_topics=input_names,
        ingest=ingest,
        send=send,
        flush=app.producer.flush,
        max_records=settings.ingest_batch,
        session_timeout_ms=settings.session_timeout_ms,
    )

    async def read_inputs() -> None:
        try:
            await reader.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a worker that no longer reads its inputs must not go on
            log.exception("the input reader failed; stopping the worker")
            await app.crash(exc)

    app.task(read_inputs)

    async def tick() -> None:
        now = now_ms()
        reports, counts = reader.reports(now, settings.watermark_grace_ms)
        msg = encode_tick(now, reports, counts)
        for partition in range(n):
            await send(topics.FLOW_EVENTS, None, msg, partition)

    @app.agent(flow_topic, name="join", concurrency=1)
    async def join_agent(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            step = joiner.on_message(msg.partition, msg.offset, event.value, store, now_ms())
            if step.writes:
                await writer.write(msg.partition, step.writes)
            for topic, key, value in step.records:
                await send(topic, key, value)

    app.timer(interval=settings.tick_interval_ms / 1000.0)(tick)

    async def on_app_start() -> None:
        quiet_root_logger()

    app.task(on_app_start)

    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        joiner.forget_all()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]

    return Worker(app, ingest, joiner, input_names)
