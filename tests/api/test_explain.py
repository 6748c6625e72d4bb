"""GET /v1/entities/{flow}/{key}/explain: the verdict and the lag decomposition from the
read model, and with inputs=true from the records Kafka holds (a stand-in lookup here; the
real one is exercised in tests/integration/test_replay_explain.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from api import errors, explain
from api.readmodel import ReadModel
from streams import topics
from streams.alerting.records import AlertState, encode_alert
from streams.connectors.sink import AlertEvent
from streams.core.model import Flow
from streams.errors import BrokerError
from streams.replay.explain import InputSeen, OutputSeen
from streams.settings import Settings
from tests.api.records import NOW, Records


class Lookup:
    """Answers as the Kafka lookup would: the records with their timestamps."""

    def __init__(self, inputs: list[InputSeen], outputs: list[OutputSeen] | None = None) -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.fail: BrokerError | None = None
        self.asked: list[tuple[str, str, int, int]] = []

    async def records(
        self, flow: Flow, key: str, known: list[OutputSeen], window_ms: int
    ) -> tuple[list[InputSeen], list[OutputSeen], list[OutputSeen]]:
        self.asked.append((flow.name, key, len(known), window_ms))
        if self.fail is not None:
            raise self.fail
        outs = self.outputs if self.outputs is not None else known
        return (
            self.inputs,
            [o for o in outs if o.topic == topics.BREACHES],
            [o for o in outs if o.topic == topics.MEASUREMENTS],
        )


def app_with(model: ReadModel, lookup: Lookup) -> httpx.AsyncClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(explain.router(model, Settings(), lookup, clock=lambda: NOW))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
def lookup() -> Lookup:
    return Lookup([])


@pytest.fixture
async def api(model: ReadModel, lookup: Lookup) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with(model, lookup) as c:
        yield c


def inputs_of(m: dict[str, Any], start_ts: int, end_ts: int) -> list[InputSeen]:
    s, e = m["start_source"], m["end_source"]
    raw = orjson.dumps({"event_id": m["start_event_id"]})
    return [
        InputSeen(s["topic"], s["partition"], s["offset"], start_ts, raw, "start",
                  m["start_event_id"], m["started_at"]),
        InputSeen(e["topic"], e["partition"], e["offset"], end_ts, raw, "end",
                  m["end_event_id"], m["completed_at"]),
    ]  # fmt: skip


async def test_from_the_read_model_alone(
    model: ReadModel, rec: Records, api: httpx.AsyncClient, lookup: Lookup
) -> None:
    m = rec.measurement("k", lag_ms=7_400)
    model.apply(topics.MEASUREMENTS, m)
    late = rec.breach("k", kind="late", started_at=m["started_at"], completed_at=m["completed_at"])
    model.apply(topics.BREACHES, late)
    r = await api.get("/v1/entities/lead_to_posthog/k/explain")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "late"
    assert body["verdict"][1] == "late: lag 7400 ms > target 5000 ms by 2400 ms"
    d = body["decomposition"]
    assert d["lag_ms"] == 7_400
    assert d["deadline"] == m["started_at"] + 5_000
    assert d["start_to_kafka_ms"] is None  # Kafka timestamps need inputs=true
    assert d["monitor_ms"] is None
    assert body["inputs"] == []
    assert lookup.asked == []


async def test_with_inputs_every_part_is_filled_in(
    model: ReadModel, rec: Records, lookup: Lookup, api: httpx.AsyncClient
) -> None:
    m = rec.measurement("k", lag_ms=1_200)
    model.apply(topics.MEASUREMENTS, m)
    start_ts, end_ts = m["started_at"] + 250, m["completed_at"] + 40
    lookup.inputs = inputs_of(m, start_ts, end_ts)
    lookup.outputs = [OutputSeen(topics.MEASUREMENTS, 2, 5, end_ts + 90, m)]
    r = await api.get("/v1/entities/lead_to_posthog/k/explain", params={"inputs": "true"})
    assert r.status_code == 200, r.text
    d = r.json()["decomposition"]
    assert (d["lag_ms"], d["start_to_kafka_ms"], d["completion_to_kafka_ms"]) == (1_200, 250, 40)
    assert d["monitor_ms"] == 90
    assert d["end_to_end_ms"] == 1_200 + 40 + 90
    assert d["slowest"] == "lag_ms"
    assert [i["side"] for i in r.json()["inputs"]] == ["start", "end"]
    assert lookup.asked == [("lead_to_posthog", "k", 1, explain.DEFAULT_WINDOW_MS)]


async def test_an_overdue_entity(model: ReadModel, rec: Records, api: httpx.AsyncClient) -> None:
    model.apply(topics.BREACHES, rec.breach("k", started_at=NOW - 20_000))
    body = (await api.get("/v1/entities/lead_to_posthog/k/explain")).json()
    assert body["state"] == "overdue"
    assert body["decomposition"]["deadline"] == NOW - 15_000
    assert "15000 ms past its deadline now" in body["verdict"][1]


async def test_kafka_unreachable_is_503(
    model: ReadModel, rec: Records, lookup: Lookup, api: httpx.AsyncClient
) -> None:
    model.apply(topics.MEASUREMENTS, rec.measurement("k"))
    lookup.fail = BrokerError("cannot reach Kafka at 127.0.0.1:1")
    r = await api.get("/v1/entities/lead_to_posthog/k/explain?inputs=true")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "kafka_unavailable"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/entities/nope/k/explain", 404),
        ("/v1/entities/lead_to_posthog/never-seen/explain", 404),
        ("/v1/entities/lead_to_posthog/k/explain?window_ms=5", 422),
    ],
)
async def test_bad_requests(
    model: ReadModel, rec: Records, api: httpx.AsyncClient, path: str, status: int
) -> None:
    model.apply(topics.MEASUREMENTS, rec.measurement("k"))
    r = await api.get(path)
    assert r.status_code == status
    assert "error" in r.json()


async def test_keys_with_slashes(model: ReadModel, rec: Records, api: httpx.AsyncClient) -> None:
    model.apply(topics.MEASUREMENTS, rec.measurement("a/b"))
    r = await api.get("/v1/entities/lead_to_posthog/a/b/explain")
    assert r.status_code == 200
    assert r.json()["key"] == "a/b"


async def test_the_app_serves_it_before_the_timeline(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    model.apply(topics.MEASUREMENTS, rec.measurement("k", lag_ms=900))
    r = await client.get("/v1/entities/lead_to_posthog/k/explain")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["decomposition"]["lag_ms"]) == ("on_time", 900)
    assert (await client.get("/v1/entities/lead_to_posthog/k")).json()["cycles"][0]["lag_ms"] == 900
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/entities/{flow}/{key}/explain" in spec["paths"]


def stuck_state(model: ReadModel, offset: int, flow: str, *keys: str) -> None:
    """A firing ``stuck`` alert of ``flow`` naming ``keys`` as its oldest, at ``offset``."""
    oldest = [
        {"key": k, "deadline": NOW - 1_000, "detected_at": NOW, "overdue_ms": 1} for k in keys
    ]
    event = AlertEvent(
        alert_id=f"app/{flow}/stuck",
        version=0,
        flow=flow,
        alert="stuck",
        severity="critical",
        status="firing",
        since=NOW - 1_000,
        updated_at=NOW,
        summary="stuck",
        details={"open_overdue": len(keys), "oldest": oldest},
    )
    model.apply_raw(topics.ALERTS, *encode_alert(AlertState(event, ("pagerduty",))), offset)


async def test_pages_that_name_the_entity(
    model: ReadModel, rec: Records, api: httpx.AsyncClient
) -> None:
    model.apply(topics.BREACHES, rec.breach("k", started_at=NOW - 20_000))
    stuck_state(model, 3, "lead_to_posthog", "other", "k")
    stuck_state(model, 4, "payment_to_posthog", "k")  # another flow's entity of that key
    body = (await api.get("/v1/entities/lead_to_posthog/k/explain")).json()
    (page,) = body["pages"]
    assert (page["topic"], page["offset"]) == (topics.ALERTS, 3)
    assert page["value"]["alert_id"] == "app/lead_to_posthog/stuck"
    assert [o["key"] for o in page["value"]["details"]["oldest"]] == ["other", "k"]
    stuck_state(model, 9, "lead_to_posthog", "other")  # the alert moved on
    assert (await api.get("/v1/entities/lead_to_posthog/k/explain")).json()["pages"] == []
