"""The worker's direct sender: an undelivered record stops the worker; batched records go
where ``send`` would put them, in order (no broker)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from faust.types import TP

from streams.worker.adapters import Sender


class FakeProducer:
    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, *args: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


class FakeApp:
    def __init__(self) -> None:
        self.producer = FakeProducer()
        self.crashed: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


async def test_delivered_records_change_nothing_and_a_failed_one_crashes_once() -> None:
    app = FakeApp()
    sender = Sender(app)  # type: ignore[arg-type]
    await sender.send("t", b"k", b"v", 0)
    await sender.send("t", b"k", b"v", 1)
    await sender.send("t", b"k", b"v", 2)
    ok, bad, worse = app.producer.futures
    ok.set_result(object())
    await asyncio.sleep(0)
    assert app.crashed == []
    error = RuntimeError("MessageSizeTooLarge")
    bad.set_exception(error)
    worse.set_exception(RuntimeError("again"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert app.crashed == [error]


# -- send_batch: records appended to aiokafka's own batch builders ------------------------


class FakeBatchProducer:
    """aiokafka's create_batch / send_batch / partitions_for, with real BatchBuilders. With
    ``drain_on_send`` a batch is built (closed) as it is handed over; without, it stays open
    until :meth:`drain`, as in aiokafka until its sender takes the batch."""

    def __init__(
        self, partitions: int = 8, batch_size: int = 16 * 1024, drain_on_send: bool = True
    ) -> None:
        self.partitions = set(range(partitions))
        self.batch_size = batch_size
        self.drain_on_send = drain_on_send
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.pending: list[tuple[str, int, Any]] = []

    def drain(self) -> None:
        from aiokafka.record.default_records import DefaultRecordBatch

        for topic, partition, batch in self.pending:
            records = [(r.key, r.value) for r in DefaultRecordBatch(batch._build())]
            self.batches.append((topic, partition, records))
        self.pending = []

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder

        return BatchBuilder(self.batch_size, 0)

    async def partitions_for(self, topic: str) -> set[int]:
        return self.partitions

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.pending.append((topic, partition, batch))
        if self.drain_on_send:
            self.drain()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        return fut


class FakeFaustProducer:
    def __init__(self, inner: FakeBatchProducer) -> None:
        self.inner = inner

    def _ensure_producer(self) -> FakeBatchProducer:
        return self.inner


class BatchApp(FakeApp):
    def __init__(self, inner: FakeBatchProducer) -> None:
        super().__init__()
        self.producer = FakeFaustProducer(inner)  # type: ignore[assignment]


def test_murmur2_is_kafkas_hash_for_every_length() -> None:
    from aiokafka.partitioner import murmur2 as reference

    from streams.worker.adapters import murmur2

    rng = random.Random(7)
    for length in range(0, 80):
        for _ in range(40):
            data = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(data) == reference(data), data


@pytest.mark.parametrize("n", [8, 7])
async def test_batched_records_go_where_send_would_put_them_in_order(n: int) -> None:
    from aiokafka.partitioner import DefaultPartitioner

    inner = FakeBatchProducer(partitions=n)
    sender = Sender(BatchApp(inner))  # type: ignore[arg-type]
    records = [("m", f"flow:key-{i}".encode(), f"v{i}".encode(), None) for i in range(300)]
    records += [("c", b"k1", b"x", 3), ("c", b"k2", None, 3), ("c", b"k1", b"y", 3)]
    sent = await sender.send_batch(records)
    got: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    for topic, partition, recs in inner.batches:
        got.setdefault((topic, partition), []).extend(recs)
    want: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
    for topic, key, value, partition in records:
        if partition is None:
            assert key is not None
            partition = DefaultPartitioner()(key, list(range(n)), list(range(n)))
        want.setdefault((topic, partition), []).append((key, value))
    assert got == want
    assert len({p for t, p in got if t == "m"}) == n
    assert sent[("c", 3)].last == 2


async def test_a_full_batch_is_sent_and_a_new_one_started() -> None:
    inner = FakeBatchProducer(partitions=1, batch_size=1024)
    sender = Sender(BatchApp(inner))  # type: ignore[arg-type]
    records = [("t", b"k", bytes(100), 0) for _ in range(50)]
    sent = await sender.send_batch(records)
    assert len(inner.batches) > 1
    assert sum(len(r) for _, _, r in inner.batches) == 50
    assert sent[("t", 0)].last == len(inner.batches[-1][2]) - 1


async def test_the_next_steps_records_join_the_partition_s_open_batch_in_order() -> None:
    inner = FakeBatchProducer(partitions=1, drain_on_send=False)
    sender = Sender(BatchApp(inner))  # type: ignore[arg-type]
    first = await sender.send_batch([("t", b"a", b"1", 0), ("t", b"b", b"2", 0)])
    second = await sender.send_batch([("t", b"c", b"3", 0), ("u", b"d", b"4", 0)])
    assert len(inner.pending) == 2  # one batch for t, taking both steps, one for u
    assert (first[("t", 0)].last, second[("t", 0)].last) == (1, 2)
    assert first[("t", 0)].future is second[("t", 0)].future
    inner.drain()  # the producer's sender took them: the next step starts a new batch
    third = await sender.send_batch([("t", b"e", b"5", 0)])
    assert third[("t", 0)].future is not first[("t", 0)].future
    assert third[("t", 0)].last == 0
    inner.drain()
    assert inner.batches == [
        ("t", 0, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]),
        ("u", 0, [(b"d", b"4")]),
        ("t", 0, [(b"e", b"5")]),
    ]


async def test_a_failed_batch_crashes_the_worker_once() -> None:
    inner = FakeBatchProducer()
    app = BatchApp(inner)
    sender = Sender(app)  # type: ignore[arg-type]
    await sender.send_batch([("t", b"a", b"1", 0), ("t", b"b", b"2", 1)])
    ok, bad = inner.futures
    ok.set_result(object())
    await asyncio.sleep(0)
    assert app.crashed == []
    error = RuntimeError("NotEnoughReplicas")
    bad.set_exception(error)
    for _ in range(3):
        await asyncio.sleep(0)
    assert app.crashed == [error]


def test_a_record_with_neither_key_nor_partition_is_refused() -> None:
    sender = Sender(BatchApp(FakeBatchProducer()))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="neither a key nor a partition"):
        asyncio.run(sender.send_batch([("t", None, b"v", None)]))


def test_the_changelog_offset_persisted_is_the_batch_s_last_record() -> None:
    from aiokafka.structs import RecordMetadata

    from streams.worker.adapters import SentBatch, TableWriter

    class Store:
        def __init__(self) -> None:
            self.persisted: list[tuple[TP, int]] = []

        def set_persisted_offset(self, tp: TP, offset: int) -> None:
            self.persisted.append((tp, offset))

    class Table:
        data = Store()

        class changelog_topic:
            @staticmethod
            def get_topic_name() -> str:
                return "app-freshness-state-changelog"

    async def go() -> None:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        writer = TableWriter(Table())
        writer.track(2, {("app-freshness-state-changelog", 2): SentBatch(fut, 4)})
        md = RecordMetadata("app-freshness-state-changelog", 2, None, 100, -1, 0, 0)
        fut.set_result(md)
        await asyncio.sleep(0)

    asyncio.run(go())
    assert Table.data.persisted == [(TP("app-freshness-state-changelog", 2), 104)]
