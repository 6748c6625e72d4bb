"""``freshness simulate`` with the PostHog flows' completions captured through the real
posthog SDK and the bridge (against the capture endpoint run as ``freshness up`` runs it)
and one flow's completions through the API's receiver, then ``freshness score``: with every
fault injected, every precision and recall is still 1.000, because the truth records when
PostHog actually answered, not when the event was planned."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.broker.process import free_port
from streams.process import Child
from streams.simulate.truth import read_truth
from tests.integration.posthog_harness import (  # noqa: F401  (fixtures)
    INGEST_TOKEN,
    ReceiverApi,
    receiver_api,
)
from tests.integration.test_simulate_score import FAULTS, cli

pytestmark = pytest.mark.integration

SIM_SECONDS = 25


def capture_endpoint(tmp_path: Path) -> tuple[Child, str]:
    port = free_port()
    argv = [sys.executable, "-m", "streams.testing.peers.posthog", "--port", str(port)]
    child = Child("posthog capture", argv, tmp_path / "capture.log", {})
    child.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/", timeout=1)
            return child, url
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"the capture endpoint did not start: {child.tail()}")


def test_simulate_through_the_sdk_and_the_receiver_then_score_is_perfect(
    workers: Any,
    funnel_topics: str,
    tmp_path: Path,
    receiver_api: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers()
    api: ReceiverApi = receiver_api(funnel_topics)
    capture, url = capture_endpoint(tmp_path)
    monkeypatch.setenv("FRESHNESS_INGEST_TOKEN", INGEST_TOKEN)
    truth_path = tmp_path / "truth.jsonl"
    try:
        sim = cli(
            funnel_topics,
            tmp_path,
            "simulate",
            *("--rate", "60", "--duration", f"{SIM_SECONDS}s", "--seed", "7"),
            *("--truth", str(truth_path)),
            *("--posthog-host", url, "--receiver-url", api.url),
            *[x for pair in FAULTS.items() for x in pair],
            timeout=SIM_SECONDS + 90,
        )
    finally:
        capture.stop()
    assert sim.returncode == 0, sim.stderr[-4000:]
    truth = read_truth(truth_path)
    assert truth.summary is not None
    assert truth.header["paths"]["receiver_topic"] == "funnel.notification.acknowledged"
    posthog = [s for s in truth.starts if s.flow.endswith("_posthog") and s.lag_ms is not None]
    assert posthog, "PostHog completions went through the SDK"
    assert {s.outcome for s in truth.starts} == {"on_time", "late", "overdue"}

    score = cli(
        funnel_topics, tmp_path, "score", "--truth", str(truth_path), "--wait", "60", timeout=180
    )
    print(score.stdout)
    assert score.returncode == 0, score.stdout + score.stderr
    assert "PASS: every precision and recall is 1.000" in score.stdout
