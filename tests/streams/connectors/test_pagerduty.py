"""The PagerDuty connector against the local Events v2 peer (its real client code)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streams.broker.process import free_port
from streams.connectors.pagerduty import (
    SUMMARY_MAX,
    PagerDutyConfig,
    PagerDutySink,
    dedup_key,
    enqueue_body,
    summary,
)
from streams.connectors.sink import Link, Outcome
from streams.errors import ConfigError
from streams.testing.peers.alerts import T0, alert_event
from streams.testing.peers.pagerduty import PagerDutyPeer
from streams.testing.peers.server import Answer

KEY = "R0UT1NGK3Y0000000000000000000001"


@pytest.fixture
async def peer() -> AsyncIterator[PagerDutyPeer]:
    async with PagerDutyPeer(clock=lambda: T0) as running:
        yield running


@pytest.fixture
async def sink(peer: PagerDutyPeer) -> AsyncIterator[PagerDutySink]:
    connector = PagerDutySink(PagerDutyConfig(KEY, url=peer.enqueue_url, timeout_ms=2000))
    yield connector
    await connector.aclose()


def test_a_firing_state_is_a_trigger_with_every_field() -> None:
    event = alert_event(
        updated_at=T0 + 1500, links=(Link("http://api/v1/flows/lead_to_posthog", "flow"),)
    )
    config = PagerDutyConfig(KEY, client_url="http://status")
    assert enqueue_body(event, config) == {
        "routing_key": KEY,
        "dedup_key": "funnel-freshness/lead_to_posthog/page-fast",
        "event_action": "trigger",
        "client": "funnel-freshness",
        "client_url": "http://status",
        "payload": {
            "summary": event.summary,
            "source": "funnel-freshness",
            "severity": "critical",
            "timestamp": "2026-04-23T10:46:58.500Z",
            "component": "lead_to_posthog",
            "group": "funnel-freshness",
            "class": "page-fast",
            "custom_details": {
                "burn_rate_1h": 20.5,
                "bad": 42,
                "alert_id": event.alert_id,
                "flow": "lead_to_posthog",
                "alert": "page-fast",
                "since": "2026-04-23T10:46:57.000Z",
            },
        },
        "links": [{"href": "http://api/v1/flows/lead_to_posthog", "text": "flow"}],
    }


def test_a_resolved_state_is_a_resolve_of_the_same_dedup_key() -> None:
    body = enqueue_body(alert_event(status="resolved"), PagerDutyConfig(KEY))
    assert body == {
        "routing_key": KEY,
        "dedup_key": "funnel-freshness/lead_to_posthog/page-fast",
        "event_action": "resolve",
    }


def test_a_long_summary_is_cut_to_1024_characters_with_an_ellipsis() -> None:
    cut = summary("x" * 5000, "fallback")
    assert len(cut) == SUMMARY_MAX
    assert cut == "x" * 1023 + "\u2026"


def test_the_cut_never_separates_a_character_from_its_combining_mark() -> None:
    text = "a" * 1022 + "e\u0301" + "tail"  # the accent would be the 1024th character
    cut = summary(text, "fallback")
    assert cut == "a" * 1022 + "\u2026"


def test_a_summary_is_made_valid_text_and_never_empty() -> None:
    assert summary("broken \ud800 surrogate", "fb") == "broken ? surrogate"
    assert summary("   ", "stuck on dlq_first_retry") == "stuck on dlq_first_retry"


def test_a_long_alert_id_gets_a_stable_dedup_key_of_255_characters() -> None:
    long_id = "app/" + "f" * 300 + "/stuck"
    other = "app/" + "f" * 300 + "/ticket"
    assert len(dedup_key(long_id)) == 255
    assert dedup_key(long_id) == dedup_key(long_id)
    assert dedup_key(long_id) != dedup_key(other)
    assert dedup_key("app/flow/stuck") == "app/flow/stuck"


def test_the_config_refuses_a_routing_key_that_is_not_32_characters() -> None:
    with pytest.raises(ConfigError, match="32-character"):
        PagerDutyConfig("short")
    with pytest.raises(ConfigError, match="http"):
        PagerDutyConfig(KEY, url="events.pagerduty.com")


def test_the_routing_key_stays_out_of_the_config_repr() -> None:
    assert KEY not in repr(PagerDutyConfig(KEY))


async def test_triggers_and_a_resolve_make_exactly_one_incident(
    peer: PagerDutyPeer, sink: PagerDutySink
) -> None:
    first = await sink.send(alert_event(version=1), T0)
    again = await sink.send(alert_event(version=2, summary="worse"), T0)
    resolved = await sink.send(alert_event(version=3, status="resolved"), T0)
    assert [a.outcome for a in (first, again, resolved)] == [Outcome.DELIVERED] * 3
    assert [r.status for r in peer.requests] == [202, 202, 202]
    incident = peer.incidents["funnel-freshness/lead_to_posthog/page-fast"]
    assert (incident.opened, incident.triggers, incident.resolves) == (1, 2, 1)
    assert incident.status == "resolved"
    assert KEY not in first.request
    assert first.request.count("...0001") == 1


async def test_a_trigger_after_a_resolve_opens_a_second_incident(
    peer: PagerDutyPeer, sink: PagerDutySink
) -> None:
    for version, status in enumerate(("firing", "resolved", "firing"), start=1):
        await sink.send(alert_event(version=version, status=status), T0)  # type: ignore[arg-type]
    assert peer.incidents["funnel-freshness/lead_to_posthog/page-fast"].opened == 2


async def test_an_invalid_event_is_rejected_with_pagerdutys_error_body(
    peer: PagerDutyPeer, sink: PagerDutySink
) -> None:
    bad = alert_event(severity="fatal")  # type: ignore[arg-type]
    attempt = await sink.send(bad, T0)
    assert attempt.outcome is Outcome.REJECTED
    assert attempt.status == 400
    assert '"status":"invalid event"' in attempt.body
    assert "payload.severity" in attempt.body
    assert attempt.url == peer.enqueue_url
    assert '"event_action":"trigger"' in attempt.request
    assert peer.incidents == {}


@pytest.mark.parametrize(
    ("answer", "retry_after_ms"),
    [
        (Answer.of_json(429, {"status": "throttled"}, **{"Retry-After": "7"}), 7000),
        (Answer.of_json(429, {"status": "throttled"}), None),
        (Answer.of_json(500, {"status": "error", "message": "boom"}), None),
        (Answer(503, b"", {"Retry-After": "Thu, 23 Apr 2026 10:47:27 GMT"}), 30_000),
    ],
)
async def test_throttling_and_server_errors_are_retried_with_retry_after(
    peer: PagerDutyPeer, sink: PagerDutySink, answer: Answer, retry_after_ms: int | None
) -> None:
    peer.cue(answer)
    attempt = await sink.send(alert_event(), T0)
    assert attempt.outcome is Outcome.RETRY
    assert attempt.status == answer.status
    assert attempt.retry_after_ms == retry_after_ms
    assert peer.incidents == {}


async def test_a_redirect_is_not_followed_but_refused(
    peer: PagerDutyPeer, sink: PagerDutySink
) -> None:
    peer.cue(Answer(301, b"moved", {"Location": "http://127.0.0.1:1/elsewhere"}))
    attempt = await sink.send(alert_event(), T0)
    assert (attempt.outcome, attempt.status, attempt.body) == (Outcome.REJECTED, 301, "moved")
    assert len(peer.requests) == 1


async def test_a_slow_answer_past_the_timeout_is_retried(peer: PagerDutyPeer) -> None:
    sink = PagerDutySink(PagerDutyConfig(KEY, url=peer.enqueue_url, timeout_ms=100))
    peer.cue(None, delay_s=1.0)
    try:
        attempt = await sink.send(alert_event(), T0)
    finally:
        await sink.aclose()
    assert (attempt.outcome, attempt.status) == (Outcome.RETRY, None)
    assert "Timeout" in attempt.body


async def test_nobody_listening_is_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/enqueue"
    sink = PagerDutySink(PagerDutyConfig(KEY, url=url, timeout_ms=2000))
    try:
        attempt = await sink.send(alert_event(), T0)
    finally:
        await sink.aclose()
    assert (attempt.outcome, attempt.status) == (Outcome.RETRY, None)
    assert "Connect" in attempt.body


async def test_an_event_that_cannot_be_encoded_is_rejected_unsent(
    peer: PagerDutyPeer, sink: PagerDutySink
) -> None:
    attempt = await sink.send(alert_event(details={"bad": "\ud800"}), T0)
    assert (attempt.outcome, attempt.status) == (Outcome.REJECTED, None)
    assert KEY not in attempt.request
    assert peer.requests == []
