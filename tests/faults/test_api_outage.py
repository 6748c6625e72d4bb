"""The API through a Kafka outage, with a worker and the simulator running: while the broker
is down ``/healthz`` stays 200, ``/readyz`` turns 503 naming what it waits for, and ``/v1/*``
answers from the last state, saying for how long it has been blind; once the broker is back
(same port) the same API process is ready again and serves fresh data, with no restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, ensure_topics
from tests.faults.figures import Row, record
from tests.integration.conftest import WorkerProcess, default_app_id, restartable_broker
from tests.integration.test_api_e2e import ApiProcess

__all__ = ["restartable_broker"]  # a fixture of the integration harness, used by name

SIM_SECONDS = 90
OUTAGE_S = 15
WAIT_S = 60.0
"""Longest wait for a state the API must reach (a bound on waiting, not a timed assertion)."""


def freshness(*argv: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *argv]


def env_for(bootstrap: str, home: Path) -> dict[str, str]:
    return dict(os.environ, FRESHNESS_KAFKA_BOOTSTRAP=bootstrap, FRESHNESS_HOME=str(home))


def get(api: ApiProcess, path: str) -> httpx.Response:
    return httpx.get(f"{api.url}{path}", timeout=10)


def wait_for(api: ApiProcess, what: str, done: Any) -> Any:
    """Poll ``done(api)`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert api.proc.poll() is None, api.log.read_text()[-3000:]
        found = done(api)
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"the API never showed {what}:\n{api.log.read_text()[-3000:]}")


def flows(api: ApiProcess) -> list[dict[str, Any]]:
    r = get(api, "/v1/flows")
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()["flows"]
    return result


def counted(api: ApiProcess) -> int:
    return sum(f["windows"]["last_24h"]["count"] for f in flows(api))


def stale_seconds(api: ApiProcess) -> float:
    """``freshness_api_kafka_stale_seconds`` from ``/metrics``."""
    r = get(api, "/metrics")
    assert r.status_code == 200, r.text
    for line in r.text.splitlines():
        if line.startswith("freshness_api_kafka_stale_seconds "):
            return float(line.split()[1])
    raise AssertionError("no freshness_api_kafka_stale_seconds in /metrics")


DATA_KEYS = ("as_of", "windows", "open_breaches", "pending", "oldest_pending_started_at")
"""What the flow views read from Kafka; ``stats.stale_partitions``, ``status`` and ``source``
also follow the wall clock (a gauge grows stale during the outage)."""


def data_of(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: f[k] for k in DATA_KEYS} for f in views]


def test_the_api_serves_its_last_state_through_a_kafka_outage(
    restartable_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    broker = restartable_broker
    bootstrap = broker.config.bootstrap
    app_id = default_app_id("apiout")
    specs = topics.required_topics(load_flows(None), app_id)
    asyncio.run(ensure_topics(KafkaConnection(bootstrap), specs, 8, 1))
    worker = WorkerProcess(bootstrap, tmp_path, app_id)
    worker.start()
    api = ApiProcess(bootstrap, tmp_path, "outage")
    argv = freshness("simulate", "--rate", "50", "--duration", f"{SIM_SECONDS}s", "--seed", "3")
    sim_log = (tmp_path / "simulate.log").open("wb")
    sim = subprocess.Popen(argv, env=env_for(bootstrap, tmp_path), stdout=sim_log, stderr=sim_log)
    try:
        api.wait_ready()
        wait_for(api, "measurements", lambda a: counted(a) > 0)
        check_outage(broker, api)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
        sim_log.close()
        api.stop()
        worker.stop()


def check_outage(broker: EmbeddedBroker, api: ApiProcess) -> None:
    broker.stop()
    stopped_at = int(time.time() * 1000)

    def unready(a: ApiProcess) -> dict[str, Any] | None:
        r = get(a, "/readyz")
        return r.json() if r.status_code == 503 else None

    body = wait_for(api, "/readyz 503", unready)
    assert body["ready"] is False
    assert len(body["waiting_for"]) == 1
    assert body["waiting_for"][0].startswith("kafka: unreachable since "), body
    assert get(api, "/healthz").status_code == 200

    first = flows(api)
    assert all(f["source"]["connected"] is False for f in first), first
    assert all(f["source"]["last_contact_at"] <= stopped_at for f in first), first
    time.sleep(2)
    second = flows(api)
    assert data_of(second) == data_of(first)  # the last state, frozen
    for a, b in zip(first, second, strict=True):
        assert b["source"]["stale_for_ms"] >= a["source"]["stale_for_ms"] + 1000
    for path in ("/v1/breaches", "/v1/alerts", "/v1/flows/lead_to_posthog", "/"):
        assert get(api, path).status_code == 200, path
    assert stale_seconds(api) > 0
    frozen = counted(api)
    time.sleep(max(0.0, OUTAGE_S - (time.time() * 1000 - stopped_at) / 1000))

    broker.start(timeout_s=120)  # the same port
    wait_for(api, "/readyz 200 after the outage", lambda a: get(a, "/readyz").status_code == 200)
    wait_for(api, "fresh measurements", lambda a: counted(a) > frozen)
    after = flows(api)
    assert all(f["source"]["connected"] is True for f in after), after
    assert all(f["source"]["stale_for_ms"] == 0 for f in after), after
    assert all(f["source"]["last_contact_at"] > stopped_at for f in after), after
    assert stale_seconds(api) == 0
    assert api.proc.poll() is None  # the same process throughout: no restart
    record(
        Row(
            fault="API through a Kafka outage",
            injected=1,
            detail=f"{OUTAGE_S} s broker stop: /readyz 503, /v1 frozen and marked stale, "
            f"then {counted(api) - frozen} new measurements without a restart",
            test="tests/faults/test_api_outage.py",
        )
    )
