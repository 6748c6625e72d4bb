"""The alerter's writes: state changes to ``freshness.alerts`` and delivery progress to
``freshness.alert-deliveries``, each in a Kafka transaction under one transactional id.

Guarantees:

* **Before delivery.** :meth:`Outbox.write_states` returns only once the states are
  committed (acks=all); a state's version is its record's offset. The alerter offers a
  state to the sinks only after that, so a crash at any moment leaves every delivered state
  in the outbox.
* **One writer.** Every replica of an app id uses the transactional id
  ``<app_id>-alerter``. :meth:`Outbox.start` registers it with Kafka, which aborts the
  previous leader's open transaction and fences its producer: from then on every write of
  the previous leader fails (``ProducerFenced``), even one it began before it lost its
  lease. Readers use ``read_committed``, so an aborted state is never seen.
* Writes are serialised (one transaction at a time); a failed write raises and writes
  nothing, and the alerter's leader session ends with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from streams import topics
from streams.alerting.records import AlertState, ProgressRecord, encode_alert, encode_progress
from streams.kafka import KafkaConnection, new_producer
from streams.settings import Settings

RETRY_BACKOFF_MS = 10
"""aiokafka's default of 100 ms makes back-to-back transactions take 50-100 ms each; with
10 ms they take about 10 ms (measured against the embedded broker)."""


STOP_TIMEOUT_S = 10.0


def transactional_id(app_id: str) -> str:
    """The one transactional id of the alerter replicas of ``app_id``."""
    return f"{app_id}-alerter"


class Outbox:
    """A transactional producer for the two alerting topics. ``start`` before writing."""

    def __init__(
        self,
        kafka: Settings | KafkaConnection,
        app_id: str,
        *,
        alerts_topic: str = topics.ALERTS,
        deliveries_topic: str = topics.ALERT_DELIVERIES,
    ) -> None:
        self.kafka = kafka
        self.transactional_id = transactional_id(app_id)
        self.alerts_topic = alerts_topic
        self.deliveries_topic = deliveries_topic
        self._producer: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Register the transactional id (fencing the previous holder's producer)."""
        producer = new_producer(
            self.kafka,
            transactional_id=self.transactional_id,
            acks="all",
            client_id="freshness-alerter",
            # A transaction begun right after a commit is refused (CONCURRENT_TRANSACTIONS)
            # until the coordinator has written the markers: retry soon, not after 100 ms.
            retry_backoff_ms=RETRY_BACKOFF_MS,
        )
        try:
            await producer.start()
        except BaseException:
            await _quiet_stop(producer)
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _quiet_stop(producer)

    async def write_states(self, states: Sequence[AlertState]) -> list[AlertState]:
        """Commit state changes together; return them with their versions (their offsets)."""
        if not states:
            return []
        async with self._transaction() as producer:
            futures = []
            for state in states:
                key, value = encode_alert(state)
                futures.append(await producer.send(self.alerts_topic, value, key=key))
            written = await asyncio.gather(*futures)
        return [s.at_version(int(md.offset)) for s, md in zip(states, written, strict=True)]

    async def write_progress(self, records: Sequence[ProgressRecord]) -> None:
        """Commit delivery records and counts together."""
        if not records:
            return
        async with self._transaction() as producer:
            futures = []
            for record in records:
                key, value = encode_progress(record)
                futures.append(await producer.send(self.deliveries_topic, value, key=key))
            await asyncio.gather(*futures)

    def _transaction(self) -> _Transaction:
        if self._producer is None:
            raise RuntimeError("Outbox.start() was not called (or stop() was)")
        return _Transaction(self._producer, self._lock)


class _Transaction:
    """``async with``: the lock, then one transaction of ``producer``."""

    def __init__(self, producer: Any, lock: asyncio.Lock) -> None:
        self._producer = producer
        self._lock = lock
        self._context: Any = None

    async def __aenter__(self) -> Any:
        await self._lock.acquire()
        try:
            self._context = self._producer.transaction()
            await self._context.__aenter__()
        except BaseException:
            self._lock.release()
            raise
        return self._producer

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._context.__aexit__(*exc_info)
        finally:
            self._lock.release()


async def _quiet_stop(producer: Any) -> None:
    """Stop ``producer`` whatever state it is in (a fenced one fails every call), within
    :data:`STOP_TIMEOUT_S` (an open transaction is then left for the next leader to abort)."""
    try:
        await asyncio.wait_for(producer.stop(), STOP_TIMEOUT_S)
    except Exception:  # a fenced or unreachable producer has nothing left to flush
        return
