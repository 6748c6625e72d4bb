"""A 20 s broker outage in the middle of live traffic: the worker and the simulator
reconnect by themselves, the final outcomes equal the truth, and no on-time start is ever
declared overdue (the watermark stands still while the worker cannot read, then catches
up), which ``freshness score`` checks through every breach record ever written."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, ensure_topics
from streams.simulate.truth import read_truth
from tests.integration.conftest import WorkerProcess, default_app_id

pytestmark = pytest.mark.integration

SIM_SECONDS = 60
OUTAGE_AT_S = 15
OUTAGE_S = 20


def freshness(*argv: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *argv]


def log_lines(worker: WorkerProcess) -> int:
    return len(worker.log_path.read_bytes().splitlines())


def env_for(bootstrap: str, home: Path) -> dict[str, str]:
    return dict(os.environ, FRESHNESS_KAFKA_BOOTSTRAP=bootstrap, FRESHNESS_HOME=str(home))


def test_a_broker_outage_raises_no_false_overdue(
    restartable_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    broker = restartable_broker
    bootstrap = broker.config.bootstrap
    app_id = default_app_id("outage")
    specs = topics.required_topics(load_flows(None), app_id)
    asyncio.run(ensure_topics(KafkaConnection(bootstrap), specs, 8, 1))
    worker = WorkerProcess(bootstrap, tmp_path, app_id)
    worker.start()
    try:
        check_outage(broker, worker, tmp_path)
    finally:
        worker.stop()


def check_outage(broker: EmbeddedBroker, worker: WorkerProcess, tmp_path: Path) -> None:
    bootstrap = broker.config.bootstrap
    truth_path = tmp_path / "truth.jsonl"
    argv = freshness("simulate", "--rate", "100")
    argv += ["--duration", f"{SIM_SECONDS}s", "--seed", "7", "--truth", str(truth_path)]
    argv += ["--late", "0.02", "--missing", "0.01", "--duplicate", "0.01"]
    sim_log = (tmp_path / "simulate.log").open("wb")
    sim = subprocess.Popen(argv, env=env_for(bootstrap, tmp_path), stdout=sim_log, stderr=sim_log)
    try:
        time.sleep(OUTAGE_AT_S)
        broker.stop()
        lines_before = log_lines(worker)
        time.sleep(OUTAGE_S)
        log_growth = log_lines(worker) - lines_before
        broker.start(timeout_s=120)  # the same port: nothing else may hold it meanwhile
        assert sim.wait(SIM_SECONDS + 120) == 0, (tmp_path / "simulate.log").read_text()
    finally:
        if sim.poll() is None:
            sim.kill()
        sim_log.close()
    assert worker.proc is not None
    assert worker.proc.poll() is None, worker.tail()
    truth = read_truth(truth_path)
    assert truth.summary is not None
    assert truth.summary["records_sent"] > SIM_SECONDS * 100 * 0.7
    score = subprocess.run(
        [*freshness("score"), "--truth", str(truth_path), "--wait", "90"],
        env=env_for(bootstrap, tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(score.stdout)
    assert score.returncode == 0, score.stdout + score.stderr
    assert "PASS: every precision and recall is 1.000" in score.stdout
    assert "has a breach record" not in score.stdout  # no on-time start was ever overdue
    print(f"worker log grew {log_growth} lines during the {OUTAGE_S} s outage")
    assert log_growth < 50 * OUTAGE_S, worker.tail()
