"""Delivery by real ``freshness alerter`` processes on the real broker, to the local
PagerDuty peer and a real Alertmanager: a throttling, failing PagerDuty; ten ``kill -9`` s;
a leader replica killed with deliveries owed.

The breaches are written as the worker writes them (``alerting_support.write_breaches``),
so what is due when is exact; ``test_alerting.py`` runs the real worker.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.testing.peers.alertmanager import AlertmanagerProcess, get_alerts
from streams.testing.peers.pagerduty import PagerDutyPeer
from streams.testing.peers.server import Answer
from tests.integration.alerting_support import (
    LEADS_MARK,
    SESSION_MS,
    WORKING_MARK,
    AlerterProcess,
    alert_broker,
    alerter_env,
    alertmanager,
    breach,
    create_topics,
    eventually,
    now_ms,
    read_outbox,
    shared_topic_flows,
    write_breaches,
)

__all__ = ["alert_broker", "alertmanager"]  # fixtures used by name

RATE = 120
"""PagerDuty's budget per routing key and minute."""


@pytest.fixture
def alerters(tmp_path: Path) -> Iterator[list[AlerterProcess]]:
    started: list[AlerterProcess] = []
    yield started
    for proc in started:
        proc.stop()


def stuck_id(app_id: str, flow: str) -> str:
    return f"{app_id}/{flow}/stuck"


async def test_a_throttling_then_failing_pagerduty_gets_every_trigger_at_120_a_minute(
    alert_broker: str, tmp_path: Path, alerters: list[AlerterProcess]
) -> None:
    """130 stuck alerts at once; the first request is answered 429 (Retry-After 1 s), the
    next two 500: every trigger arrives, once each, and no 60 s holds more than 120
    requests (the 121st waits for the first to leave the window)."""
    flows = shared_topic_flows(tmp_path / "flows.yaml", 130)
    await create_topics(alert_broker, flows, "rate")
    async with PagerDutyPeer() as pd:
        pd.cue(Answer.of_json(429, {"status": "throttled"}, **{"Retry-After": "1"}))
        pd.cue(Answer.of_json(500, {"status": "error"}), times=2)
        proc = AlerterProcess(
            alert_broker, tmp_path, "rate", **alerter_env("rate", flows, pd.enqueue_url, None)
        )
        alerters.append(proc)
        proc.start()
        await proc.wait_for(LEADS_MARK)
        deadline = now_ms() - 60_000
        await write_breaches(alert_broker, [breach(f"f{i:03d}", "e", deadline) for i in range(130)])

        def all_open() -> bool:
            return sum(i.status == "triggered" for i in pd.incidents.values()) == 130

        assert await eventually(all_open, 100), (len(pd.incidents), proc.tail())
        await asyncio.sleep(1.0)
    statuses = [r.status for r in pd.requests]
    assert statuses[:3] == [429, 500, 500]
    assert statuses[3:] == [202] * 130
    assert {i.dedup_key for i in pd.incidents.values()} == {
        stuck_id("rate", f"f{i:03d}") for i in range(130)
    }
    assert all(i.opened == 1 and i.triggers == 1 for i in pd.incidents.values())
    arrivals = sorted(r.arrived_at for r in pd.requests)
    gaps = [arrivals[i + RATE] - arrivals[i] for i in range(len(arrivals) - RATE)]
    # The limiter spaces sends by >= 60 s; arrival times carry the loopback's jitter.
    assert min(gaps) >= 60_000 - 250, min(gaps)


async def test_ten_kill_9s_end_in_the_states_of_a_run_without_kills(
    alert_broker: str,
    tmp_path: Path,
    alerters: list[AlerterProcess],
    alertmanager: AlertmanagerProcess,
) -> None:
    """Two deployments judge the same breaches: ``calm`` runs undisturbed, ``kill`` is
    killed with SIGKILL ten times at random moments (mostly while it leads, sometimes while
    it starts) as stuck alerts trigger and resolve. At the end PagerDuty and Alertmanager
    have the same alerts open for both, each deployment's open alerts are exactly those
    its outbox says fire, and no incident was opened twice."""
    rng = random.Random(20261201)
    flows = shared_topic_flows(tmp_path / "flows.yaml", 12)
    for app in ("calm", "kill"):
        await create_topics(alert_broker, flows, app)
    async with PagerDutyPeer() as pd:
        pd.cue(None, times=1_000_000, delay_s=0.1)  # a slow peer: kills land mid-request
        procs = {}
        for app in ("calm", "kill"):
            env = alerter_env(app, flows, pd.enqueue_url, alertmanager.url)
            procs[app] = AlerterProcess(alert_broker, tmp_path, app, **env)
            alerters.append(procs[app])
            procs[app].start()
        for proc in procs.values():
            await proc.wait_for(WORKING_MARK, timeout_s=90)
        schedule, final = _stuck_schedule(rng, 12, span_s=34.0)
        writer = asyncio.create_task(_play(alert_broker, schedule))
        victim = procs["kill"]
        working = victim.count(WORKING_MARK)
        for _ in range(10):
            if rng.random() < 0.75:  # mostly while it leads; else while it starts or joins
                await victim.wait_for(WORKING_MARK, times=working + 1, timeout_s=30)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            victim.kill9()
            working = victim.count(WORKING_MARK)
            victim.start()
        await writer
        await victim.wait_for(WORKING_MARK, times=working + 1, timeout_s=30)  # the last one
        firing = _firing(final)

        async def settled() -> bool:
            open_at = [_open(pd, app) for app in ("calm", "kill")]
            shown = [await _alertmanager_firing(alertmanager, app) for app in ("calm", "kill")]
            return open_at == shown == [firing, firing]

        if not await eventually(settled, 30, step_s=0.3):
            seen = {
                app: (_pagerduty_states(pd, app), await _alertmanager_firing(alertmanager, app))
                for app in ("calm", "kill")
            }
            pytest.fail(f"want open {firing}; got {seen}\n{victim.tail(100)}")
        outbox = await read_outbox(alert_broker)
    assert victim.starts == 11
    for app in ("calm", "kill"):
        fires = {s.event.flow for s in outbox.firing() if s.alert_id.startswith(f"{app}/")}
        assert fires == firing, (app, fires)
        opened = {k: i.opened for k, i in pd.incidents.items() if k.startswith(f"{app}/")}
        assert set(opened.values()) <= {1}, opened
    unseen = set(final) - set(_pagerduty_states(pd, "kill"))
    assert unseen <= set(final) - firing  # only an episode over before anyone judged it
    print(f"kill: {len(unseen)} of {len(final)} episodes began and ended between two alerters")


def _stuck_schedule(
    rng: random.Random, flows: int, span_s: float
) -> tuple[list[tuple[float, object]], dict[str, str]]:
    """Per flow one entity overdue at a random moment, two thirds of them late (closed)
    8 to 12 s later: (seconds from now, breach) in time order, and each flow's final
    PagerDuty state. An episode lasts longer than an alerter is down between a kill and
    its successor's first evaluation (about 3 to 5 s here), so each is seen; one that
    began and ended while no alerter ran would never be paged (there is nobody to see
    it, as with any evaluated alert rule)."""
    plan: list[tuple[float, object]] = []
    final: dict[str, str] = {}
    deadline = now_ms() - 60_000
    for i in range(flows):
        flow = f"f{i:03d}"
        opens = rng.uniform(0.5, span_s - 12.0)
        plan.append((opens, breach(flow, "e", deadline)))
        if i % 3:
            closes = opens + rng.uniform(8.0, 12.0)
            plan.append((closes, breach(flow, "e", deadline, late_at=deadline + 70_000)))
            final[flow] = "resolved"
        else:
            final[flow] = "triggered"
    return sorted(plan, key=lambda p: p[0]), final


async def _play(bootstrap: str, plan: list[tuple[float, object]]) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    for at, record in plan:
        await asyncio.sleep(max(0.0, began + at - loop.time()))
        await write_breaches(bootstrap, [record])  # type: ignore[list-item]


def _pagerduty_states(pd: PagerDutyPeer, app: str) -> dict[str, str]:
    prefix = f"{app}/"
    return {
        key.split("/")[1]: inc.status for key, inc in pd.incidents.items() if key.startswith(prefix)
    }


def _open(pd: PagerDutyPeer, app: str) -> set[str]:
    return {flow for flow, status in _pagerduty_states(pd, app).items() if status == "triggered"}


def _firing(final: dict[str, str]) -> set[str]:
    return {flow for flow, status in final.items() if status == "triggered"}


async def _alertmanager_firing(am: AlertmanagerProcess, app: str) -> set[str]:
    shown = await get_alerts(am.url)
    return {
        a["labels"]["flow"]
        for a in shown
        if a["labels"]["alert_id"].startswith(f"{app}/") and a["status"]["state"] == "active"
    }


def _leads(proc: AlerterProcess) -> bool:
    text = proc.text()
    return text.rfind(LEADS_MARK) > text.rfind("no longer leads")


async def test_a_standby_replica_takes_over_within_the_session_timeout_and_delivers_what_was_owed(
    alert_broker: str, tmp_path: Path, alerters: list[AlerterProcess]
) -> None:
    """Two replicas of one app: one leads and delivers. It is killed with three states
    written and one request in flight; the standby leads within the session timeout and
    delivers all three, and the resolve that came after the kill; nothing opened twice."""
    flows = shared_topic_flows(tmp_path / "flows.yaml", 4)
    await create_topics(alert_broker, flows, "pair")
    async with PagerDutyPeer() as pd:
        env = alerter_env("pair", flows, pd.enqueue_url, None)
        pair = [AlerterProcess(alert_broker, tmp_path, name, **env) for name in ("a", "b")]
        alerters.extend(pair)
        for proc in pair:
            proc.start()
            await proc.wait_ready()
        # the first election waits for both to join the group (a loaded machine: > 20 s)
        assert await eventually(lambda: sum(map(_leads, pair)) == 1, 60)
        await asyncio.sleep(1.0)
        (leader,) = [p for p in pair if _leads(p)]
        (standby,) = [p for p in pair if p is not leader]
        assert sum(map(_leads, pair)) == 1

        pd.cue(None, delay_s=1.0)  # the first request hangs: in flight at the kill
        deadline = now_ms() - 60_000
        await write_breaches(alert_broker, [breach(f"f00{i}", "e", deadline) for i in range(3)])
        await leader.wait_for("is firing", times=3, timeout_s=10)
        await asyncio.sleep(0.3)
        leader.kill9()
        killed_at = now_ms()
        await write_breaches(alert_broker, [breach("f000", "e", deadline, late_at=killed_at)])

        def done() -> bool:
            states = _pagerduty_states(pd, "pair")
            want = {"f000": "resolved", "f001": "triggered", "f002": "triggered"}
            return states == want

        assert await eventually(done, 30), (_pagerduty_states(pd, "pair"), standby.tail())
    after = [r.arrived_at for r in pd.requests if r.arrived_at > killed_at + 100]
    took = min(after) - killed_at
    assert took <= SESSION_MS + 3_000, took
    assert _leads(standby)
    assert standby.count("is firing") == 0  # it wrote nothing: the three came from the outbox
    assert all(i.opened == 1 for i in pd.incidents.values())
    print(f"takeover: first request {took} ms after the kill (session {SESSION_MS} ms)")
