"""freshness explain (and the API's explain with inputs=true) against a real worker: for a
late, an overdue, an out-of-order and a skewed entity, the verdict and every number of the
lag decomposition equal what this test computes from the records it produced and the
records the worker wrote (read back here with a consumer of its own)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from api.app import create_app
from api.readmodel import ReadModel
from streams import topics
from streams.alerting.records import AlertState, encode_alert
from streams.connectors.sink import AlertEvent
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, new_consumer, partition_list, topic_partitions
from streams.settings import Settings
from streams.simulate.scenario import scripted
from tests.integration.test_api_e2e import wait_committed
from tests.integration.test_replay import run
from tests.integration.test_worker import reached

FLOWS = load_flows(None)
LEAD = FLOWS[0]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def read_all(bootstrap: str, names: tuple[str, ...]) -> list[Any]:
    """Every record now on ``names``, with its timestamp and position."""
    c = new_consumer(KafkaConnection(bootstrap), enable_auto_commit=False)
    await c.start()
    try:
        tps = partition_list(await topic_partitions(c, names))
        ends = await c.end_offsets(tps)
        want = {tp: e for tp, e in ends.items() if e > 0}
        c.assign(list(want))
        await c.seek_to_beginning(*want)
        out: list[Any] = []
        pos = dict.fromkeys(want, 0)
        while any(pos[tp] < want[tp] for tp in want):
            for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                out += msgs
                pos[tp] = msgs[-1].offset + 1
        return out
    finally:
        await c.stop()


async def timestamps_at(bootstrap: str, where: list[tuple[str, int, int]]) -> dict[Any, int]:
    recs = await read_all(bootstrap, tuple(sorted({t for t, _, _ in where})))
    return {(r.topic, r.partition, r.offset): r.timestamp for r in recs}


def positions(sc_records: list[Any], where: list[Any], key: str) -> tuple[Any, Any]:
    """Positions of the entity's first start and first completion."""
    idx = [i for i, (_, k, _) in enumerate(sc_records) if k == key.encode()]
    start = next(where[i] for i in idx if sc_records[i][0] == LEAD.start_topic)
    end = next((where[i] for i in idx if sc_records[i][0] == LEAD.end_topic), None)
    return start, end


def first_output(outputs: list[Any], topic: str, key: str, kind: str | None = None) -> Any:
    return next(
        r
        for r in outputs
        if r.topic == topic
        and r.key == key.encode()
        and r.value is not None
        and (kind is None or orjson.loads(r.value)["kind"] == kind)
    )


async def explain(bootstrap: str, home: Path, key: str) -> dict[str, Any]:
    done = await run(bootstrap, home, "explain", LEAD.name, key, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


async def test_explain_late_overdue_out_of_order_and_skewed(
    workers: Any, reader: Any, produce: Any, funnel_topics: str, prefix: str, tmp_path: Path
) -> None:
    sc = scripted(FLOWS, 180, now=now_ms(), prefix=prefix)
    where = await produce(funnel_topics, sc.records)
    workers()
    assert await reader.until(reached(sc, lost=False), timeout_s=120)
    # a completion the worker has certainly read before its start
    ooo = f"{prefix}-ooo"
    t = now_ms()
    end = {"event_id": f"{ooo}-c", "source_id": ooo, "source": "lead.captured", "occurred_at": t}
    ((topic, partition, offset),) = await produce(
        funnel_topics, [(LEAD.end_topic, ooo.encode(), orjson.dumps(end))]
    )
    await wait_committed(funnel_topics, f"app-{prefix}-ingest", topic, partition, offset)
    start = {"event_id": f"{ooo}-s", "lead_id": ooo, "occurred_at": t - 1_500}
    ((s_topic, s_part, s_off),) = await produce(
        funnel_topics, [(LEAD.start_topic, ooo.encode(), orjson.dumps(start))]
    )
    assert await reader.until(
        lambda r: any(m["key"] == ooo for m in r.of(topics.MEASUREMENTS)), timeout_s=30
    )
    await asyncio.sleep(1.0)
    ooo_c, ooo_s = (topic, partition, offset), (s_topic, s_part, s_off)
    stamps = await timestamps_at(funnel_topics, [*where, ooo_c, ooo_s])
    outputs = await read_all(funnel_topics, (topics.MEASUREMENTS, topics.BREACHES))

    def pick(case: str) -> Any:
        return next(e for e in sc.expected.values() if e.case == case and e.flow == LEAD.name)

    checked = []
    for case in ("late", "skew"):
        e = pick(case)
        s_pos, c_pos = positions(sc.records, where, e.key)
        ts_s, ts_c = stamps[s_pos], stamps[c_pos]
        m = first_output(outputs, topics.MEASUREMENTS, f"{LEAD.name}:{e.key}")
        doc = await explain(funnel_topics, tmp_path, e.key)
        d = doc["decomposition"]
        assert doc["state"] == ("late" if case == "late" else "on_time")
        assert d["started_at"] == e.started_at
        assert d["lag_ms"] == e.lag_ms
        assert d["start_in_kafka"] == ts_s
        assert d["completion_in_kafka"] == ts_c
        assert d["start_to_kafka_ms"] == ts_s - e.started_at
        assert d["completion_to_kafka_ms"] == ts_c - (e.started_at + e.lag_ms)
        assert d["verdict_at"] == m.timestamp
        assert d["monitor_ms"] == m.timestamp - max(ts_s, ts_c)
        assert d["end_to_end_ms"] == m.timestamp - e.started_at
        assert doc["clock_skew"] is (case == "skew")
        if case == "late":
            over = e.lag_ms - LEAD.target_ms
            assert f"late: lag {e.lag_ms} ms > target 5000 ms by {over} ms" in doc["verdict"]
        else:
            assert "clock skew" in doc["verdict"][1]
        assert next(i["offset"] for i in doc["inputs"] if i["side"] == "start") == s_pos[2]
        checked.append((case, doc))

    e = pick("missing")
    s_pos, _ = positions(sc.records, where, e.key)
    b = first_output(outputs, topics.BREACHES, f"{LEAD.name}:{e.key}", "overdue")
    # a stuck page that names it, as the alerter writes one (and one naming another key)
    for key in (e.key, "someone-else"):
        event = AlertEvent(
            f"app/{LEAD.name}/stuck", 0, LEAD.name, "stuck", "error", "firing", t, t, "stuck",
            {"open_overdue": 2, "oldest": [{"key": key, "deadline": t - 9_000}]},
        )  # fmt: skip
        k, v = encode_alert(AlertState(event, ()))
        await produce(funnel_topics, [(topics.ALERTS, k, v)])
    doc = await explain(funnel_topics, tmp_path, e.key)
    assert [p["value"]["details"]["oldest"][0]["key"] for p in doc["pages"]] == [e.key]
    d = doc["decomposition"]
    assert doc["state"] == "overdue"
    assert d["deadline"] == e.started_at + LEAD.target_ms
    assert d["start_to_kafka_ms"] == stamps[s_pos] - e.started_at
    assert d["verdict_at"] == b.timestamp
    assert d["monitor_ms"] == b.timestamp - max(stamps[s_pos], e.started_at + LEAD.target_ms)
    assert d["lag_ms"] is None
    assert doc["verdict"][0].startswith("deadline = started_at + target")
    detected = orjson.loads(b.value)["detected_at"]
    assert f"declared {detected - d['deadline']} ms after the deadline" in doc["verdict"][1]

    doc = await explain(funnel_topics, tmp_path, ooo)
    d = doc["decomposition"]
    m = first_output(outputs, topics.MEASUREMENTS, f"{LEAD.name}:{ooo}")
    ts_c, ts_s = stamps[ooo_c], stamps[ooo_s]
    assert ts_c < ts_s
    assert (doc["state"], doc["out_of_order"], doc["read_out_of_order"]) == ("on_time", True, True)
    assert (d["lag_ms"], d["monitor_ms"]) == (1_500, m.timestamp - ts_s)
    assert d["completion_to_kafka_ms"] == ts_c - t
    assert any(f"{ts_s - ts_c} ms before its start" in n for n in doc["notes"])

    # the API's explain with inputs=true: the same decomposition
    model = ReadModel(FLOWS)
    for r in outputs:
        model.apply_raw(r.topic, r.key, r.value)
    app = create_app(Settings(kafka_bootstrap=funnel_topics), model, consume=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for case, cli in checked:
            key = pick(case).key
            plain = (await c.get(f"/v1/entities/{LEAD.name}/{key}/explain")).json()
            assert plain["decomposition"]["lag_ms"] == cli["decomposition"]["lag_ms"]
            assert plain["decomposition"]["monitor_ms"] is None
            r = await c.get(f"/v1/entities/{LEAD.name}/{key}/explain", params={"inputs": "true"})
            assert r.status_code == 200, r.text
            assert r.json()["decomposition"] == cli["decomposition"]
            assert r.json()["state"] == cli["state"]


async def test_explain_of_an_unknown_entity_says_so(funnel_topics: str, tmp_path: Path) -> None:
    done = await run(funnel_topics, tmp_path, "explain", LEAD.name, "never-seen", "--window", "10m")
    assert done.returncode == 1
    assert "no record of lead_to_posthog:never-seen" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
