"""Entity timelines: on time, late, overdue, out of order, lost; bounded memory."""

from __future__ import annotations

import httpx

from api.entities import CYCLES_PER_ENTITY, EntityIndex
from api.readmodel import ReadModel
from tests.api.records import NOW, Records

URL = "/v1/entities/lead_to_posthog/"


def kinds(cycle: dict[str, object]) -> list[str]:
    timeline = cycle["timeline"]
    assert isinstance(timeline, list)
    return [e["kind"] for e in timeline]


async def test_on_time_entity(model: ReadModel, rec: Records, client: httpx.AsyncClient) -> None:
    model.apply("freshness.measurements", rec.measurement("ok", lag_ms=1_200))
    body = (await client.get(URL + "ok")).json()
    assert body["state"] == "on_time"
    (cycle,) = body["cycles"]
    assert kinds(cycle) == ["started", "completed", "deadline"]
    started, completed = cycle["timeline"][0], cycle["timeline"][1]
    assert started["event_id"] == "s-ok"
    assert started["source"]["topic"] == "funnel.lead.captured"
    assert completed["event_id"] == "e-ok"
    assert completed["source"] == {"topic": "funnel.posthog.ingested", "partition": 2, "offset": 9}
    assert cycle["lag_ms"] == 1_200
    assert cycle["breach"] is None
    assert "on time" in body["where"]


async def test_late_entity_merges_measurement_and_breach(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    started = NOW - 30_000
    model.apply("freshness.breaches", rec.breach("late", started_at=started))
    model.apply("freshness.measurements", rec.measurement("late", started_at=started, lag_ms=9_000))
    model.apply(
        "freshness.breaches",
        rec.breach(
            "late",
            kind="late",
            started_at=started,
            detected_at=started + 9_000,
            completed_at=started + 9_000,
        ),
    )
    body = (await client.get(URL + "late")).json()
    assert body["state"] == "late"
    (cycle,) = body["cycles"]
    assert kinds(cycle) == ["started", "deadline", "completed", "late"]
    assert cycle["breach"]["kind"] == "late"
    assert cycle["breach"]["status"] == "closed"
    assert "4000 ms over target" in body["where"]


async def test_overdue_entity_says_where_it_is_stuck(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    model.apply("freshness.stats", rec.gauge(watermark_ms=NOW))
    model.apply("freshness.breaches", rec.breach("stuck", started_at=NOW - 60_000))
    body = (await client.get(URL + "stuck")).json()
    assert body["state"] == "overdue"
    (cycle,) = body["cycles"]
    assert kinds(cycle) == ["started", "deadline", "overdue"]
    assert cycle["start_source"] == {"topic": "funnel.lead.captured", "partition": 1, "offset": 7}
    assert cycle["completed_at"] is None
    assert body["where"].endswith(
        "no completion on funnel.posthog.ingested yet, 55000 ms past its deadline"
    )


async def test_out_of_order_entity(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    model.apply("freshness.measurements", rec.measurement("ooo", lag_ms=300, out_of_order=True))
    body = (await client.get(URL + "ooo")).json()
    (cycle,) = body["cycles"]
    assert cycle["out_of_order"] is True
    assert "read before its start" in cycle["timeline"][1]["note"]


async def test_lost_entity(model: ReadModel, rec: Records, client: httpx.AsyncClient) -> None:
    model.apply("freshness.breaches", rec.breach("gone", kind="lost", detected_at=NOW))
    body = (await client.get(URL + "gone")).json()
    assert body["state"] == "lost"
    assert kinds(body["cycles"][0])[-1] == "lost"
    assert "given up" in body["where"]


async def test_clock_skew_is_visible(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    model.apply("freshness.measurements", rec.measurement("skew", lag_ms=-40))
    (cycle,) = (await client.get(URL + "skew")).json()["cycles"]
    assert cycle["clock_skew"] is True
    assert cycle["state"] == "on_time"
    (completed,) = [e for e in cycle["timeline"] if e["kind"] == "completed"]
    assert "clock skew" in completed["note"]
    assert cycle["timeline"][0] == completed  # before its start: visible as such


async def test_cycles_newest_first_and_replays_ignored(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    first = rec.measurement("re", started_at=NOW - 90_000, start_event_id="s1")
    second = rec.measurement("re", started_at=NOW - 10_000, lag_ms=8_000, start_event_id="s2")
    for r in (first, second, first, second):
        model.apply("freshness.measurements", r)
    body = (await client.get(URL + "re")).json()
    assert [c["start_event_id"] for c in body["cycles"]] == ["s2", "s1"]
    assert body["state"] == "late"


def test_entity_index_is_bounded() -> None:
    rec = Records()
    index = EntityIndex(capacity=3)
    for key in "abcd":
        index.add(rec.measurement(key))
    index.add(rec.measurement("b"))  # b is refreshed, so c is the next to go
    index.add(rec.measurement("e"))
    assert len(index) == 3
    assert [k for k in "abcde" if index.get("lead_to_posthog", k)] == ["b", "d", "e"]
    for i in range(CYCLES_PER_ENTITY + 5):
        index.add(rec.measurement("b", started_at=NOW + i, start_event_id=f"s{i}"))
    assert len(index.get("lead_to_posthog", "b")) == CYCLES_PER_ENTITY


async def test_evicted_entity_with_a_breach_still_has_a_timeline(
    rec: Records,
) -> None:
    from tests.api.records import FLOWS, make_client

    model = ReadModel(FLOWS, entity_capacity=0, clock=lambda: NOW)
    model.apply("freshness.measurements", rec.measurement("x", lag_ms=7_000))
    model.apply("freshness.breaches", rec.breach("x", kind="late", completed_at=NOW))
    async with make_client(model) as client:
        body = (await client.get(URL + "x")).json()
    assert body["state"] == "late"
    assert body["cycles"][0]["end_event_id"] is None
