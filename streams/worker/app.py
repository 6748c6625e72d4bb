"""Wiring of the worker: an input reader, a Faust agent, a timer, one RocksDB table.

* the input reader (:mod:`streams.worker.reader`, a plain aiokafka consumer in group
  ``<app id>-ingest``, run as a Faust task): decodes batches of input records, sends bad
  ones to ``freshness.quarantine`` and the rest, grouped by join partition, to
  ``<app id>-flow-events``; then advances the partition clock. It commits its offsets
  only after flushing the producer.
* ``tick`` (timer): sends the ingest side's partition watermarks to every join partition.
  Timers may not touch tables, so overdue and lost are found by the join agent when it
  reads a tick: an idle funnel still raises them within one tick interval.
* ``join`` (``<app id>-flow-events``, concurrency 1): applies batches and ticks to the
  join core, writes changed state to the ``freshness-state`` table (RocksDB, changelog in
  Kafka) and sends measurements, breaches and stats.

The processors themselves are Faust-free (:mod:`streams.pipeline`); this module only wires
them. Faust values that are not settings live in :mod:`streams.worker.tuning`.

Output records (flow-events batches and ticks, measurements, breaches, quarantine, stats)
are appended straight to the aiokafka producer (:class:`Sender`), in the order they are
made; a join step's records and the table's changelog records (:class:`TableWriter`) go
as one record batch per partition (:meth:`Sender.send_batch`). Before it commits
offsets Faust (and the input reader) flushes the producer, waiting for every batch:
at-least-once.
A tick only reports records whose batches were appended before it was computed, so it never
overtakes the events it accounts for. After a rebalance every join partition resumes at its
committed offset (:mod:`streams.worker.positions`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from faust.utils.terminal.spinners import SpinnerHandler

from streams import topics
from streams.core.clock import Clock, now_ms
from streams.core.model import Flow
from streams.core.watermark import BLIND_AFTER_MS
from streams.flows.config import flow_topics
from streams.kafka.admin import committed_offsets
from streams.kafka.clients import connection, faust_app_options
from streams.logs import install_repeat_filter
from streams.pipeline.codec import encode_tick
from streams.pipeline.decoder import Decoder
from streams.pipeline.ingest import Ingest
from streams.pipeline.join import Joiner
from streams.settings import Settings
from streams.worker.adapters import Sender, TableStore, TableWriter
from streams.worker.positions import JoinPositions
from streams.worker.reader import InputReader
from streams.worker.tuning import FAUST_TUNING

log = logging.getLogger(__name__)

TABLE_NAME = "freshness-state"
TABLE_STORE_OPTIONS = {
    "write_buffer_size": 2 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024 * 1024,
}
"""RocksDB options of the table's store, per join partition. Faust's defaults (64 MiB
memtables, three of them, and a 2 GiB block cache, per partition) keep every row written
since start-up in memory until 64 MiB of them pile up: 218 bytes of RSS per pending entity
at 1,000,000 (``bench/results/memory.md``). With 2 MiB memtables rows go to SST files on
disk, and what the store holds in memory is bounded (8 partitions x 2 x 2 MiB, plus the
block cache, which only the rebuild after a rebalance and the deletes read through)."""


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


UNWATCHED_TICKS = 5
"""A partition no tick reported on for this many tick intervals (at least BLIND_AFTER_MS)
counts as blind: the tick was blocked, so nothing watched the broker for it."""

GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds in a worker (Python's defaults: 700, 10, 10)."""


def tune_gc() -> None:
    """Collect the cyclic garbage less often: a worker allocates several short-lived
    objects per event and holds hundreds of thousands of long-lived ones (entities that are
    done and retained), and with the default thresholds the collections that walk them took
    half the join's time per completion (15.9 vs 7.7 µs in a 200,000-entity core). Young
    garbage waits for 50,000 allocations instead of 700 (a few MB at most); nothing is
    collected less surely. ``gc.freeze`` moves what start-up made (modules, Faust's app)
    out of every later collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class Worker:
    """A built worker: the Faust app and the processors it drives (for tests and stats)."""

    app: faust.App
    ingest: Ingest
    joiner: Joiner
    input_topics: tuple[str, ...]
    events_topic: str


def build_worker(settings: Settings, flows: Sequence[Flow], clock: Clock = now_ms) -> Worker:
    """Create the Faust app with its agents; nothing connects until it is started."""
    app = faust_app(settings)
    events_topic = topics.flow_events_topic(settings.app_id)
    kafka = connection(settings)
    app.positions = positions = JoinPositions(
        events_topic, lambda tps: committed_offsets(kafka, settings.app_id, tps)
    )
    sender = Sender(app)
    ingest = Ingest(
        Decoder(flows), settings.partitions, max_future_skew_ms=settings.max_future_skew_ms
    )
    ingest.clock.unwatched_after_ms = max(
        BLIND_AFTER_MS, UNWATCHED_TICKS * settings.tick_interval_ms
    )
    joiner = Joiner(
        flows,
        events_topic=events_topic,
        done_retention_ms=settings.done_retention_ms,
        stats_interval_ms=settings.stats_interval_ms,
    )
    reader = InputReader(
        kafka=kafka,
        group_id=f"{settings.app_id}-ingest",
        input_topics=flow_topics(flows),
        events_topic=events_topic,
        ingest=ingest,
        send=sender.send,
        flush=app.producer.flush,
        max_records=settings.ingest_batch,
        session_timeout_ms=settings.session_timeout_ms,
        clock=clock,
    )
    add_reader_task(app, reader)
    add_ticker(app, reader, sender, events_topic, settings, clock)
    add_join_agent(app, joiner, sender, positions, events_topic, settings.partitions, clock)
    return Worker(app, ingest, joiner, reader.input_topics, events_topic)


class App(faust.App):
    """Faust's app, whose consumer commits in the flow-events topic only what the join
    processed (:class:`streams.worker.positions.JoinPositions`, installed when Faust creates
    the consumer, before it starts)."""

    positions: JoinPositions | None = None

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        if self.positions is not None:
            self.positions.install(consumer)
        return consumer


def faust_app(settings: Settings) -> App:
    """The Faust app: RocksDB state under ``<home>/state/<app id>/<worker id>``."""
    datadir = settings.state_dir / settings.app_id / settings.worker_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = App(
        settings.app_id,
        **faust_app_options(settings),
        store="rocksdb://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.session_timeout_ms / 3000,
        **FAUST_TUNING,
    )

    async def on_app_start() -> None:
        quiet_root_logger()
        install_repeat_filter()
        tune_gc()

    app.task(on_app_start)
    return app


def add_reader_task(app: faust.App, reader: InputReader) -> None:
    """Run the input reader as a Faust task; if it fails, the worker stops (a worker that
    no longer reads its inputs must not go on looking healthy)."""

    async def read_inputs() -> None:
        try:
            await reader.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the input reader failed; stopping the worker")
            await app.crash(exc)

    app.task(read_inputs)


def add_ticker(
    app: faust.App,
    reader: InputReader,
    sender: Sender,
    events_topic: str,
    settings: Settings,
    clock: Clock,
) -> None:
    """Every tick interval, send the reader's partition watermarks to every join partition."""

    async def tick() -> None:
        now = clock()
        reports, counts = reader.reports(now, settings.watermark_grace_ms)
        msg = encode_tick(now, reports, counts)
        for partition in range(settings.partitions):
            await sender.send(events_topic, None, msg, partition)

    app.timer(interval=settings.tick_interval_ms / 1000.0)(tick)


def add_join_agent(
    app: faust.App,
    joiner: Joiner,
    sender: Sender,
    positions: JoinPositions,
    events_topic: str,
    partitions: int,
    clock: Clock,
) -> None:
    """The ``join`` agent (concurrency 1) over the flow-events topic, with its table."""
    flow_topic = app.topic(
        events_topic, partitions=partitions, key_serializer="raw", value_serializer="raw"
    )
    # bytes key and value types make Faust use the raw codec for the store and changelog.
    table = app.Table(
        TABLE_NAME,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        options=dict(TABLE_STORE_OPTIONS),  # a copy: the store pops keys from it
    )
    store = TableStore(table)
    writer = TableWriter(table)

    @app.agent(flow_topic, name="join", concurrency=1)
    async def join_agent(stream: Any) -> None:
        # Acked by hand once its step is done: Faust acks in the stream's ``finally``, so a
        # step that raised (a full disk) had its message committed, and lost on restart.
        # Only the next message of its partition is processed (positions.admit), and only a
        # processed one counts when Faust commits (positions.processed).
        async for event in stream.noack().events():
            message = event.message
            if not await positions.admit(message):
                continue
            partition = message.partition
            step = joiner.on_message(partition, message.offset, event.value, store, clock())
            out = writer.apply(partition, step.writes) if step.writes else []
            out.extend([(topic, key, value, None) for topic, key, value in step.records])
            if out:
                writer.track(partition, await sender.send_batch(out))
            positions.processed(message)
            await stream.ack(event)

    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        joiner.forget_all()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
