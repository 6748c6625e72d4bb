"""Producing planned records when they happen, and writing the truth of what was produced.

:class:`Scheduler` hands every :class:`~streams.simulate.traffic.Planned` record to a
:class:`Sink` at its due time: it sleeps until the next due record (never in steps longer
than :data:`MAX_SLEEP_MS`, so a stop request is seen promptly), sends everything due, and
never sends a record early. Records go out in (due, plan order), so a completion planned
before its (out-of-order) start is also sent before it.

The truth follows the acknowledgements, not the plan: an entity's ``start`` line is written
once every record planned for it is acknowledged, or, when the run stops early, after the
final flush with the outcome that what was actually produced implies (a start without its
completion is ``overdue``, a completion without its start is an ``orphan``). A malformed
record's line is written on acknowledgement, with the partition and offset where it landed.
When the path that carried a completion decides its event time (the PostHog SDK path: the
moment PostHog answered), the acknowledgement says so (:attr:`Position.occurred_at`) and
the truth's lag and outcome are those of that time, not of the plan.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.simulate.percentile import percentile
from streams.simulate.traffic import LOOKAHEAD_MS, EntityPlan, Planned, Planner
from streams.simulate.truth import TruthMalformed, TruthStart, TruthWriter

MAX_SLEEP_MS = 100


@dataclass(frozen=True, slots=True)
class Position:
    topic: str
    partition: int
    offset: int
    occurred_at: int | None = None
    """The record's event time when the path that carried it set it (the PostHog SDK path:
    the moment PostHog answered 2xx); ``None``: the planned time, as produced."""


class Sink(Protocol):
    """Where records go (a Kafka producer). ``send`` returns a future of the position."""

    async def send(self, topic: str, key: bytes, value: bytes | None) -> Awaitable[Position]: ...

    async def flush(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_ms(self, ms: int) -> None: ...


class WallClock:
    """The real clock: epoch milliseconds, asyncio sleeps."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000.0)


@dataclass(slots=True)
class RunStats:
    """Live counters of a run (read by the progress display)."""

    sent: int = 0
    acked: int = 0
    errors: int = 0
    first_error: str | None = None
    by_role: dict[str, int] = field(default_factory=dict)
    by_case: dict[str, int] = field(default_factory=dict)
    """Entities whose start record was sent, by case."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """Truth lines written, by outcome."""
    malformed: dict[str, int] = field(default_factory=dict)
    """Malformed records acknowledged, by reason."""
    delays: array[int] = field(default_factory=lambda: array("q"))
    """Per acknowledged record: acknowledgement wall time minus due time (ms)."""
    send_late: array[int] = field(default_factory=lambda: array("q"))
    """Per sent record: send wall time minus due time (ms)."""
    recent_max_delay: int = 0
    """Largest acknowledgement delay since the progress display last reset it (ms)."""

    def delay_summary(self) -> dict[str, int | None]:
        return {
            "ack_p50": percentile(self.delays, 0.50),
            "ack_p99": percentile(self.delays, 0.99),
            "ack_max": max(self.delays) if self.delays else None,
            "send_p99": percentile(self.send_late, 0.99),
            "send_max": max(self.send_late) if self.send_late else None,
        }


def outcome_of(ent: EntityPlan, now_ms: int) -> str:
    """What the monitor must conclude about ``ent`` given what was produced of it."""
    if ent.start_acked and ent.end_acked:
        assert ent.lag_ms is not None
        return "on_time" if ent.lag_ms <= ent.flow.target_ms else "late"
    if ent.start_acked:
        return "lost" if now_ms > ent.give_up_at else "overdue"
    return "orphan"


class Scheduler:
    """Runs one planner against one sink; see the module docstring."""

    def __init__(
        self,
        planner: Planner,
        sink: Sink,
        clock: Clock,
        truth: TruthWriter | None,
        *,
        route: Callable[[Planned], Sink] | None = None,
    ) -> None:
        self.planner = planner
        self.sink = sink
        """Where records go (its ``flush`` is awaited at the end of the run)."""
        self.route = route
        """Picks another sink for a record (the PostHog SDK, the HTTP receiver); the
        ``sink``'s flush must cover them."""
        self.clock = clock
        self.truth = truth
        self.stats = RunStats()
        self._open: dict[int, EntityPlan] = {}
        self.interrupted = False

    async def run(self, stop: asyncio.Event) -> RunStats:
        """Produce until the plan is exhausted (finite run) or ``stop`` is set; then flush
        and write the truth of every entity that is still open."""
        planner, clock = self.planner, self.clock
        while True:
            if stop.is_set():
                self.interrupted = True
                break
            now = clock.now_ms()
            planner.plan_until(now + LOOKAHEAD_MS)
            due = planner.next_due()
            if due is None:
                if planner.exhausted():
                    break
                await clock.sleep_ms(MAX_SLEEP_MS)
                continue
            if due > now:
                await clock.sleep_ms(min(due - now, MAX_SLEEP_MS))
                continue
            for rec in planner.pop_due(now):
                await self._send(rec)
        await self.sink.flush()
        await asyncio.sleep(0)  # let acknowledgement callbacks run
        self._close_open(clock.now_ms())
        return self.stats

    async def _send(self, rec: Planned) -> None:
        now = self.clock.now_ms()
        sink = self.sink if self.route is None else self.route(rec)
        fut = await sink.send(rec.topic, rec.key, rec.value)
        st = self.stats
        st.sent += 1
        st.send_late.append(now - rec.due)
        st.by_role[rec.role] = st.by_role.get(rec.role, 0) + 1
        if rec.role == "start" and rec.entity is not None:
            st.by_case[rec.entity.case] = st.by_case.get(rec.entity.case, 0) + 1
        asyncio.ensure_future(fut).add_done_callback(lambda f: self._acked(rec, f))

    def _acked(self, rec: Planned, fut: asyncio.Future[Any]) -> None:
        st = self.stats
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            st.errors += 1
            st.first_error = st.first_error or repr(exc or "cancelled")
            return
        pos: Position = _position(fut.result())
        st.acked += 1
        delay = self.clock.now_ms() - rec.due
        st.delays.append(delay)
        st.recent_max_delay = max(st.recent_max_delay, delay)
        if rec.role == "malformed":
            assert rec.reason is not None
            st.malformed[rec.reason] = st.malformed.get(rec.reason, 0) + 1
            if self.truth is not None:
                self.truth.malformed(
                    TruthMalformed(
                        pos.topic, pos.partition, pos.offset, rec.reason, rec.key.decode()
                    )
                )
            return
        ent = rec.entity
        assert ent is not None
        if rec.role == "end" and pos.occurred_at is not None:
            ent.lag_ms = pos.occurred_at - ent.started_at  # what actually happened
        ent.acked += 1
        if rec.role in ("start", "dup_start"):
            ent.start_acked = True
        elif rec.role in ("end", "dup_end"):
            ent.end_acked = True
        if ent.acked == ent.records:
            self._open.pop(ent.n, None)
            self._finish(ent, self.clock.now_ms())
        else:
            self._open[ent.n] = ent

    def _close_open(self, now: int) -> None:
        for ent in sorted(self._open.values(), key=lambda e: e.n):
            self._finish(ent, now)
        self._open.clear()

    def _finish(self, ent: EntityPlan, now: int) -> None:
        outcome = outcome_of(ent, now)
        st = self.stats
        st.outcomes[outcome] = st.outcomes.get(outcome, 0) + 1
        if self.truth is None:
            return
        self.truth.start(
            TruthStart(
                flow=ent.flow.name,
                key=ent.key,
                case=ent.case,
                outcome=outcome,
                lag_ms=ent.lag_ms if ent.end_acked and ent.start_acked else None,
                started_at=ent.started_at,
                deadline=ent.deadline,
                give_up_at=ent.give_up_at,
                start_event_id=f"{ent.key}-s",
            )
        )


def _position(md: Any) -> Position:
    """A :class:`Position` from an aiokafka ``RecordMetadata`` (or a Position)."""
    if isinstance(md, Position):
        return md
    return Position(str(md.topic), int(md.partition), int(md.offset))
