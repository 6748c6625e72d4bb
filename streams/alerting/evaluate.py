"""Judging one flow against its alert policy: pure, no Kafka, time passed in.

The alerter feeds, per flow and per evaluation, a :class:`FlowSnapshot` made by
:func:`build_snapshot` from what it has read (the flow's
:class:`~streams.stats.windows.FlowStats`, its open breaches, the time) and asks
:func:`evaluate` which alert conditions hold; :class:`~streams.alerting.tracker.AlertTracker`
turns successive answers into state changes.

**What counts in a window** (DESIGN section 9, "bad = late, lost, and overdue from the
moment it is declared"). A window of ``N`` minutes ending at the reference time ``as_of``
is the ``N`` stats minutes ``as_of // 60000 - N + 1 .. as_of // 60000`` (the last one is
the minute in progress), and in it:

* good = ``on_time`` and ``late``, ``lost`` as the stats windows count them: by minute of
  completion, and a lost start by the minute it was given up;
* plus ``overdue`` = the open overdue breaches whose ``detected_at`` falls at or after the
  window's first minute. An overdue that later completes is a ``late`` (closed) breach, no
  longer open, and counts once, by its late outcome in its completion minute; one that
  gives up counts by its ``lost`` outcome; a false overdue retracted by the worker (its
  breach deleted) stops counting. So every start counts at most once per window.
* bad = late + lost + overdue; burn rate = bad / (good + bad) / (1 - objective)
  (:func:`streams.slo.budget.burn_rate`), 0 with nothing judged.

Stats are kept :data:`~streams.stats.records.RETENTION_MINUTES` (25 h) behind their
reference time: a longer window (the default ``ticket`` tier's 3 d) is judged over what is
kept, and its ``covered_ms`` says how much that is.

The reference time of the windows is the stats' own (:meth:`FlowStats.as_of`, the newest
watermark: how far the monitor has read), never later than the alerter's clock, so a monitor
that lags is not mistaken for a flow whose traffic stopped. ``stuck`` measures age with the
alerter's clock ``now_ms``: its breaches are declared by the worker only once it has read
past their deadlines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from streams.alerting.policy import (
    BACKLOG,
    STUCK,
    AlertKind,
    AlertPolicy,
    BacklogRule,
    BurnTier,
    Route,
    StuckRule,
)
from streams.connectors.sink import Severity
from streams.core.model import Breach
from streams.slo.budget import Outcomes, burn_rate
from streams.stats.records import MINUTE_MS, RETENTION_MINUTES
from streams.stats.windows import FlowStats

SUMMARY_MAX: Final = 1024
"""Longest summary (PagerDuty's ``payload.summary`` limit)."""
STUCK_KEYS_MAX: Final = 10
"""How many of the oldest stuck keys an alert's details list."""
_KEY_IN_SUMMARY: Final = 80


@dataclass(frozen=True, slots=True)
class OpenOverdue:
    """An open overdue breach of the flow: the entity, its deadline, when it was declared."""

    key: str
    deadline: int
    detected_at: int

    @classmethod
    def of(cls, breach: Breach) -> OpenOverdue:
        return cls(breach.key, breach.deadline, breach.detected_at)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """The outcomes of one burn window (see the module doc for what counts)."""

    window_ms: int
    from_minute: int
    to_minute: int
    on_time: int = 0
    late: int = 0
    lost: int = 0
    overdue: int = 0
    covered_ms: int = 0
    """How much of the window the stats keep (less than ``window_ms`` beyond 25 h)."""

    @property
    def outcomes(self) -> Outcomes:
        return Outcomes(self.on_time, self.late, self.lost, self.overdue)

    @property
    def bad(self) -> int:
        return self.late + self.lost + self.overdue

    def burn_rate(self, objective: float) -> float:
        return burn_rate(self.outcomes, objective)


@dataclass(frozen=True, slots=True)
class FlowSnapshot:
    """Everything :func:`evaluate` looks at for one flow, at reference time ``as_of_ms``.

    ``open_overdue`` is sorted oldest deadline first (ties by key). ``pending`` is ``None``
    when no worker has reported it yet (the backlog alert then keeps its state).
    """

    flow: str
    as_of_ms: int
    windows: tuple[WindowCounts, ...] = ()
    open_overdue: tuple[OpenOverdue, ...] = ()
    pending: int | None = None

    def window(self, window_ms: int) -> WindowCounts:
        """The counts of the window of that length; :class:`KeyError` if not built."""
        for counts in self.windows:
            if counts.window_ms == window_ms:
                return counts
        raise KeyError(f"{self.flow}: no {window_ms} ms window in this snapshot")


@dataclass(frozen=True, slots=True)
class AlertCondition:
    """Where one alert of one flow stands now.

    ``holds``: its firing condition holds. ``cleared``: its resolve condition holds. Never
    both; neither means "keep the current state" (stuck between its trigger and "none
    left", or backlog without a pending count). ``summary`` (at most :data:`SUMMARY_MAX`
    characters) names the flow, what is wrong and how bad; ``details`` is JSON-ready:
    counts, burn rates per window, the oldest stuck keys and their deadlines.
    """

    flow: str
    alert: str
    kind: AlertKind
    holds: bool
    cleared: bool
    severity: Severity
    routes: frozenset[Route]
    summary: str
    details: dict[str, object] = field(default_factory=dict)


def build_snapshot(
    policy: AlertPolicy,
    stats: FlowStats | None,
    breaches: Iterable[Breach | OpenOverdue],
    *,
    now_ms: int,
    pending: int | None = None,
) -> FlowSnapshot:
    """The snapshot of ``policy.flow`` with every window its tiers need.

    ``breaches`` may hold any breaches: only the open overdue ones of this flow are kept
    (an :class:`OpenOverdue` is taken as given). The windows end at ``stats.as_of()``
    capped at ``now_ms`` (``now_ms`` without stats). ``pending`` defaults to the sum of the
    workers' gauges (``None`` without any).
    """
    as_of = now_ms
    if stats is not None and (ref := stats.as_of()) is not None:
        as_of = min(ref, now_ms)
    overdue = sorted(_open_overdue(policy.flow, breaches), key=lambda o: (o.deadline, o.key))
    if pending is None and stats is not None and stats.gauges:
        pending = sum(g.pending for g in stats.gauges.values())
    windows = tuple(_counts(stats, as_of, w, overdue) for w in policy.windows_ms())
    return FlowSnapshot(policy.flow, as_of, windows, tuple(overdue), pending)


def evaluate(policy: AlertPolicy, snapshot: FlowSnapshot, now_ms: int) -> list[AlertCondition]:
    """One condition per alert of ``policy`` (in :attr:`AlertPolicy.alerts` order).

    Deterministic: the same policy, snapshot and time give equal conditions.
    """
    out = [_burn(policy, tier, snapshot) for tier in policy.tiers]
    if policy.stuck is not None:
        out.append(_stuck(policy.flow, policy.stuck, snapshot, now_ms))
    if policy.backlog is not None:
        out.append(_backlog(policy.flow, policy.backlog, snapshot))
    return out


# ---- inputs -----------------------------------------------------------------------------


def _open_overdue(flow: str, items: Iterable[Breach | OpenOverdue]) -> Iterable[OpenOverdue]:
    for item in items:
        if isinstance(item, OpenOverdue):
            yield item
        elif item.flow == flow and item.kind == "overdue" and item.status == "open":
            yield OpenOverdue.of(item)


def _counts(
    stats: FlowStats | None, as_of: int, window_ms: int, overdue: list[OpenOverdue]
) -> WindowCounts:
    minutes = window_ms // MINUTE_MS
    to_minute = as_of // MINUTE_MS
    from_minute = to_minute - minutes + 1
    covered = min(window_ms, RETENTION_MINUTES * MINUTE_MS)
    declared = sum(1 for o in overdue if o.detected_at // MINUTE_MS >= from_minute)
    if stats is None:
        return WindowCounts(window_ms, from_minute, to_minute, overdue=declared, covered_ms=covered)
    tally = stats.window(to_minute, minutes).tally
    return WindowCounts(
        window_ms, from_minute, to_minute, tally.on_time, tally.late, tally.lost, declared, covered
    )


# ---- the three kinds of alert -----------------------------------------------------------


def _burn(policy: AlertPolicy, tier: BurnTier, snap: FlowSnapshot) -> AlertCondition:
    long, short = snap.window(tier.long_window_ms), snap.window(tier.short_window_ms)
    long_rate, short_rate = long.burn_rate(policy.objective), short.burn_rate(policy.objective)
    enough = long.bad >= tier.min_bad
    holds = long_rate > tier.factor and short_rate > tier.factor and enough
    details: dict[str, object] = {
        "objective": policy.objective,
        "factor": tier.factor,
        "min_bad": tier.min_bad,
        "long": _window_details(long, long_rate),
        "short": _window_details(short, short_rate),
    }
    summary = _burn_summary(snap.flow, tier, long, short, (long_rate, short_rate), holds)
    return AlertCondition(
        snap.flow, tier.name, "burn", holds, not holds, tier.severity, tier.routes, summary, details
    )


def _stuck(flow: str, rule: StuckRule, snap: FlowSnapshot, now_ms: int) -> AlertCondition:
    open_ = snap.open_overdue
    oldest = open_[0] if open_ else None
    holds = (
        oldest is not None
        and len(open_) >= rule.min_open
        and now_ms - oldest.deadline >= rule.after_ms
    )
    details: dict[str, object] = {
        "open_overdue": len(open_),
        "min_open": rule.min_open,
        "after_ms": rule.after_ms,
        "oldest": [_stuck_entry(o, now_ms) for o in open_[:STUCK_KEYS_MAX]],
    }
    if oldest is None:
        summary = f"{flow}: no entity is overdue"
    else:
        summary = (
            f"{flow}: {len(open_)} {_plural(len(open_), 'entity', 'entities')} stuck past "
            f"{_plural(len(open_), 'its', 'their')} deadline; oldest "
            f"{_short_key(oldest.key)!r} overdue by {_human_ms(now_ms - oldest.deadline)} "
            f"(stuck fires at >= {rule.min_open} open, oldest >= {_human_ms(rule.after_ms)})"
        )
    return AlertCondition(
        flow,
        STUCK,
        "stuck",
        holds,
        not open_,
        rule.severity,
        rule.routes,
        cap_summary(summary),
        details,
    )


def _backlog(flow: str, rule: BacklogRule, snap: FlowSnapshot) -> AlertCondition:
    pending = snap.pending
    holds = pending is not None and pending > rule.max_pending
    cleared = pending is not None and not holds
    details: dict[str, object] = {"pending": pending, "max_pending": rule.max_pending}
    shown = "unknown" if pending is None else str(pending)
    summary = f"{flow}: {shown} pending (backlog fires above {rule.max_pending})"
    return AlertCondition(
        flow, BACKLOG, "backlog", holds, cleared, rule.severity, rule.routes, summary, details
    )


# ---- wording ----------------------------------------------------------------------------


def _window_details(counts: WindowCounts, rate: float) -> dict[str, object]:
    return {
        "window_ms": counts.window_ms,
        "covered_ms": counts.covered_ms,
        "burn_rate": rate,
        "on_time": counts.on_time,
        "late": counts.late,
        "lost": counts.lost,
        "overdue": counts.overdue,
        "bad": counts.bad,
        "judged": counts.outcomes.judged,
    }


def _burn_summary(
    flow: str,
    tier: BurnTier,
    long: WindowCounts,
    short: WindowCounts,
    rates: tuple[float, float],
    holds: bool,
) -> str:
    lw, sw = _human_ms(long.window_ms), _human_ms(short.window_ms)
    burn = f"{_rate(rates[0])}x over {lw} and {_rate(rates[1])}x over {sw}"
    counts = (
        f"{long.bad} bad (late {long.late}, lost {long.lost}, overdue {long.overdue}) "
        f"of {long.outcomes.judged} in {lw}"
    )
    if holds:
        return cap_summary(
            f"{flow}: burning error budget {burn} ({tier.name} > {tier.factor}x); {counts}"
        )
    return cap_summary(
        f"{flow}: error budget burn {burn} ({tier.name} fires above {tier.factor}x on both "
        f"with >= {tier.min_bad} bad in {lw}); {counts}"
    )


def _stuck_entry(o: OpenOverdue, now_ms: int) -> dict[str, object]:
    return {
        "key": o.key,
        "deadline": o.deadline,
        "detected_at": o.detected_at,
        "overdue_ms": now_ms - o.deadline,
    }


def _human_ms(ms: int) -> str:
    """``3_600_000`` -> ``1 h``; ``90_000`` -> ``1 min 30 s``; below a second: ``250 ms``."""
    if abs(ms) < 1000:
        return f"{ms} ms"
    sign, rest = ("-" if ms < 0 else ""), abs(ms) // 1000
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return sign + " ".join(parts)


def _rate(rate: float) -> str:
    """A burn rate for people: one decimal from 10x up, two below (0.97x is not 1.0x)."""
    rate = round(rate, 2)  # 9.9999999 (float noise) is 10.0, not 10.00
    return f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _short_key(key: str) -> str:
    return key if len(key) <= _KEY_IN_SUMMARY else key[: _KEY_IN_SUMMARY - 1] + "…"


def cap_summary(text: str) -> str:
    """``text`` cut to :data:`SUMMARY_MAX` characters, ending in ``…`` when cut."""
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"
