"""What pages, end to end on the real broker: input records, a real ``freshness worker``, a
real ``freshness alerter``, the local PagerDuty peer.

* missing completions on one flow: exactly one incident (one dedup key) for that flow's
  ``stuck`` alert within 2 s of it being due; the late completions resolve it once;
  nothing at all for the flows that stayed on time;
* 30 % late starts on one flow for two minutes (objective 0.99): the 14.4x tier fires;
  back to on time, it resolves once the short window recovers (its burn rate falls below
  14.4 while the hour's is still above). The test's flows file shortens the short window
  to 1 minute (``alerts:``); the math is the default's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.model import Flow
from streams.flows.config import load_flows
from streams.stats.records import MINUTE_MS
from streams.testing.peers.pagerduty import PagerDutyPeer
from streams.testing.records import valid_record
from tests.integration.alerting_support import (
    WORKING_MARK,
    AlerterProcess,
    alert_broker,
    alerter_env,
    create_topics,
    eventually,
    now_ms,
    read_outbox,
)
from tests.integration.conftest import READY_MARK, WorkerProcess, produce

__all__ = ["alert_broker"]  # a fixture, used by name

FLOWS = {f.name: f for f in load_flows(None)}
LEAD = FLOWS["lead_to_posthog"]
DUE_WITHIN_MS = 2_000


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for proc in reversed(started):
        proc.stop()


async def start_worker(bootstrap: str, home: Path, app_id: str, flows: Path | None) -> Any:
    worker = WorkerProcess(bootstrap, home, app_id, flows=flows)
    worker.start(wait=False)
    deadline = time.monotonic() + 90
    while READY_MARK not in worker.log_path.read_text(errors="replace"):
        if worker.proc is not None and worker.proc.poll() is not None:
            pytest.fail(f"worker exited:\n{worker.tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"worker not ready:\n{worker.tail()}")
        await asyncio.sleep(0.2)
    return worker


def record(flow: Flow, side: str, key: str, at: int) -> tuple[str, bytes, bytes]:
    topic = flow.start_topic if side == "start" else flow.end_topic
    event_id = f"{key}-{'s' if side == 'start' else 'c'}"
    return topic, key.encode(), orjson.dumps(valid_record(flow, side, key, event_id, at))


def actions(pd: PagerDutyPeer) -> list[tuple[str, str]]:
    return [(e["dedup_key"], e["event_action"]) for e in pd.events()]


async def test_missing_completions_page_once_when_due_and_resolve_once_when_they_come(
    alert_broker: str, tmp_path: Path, processes: list[Any]
) -> None:
    app = "stuckapp"
    await create_topics(alert_broker, None, app)
    async with PagerDutyPeer() as pd:
        processes.append(await start_worker(alert_broker, tmp_path, app, None))
        alerter = AlerterProcess(
            alert_broker, tmp_path, app, **alerter_env(app, None, pd.enqueue_url, None)
        )
        processes.append(alerter)
        alerter.start()
        await alerter.wait_for(WORKING_MARK)
        started = now_ms()
        missing = [record(LEAD, "start", f"lead-{i}", started) for i in range(3)]
        on_time = [
            rec
            for flow in FLOWS.values()
            for i in range(3)
            for rec in (
                record(flow, "start", f"{flow.name}-ok-{i}", started),
                record(flow, "end", f"{flow.name}-ok-{i}", started + 100),
            )
        ]
        await produce(alert_broker, [*missing, *on_time])
        stuck = f"{app}/lead_to_posthog/stuck"
        due = started + LEAD.target_ms + LEAD.target_ms  # the deadline, then `after`
        assert await eventually(lambda: bool(pd.events()), 30), alerter.tail()
        paged = pd.requests[0].arrived_at
        assert actions(pd) == [(stuck, "trigger")]
        assert 0 <= paged - due <= DUE_WITHIN_MS, paged - due

        late = [record(LEAD, "end", f"lead-{i}", now_ms()) for i in range(3)]
        await produce(alert_broker, late)
        assert await eventually(lambda: len(pd.events()) >= 2, 15), alerter.tail()
        await asyncio.sleep(3.0)  # anything more would arrive by now
    assert actions(pd) == [(stuck, "trigger"), (stuck, "resolve")]
    [incident] = pd.incidents.values()
    assert (incident.dedup_key, incident.opened, incident.status) == (stuck, 1, "resolved")
    details = pd.events()[0]["payload"]["custom_details"]
    assert details["open_overdue"] == 3
    print(f"stuck paged {paged - due} ms after it was due")


BURN_FLOWS = """\
flows:
  - name: lead_to_posthog
    start: {topic: funnel.lead.captured, key: lead_id}
    completion:
      topic: funnel.posthog.ingested
      key: source_id
      filter: 'source == "lead.captured"'
    target: 5s
    objective: 0.99
    alerts:
      page-fast: {short_window: 1m}
      page-slow: false
      ticket: false
      stuck: false
"""


def history(flow: Flow, ends: int, seconds: int, every_ms: int) -> list[Any]:
    """``seconds`` of starts (event time) whose completions all lie before ``ends``, one
    every ``every_ms``: three in ten late by 2 s past the target, the rest 1 s after their
    start; in event-time order."""
    events: list[tuple[int, tuple[str, bytes, bytes]]] = []
    first = ends - seconds * 1000
    for n, at in enumerate(range(first, ends - flow.target_ms - 2_000, every_ms)):
        key = f"burn-{n}"
        lag = flow.target_ms + 2_000 if n % 10 < 3 else 1_000
        events.append((at, record(flow, "start", key, at)))
        events.append((at + lag, record(flow, "end", key, at + lag)))
    events.sort(key=lambda e: e[0])
    return [rec for _, rec in events]


async def on_time_traffic(bootstrap: str, flow: Flow, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        at = now_ms() - 500
        key = f"live-{n}"
        await produce(
            bootstrap, [record(flow, "start", key, at), record(flow, "end", key, at + 200)]
        )
        n += 1
        await asyncio.sleep(0.25)


async def test_thirty_percent_late_for_two_minutes_pages_fast_until_the_short_window_recovers(
    alert_broker: str, tmp_path: Path, processes: list[Any]
) -> None:
    app = "burnapp"
    flows = tmp_path / "flows.yaml"
    flows.write_text(BURN_FLOWS)
    await create_topics(alert_broker, flows, app)
    async with PagerDutyPeer() as pd:
        processes.append(await start_worker(alert_broker, tmp_path, app, flows))
        alerter = AlerterProcess(
            alert_broker, tmp_path, app, **alerter_env(app, flows, pd.enqueue_url, None)
        )
        processes.append(alerter)
        alerter.start()
        await alerter.wait_for(WORKING_MARK)
        # The 1 min short window is the minute in progress: start 5 to 45 s into one, so
        # that it holds late completions and fires before the minute is over.
        while not 5_000 <= now_ms() % MINUTE_MS <= 45_000:
            await asyncio.sleep(0.2)
        records = history(LEAD, now_ms() - 1_000, 120, 250)
        await produce(alert_broker, records)
        stop = asyncio.Event()
        live = asyncio.create_task(on_time_traffic(alert_broker, LEAD, stop))
        fast = f"{app}/lead_to_posthog/page-fast"
        try:
            assert await eventually(lambda: bool(pd.events()), 30), alerter.tail()
            assert actions(pd) == [(fast, "trigger")]
            assert await eventually(lambda: len(pd.events()) >= 2, 90), alerter.tail()
            await asyncio.sleep(3.0)
        finally:
            stop.set()
            await live
        outbox = await read_outbox(alert_broker)
    assert actions(pd) == [(fast, "trigger"), (fast, "resolve")]
    fired = pd.events()[0]["payload"]["custom_details"]
    assert (fired["long"]["window_ms"], fired["short"]["window_ms"]) == (3_600_000, 60_000)
    assert fired["long"]["burn_rate"] > 14.4
    assert fired["short"]["burn_rate"] > 14.4
    assert fired["long"]["bad"] >= fired["min_bad"]
    # It resolved because the short window recovered (on-time starts diluted it below the
    # factor), while the long window still burned faster than 14.4x.
    cleared = outbox.states[fast].event
    assert cleared.status == "resolved"
    short, long = cleared.details["short"], cleared.details["long"]
    assert isinstance(short, dict)
    assert isinstance(long, dict)
    assert short["burn_rate"] <= 14.4 < long["burn_rate"]
    print(
        f"page-fast fired at {fired['long']['burn_rate']:.1f}x (1 h) and "
        f"{fired['short']['burn_rate']:.1f}x (1 min); resolved at {short['burn_rate']:.1f}x "
        f"(1 min) with the hour still at {long['burn_rate']:.1f}x"
    )
