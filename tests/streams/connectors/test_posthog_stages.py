"""Stages of ``funnel.posthog.ingested`` through the worker's own decoder: the default flows
count ``accepted`` (and a record without ``stage``, as producers wrote it before stages),
never ``delivered``; a flow can require ``delivered`` with the completion filter."""

from __future__ import annotations

import orjson
import pytest

from streams.errors import InputError
from streams.flows import load_flows
from streams.flows.config import parse_flows
from streams.pipeline.decoder import Decoder

TOPIC = "funnel.posthog.ingested"
DELIVERED_FLOWS = """
flows:
  - name: lead_delivered
    start: {topic: funnel.lead.captured, key: lead_id}
    completion:
      topic: funnel.posthog.ingested
      key: source_id
      filter: 'source == "lead.captured" and stage == "delivered"'
    target: 1m
"""


def _record(**fields: object) -> bytes:
    base: dict[str, object] = {
        "event_id": "ph-1",
        "occurred_at": 1_777_000_000_000,
        "source": "lead.captured",
        "source_id": "L-1",
    }
    return orjson.dumps({**base, **fields})


def _flows_of(decoder: Decoder, raw: bytes) -> list[str]:
    return [e.flow for e in decoder.decode(TOPIC, 0, 0, raw)]


@pytest.mark.parametrize(
    ("fields", "flows"),
    [
        ({}, ["lead_to_posthog"]),
        ({"stage": "accepted"}, ["lead_to_posthog"]),
        ({"stage": "delivered"}, []),
        ({"stage": "accepted", "source": "payment.webhook_received"}, ["payment_to_posthog"]),
        ({"source": "payment.webhook_received"}, ["payment_to_posthog"]),
        ({"stage": "delivered", "source": "payment.webhook_received"}, []),
    ],
)
def test_the_default_flows_count_accepted_or_no_stage(
    fields: dict[str, object], flows: list[str]
) -> None:
    assert _flows_of(Decoder(load_flows(None)), _record(**fields)) == flows


def test_a_flow_can_require_delivered() -> None:
    decoder = Decoder(parse_flows(DELIVERED_FLOWS, "flows.yaml"))
    assert _flows_of(decoder, _record(stage="delivered")) == ["lead_delivered"]
    assert _flows_of(decoder, _record(stage="accepted")) == []
    assert _flows_of(decoder, _record()) == []
    assert _flows_of(decoder, _record(stage="delivered", source="payment.webhook_received")) == []


@pytest.mark.parametrize("stage", ["queryable", 1, None])
def test_an_unknown_stage_is_a_schema_violation(stage: object) -> None:
    with pytest.raises(InputError) as info:
        Decoder(load_flows(None)).decode(TOPIC, 0, 0, _record(stage=stage))
    assert info.value.reason == "schema_violation"
    assert "stage" in info.value.detail


def test_a_record_without_stage_and_key_still_names_the_missing_key() -> None:
    """The stage default applies while the decoder looks for the most specific reason."""
    raw = orjson.dumps({"event_id": "ph-2", "occurred_at": 1, "source": "lead.captured"})
    with pytest.raises(InputError) as info:
        Decoder(load_flows(None)).decode(TOPIC, 0, 0, raw)
    assert info.value.reason == "missing_key"
