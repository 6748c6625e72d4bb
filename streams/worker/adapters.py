"""Adapters between the Faust app and the pipeline: the producer and the table, both
written without Faust's per-record paths (measured in ``docs/benchmarks.md`` and
``bench/results/profile.md``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import rocksdict
from faust.types import TP

log = logging.getLogger(__name__)

OutRecord = tuple[str, bytes | None, bytes | None, int | None]
"""topic, key, value (None: tombstone), partition (None: the key's partition)."""

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_UNPACK: dict[int, Any] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of ``data``: the same value as aiokafka's (and the Java
    client's) ``murmur2``, in under half the time (all 32-bit words unpacked at once,
    masks only where a value must be cut back to 32 bits: about 4 µs instead of 10 µs for
    a 34-byte key, paid once per keyed output record)."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    unpack = _UNPACK.get(words)
    if unpack is None:
        unpack = _UNPACK[words] = struct.Struct(f"<{words}I").unpack_from
    for k in unpack(data):
        k = k * _M & _MASK
        h = (h * _M ^ (k ^ k >> 24) * _M) & _MASK
    extra = length & 3
    if extra:
        whole = words << 2
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = (h ^ data[whole]) * _M & _MASK
    h ^= h >> 13
    h = h * _M & _MASK
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition aiokafka's default partitioner picks for ``key`` (what ``send``
    does for a keyed record without a partition)."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


@dataclass(slots=True)
class SentBatch:
    """The record batch a step's records of one partition went into: its delivery future,
    and the offset of the step's last record in it relative to the batch's first."""

    future: asyncio.Future[Any]
    last: int


@dataclass(slots=True)
class _OpenBatch:
    """A batch handed to the producer that may still take records (until the producer's
    sender builds it for a produce request, which closes it)."""

    builder: Any
    future: asyncio.Future[Any]


class Sender:
    """Appends records to the app's aiokafka producer, skipping Faust's ``send_soon``
    buffer (a queue, a task hop and a flush wake-up per record; bypassing it took the
    worker from 153 to 99 µs of CPU per input event in ``bench/throughput.py``).
    Records of one partition keep the order of the calls.

    :meth:`send_batch` goes one step further for a join step's many records: it appends
    them to aiokafka's own record batch builders, one per partition, and hands each new
    builder to the producer whole (``create_batch`` / ``send_batch``, public aiokafka
    API): 0.5 µs a record instead of a ~36 µs ``send()`` with its future, its metadata
    look-ups and its Faust signal. A builder handed over stays open until the producer's
    sender takes it for a produce request (aiokafka's own ``send()`` appends to it the same
    way), so the next steps' records of that partition go into it too: handing over a new
    builder waits until the partition's previous batch has been sent, about one produce
    round trip, and doing that once per step capped the join near 115 flow-events messages
    a second (``bench/detection.py``). A keyed record without a partition goes where
    ``send`` would put it (:func:`key_partition`).

    A record the producer gives up on (after its own retries) crashes the worker: Faust
    flushes the producer before every commit, but a flush does not fail for an undelivered
    record, so carrying on could commit input whose outputs were lost. Stopping instead
    leaves that input uncommitted, and the next owner of the partition processes it again.
    A failed batch fails every record in it, so the same rule holds for batches.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._crashing: asyncio.Future[None] | None = None
        self._open: dict[tuple[str, int], _OpenBatch] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Any:
        fut = await self.app.producer.send(topic, key, value, partition, None, None)
        fut.add_done_callback(self.delivered)  # type: ignore[attr-defined]
        return fut

    async def send_batch(self, records: Iterable[OutRecord]) -> dict[tuple[str, int], SentBatch]:
        """Send ``records``, appended to the partition's open batch or to new ones (more
        than one where a batch fills up); returns, for every (topic, partition), the batch
        that holds its last record, once the producer holds them all (Faust's flush before
        a commit then waits for them)."""
        producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
        builders: dict[tuple[str, int], Any] = {}
        fresh: dict[tuple[str, int], Any] = {}
        """Builders of this call not handed over yet."""
        last: dict[tuple[str, int], int] = {}
        sent: dict[tuple[str, int], SentBatch] = {}
        partitions: dict[str, list[int]] = {}
        for topic, key, value, partition in records:
            if partition is None:
                if key is None:
                    raise ValueError(f"a record for {topic} has neither a key nor a partition")
                known = partitions.get(topic)
                if known is None:
                    known = partitions[topic] = sorted(await producer.partitions_for(topic))
                partition = key_partition(key, known)
            tp = (topic, partition)
            builder = builders.get(tp)
            if builder is None:
                open_batch = self._open.get(tp)
                if open_batch is not None and not open_batch.builder.closed():
                    builder = builders[tp] = open_batch.builder
                else:
                    builder = builders[tp] = fresh[tp] = producer.create_batch()
            md = builder.append(key=key, value=value, timestamp=None)
            if md is None:  # full, or taken by the producer's sender meanwhile
                if fresh.get(tp) is builder:
                    sent[tp] = await self._submit(producer, fresh.pop(tp), tp, last[tp])
                builder = builders[tp] = fresh[tp] = producer.create_batch()
                md = builder.append(key=key, value=value, timestamp=None)
            last[tp] = md.offset
        for tp, builder in builders.items():
            if fresh.get(tp) is builder:
                sent[tp] = await self._submit(producer, builder, tp, last[tp])
            else:
                sent[tp] = SentBatch(self._open[tp].future, last[tp])
        return sent

    async def _submit(
        self, producer: Any, builder: Any, tp: tuple[str, int], last: int
    ) -> SentBatch:
        fut = await producer.send_batch(builder, tp[0], partition=tp[1])
        fut.add_done_callback(self.delivered)
        self._open[tp] = _OpenBatch(builder, fut)
        return SentBatch(fut, last)

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
    write path does, and what recovery starts from). But

    * the store is written with one RocksDB write batch per step, as Faust's own changelog
      recovery (``apply_changelog_batch``) writes it, instead of a put per key through the
      store's current-event look-up (6 µs a put);
    * the changelog records are returned to the caller, who sends them with the step's
      output records in one :meth:`Sender.send_batch`, instead of one ``send_soon`` each,
      whose per-record hops and back-pressure flushes cost more than the join itself
      (99 to 47 µs of worker CPU per input event in ``bench/throughput.py``).
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    @property
    def changelog_topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()  # type: ignore[no-any-return]

    def apply(
        self, partition: int, writes: Sequence[tuple[bytes, bytes | None]]
    ) -> list[OutRecord]:
        """Write ``writes`` to the partition's RocksDB in one batch; the changelog records
        to send (a delete of a key the store does not hold sends nothing)."""
        store = self.table.data
        db = store._db_for_partition(partition)
        batch = rocksdict.WriteBatch(raw_mode=True)
        topic = self.changelog_topic
        out: list[OutRecord] = []
        for key, value in writes:
            if value is None:
                if db.get(key) is None:
                    continue
                batch.delete(key)
            else:
                batch.put(key, value)
            out.append((topic, key, value, partition))
        if out:
            db.write(batch)
        return out

    def track(self, partition: int, sent: dict[tuple[str, int], SentBatch]) -> None:
        """Once the step's last changelog batch is delivered, remember its offset."""
        batch = sent.get((self.changelog_topic, partition))
        if batch is not None:
            store, last = self.table.data, batch.last
            batch.future.add_done_callback(lambda fut: _persisted(store, fut, last))


def _persisted(store: Any, fut: Any, last: int) -> None:
    """Remember the changelog offset the store holds (where recovery resumes): the batch's
    base offset plus the step's last record's place in it."""
    if fut.cancelled() or fut.exception() is not None:
        return  # Sender.delivered crashes the worker
    md = fut.result()
    store.set_persisted_offset(TP(md.topic, md.partition), md.offset + last)


class TableStore:
    """The table as the pipeline's :class:`~streams.pipeline.join.StateStore`.

    A partition is rebuilt from its own RocksDB database, raw: ``table.items()`` walks the
    rows of every active partition through Faust's codecs, so rebuilding each of 8
    partitions decoded 8 x N rows to keep N (with 1,000,000 pending, most of the 47.7 s a
    restarted worker took to process again; ``bench/results/recovery.md``). It reads with
    the store's own ``_visible_items`` (Faust's RocksDB store, which skips the row of its
    persisted changelog offset): private, like ``_db_for_partition`` in :class:`TableWriter`.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def rows(self, partition: int) -> Iterable[tuple[bytes, bytes]]:
        store = self.table.data
        return store._visible_items(store._db_for_partition(partition))  # type: ignore[no-any-return]
