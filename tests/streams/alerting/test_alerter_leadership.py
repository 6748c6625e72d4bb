"""Leadership without a broker: who leads (partition 0 of the control topic), the lease
(running from the send of the last accepted commit), and the hand-over (the leader's work
stops before the group may give the partition to another member)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from streams.alerting.leadership import LEASE_SHARE, Leadership, _Listener
from streams.kafka import KafkaConnection

SESSION_MS = 2_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Consumer:
    """A consumer whose commits succeed, fail or take their time, as told."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.error: Exception | None = None
        self.delay_s = 0.0

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error


class Leader:
    def __init__(self) -> None:
        self.clock = Clock()
        self.events: list[str] = []
        self.leadership = Leadership(
            KafkaConnection("127.0.0.1:1"),
            "app",
            SESSION_MS,
            on_elected=lambda: self.events.append("elected"),
            on_deposed=self._deposed,
            monotonic=self.clock,
        )
        self.listener = _Listener(self.leadership)

    async def _deposed(self) -> None:
        await asyncio.sleep(0.01)  # the session's work takes a moment to stop
        self.events.append("deposed")


P0 = TopicPartition("app-alerter-control", 0)
P1 = TopicPartition("app-alerter-control", 1)


@pytest.fixture
def leader() -> Leader:
    return Leader()


async def test_only_the_member_given_partition_0_is_elected(leader: Leader) -> None:
    await leader.listener.on_partitions_assigned({P1})
    assert leader.events == []
    assert not leader.leadership.holds_partition
    await leader.listener.on_partitions_assigned({P0, P1})
    assert leader.events == ["elected"]
    assert leader.leadership.holds_partition


async def test_the_lease_runs_from_the_send_of_an_accepted_commit(leader: Leader) -> None:
    consumer: Any = Consumer()
    await leader.listener.on_partitions_assigned({P0})
    assert not leader.leadership.lease_valid()  # elected, but no commit accepted yet
    await leader.leadership._renew(consumer)
    assert consumer.commits == [{P0: 0}]
    assert leader.leadership.lease_valid()
    leader.clock.now += SESSION_MS * LEASE_SHARE / 1000 - 0.001
    assert leader.leadership.lease_valid()
    leader.clock.now += 0.002
    assert not leader.leadership.lease_valid()


@pytest.mark.parametrize("error", [CommitFailedError("rebalanced"), OSError("unreachable")])
async def test_a_refused_or_failed_commit_renews_nothing(leader: Leader, error: Exception) -> None:
    consumer: Any = Consumer()
    consumer.error = error
    await leader.listener.on_partitions_assigned({P0})
    await leader.leadership._renew(consumer)
    assert not leader.leadership.lease_valid()


async def test_a_commit_that_hangs_renews_nothing(leader: Leader) -> None:
    consumer: Any = Consumer()
    consumer.delay_s = 5.0
    await leader.listener.on_partitions_assigned({P0})
    await leader.leadership._renew(consumer)  # gives up after renew_ms
    assert not leader.leadership.lease_valid()


async def test_revocation_ends_the_lease_and_waits_for_the_work_to_stop(leader: Leader) -> None:
    consumer: Any = Consumer()
    await leader.listener.on_partitions_assigned({P0})
    await leader.leadership._renew(consumer)
    await leader.listener.on_partitions_revoked({P0})
    assert leader.events == ["elected", "deposed"]  # awaited before the rebalance goes on
    assert not leader.leadership.lease_valid()
    await leader.listener.on_partitions_revoked(set())  # a revocation of nothing: no-op
    assert leader.events == ["elected", "deposed"]


async def test_wait_lease_returns_once_renewed(leader: Leader) -> None:
    consumer: Any = Consumer()
    await leader.listener.on_partitions_assigned({P0})
    waiter = asyncio.create_task(leader.leadership.wait_lease())
    await asyncio.sleep(0.02)
    assert not waiter.done()
    await leader.leadership._renew(consumer)
    await asyncio.wait_for(waiter, 1)
