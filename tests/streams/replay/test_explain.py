"""explain: the verdict's arithmetic and the lag decomposition from an entity's records."""

from __future__ import annotations

from typing import Any

import orjson

from streams import topics
from streams.replay.explain import InputSeen, OutputSeen, build
from tests.streams.replay.kit import LEAD, T0

S = {"topic": LEAD.start_topic, "partition": 1, "offset": 7}
E = {"topic": LEAD.end_topic, "partition": 0, "offset": 3}


def start(ts: int, at: int = T0) -> InputSeen:
    raw = orjson.dumps({"event_id": "k-s", "lead_id": "k", "occurred_at": at})
    return InputSeen(S["topic"], 1, 7, ts, raw, "start", "k-s", at)


def end(ts: int, at: int) -> InputSeen:
    raw = orjson.dumps({"event_id": "k-c", "source_id": "k", "occurred_at": at})
    return InputSeen(E["topic"], 0, 3, ts, raw, "end", "k-c", at)


def measurement(ts: int | None, lag: int, **kw: Any) -> OutputSeen:
    value = {
        "flow": LEAD.name,
        "key": "k",
        "start_event_id": "k-s",
        "end_event_id": "k-c",
        "started_at": T0,
        "completed_at": T0 + lag,
        "lag_ms": lag,
        "target_ms": LEAD.target_ms,
        "on_time": lag <= LEAD.target_ms,
        "clock_skew": lag < 0,
        "out_of_order": False,
        "start_source": S,
        "end_source": E,
        **kw,
    }
    return OutputSeen(topics.MEASUREMENTS, 2, 11, ts, value)


def breach(ts: int | None, kind: str, offset: int, lag: int | None = None) -> OutputSeen:
    value = {
        "breach_id": f"{LEAD.name}:k",
        "flow": LEAD.name,
        "key": "k",
        "kind": kind,
        "status": "open" if kind == "overdue" else "closed",
        "started_at": T0,
        "deadline": T0 + LEAD.target_ms,
        "detected_at": T0 + LEAD.target_ms + 150 if kind == "overdue" else T0 + (lag or 0),
        "completed_at": None if lag is None else T0 + lag,
        "lag_ms": lag,
        "target_ms": LEAD.target_ms,
        "start_event_id": "k-s",
        "start_source": S,
        "end_source": None if lag is None else E,
    }
    return OutputSeen(topics.BREACHES, 4, offset, ts, value)


def test_a_late_start_decomposed() -> None:
    inputs = [start(T0 + 300), end(T0 + 7_450, T0 + 7_400)]
    versions = [breach(T0 + 5_600, "overdue", 1), breach(T0 + 7_580, "late", 2, lag=7_400)]
    e = build(LEAD, "k", inputs, versions, [measurement(T0 + 7_570, 7_400)], now=T0 + 60_000)
    assert e.state == "late"
    d = e.decomposition
    assert (d.lag_ms, d.start_to_kafka_ms, d.completion_to_kafka_ms) == (7_400, 300, 50)
    assert d.monitor_ms == 7_570 - 7_450  # measurement written after the later input
    assert d.end_to_end_ms == 7_570
    assert d.slowest == "lag_ms"
    assert e.verdict[0].endswith("= 7400 ms")
    assert e.verdict[1] == "late: lag 7400 ms > target 5000 ms by 2400 ms"
    assert e.read_out_of_order is False
    assert not e.out_of_order


def test_an_overdue_start_decomposed() -> None:
    e = build(LEAD, "k", [start(T0 + 40)], [breach(T0 + 5_420, "overdue", 1)], [], T0 + 9_000)
    assert e.state == "overdue"
    d = e.decomposition
    assert d.deadline == T0 + 5_000
    assert d.monitor_ms == 420  # written 420 ms after the deadline passed
    assert d.lag_ms is None
    assert d.start_to_kafka_ms == 40
    assert "declared 150 ms after the deadline" in e.verdict[1]
    assert "4000 ms past its deadline now" in e.verdict[1]


def test_out_of_order_and_skew() -> None:
    inputs = [start(T0 + 500), end(T0 + 200, T0 - 700)]
    m = measurement(T0 + 650, -700, out_of_order=True)
    e = build(LEAD, "k", inputs, [], [m], T0 + 60_000)
    assert (e.state, e.clock_skew, e.out_of_order, e.read_out_of_order) == (
        "on_time",
        True,
        True,
        True,
    )
    assert "clock skew" in e.verdict[1]
    assert e.decomposition.completion_to_kafka_ms == 900
    assert e.decomposition.monitor_ms == 150  # after the start, the later of the two
    assert "written to Kafka 300 ms before its start" in e.notes[0]


def test_a_retracted_overdue_is_noted() -> None:
    tomb = OutputSeen(topics.BREACHES, 4, 2, T0 + 9_000, None)
    e = build(
        LEAD,
        "k",
        [start(T0), end(T0 + 8_500, T0 + 1_000)],
        [breach(T0 + 5_500, "overdue", 1), tomb],
        [measurement(T0 + 8_600, 1_000)],
        T0 + 60_000,
    )
    assert e.state == "on_time"
    assert any("retracted" in n for n in e.notes)
    assert e.decomposition.slowest == "completion_to_kafka_ms"


def test_without_kafka_timestamps_only_event_time_parts_are_known() -> None:
    e = build(LEAD, "k", [], [], [measurement(None, 1_200)], T0 + 60_000)
    d = e.decomposition
    assert (d.lag_ms, d.start_to_kafka_ms, d.monitor_ms, d.end_to_end_ms) == (
        1_200,
        None,
        None,
        None,
    )
    assert e.state == "on_time"


def test_pending_undeclared_and_unknown() -> None:
    assert build(LEAD, "k", [start(T0)], [], [], T0 + 1_000).state == "pending"
    undeclared = build(LEAD, "k", [start(T0)], [], [], T0 + 9_000)
    assert undeclared.state == "undeclared"
    assert "written nothing" in undeclared.verdict[-1]
    assert build(LEAD, "k", [], [], [], T0).state == "unknown"


def test_json_round_trips() -> None:
    e = build(LEAD, "k", [start(T0 + 1)], [breach(T0 + 5_300, "overdue", 1)], [], T0 + 9_000)
    doc = orjson.loads(orjson.dumps(e.to_json()))
    assert doc["state"] == "overdue"
    assert doc["inputs"][0]["value"].startswith('{"event_id":"k-s"')
    assert doc["decomposition"]["monitor_ms"] == 300


def alert(key: str, flow: str = LEAD.name) -> OutputSeen:
    value = {
        "alert_id": f"app/{flow}/stuck",
        "flow": flow,
        "alert": "stuck",
        "status": "firing",
        "summary": f"{flow}: 1 entity stuck past its deadline; oldest {key!r} overdue by 6 s",
        "details": {"open_overdue": 1, "oldest": [{"key": key, "deadline": T0 + 5_000}]},
    }
    return OutputSeen(topics.ALERTS, 0, 4, T0 + 11_000, value)


def test_pages_that_name_the_entity() -> None:
    pages = [alert("k"), alert("other"), alert("k", flow="dlq_first_retry")]
    e = build(LEAD, "k", [start(T0)], [breach(T0 + 5_300, "overdue", 1)], [], T0 + 12_000, pages)
    assert [p.value["alert_id"] for p in e.pages if p.value] == [f"app/{LEAD.name}/stuck"]
    assert e.to_json()["pages"][0]["value"]["status"] == "firing"
