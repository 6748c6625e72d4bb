"""Which alerter replica delivers: a consumer group on the control topic, and a lease.

Every replica of an app id runs one :class:`Leadership`: a consumer in the group
``<app_id>-alerter`` subscribed to :func:`streams.topics.alerter_control_topic` (nothing is
ever written to it). The member the group assigns partition 0 of that topic is the
**leader**; the others stand by. Kafka's group protocol is eager: every member gives up its
partitions (``on_partitions_revoked``) before any member is given new ones, so two members
never hold partition 0 in the same generation.

Holding partition 0 is not enough: a leader cut off from the coordinator keeps its
assignment until it rejoins, while the coordinator may already have expired it and given
partition 0 to a standby. So the leader also holds a **lease**, which it renews every
:attr:`Leadership.renew_ms` by committing an offset of partition 0 with its generation:

* the coordinator accepts such a commit only from a current member of the current
  generation, and an accepted commit restarts that member's session timer (Kafka's
  ``OffsetMetadataManager``: "offset commits maintain the session"), so no other member can
  be given partition 0 before ``session_timeout_ms`` after the commit was *sent*;
* the lease therefore runs until the send time of the last accepted commit plus
  :data:`LEASE_SHARE` of the session timeout (a margin for clock rates and scheduling).

The guarantee, exactly: a replica writes to the outbox and starts a delivery request only
while :meth:`Leadership.lease_valid`; at any moment at most one replica's lease is valid.
A request started under a lease may still be in flight when it runs out (at most the sink's
timeout). Outbox writes are fenced by Kafka besides (:mod:`streams.alerting.outbox`).

``on_elected`` is called when this replica gets partition 0; ``on_deposed`` is awaited when
it gives it up, before the group may hand it to another member, so the leader's work has
stopped by then. A standby takes over at most ``session_timeout_ms`` (plus a rebalance)
after a leader died, and at once after a leader stopped cleanly (it leaves the group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from streams.kafka import KafkaConnection, new_consumer
from streams.settings import Settings
from streams.topics import alerter_control_topic

log = logging.getLogger(__name__)

LEASE_SHARE = 0.8
"""The part of the session timeout a lease lasts after the send of its commit."""
RENEW_SHARE = 0.25
"""How often the lease is renewed, as a part of the session timeout."""
POLL_MS = 100


def group_id(app_id: str) -> str:
    """The consumer group of the alerter replicas of ``app_id``."""
    return f"{app_id}-alerter"


class Leadership:
    """Membership in the replicas' group, and the lease of the one that holds partition 0."""

    def __init__(
        self,
        kafka: Settings | KafkaConnection,
        app_id: str,
        session_timeout_ms: int,
        *,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], Awaitable[None]],
        monotonic: Callable[[], float] = time.monotonic,
        client_id: str = "freshness-alerter",
    ) -> None:
        self.kafka = kafka
        self.topic = alerter_control_topic(app_id)
        self.group = group_id(app_id)
        self.session_timeout_ms = session_timeout_ms
        self.renew_ms = max(50, int(session_timeout_ms * RENEW_SHARE))
        self.client_id = client_id
        self._partition = TopicPartition(self.topic, 0)
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._monotonic = monotonic
        self._holds = False
        self._lease_until = 0.0
        self._renewed_at = float("-inf")
        self._lease_changed = asyncio.Event()
        self.terms = 0
        """How many times this replica was given partition 0."""

    @property
    def holds_partition(self) -> bool:
        return self._holds

    def lease_valid(self) -> bool:
        """Whether this replica leads now: it holds partition 0 and its lease runs."""
        return self._holds and self._monotonic() < self._lease_until

    async def wait_lease(self) -> None:
        """Return once :meth:`lease_valid` (at once if it is)."""
        while not self.lease_valid():
            self._lease_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lease_changed.wait(), POLL_MS / 1000)

    async def run(self) -> None:
        """Stay in the group until cancelled; leaves it (a clean hand-over) on the way out.

        Retriable Kafka errors are waited out; others propagate.
        """
        consumer = self._consumer()
        consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            await consumer.start()
            while True:
                await consumer.getmany(timeout_ms=POLL_MS)
                if self._holds and self._renew_due():
                    await self._renew(consumer)
        finally:
            await self._give_up()
            with contextlib.suppress(Exception):
                await consumer.stop()

    def _consumer(self) -> Any:
        heartbeat = max(30, self.session_timeout_ms // 3)
        return new_consumer(
            self.kafka,
            group_id=self.group,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=heartbeat,
            rebalance_timeout_ms=self.session_timeout_ms,
        )

    def _renew_due(self) -> bool:
        since = (self._monotonic() - self._renewed_at) * 1000
        return since >= self.renew_ms or not self.lease_valid()

    async def _renew(self, consumer: Any) -> None:
        """Commit offset 0 of partition 0; on success the lease runs from the send time."""
        sent = self._monotonic()
        self._renewed_at = sent
        try:
            await asyncio.wait_for(consumer.commit({self._partition: 0}), self.renew_ms / 1000)
        except Exception as exc:  # every failure just leaves the lease to run out
            log.info("alerter: lease not renewed: %s: %s", type(exc).__name__, exc)
            return
        if self._holds:
            self._lease_until = sent + self.session_timeout_ms * LEASE_SHARE / 1000
            self._lease_changed.set()

    def _elected(self) -> None:
        self._holds = True
        self._lease_until = 0.0
        self._renewed_at = float("-inf")
        self.terms += 1
        log.info("alerter: this replica leads (term %d of this process)", self.terms)
        self._on_elected()

    async def _give_up(self) -> None:
        if not self._holds:
            return
        self._holds = False
        self._lease_until = 0.0
        self._lease_changed.set()
        log.info("alerter: this replica no longer leads")
        await self._on_deposed()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, owner: Leadership) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.owner._give_up()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self.owner._partition in set(assigned):
            self.owner._elected()
