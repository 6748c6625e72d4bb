"""What the PostHog and receiver integration tests share: a ``freshness api`` process with
the receivers enabled, reading a topic whole, retrying a POST while the API's producer
connects."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streams.broker.process import free_port
from streams.kafka import KafkaConnection, new_consumer, partition_list, topic_partitions
from streams.process import Child

INGEST_TOKEN = "it-ingest-token-4f1c9b"
WEBHOOK_SECRET = "it-webhook-secret-77aa0e"
READ_TOKEN = "it-read-token-12ab34"


class ReceiverApi:
    """``freshness api`` with both receivers enabled, on a free port, logging to ``home``."""

    def __init__(
        self, bootstrap: str, home: Path, *, flows: Path | None = None, name: str = "api"
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"{name}.log"
        env = dict(os.environ)
        env.update(
            FRESHNESS_KAFKA_BOOTSTRAP=bootstrap,
            FRESHNESS_HOME=str(home),
            FRESHNESS_API_PORT=str(self.port),
            FRESHNESS_INGEST_TOKEN=INGEST_TOKEN,
            FRESHNESS_WEBHOOK_INGEST_SECRET=WEBHOOK_SECRET,
            FRESHNESS_API_TOKEN=READ_TOKEN,
        )
        if flows is not None:
            env["FRESHNESS_FLOWS"] = str(flows)
        argv = [sys.executable, "-m", "streams.cli", "api"]
        self.child = Child(name, argv, self.log, env)
        self.child.start()

    def wait_up(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.child.proc is not None
            if self.child.proc.poll() is not None:
                pytest.fail(f"api exited: {self.child.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"api not up: {self.child.tail()}")

    def events(self, topic: str, body: object, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {INGEST_TOKEN}", **kw.pop("headers", {})}
        return httpx.post(
            f"{self.url}/v1/events/{topic}", json=body, headers=headers, timeout=30, **kw
        )

    def webhook(self, payload: object, secret: str = WEBHOOK_SECRET) -> httpx.Response:
        headers = {"X-Freshness-Webhook-Secret": secret}
        return httpx.post(
            f"{self.url}/v1/webhooks/posthog", json=payload, headers=headers, timeout=30
        )

    def stop(self) -> None:
        self.child.stop()


@pytest.fixture
def receiver_api(tmp_path: Path) -> Iterator[Callable[..., ReceiverApi]]:
    started: list[ReceiverApi] = []

    def start(bootstrap: str, flows: Path | None = None) -> ReceiverApi:
        api = ReceiverApi(bootstrap, tmp_path, flows=flows, name=f"api-{len(started)}")
        started.append(api)
        api.wait_up()
        return api

    yield start
    for api in started:
        api.stop()


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record of ``topic`` now, from its beginning: (key, JSON value)."""
    consumer = new_consumer(KafkaConnection(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = partition_list(await topic_partitions(consumer, [topic]))
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[tuple[bytes | None, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            batches = await consumer.getmany(timeout_ms=500)
            for msgs in batches.values():
                out.extend((m.key, orjson.loads(m.value)) for m in msgs if m.value is not None)
        return out
    finally:
        await consumer.stop()


def until_written(post: Callable[[], httpx.Response], timeout_s: float = 60) -> httpx.Response:
    """``post()`` again while it answers 503 (the API's producer still connecting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = post()
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
