"""The local PostHog capture endpoint answers as PostHog's capture service does."""

from __future__ import annotations

import base64
import gzip
import urllib.parse
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from streams.testing.peers.posthog import PostHogCapture

EVENT = {"event": "lead captured", "distinct_id": "L-1", "uuid": "u-1", "properties": {}}


@pytest.fixture
async def capture() -> AsyncIterator[PostHogCapture]:
    async with PostHogCapture(clock=lambda: 42) as peer:
        yield peer


async def post(
    peer: PostHogCapture, path: str, body: bytes, **headers: str
) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(peer.url + path, data=body, headers=headers) as r,
    ):
        return r.status, r.headers.get("Content-Type", ""), await r.text()


async def test_a_batch_is_answered_ok_and_kept_with_the_moment_of_the_answer(
    capture: PostHogCapture,
) -> None:
    body = orjson.dumps({"api_key": "phc_x", "batch": [EVENT, {**EVENT, "uuid": "u-2"}]})
    status, ctype, text = await post(capture, "/batch/", body)
    assert (status, ctype, text) == (200, "application/json", '{"status":"Ok"}')
    (batch,) = capture.batches
    assert (batch.path, batch.uuids, batch.answered_at, batch.token) == (
        "/batch/",
        ("u-1", "u-2"),
        42,
        "phc_x",
    )
    assert capture.answered_at() == {"u-1": 42, "u-2": 42}


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/i/v0/e/", orjson.dumps({**EVENT, "api_key": "phc_x"}), {}),
        ("/i/v0/e", orjson.dumps([{**EVENT, "properties": {"token": "phc_x"}}]), {}),
        (
            "/e/?compression=gzip-js",
            gzip.compress(orjson.dumps({**EVENT, "token": "phc_x"})),
            {},
        ),
        (
            "/batch",
            gzip.compress(orjson.dumps({"api_key": "phc_x", "batch": [EVENT]})),
            {"Content-Encoding": "gzip"},
        ),
        (
            "/capture/",
            urllib.parse.urlencode(
                {"data": base64.b64encode(orjson.dumps({**EVENT, "api_key": "phc_x"}))}
            ).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ],
)
async def test_every_form_posthog_accepts(
    capture: PostHogCapture, path: str, body: bytes, headers: dict[str, str]
) -> None:
    status, _, text = await post(capture, path, body, **headers)
    assert (status, text) == (200, '{"status":"Ok"}')
    assert capture.batches[0].uuids == ("u-1",)


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{nope", 400, "failed to parse request"),
        (orjson.dumps({"api_key": "phc_x", "batch": []}), 400, "request holds no event"),
        (orjson.dumps({"batch": [EVENT]}), 401, "event submitted without an api_key"),
        (
            orjson.dumps({"api_key": "phc_x", "batch": [{**EVENT, "api_key": "phc_y"}]}),
            401,
            "inconsistent api_key values",
        ),
        (orjson.dumps({"api_key": "phx_personal", "batch": [EVENT]}), 401, "personal api key"),
        (
            orjson.dumps({"api_key": "phc_x", "batch": [{**EVENT, "event": ""}]}),
            400,
            "empty event name",
        ),
        (
            orjson.dumps({"api_key": "phc_x", "batch": [{"event": "e", "properties": {}}]}),
            400,
            "without a distinct_id",
        ),
    ],
)
async def test_what_capture_refuses(
    capture: PostHogCapture, body: bytes, status: int, text: str
) -> None:
    got_status, ctype, got_text = await post(capture, "/batch/", body)
    assert got_status == status
    assert ctype.startswith("text/plain")
    assert text in got_text
    assert capture.accepted() == []


async def test_a_scripted_refusal_applies_to_matching_batches_only(
    capture: PostHogCapture,
) -> None:
    capture.reject(503, times=2, match=lambda events: events[0]["distinct_id"] == "L-2")
    one = orjson.dumps({"api_key": "phc_x", "batch": [EVENT]})
    two = orjson.dumps({"api_key": "phc_x", "batch": [{**EVENT, "distinct_id": "L-2"}]})
    answers = [await post(capture, "/batch/", b) for b in (two, one, two, two)]
    assert [a[0] for a in answers] == [503, 200, 503, 200]
    assert answers[0][2] == "transient error, please retry"
    assert [b.status for b in capture.batches] == [503, 200, 503, 200]


async def test_other_paths_are_not_found(capture: PostHogCapture) -> None:
    status, _, _ = await post(capture, "/decide/", b"{}")
    assert status == 404
