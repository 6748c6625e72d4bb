"""The per-flow summary of a replay: what happened to the starts in the range.

Counted from the replay's verdicts (:class:`~streams.replay.engine.ReplayResult`): every
start in scope ends the replay in exactly one column (``on_time``, ``late``, ``overdue``,
``lost`` or ``pending``, i.e. still within its target at the range's end), so ``starts`` is
their sum. Lag quantiles are over the completed starts (on time and late), by the one
nearest-rank percentile (:mod:`streams.simulate.percentile`), exact, not sketched.
``quarantined`` counts the records in the range that were quarantined on the flow's topics
(a record of a topic two flows read counts for both).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from streams.replay.engine import ReplayResult
from streams.simulate.percentile import percentile


@dataclass(frozen=True, slots=True)
class FlowSummary:
    flow: str
    target_ms: int
    starts: int
    on_time: int
    late: int
    overdue: int
    lost: int
    pending: int
    clock_skew: int
    quarantined: int
    lag_p50_ms: int | None
    lag_p95_ms: int | None
    lag_p99_ms: int | None
    lag_max_ms: int | None


def summarize(result: ReplayResult) -> list[FlowSummary]:
    """One row per flow of the replay, in configuration order."""
    lags: dict[str, list[int]] = {f.name: [] for f in result.flows}
    late = dict.fromkeys(lags, 0)
    skew = dict.fromkeys(lags, 0)
    for m in result.measurements.values():
        lags[m.flow].append(m.lag_ms)
        late[m.flow] += not m.on_time
        skew[m.flow] += m.clock_skew
    kinds = {name: {"overdue": 0, "lost": 0} for name in lags}
    for b in result.breaches.values():
        if b.kind != "late":
            kinds[b.flow][b.kind] += 1
    rows = []
    for f in result.flows:
        values = lags[f.name]
        quarantined = sum(result.quarantined.get(t, 0) for t in {f.start_topic, f.end_topic})
        overdue, lost = kinds[f.name]["overdue"], kinds[f.name]["lost"]
        pending = result.pending.get(f.name, 0)
        rows.append(
            FlowSummary(
                flow=f.name,
                target_ms=f.target_ms,
                starts=len(values) + overdue + lost + pending,
                on_time=len(values) - late[f.name],
                late=late[f.name],
                overdue=overdue,
                lost=lost,
                pending=pending,
                clock_skew=skew[f.name],
                quarantined=quarantined,
                lag_p50_ms=percentile(values, 0.50),
                lag_p95_ms=percentile(values, 0.95),
                lag_p99_ms=percentile(values, 0.99),
                lag_max_ms=max(values, default=None),
            )
        )
    return rows


def summary_json(result: ReplayResult, seconds: float) -> dict[str, Any]:
    """The ``--json`` document: the range, the rows, the records read and the rate."""
    return {
        "from_ms": result.from_ms,
        "to_ms": result.to_ms,
        "flows": [asdict(row) for row in summarize(result)],
        "records_read": result.records_read,
        "records_in_range": result.records_in_range,
        "quarantine_reasons": dict(sorted(result.reasons.items())),
        "watermarks": dict(sorted(result.watermarks.items())),
        "seconds": round(seconds, 3),
        "records_per_s": rate(result.records_read, seconds),
    }


def rate(records: int, seconds: float) -> int:
    """Records per second, 0 for an empty or instant run."""
    return round(records / seconds) if seconds > 0 and records else 0
