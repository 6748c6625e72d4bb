"""The ways the simulator's records reach the monitor besides straight to Kafka, and the
router that picks one per record (``freshness simulate --posthog-host``, ``--receiver-url``).

* :class:`PostHogSink`: a completion of ``funnel.posthog.ingested`` is *captured* through
  the real posthog SDK (batched, ``flush_interval`` as configured) against a PostHog
  capture endpoint, and the SDK bridge (:mod:`streams.connectors.posthog`) writes the
  ``accepted`` completion to Kafka when PostHog answers. The record's acknowledgement comes
  once the bridge delivered that completion, and carries its ``occurred_at`` (the moment of
  PostHog's 2xx), which is what the truth then records: the planned time is only when the
  app captured the event. A batch PostHog refuses fails its records' acknowledgements.
* :class:`ReceiverSink`: a record is POSTed to the monitor's ``/v1/events/{topic}`` with the
  ingest token, and acknowledged on 202; 503, 429, other 5xx and connection errors are
  retried for up to ``retry_for_s`` (the API may still be starting).
* :class:`Sinks`: completions (roles ``end`` and ``dup_end``) of ``funnel.posthog.ingested``
  go to the PostHog sink, those of the receiver's topic to the receiver; starts, malformed
  records and every other completion go straight to Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any

import aiohttp
import orjson
from posthog import Posthog

from streams import topics
from streams.connectors.monitor import Delivery, KafkaDelivery, Record
from streams.connectors.posthog import PostHogBridge
from streams.kafka import KafkaConnection
from streams.settings import Settings
from streams.simulate.scheduler import Position, Sink
from streams.simulate.traffic import Planned

EVENT_NAMES = {"lead.captured": "lead captured", "payment.webhook_received": "payment received"}
"""The PostHog event the simulated app captures for each funnel source."""
_UUIDS = uuid.UUID("5b3e0a52-6c7e-4f0e-9d1a-2f6f2a7e8c11")
"""Namespace of the events' uuids: uuid5 of the planned record's ``event_id``, so a
duplicate copy is the same PostHog event."""


class _Observed:
    """A delivery that reports every record it delivered."""

    def __init__(self, inner: Delivery, seen: Any) -> None:
        self.inner = inner
        self.seen = seen

    def deliver(self, topic: str, records: Sequence[Record]) -> None:
        self.inner.deliver(topic, records)
        self.seen([orjson.loads(value) for _, value in records])

    def close(self) -> None:
        self.inner.close()


class PostHogSink:
    """Captures completions through the SDK and the bridge; see the module docstring."""

    def __init__(
        self,
        kafka: Settings | KafkaConnection,
        host: str,
        *,
        flush_interval: float = 0.25,
        api_key: str = "phc_freshness_simulator",
    ) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, deque[asyncio.Future[Position]]] = {}
        self.bridge = PostHogBridge(_Observed(KafkaDelivery(kafka), self._delivered))
        client = Posthog(api_key, host=host, flush_interval=flush_interval, on_error=self._refused)
        self.client = self.bridge.instrument(client)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]:
        loop = self._loop or asyncio.get_running_loop()
        fut: asyncio.Future[Position] = loop.create_future()
        rec = orjson.loads(value or b"{}")
        event_uuid = str(uuid.uuid5(_UUIDS, str(rec["event_id"])))
        self._pending.setdefault(event_uuid, deque()).append(fut)
        source = str(rec["source"])
        sent = self.client.capture(
            EVENT_NAMES.get(source, "funnel event"),
            distinct_id=str(rec["source_id"]),
            uuid=event_uuid,
            properties={"funnel_source": source, "funnel_source_id": rec["source_id"]},
        )
        if sent is None:
            self._fail([event_uuid], RuntimeError("the PostHog client dropped the event"))
        return fut

    def _delivered(self, completions: list[dict[str, Any]]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._resolve, completions)

    def _resolve(self, completions: list[dict[str, Any]]) -> None:
        for c in completions:
            fut = self._take(str(c["uuid"]))
            if fut is not None and not fut.done():
                at = int(c["occurred_at"])
                fut.set_result(Position(topics.POSTHOG_INGESTED, -1, -1, occurred_at=at))

    def _refused(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        assert self._loop is not None
        uuids = [str(e.get("uuid")) for e in batch]
        self._loop.call_soon_threadsafe(self._fail, uuids, error)

    def _fail(self, uuids: list[str], error: Exception) -> None:
        for event_uuid in uuids:
            fut = self._take(event_uuid)
            if fut is not None and not fut.done():
                fut.set_exception(RuntimeError(f"PostHog did not accept the event: {error}"))

    def _take(self, event_uuid: str) -> asyncio.Future[Position] | None:
        futures = self._pending.get(event_uuid)
        if not futures:
            return None
        fut = futures.popleft()
        if not futures:
            del self._pending[event_uuid]
        return fut

    async def flush(self) -> None:
        """Until every captured event was answered by PostHog and its completion delivered."""
        await asyncio.to_thread(self.client.flush, None)
        await asyncio.to_thread(self.bridge.flush, None)
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await asyncio.to_thread(self.client.shutdown)
        await asyncio.to_thread(self.bridge.close)


class ReceiverSink:
    """POSTs records to ``<url>/v1/events/{topic}``; see the module docstring."""

    def __init__(self, url: str, token: str | None, *, retry_for_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.retry_for_s = retry_for_s
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None
        self._inflight: set[asyncio.Task[Position]] = set()

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]:
        task = asyncio.create_task(self._post(topic, value or b""))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _post(self, topic: str, value: bytes) -> Position:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for_s
        why = ""
        while loop.time() < deadline:
            try:
                async with self._session.post(
                    f"{self.url}/v1/events/{topic}", data=value, headers=self._headers
                ) as r:
                    if r.status == 202:
                        return Position(topic, -1, -1)
                    why = f"{r.status} {(await r.text())[:300]}"
                    if r.status != 429 and r.status < 500:
                        raise RuntimeError(f"the receiver refused a record: {why}")
            except aiohttp.ClientError as exc:
                why = repr(exc)
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the receiver did not take a record in {self.retry_for_s:g} s: {why}")

    async def flush(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def stop(self) -> None:
        await self.flush()
        if self._session is not None:
            await self._session.close()


class Sinks:
    """Kafka, plus the PostHog and receiver paths when configured; :meth:`route` picks."""

    def __init__(
        self,
        kafka: Any,
        posthog: PostHogSink | None = None,
        receiver: ReceiverSink | None = None,
        receiver_topic: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.posthog = posthog
        self.receiver = receiver
        self.receiver_topic = receiver_topic

    def route(self, rec: Planned) -> Sink:
        if rec.role in ("end", "dup_end"):
            if self.posthog is not None and rec.topic == topics.POSTHOG_INGESTED:
                return self.posthog
            if self.receiver is not None and rec.topic == self.receiver_topic:
                return self.receiver
        sink: Sink = self.kafka
        return sink

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]:
        fut: Awaitable[Position] = await self.kafka.send(topic, key, value)
        return fut

    async def flush(self) -> None:
        if self.posthog is not None:
            await self.posthog.flush()
        if self.receiver is not None:
            await self.receiver.flush()
        await self.kafka.flush()

    async def stop(self) -> None:
        if self.posthog is not None:
            await self.posthog.stop()
        if self.receiver is not None:
            await self.receiver.stop()
        await self.kafka.stop()
