"""Live funnel traffic: what happens when, planned ahead of the wall clock, with known truth.

:class:`Planner` is pure (no Kafka, no clock): given a :class:`TrafficConfig`, a start time
and an optional end time, it draws entities (one start each, on a Poisson arrival process)
and malformed records, and hands out every record with the wall time at which it must be
produced (``due``). The scheduler (:mod:`streams.simulate.scheduler`) produces each record
at its due time.

What each start becomes (mutually exclusive cases, drawn with the configured fractions;
the rest is ``on_time``):

* ``on_time``: the completion ``occurred_at`` is ``start + lag``, ``lag`` drawn from a
  log-normal distribution with median ``lag_fraction * target`` and shape ``lag_sigma``,
  truncated to ``[0, target]`` (redrawn above the target);
* ``late``: ``lag = target + excess``, ``excess`` log-normal with median 25 % of the target
  (shape 0.5), at least 1 ms;
* ``missing``: no completion at all;
* ``out_of_order``: an on-time lag, but the start record is produced 20..300 ms *after*
  the completion record (it still carries its own, earlier, ``occurred_at``);
* ``skew``: the completion ``occurred_at`` is 1..2000 ms *before* the start's (negative
  lag: on time, ``clock_skew``), never before the run began; each record is produced at
  its own ``occurred_at``, so the completion is delivered first;
* ``duplicate``: an on-time entity whose start or completion (even odds) is produced a
  second time, byte for byte, 1..2000 ms after the first copy.

Every record except an out-of-order start and a duplicate copy is due exactly at its
``occurred_at``: producers that write when things happen. Malformed records (one of
:data:`MALFORMED_REASONS`, evenly) arrive as their own Poisson process at ``rate *
malformed``; the rest of the rate is shared by the entities, so the total record rate is
``rate`` on average. Flows are chosen evenly.

A finite run (``end_ms`` set) only plans an entity whose *horizon* is before the end: its
last record, or for a missing completion its deadline plus :data:`MISSING_SLACK_MS`, so
every expected outcome is decided by the time the run ends. A draw that does not fit is
redrawn with another flow and lag (up to :data:`FIT_ATTEMPTS` times) and otherwise dropped
(counted in :attr:`Planner.skipped`); so close to the end, long flows thin out.

Keys are ``sim-<run_id>-<n>``; every record (malformed ones too) contains the run id, so a
scorer can pick this run's records out of shared topics.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field

import orjson

from streams.core.model import Flow
from streams.core.paths import set_path
from streams.core.timeparse import format_event_time
from streams.testing.records import valid_record

CASES = ("on_time", "late", "missing", "out_of_order", "skew", "duplicate")
"""Every entity case, in the order the fractions are applied (``on_time`` takes the rest)."""
MALFORMED_REASONS = (
    "not_json",
    "not_object",
    "schema_violation",
    "missing_key",
    "missing_time",
    "unparsable_time",
)
LATE_EXCESS_MEDIAN = 0.25
LATE_EXCESS_SIGMA = 0.5
SKEW_MAX_MS = 2_000
DUPLICATE_DELAY_MAX_MS = 2_000
OOO_DELAY_MS = (20, 300)
MISSING_SLACK_MS = 1_500
"""A missing completion's start is only planned if its deadline is this long before the end
of a finite run, so its overdue breach is due (and detectable) by the end."""
FIT_ATTEMPTS = 8
LOOKAHEAD_MS = SKEW_MAX_MS + 500
"""How far ahead of the wall clock the scheduler plans: more than the earliest record of an
entity can precede its start (skew), so no record is planned already overdue."""


@dataclass(frozen=True, slots=True)
class Fractions:
    """Shares of starts per case (and of records that are malformed), each in [0, 1]."""

    late: float = 0.0
    missing: float = 0.0
    out_of_order: float = 0.0
    skew: float = 0.0
    duplicate: float = 0.0
    malformed: float = 0.0

    def check(self) -> None:
        """Raise :class:`ValueError` unless every fraction is in [0, 1] and the entity
        cases sum to at most 1 (malformed is a share of records, below 1)."""
        for name in ("late", "missing", "out_of_order", "skew", "duplicate", "malformed"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        if self.entity_total() > 1.0:
            raise ValueError(f"the case fractions add up to {self.entity_total():.3f} > 1")
        if self.malformed >= 1.0:
            raise ValueError("--malformed must be below 1")

    def entity_total(self) -> float:
        return self.late + self.missing + self.out_of_order + self.skew + self.duplicate


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """What to simulate. ``rate`` is input records per second (all topics, on average)."""

    flows: tuple[Flow, ...]
    run_id: str
    rate: float = 50.0
    fractions: Fractions = Fractions()
    seed: int | None = None
    lag_fraction: float = 0.25
    """Median on-time lag as a fraction of each flow's target."""
    lag_sigma: float = 0.5
    """Shape (sigma of the underlying normal) of the on-time lag distribution."""
    rfc3339_share: float = 0.5
    """Share of records whose ``occurred_at`` is an RFC 3339 string (else epoch ms)."""

    @property
    def key_prefix(self) -> str:
        return f"sim-{self.run_id}-"

    def start_rate(self) -> float:
        """Starts per second that, with their completions and duplicates, make up the
        non-malformed share of ``rate``."""
        f = self.fractions
        per_start = 2.0 - f.missing + f.duplicate
        return self.rate * (1.0 - f.malformed) / per_start


@dataclass(slots=True)
class EntityPlan:
    """One start and what was planned for it; the scheduler fills in what was produced."""

    n: int
    flow: Flow
    key: str
    case: str
    started_at: int
    lag_ms: int | None
    """Planned completion lag; ``None``: no completion (missing)."""
    horizon: int
    records: int = 0
    """How many records were planned for this entity."""
    acked: int = 0
    start_acked: bool = False
    end_acked: bool = False

    @property
    def deadline(self) -> int:
        return self.started_at + self.flow.target_ms

    @property
    def give_up_at(self) -> int:
        return self.started_at + self.flow.give_up_after_ms


@dataclass(slots=True)
class Planned:
    """One record and the wall time (epoch ms) at which it must be produced."""

    due: int
    seq: int
    topic: str
    key: bytes
    value: bytes | None
    role: str
    """``start``, ``end``, ``dup_start``, ``dup_end`` or ``malformed``."""
    entity: EntityPlan | None = None
    reason: str | None = None
    """The quarantine reason a malformed record must get."""

    def __lt__(self, other: Planned) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)


@dataclass(slots=True)
class Planner:
    """Draws entities and malformed records ahead of time; see the module docstring.

    Deterministic for a given config (seed and run id) and start/end times: the same calls
    give the same records in the same order.
    """

    cfg: TrafficConfig
    start_ms: int
    end_ms: int | None = None
    queue: list[Planned] = field(default_factory=list)
    """Planned records not yet handed out, a heap by (due, seq)."""
    planned_cases: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    malformed_planned: int = 0
    _rng: random.Random = field(init=False)
    _next_start: float = field(init=False)
    _next_bad: float = field(init=False)
    _n: int = 0
    _bad_n: int = 0
    _seq: int = 0

    def __post_init__(self) -> None:
        self.cfg.fractions.check()
        if self.cfg.rate <= 0:
            raise ValueError(f"--rate must be positive, got {self.cfg.rate}")
        if not self.cfg.flows:
            raise ValueError("no flows to simulate")
        self._rng = random.Random(self.cfg.seed)
        self._next_start = self.start_ms + self._gap(self.cfg.start_rate())
        self._next_bad = self.start_ms + self._gap(self.cfg.rate * self.cfg.fractions.malformed)

    # -- public -----------------------------------------------------------------------

    def plan_until(self, t_ms: int) -> None:
        """Plan every start and malformed record that happens at or before ``t_ms``."""
        while self._next_start <= t_ms and not self._past_end(self._next_start):
            self._plan_entity(int(self._next_start))
            self._next_start += self._gap(self.cfg.start_rate())
        while self._next_bad <= t_ms and not self._past_end(self._next_bad):
            self._plan_malformed(int(self._next_bad))
            self._next_bad += self._gap(self.cfg.rate * self.cfg.fractions.malformed)

    def exhausted(self) -> bool:
        """A finite run has planned everything and handed everything out."""
        return (
            self.end_ms is not None
            and self._past_end(self._next_start)
            and self._past_end(self._next_bad)
            and not self.queue
        )

    def next_due(self) -> int | None:
        return self.queue[0].due if self.queue else None

    def pop_due(self, now_ms: int) -> list[Planned]:
        """Every planned record due at or before ``now_ms``, in (due, seq) order."""
        out = []
        while self.queue and self.queue[0].due <= now_ms:
            out.append(heapq.heappop(self.queue))
        return out

    # -- drawing ----------------------------------------------------------------------

    def _past_end(self, t: float) -> bool:
        return self.end_ms is not None and t >= self.end_ms

    def _gap(self, per_second: float) -> float:
        if per_second <= 0:
            return math.inf
        return self._rng.expovariate(per_second) * 1000.0

    def _case(self) -> str:
        f = self.cfg.fractions
        u = self._rng.random()
        for case, share in (
            ("late", f.late),
            ("missing", f.missing),
            ("out_of_order", f.out_of_order),
            ("skew", f.skew),
            ("duplicate", f.duplicate),
        ):
            if u < share:
                return case
            u -= share
        return "on_time"

    def _on_time_lag(self, target: int) -> int:
        median = max(1.0, self.cfg.lag_fraction * target)
        for _ in range(1000):
            lag = round(self._rng.lognormvariate(math.log(median), self.cfg.lag_sigma))
            if lag <= target:
                return lag
        return round(median) if median <= target else target

    def _lag(self, case: str, target: int, started_at: int) -> int | None:
        rng = self._rng
        if case == "missing":
            return None
        if case == "late":
            excess = rng.lognormvariate(math.log(LATE_EXCESS_MEDIAN), LATE_EXCESS_SIGMA)
            return target + max(1, round(target * excess))
        if case == "skew":
            return -rng.randint(1, min(SKEW_MAX_MS, started_at - self.start_ms))
        return self._on_time_lag(target)

    def _plan_entity(self, started_at: int) -> None:
        case = self._case()
        if case == "skew" and started_at <= self.start_ms:
            case = "on_time"  # a completion before the run began cannot be produced on time
        n = self._n
        self._n += 1
        for _ in range(FIT_ATTEMPTS):
            flow = self._rng.choice(self.cfg.flows)
            lag = self._lag(case, flow.target_ms, started_at)
            records = self._entity_records(flow, n, case, started_at, lag)
            horizon = (
                max(r[0] for r in records)
                if lag is not None
                else started_at + flow.target_ms + MISSING_SLACK_MS
            )
            if self.end_ms is None or horizon < self.end_ms:
                break
        else:
            self.skipped += 1
            return
        key = f"{self.cfg.key_prefix}{n}"
        ent = EntityPlan(n, flow, key, case, started_at, lag, horizon, records=len(records))
        for due, topic, value, role in records:
            self._push(Planned(due, 0, topic, key.encode(), value, role, ent))
        self.planned_cases[case] = self.planned_cases.get(case, 0) + 1

    def _entity_records(
        self, flow: Flow, n: int, case: str, started_at: int, lag: int | None
    ) -> list[tuple[int, str, bytes, str]]:
        key = f"{self.cfg.key_prefix}{n}"
        start = self._encode(valid_record(flow, "start", key, f"{key}-s", self._time(started_at)))
        start_due = started_at
        out: list[tuple[int, str, bytes, str]] = []
        if lag is not None:
            end_at = started_at + lag
            end = self._encode(valid_record(flow, "end", key, f"{key}-c", self._time(end_at)))
            out.append((end_at, flow.end_topic, end, "end"))
            if case == "out_of_order":
                start_due = end_at + self._rng.randint(*OOO_DELAY_MS)
        out.insert(0, (start_due, flow.start_topic, start, "start"))
        if case == "duplicate":
            due, topic, value, role = self._rng.choice(out)
            out.append(
                (due + self._rng.randint(1, DUPLICATE_DELAY_MAX_MS), topic, value, "dup_" + role)
            )
        return out

    def _time(self, at: int) -> int | str:
        return format_event_time(at) if self._rng.random() < self.cfg.rfc3339_share else at

    @staticmethod
    def _encode(rec: dict[str, object]) -> bytes:
        return orjson.dumps(rec)

    def _plan_malformed(self, at: int) -> None:
        n = self._bad_n
        self._bad_n += 1
        flow = self._rng.choice(self.cfg.flows)
        side = self._rng.choice(("start", "end"))
        reason = self._rng.choice(MALFORMED_REASONS)
        key = f"{self.cfg.key_prefix}bad-{n}"
        topic = flow.start_topic if side == "start" else flow.end_topic
        value = malformed_value(flow, side, key, reason, at)
        self._push(Planned(at, 0, topic, key.encode(), value, "malformed", None, reason))
        self.malformed_planned += 1

    def _push(self, rec: Planned) -> None:
        rec.seq = self._seq
        self._seq += 1
        heapq.heappush(self.queue, rec)


# -- records ----------------------------------------------------------------------------


def malformed_value(flow: Flow, side: str, key: str, reason: str, at: int) -> bytes:
    """A record of ``flow``'s start or completion topic that the monitor must quarantine
    with ``reason``; it contains ``key`` (and so the run id)."""
    good = valid_record(flow, side, key, f"{key}-x", at)
    key_path = flow.start_key if side == "start" else flow.end_key
    time_path = flow.start_time if side == "start" else flow.end_time
    if reason == "not_json":
        return b'{"event_id": "' + key.encode() + b'", "occurred_at": '
    if reason == "not_object":
        return orjson.dumps([key, at])
    if reason == "schema_violation":
        return orjson.dumps(dict(good, event_id=len(key)))
    if reason == "missing_key":
        set_path(good, key_path, None)
        return orjson.dumps(dict(good, note=key))
    if reason == "missing_time":
        set_path(good, time_path, None)
        return orjson.dumps(good)
    if reason == "unparsable_time":
        set_path(good, time_path, "yesterday at noon")
        return orjson.dumps(good)
    raise ValueError(f"unknown malformed reason {reason!r}")
