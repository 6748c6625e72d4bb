"""The monitor as a peer: how an application outside it hands it input records.

Two ways, one contract (:class:`Delivery`): :class:`KafkaDelivery` writes straight to the
input topic (acks=all, idempotent producer) and :class:`HttpDelivery` posts to the monitor's
receiver, ``POST /v1/events/<topic>`` with the ingest token (``FRESHNESS_INGEST_TOKEN``),
for applications without a Kafka client. Both are synchronous (they block the calling
thread until the records are durably accepted, or raise :class:`DeliveryError`), so the
threads of a synchronous SDK can use them; the PostHog bridge
(:mod:`streams.connectors.posthog`) calls one from its delivery thread.

Retrying is the caller's choice; :attr:`DeliveryError.retriable` says when it can help. A
record delivered twice is harmless when its ``event_id`` is the same: the monitor ignores
repeated event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

from streams.errors import FreshnessError
from streams.kafka import KafkaConnection, new_producer, retriable
from streams.settings import Settings
from streams.topics import MESSAGE_MAX_BYTES

Record = tuple[bytes | None, bytes]
"""A Kafka key (the entity, so one entity's records stay in order) and a JSON value."""


class DeliveryError(FreshnessError):
    """Records were not (all) accepted; ``retriable`` says whether trying again can help."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class Delivery(Protocol):
    """``deliver`` blocks until every record of ``records`` is durably accepted on ``topic``,
    or raises :class:`DeliveryError` (then some may have been); one thread at a time."""

    def deliver(self, topic: str, records: Sequence[Record]) -> None: ...

    def close(self) -> None: ...


class KafkaDelivery:
    """Straight to Kafka, from an event loop of its own in a daemon thread. The producer
    connects on the first delivery; ``timeout_s`` bounds each delivery."""

    def __init__(self, kafka: Settings | KafkaConnection, *, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._kafka = kafka
        self._producer: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="monitor-kafka-delivery", daemon=True
        )
        self._thread.start()

    def deliver(self, topic: str, records: Sequence[Record]) -> None:
        future = asyncio.run_coroutine_threadsafe(self._send(topic, records), self._loop)
        try:
            future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise DeliveryError(
                f"Kafka did not acknowledge within {self.timeout_s:g} s", retriable=True
            ) from None
        except Exception as exc:
            raise DeliveryError(f"Kafka: {exc!r}", retriable=retriable(exc)) from exc

    async def _send(self, topic: str, records: Sequence[Record]) -> None:
        if self._producer is None:
            producer = new_producer(
                self._kafka,
                acks="all",
                enable_idempotence=True,
                max_request_size=MESSAGE_MAX_BYTES,  # a record over 1 MiB is the worker's to judge
            )
            await producer.start()
            self._producer = producer
        futures = [await self._producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)

    def close(self) -> None:
        async def stop() -> None:
            if self._producer is not None:
                await self._producer.stop()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(self.timeout_s)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout_s)
        if not self._thread.is_alive():
            self._loop.close()


class HttpDelivery:
    """``POST <url>/v1/events/<topic>`` as NDJSON. 202 is delivered; 408, 429, 5xx and
    network errors are retriable; any other answer is not (the error carries the body)."""

    def __init__(self, url: str, token: str | None, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Content-Type": "application/x-ndjson"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def deliver(self, topic: str, records: Sequence[Record]) -> None:
        endpoint = f"{self.url}/v1/events/{topic}"
        body = b"\n".join(value for _, value in records)
        request = urllib.request.Request(endpoint, body, self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            text = exc.read()[:500].decode(errors="replace")
            again = exc.code in (408, 429) or exc.code >= 500
            raise DeliveryError(f"{endpoint}: {exc.code} {text}", retriable=again) from None
        except OSError as exc:  # URLError, timeouts, refused connections
            raise DeliveryError(f"{endpoint}: {exc}", retriable=True) from None
        if status != 202:
            raise DeliveryError(f"{endpoint}: unexpected {status}", retriable=False)

    def close(self) -> None:
        return None
