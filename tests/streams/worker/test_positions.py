"""The join's positions in the flow-events topic: it processes each partition's messages in
offset order from the group's committed offset, and Faust commits there only what it
processed (no broker: a consumer with the parts of Faust's that the guard touches). What
this guards against is shown on the real broker by ``tests/faults/test_kill9.py``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.worker.positions import JoinPositions

TOPIC = "app-flow-events"


@dataclass(eq=False)
class Message:
    topic: str
    partition: int
    offset: int
    generation_id: int = 1
    acked: bool = False

    def __hash__(self) -> int:
        return id(self)


class Consumer:
    """What of Faust's consumer :class:`JoinPositions` uses, recording what it is asked."""

    def __init__(self, assigned: Iterable[int] = (0, 1), active: bool = True) -> None:
        self.assigned = {TopicPartition(TOPIC, p) for p in assigned}
        self.flow_active = active
        self.unacked: set[Any] = set()
        self.acks: list[Message] = []
        self.gaps: list[tuple[str, int, int]] = []
        self.seeks: list[tuple[int, int]] = []
        self.flow_during_seek: list[bool] = []
        self.fail_seek = False

    def ack(self, message: Any) -> bool:
        message.acked = True
        self.acks.append(message)
        return True

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp.topic, offset_from, offset_to))

    async def perform_seek(self) -> None:
        self.flow_during_seek.append(self.flow_active)
        if self.fail_seek:
            raise TimeoutError("the coordinator did not answer")

    def stop_flow(self) -> None:
        self.flow_active = False

    def resume_flow(self) -> None:
        self.flow_active = True

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def earliest_offsets(self, *tps: TopicPartition) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 3)


def guarded(committed: dict[int, int | None], **kw: Any) -> tuple[JoinPositions, Consumer]:
    asked: list[list[TopicPartition]] = []

    async def read(tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        wanted = list(tps)
        asked.append(wanted)
        return {tp: committed.get(tp.partition) for tp in wanted}

    positions = JoinPositions(TOPIC, read)
    consumer = Consumer(**kw)
    positions.install(consumer)
    positions.asked = asked  # type: ignore[attr-defined]
    return positions, consumer


async def take(positions: JoinPositions, consumer: Consumer, m: Message) -> bool:
    """What the join agent does with a message: admit it, process it, ack it."""
    consumer.unacked.add(m)
    if not await positions.admit(m):
        return False
    positions.processed(m)
    consumer.ack(m)
    return True


async def test_messages_are_processed_in_order_from_the_committed_offset() -> None:
    positions, consumer = guarded({0: 10, 1: None})
    assert await take(positions, consumer, Message(TOPIC, 0, 10))
    assert not await take(positions, consumer, Message(TOPIC, 0, 10))  # again: set aside
    assert await take(positions, consumer, Message(TOPIC, 0, 11))
    assert await take(positions, consumer, Message(TOPIC, 1, 3))  # none committed: log start
    assert [(m.partition, m.offset) for m in consumer.acks] == [(0, 10), (0, 11), (1, 3)]
    assert len(positions.asked) == 1  # type: ignore[attr-defined]  # both partitions at once


async def test_a_message_past_the_next_one_is_set_aside_and_the_partition_read_again() -> None:
    positions, consumer = guarded({0: 10})
    ahead = Message(TOPIC, 0, 15)
    assert not await take(positions, consumer, ahead)
    assert not await take(positions, consumer, Message(TOPIC, 0, 16))
    assert consumer.seeks == [(0, 10)]  # once: records fetched before it still come
    assert ahead.acked
    assert ahead not in consumer.unacked
    assert consumer.acks == []
    assert await take(positions, consumer, Message(TOPIC, 0, 10))


async def test_a_new_generation_reads_the_committed_offsets_again() -> None:
    committed: dict[int, int | None] = {0: 10}
    positions, consumer = guarded(committed)
    assert await take(positions, consumer, Message(TOPIC, 0, 10))
    committed[0] = 20  # the partition moved away and back, committed on the way
    assert not await take(positions, consumer, Message(TOPIC, 0, 11, generation_id=2))
    assert await take(positions, consumer, Message(TOPIC, 0, 20, generation_id=2))


async def test_only_an_ack_of_a_processed_flow_events_message_counts() -> None:
    _positions, consumer = guarded({0: 10})
    skipped = Message(TOPIC, 0, 10)  # Faust acks a message its stream skipped
    consumer.unacked.add(skipped)
    assert consumer.ack(skipped) is False
    assert skipped.acked
    assert skipped not in consumer.unacked
    other = Message("elsewhere", 0, 5)
    assert consumer.ack(other) is True
    assert consumer.acks == [other]


async def test_no_gap_is_recorded_in_the_flow_events_topic() -> None:
    _positions, consumer = guarded({})
    await consumer._add_gap(TopicPartition(TOPIC, 0), 11, 15)
    await consumer._add_gap(TopicPartition("compacted", 0), 11, 15)
    assert consumer.gaps == [("compacted", 11, 15)]


async def test_the_seek_after_a_rebalance_runs_with_the_flow_stopped_then_gives_it_back() -> None:
    for active in (True, False):  # Faust's recovery seeks with the flow on, its fetcher off
        for fail in (False, True):
            _positions, consumer = guarded({}, active=active)
            consumer.fail_seek = fail
            if fail:
                with pytest.raises(TimeoutError):
                    await consumer.perform_seek()
            else:
                await consumer.perform_seek()
            assert consumer.flow_during_seek == [False]
            assert consumer.flow_active is active


async def test_an_unreachable_broker_is_asked_again_where_a_partition_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka.errors import KafkaConnectionError

    import streams.worker.positions as module

    monkeypatch.setattr(module, "RETRY_S", 0.0)
    answers: list[Exception | None] = [KafkaConnectionError("down"), None]

    async def read(tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        failure = answers.pop(0)
        if failure is not None:
            raise failure
        return dict.fromkeys(tps, 7)

    positions = JoinPositions(TOPIC, read)
    consumer = Consumer()
    positions.install(consumer)
    assert await take(positions, consumer, Message(TOPIC, 0, 7))
    assert answers == []
