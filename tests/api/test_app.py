"""The HTTP surface: endpoints, error bodies, readiness, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from api.readmodel import ReadModel
from tests.api.records import NOW, Records, make_client


async def test_healthz_and_readyz(model: ReadModel, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


async def test_readyz_says_what_it_waits_for(model: ReadModel) -> None:
    model.progress.ready = False
    model.progress.waiting_for = ["freshness.breaches[0]: at offset 3 of 10"]
    async with make_client(model) as client:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["waiting_for"] == ["freshness.breaches[0]: at offset 3 of 10"]
        assert (await client.get("/healthz")).status_code == 200


async def test_flows_lists_configured_flows(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    model.apply("freshness.stats", rec.window([100.0, 7_000.0]))
    model.apply("freshness.stats", rec.gauge(pending=2))
    body = (await client.get("/v1/flows")).json()
    assert [f["name"] for f in body["flows"]] == ["lead_to_posthog", "dlq_first_retry"]
    lead = body["flows"][0]
    assert lead["windows"]["last_5m"]["count"] == 2
    assert lead["pending"] == 2
    one = (await client.get("/v1/flows/lead_to_posthog")).json()
    assert one == lead


@pytest.mark.parametrize(
    "path",
    [
        "/v1/flows/nope",
        "/v1/breaches/nope:x",
        "/v1/entities/nope/x",
        "/v1/entities/lead_to_posthog/never-seen",
        "/v1/breaches?flow=nope",
        "/no/such/path",
    ],
)
async def test_unknown_things_are_404_with_a_json_error(
    client: httpx.AsyncClient, path: str
) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "not_found"
    assert err["message"]


@pytest.mark.parametrize(
    "query",
    [
        "kind=bogus",
        "status=half",
        "limit=0",
        "limit=1001",
        "limit=abc",
        "since=-1",
        "until=yesterday",
        "cursor=garbage",
    ],
)
async def test_bad_queries_are_422_with_a_json_error(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/v1/breaches?{query}")
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_query"
    assert err["message"]


async def test_breaches_pages_over_http(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    for i in range(25):
        model.apply("freshness.breaches", rec.breach(f"k{i:02}", started_at=NOW + i))
    model.apply("freshness.breaches", rec.breach("x", flow="dlq_first_retry", kind="lost"))
    seen: list[str] = []
    url = "/v1/breaches?flow=lead_to_posthog&status=open&limit=10"
    r = (await client.get(url)).json()
    while True:
        seen += [b["key"] for b in r["items"]]
        if r["next_cursor"] is None:
            break
        r = (await client.get(url + f"&cursor={r['next_cursor']}")).json()
    assert seen == [f"k{i:02}" for i in range(25)]
    one = await client.get("/v1/breaches/lead_to_posthog:k03")
    assert one.json()["deadline"] == NOW + 5_003
    lost = (await client.get("/v1/breaches?kind=lost")).json()["items"]
    assert [b["breach_id"] for b in lost] == ["dlq_first_retry:x"]
    window = (await client.get(f"/v1/breaches?since={NOW + 5_005}&until={NOW + 5_008}")).json()
    assert [b["key"] for b in window["items"]] == ["k05", "k06", "k07"]


async def test_entity_key_may_contain_slashes(
    model: ReadModel, rec: Records, client: httpx.AsyncClient
) -> None:
    model.apply("freshness.measurements", rec.measurement("a/b"))
    r = await client.get("/v1/entities/lead_to_posthog/a/b")
    assert r.status_code == 200
    assert r.json()["key"] == "a/b"


async def test_openapi_has_an_example_for_every_endpoint(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/flows",
        "/v1/flows/{flow}",
        "/v1/breaches",
        "/v1/breaches/{breach_id}",
        "/v1/entities/{flow}/{key}",
    ):
        ok = paths[path]["get"]["responses"]["200"]["content"]
        media = next(iter(ok.values()))
        if "example" in media:
            continue
        name = media["schema"]["$ref"].rsplit("/", 1)[-1]
        assert schemas[name].get("examples"), f"{path}: {name} has no example"
    assert "ErrorBody" in schemas
    err = paths["/v1/breaches"]["get"]["responses"]["422"]["content"]["application/json"]
    assert err["schema"]["$ref"].endswith("/ErrorBody")
