"""Scoring a simulation run: the ground truth against what the monitor reported.

Pure: :func:`score` takes a parsed :class:`~streams.simulate.truth.Truth`, an
:class:`Observed` (what was read from the output topics) and the judging time, and returns a
:class:`Report`. Reading Kafka and waiting for the monitor live in
:mod:`streams.simulate.observe`.

What counts as a match (per flow):

* ``overdue`` / ``late`` / ``lost``: the *latest* breach record of ``flow:key`` has that kind,
  the right status (open for overdue, closed otherwise), the start's ``started_at``,
  ``deadline`` and ``start_event_id``, and for ``late`` the exact ``lag_ms`` and
  ``completed_at``. A start expected ``overdue`` whose give-up passes while it is judged
  (within :data:`GIVE_UP_SLACK_MS`) may be either ``overdue`` or ``lost``.
* ``on_time``: a measurement with ``on_time: true`` and the exact lag, and no breach record
  for that start at all, ever.
* ``measured``: every completed start (on time or late) has a measurement with the exact
  lag, start time and ``on_time`` flag.
* ``quarantine`` per reason: a quarantine record at the malformed record's topic, partition
  and offset, with the reason it was made for.

Precision is matched / reported, recall matched / expected; either is undefined (``-``)
when its denominator is 0. :meth:`Report.ok` is true only when every defined precision and
recall is exactly 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.simulate.percentile import percentile
from streams.simulate.traffic import MALFORMED_REASONS
from streams.simulate.truth import Truth, TruthStart

FLOW_KINDS = ("on_time", "late", "overdue", "lost", "measured")
GIVE_UP_SLACK_MS = 5_000
MAX_EXAMPLES = 20


@dataclass(slots=True)
class Cell:
    expected: int = 0
    reported: int = 0
    matched: int = 0

    @property
    def precision(self) -> float | None:
        return self.matched / self.reported if self.reported else None

    @property
    def recall(self) -> float | None:
        return self.matched / self.expected if self.expected else None

    @property
    def ok(self) -> bool:
        return self.precision in (None, 1.0) and self.recall in (None, 1.0)


@dataclass(slots=True)
class Observed:
    """This run's records in the output topics, as read."""

    breaches: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Latest breach record per breach id (``flow:key``)."""
    breach_ids_ever: set[str] = field(default_factory=set)
    """Every breach id that had any breach record."""
    first_overdue_ts: dict[str, int] = field(default_factory=dict)
    """Record timestamp (wall clock of the worker's send) of the first overdue record."""
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Latest measurement per ``flow:key``."""
    quarantine: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)
    """Quarantine records of this run by source position."""

    def size(self) -> int:
        return len(self.breaches) + len(self.measurements) + len(self.quarantine)


@dataclass(slots=True)
class Report:
    run_id: str
    judged_at: int
    starts: int
    malformed: int
    cells: dict[tuple[str, str], Cell]
    """(flow or ``quarantine``, kind or reason) → counts."""
    detection_ms: list[int] = field(default_factory=list)
    emission_ms: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return all(c.ok for c in self.cells.values())

    def example(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)

    def format(self) -> str:
        judged = datetime.fromtimestamp(self.judged_at / 1000, UTC).isoformat(timespec="seconds")
        lines = [
            f"score of simulate run {self.run_id}: {self.starts} starts, "
            f"{self.malformed} malformed records; judged at {judged}",
            "",
            f"{'flow':<26} {'kind':<17} {'expected':>9} {'reported':>9} {'matched':>9} "
            f"{'precision':>9} {'recall':>7}",
        ]
        for (group, kind), c in self.cells.items():
            lines.append(
                f"{group:<26} {kind:<17} {c.expected:>9} {c.reported:>9} {c.matched:>9} "
                f"{_ratio(c.precision):>9} {_ratio(c.recall):>7}" + ("" if c.ok else "  <-- FAIL")
            )
        lines.append("")
        lines.append(
            "overdue detection delay, detected_at - deadline (event time): "
            + _distribution(self.detection_ms)
        )
        lines.append(
            "overdue emission delay, breach record timestamp - deadline (wall clock): "
            + _distribution(self.emission_ms)
        )
        lines.extend(f"note: {note}" for note in self.notes)
        if self.examples:
            lines.append(f"mismatches (first {len(self.examples)}):")
            lines.extend(f"  {e}" for e in self.examples)
        bad = [f"{g}/{k}" for (g, k), c in self.cells.items() if not c.ok]
        lines.append(
            "PASS: every precision and recall is 1.000"
            if not bad
            else f"FAIL: below 1.000 in {', '.join(bad)}"
        )
        return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _distribution(values: list[int]) -> str:
    if not values:
        return "n=0"
    return (
        f"n={len(values)} p50={percentile(values, 0.5)} p95={percentile(values, 0.95)} "
        f"p99={percentile(values, 0.99)} max={max(values)} ms"
    )


def expected_kinds(s: TruthStart, now_ms: int) -> tuple[str, ...]:
    """Breach kinds acceptable as the latest state of ``s`` at ``now_ms`` (empty: none)."""
    if s.outcome == "late":
        return ("late",)
    if s.outcome == "lost":
        return ("lost",)
    if s.outcome == "overdue":
        if now_ms < s.give_up_at:
            return ("overdue",)
        if now_ms > s.give_up_at + GIVE_UP_SLACK_MS:
            return ("lost",)
        return ("overdue", "lost")
    return ()


def _breach_matches(s: TruthStart, b: dict[str, Any], kinds: tuple[str, ...]) -> bool:
    kind = b.get("kind")
    if kind not in kinds:
        return False
    if b.get("status") != ("open" if kind == "overdue" else "closed"):
        return False
    if (b.get("started_at"), b.get("deadline"), b.get("start_event_id")) != (
        s.started_at,
        s.deadline,
        s.start_event_id,
    ):
        return False
    if kind == "late":
        assert s.lag_ms is not None
        return b.get("lag_ms") == s.lag_ms and b.get("completed_at") == s.started_at + s.lag_ms
    return b.get("completed_at") is None


def score(truth: Truth, obs: Observed, now_ms: int) -> Report:
    """Compare ``truth`` with ``obs`` as of ``now_ms``; see the module docstring."""
    cells: dict[tuple[str, str], Cell] = {}
    for flow in truth.flows:
        for kind in FLOW_KINDS:
            cells[(flow, kind)] = Cell()
    for reason in MALFORMED_REASONS:
        cells[("quarantine", reason)] = Cell()
    report = Report(truth.run_id, now_ms, len(truth.starts), len(truth.malformed), cells)

    def cell(group: str, kind: str) -> Cell:
        return cells.setdefault((group, kind), Cell())

    starts = {s.ident: s for s in truth.starts}
    for s in truth.starts:
        kinds = expected_kinds(s, now_ms)
        b = obs.breaches.get(s.ident)
        if kinds:
            got = b.get("kind") if b is not None else None
            cell(s.flow, got if got in kinds and isinstance(got, str) else kinds[0]).expected += 1
        if s.outcome == "on_time":
            cell(s.flow, "on_time").expected += 1
        if s.outcome in ("on_time", "late"):
            cell(s.flow, "measured").expected += 1
    _score_breaches(report, starts, obs, now_ms, cell)
    _score_measurements(report, starts, obs, cell)
    _score_quarantine(report, truth, obs, cell)
    _delays(report, truth.starts, obs)
    return report


def _score_breaches(
    report: Report, starts: dict[str, TruthStart], obs: Observed, now_ms: int, cell: Any
) -> None:
    for bid, b in sorted(obs.breaches.items()):
        c: Cell = cell(str(b.get("flow")), str(b.get("kind")))
        c.reported += 1
        s = starts.get(bid)
        if s is not None and _breach_matches(s, b, expected_kinds(s, now_ms)):
            c.matched += 1
        else:
            want = "no breach" if s is None else f"{s.outcome} lag {s.lag_ms}"
            report.example(
                f"breach {bid}: got {b.get('kind')}/{b.get('status')} lag {b.get('lag_ms')} "
                f"detected_at {b.get('detected_at')}; truth {want}"
            )
    for s in starts.values():
        if expected_kinds(s, now_ms) and s.ident not in obs.breaches:
            report.example(f"breach {s.ident}: none reported; truth {s.outcome} lag {s.lag_ms}")


def _score_measurements(
    report: Report, starts: dict[str, TruthStart], obs: Observed, cell: Any
) -> None:
    for ident, m in sorted(obs.measurements.items()):
        flow = str(m.get("flow"))
        s = starts.get(ident)
        exact = (
            s is not None
            and s.outcome in ("on_time", "late")
            and m.get("lag_ms") == s.lag_ms
            and m.get("started_at") == s.started_at
            and m.get("on_time") == (s.outcome == "on_time")
        )
        measured: Cell = cell(flow, "measured")
        measured.reported += 1
        measured.matched += exact
        if not exact:
            want = "no completion" if s is None else f"{s.outcome} lag {s.lag_ms}"
            report.example(f"measurement {ident}: lag {m.get('lag_ms')}; truth {want}")
        if m.get("on_time") is True:
            on_time: Cell = cell(flow, "on_time")
            on_time.reported += 1
            if exact and ident not in obs.breach_ids_ever:
                on_time.matched += 1
            elif exact:
                report.example(f"on-time start {ident} has a breach record")
    for s in starts.values():
        if s.outcome in ("on_time", "late") and s.ident not in obs.measurements:
            report.example(
                f"measurement {s.ident}: none reported; truth {s.outcome} lag {s.lag_ms}"
            )


def _score_quarantine(report: Report, truth: Truth, obs: Observed, cell: Any) -> None:
    want = {(m.topic, m.partition, m.offset): m for m in truth.malformed}
    for m in truth.malformed:
        cell("quarantine", m.reason).expected += 1
    for pos, q in sorted(obs.quarantine.items()):
        c: Cell = cell("quarantine", str(q.get("reason")))
        c.reported += 1
        t = want.get(pos)
        if t is not None and t.reason == q.get("reason"):
            c.matched += 1
        else:
            report.example(
                f"quarantine {pos}: {q.get('reason')}; truth {t.reason if t else 'valid record'}"
            )
    for pos, m in want.items():
        if pos not in obs.quarantine:
            report.example(f"quarantine {pos}: not quarantined; truth {m.reason}")


def _delays(report: Report, starts: Iterable[TruthStart], obs: Observed) -> None:
    for s in starts:
        if s.outcome not in ("overdue", "lost", "late"):
            continue
        b = obs.breaches.get(s.ident)
        if b is None or not isinstance(b.get("detected_at"), int):
            continue
        detected = int(b["detected_at"])
        if b.get("kind") == "late" and detected >= int(b.get("completed_at") or 0):
            continue  # declared late on arrival, never overdue: no overdue detection
        report.detection_ms.append(detected - s.deadline)
        ts = obs.first_overdue_ts.get(s.ident)
        if ts is not None:
            report.emission_ms.append(ts - s.deadline)
