"""The freshness.alerts and freshness.alert-deliveries contracts: one encoder and one
decoder each, their round trip, and the schemas the encoded records meet."""

from __future__ import annotations

import jsonschema
import orjson
import pytest

from streams.alerting.records import (
    AlertState,
    DeliveryRecord,
    SinkCounts,
    decode_alert,
    decode_progress,
    encode_alert,
    encode_progress,
)
from streams.schemas import load_schema
from streams.testing.peers.alerts import alert_event

STATE = AlertState(alert_event(version=0, details={"open_overdue": 2}), ("pagerduty", "webhook"))


def _valid(schema: str, value: bytes) -> None:
    jsonschema.Draft202012Validator(load_schema(schema)).validate(orjson.loads(value))


def test_an_alert_state_round_trips_at_the_offset_it_was_read_from() -> None:
    key, value = encode_alert(STATE)
    assert key == STATE.alert_id.encode()
    _valid("output/alert.schema.json", value)
    back = decode_alert(value, offset=1042)
    assert back == STATE.at_version(1042)
    assert "version" not in orjson.loads(value)  # the version is the offset, not a field


def test_the_alert_value_has_the_fields_of_design_section_9() -> None:
    _, value = encode_alert(STATE)
    assert list(orjson.loads(value)) == [
        "alert_id",
        "flow",
        "alert",
        "severity",
        "status",
        "since",
        "updated_at",
        "summary",
        "details",
        "routes",
    ]


@pytest.mark.parametrize(
    "record",
    [
        DeliveryRecord("pagerduty", STATE.alert_id, 7, "firing", "delivered", 1_000),
        DeliveryRecord("webhook", STATE.alert_id, 8, "resolved", "dead_lettered", 9, 410, "gone"),
        SinkCounts("alertmanager", delivered=3, resent=40, retried=2, updated_at=5),
    ],
)
def test_progress_records_round_trip_and_meet_their_schema(
    record: DeliveryRecord | SinkCounts,
) -> None:
    key, value = encode_progress(record)
    assert key == record.key.encode()
    _valid("output/alert_delivery.schema.json", value)
    assert decode_progress(value) == record


def test_a_dead_letters_response_is_cut_to_4_kib() -> None:
    long = DeliveryRecord("webhook", "a/b/c", 1, "firing", "dead_lettered", 1, 400, "x" * 9000)
    _, value = encode_progress(long)
    assert len(orjson.loads(value)["response"]) == 4096


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"{nope", "not JSON"),
        (b"[]", "not a JSON object"),
        (orjson.dumps({**orjson.loads(encode_alert(STATE)[1]), "status": "open"}), "status"),
        (orjson.dumps({**orjson.loads(encode_alert(STATE)[1]), "since": -1}), "since"),
        (orjson.dumps({**orjson.loads(encode_alert(STATE)[1]), "alert_id": ""}), "alert_id"),
    ],
)
def test_a_bad_alert_record_is_refused_saying_why(value: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_alert(value, 0)


def test_a_bad_progress_record_is_refused_saying_why() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        decode_progress(b'{"kind": "other"}')
    record = DeliveryRecord("s", "a", 1, "firing", "delivered", 1)
    value = orjson.loads(encode_progress(record)[1])
    with pytest.raises(ValueError, match="http_status"):
        decode_progress(orjson.dumps({**value, "http_status": "500"}))


def test_counts_add_up_by_result() -> None:
    counts = SinkCounts("pagerduty", delivered=1, retried=2, updated_at=1)
    more = counts.plus({"delivered": 2, "dead_lettered": 1}, updated_at=9)
    assert more.by_result() == {"delivered": 3, "resent": 0, "retried": 2, "dead_lettered": 1}
    assert more.updated_at == 9
