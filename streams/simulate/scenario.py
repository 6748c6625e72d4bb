"""A scripted funnel scenario with known outcomes: every case the monitor must get right.

:func:`scripted` builds, for the given flows, input records in production order and the
expected outcome of every entity, covering: on time, lag exactly equal to the target,
late, missing (overdue, or lost when the give-up passes), completion before start,
duplicate deliveries, negative clock skew, a completion that matches no flow's filter, a
second (later) completion that must not win, and one malformed record of every kind.

Event times lie in the past (every completion before ``now``), so a monitor that reads
the records from the start has every fact it needs by the time it is caught up.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson

from streams.core.model import Flow
from streams.core.paths import set_path
from streams.pipeline.quarantine import MAX_RECORD_BYTES
from streams.testing.records import valid_record

Outcome = Literal["on_time", "late", "missing"]
Emit = Callable[[int, int, str, str, dict[str, object]], None]
"""``emit(at, order, topic, key, record)``: one record of the scenario."""
CASES = (
    "on_time",
    "exact",
    "late",
    "missing",
    "out_of_order",
    "duplicate",
    "skew",
    "unmatched",
    "second_completion",
)


@dataclass(frozen=True, slots=True)
class Expectation:
    flow: str
    key: str
    case: str
    outcome: Outcome
    lag_ms: int | None
    started_at: int


@dataclass(frozen=True, slots=True)
class Malformed:
    topic: str
    reason: str
    raw: bytes | None


@dataclass(slots=True)
class Scenario:
    records: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)
    """(topic, key, value) in production order."""
    expected: dict[str, Expectation] = field(default_factory=dict)
    """By identity ``flow:key``."""
    malformed: list[Malformed] = field(default_factory=list)

    def measurements(self) -> dict[str, int]:
        """Expected ``lag_ms`` of every completed start, by identity."""
        return {i: e.lag_ms for i, e in self.expected.items() if e.lag_ms is not None}

    def breaches(self, *, lost: bool) -> dict[str, tuple[str, str, int | None]]:
        """Expected final (kind, status, lag_ms) per breach id; ``lost``: give-up has passed."""
        out: dict[str, tuple[str, str, int | None]] = {}
        for ident, e in self.expected.items():
            if e.outcome == "late":
                out[ident] = ("late", "closed", e.lag_ms)
            elif e.outcome == "missing":
                out[ident] = ("lost", "closed", None) if lost else ("overdue", "open", None)
        return out


def scripted(
    flows: Sequence[Flow], starts: int, *, now: int, prefix: str, seed: int = 7
) -> Scenario:
    """``starts`` entities spread over ``flows`` and :data:`CASES`, plus malformed records.

    Records are in event-time order (as producers that write when things happen deliver
    them), so every partition's watermark is exact; a completion read before its start
    has a lag of 0 and comes first.
    """
    rng = random.Random(seed)
    sc = Scenario()
    horizon = 2 * max(f.target_ms for f in flows) + 10_000
    base = now - horizon - 12_000
    pending: list[tuple[int, int, int, str, str, bytes | None]] = []

    def emit(at: int, order: int, topic: str, key: str, rec: dict[str, object]) -> None:
        pending.append((at, order, len(pending), topic, key, orjson.dumps(rec)))

    for i in range(starts):
        flow = flows[i % len(flows)]
        case = CASES[(i // len(flows)) % len(CASES)]
        key = f"{prefix}-{i}"
        started = base + (i * 10_000) // max(starts, 1)
        lag = _draw_lag(case, flow.target_ms, rng)
        if case == "unmatched" and flow.end_filter is None:
            case = "missing"
        _emit_entity(emit, flows, flow, case, key, started, lag)
        on_time = lag is not None and lag <= flow.target_ms
        outcome: Outcome = "missing" if lag is None else ("on_time" if on_time else "late")
        sc.expected[f"{flow.name}:{key}"] = Expectation(flow.name, key, case, outcome, lag, started)
    pending.sort()
    sc.records = [(topic, key.encode(), value) for _, _, _, topic, key, value in pending]
    _malformed(sc, flows[0], prefix, base)
    return sc


def _draw_lag(case: str, target: int, rng: random.Random) -> int | None:
    """The completion lag of ``case`` (None: no completion). Draws the same random numbers
    whatever the case, so an entity's lag depends only on the seed and its index."""
    lags: dict[str, int | None] = {
        "on_time": rng.randrange(target),
        "exact": target,
        "late": target + 1 + rng.randrange(target),
        "missing": None,
        "out_of_order": 0,
        "duplicate": rng.randrange(target),
        "skew": -1 - rng.randrange(2_000),
        "unmatched": None,
        "second_completion": rng.randrange(target // 2),
    }
    return lags[case]


def _emit_entity(
    emit: Emit,
    flows: Sequence[Flow],
    flow: Flow,
    case: str,
    key: str,
    started: int,
    lag: int | None,
) -> None:
    """Every record of one entity of ``case``; ``emit(at, order, topic, key, record)``."""
    start = valid_record(flow, "start", key, f"{key}-s", started)
    emit(started, 1, flow.start_topic, key, start)
    if case == "duplicate":
        emit(started, 3, flow.start_topic, key, start)
    if lag is not None:
        end = valid_record(flow, "end", key, f"{key}-c", started + lag)
        emit(started + lag, 0 if case == "out_of_order" else 2, flow.end_topic, key, end)
        if case == "duplicate":
            emit(started + lag, 3, flow.end_topic, key, end)
    if case == "second_completion":
        at = started + flow.target_ms + 5_000
        second = valid_record(flow, "end", key, f"{key}-c2", at, attempt=2)
        emit(at, 2, flow.end_topic, key, second)
    if case == "unmatched":
        assert flow.end_filter is not None
        stray = valid_record(flow, "end", key, f"{key}-u", started + 10)
        set_path(stray, flow.end_filter.path, _other_value(flows, flow))
        emit(started + 10, 2, flow.end_topic, key, stray)


def _other_value(flows: Sequence[Flow], flow: Flow) -> object:
    """A filter value of another flow on the same completion topic (valid input that this
    flow's filter refuses), or a made-up one when there is none."""
    assert flow.end_filter is not None
    path = flow.end_filter.path
    for other in flows:
        f = other.end_filter
        same_topic = other is not flow and other.end_topic == flow.end_topic
        if same_topic and f is not None and f.op == "==" and f.path == path:
            return f.value
    return "no.such.source"


def _malformed(sc: Scenario, flow: Flow, prefix: str, now: int) -> None:
    topic = flow.start_topic
    good = valid_record(flow, "start", f"{prefix}-bad", f"{prefix}-bad-s", now)
    no_key = {k: v for k, v in good.items() if k != flow.start_key[0]}
    no_time = {k: v for k, v in good.items() if k != flow.start_time[0]}
    cases: list[tuple[str, bytes | None]] = [
        ("not_json", b"{not json"),
        ("not_json", None),
        ("not_object", b"[1, 2, 3]"),
        ("schema_violation", orjson.dumps(dict(good, event_id=42))),
        ("missing_key", orjson.dumps(no_key)),
        ("missing_time", orjson.dumps(no_time)),
        ("unparsable_time", orjson.dumps(dict(good, occurred_at="yesterday at noon"))),
        ("too_large", orjson.dumps(dict(good, padding="x" * MAX_RECORD_BYTES))),
    ]
    for n, (reason, raw) in enumerate(cases):
        sc.malformed.append(Malformed(topic, reason, raw))
        sc.records.append((topic, f"{prefix}-bad-{n}".encode(), raw))
