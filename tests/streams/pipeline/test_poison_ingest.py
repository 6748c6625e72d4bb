"""Poison input through :class:`Ingest`: every record ends in exactly one place.

Hypothesis builds batches of records that are valid, valid but lying (far-future and
far-past times, a key of exactly 256 characters, one key flooded), or broken at one field
path (wrong type, absent, empty, a repeated key), mixed with random bytes, invalid UTF-8,
deep nesting, huge numbers, ``NaN``, non-objects, tombstones and a 1 MiB + 1 byte record.
The properties: nothing raises; each record is either forwarded as flow events, quarantined
once with a documented reason (a record its schema accepts), or counted as unmatched;
a record built to be valid is forwarded, and one built to break gets the reason it was
built for; no forwarded event time lies beyond the future-time allowance (so no watermark
can be carried to 9999).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.model import Flow
from streams.core.paths import set_path
from streams.core.timeparse import MAX_EPOCH_MS, format_event_time
from streams.flows import load_flows
from streams.pipeline.decoder import MAX_KEY_CHARS, Decoder
from streams.pipeline.ingest import Ingest
from streams.pipeline.quarantine import MAX_RECORD_BYTES, REASONS
from streams.testing.records import valid_record

FLOWS: tuple[Flow, ...] = tuple(load_flows(None))
DECODER = Decoder(FLOWS)
NOW = 1_780_000_000_000
SKEW = 300_000
UNKNOWN_TOPIC = "funnel.not.configured"
QUARANTINE_SCHEMA = json.loads(
    (Path(__file__).parents[3] / "schemas/output/quarantine.schema.json").read_text()
)
OVERSIZE = (
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"pad":"' + b"x" * MAX_RECORD_BYTES + b'"}'
)


@dataclass(frozen=True)
class Case:
    """One input record and what it was built to be: ``"events"``, a set of allowed
    reasons, or ``None`` (anything documented will do: random bytes)."""

    topic: str
    timestamp: int
    raw: bytes | None
    expect: str | frozenset[str] | None


def key_path(flow: Flow, side: str) -> tuple[str, ...]:
    return flow.start_key if side == "start" else flow.end_key


def time_path(flow: Flow, side: str) -> tuple[str, ...]:
    return flow.start_time if side == "start" else flow.end_time


def topic_of(flow: Flow, side: str) -> str:
    return flow.start_topic if side == "start" else flow.end_topic


keys = st.one_of(
    st.text(min_size=1, max_size=40),
    st.just("K" * MAX_KEY_CHARS),
    st.just("flood"),
)
near_times = st.integers(NOW - 3_600_000, NOW - 10 + SKEW)  # within the allowance
far_past = st.integers(0, NOW - 365 * 86_400_000)
far_future = st.integers(NOW + SKEW + 1, MAX_EPOCH_MS)
as_text = st.booleans()


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    """A record the monitor must forward, some of them lying about their time."""
    flow = draw(st.sampled_from(FLOWS))
    side = draw(st.sampled_from(["start", "end"]))
    at = draw(st.one_of(near_times, far_past, st.just(0)))
    time: int | str = format_event_time(at) if draw(as_text) else at
    rec = valid_record(flow, side, draw(keys), draw(st.text(min_size=1, max_size=128)), time)
    return Case(
        topic_of(flow, side), draw(st.sampled_from([-1, NOW, NOW - 10])), dumps(rec), "events"
    )


WRONG_VALUES = st.sampled_from([None, 0, -1, 1.5, True, [], {}, "", [1], {"a": 1}])
BAD_TIMES = st.sampled_from(
    [-1, MAX_EPOCH_MS + 1, 1.5, True, [], {}, "", "2026-04-23T10:46:57", "20260423T104657Z"]
)


@st.composite
def lying_cases(draw: st.DrawFn) -> Case:
    """A valid record with one thing wrong, and the reason that thing must get."""
    flow = draw(st.sampled_from(FLOWS))
    side = draw(st.sampled_from(["start", "end"]))
    rec = valid_record(flow, side, "K-1", "e-1", NOW - 1000)
    kind = draw(st.sampled_from(["future", "long_key", "key", "time", "event_id", "repeat"]))
    topic = topic_of(flow, side)
    expect: frozenset[str]
    if kind == "future":
        at = draw(far_future)
        set_path(rec, time_path(flow, side), format_event_time(at) if draw(as_text) else at)
        expect = frozenset({"future_time"})
    elif kind == "long_key":
        set_path(rec, key_path(flow, side), "K" * (MAX_KEY_CHARS + draw(st.integers(1, 300))))
        expect = frozenset({"schema_violation"})
    elif kind == "key":
        set_path(rec, key_path(flow, side), draw(WRONG_VALUES))
        expect = frozenset({"missing_key"})
    elif kind == "time":
        value = draw(st.one_of(BAD_TIMES, st.none()))
        set_path(rec, time_path(flow, side), value)
        expect = frozenset({"missing_time"} if value is None else {"unparsable_time"})
    elif kind == "event_id":
        rec["event_id"] = draw(st.one_of(WRONG_VALUES, st.just("e" * 129)))
        expect = frozenset({"schema_violation"})
    else:  # the same key twice: last-wins parsers would read only the valid second value
        name = draw(st.sampled_from(sorted(rec)))
        raw = dumps(rec)
        raw = b'{"' + name.encode() + b'":' + dumps(draw(WRONG_VALUES)) + b"," + raw[1:]
        return Case(topic, NOW, raw, frozenset({"schema_violation"}))
    return Case(topic, NOW, dumps(rec), expect)


NAN_AND_HUGE = [
    b'{"event_id":"e","lead_id":"L","occurred_at":NaN}',
    b'{"event_id":"e","lead_id":"L","occurred_at":1e400}',
    b'{"event_id":"e","lead_id":"L","occurred_at":' + b"9" * 5000 + b"}",
    b'{"event_id":"e","lead_id":"L","occurred_at":18446744073709551616}',
    b'{"event_id":"e","lead_id":"L","occurred_at":1.5e12}',
    b'{"event_id":"e","lead_id":"\xff\xfe","occurred_at":0}',
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"x":' + b"[" * 1024 + b"]" * 1024 + b"}",
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"x":' + b"[" * 1025 + b"]" * 1025 + b"}",
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"x":'
    + b"[" * 990
    + b'{"a":1,"a":2}'
    + b"]" * 990
    + b"}",
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"x":{"a":"\\u003a","a":"\\u003a"}}',
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"":null,"":1}',
    b'{"event_id":"e","lead_id":"L","occurred_at":0,"a":"x,y","a":"x:y"}',
    b"[]",
    b"null",
    b'"text"',
    b"",
    OVERSIZE,
]


@st.composite
def garbage_cases(draw: st.DrawFn) -> Case:
    """Anything at all: its reason is only required to be documented."""
    raw = draw(
        st.one_of(
            st.binary(max_size=200),
            st.none(),
            st.sampled_from(NAN_AND_HUGE),
            st.builds(
                lambda v: json.dumps(v).encode(), st.recursive(st.none() | st.integers(), st.lists)
            ),
        )
    )
    topic = draw(st.sampled_from([*{f.start_topic for f in FLOWS}, UNKNOWN_TOPIC]))
    return Case(topic, draw(st.integers(-1, MAX_EPOCH_MS)), raw, None)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


cases = st.lists(st.one_of(valid_cases(), lying_cases(), garbage_cases()), max_size=30)


@given(batch=cases)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_record_ends_in_exactly_one_place(batch: list[Case]) -> None:
    ingest = Ingest(DECODER, 8, max_future_skew_ms=SKEW)
    records = [(c.topic, 0, i, c.timestamp, c.raw) for i, c in enumerate(batch)]
    result = ingest.process(records, NOW)

    forwarded = Counter(ev.offset for evs in result.batches.values() for ev in evs)
    quarantined = {int(rec["offset"]): rec for _, rec in result.quarantine}
    assert len(quarantined) == len(result.quarantine), "a record was quarantined twice"
    assert [r[:3] for r in result.read] == [r[:3] for r in records]  # each read once, in order
    unmatched = 0
    for i, case in enumerate(batch):
        rec = quarantined.get(i)
        assert not (rec is not None and forwarded[i]), f"record {i} is in two places"
        if rec is not None:
            jsonschema.validate(rec, QUARANTINE_SCHEMA)
            assert rec["reason"] in REASONS
            assert rec["raw_size"] == (0 if case.raw is None else len(case.raw))
            if isinstance(case.expect, frozenset):
                assert rec["reason"] in case.expect, (case, rec["detail"])
            else:
                assert case.expect != "events", (case, rec["detail"])
        elif forwarded[i]:
            assert case.expect in ("events", None), f"record {i} was forwarded: {case}"
        else:
            unmatched += 1
            assert case.expect is None, case
    assert unmatched == result.unmatched
    for _, _, offset, at in result.read:
        c = batch[offset]
        written = c.timestamp if 0 <= c.timestamp < NOW else NOW
        assert at is None or at <= written + SKEW, "a forwarded time lies beyond the allowance"


def test_a_flood_of_one_key_is_forwarded_whole_to_one_join_partition() -> None:
    flow = FLOWS[0]
    ingest = Ingest(DECODER, 8, max_future_skew_ms=SKEW)
    records = [
        (flow.start_topic, 0, i, NOW, dumps(valid_record(flow, "start", "flood", f"e{i}", NOW)))
        for i in range(10_000)
    ]
    result = ingest.process(records, NOW)
    assert result.quarantine == []
    ((_, events),) = result.batches.items()
    assert [ev.offset for ev in events] == list(range(10_000))
    assert {ev.key for ev in events} == {"flood"}


def test_a_key_of_256_characters_is_accepted_and_257_refused() -> None:
    flow = FLOWS[0]
    ingest = Ingest(DECODER, 8, max_future_skew_ms=SKEW)
    raws = [dumps(valid_record(flow, "start", "K" * n, f"e{n}", NOW)) for n in (256, 257)]
    result = ingest.process([(flow.start_topic, 0, i, NOW, r) for i, r in enumerate(raws)], NOW)
    ((_, (event,)),) = result.batches.items()
    assert len(event.key) == MAX_KEY_CHARS
    ((_, refused),) = result.quarantine
    assert (refused["offset"], refused["reason"]) == (1, "schema_violation")


def test_the_oversize_record_is_quarantined_with_a_cut_copy_its_size_and_hash() -> None:
    ingest = Ingest(DECODER, 8, max_future_skew_ms=SKEW)
    result = ingest.process([(FLOWS[0].start_topic, 0, 0, NOW, OVERSIZE)], NOW)
    ((_, rec),) = result.quarantine
    assert (rec["reason"], rec["raw_size"], rec["truncated"]) == (
        "too_large",
        len(OVERSIZE),
        True,
    )
    assert len(OVERSIZE) > MAX_RECORD_BYTES
    assert base64.b64decode(str(rec["raw_b64"])) == OVERSIZE[: 64 * 1024]
    assert str(rec["detail"]).endswith(f"; sha256 {hashlib.sha256(OVERSIZE).hexdigest()}")
    jsonschema.validate(rec, QUARANTINE_SCHEMA)
