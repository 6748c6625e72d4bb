r"""Input decoder: raw Kafka record value → validated :class:`FlowEvent` s, or a quarantine reason.

Guarantees of :meth:`Decoder.decode`:

- it either returns flow events or raises :class:`~streams.errors.InputError` whose ``reason``
  is one of :data:`~streams.pipeline.quarantine.REASONS`; it never raises anything else for any
  byte string, so bad input cannot crash a worker;
- checks run in this order: topic known (``unknown_topic``), value present (``not_json``,
  "empty record"), size <= :data:`~streams.pipeline.quarantine.MAX_RECORD_BYTES` (1 MiB)
  before parsing (``too_large``), JSON (``not_json``), object (``not_object``), no key twice
  in one object, at any depth (``schema_violation`` naming the key: ``orjson`` would keep
  the last value silently, another parser the first, so such a record says two things), the
  topic's schema (``schema_violation``), then per flow the key
  (``missing_key``) and the time (``missing_time``, ``unparsable_time``). When the schema
  fails because of a flow's key or time field, the more specific reason is reported;
- one record yields one event per (flow, side) that reads its topic and whose completion
  filter matches; a completion that matches no filter yields ``[]`` (the caller counts it as
  unmatched, it is not bad input); filters see the record with its schema's ``default``
  values filled in (validation fills them: a ``funnel.posthog.ingested`` record without
  ``stage`` is ``accepted``);
- schemas are compiled once, in the constructor (fastjsonschema); nothing is interpreted per
  event. ``format`` keywords are annotations, as in draft 2020-12 by default; the schemas use
  ``pattern`` where a check matters, and event times are parsed by
  :func:`~streams.core.timeparse.parse_event_time`.

Cost (2-core dev machine, Python 3.11, best of 5): 3.6-3.9 µs per valid
``funnel.lead.captured`` record with an RFC 3339 time, 2.9 µs with an epoch-ms time, 4.2 µs per
``funnel.posthog.ingested`` record (two flows, filters). Of that, ``orjson.loads`` is 0.3 µs,
the compiled schema 1.1 µs, the time parse 0.7 µs and building the frozen ``FlowEvent`` 0.8 µs.
The repeated-key check adds 0.1 µs to such a record (a comma count; the slower counts and
the second parse run only for records they cannot clear, see :func:`_may_repeat_a_key`).
Measure with (from the repository root)::

    .venv/bin/python -m timeit \
      -s 'from streams.pipeline.decoder import Decoder; from streams.flows import load_flows' \
      -s 'd = Decoder(load_flows(None)); t = "funnel.lead.captured"' \
      -s 'r = b"{\"event_id\":\"e-1\",\"lead_id\":\"L-1\","' \
      -s 'r += b"\"occurred_at\":\"2026-04-23T10:46:57.123Z\"}"' \
      'd.decode(t, 0, 1, r)'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import orjson

from streams.core.model import CompletionFilter, Flow, FlowEvent, Side
from streams.core.paths import get_path
from streams.core.timeparse import parse_event_time
from streams.errors import InputError
from streams.pipeline.quarantine import MAX_RECORD_BYTES
from streams.schemas import input_schema_path, load_schema

MAX_KEY_CHARS = 256
"""Longest accepted entity key (the input schemas' ``maxLength`` of key fields)."""

Validator = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Mapping:
    """How a record of one topic becomes an event of one flow: side, key and time paths."""

    flow: str
    side: Side
    key: tuple[str, ...]
    time: tuple[str, ...]
    filter: CompletionFilter | None


@dataclass(frozen=True, slots=True)
class _Plan:
    validate: Validator
    mappings: tuple[Mapping, ...]
    schema: str
    defaults: dict[str, Any]
    """The schema's ``default`` of each top-level property (validation fills them in)."""


class Decoder:
    """Decodes records of every topic the given flows read; build once per process."""

    __slots__ = ("_plans",)

    def __init__(self, flows: Iterable[Flow]) -> None:
        by_topic: dict[str, list[Mapping]] = {}
        for f in flows:
            by_topic.setdefault(f.start_topic, []).append(
                Mapping(f.name, "start", f.start_key, f.start_time, None)
            )
            by_topic.setdefault(f.end_topic, []).append(
                Mapping(f.name, "end", f.end_key, f.end_time, f.end_filter)
            )
        self._plans = {
            topic: _plan(topic, tuple(mappings)) for topic, mappings in sorted(by_topic.items())
        }

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic this decoder accepts, sorted."""
        return tuple(self._plans)

    def mappings(self, topic: str) -> tuple[Mapping, ...]:
        """The (flow, side) mappings of ``topic``, in flow order; ``()`` for an unknown topic."""
        plan = self._plans.get(topic)
        return () if plan is None else plan.mappings

    def schema_of(self, topic: str) -> str | None:
        """Which schema file validates ``topic`` (relative to ``schemas/``), or ``None``."""
        plan = self._plans.get(topic)
        return None if plan is None else plan.schema

    def decode(self, topic: str, partition: int, offset: int, raw: bytes | None) -> list[FlowEvent]:
        """The flow events of one record; raises :class:`InputError` (see the module doc)."""
        plan = self._plans.get(topic)
        if plan is None:
            raise InputError("unknown_topic", f"no configured flow reads topic {topic!r}")
        if not raw:
            raise InputError("not_json", "empty record")
        if len(raw) > MAX_RECORD_BYTES:
            raise InputError("too_large", f"{len(raw)} bytes; the limit is {MAX_RECORD_BYTES}")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InputError("not_json", str(exc)) from None
        if type(obj) is not dict:
            raise InputError("not_object", f"expected a JSON object, got {_json_type(obj)}")
        if _may_repeat_a_key(raw, obj):
            _refuse_repeated_keys(raw, plan.schema)
        try:
            plan.validate(obj)
        except fastjsonschema.JsonSchemaException as exc:
            raise _refine(plan, obj, exc) from None
        event_id = obj.get("event_id")
        if type(event_id) is not str or not event_id:
            raise InputError("schema_violation", "data.event_id must be a non-empty string")
        out: list[FlowEvent] = []
        time_path: tuple[str, ...] = ()
        time_ms = 0
        for m in plan.mappings:
            if m.filter is not None and not m.filter.matches(obj):
                continue
            key = _key(obj, m)
            if m.time != time_path:
                time_ms = _time(obj, m)
                time_path = m.time
            out.append(FlowEvent(m.flow, key, m.side, event_id, time_ms, topic, partition, offset))
        return out


def _may_repeat_a_key(raw: bytes, obj: dict[str, Any]) -> bool:
    """Whether ``raw`` may name a key twice in one object; ``False`` is certain.

    Two counts that a repeated key always raises, cheapest first:

    - commas: an object of ``n`` keys holds ``n - 1`` commas between them, and an inner
      object with a repeat holds at least one more, so a record with fewer commas than
      ``len(obj)`` repeats nothing (a flat record without commas in its strings: most);
    - colons: every key is followed by one ``:``, the other colons of ``raw`` lie inside
      strings. Without a backslash (an escape could hide a colon), the kept strings' colons
      are exactly theirs in ``raw``, so ``colons - kept keys - colons of kept strings`` is at
      least the number of keys ``orjson`` dropped. Key colons are not subtracted (more false
      alarms, never a missed repeat).

    Cost (2-core dev machine, with other work running): 0.1-0.2 µs when the commas decide,
    about 1.5 µs when the colons must (a string with a comma in it, or nested values), and
    about 6 µs more for the second parse (such a record with a backslash, or a real repeat).
    """
    if raw.count(b",") < len(obj):
        return False
    if b"\\" in raw:
        return True
    spare = raw.count(b":") - len(obj)
    nodes: list[Any] = [obj.values()]
    while nodes and spare > 0:
        for value in nodes.pop():
            kind = type(value)
            if kind is str:
                spare -= value.count(":")
            elif kind is dict:
                spare -= len(value)
                nodes.append(value.values())
            elif kind is list:
                nodes.append(value)
    return spare > 0


def _refuse_repeated_keys(raw: bytes, schema: str) -> None:
    """Raise ``schema_violation`` naming the first key ``raw`` repeats within one object.

    ``orjson`` keeps the last value of a repeated key silently, and another JSON parser may
    keep the first: such a record says two things, so it is refused rather than judged on
    one of them. Only records :func:`_may_repeat_a_key` suspects come here (a slower parse,
    numbers left unconverted).
    """
    try:
        json.loads(
            raw,
            object_pairs_hook=_unique_pairs,
            parse_int=_ignored,
            parse_float=_ignored,
            parse_constant=_ignored,
        )
    except _RepeatedKey as exc:
        shown = exc.key if len(exc.key) <= 64 else exc.key[:64] + "..."
        raise InputError(
            "schema_violation",
            f"key {shown!r} appears more than once in one object: JSON does not say which "
            f"value counts (schema {schema})",
        ) from None
    except (RecursionError, ValueError) as exc:  # orjson took it; a check must not crash
        raise InputError(
            "schema_violation",
            f"cannot check that no key appears twice ({type(exc).__name__}: {exc})",
        ) from None


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen.add(key)


def _ignored(_text: str) -> None:
    return None


def _plan(topic: str, mappings: tuple[Mapping, ...]) -> _Plan:
    path = input_schema_path(topic)
    if path.is_file():
        rel = f"input/{path.name}"
        schema = load_schema(rel)
    else:
        rel = "common/event.schema.json"
        schema = load_schema(rel)
        if all(m.time != ("occurred_at",) for m in mappings):
            schema["required"] = [f for f in schema["required"] if f != "occurred_at"]
    defaults = {
        name: spec["default"]
        for name, spec in schema.get("properties", {}).items()
        if isinstance(spec, dict) and "default" in spec
    }
    return _Plan(fastjsonschema.compile(schema, use_formats=False), mappings, rel, defaults)


def _key(obj: dict[str, Any], m: Mapping) -> str:
    key = obj.get(m.key[0]) if len(m.key) == 1 else get_path(obj, m.key)
    if type(key) is str and key:
        if len(key) <= MAX_KEY_CHARS:
            return key
        raise InputError(
            "schema_violation",
            f"flow {m.flow!r}: key {'.'.join(m.key)!r} is longer than {MAX_KEY_CHARS} characters",
        )
    what = "is missing" if key is None else "is empty" if key == "" else "must be a string"
    got = "" if key is None or key == "" else f", got {_json_type(key)}"
    raise InputError("missing_key", f"flow {m.flow!r}: key {'.'.join(m.key)!r} {what}{got}")


def _time(obj: dict[str, Any], m: Mapping) -> int:
    value = obj.get(m.time[0]) if len(m.time) == 1 else get_path(obj, m.time)
    if value is None:
        raise InputError("missing_time", f"flow {m.flow!r}: time {'.'.join(m.time)!r} is missing")
    try:
        return parse_event_time(value)
    except ValueError as exc:
        raise InputError(
            "unparsable_time", f"flow {m.flow!r}: time {'.'.join(m.time)!r}: {exc}"
        ) from None


def _refine(
    plan: _Plan, obj: dict[str, Any], exc: fastjsonschema.JsonSchemaException
) -> InputError:
    """The most specific reason for a schema failure: a flow's key or time first, if at fault.

    Validation stopped before filling in the schema's defaults, so the filters see them here.
    """
    seen = {**plan.defaults, **obj} if plan.defaults else obj
    for m in plan.mappings:
        if m.filter is not None and not m.filter.matches(seen):
            continue
        try:
            _key(obj, m)
            _time(obj, m)
        except InputError as specific:
            if specific.reason != "schema_violation":
                return specific
    message = getattr(exc, "message", None) or str(exc)
    return InputError("schema_violation", f"{message} (schema {plan.schema})")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"
