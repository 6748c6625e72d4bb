"""The API against a real worker on the real broker: counts and percentiles equal what the
scenario says, breach pagination, filters, timelines, and two API processes agreeing."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.broker.process import free_port
from streams.flows.config import load_flows
from streams.process import Child
from streams.simulate.scenario import Scenario, scripted

FLOWS = load_flows(None)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ApiProcess:
    def __init__(self, bootstrap: str, home: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"api-{name}.log"
        env = dict(os.environ)
        env.update(
            FRESHNESS_KAFKA_BOOTSTRAP=bootstrap,
            FRESHNESS_HOME=str(home),
            FRESHNESS_API_PORT=str(self.port),
        )
        env.pop("FRESHNESS_API_TOKEN", None)
        self.child = Child(
            f"api {name}", [sys.executable, "-m", "streams.cli", "api"], self.log, env
        )
        self.child.start()
        assert self.child.proc is not None
        self.proc = self.child.proc

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"api exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"api not ready: {self.log.read_text()[-3000:]}")

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def stop(self) -> None:
        self.child.stop()


@pytest.fixture
def apis(funnel_topics: str, tmp_path: Path) -> Iterator[list[ApiProcess]]:
    procs = [ApiProcess(funnel_topics, tmp_path, n) for n in ("a", "b")]
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


async def wait_committed(
    bootstrap: str, group: str, topic: str, partition: int, offset: int, timeout_s: float = 30
) -> None:
    """Until ``group`` has committed past ``offset`` of ``topic``/``partition``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            offsets = await admin.list_consumer_group_offsets(group)
            md = offsets.get(TopicPartition(topic, partition))
            if md is not None and md.offset > offset:
                return
            await asyncio.sleep(0.2)
        pytest.fail(f"{group} never committed past {topic}[{partition}]@{offset}")
    finally:
        await admin.close()


def what_was_read(flows: dict[str, Any]) -> list[dict[str, Any]]:
    """The flow views without ``source``: it describes the process's own connection (when it
    last heard from Kafka), not what it read, so two processes never share it."""
    return [{k: v for k, v in f.items() if k != "source"} for f in flows["flows"]]


def walk(api: ApiProcess, limit: int = 50, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = dict(filters, limit=limit)
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/breaches", **params)
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def exact_quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[math.floor(q * (len(ordered) - 1))])


def expected_breaches(sc: Scenario, prefix: str) -> dict[str, tuple[str, str, int | None]]:
    return {k: v for k, v in sc.breaches(lost=False).items() if prefix in k}


async def test_api_answers_match_the_scenario(
    workers: Any, produce: Any, funnel_topics: str, prefix: str, apis: list[ApiProcess]
) -> None:
    sc = scripted(FLOWS, 2_000, now=now_ms(), prefix=prefix)
    await produce(funnel_topics, sc.records)
    worker = workers()
    a, b = apis
    a.wait_ready()
    b.wait_ready()

    want = expected_breaches(sc, prefix)
    measured = sc.measurements()
    by_flow: dict[str, list[int]] = {}
    for ident, lag in measured.items():
        by_flow.setdefault(ident.split(":", 1)[0], []).append(lag)

    def counts_match(view: dict[str, Any]) -> bool:
        for f in view["flows"]:
            day = f["windows"]["last_24h"]
            lags = by_flow[f["name"]]
            if day["count"] != len(lags) or day["late"] != sum(
                lag > f["target_ms"] for lag in lags
            ):
                return False
        return True

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if counts_match(a.get("/v1/flows")) and len(walk(a, limit=1000)) == len(want):
            break
        await asyncio.sleep(1)
    flows = a.get("/v1/flows")
    assert counts_match(flows), flows

    # counts exact, percentiles within 2 %
    for f in flows["flows"]:
        day = f["windows"]["last_24h"]
        lags = by_flow[f["name"]]
        assert day["on_time"] == sum(lag <= f["target_ms"] for lag in lags)
        assert day["clock_skew"] == sum(lag < 0 for lag in lags)
        assert day["lost"] == 0
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (1.0, "max")):
            exact = exact_quantile(lags, q)
            got = day["lag_ms"][name]
            assert abs(got - exact) <= 0.02 * abs(exact) + 1, (f["name"], name, got, exact)
        missing = sum(
            1 for e in sc.expected.values() if e.flow == f["name"] and e.outcome == "missing"
        )
        assert f["open_breaches"] == missing
        assert f["status"] == "breaching"  # a third of the scenario's starts breach

    # every breach exactly once, also while new ones are being added
    before = {b["breach_id"] for b in walk(a, limit=1000)}
    assert {k for k in before if prefix in k} == set(want)
    flow = FLOWS[0]
    live = []
    for i in range(40):
        key = f"{prefix}-live{i}"
        live.append(
            (
                flow.start_topic,
                key.encode(),
                orjson.dumps(
                    {
                        "event_id": f"{key}-s",
                        flow.start_key[0]: key,
                        "occurred_at": now_ms() - flow.target_ms,
                    }
                ),
            )
        )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 25}
        if cursor:
            params["cursor"] = cursor
        page = a.get("/v1/breaches", **params)
        seen += [b["breach_id"] for b in page["items"]]
        pages += 1
        if pages == 3:
            await produce(funnel_topics, live)
            await asyncio.sleep(2.5)  # the new starts go overdue while we are mid-walk
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "a breach appeared twice in one walk"
    assert before <= set(seen), "a breach that existed when the walk began was skipped"

    # filters narrow correctly
    for f in FLOWS:
        got = walk(a, flow=f.name)
        assert {x["flow"] for x in got} <= {f.name}
        assert {
            x["breach_id"] for x in got if prefix in x["breach_id"] and "-live" not in x["key"]
        } == {k for k in want if k.startswith(f"{f.name}:")}
    late = walk(a, kind="late")
    assert {x["kind"] for x in late} == {"late"}
    assert {x["breach_id"] for x in late} == {k for k, v in want.items() if v[0] == "late"}
    open_ = walk(a, status="open")
    assert {x["status"] for x in open_} == {"open"}
    assert {x["breach_id"] for x in open_} >= {k for k, v in want.items() if v[1] == "open"}
    some = sorted(x["deadline"] for x in late)
    mid = some[len(some) // 2]
    assert all(x["deadline"] >= mid for x in walk(a, kind="late", since=mid))
    assert all(x["deadline"] < mid for x in walk(a, kind="late", until=mid))

    # timelines: on time, late, overdue, out of order
    def first(case: str) -> Any:
        return next(
            e for e in sc.expected.values() if e.case == case and e.flow == "lead_to_posthog"
        )

    on_time = a.get(f"/v1/entities/lead_to_posthog/{first('on_time').key}")
    assert on_time["state"] == "on_time"
    cycle = on_time["cycles"][-1]
    assert cycle["lag_ms"] == first("on_time").lag_ms
    assert cycle["breach"] is None
    assert cycle["start_source"]["topic"] == "funnel.lead.captured"
    assert cycle["end_source"]["topic"] == "funnel.posthog.ingested"
    late_view = a.get(f"/v1/entities/lead_to_posthog/{first('late').key}")
    assert late_view["state"] == "late"
    assert late_view["cycles"][-1]["breach"]["kind"] == "late"
    overdue = a.get(f"/v1/entities/lead_to_posthog/{first('missing').key}")
    assert overdue["state"] == "overdue"
    assert overdue["cycles"][-1]["end_event_id"] is None
    assert "funnel.posthog.ingested" in overdue["where"]
    ooo_views = [
        a.get(f"/v1/entities/{e.flow}/{e.key}")
        for e in sc.expected.values()
        if e.case == "out_of_order"
    ]
    assert all(v["state"] == "on_time" for v in ooo_views)
    assert all(v["cycles"][-1]["lag_ms"] == 0 for v in ooo_views)
    # a completion the worker has certainly read before its start: the start is produced
    # only once the worker's input group has committed past the completion
    key = f"{prefix}-ooo"
    t = now_ms()
    end = {"event_id": f"{key}-c", "source_id": key, "source": "lead.captured", "occurred_at": t}
    ((topic, partition, offset),) = await produce(
        funnel_topics, [("funnel.posthog.ingested", key.encode(), orjson.dumps(end))]
    )
    await wait_committed(funnel_topics, f"app-{prefix}-ingest", topic, partition, offset)
    start = {"event_id": f"{key}-s", "lead_id": key, "occurred_at": t - 1_500}
    await produce(funnel_topics, [("funnel.lead.captured", key.encode(), orjson.dumps(start))])
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=a.url, timeout=5) as client:
        while time.monotonic() < deadline:
            r = await client.get(f"/v1/entities/lead_to_posthog/{key}")
            if r.status_code == 200 and r.json()["state"] == "on_time":
                break
            await asyncio.sleep(0.5)
    view = a.get(f"/v1/entities/lead_to_posthog/{key}")
    cycle = view["cycles"][-1]
    assert view["state"] == "on_time"
    assert cycle["out_of_order"] is True
    assert cycle["lag_ms"] == 1_500
    assert cycle["end_source"] == {"topic": topic, "partition": partition, "offset": offset}

    # two API processes give the same answers once nothing changes any more
    worker.stop()
    await asyncio.sleep(1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        views = [(what_was_read(p.get("/v1/flows")), walk(p, limit=1000)) for p in (a, b)]
        if views[0] == views[1]:
            break
        await asyncio.sleep(1)
    assert views[0][1] == views[1][1], "breaches differ between the two API processes"
    assert views[0][0] == views[1][0], "flows differ between the two API processes"
