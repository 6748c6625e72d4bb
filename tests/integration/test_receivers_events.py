"""``POST /v1/events/{topic}`` on a real API process over a real broker, judged by a real
worker: a mixed batch with one bad record is refused whole (422 naming it, nothing written),
the good records are measured exactly as sent, a retried POST is harmless; and schemathesis
finds no 5xx on the receivers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams import topics
from streams.core.timeparse import format_event_time
from tests.integration.conftest import OutputReader
from tests.integration.posthog_harness import (  # noqa: F401  (fixtures)
    INGEST_TOKEN,
    WEBHOOK_SECRET,
    ReceiverApi,
    now_ms,
    read_topic,
    receiver_api,
    until_written,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FLOW = "approval_to_notification"


async def test_a_mixed_batch_is_refused_whole_and_the_good_one_is_measured_once(
    workers: Any,
    funnel_topics: str,
    reader: OutputReader,
    prefix: str,
    receiver_api: Callable[..., ReceiverApi],  # noqa: F811
) -> None:
    workers()
    api = receiver_api(funnel_topics)
    keys = [f"{prefix}-A{i}" for i in range(5)]
    base = now_ms() - 30_000
    starts = [
        {"event_id": f"{k}-s", "approval_id": k, "occurred_at": format_event_time(base + i)}
        for i, k in enumerate(keys)
    ]
    r = until_written(lambda: api.events(topics.APPROVAL_REQUESTED, starts))
    assert r.status_code == 202, r.text
    acks = [
        {
            "event_id": f"{k}-c",
            "approval_id": k,
            "occurred_at": base + 1_000 * (i + 1),
            "channel": "email",
        }
        for i, k in enumerate(keys)
    ]
    mixed = [*acks[:2], {"event_id": f"{prefix}-bad", "occurred_at": base}, *acks[2:]]
    refused = api.events(topics.NOTIFICATION_ACKNOWLEDGED, mixed)
    assert refused.status_code == 422
    (bad,) = refused.json()["error"]["detail"]
    assert (bad["index"], bad["reason"]) == (2, "missing_key")
    assert await read_topic(funnel_topics, topics.NOTIFICATION_ACKNOWLEDGED) == []

    for _ in range(2):  # the client retries: harmless
        ok = api.events(topics.NOTIFICATION_ACKNOWLEDGED, acks)
        assert ok.status_code == 202, ok.text
        assert ok.json() == {
            "topic": topics.NOTIFICATION_ACKNOWLEDGED,
            "records": 5,
            "events": 5,
            "unmatched": 0,
        }

    def ours(r: OutputReader) -> list[dict[str, Any]]:
        return [m for m in r.of(topics.MEASUREMENTS) if m["flow"] == FLOW]

    assert await reader.until(lambda r: len(ours(r)) >= 5, timeout_s=120)
    await reader.poll(2.0)
    got = {str(m["key"]): m for m in ours(reader)}
    assert len(ours(reader)) == 5
    for i, k in enumerate(keys):
        assert (got[k]["lag_ms"], got[k]["on_time"]) == (1_000 * (i + 1) - i, True)
    written = await read_topic(funnel_topics, topics.NOTIFICATION_ACKNOWLEDGED)
    assert sorted(key for key, _ in written) == sorted(k.encode() for k in keys * 2)


def test_schemathesis_finds_no_server_error_on_the_receivers(
    funnel_topics: str,
    receiver_api: Callable[..., ReceiverApi],  # noqa: F811
    tmp_path: Path,
) -> None:
    api = receiver_api(funnel_topics)
    assert until_written(lambda: api.events(topics.APPROVAL_REQUESTED, [])).status_code == 422
    argv = [
        str(ROOT / ".venv/bin/schemathesis"),
        "run",
        f"{api.url}/openapi.json",
        "--include-path-regex",
        "^/v1/(events|webhooks)/",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,response_headers_conformance",
        "--max-examples",
        os.environ.get("RECEIVERS_MAX_EXAMPLES", "150"),
        "--seed",
        "11",
        "--workers",
        "1",
        "-H",
        f"Authorization: Bearer {INGEST_TOKEN}",
        "-H",
        f"X-Freshness-Webhook-Secret: {WEBHOOK_SECRET}",
    ]
    env = dict(
        os.environ, SCHEMATHESIS_HOOKS="tests.integration.receivers_hooks", PYTHONPATH=str(ROOT)
    )
    run = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    print(run.stdout[-4000:])
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Selected: 2/" in run.stdout  # both receivers were fuzzed
