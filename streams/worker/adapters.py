"""Adapters between the Faust app and the pipeline: the producer and the table, both
written without Faust's per-record paths (measured in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

import faust
from faust.types import TP

log = logging.getLogger(__name__)


class Sender:
    """Appends records to the batches of the app's aiokafka producer, skipping Faust's
    ``send_soon`` buffer (a queue, a task hop and a flush wake-up per record; bypassing it
    took the worker from 153 to 99 µs of CPU per input event in ``bench/throughput.py``).
    Records of one partition keep the order of the calls.

    A record the producer gives up on (after its own retries) crashes the worker: Faust
    flushes the producer before every commit, but a flush does not fail for an undelivered
    record, so carrying on could commit input whose outputs were lost. Stopping instead
    leaves that input uncommitted, and the next owner of the partition processes it again.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._crashing: asyncio.Future[None] | None = None

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Any:
        fut = await self.app.producer.send(topic, key, value, partition, None, None)
        fut.add_done_callback(self.delivered)  # type: ignore[attr-defined]
        return fut

    def delivered(self, fut: Any) -> None:
        if fut.cancelled() or fut.exception() is None:
            return
        log.error("a record was not delivered; stopping the worker: %r", fut.exception())
        if self._crashing is None:
            self._crashing = asyncio.ensure_future(self.app.crash(fut.exception()))


class TableWriter:
    """Applies a join step's writes to the Faust table without its per-key machinery.

    Same effect as ``table[key] = value`` / ``table.pop(key, None)`` inside the agent: the
    RocksDB store of the current event's partition is updated and the changelog record
    (a tombstone for a delete) goes to the same partition of the table's changelog topic;
    once delivered, the store remembers the changelog offset it holds (what Faust's own
    write path does, and what recovery starts from). But the changelog record is appended
    straight to the producer instead of through Faust's ``send_soon`` buffer, whose
    per-record hops and back-pressure flushes cost more than the join itself (99 to 47 µs
    of worker CPU per input event in ``bench/throughput.py``).
    """

    def __init__(self, table: Any, sender: Sender) -> None:
        self.table = table
        self.sender = sender

    async def write(self, partition: int, writes: Sequence[tuple[bytes, bytes | None]]) -> None:
        store = self.table.data
        topic = self.table.changelog_topic.get_topic_name()
        last = None
        for key, value in writes:
            if value is None:
                if key not in store:
                    continue
                del store[key]
            else:
                store[key] = value
            last = await self.sender.send(topic, key, value, partition)
        if last is not None:
            last.add_done_callback(partial(_persisted, store))


def _persisted(store: Any, fut: Any) -> None:
    """Remember the changelog offset the store holds (where recovery resumes)."""
    if fut.cancelled() or fut.exception() is not None:
        return  # Sender.delivered crashes the worker
    md = fut.result()
    store.set_persisted_offset(TP(md.topic, md.partition), md.offset)


class TableStore:
    """The table as the pipeline's :class:`~streams.pipeline.join.StateStore`."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.table.items()  # type: ignore[no-any-return]
