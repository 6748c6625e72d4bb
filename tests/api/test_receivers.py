"""The receivers in-process with a recording writer (Kafka itself: tests/integration)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.receivers import MAX_WRITE_BYTES, SECRET_HEADER, Record, WriterUnavailable
from streams.settings import Settings
from tests.api.records import make_model

INGEST = "ingest-token-0123456789"
READ = "read-token-0123456789"
SECRET = "webhook-secret-0123456789"
ACK = "funnel.notification.acknowledged"
NOW = int(time.time() * 1000)


class RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[tuple[str, list[Record]]] = []
        self.unavailable = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def write(self, topic: str, records: Sequence[Record]) -> None:
        if self.unavailable:
            raise WriterUnavailable("Kafka at 127.0.0.1:1 is not reachable")
        self.writes.append((topic, list(records)))

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for _, recs in self.writes for _, v in recs]


@pytest.fixture
def writer() -> RecordingWriter:
    return RecordingWriter()


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "ingest_token": SecretStr(INGEST),
        "webhook_ingest_secret": SecretStr(SECRET),
        "api_token": SecretStr(READ),
    }
    return Settings(**{**base, **overrides})


@pytest.fixture
async def client(writer: RecordingWriter) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(), make_model(), writer=writer)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


def ack(i: int, **fields: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "event_id": f"ack-{i}",
        "occurred_at": NOW,
        "approval_id": f"APR-{i}",
        "channel": "email",
    }
    return {**rec, **fields}


AUTH = {"Authorization": f"Bearer {INGEST}"}


async def test_one_record_is_written_with_its_entity_as_key(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    r = await client.post(f"/v1/events/{ACK}", json=ack(1), headers=AUTH)
    assert r.status_code == 202, r.text
    assert r.json() == {"topic": ACK, "records": 1, "events": 1, "unmatched": 0}
    ((topic, [(key, value)]),) = writer.writes
    assert (topic, key, orjson.loads(value)) == (ACK, b"APR-1", ack(1))


async def test_an_array_and_ndjson_are_written_whole_in_order(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    r = await client.post(f"/v1/events/{ACK}", json=[ack(i) for i in range(3)], headers=AUTH)
    assert (r.status_code, r.json()["records"]) == (202, 3)
    lines = b"\n".join(orjson.dumps(ack(i)) for i in range(3, 6)) + b"\r\n\n"
    headers = {**AUTH, "Content-Type": "application/x-ndjson"}
    r = await client.post(f"/v1/events/{ACK}", content=lines, headers=headers)
    assert (r.status_code, r.json()["records"]) == (202, 3)
    assert [v["event_id"] for v in writer.values()] == [f"ack-{i}" for i in range(6)]
    assert len(writer.writes) == 2


async def test_a_mixed_batch_names_each_bad_record_and_writes_none(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    batch = [
        ack(0),
        {k: v for k, v in ack(1).items() if k != "approval_id"},
        ack(2),
        ack(3, occurred_at=NOW + 3_600_000),
        ack(4, occurred_at="yesterday"),
    ]
    r = await client.post(f"/v1/events/{ACK}", json=batch, headers=AUTH)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_records"
    assert [(d["index"], d["reason"]) for d in error["detail"]] == [
        (1, "missing_key"),
        (3, "future_time"),
        (4, "unparsable_time"),
    ]
    assert "approval_id" in error["detail"][0]["message"]
    assert writer.writes == []


async def test_a_body_that_is_not_json(client: httpx.AsyncClient, writer: RecordingWriter) -> None:
    r = await client.post(f"/v1/events/{ACK}", content=b"{nope", headers=AUTH)
    assert r.status_code == 422
    assert r.json()["error"]["detail"][0] | {"message": ""} == {
        "index": None,
        "reason": "not_json",
        "message": "",
    }
    lines = orjson.dumps(ack(0)) + b"\n{nope\n[1]"
    r = await client.post(
        f"/v1/events/{ACK}",
        content=lines,
        headers={**AUTH, "Content-Type": "application/x-ndjson; charset=utf-8"},
    )
    assert [(d["index"], d["reason"]) for d in r.json()["error"]["detail"]] == [
        (1, "not_json"),
        (2, "not_object"),
    ]
    assert writer.writes == []


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/v1/events/funnel.nope", b"{}", {}, 404, "not_found"),
        (f"/v1/events/{ACK}", b"a,b", {"Content-Type": "text/csv"}, 415, "unsupported_media_type"),
        (f"/v1/events/{ACK}", b"[]", {}, 422, "invalid_records"),
        (
            f"/v1/events/{ACK}",
            b"",
            {"Content-Type": "application/x-ndjson"},
            422,
            "invalid_records",
        ),
        (
            f"/v1/events/{ACK}",
            orjson.dumps([ack(i) for i in range(1001)]),
            {},
            413,
            "payload_too_large",
        ),
        (f"/v1/events/{ACK}", b" " * (4 * 1024 * 1024 + 1), {}, 413, "payload_too_large"),
    ],
)
async def test_requests_refused_before_any_record_is_judged(
    client: httpx.AsyncClient,
    writer: RecordingWriter,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    r = await client.post(path, content=body, headers={**AUTH, **headers})
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert writer.writes == []


async def test_a_record_kafka_would_refuse_is_too_large(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    big = ack(0, note="x" * MAX_WRITE_BYTES)
    r = await client.post(f"/v1/events/{ACK}", json=[ack(1), big], headers=AUTH)
    assert r.status_code == 422
    assert [(d["index"], d["reason"]) for d in r.json()["error"]["detail"]] == [(1, "too_large")]
    assert writer.writes == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {INGEST}"}, 401),
        ({"Authorization": f"Bearer {READ}"}, 403),
    ],
)
async def test_writing_needs_the_ingest_token(
    client: httpx.AsyncClient, writer: RecordingWriter, headers: dict[str, str], status: int
) -> None:
    r = await client.post(f"/v1/events/{ACK}", json=ack(1), headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert writer.writes == []


async def test_kafka_unreachable_is_503_with_retry_after(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    writer.unavailable = True
    r = await client.post(f"/v1/events/{ACK}", json=ack(1), headers=AUTH)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "kafka_unavailable"


async def test_a_completion_no_flow_counts_is_written_and_counted_unmatched(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    delivered = {
        "event_id": "ph-1",
        "occurred_at": NOW,
        "source": "lead.captured",
        "source_id": "L-1",
        "stage": "delivered",
    }
    r = await client.post("/v1/events/funnel.posthog.ingested", json=delivered, headers=AUTH)
    assert r.json() == {
        "topic": "funnel.posthog.ingested",
        "records": 1,
        "events": 0,
        "unmatched": 1,
    }
    assert writer.writes[0][1][0][0] is None


# -- the PostHog webhook -------------------------------------------------------------------

UUID = "0192f2c1-8f8e-7a55-bf3c-1d0f5b9c2e11"
EVENT = {
    "uuid": UUID,
    "event": "lead captured",
    "distinct_id": "L-9",
    "properties": {"funnel_source": "lead.captured", "funnel_source_id": "L-9", "$lib": "web"},
    "timestamp": "2026-04-23T10:46:57.123Z",
    "elements_chain": "",
    "url": "https://us.posthog.com/project/1/events/x",
}
HOOK = {SECRET_HEADER: SECRET}


@pytest.mark.parametrize("payload", [{"event": EVENT, "person": {"properties": {}}}, EVENT])
async def test_a_destination_payload_becomes_a_delivered_completion_at_receipt(
    client: httpx.AsyncClient, writer: RecordingWriter, payload: dict[str, object]
) -> None:
    before = int(time.time() * 1000)
    r = await client.post("/v1/webhooks/posthog", json=payload, headers=HOOK)
    after = int(time.time() * 1000)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["written"], body["event_id"]) == (1, f"posthog-delivered-{UUID}")
    ((topic, [(key, raw)]),) = writer.writes
    value = orjson.loads(raw)
    assert (topic, key) == ("funnel.posthog.ingested", b"L-9")
    assert value | {"occurred_at": 0} == {
        "event_id": f"posthog-delivered-{UUID}",
        "occurred_at": 0,
        "source": "lead.captured",
        "source_id": "L-9",
        "stage": "delivered",
        "uuid": UUID,
        "posthog_event": "lead captured",
    }
    assert before <= value["occurred_at"] == body["occurred_at"] <= after


@pytest.mark.parametrize("headers", [{}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"}])
async def test_a_wrong_secret_is_401_and_writes_nothing(
    client: httpx.AsyncClient, writer: RecordingWriter, headers: dict[str, str]
) -> None:
    r = await client.post("/v1/webhooks/posthog", json={"event": EVENT}, headers=headers)
    assert r.status_code == 401
    assert writer.writes == []


async def test_an_event_without_the_link_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    plain = {**EVENT, "properties": {"$lib": "web"}}
    r = await client.post("/v1/webhooks/posthog", json={"event": plain}, headers=HOOK)
    assert (r.status_code, r.json()["written"]) == (202, 0)
    assert writer.writes == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"event": {k: v for k, v in EVENT.items() if k != "uuid"}}, "no uuid"),
        ({"event": {**EVENT, "properties": {"funnel_source": "lead.captured"}}}, "non-empty"),
        ({"person": {}}, "expected the destination"),
        ([EVENT], "expected the destination"),
    ],
)
async def test_a_linked_event_that_cannot_be_a_completion_is_422(
    client: httpx.AsyncClient, writer: RecordingWriter, payload: object, message: str
) -> None:
    r = await client.post("/v1/webhooks/posthog", json=payload, headers=HOOK)
    assert r.status_code == 422
    assert message in r.json()["error"]["message"]
    assert writer.writes == []


async def test_an_unknown_source_is_refused_as_the_worker_would(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    props = {"funnel_source": "signup", "funnel_source_id": "S-1"}
    r = await client.post(
        "/v1/webhooks/posthog", json={"event": {**EVENT, "properties": props}}, headers=HOOK
    )
    assert r.status_code == 422
    assert r.json()["error"]["detail"][0]["reason"] == "schema_violation"
    assert writer.writes == []


async def test_the_webhook_answers_503_when_kafka_is_unreachable(
    client: httpx.AsyncClient, writer: RecordingWriter
) -> None:
    writer.unavailable = True
    r = await client.post("/v1/webhooks/posthog", json={"event": EVENT}, headers=HOOK)
    assert r.status_code == 503


async def test_only_enabled_receivers_exist() -> None:
    for overrides, paths in [
        ({"ingest_token": None, "webhook_ingest_secret": None}, set()),
        ({"webhook_ingest_secret": None}, {"/v1/events/{topic}"}),
        ({"ingest_token": None}, {"/v1/webhooks/posthog"}),
    ]:
        app = create_app(settings(**overrides), make_model(), writer=RecordingWriter())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            spec = (await c.get("/openapi.json")).json()
            found = {p for p in spec["paths"] if p.startswith(("/v1/events", "/v1/webhooks"))}
            assert found == paths
            r = await c.post(f"/v1/events/{ACK}", json=ack(1), headers=AUTH)
            assert (r.status_code == 404) == ("/v1/events/{topic}" not in paths)
