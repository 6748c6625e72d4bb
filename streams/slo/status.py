"""The status rule of a flow (``docs/api.md``, "Status"): breaching beats warning beats ok.

``breaching`` when the 1 h on-time ratio is below the objective, or an open breach is
overdue by more than the flow's target; ``warning`` when the 5 min on-time ratio is below
the objective, any breach is open, the monitor lags by more than the target, or some
partition's statistics are stale; else ``ok``. Every condition that holds is a reason,
the breaching ones first. Windows with no decided outcome say nothing (no ratio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streams.slo.budget import Outcomes

Status = Literal["ok", "warning", "breaching"]


@dataclass(frozen=True, slots=True)
class FlowHealth:
    """What the rule looks at, for one flow at its reference time ``as_of`` (epoch ms)."""

    target_ms: int
    objective: float
    last_1h: Outcomes
    last_5m: Outcomes
    open_breaches: int = 0
    oldest_open_deadline: int | None = None
    as_of: int | None = None
    monitor_lag_ms: int | None = None
    stale_partitions: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reasons: tuple[str, ...] = ()


def flow_status(health: FlowHealth) -> Verdict:
    """The flow's status and every reason for it (empty when ok)."""
    breaching, warning = _breaching(health), _warning(health)
    if breaching:
        return Verdict("breaching", (*breaching, *warning))
    if warning:
        return Verdict("warning", tuple(warning))
    return Verdict("ok")


def _breaching(h: FlowHealth) -> list[str]:
    reasons: list[str] = []
    ratio = h.last_1h.on_time_ratio()
    if ratio is not None and ratio < h.objective:
        reasons.append(f"1 h on-time ratio {ratio:.4f} < objective {h.objective}")
    if h.oldest_open_deadline is not None and h.as_of is not None:
        overdue_by = h.as_of - h.oldest_open_deadline
        if overdue_by > h.target_ms:
            reasons.append(
                f"an open breach is {overdue_by} ms past its deadline (> target {h.target_ms} ms)"
            )
    return reasons


def _warning(h: FlowHealth) -> list[str]:
    reasons: list[str] = []
    ratio = h.last_5m.on_time_ratio()
    if ratio is not None and ratio < h.objective:
        reasons.append(f"5 min on-time ratio {ratio:.4f} < objective {h.objective}")
    if h.open_breaches:
        reasons.append(f"{h.open_breaches} open breach{'es' if h.open_breaches > 1 else ''}")
    if h.monitor_lag_ms is not None and h.monitor_lag_ms > h.target_ms:
        reasons.append(f"monitor lag {h.monitor_lag_ms} ms > target {h.target_ms} ms")
    if h.stale_partitions:
        reasons.append(f"stale statistics from partitions {list(h.stale_partitions)}")
    return reasons
