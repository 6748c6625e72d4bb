"""Seeking by time and fresh metadata on the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import TopicPartition

from streams import kafka
from streams.kafka import KafkaConnection
from tests.conftest import MakeTopics


async def test_offsets_for_time_start_at_the_first_record_at_or_after_it(
    kafka_bootstrap: str, make_topics: MakeTopics, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("by-time")
    await make_topics(kafka_bootstrap, [topic], partitions=3)
    conn = KafkaConnection(kafka_bootstrap)
    base = time.time_ns() // 1_000_000 - 60_000
    producer = kafka.new_producer(conn, acks="all")
    await producer.start()
    try:
        for partition, offsets_ms in ((0, (0, 1_000, 2_000)), (1, (5_000,))):
            for ms in offsets_ms:
                await producer.send_and_wait(
                    topic, b"v", partition=partition, timestamp_ms=base + ms
                )
    finally:
        await producer.stop()
    consumer = kafka.new_consumer(conn, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await kafka.topic_partitions(consumer, [topic, unique_topic("absent")])
        assert list(parts.values()) == [(0, 1, 2), ()]
        tps = kafka.partition_list(parts)
        p0, p1, p2 = (TopicPartition(topic, p) for p in (0, 1, 2))
        assert tps == [p0, p1, p2]

        async def at(ms: int) -> tuple[int, int, int]:
            found = await kafka.offsets_for_time(consumer, tps, base + ms)
            return found[p0], found[p1], found[p2]

        assert await at(-60_000 - base) == (0, 0, 0)  # before everything: the log start
        assert await at(0) == (0, 0, 0)
        assert await at(1_000) == (1, 0, 0)  # exactly a record's time: that record
        assert await at(1_500) == (2, 0, 0)
        assert await at(2_001) == (3, 0, 0)  # past partition 0's last record: its end
        assert await at(5_001) == (3, 1, 0)  # past everything: every end offset
    finally:
        await consumer.stop()
