"""``POST /v1/webhooks/posthog`` on a real API process over a real broker, judged by a real
worker: destination payloads become ``delivered`` completions (measured by a flow that asks
for them, not by the default one), a wrong secret writes nothing, and through a Kafka outage
the POST is refused with 503 and, retried once Kafka is back, measured exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker
from streams.flows.config import load_flows, parse_flows
from streams.kafka import KafkaConnection, ensure_topics
from tests.integration.conftest import OutputReader, WorkerProcess, produce
from tests.integration.posthog_harness import (  # noqa: F401  (fixtures)
    ReceiverApi,
    now_ms,
    read_topic,
    receiver_api,
    until_written,
)

pytestmark = pytest.mark.integration

DELIVERED_FLOW = """
  - name: lead_delivered
    start: {topic: funnel.lead.captured, key: lead_id}
    completion:
      topic: funnel.posthog.ingested
      key: source_id
      filter: 'source == "lead.captured" and stage == "delivered"'
    target: 1m
"""


def flows_file(tmp_path: Path) -> Path:
    default = (Path(__file__).resolve().parents[2] / "streams/flows/default.yaml").read_text()
    path = tmp_path / "flows.yaml"
    path.write_text(default.rstrip() + "\n" + DELIVERED_FLOW)
    parse_flows(path.read_text(), str(path))  # valid
    return path


def payload(key: str, event_uuid: str) -> dict[str, Any]:
    """What PostHog's HTTP webhook destination posts with its default body."""
    return {
        "event": {
            "uuid": event_uuid,
            "event": "lead captured",
            "distinct_id": key,
            "properties": {"funnel_source": "lead.captured", "funnel_source_id": key},
            "timestamp": "2026-04-23T10:46:57.123Z",
            "elements_chain": "",
            "url": "https://eu.posthog.com/project/1/events/x",
        },
        "person": {"id": str(uuid.uuid4()), "properties": {}, "name": key, "url": ""},
    }


def measurements(reader: OutputReader, flow: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in reader.of(topics.MEASUREMENTS):
        if m["flow"] == flow:
            out.setdefault(str(m["key"]), []).append(m)
    return out


async def test_webhook_deliveries_through_a_kafka_outage(
    restartable_broker: EmbeddedBroker,
    receiver_api: Callable[..., ReceiverApi],  # noqa: F811
    tmp_path: Path,
    prefix: str,
) -> None:
    bootstrap = restartable_broker.config.bootstrap
    flows = flows_file(tmp_path)
    app_id = f"app-{prefix}"
    specs = topics.required_topics(load_flows(flows), app_id)
    await ensure_topics(KafkaConnection(bootstrap), specs, 8, 1)
    api = receiver_api(bootstrap, flows)
    keys = [f"{prefix}-L{i}" for i in range(4)]
    uuids = {k: str(uuid.uuid4()) for k in keys}
    started = {k: now_ms() - 1_000 for k in keys}
    starts = [
        (
            topics.LEAD_CAPTURED,
            k.encode(),
            orjson.dumps({"event_id": f"{k}-s", "lead_id": k, "occurred_at": started[k]}),
        )
        for k in keys
    ]
    await produce(bootstrap, starts)

    # a wrong secret: refused, nothing written
    intruder = str(uuid.uuid4())
    wrong = api.webhook(payload(keys[0], intruder), secret="not-the-secret")
    assert wrong.status_code == 401
    assert await read_topic(bootstrap, topics.POSTHOG_INGESTED) == []

    # Kafka goes away: the POST is refused with 503, nothing acknowledged
    outage = keys[3]
    assert until_written(lambda: api.webhook(payload(keys[2], uuids[keys[2]]))).status_code == 202
    await asyncio.to_thread(restartable_broker.stop)
    t0 = time.monotonic()
    refused = api.webhook(payload(outage, uuids[outage]))
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert time.monotonic() - t0 < 15
    await asyncio.to_thread(restartable_broker.start, timeout_s=120)
    retried = until_written(lambda: api.webhook(payload(outage, uuids[outage])), timeout_s=90)
    assert retried.status_code == 202, retried.text

    answers: dict[str, httpx.Response] = {keys[3]: retried}
    for k in keys[:2]:
        answers[k] = api.webhook(payload(k, uuids[k]))
        assert answers[k].status_code == 202, answers[k].text

    worker = WorkerProcess(bootstrap, tmp_path, app_id, flows=flows)
    worker.start()
    reader = OutputReader(bootstrap, prefix)
    try:
        done = await reader.until(
            lambda r: set(measurements(r, "lead_delivered")) >= set(keys), timeout_s=120
        )
        assert done, (measurements(reader, "lead_delivered"), worker.tail())
        await reader.poll(2.0)  # anything more would be a second measurement
        got = measurements(reader, "lead_delivered")
    finally:
        await reader.close()
        worker.stop()

    written = [v for _, v in await read_topic(bootstrap, topics.POSTHOG_INGESTED)]
    assert {v["uuid"] for v in written} == set(uuids.values())  # not the intruder's
    copies = [v["uuid"] for v in written].count(uuids[outage])
    print(f"copies of the POST refused during the outage, then retried: {copies}")
    assert all(v["stage"] == "delivered" for v in written)
    for k in keys:
        (m,) = got[k]  # measured exactly once, even if the refused POST landed later
        assert m["end_event_id"] == f"posthog-delivered-{uuids[k]}"
        firsts = [v["occurred_at"] for v in written if v["uuid"] == uuids[k]]
        assert m["completed_at"] == firsts[0]  # the moment of receipt, first copy wins
        assert m["lag_ms"] == firsts[0] - started[k]
    for k in (keys[0], keys[1], keys[2]):
        assert [v["uuid"] for v in written].count(uuids[k]) == 1
    assert got[keys[0]][0]["completed_at"] == answers[keys[0]].json()["occurred_at"]
    assert not set(measurements(reader, "lead_to_posthog")) & set(keys)
