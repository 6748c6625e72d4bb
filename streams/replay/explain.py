"""One entity's story: its records, the verdict with its arithmetic, and where the time went.

Pure: the caller finds the records (:mod:`streams.replay.lookup` from Kafka, or the API's
read model) and :func:`build` explains them. The explained *cycle* is the entity's latest
start the monitor wrote about (the start event named by its newest output record), else
the first start among the input records.

**Lag decomposition** (epoch ms; every part is ``None`` when a record it needs was not
found):

* ``lag_ms = completed_at - started_at``: event time, what the flow's target judges: how
  long the completion system took;
* ``start_to_kafka_ms = start record's Kafka timestamp - started_at``: how long the start's
  producer sat on it;
* ``completion_to_kafka_ms = completion record's Kafka timestamp - completed_at``: the same
  for the completion's producer;
* ``monitor_ms``: from the moment the monitor could have known to the Kafka timestamp of
  the record in which it said so: for a completed start, the first measurement's timestamp
  minus the later of the two input records' timestamps; for an ``overdue`` (``lost``), the
  first overdue (lost) version's timestamp minus the later of the start's timestamp and
  the deadline (the give-up time);
* ``end_to_end_ms = that record's timestamp - started_at``.

``slowest`` names the largest of the four parts, so "the completion system was slow" reads
differently from "our producer sat on it" and from "the monitor was behind".

**Pages**: the ``freshness.alerts`` states that name the entity (a ``stuck`` alert lists its
oldest overdue keys in ``details.oldest``); burn-rate pages count starts, not entities, so
they name none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.core.model import Flow, Side
from streams.core.timeparse import format_event_time

State = Literal["on_time", "late", "overdue", "lost", "pending", "undeclared", "unknown"]
"""``pending``: a start within its target; ``undeclared``: past its deadline without a
completion, but the monitor has written nothing about it; ``unknown``: no start found."""

PARTS = {
    "lag_ms": "the completion side (event time from start to completion)",
    "start_to_kafka_ms": "the start's producer (occurred to written to Kafka)",
    "completion_to_kafka_ms": "the completion's producer (occurred to written to Kafka)",
    "monitor_ms": "the monitor (records in Kafka to its verdict written)",
}


@dataclass(frozen=True, slots=True)
class InputSeen:
    """One input record of the entity, as read from Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    """Kafka timestamp (epoch ms)."""
    raw: bytes | None
    side: Side | None = None
    """``start`` or ``end`` of the explained flow; None when it is not (or not valid)."""
    event_id: str | None = None
    occurred_at: int | None = None
    problem: str | None = None
    """Why the monitor refuses the record (its quarantine reason and detail), if it does."""

    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)

    def to_json(self) -> dict[str, Any]:
        raw = self.raw
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "side": self.side,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "problem": self.problem,
            "value": None if raw is None else raw.decode("utf-8", "replace"),
        }


@dataclass(frozen=True, slots=True)
class OutputSeen:
    """One record of an output topic about the entity (``value`` None: a tombstone)."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    """Kafka timestamp; None when not known (the API's read model does not keep it)."""
    value: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class Decomposition:
    started_at: int | None = None
    start_in_kafka: int | None = None
    deadline: int | None = None
    completed_at: int | None = None
    completion_in_kafka: int | None = None
    verdict_at: int | None = None
    """Kafka timestamp of the output record that gave the verdict."""
    lag_ms: int | None = None
    start_to_kafka_ms: int | None = None
    completion_to_kafka_ms: int | None = None
    monitor_ms: int | None = None
    end_to_end_ms: int | None = None
    slowest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Explanation:
    flow: str
    key: str
    target_ms: int
    state: State
    start_event_id: str | None
    verdict: tuple[str, ...]
    """The verdict and its arithmetic, one line each."""
    decomposition: Decomposition
    clock_skew: bool = False
    out_of_order: bool = False
    """The completion was written to Kafka before its start (by Kafka timestamps)."""
    read_out_of_order: bool | None = None
    """What the monitor's measurement says: it *read* the completion first."""
    inputs: tuple[InputSeen, ...] = ()
    breaches: tuple[OutputSeen, ...] = ()
    measurements: tuple[OutputSeen, ...] = ()
    notes: tuple[str, ...] = ()
    pages: tuple[OutputSeen, ...] = ()
    """``freshness.alerts`` states that name the entity, in log order."""

    def to_json(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "key": self.key,
            "target_ms": self.target_ms,
            "state": self.state,
            "start_event_id": self.start_event_id,
            "verdict": list(self.verdict),
            "decomposition": self.decomposition.to_json(),
            "clock_skew": self.clock_skew,
            "out_of_order": self.out_of_order,
            "read_out_of_order": self.read_out_of_order,
            "inputs": [r.to_json() for r in self.inputs],
            "breaches": [r.to_json() for r in self.breaches],
            "measurements": [r.to_json() for r in self.measurements],
            "notes": list(self.notes),
            "pages": [r.to_json() for r in self.pages],
        }


@dataclass(slots=True)
class _Cycle:
    start_event_id: str | None
    measurement: OutputSeen | None = None
    versions: list[OutputSeen] = field(default_factory=list)
    """Breach versions of this start, in log order, tombstones that deleted one included."""
    start: InputSeen | None = None
    end: InputSeen | None = None


def build(
    flow: Flow,
    key: str,
    inputs: Sequence[InputSeen],
    breaches: Sequence[OutputSeen],
    measurements: Sequence[OutputSeen],
    now: int,
    pages: Sequence[OutputSeen] = (),
) -> Explanation:
    """Explain ``flow``/``key`` from the records found (outputs in log order)."""
    cycle = _cycle(inputs, breaches, measurements)
    state = _state(flow, cycle, now)
    parts = _decompose(flow, cycle, state)
    m = None if cycle.measurement is None else cycle.measurement.value
    skew = bool(m and m.get("clock_skew"))
    written_first = (
        cycle.start is not None
        and cycle.end is not None
        and cycle.end.timestamp < cycle.start.timestamp
    )
    return Explanation(
        flow=flow.name,
        key=key,
        target_ms=_target(flow, cycle),
        state=state,
        start_event_id=cycle.start_event_id,
        verdict=tuple(_verdict(flow, cycle, state, parts, now)),
        decomposition=parts,
        clock_skew=skew,
        out_of_order=written_first,
        read_out_of_order=None if m is None else bool(m.get("out_of_order")),
        inputs=tuple(inputs),
        breaches=tuple(breaches),
        measurements=tuple(measurements),
        notes=tuple(_notes(flow, cycle, written_first)),
        pages=tuple(p for p in pages if names_entity(p.value, flow.name, key)),
    )


def names_entity(alert: dict[str, Any] | None, flow: str, key: str) -> bool:
    """Whether a ``freshness.alerts`` value names the entity (``details.oldest[].key``)."""
    if not alert or alert.get("flow") != flow:
        return False
    details = alert.get("details")
    oldest = details.get("oldest") if isinstance(details, dict) else None
    return isinstance(oldest, list) and any(
        isinstance(o, dict) and o.get("key") == key for o in oldest
    )


# -- which cycle ---------------------------------------------------------------------------


def _cycle(
    inputs: Sequence[InputSeen], breaches: Sequence[OutputSeen], measurements: Sequence[OutputSeen]
) -> _Cycle:
    newest = [r for r in (*measurements, *breaches) if r.value is not None]
    newest.sort(key=lambda r: -1 if r.timestamp is None else r.timestamp)
    start_id = str(newest[-1].value["start_event_id"]) if newest and newest[-1].value else None
    if start_id is None:
        first = next((r for r in inputs if r.side == "start"), None)
        start_id = None if first is None else first.event_id
    cycle = _Cycle(start_id)
    cycle.measurement = next(
        (r for r in measurements if r.value and r.value.get("start_event_id") == start_id), None
    )
    current = None
    for r in breaches:
        if r.value is not None:
            current = r.value.get("start_event_id")
        if current == start_id and start_id is not None:
            cycle.versions.append(r)
    _place_inputs(cycle, inputs)
    return cycle


def _source_of(rec: OutputSeen | None, name: str) -> tuple[str, int, int] | None:
    src = None if rec is None or rec.value is None else rec.value.get(name)
    if not isinstance(src, dict):
        return None
    return (str(src["topic"]), int(src["partition"]), int(src["offset"]))


def _place_inputs(cycle: _Cycle, inputs: Sequence[InputSeen]) -> None:
    """The cycle's start and completion records: at the positions the monitor recorded,
    else the first of the side among the records found."""
    by_pos = {r.position(): r for r in inputs}
    told = [cycle.measurement, *reversed([v for v in cycle.versions if v.value])]
    for rec in told:
        start, end = _source_of(rec, "start_source"), _source_of(rec, "end_source")
        cycle.start = cycle.start or (by_pos.get(start) if start else None)
        cycle.end = cycle.end or (by_pos.get(end) if end else None)
    if cycle.start is None:
        cycle.start = next(
            (r for r in inputs if r.side == "start" and r.event_id == cycle.start_event_id), None
        )
    if cycle.end is None and cycle.measurement is None and not _latest_kind(cycle):
        cycle.end = next((r for r in inputs if r.side == "end"), None)


def _latest(cycle: _Cycle) -> dict[str, Any] | None:
    """The current breach record of the cycle (None: none, or deleted by a tombstone)."""
    return cycle.versions[-1].value if cycle.versions else None


def _latest_kind(cycle: _Cycle) -> str | None:
    latest = _latest(cycle)
    return None if latest is None else str(latest["kind"])


def _target(flow: Flow, cycle: _Cycle) -> int:
    for rec in (cycle.measurement, *cycle.versions):
        if rec is not None and rec.value is not None:
            return int(rec.value["target_ms"])
    return flow.target_ms


# -- verdict -------------------------------------------------------------------------------


def _state(flow: Flow, cycle: _Cycle, now: int) -> State:
    m = None if cycle.measurement is None else cycle.measurement.value
    if m is not None:
        return "on_time" if m.get("on_time") else "late"
    kind = _latest_kind(cycle)
    if kind in ("overdue", "late", "lost"):
        return kind  # type: ignore[return-value]
    if cycle.start is None or cycle.start.occurred_at is None:
        return "unknown"
    if cycle.end is not None:
        return "pending"  # a completion exists, but the monitor has not said anything yet
    deadline = cycle.start.occurred_at + _target(flow, cycle)
    return "pending" if now <= deadline else "undeclared"


def _first_version(cycle: _Cycle, kind: str) -> OutputSeen | None:
    return next((v for v in cycle.versions if v.value and v.value["kind"] == kind), None)


def _verdict_record(cycle: _Cycle, state: State) -> OutputSeen | None:
    if state in ("on_time", "late") and cycle.measurement is not None:
        return cycle.measurement
    return _first_version(cycle, state)


def _decompose(flow: Flow, cycle: _Cycle, state: State) -> Decomposition:
    rec = cycle.measurement or (cycle.versions[-1] if cycle.versions else None)
    value = rec.value if rec is not None and rec.value else {}
    started = value.get("started_at", cycle.start.occurred_at if cycle.start else None)
    completed = value.get("completed_at", cycle.end.occurred_at if cycle.end else None)
    deadline = None if started is None else started + _target(flow, cycle)
    s_ts = None if cycle.start is None else cycle.start.timestamp
    e_ts = None if cycle.end is None else cycle.end.timestamp
    verdict = _verdict_record(cycle, state)
    v_ts = None if verdict is None else verdict.timestamp
    known = _after(v_ts, _could_know(flow, state, started, deadline, s_ts, e_ts))
    parts = {
        "lag_ms": _after(completed, started),
        "start_to_kafka_ms": _after(s_ts, started),
        "completion_to_kafka_ms": _after(e_ts, completed),
        "monitor_ms": known,
    }
    positive = {k: v for k, v in parts.items() if v is not None and v > 0}
    return Decomposition(
        started_at=started,
        start_in_kafka=s_ts,
        deadline=deadline,
        completed_at=completed,
        completion_in_kafka=e_ts,
        verdict_at=v_ts,
        end_to_end_ms=_after(v_ts, started),
        slowest=max(positive, key=lambda k: positive[k]) if positive else None,
        **parts,
    )


def _could_know(
    flow: Flow,
    state: State,
    started: int | None,
    deadline: int | None,
    s_ts: int | None,
    e_ts: int | None,
) -> int | None:
    """When the monitor had what it needed for the verdict (Kafka time)."""
    if state in ("on_time", "late"):
        return None if s_ts is None or e_ts is None else max(s_ts, e_ts)
    if s_ts is None or started is None or deadline is None:
        return None
    if state == "overdue":
        return max(s_ts, deadline)
    if state == "lost":
        return max(s_ts, started + flow.give_up_after_ms)
    return None


def _after(later: int | None, earlier: int | None) -> int | None:
    return None if later is None or earlier is None else later - earlier


def _verdict(flow: Flow, cycle: _Cycle, state: State, d: Decomposition, now: int) -> list[str]:
    target = _target(flow, cycle)
    if state in ("on_time", "late"):
        return _completed_lines(d, target, state)
    if state == "unknown":
        return [f"no start of {flow.name} {cycle.start_event_id or ''} was found".strip()]
    lines = [_deadline_line(d, target)]
    latest = _latest(cycle) or {}
    if state == "overdue":
        wm = latest.get("detected_at")
        lines.append(
            f"overdue: no completion on {flow.end_topic} by the completion topic's watermark "
            f"{_t(wm)} (declared {_ms(_after(wm, d.deadline))} after the deadline); "
            f"{_ms(_after(now, d.deadline))} past its deadline now"
        )
    elif state == "lost":
        assert d.started_at is not None
        give_up = d.started_at + flow.give_up_after_ms
        lines.append(
            f"lost: given up at started_at + give_up_after = {_t(d.started_at)} + "
            f"{flow.give_up_after_ms} ms = {_t(give_up)}, no completion before"
        )
    elif state == "pending":
        lines.append("pending: the monitor has not written a verdict yet")
    else:
        lines.append(
            f"past its deadline by {_ms(_after(now, d.deadline))} with no completion found, "
            "but the monitor has written nothing about it (is it behind? see monitor lag)"
        )
    return lines


def _completed_lines(d: Decomposition, target: int, state: State) -> list[str]:
    assert d.lag_ms is not None
    lines = [
        f"lag = completed_at - started_at = {_t(d.completed_at)} - {_t(d.started_at)} "
        f"= {d.lag_ms} ms"
    ]
    if state == "late":
        lines.append(f"late: lag {d.lag_ms} ms > target {target} ms by {d.lag_ms - target} ms")
    elif d.lag_ms < 0:
        lines.append(
            f"on time, clock skew: the completion is dated {-d.lag_ms} ms before its start "
            "(the producers' clocks disagree); a negative lag counts as on time"
        )
    else:
        lines.append(f"on time: lag {d.lag_ms} ms <= target {target} ms")
    return lines


def _deadline_line(d: Decomposition, target: int) -> str:
    return f"deadline = started_at + target = {_t(d.started_at)} + {target} ms = {_t(d.deadline)}"


def _notes(flow: Flow, cycle: _Cycle, written_first: bool) -> list[str]:
    notes = []
    if written_first and cycle.start and cycle.end:
        notes.append(
            f"out of order: the completion was written to Kafka "
            f"{cycle.start.timestamp - cycle.end.timestamp} ms before its start"
        )
    kinds = [v.value["kind"] if v.value else None for v in cycle.versions]
    if "overdue" in kinds and (None in kinds[kinds.index("overdue") :]):
        notes.append(
            "declared overdue, then retracted: its completion turned out on time (it was "
            "written to Kafka after the completion topic's watermark had passed the deadline)"
        )
    notes += [
        f"{r.topic}[{r.partition}]@{r.offset} is quarantined: {r.problem}"
        for r in (cycle.start, cycle.end)
        if r is not None and r.problem
    ]
    return notes


def _t(ms: Any) -> str:
    return "?" if not isinstance(ms, int) else f"{format_event_time(ms)} ({ms})"


def _ms(value: int | None) -> str:
    return "? ms" if value is None else f"{value} ms"
