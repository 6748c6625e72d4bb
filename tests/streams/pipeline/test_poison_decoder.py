"""Repeated JSON keys: refused as ``schema_violation`` naming the key, wherever they are,
and never a false refusal; the cheap pre-check never clears a record that repeats a key.

The reference is the standard library's parser with an ``object_pairs_hook`` that sees
every pair, which is what the decoder's own slow path uses; hypothesis builds objects of
every shape (nesting, lists, commas and colons in strings, escapes, whitespace) and
repeats one of their keys, or not.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from streams.errors import InputError
from streams.flows import load_flows
from streams.pipeline.decoder import Decoder, _may_repeat_a_key

LEAD = "funnel.lead.captured"
VALID = {"event_id": "e-1", "lead_id": "L-1", "occurred_at": "2026-04-23T10:46:57.123Z"}
DECODER = Decoder(load_flows(None))


def repeats(raw: bytes) -> bool:
    found = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        names = [k for k, _ in pairs]
        found = found or len(set(names)) < len(names)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return found


def reason(raw: bytes) -> tuple[str, str] | None:
    try:
        DECODER.decode(LEAD, 0, 0, raw)
    except InputError as exc:
        return exc.reason, exc.detail
    return None


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"event_id":"e-1","lead_id":"L-1","lead_id":"L-2","occurred_at":0}', "lead_id"),
        (b'{"lead_id":4711,"event_id":"e-1","lead_id":"L-1","occurred_at":0}', "lead_id"),
        (b'{"event_id":"e-1","lead_id":"L-1","occurred_at":0,"occurred_at":1}', "occurred_at"),
        (b'{ "event_id" : "e-1" , "event_id" : "e-2" , "lead_id":"L","occurred_at":0}', "event_id"),
        (b'{"event_id":"e-1","lead_id":"L-1","occurred_at":0,"x":{"a":1,"a":2}}', "a"),
        (b'{"event_id":"e-1","lead_id":"L-1","occurred_at":0,"x":[{"b":[],"b":{}}]}', "b"),
        (
            b'{"event_id":"e-1","lead_id":"L-1","occurred_at":0,"x":{"a":"\\u003a","a":"\\u003a"}}',
            "a",
        ),
        (b'{"event_id":"e-1","lead_id":"L-1","occurred_at":0,"\\u0063":1,"c":2}', "c"),
        (b'{"event_id":"e-1","lead_id":"L-1","occurred_at":0,"":null,"":1}', ""),
    ],
)
def test_a_repeated_key_is_a_schema_violation_naming_it(raw: bytes, key: str) -> None:
    got = reason(raw)
    assert got is not None
    assert got[0] == "schema_violation"
    assert f"key {key!r} appears more than once" in got[1]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"note": "a, b, c"},
        {"note": "10:46:57, 10:47:00"},
        {"nested": {"a": 1, "b": [1, 2, {"a": 2}]}, "list": [{"a": 1}, {"a": 1}]},
        {"escaped": 'quote " and backslash \\ and colon :'},
        {"a,b": 1, "c:d": 2},
    ],
)
def test_records_without_a_repeat_are_accepted(extra: dict[str, object]) -> None:
    assert reason(orjson.dumps({**VALID, **extra})) is None


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(alphabet=st.sampled_from(list('ab:,"\\ {}[]é\n')), max_size=8),
)
names = st.text(alphabet=st.sampled_from(list('ab:,"\\ ')), max_size=3)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12,
)


def texts(value: object, spaced: bool) -> str:
    return json.dumps(value, ensure_ascii=not spaced, separators=(" , ", " : ") if spaced else None)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A record of :data:`VALID` plus extra fields, maybe with one key written twice at some
    depth, serialised with or without spaces and escapes."""
    extra = draw(st.dictionaries(names.filter(lambda n: n not in VALID), values, max_size=4))
    spaced = draw(st.booleans())
    body = texts({**VALID, **extra}, spaced)
    if draw(st.booleans()):
        # repeat one key of some object in the text: insert `"k": v,` after its `{`
        objects = [i for i, ch in enumerate(body) if ch == "{" and _outside_string(body, i)]
        at = draw(st.sampled_from(objects))
        present = list(json.JSONDecoder().raw_decode(body, at)[0])
        key = draw(st.sampled_from(present) if present else names)
        pair = f"{json.dumps(key)}:{json.dumps(draw(scalars))}"
        closing = body[at + 1 :].lstrip().startswith("}")
        body = body[: at + 1] + pair + ("" if closing else ",") + body[at + 1 :]
        if closing:  # an empty object: write the key twice
            body = body[: at + 1] + pair + "," + body[at + 1 :]
    return body.encode()


def _outside_string(text: str, at: int) -> bool:
    inside, escaped = False, False
    for ch in text[:at]:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            inside = not inside
    return not inside


@given(raw=records())
@settings(max_examples=500, deadline=None)
def test_the_decoder_refuses_exactly_the_records_that_repeat_a_key(raw: bytes) -> None:
    repeated = repeats(raw)
    event("repeats a key" if repeated else "repeats no key")
    if repeated:
        assert _may_repeat_a_key(raw, orjson.loads(raw)), "the pre-check cleared a repeat"
    got = reason(raw)
    if repeated:
        assert got is not None
        assert got[0] == "schema_violation"
        assert "appears more than once" in got[1]
    else:
        assert got is None
