"""The read model fed from the real broker; two API instances; startup while Kafka is down."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from api.consumer import OutputConsumer
from api.readmodel import Progress, ReadModel
from streams import topics
from tests.api.records import NOW, Records, make_client, make_model

MINUTE = NOW // 60_000


async def output_topics(
    bootstrap: str, make_topics: Callable[..., Any], unique_topic: Callable[[str], str]
) -> dict[str, str]:
    """Fresh, unshared stand-ins for the four output topics: physical -> logical name."""
    mapping = {
        unique_topic("breaches"): topics.BREACHES,
        unique_topic("stats"): topics.STATS,
        unique_topic("measurements"): topics.MEASUREMENTS,
        unique_topic("quarantine"): topics.QUARANTINE,
    }
    for physical, logical in mapping.items():
        compacted = logical in (topics.BREACHES, topics.STATS)
        await make_topics(bootstrap, [physical], partitions=3, compacted=compacted)
    return mapping


def keyed(record: dict[str, Any]) -> tuple[str, bytes]:
    topic = Records.topic_of(record)
    if topic == topics.BREACHES:
        return topic, record["breach_id"].encode()
    if topic == topics.STATS:
        return topic, Records.stats_key(record).encode()
    if topic == topics.MEASUREMENTS:
        return topic, f"{record['flow']}:{record['key']}".encode()
    return topic, f"{record['topic']}:{record['partition']}:{record['offset']}".encode()


async def produce(bootstrap: str, mapping: dict[str, str], records: list[dict[str, Any]]) -> None:
    physical = {logical: name for name, logical in mapping.items()}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            topic, key = keyed(r)
            await producer.send(physical[topic], orjson.dumps(r), key=key)
        await producer.flush()
    finally:
        await producer.stop()


def scenario(rec: Records, prefix: str, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in range(3):
        out.append(rec.window([100.0 + 50 * i for i in range(40)], partition=p, lost=p))
        out.append(rec.gauge(partition=p, pending=p + 1, oldest_pending_started_at=NOW - 4_000))
    for i in range(n):
        out.append(rec.breach(f"{prefix}{i}", started_at=NOW - 9_000 + i))
        out.append(rec.measurement(f"{prefix}m{i}", lag_ms=100 * i))
    out.append(rec.quarantine(1, "schema_violation"))
    return out


@asynccontextmanager
async def running(
    bootstrap: str, mapping: dict[str, str]
) -> AsyncIterator[tuple[ReadModel, OutputConsumer]]:
    model = make_model()
    model.progress = Progress()  # not caught up: the consumer decides
    consumer = OutputConsumer(bootstrap, model, topic_map=mapping, retry_ms=200)
    consumer.start()
    try:
        yield model, consumer
    finally:
        await consumer.stop()


async def fetch_all(model: ReadModel) -> tuple[Any, list[str]]:
    async with make_client(model) as client:
        flows = (await client.get("/v1/flows")).json()
        ids: list[str] = []
        url = "/v1/breaches?limit=7"
        page = (await client.get(url)).json()
        while True:
            ids += [b["breach_id"] for b in page["items"]]
            if page["next_cursor"] is None:
                return flows, ids
            page = (await client.get(f"{url}&cursor={page['next_cursor']}")).json()


def without_source(flows: dict[str, Any]) -> list[dict[str, Any]]:
    """The flow views without ``source`` (when each process last heard Kafka: wall clock)."""
    return [{k: v for k, v in f.items() if k != "source"} for f in flows["flows"]]


async def test_read_model_from_the_real_broker_and_two_instances_agree(
    kafka_bootstrap: str, make_topics: Callable[..., Any], unique_topic: Callable[[str], str]
) -> None:
    rec = Records()
    mapping = await output_topics(kafka_bootstrap, make_topics, unique_topic)
    await produce(kafka_bootstrap, mapping, scenario(rec, "a", 30))
    async with running(kafka_bootstrap, mapping) as (one, c1):
        await c1.wait_ready(60)
        assert one.progress.bad_records == 0
        view = one.flow_view("lead_to_posthog")
        assert view.windows.last_5m.count == 120
        assert view.windows.last_5m.lost == 3
        assert view.pending == 6
        assert view.open_breaches == 30
        assert one.quarantine == {"schema_violation": 1}
        entity = one.entity_view("lead_to_posthog", "am5")
        assert entity.cycles[0].lag_ms == 500

        # more records while running; a second instance starts from the beginning
        await produce(kafka_bootstrap, mapping, scenario(rec, "b", 20))
        async with running(kafka_bootstrap, mapping) as (two, c2):
            await c2.wait_ready(60)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if len(one.breaches) == len(two.breaches) == 50:
                    break
                await asyncio.sleep(0.05)
            flows1, ids1 = await fetch_all(one)
            flows2, ids2 = await fetch_all(two)
    assert without_source(flows1) == without_source(flows2)
    assert ids1 == ids2
    assert len(ids1) == len(set(ids1)) == 50
    assert flows1["flows"][0]["pending"] == 6  # gauges replaced, not added


async def test_readiness_waits_for_missing_topics(
    kafka_bootstrap: str, make_topics: Callable[..., Any], unique_topic: Callable[[str], str]
) -> None:
    mapping = {unique_topic("late-created"): topics.BREACHES}
    async with running(kafka_bootstrap, mapping) as (model, consumer):
        deadline = time.monotonic() + 30
        while not any("to exist" in w for w in model.progress.waiting_for):
            assert time.monotonic() < deadline, model.progress.waiting_for
            await asyncio.sleep(0.05)
        assert not model.progress.ready
        await make_topics(kafka_bootstrap, list(mapping), partitions=2, compacted=True)
        await consumer.wait_ready(60)
        assert model.progress.waiting_for == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_freshness_api_starts_and_answers_healthz_while_kafka_is_down(tmp_path: Any) -> None:
    port, dead_kafka = free_port(), free_port()
    env = {
        **os.environ,
        "FRESHNESS_KAFKA_BOOTSTRAP": f"127.0.0.1:{dead_kafka}",
        "FRESHNESS_API_PORT": str(port),
        "FRESHNESS_HOME": str(tmp_path),
    }
    env.pop("FRESHNESS_API_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                assert time.monotonic() < deadline, "freshness api did not start"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz", timeout=1)
        assert ready.status_code == 503
        assert any(f"127.0.0.1:{dead_kafka}" in w for w in ready.json()["waiting_for"])
        assert httpx.get(f"{base}/v1/flows", timeout=1).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()
