"""The real posthog SDK, with its default batching, against the local capture endpoint, the
bridge delivering to the real broker (straight, or through the API's receiver), and a real
worker judging: every lead PostHog accepted is measured at the moment it answered for its
batch, and a batch it refuses leaves exactly its leads overdue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from posthog import Posthog

from streams import topics
from streams.connectors.monitor import HttpDelivery, KafkaDelivery
from streams.connectors.posthog import PostHogBridge
from streams.kafka import KafkaConnection
from streams.testing.peers.posthog import PostHogCapture
from tests.integration.conftest import OutputReader
from tests.integration.posthog_harness import (  # noqa: F401  (fixtures)
    INGEST_TOKEN,
    ReceiverApi,
    now_ms,
    receiver_api,
)

pytestmark = pytest.mark.integration

LEADS = 1000
TOLERANCE_MS = 50
FLOW = "lead_to_posthog"


async def capture_leads(
    client: Posthog, prefix: str, n: int, produce: Callable[..., Any], bootstrap: str
) -> dict[str, tuple[int, str]]:
    """Capture ``n`` leads, 50 at a time as a busy app would, and produce their starts, in a
    thread of its own (this loop serves the capture endpoint); key -> (started_at, uuid)."""

    def app() -> dict[str, tuple[int, str]]:
        leads: dict[str, tuple[int, str]] = {}
        starts = []
        for i in range(n):
            key = f"{prefix}-L{i}"
            at = now_ms()
            props = {"funnel_source": "lead.captured", "funnel_source_id": key}
            uuid = client.capture("lead captured", distinct_id=key, properties=props)
            assert uuid is not None
            leads[key] = (at, uuid)
            start = {"event_id": f"{key}-s", "lead_id": key, "occurred_at": at}
            starts.append((topics.LEAD_CAPTURED, key.encode(), orjson.dumps(start)))
            if i % 50 == 49:
                time.sleep(0.05)
        asyncio.run(produce(bootstrap, starts))
        return leads

    return await asyncio.to_thread(app)


def measured(reader: OutputReader) -> dict[str, dict[str, Any]]:
    return {str(m["key"]): m for m in reader.of(topics.MEASUREMENTS) if m["flow"] == FLOW}


async def test_every_lead_is_measured_at_the_moment_posthog_answered_for_its_batch(
    workers: Any, funnel_topics: str, reader: OutputReader, prefix: str, produce: Any
) -> None:
    workers()
    async with PostHogCapture() as capture:
        bridge = PostHogBridge(KafkaDelivery(KafkaConnection(funnel_topics)))
        client = bridge.instrument(Posthog("phc_integration", host=capture.url))
        try:
            leads = await capture_leads(client, prefix, LEADS, produce, funnel_topics)
            assert await reader.until(lambda r: len(measured(r)) >= LEADS, timeout_s=120)
        finally:
            await asyncio.to_thread(client.shutdown)
            await asyncio.to_thread(bridge.close)
        answered = capture.answered_at()
    got = measured(reader)
    assert set(got) == set(leads)
    assert len(capture.accepted()) >= LEADS // 100  # default flush_at: batches of 100
    assert all(b.status == 200 for b in capture.batches)
    gaps = []
    for key, (started, uuid) in leads.items():
        m = got[key]
        until_answer = answered[uuid] - started
        gaps.append(m["lag_ms"] - until_answer)
        assert 0 <= gaps[-1] <= TOLERANCE_MS, (key, m, until_answer)
        assert m["started_at"] == started
        assert m["end_event_id"] == f"posthog-accepted-{uuid}"
    print(f"measured lag minus the time until capture answered: max {max(gaps)} ms")
    assert bridge.stats.completions == LEADS
    assert reader.latest_breaches() == {}


async def test_a_refused_batch_leaves_exactly_its_leads_overdue(
    workers: Any,
    funnel_topics: str,
    reader: OutputReader,
    prefix: str,
    produce: Any,
    receiver_api: Callable[..., ReceiverApi],  # noqa: F811
) -> None:
    """The bridge delivers through the API's receiver here (HttpDelivery)."""
    workers()
    api = receiver_api(funnel_topics)
    async with PostHogCapture() as capture:
        marked = f"{prefix}-L150"
        capture.reject(400, match=lambda events: any(e["distinct_id"] == marked for e in events))
        bridge = PostHogBridge(HttpDelivery(api.url, INGEST_TOKEN))
        client = bridge.instrument(Posthog("phc_integration", host=capture.url))
        try:
            leads = await capture_leads(client, prefix, 300, produce, funnel_topics)
            await asyncio.to_thread(client.flush)
            refused = {
                str(e["distinct_id"]) for b in capture.batches if b.status == 400 for e in b.events
            }
            accepted = set(leads) - refused
            assert marked in refused
            assert 0 < len(refused) < len(leads)

            def done(r: OutputReader) -> bool:
                overdue = {
                    k.split(":", 1)[1]
                    for k, b in r.latest_breaches().items()
                    if b["kind"] == "overdue"
                }
                return set(measured(r)) == accepted and overdue == refused

            assert await reader.until(done, timeout_s=120), (
                len(measured(reader)),
                len(reader.latest_breaches()),
            )
        finally:
            await asyncio.to_thread(client.shutdown)
            await asyncio.to_thread(bridge.close)
    breaches = reader.latest_breaches()
    assert {b["flow"] for b in breaches.values()} == {FLOW}
    assert {str(b["key"]) for b in breaches.values()} == refused
    assert all(b["status"] == "open" for b in breaches.values())
    assert bridge.stats.not_emitted == len(refused)
