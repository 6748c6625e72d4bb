"""aiokafka 0.14.0 produces to and consumes from the real Apache Kafka broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

MakeTopics = Callable[..., Awaitable[list[str]]]

N_RECORDS = 300
PARTITIONS = 3


async def _produce(bootstrap: str, topic: str, records: dict[bytes, bytes]) -> dict[bytes, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = {
            key: await producer.send(topic, value, key=key) for key, value in records.items()
        }
        metadata = await asyncio.gather(*futures.values())
    finally:
        await producer.stop()
    return {key: meta.partition for key, meta in zip(futures, metadata, strict=True)}


async def _consume(
    bootstrap: str, topic: str, group: str, expected: int, timeout_s: float = 30.0
) -> dict[bytes, tuple[bytes, int]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: dict[bytes, tuple[bytes, int]] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, messages in batches.items():
                for msg in messages:
                    assert msg.key is not None
                    assert msg.value is not None
                    got[msg.key] = (msg.value, tp.partition)
        await consumer.commit()
        committed = {
            p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)
        }
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        assert committed == {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()
    return got


async def test_produce_and_consume_roundtrip(
    kafka_bootstrap: str, make_topics: MakeTopics, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("roundtrip")
    await make_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    records = {
        f"lead-{i}".encode(): orjson.dumps({"event_id": f"e-{i}", "lead_id": f"lead-{i}", "n": i})
        for i in range(N_RECORDS)
    }

    partition_of = await _produce(kafka_bootstrap, topic, records)
    got = await _consume(kafka_bootstrap, topic, f"test-{uuid.uuid4().hex[:8]}", N_RECORDS)

    assert {key: value for key, (value, _) in got.items()} == records
    assert {key: partition for key, (_, partition) in got.items()} == partition_of
    assert set(partition_of.values()) == set(range(PARTITIONS))
    assert orjson.loads(got[b"lead-7"][0])["n"] == 7
