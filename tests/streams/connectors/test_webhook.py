"""The signed-webhook connector against the local Standard Webhooks receiver, and both
signature implementations against the specification's published example."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from streams.connectors.sink import Link, Outcome
from streams.connectors.webhook import (
    WebhookConfig,
    WebhookSink,
    message_id,
    sign,
    signing_key,
    webhook_body,
)
from streams.errors import ConfigError
from streams.testing.peers.alerts import T0, alert_event
from streams.testing.peers.server import Answer
from streams.testing.peers.webhook import WebhookReceiver, expected_signature, verify

# The example of standard-webhooks/standard-webhooks (libraries/python/tests/test_webhooks.py,
# test_sign_function): the reference libraries are checked against the same vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="  # 33 bytes


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET, clock=lambda: T0 + 400) as running:
        yield running


@pytest.fixture
async def sink(receiver: WebhookReceiver) -> AsyncIterator[WebhookSink]:
    connector = WebhookSink(WebhookConfig(f"{receiver.url}/hooks/freshness", SECRET))
    yield connector
    await connector.aclose()


def test_the_sender_signs_the_specifications_example() -> None:
    key = signing_key(SPEC_SECRET)
    assert sign(key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_the_receiver_verifies_the_specifications_example() -> None:
    assert "v1," + expected_signature(SPEC_SECRET, SPEC_ID, "1614265330", SPEC_BODY) == (
        SPEC_SIGNATURE
    )
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1a,bm9wZQ== " + SPEC_SIGNATURE,
    }
    assert verify(SPEC_SECRET, headers, SPEC_BODY, SPEC_TIMESTAMP + 10, 300) is None
    tampered = SPEC_BODY.replace(b"2", b"3")
    assert verify(SPEC_SECRET, headers, tampered, SPEC_TIMESTAMP, 300) == "no v1 signature matches"
    assert "more than 300 s" in str(
        verify(SPEC_SECRET, headers, SPEC_BODY, SPEC_TIMESTAMP + 301, 300)
    )


def test_secrets_are_whsec_base64_or_plain_text_of_at_least_24_bytes() -> None:
    key = signing_key(SPEC_SECRET)
    assert key == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert len(key) == 24
    assert signing_key("a plain secret of 24 bytes") == b"a plain secret of 24 bytes"
    with pytest.raises(ConfigError, match="not base64"):
        signing_key("whsec_not*base64")
    with pytest.raises(ConfigError, match="at least 24 bytes"):
        signing_key("whsec_c2hvcnQ=")
    with pytest.raises(ConfigError, match="at least 24 bytes"):
        WebhookConfig("http://127.0.0.1/x", "short")


def test_the_webhook_id_is_the_alert_id_and_version_without_full_stops() -> None:
    assert message_id(alert_event(version=7)) == "funnel-freshness/lead_to_posthog/page-fast/7"
    dotted = alert_event("my.app/flow%1/stuck", version=3)
    assert message_id(dotted) == "my%2Eapp/flow%251/stuck/3"


def test_the_body_carries_the_whole_state() -> None:
    event = alert_event(
        version=9, status="resolved", updated_at=T0 + 60_000, links=(Link("http://x", "x"),)
    )
    assert webhook_body(event) == {
        "type": "freshness.alert.resolved",
        "timestamp": "2026-04-23T10:47:57.000Z",
        "data": {
            "alert_id": "funnel-freshness/lead_to_posthog/page-fast",
            "version": 9,
            "flow": "lead_to_posthog",
            "alert": "page-fast",
            "severity": "critical",
            "status": "resolved",
            "since": T0,
            "updated_at": T0 + 60_000,
            "summary": event.summary,
            "details": {"burn_rate_1h": 20.5, "bad": 42},
            "links": [{"href": "http://x", "text": "x"}],
        },
    }


async def test_a_delivery_is_signed_and_verified_by_the_receiver(
    receiver: WebhookReceiver, sink: WebhookSink
) -> None:
    attempt = await sink.send(alert_event(version=4), T0 + 1234)
    assert (attempt.outcome, attempt.status) == (Outcome.DELIVERED, 204)
    assert receiver.refused == []
    [delivery] = receiver.deliveries
    assert delivery.webhook_id == "funnel-freshness/lead_to_posthog/page-fast/4"
    assert delivery.timestamp == (T0 + 1234) // 1000
    assert delivery.json()["data"]["version"] == 4
    request = receiver.requests[0]
    assert request.path == "/hooks/freshness"
    assert request.headers["webhook-signature"].startswith("v1,")


async def test_a_retry_of_the_same_state_keeps_its_webhook_id(
    receiver: WebhookReceiver, sink: WebhookSink
) -> None:
    await sink.send(alert_event(version=4), T0)
    await sink.send(alert_event(version=4), T0 + 5000)
    await sink.send(alert_event(version=5), T0 + 6000)
    assert [d.duplicate for d in receiver.deliveries] == [False, True, False]
    assert len(receiver.payloads()) == 2


async def test_a_wrong_secret_is_refused_for_good(receiver: WebhookReceiver) -> None:
    wrong = WebhookSink(WebhookConfig(receiver.url, "whsec_" + "A" * 32))
    try:
        attempt = await wrong.send(alert_event(), T0)
    finally:
        await wrong.aclose()
    assert (attempt.outcome, attempt.status) == (Outcome.REJECTED, 401)
    assert "no v1 signature matches" in attempt.body
    assert receiver.deliveries == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (410, Outcome.REJECTED),
        (404, Outcome.REJECTED),
        (429, Outcome.RETRY),
        (502, Outcome.RETRY),
    ],
)
async def test_any_2xx_is_delivery_and_429_and_5xx_are_retried(
    receiver: WebhookReceiver, sink: WebhookSink, status: int, outcome: Outcome
) -> None:
    receiver.cue(Answer(status, b"scripted", {"Retry-After": "3"}))
    attempt = await sink.send(alert_event(), T0)
    assert (attempt.outcome, attempt.status, attempt.body) == (outcome, status, "scripted")
    assert attempt.retry_after_ms == 3000
