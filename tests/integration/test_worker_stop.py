"""SIGTERM stops a worker within the session timeout even while Kafka is down, and the
worker's state is whole afterwards (a restart with Kafka back finishes the job)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, ensure_topics
from tests.integration.conftest import WorkerProcess, default_app_id

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 10.0  # the default FRESHNESS_SESSION_TIMEOUT_MS
MARGIN_S = 5.0


def test_sigterm_stops_the_worker_while_kafka_is_down(
    restartable_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    broker = restartable_broker
    bootstrap = broker.config.bootstrap
    app_id = default_app_id("stop")
    specs = topics.required_topics(load_flows(None), app_id)
    asyncio.run(ensure_topics(KafkaConnection(bootstrap), specs, 8, 1))
    worker = WorkerProcess(bootstrap, tmp_path, app_id)
    worker.start()
    try:
        broker.stop()
        time.sleep(3)  # the clients notice and start reconnecting
        assert worker.proc is not None
        began = time.monotonic()
        os.killpg(worker.proc.pid, signal.SIGTERM)
        worker.proc.wait(SESSION_TIMEOUT_S + MARGIN_S)
        took = time.monotonic() - began
        print(f"stopped {took:.1f} s after SIGTERM with Kafka down (exit {worker.proc.returncode})")
        broker.start(timeout_s=120)
        again = WorkerProcess(bootstrap, tmp_path, app_id, worker_id="0")
        again.start()  # same state directory: the lock was released, RocksDB opens
        again.stop()
    finally:
        worker.stop()
