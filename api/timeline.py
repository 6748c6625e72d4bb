"""Build an entity's timeline from its measurements and its breach record.

A *cycle* is one start and what became of it. Measurements give completed cycles (on time
or late); the breach record (latest state of ``flow:key``) gives the overdue, lost or late
story of the cycle whose ``start_event_id`` it names, and stands alone when no measurement
is known (still overdue, lost, or evicted from the timeline cache).
"""

from __future__ import annotations

from typing import Any

from api.models import (
    BreachView,
    EntityCycle,
    EntityState,
    EntityView,
    SourceRecord,
    TimelineEvent,
)
from streams.core.model import Flow


def build(
    flow: Flow,
    key: str,
    measurements: list[dict[str, Any]],
    breach: dict[str, Any] | None,
    as_of: int | None,
) -> EntityView:
    """Cycles newest first; the breach is attached to the cycle with its start event."""
    bview = None if breach is None else BreachView.model_validate(breach)
    cycles: list[EntityCycle] = []
    matched = False
    for m in measurements:
        own = bview is not None and bview.start_event_id == m.get("start_event_id")
        matched = matched or own
        cycles.append(_from_measurement(flow, m, bview if own else None))
    if bview is not None and not matched:
        cycles.append(_from_breach(bview))
    cycles.sort(key=lambda c: (c.started_at, c.start_event_id), reverse=True)
    newest = cycles[0]
    return EntityView(
        flow=flow.name,
        key=key,
        state=newest.state,
        where=_where(flow, newest, as_of),
        target_ms=flow.target_ms,
        cycles=cycles,
    )


def _source(value: Any) -> SourceRecord | None:
    if isinstance(value, SourceRecord):
        return value
    if isinstance(value, dict):
        try:
            return SourceRecord.model_validate(value)
        except ValueError:
            return None
    return None


def _from_measurement(flow: Flow, m: dict[str, Any], breach: BreachView | None) -> EntityCycle:
    started_at = int(m["started_at"])
    target = int(m.get("target_ms", flow.target_ms))
    on_time = bool(m.get("on_time"))
    cycle = EntityCycle(
        state="on_time" if on_time else "late",
        start_event_id=str(m.get("start_event_id", "")),
        started_at=started_at,
        start_source=_source(m.get("start_source")),
        deadline=started_at + target,
        end_event_id=str(m.get("end_event_id", "")),
        completed_at=int(m["completed_at"]),
        end_source=_source(m.get("end_source")),
        lag_ms=int(m["lag_ms"]),
        clock_skew=bool(m.get("clock_skew")),
        out_of_order=bool(m.get("out_of_order")),
        breach=breach,
        timeline=[],
    )
    cycle.timeline = _events(cycle)
    return cycle


def _from_breach(b: BreachView) -> EntityCycle:
    state: EntityState = "overdue" if b.status == "open" else b.kind
    if state == "overdue" and b.kind != "overdue":  # open late/lost: trust the kind
        state = b.kind
    cycle = EntityCycle(
        state=state,
        start_event_id=b.start_event_id,
        started_at=b.started_at,
        start_source=b.start_source,
        deadline=b.deadline,
        end_event_id=None,
        completed_at=b.completed_at,
        end_source=b.end_source,
        lag_ms=b.lag_ms,
        clock_skew=False,
        out_of_order=False,
        breach=b,
        timeline=[],
    )
    cycle.timeline = _events(cycle)
    return cycle


def _events(c: EntityCycle) -> list[TimelineEvent]:
    events = [
        TimelineEvent(
            at=c.started_at,
            kind="started",
            event_id=c.start_event_id,
            source=c.start_source,
            note="start event",
        ),
        TimelineEvent(at=c.deadline, kind="deadline", note="completion due"),
    ]
    b = c.breach
    if b is not None:
        declared = {
            "overdue": "declared overdue: the completion topic was read past the deadline",
            "late": f"breach closed late: lag {b.lag_ms} ms",
            "lost": "gave up waiting for the completion",
        }
        events.append(TimelineEvent(at=b.detected_at, kind=b.kind, note=declared[b.kind]))
    if c.completed_at is not None:
        verdict = "on time" if c.state == "on_time" else "late"
        notes = [f"lag {c.lag_ms} ms, {verdict}"]
        if c.clock_skew:
            notes.append("negative lag: clock skew between producers")
        if c.out_of_order:
            notes.append("the completion was read before its start")
        events.append(
            TimelineEvent(
                at=c.completed_at,
                kind="completed",
                event_id=c.end_event_id,
                source=c.end_source,
                note="; ".join(notes),
            )
        )
    order = {"started": 0, "deadline": 1, "overdue": 2, "completed": 3, "late": 4, "lost": 5}
    # Ties: a late breach is declared at its completion time, so it sorts after it.
    events.sort(key=lambda e: (e.at, order[e.kind]))
    return events


def _where(flow: Flow, c: EntityCycle, as_of: int | None) -> str:
    start = f"started at {c.started_at}" + (
        f" ({c.start_source.topic}[{c.start_source.partition}]@{c.start_source.offset})"
        if c.start_source
        else ""
    )
    if c.state == "overdue":
        age = "" if as_of is None else f", {max(0, as_of - c.deadline)} ms past its deadline"
        return f"{start}; no completion on {flow.end_topic} yet{age}"
    if c.state == "lost":
        return (
            f"{start}; no completion on {flow.end_topic} within "
            f"{flow.give_up_after_ms} ms, given up"
        )
    over = "" if c.lag_ms is None else f", {c.lag_ms - flow.target_ms} ms over target"
    if c.state == "late":
        return f"{start}; completed late on {flow.end_topic}: lag {c.lag_ms} ms{over}"
    return f"{start}; completed on time: lag {c.lag_ms} ms (target {flow.target_ms} ms)"
