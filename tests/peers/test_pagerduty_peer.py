"""The local PagerDuty peer refuses what PagerDuty refuses (so a test passing against it
means something), and keeps PagerDuty's incident view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from streams.testing.peers.pagerduty import PagerDutyPeer, event_errors

KEY = "R0UT1NGK3Y0000000000000000000001"


def trigger(payload: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A valid trigger, with ``changes`` (``None`` removes a field) and payload changes."""
    fields = {"summary": "stuck", "source": "monitor", "severity": "error", **(payload or {})}
    event: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "app/flow/stuck",
        "payload": {k: v for k, v in fields.items() if v is not None},
        **changes,
    }
    return {k: v for k, v in event.items() if v is not None}


@pytest.fixture
async def peer() -> AsyncIterator[PagerDutyPeer]:
    async with PagerDutyPeer() as running:
        yield running


async def post(peer: PagerDutyPeer, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(peer.enqueue_url, data=body) as response,
    ):
        return response.status, orjson.loads(await response.read())


def test_a_valid_trigger_has_no_errors() -> None:
    assert event_errors(trigger()) == []
    assert event_errors(trigger(payload={"timestamp": "2026-04-23T10:46:57.123Z"})) == []


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (trigger(routing_key="short"), "Length of 'routing_key'"),
        (trigger(routing_key=None), "Length of 'routing_key'"),
        (trigger(event_action="page"), "'event_action' must be one of"),
        (trigger(payload={"summary": "x" * 1025}), "'payload.summary' is too long"),
        (trigger(payload={"summary": ""}), "'payload.summary' is missing"),
        (trigger(payload={"source": None}), "'payload.source' is missing"),
        (trigger(payload={"severity": "fatal"}), "'payload.severity' must be one of"),
        (trigger(payload={"timestamp": "yesterday"}), "'payload.timestamp'"),
        (trigger(payload={"custom_details": [1]}), "'payload.custom_details'"),
        (trigger(payload={"class": 3}), "'payload.class' must be a string"),
        (trigger(dedup_key="k" * 256), "'dedup_key' is too long"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is missing"),
        (trigger(links=[{"text": "no href"}]), "'links'"),
        ({"routing_key": KEY, "event_action": "trigger"}, "'payload' is missing"),
    ],
)
def test_an_invalid_event_is_named(event: dict[str, Any], error: str) -> None:
    assert any(error in e for e in event_errors(event)), event_errors(event)


async def test_invalid_events_get_400_and_pagerdutys_error_body(peer: PagerDutyPeer) -> None:
    status, body = await post(peer, orjson.dumps(trigger(payload={"severity": "fatal"})))
    assert status == 400
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert body["errors"] == ["'payload.severity' must be one of: critical, error, warning, info"]
    status, body = await post(peer, b"{not json")
    assert (status, body["status"], body["errors"]) == (
        400,
        "Unrecognized object",
        ["JSON parse error"],
    )
    assert peer.incidents == {}


async def test_a_valid_event_gets_202_with_its_dedup_key(peer: PagerDutyPeer) -> None:
    status, body = await post(peer, orjson.dumps(trigger()))
    assert (status, body) == (
        202,
        {"status": "success", "message": "Event processed", "dedup_key": "app/flow/stuck"},
    )
    status, body = await post(peer, orjson.dumps(trigger(dedup_key=None)))
    assert status == 202
    assert len(body["dedup_key"]) == 32
    assert len(peer.incidents) == 2


async def test_repeated_triggers_are_one_incident_until_resolved(peer: PagerDutyPeer) -> None:
    for _ in range(3):
        await post(peer, orjson.dumps(trigger()))
    await post(
        peer,
        orjson.dumps(
            {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "app/flow/stuck"}
        ),
    )
    assert peer.incidents["app/flow/stuck"].status == "acknowledged"
    await post(
        peer,
        orjson.dumps(
            {"routing_key": KEY, "event_action": "resolve", "dedup_key": "app/flow/stuck"}
        ),
    )
    incident = peer.incidents["app/flow/stuck"]
    assert (incident.opened, incident.triggers, incident.status) == (1, 3, "resolved")
