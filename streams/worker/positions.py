"""Where the join stands in each flow-events partition, and the one authority on what Faust
may commit there: every offset committed was processed by the join, in order.

Faust's consumer can commit offsets the join never processed, in three ways seen or read in
faust-streaming 0.15.3 while ``tests/faults/test_kill9.py`` lost 3 to 25 outcomes in four of
eight runs, each time on a partition a worker kept across a rebalance:

* after a rebalance it resumes fetching before it seeks to the committed offsets, and the
  resume of its flow control after the seek *clears* the agents' buffers: records fetched
  meanwhile are dropped unprocessed, yet its read offset has moved past them, so it drops
  them again when they are read anew (``DROPPED MESSAGE ROFF``);
* a record that lands past its read offset is taken for a gap in the topic (meant for
  compacted and transactional topics, ``Consumer._add_gap``): the offsets in between count
  as acked and are committed;
* a message fetched before a rebalance and taken from a buffer after it is skipped by the
  stream, and *acked* (``Stream._py_aiter``); with no committed offset yet (a worker that
  scales out in its first seconds) any run of acked offsets is committed, wherever it
  starts.

Those join steps were lost: their completions never applied (on-time starts declared
overdue), their starts never recorded (measurements lost). :class:`JoinPositions` closes all
three: Faust's consumer counts an ack of a flow-events message only when the join approved
it (:meth:`JoinPositions.processed`), never records a gap in that topic (it has none), and
seeks with its flow stopped. The join admits a message only when it is the next one of its
partition (:meth:`JoinPositions.admit`): in each generation of the group that is first the
group's committed offset (the log start if none), then each offset in turn. A message past
it is set aside and the partition sought back to it; one already processed is set aside.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import TopicPartition

from streams.kafka.errors import retriable

log = logging.getLogger(__name__)

Committed = Callable[[Iterable[TopicPartition]], Awaitable[dict[TopicPartition, int | None]]]
"""The group's committed offset of each partition (None: none committed)."""

RETRY_S = 1.0
"""How long to wait before asking the broker again where a partition resumes."""
RESEEK_AFTER_S = 1.0
"""A partition sought back to an offset is sought there again only after this long: records
fetched before the seek still arrive, each past the offset, for a moment."""


class JoinPositions:
    """The next offset the join processes in each flow-events partition it owns."""

    def __init__(self, topic: str, committed: Committed) -> None:
        self.topic = topic
        self.committed = committed
        self.consumer: Any = None
        self._next: dict[int, int] = {}
        self._generation: int | None = None
        self._approved: weakref.WeakSet[Any] = weakref.WeakSet()
        self._sought: dict[int, tuple[int, float]] = {}

    def install(self, consumer: Any) -> None:
        """Guard ``consumer`` (Faust's, as it is created and before it starts)."""
        self.consumer = consumer
        ack, add_gap, perform_seek = consumer.ack, consumer._add_gap, consumer.perform_seek

        def ack_if_processed(message: Any) -> bool:
            if message.topic == self.topic and message not in self._approved:
                self._set_aside(message)
                return False
            return ack(message)  # type: ignore[no-any-return]

        async def gap_elsewhere(tp: Any, offset_from: int, offset_to: int) -> None:
            if tp.topic != self.topic:
                await add_gap(tp, offset_from, offset_to)

        async def seek_with_flow_stopped() -> None:
            # The flow as it was found is given back: Faust also seeks from its fetcher
            # when it finds the flow stopped, and nothing resumes it there.
            was_active = consumer.flow_active
            consumer.stop_flow()
            try:
                await perform_seek()
            finally:
                if was_active:
                    consumer.resume_flow()

        consumer.ack = ack_if_processed
        consumer._add_gap = gap_elsewhere
        consumer.perform_seek = seek_with_flow_stopped

    async def admit(self, message: Any) -> bool:
        """Whether ``message`` is the next one to process in its partition. A message that
        is not is set aside (never acked); if it lies past the next one, the partition is
        sought back."""
        partition, offset = message.partition, message.offset
        if message.generation_id != self._generation:  # a rebalance: read where each stands
            self._next.clear()
            self._sought.clear()
            self._generation = message.generation_id
        expected = self._next.get(partition)
        if expected is None:
            expected = await self._start(partition)
        if offset == expected:
            return True
        if offset > expected:
            await self._seek_back(partition, expected, offset)
        self._set_aside(message)
        return False

    def processed(self, message: Any) -> None:
        """The join step of ``message`` is done: its ack counts, the next offset follows."""
        self._approved.add(message)
        self._next[message.partition] = message.offset + 1

    async def _start(self, partition: int) -> int:
        owned = [
            TopicPartition(tp.topic, tp.partition)
            for tp in self.consumer.assignment()
            if tp.topic == self.topic and tp.partition not in self._next
        ]
        tp = TopicPartition(self.topic, partition)
        if tp not in owned:
            owned.append(tp)
        while True:
            try:
                committed = await self.committed(owned)
                break
            except Exception as exc:
                if not retriable(exc):
                    raise
                log.warning("cannot read where %s resumes (%r); retrying", self.topic, exc)
                await asyncio.sleep(RETRY_S)
        none = [t for t in owned if committed.get(t) is None]
        if none:
            committed.update(await self.consumer.earliest_offsets(*none))
        for t in owned:
            start = committed[t]
            assert start is not None
            self._next[t.partition] = start
        return self._next[partition]

    async def _seek_back(self, partition: int, expected: int, got: int) -> None:
        now = time.monotonic()
        last = self._sought.get(partition)
        if last is not None and last[0] == expected and now - last[1] < RESEEK_AFTER_S:
            return
        self._sought[partition] = (expected, now)
        log.info(
            "%s[%d]: offset %d arrived while %d is next; reading again from %d",
            self.topic,
            partition,
            got,
            expected,
            expected,
        )
        await self.consumer.seek(TopicPartition(self.topic, partition), expected)

    def _set_aside(self, message: Any) -> None:
        """Done with here, never committable: a revocation does not wait for it."""
        message.acked = True
        self.consumer.unacked.discard(message)
