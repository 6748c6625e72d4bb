"""A 20 s broker outage in the middle of live traffic, with the whole stack running: a
worker, ``freshness api``, ``freshness alerter`` paging the local PagerDuty peer, and
``freshness simulate``. The broker comes back on the same port and nothing is restarted:

* the final outcomes equal the truth (``freshness score``), and no on-time start ever had a
  breach record (the watermark stands still while the worker cannot read, then catches up);
* every page names only starts the truth says were really overdue (no page for an on-time
  start);
* each process reconnected by itself: after the outage a probe start on a flow of its own
  pages ``stuck`` and its late completion resolves it (worker, alerter and PagerDuty), and
  the API is ready with the open breaches the truth has;
* the worker's log grows by fewer than 50 lines a second while the broker is down.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.broker.process import EmbeddedBroker
from streams.core.model import Flow
from streams.flows.config import load_flows
from streams.simulate.truth import Truth
from streams.testing.peers.pagerduty import PagerDutyPeer
from streams.testing.records import valid_record
from tests.faults import figures
from tests.faults.support import (
    ApiProcess,
    Simulation,
    create_topics,
    fault_broker,
    log_lines,
    run_score,
)
from tests.integration.alerting_support import (
    WORKING_MARK,
    AlerterProcess,
    alerter_env,
    eventually,
)
from tests.integration.conftest import WorkerProcess, produce

__all__ = ["fault_broker"]  # a fixture, used by name

APP = "outage"
SIM_SECONDS = 60
RATE = 100
OUTAGE_AT_S = 15
OUTAGE_S = 20
MAX_LOG_LINES_PER_S = 50
DEFAULT_FLOWS = Path(__file__).resolve().parents[2] / "streams" / "flows" / "default.yaml"
PROBE_FLOW = """
  - name: fault_probe
    start: {topic: test.faults.probe.start, key: id}
    completion: {topic: test.faults.probe.done, key: id}
    target: 2s
    objective: 0.99
"""


def stack_flows(tmp_path: Path) -> Path:
    """The default flows plus ``fault_probe``, which the simulator never writes to."""
    path = tmp_path / "flows.yaml"
    path.write_text(DEFAULT_FLOWS.read_text() + PROBE_FLOW)
    return path


def probe_record(flow: Flow, side: str, at: int) -> tuple[str, bytes, bytes]:
    topic = flow.start_topic if side == "start" else flow.end_topic
    value = valid_record(flow, side, "probe-1", f"probe-1-{side}", at)
    return topic, b"probe-1", orjson.dumps(value)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_the_stack_rides_out_a_broker_restart(
    fault_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    broker = fault_broker
    bootstrap = broker.config.bootstrap
    flows = stack_flows(tmp_path)
    await create_topics(bootstrap, APP, flows)
    worker = WorkerProcess(bootstrap, tmp_path, APP, flows=flows)
    api = ApiProcess(bootstrap, tmp_path, APP, flows)
    async with PagerDutyPeer() as pd:
        alerter = AlerterProcess(
            bootstrap, tmp_path, APP, **alerter_env(APP, flows, pd.enqueue_url, None)
        )
        try:
            worker.start(wait=False)
            api.start()
            alerter.start()
            await asyncio.to_thread(worker.wait_ready)
            await alerter.wait_for(WORKING_MARK)
            await asyncio.to_thread(api.wait_ready)
            await check_outage(broker, worker, api, alerter, pd, tmp_path)
        finally:
            alerter.stop()
            api.stop()
            worker.stop()


async def check_outage(
    broker: EmbeddedBroker,
    worker: WorkerProcess,
    api: ApiProcess,
    alerter: AlerterProcess,
    pd: PagerDutyPeer,
    tmp_path: Path,
) -> None:
    bootstrap = broker.config.bootstrap
    sim = Simulation.of(
        bootstrap,
        tmp_path,
        rate=RATE,
        seconds=SIM_SECONDS,
        seed=7,
        faults="--late 0.02 --missing 0.01 --duplicate 0.01",
    )
    sim.start()
    try:
        await asyncio.sleep(OUTAGE_AT_S)
        await asyncio.to_thread(broker.stop)
        before = log_lines(worker.log_path)
        await asyncio.sleep(OUTAGE_S)
        growth = log_lines(worker.log_path) - before
        await asyncio.to_thread(lambda: broker.start(timeout_s=120))  # the same port
        truth = await asyncio.to_thread(sim.wait, SIM_SECONDS + 120)
    finally:
        sim.stop()
    assert truth.summary is not None
    assert truth.summary["records_sent"] > SIM_SECONDS * RATE * 0.7
    for name, proc in (("worker", worker.proc), ("api", api.child.proc)):
        assert proc is not None
        assert proc.poll() is None, f"{name} died"
    paged_after = await probe_pages(bootstrap, flows_of(tmp_path), pd, alerter)
    score = await asyncio.to_thread(run_score, bootstrap, tmp_path, sim.truth_path)
    assert score.passed, score.text
    assert score.false_overdue == 0, score.text
    await check_api(api, score.expected("overdue"))
    wrong_pages = pages_for_on_time_starts(pd, truth)
    assert wrong_pages == [], wrong_pages
    rate = growth / OUTAGE_S
    print(f"worker log grew {growth} lines ({rate:.1f}/s) during the {OUTAGE_S} s outage")
    assert rate < MAX_LOG_LINES_PER_S, worker.tail()
    figures.record(
        figures.Row(
            fault=f"broker stopped {OUTAGE_S} s mid-stream, whole stack",
            injected=1,
            outcomes_checked=score.starts,
            outcomes_lost=score.missed,
            false_overdue=score.false_overdue,
            detail=(
                f"worker log {rate:.1f} lines/s while down; {len(pd.events())} pages, "
                f"none for an on-time start; probe paged {paged_after / 1000:.1f} s after due"
            ),
            test="test_the_stack_rides_out_a_broker_restart",
        )
    )


def flows_of(tmp_path: Path) -> dict[str, Flow]:
    return {f.name: f for f in load_flows(tmp_path / "flows.yaml")}


async def probe_pages(
    bootstrap: str, flows: dict[str, Flow], pd: PagerDutyPeer, alerter: AlerterProcess
) -> int:
    """A start on ``fault_probe`` after the outage pages ``stuck``, and its late completion
    resolves it: worker, alerter and PagerDuty are connected again. Returns how long after
    the alert was due the page arrived (ms)."""
    probe = flows["fault_probe"]
    stuck = f"{APP}/fault_probe/stuck"
    started = now_ms()
    await produce(bootstrap, [probe_record(probe, "start", started)])
    due = started + 2 * probe.target_ms  # the deadline, then `after` (the target)

    def probe_actions() -> list[str]:
        return [e["event_action"] for e in pd.events() if e["dedup_key"] == stuck]

    assert await eventually(lambda: probe_actions() == ["trigger"], 60), alerter.tail()
    paged = next(r.arrived_at for r in pd.requests if r.json().get("dedup_key") == stuck)
    await produce(bootstrap, [probe_record(probe, "end", now_ms())])
    assert await eventually(lambda: probe_actions() == ["trigger", "resolve"], 60), alerter.tail()
    return int(paged - due)


async def check_api(api: ApiProcess, open_overdue: int) -> None:
    """The API reconnected by itself: ready, fresh stats, and as many open breaches as the
    truth has overdue starts (the probe's breach is closed late)."""

    def caught_up() -> bool:
        if not api.ready():
            return False
        views = api.get("/v1/flows")["flows"]
        fresh = all(not v["stats"]["stale_partitions"] for v in views)
        return fresh and sum(v["open_breaches"] for v in views) == open_overdue

    if not await eventually(lambda: caught_up(), 30, step_s=0.5):
        pytest.fail(f"the API did not catch up: {api.get('/v1/flows')}\n{api.child.tail()}")


def pages_for_on_time_starts(pd: PagerDutyPeer, truth: Truth) -> list[Any]:
    """Keys named by any trigger (``stuck`` lists its oldest open overdue starts) whose start
    the truth says completed on time."""
    on_time = {s.key for s in truth.starts if s.outcome == "on_time"}
    wrong = []
    for event in pd.events():
        if event["event_action"] != "trigger":
            continue
        details = event["payload"].get("custom_details", {})
        wrong += [o["key"] for o in details.get("oldest", []) if o["key"] in on_time]
    return wrong
