"""What pages, per flow: the alert policy and its defaults (DESIGN section 9).

A flow's :class:`AlertPolicy` names every alert the flow can raise:

* **burn-rate tiers** (:class:`BurnTier`): the flow's error budget burns faster than
  ``factor`` over *both* a long and a short window, with at least ``min_bad`` bad starts in
  the long window (low-traffic safety);
* **stuck** (:class:`StuckRule`): at least ``min_open`` open overdue breaches, the oldest at
  least ``after_ms`` past its deadline; once firing it holds until no overdue is left;
* **backlog** (:class:`BacklogRule`): more than ``max_pending`` starts waiting for their
  completion.

:func:`default_policy` gives the defaults of the DESIGN table; the flows YAML overrides
them field by field under each flow's ``alerts:`` key (:mod:`streams.flows.alerts`), so a
policy built here is always valid: the constructors check what the YAML parser checks,
and raise :class:`ValueError` for anything else.

Severities are the sinks' (:data:`streams.connectors.sink.Severity`); each maps to one of
the funnel's escalation levels (:data:`ESCALATION`). Routes are sink names, the ``name`` of
a :class:`streams.connectors.sink.Sink`. Nothing here knows a peer or reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from streams.connectors.sink import Severity
from streams.core.model import Flow

Route = Literal["pagerduty", "alertmanager", "webhook"]
"""A sink an alert may be delivered to (the sink's ``name``)."""
AlertKind = Literal["burn", "stuck", "backlog"]

ROUTES: Final[tuple[Route, ...]] = get_args(Route)
SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)
ALL_ROUTES: Final[frozenset[Route]] = frozenset(ROUTES)
NO_PAGER: Final[frozenset[Route]] = frozenset({"alertmanager", "webhook"})

ESCALATION: Final[dict[Severity, str]] = {
    "critical": "P1",  # page now
    "error": "P2",  # page, within the hour
    "warning": "P3",  # within hours (a ticket)
    "info": "P4",  # next business day
}
"""The funnel's escalation level of each severity (``docs/alerting.md``, "Severities")."""

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS
MAX_WINDOW_MS: Final = 30 * DAY_MS
"""Longest burn window accepted (a window is summed minute by minute and hour by hour)."""

PAGE_FAST: Final = "page-fast"
PAGE_SLOW: Final = "page-slow"
TICKET: Final = "ticket"
STUCK: Final = "stuck"
BACKLOG: Final = "backlog"
ALERT_NAMES: Final[tuple[str, ...]] = (PAGE_FAST, PAGE_SLOW, TICKET, STUCK, BACKLOG)
"""Every alert a flow can have, in the order they are evaluated and reported."""

DEFAULT_MIN_BAD: Final = 5
"""Bad starts a burn tier needs in its long window: one late start of three in an hour
(a 33x burn at 0.99) does not page."""
DEFAULT_MIN_OPEN: Final = 1
DEFAULT_BACKLOG: Final[dict[str, int]] = {"dlq_first_retry": 50}
"""Flows with a backlog alert by default: the funnel's "DLQ depth > 50 triggers alert"."""


@dataclass(frozen=True, slots=True)
class BurnTier:
    """Fires while the burn rate is above ``factor`` over both windows and the long window
    holds at least ``min_bad`` bad starts; resolves as soon as either stops holding (in
    practice the short window recovers first). Windows are whole minutes, short < long."""

    name: str
    factor: float
    long_window_ms: int
    short_window_ms: int
    severity: Severity = "critical"
    routes: frozenset[Route] = ALL_ROUTES
    min_bad: int = DEFAULT_MIN_BAD

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"{self.name}: factor must be greater than 0, got {self.factor!r}")
        for win in (self.long_window_ms, self.short_window_ms):
            check_window(self.name, win)
        if self.short_window_ms >= self.long_window_ms:
            raise ValueError(f"{self.name}: the short window must be shorter than the long one")
        if self.min_bad < 1:
            raise ValueError(f"{self.name}: min_bad must be at least 1, got {self.min_bad}")
        _check_common(self.name, self.severity, self.routes)


@dataclass(frozen=True, slots=True)
class StuckRule:
    """Fires while at least ``min_open`` overdue breaches are open and the oldest (earliest
    deadline) is at least ``after_ms`` past its deadline; once firing it holds until no
    overdue breach of the flow is open."""

    after_ms: int
    min_open: int = DEFAULT_MIN_OPEN
    severity: Severity = "error"
    routes: frozenset[Route] = ALL_ROUTES

    def __post_init__(self) -> None:
        if self.after_ms < 0:
            raise ValueError(f"stuck: after must not be negative, got {self.after_ms}")
        if self.min_open < 1:
            raise ValueError(f"stuck: min_open must be at least 1, got {self.min_open}")
        _check_common(STUCK, self.severity, self.routes)


@dataclass(frozen=True, slots=True)
class BacklogRule:
    """Fires while the flow's pending count is above ``max_pending``."""

    max_pending: int
    severity: Severity = "warning"
    routes: frozenset[Route] = NO_PAGER

    def __post_init__(self) -> None:
        if self.max_pending < 0:
            raise ValueError(f"backlog: max_pending must not be negative, got {self.max_pending}")
        _check_common(BACKLOG, self.severity, self.routes)


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Every alert of one flow. ``objective`` is the flow's (its error budget is
    ``1 - objective``); a rule that is ``None`` is off, and so is a tier left out."""

    flow: str
    objective: float
    tiers: tuple[BurnTier, ...] = ()
    stuck: StuckRule | None = None
    backlog: BacklogRule | None = None
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.objective < 1.0:
            raise ValueError(f"objective must be between 0 and 1, got {self.objective!r}")
        names = tuple(t.name for t in self.tiers)
        if len(set(names)) != len(names) or {STUCK, BACKLOG} & set(names):
            raise ValueError(f"burn tier names must be unique and not stuck/backlog: {names}")
        names += (STUCK,) * (self.stuck is not None) + (BACKLOG,) * (self.backlog is not None)
        object.__setattr__(self, "_names", names)

    @property
    def alerts(self) -> tuple[str, ...]:
        """The names of the alerts that are on: tiers in order, then stuck, then backlog."""
        return self._names

    def routes_for(self, alert: str) -> frozenset[Route]:
        """The routes of the alert named; every route for one this policy does not have
        (a resolve owed to an alert since removed goes everywhere it may have gone)."""
        rule = self._rule(alert)
        return ALL_ROUTES if rule is None else rule.routes

    def severity_for(self, alert: str) -> Severity | None:
        """The severity of the alert named, ``None`` for one this policy does not have."""
        rule = self._rule(alert)
        return None if rule is None else rule.severity

    def _rule(self, alert: str) -> BurnTier | StuckRule | BacklogRule | None:
        if alert == STUCK:
            return self.stuck
        if alert == BACKLOG:
            return self.backlog
        return next((t for t in self.tiers if t.name == alert), None)

    def windows_ms(self) -> tuple[int, ...]:
        """Every burn window the tiers need, ascending, each once."""
        return tuple(sorted({w for t in self.tiers for w in (t.long_window_ms, t.short_window_ms)}))


def default_tiers() -> tuple[BurnTier, ...]:
    """The three burn tiers of DESIGN section 9 (the SRE workbook's multiwindow alerts)."""
    return (
        BurnTier(PAGE_FAST, 14.4, HOUR_MS, 5 * MINUTE_MS),
        BurnTier(PAGE_SLOW, 6.0, 6 * HOUR_MS, 30 * MINUTE_MS),
        BurnTier(TICKET, 1.0, 3 * DAY_MS, 6 * HOUR_MS, "warning", NO_PAGER),
    )


def default_policy(flow: Flow) -> AlertPolicy:
    """The policy a flow has when its ``alerts:`` key is absent: the three tiers, stuck
    after the flow's target, and a backlog alert only where :data:`DEFAULT_BACKLOG` says."""
    max_pending = DEFAULT_BACKLOG.get(flow.name)
    return AlertPolicy(
        flow=flow.name,
        objective=flow.objective,
        tiers=default_tiers(),
        stuck=StuckRule(after_ms=flow.target_ms),
        backlog=None if max_pending is None else BacklogRule(max_pending),
    )


def routes_of(names: Iterable[str]) -> frozenset[Route]:
    """The routes named, checked; :class:`ValueError` names the first unknown one."""
    out: set[Route] = set()
    for name in names:
        if name not in ROUTES:
            raise ValueError(f"unknown route {name!r} (routes: {', '.join(ROUTES)})")
        out.add(name)
    return frozenset(out)


def check_window(name: str, window_ms: int) -> None:
    """A burn window is a whole number of minutes (stats are kept per minute), at most
    :data:`MAX_WINDOW_MS`; :class:`ValueError` otherwise."""
    if window_ms <= 0 or window_ms % MINUTE_MS:
        raise ValueError(f"{name}: a window must be a whole number of minutes, got {window_ms} ms")
    if window_ms > MAX_WINDOW_MS:
        raise ValueError(f"{name}: a window must be at most 30d, got {window_ms} ms")


def _check_common(name: str, severity: str, routes: frozenset[str]) -> None:
    if severity not in SEVERITIES:
        raise ValueError(f"{name}: unknown severity {severity!r} ({', '.join(SEVERITIES)})")
    routes_of(routes)
