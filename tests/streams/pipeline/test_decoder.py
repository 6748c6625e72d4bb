"""The input decoder: every reason code, filters, multi-flow mapping, custom paths, limits."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.model import CompletionFilter, Flow, FlowEvent
from streams.errors import InputError
from streams.flows import load_flows
from streams.pipeline.decoder import Decoder
from streams.pipeline.quarantine import MAX_RECORD_BYTES, REASONS

T0 = "2026-04-23T10:46:57.123Z"
T0_MS = 1_776_941_217_123


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    return Decoder(load_flows(None))


def rec(**fields: object) -> bytes:
    return orjson.dumps(fields)


def reason_of(decoder: Decoder, topic: str, raw: bytes | None) -> InputError:
    with pytest.raises(InputError) as info:
        decoder.decode(topic, 3, 42, raw)
    assert info.value.reason in REASONS
    return info.value


def test_start_record_becomes_one_start_event(decoder: Decoder) -> None:
    raw = rec(event_id="e-1", occurred_at=T0, lead_id="L-1", extra={"ignored": True})
    assert decoder.decode("funnel.lead.captured", 3, 42, raw) == [
        FlowEvent("lead_to_posthog", "L-1", "start", "e-1", T0_MS, "funnel.lead.captured", 3, 42)
    ]


def test_epoch_ms_time(decoder: Decoder) -> None:
    raw = rec(event_id="e-1", occurred_at=T0_MS, entry_id="D-1", queue="billing")
    (event,) = decoder.decode("funnel.dlq.entry_created", 0, 0, raw)
    assert (event.flow, event.side, event.occurred_at) == ("dlq_first_retry", "start", T0_MS)


@pytest.mark.parametrize(
    ("source", "flow"),
    [("lead.captured", "lead_to_posthog"), ("payment.webhook_received", "payment_to_posthog")],
)
def test_posthog_ingested_is_routed_by_its_filter(decoder: Decoder, source: str, flow: str) -> None:
    raw = rec(event_id="p-1", occurred_at=T0, source_id="X-1", source=source)
    (event,) = decoder.decode("funnel.posthog.ingested", 1, 7, raw)
    assert (event.flow, event.side, event.key) == (flow, "end", "X-1")


def test_completion_matching_no_filter_is_unmatched_not_an_error() -> None:
    flow = Flow(
        "f", "a.start", "a.done", ("id",), ("id",),
        end_filter=CompletionFilter(("kind",), "in", ("ok", "done")),
    )  # fmt: skip
    decoder = Decoder([flow])
    assert decoder.decode("a.done", 0, 0, rec(event_id="e", occurred_at=1, id="k", kind="no")) == []
    assert decoder.decode("a.done", 0, 0, rec(event_id="e", occurred_at=1, id="k")) == []
    (event,) = decoder.decode("a.done", 0, 0, rec(event_id="e", occurred_at=1, id="k", kind="ok"))
    assert event.side == "end"


def test_one_record_serves_several_flows_and_sides() -> None:
    flows = [
        Flow("a_to_b", "t.a", "t.b", ("id",), ("ref",)),
        Flow("b_to_c", "t.b", "t.c", ("id",), ("id",)),
        Flow("a_to_b_fast", "t.a", "t.b", ("id",), ("ref",), target_ms=100),
    ]
    decoder = Decoder(flows)
    raw = rec(event_id="e-b", occurred_at=5, id="B-1", ref="A-1")
    events = decoder.decode("t.b", 2, 9, raw)
    assert [(e.flow, e.side, e.key) for e in events] == [
        ("a_to_b", "end", "A-1"),
        ("b_to_c", "start", "B-1"),
        ("a_to_b_fast", "end", "A-1"),
    ]
    assert all((e.topic, e.partition, e.offset, e.event_id) == ("t.b", 2, 9, "e-b") for e in events)
    assert decoder.topics == ("t.a", "t.b", "t.c")
    assert [m.flow for m in decoder.mappings("t.a")] == ["a_to_b", "a_to_b_fast"]
    assert decoder.mappings("nope") == ()


def test_custom_key_and_time_paths_on_a_topic_without_schema() -> None:
    flow = Flow(
        "nested", "app.start", "app.done", ("payload", "lead", "id"), ("ref",),
        start_time=("meta", "ts"),
    )  # fmt: skip
    decoder = Decoder([flow])
    assert decoder.schema_of("app.start") == "common/event.schema.json"
    raw = rec(event_id="e", meta={"ts": T0}, payload={"lead": {"id": "L-9"}})
    (event,) = decoder.decode("app.start", 0, 0, raw)
    assert (event.key, event.occurred_at) == ("L-9", T0_MS)
    err = reason_of(decoder, "app.start", rec(event_id="e", meta={"ts": T0}, payload={"lead": 1}))
    assert err.reason == "missing_key"
    assert "'payload.lead.id' is missing" in err.detail
    err = reason_of(decoder, "app.start", rec(event_id="e", payload={"lead": {"id": "L"}}))
    assert (err.reason, err.detail) == ("missing_time", "flow 'nested': time 'meta.ts' is missing")
    bad_time = rec(event_id="e", meta={"ts": "yesterday"}, payload={"lead": {"id": "L"}})
    assert reason_of(decoder, "app.start", bad_time).reason == "unparsable_time"
    # the completion side reads occurred_at, so the fallback schema requires it there
    assert reason_of(decoder, "app.done", rec(event_id="e", ref="L")).reason == "missing_time"


def test_known_topics_use_their_schema_file(decoder: Decoder) -> None:
    assert decoder.schema_of("funnel.lead.captured") == "input/funnel.lead.captured.schema.json"
    assert decoder.schema_of("nope") is None


# --- every reason code ---------------------------------------------------------------------


def test_unknown_topic(decoder: Decoder) -> None:
    err = reason_of(decoder, "funnel.unknown", rec(event_id="e", occurred_at=T0))
    assert (err.reason, err.detail) == (
        "unknown_topic",
        "no configured flow reads topic 'funnel.unknown'",
    )


@pytest.mark.parametrize("raw", [None, b""])
def test_tombstone_and_empty_are_not_json(decoder: Decoder, raw: bytes | None) -> None:
    err = reason_of(decoder, "funnel.lead.captured", raw)
    assert (err.reason, err.detail) == ("not_json", "empty record")


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b'{"a":1}x', b"NaN"])
def test_not_json(decoder: Decoder, raw: bytes) -> None:
    err = reason_of(decoder, "funnel.lead.captured", raw)
    assert err.reason == "not_json"
    assert err.detail


@pytest.mark.parametrize(
    ("raw", "kind"), [(b"[1]", "array"), (b'"s"', "string"), (b"1", "number"), (b"null", "null")]
)
def test_not_object(decoder: Decoder, raw: bytes, kind: str) -> None:
    err = reason_of(decoder, "funnel.lead.captured", raw)
    assert (err.reason, err.detail) == ("not_object", f"expected a JSON object, got {kind}")


def _padded(size: int) -> bytes:
    head = rec(event_id="e", occurred_at=T0, lead_id="L-1", pad="")
    raw = head[:-2] + b"x" * (size - len(head)) + b'"}'
    assert len(raw) == size
    return raw


def test_one_mib_is_accepted_one_more_byte_is_too_large(decoder: Decoder) -> None:
    (event,) = decoder.decode("funnel.lead.captured", 0, 0, _padded(MAX_RECORD_BYTES))
    assert event.key == "L-1"
    err = reason_of(decoder, "funnel.lead.captured", _padded(MAX_RECORD_BYTES + 1))
    assert (err.reason, err.detail) == ("too_large", "1048577 bytes; the limit is 1048576")


def test_too_large_is_checked_before_parsing(decoder: Decoder) -> None:
    err = reason_of(decoder, "funnel.lead.captured", b"\x00" * (MAX_RECORD_BYTES + 1))
    assert err.reason == "too_large"


LEAD = "funnel.lead.captured"
BASE = {"event_id": "e", "occurred_at": T0}


@pytest.mark.parametrize(
    ("topic", "fields", "detail"),
    [
        (LEAD, {"occurred_at": T0, "lead_id": "L"}, "data must contain ['event_id']"),
        (LEAD, {**BASE, "event_id": "", "lead_id": "L"}, "data.event_id must be longer"),
        (LEAD, {**BASE, "event_id": "e" * 129, "lead_id": "L"}, "data.event_id must be shorter"),
        (LEAD, {**BASE, "event_id": 5, "lead_id": "L"}, "data.event_id must be string"),
        (LEAD, {**BASE, "lead_id": "L" * 257}, "data.lead_id must be shorter"),
        ("funnel.dlq.entry_created", {**BASE, "entry_id": "D"}, "must contain ['queue']"),
        (
            "funnel.posthog.ingested",
            {**BASE, "source_id": "L", "source": "x"},
            "data.source must be one of",
        ),
        ("funnel.dlq.retry_attempted", {**BASE, "entry_id": "D", "attempt": 0}, "data.attempt"),
        ("funnel.dlq.retry_attempted", {**BASE, "entry_id": "D", "attempt": "1"}, "data.attempt"),
        ("funnel.notification.acknowledged", {**BASE, "approval_id": "A"}, "['channel']"),
    ],
)
def test_schema_violation_names_the_field(
    decoder: Decoder, topic: str, fields: dict[str, object], detail: str
) -> None:
    err = reason_of(decoder, topic, orjson.dumps(fields))
    assert err.reason == "schema_violation"
    assert detail in err.detail
    assert err.detail.endswith(f"(schema input/{topic}.schema.json)")


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({}, "flow 'lead_to_posthog': key 'lead_id' is missing"),
        ({"lead_id": ""}, "flow 'lead_to_posthog': key 'lead_id' is empty"),
        ({"lead_id": 12}, "flow 'lead_to_posthog': key 'lead_id' must be a string, got number"),
        ({"lead_id": None}, "flow 'lead_to_posthog': key 'lead_id' is missing"),
        ({"lead_id": ["L"]}, "flow 'lead_to_posthog': key 'lead_id' must be a string, got array"),
    ],
)
def test_missing_key(decoder: Decoder, fields: dict[str, object], detail: str) -> None:
    raw = orjson.dumps({"event_id": "e", "occurred_at": T0, **fields})
    err = reason_of(decoder, "funnel.lead.captured", raw)
    assert (err.reason, err.detail) == ("missing_key", detail)


def test_missing_key_of_the_flow_whose_filter_matches(decoder: Decoder) -> None:
    raw = rec(event_id="e", occurred_at=T0, source="payment.webhook_received")
    err = reason_of(decoder, "funnel.posthog.ingested", raw)
    assert (err.reason, err.detail) == (
        "missing_key",
        "flow 'payment_to_posthog': key 'source_id' is missing",
    )


@pytest.mark.parametrize("value", [None, "absent"])
def test_missing_time(decoder: Decoder, value: str | None) -> None:
    fields: dict[str, object] = {"event_id": "e", "lead_id": "L"}
    if value is None:
        fields["occurred_at"] = None
    err = reason_of(decoder, "funnel.lead.captured", orjson.dumps(fields))
    assert (err.reason, err.detail) == (
        "missing_time",
        "flow 'lead_to_posthog': time 'occurred_at' is missing",
    )


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("2026-04-23T10:46:57", "has no offset"),
        ("2026-04-23 10:46:57Z", "expected an RFC 3339 date-time"),
        ("2026-02-30T00:00:00Z", "day is out of range"),
        ("yesterday", "expected an RFC 3339 date-time"),
        (-1, "out of range"),
        (1.5, "must be an integer"),
        (True, "got bool"),
        ({"t": 1}, "got dict"),
        (10**16, "out of range"),
    ],
)
def test_unparsable_time(decoder: Decoder, value: object, detail: str) -> None:
    raw = orjson.dumps({"event_id": "e", "occurred_at": value, "lead_id": "L"})
    err = reason_of(decoder, "funnel.lead.captured", raw)
    assert err.reason == "unparsable_time"
    assert err.detail.startswith("flow 'lead_to_posthog': time 'occurred_at': ")
    assert detail in err.detail


def test_key_longer_than_limit_on_a_custom_path() -> None:
    decoder = Decoder([Flow("f", "x.start", "x.done", ("k",), ("k",))])
    err = reason_of(decoder, "x.start", rec(event_id="e", occurred_at=1, k="K" * 257))
    assert err.reason == "schema_violation"
    assert "longer than 256" in err.detail
    (event,) = decoder.decode("x.start", 0, 0, rec(event_id="e", occurred_at=1, k="K" * 256))
    assert len(event.key) == 256


def test_integral_float_time_is_accepted(decoder: Decoder) -> None:
    raw = rec(event_id="e", occurred_at=float(T0_MS), lead_id="L")
    (event,) = decoder.decode("funnel.lead.captured", 0, 0, raw)
    assert event.occurred_at == T0_MS


# --- robustness ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["event_id", "occurred_at", "lead_id", "source_id", "source", "entry_id", "attempt"]


@settings(max_examples=300, deadline=None)
@given(
    topic=st.sampled_from(Decoder(load_flows(None)).topics),
    raw=st.binary(max_size=64),
)
def test_any_bytes_give_events_or_an_input_error(topic: str, raw: bytes) -> None:
    _decode_or_input_error(topic, raw)


@settings(max_examples=500, deadline=None)
@given(
    topic=st.sampled_from(Decoder(load_flows(None)).topics),
    fields=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
)
def test_any_object_gives_events_or_an_input_error(topic: str, fields: dict[str, object]) -> None:
    _decode_or_input_error(topic, json.dumps(fields).encode())


_DECODER = Decoder(load_flows(None))


def _decode_or_input_error(topic: str, raw: bytes) -> None:
    reason = None
    events: list[FlowEvent] = []
    try:
        events = _DECODER.decode(topic, 0, 0, raw)
    except InputError as err:
        reason = err.reason
    assert reason is None or reason in REASONS
    for e in events:
        assert e.key
        assert isinstance(e.key, str)
        assert isinstance(e.occurred_at, int)
        assert e.occurred_at >= 0
