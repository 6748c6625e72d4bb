"""What ``freshness replay`` and ``freshness explain`` show on a terminal (``rich``).

Progress bars go to stderr, only when it is a terminal and the command was not asked for
JSON; tables and lines go to stdout. Nothing here decides anything: it renders the
summary (:mod:`streams.replay.summary`) and the differences (:mod:`streams.replay.diff`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from streams.core.timeparse import format_event_time
from streams.replay.diff import DiffReport
from streams.replay.engine import ReplayResult
from streams.replay.explain import PARTS, Explanation
from streams.replay.summary import rate, summarize

WIDE = 160
MAX_DIFF_LINES = 200
"""Differences printed one per line; the rest are counted (``--json`` lists them all)."""


class Ui:
    """stdout for results, stderr for progress; ``quiet`` shows no progress."""

    def __init__(self, *, quiet: bool = False, out: Console | None = None) -> None:
        self.out = out or Console(highlight=False)
        if not self.out.is_terminal:
            self.out.width = WIDE  # a file or a pipe: never squeeze the table to 80 columns
        self.err = Console(stderr=True)
        self.quiet = quiet or not self.err.is_terminal

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A bar of ``total`` records (None: unknown); yields ``advance(n)``."""
        if self.quiet:
            yield lambda n: None
            return
        columns = (
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.err, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    def line(self, text: str) -> None:
        self.out.print(text, markup=False, soft_wrap=True)

    def summary(self, result: ReplayResult, seconds: float) -> None:
        title = f"replay {format_event_time(result.from_ms)} .. {format_event_time(result.to_ms)}"
        table = Table(title=title, title_justify="left")
        for name in ("flow", "target", "starts", "on time", "late", "overdue", "lost"):
            table.add_column(name, justify="left" if name == "flow" else "right")
        for name in ("pending", "quarantined", "p50", "p95", "p99", "max"):
            table.add_column(name, justify="right")
        for row in summarize(result):
            lags = (row.lag_p50_ms, row.lag_p95_ms, row.lag_p99_ms, row.lag_max_ms)
            table.add_row(
                row.flow,
                _ms(row.target_ms),
                *(str(n) for n in (row.starts, row.on_time, row.late, row.overdue, row.lost)),
                str(row.pending),
                str(row.quarantined),
                *(_ms(v) for v in lags),
            )
        self.out.print(table)
        self.line(
            f"{result.records_read} input records read ({result.records_in_range} in the "
            f"range) in {seconds:.2f} s: {rate(result.records_read, seconds)} records/s"
        )

    def explanation(self, e: Explanation) -> None:
        _render_explanation(self, e)

    def diff(self, report: DiffReport) -> None:
        for d in report.differences[:MAX_DIFF_LINES]:
            self.line(d.line())
        hidden = len(report.differences) - MAX_DIFF_LINES
        if hidden > 0:
            self.line(f"... and {hidden} more (--json lists every one)")
        extra = []
        if report.outside_lookback:
            extra.append(f"{report.outside_lookback} with a start before the lookback")
        if report.not_yet_judged:
            extra.append(f"{report.not_yet_judged} not yet judged live")
        if report.pages_unmatched:
            extra.append(f"{report.pages_unmatched} paged start(s) with no replayed verdict")
        skipped = f"; not compared: {', '.join(extra)}" if extra else ""
        pages = f"{report.pages_checked} paged start(s) checked, " if report.pages_checked else ""
        self.line(
            f"diff: {report.compared} starts compared, {pages}{len(report.differences)} "
            f"difference(s){skipped}"
        )


def diff_json(report: DiffReport) -> dict[str, Any]:
    return {
        "compared": report.compared,
        "differences": [d.to_json() for d in report.differences],
        "outside_lookback": report.outside_lookback,
        "not_yet_judged": report.not_yet_judged,
        "pages_checked": report.pages_checked,
        "pages_unmatched": report.pages_unmatched,
    }


def _ms(value: int | None) -> str:
    """``812`` -> ``812ms``, ``7412`` -> ``7.41s``, ``None`` -> ``-``."""
    if value is None:
        return "-"
    if abs(value) < 1000:
        return f"{value}ms"
    if abs(value) < 60_000:
        return f"{value / 1000:.2f}s"
    return f"{value / 60_000:.1f}m"


# -- explain -------------------------------------------------------------------------------


def _render_explanation(ui: Ui, e: Explanation) -> None:
    ui.line(f"{e.flow}:{e.key} (start {e.start_event_id or '?'}): {e.state.replace('_', ' ')}")
    for text in e.verdict:
        ui.line(f"  {text}")
    ui.line("")
    ui.out.print(_decomposition_table(e))
    ui.line("")
    ui.out.print(_inputs_table(e))
    if e.breaches or e.measurements:
        ui.out.print(_outputs_table(e))
    if e.pages:
        ui.out.print(_pages_table(e))
    for note in e.notes:
        ui.line(f"note: {note}")


def _decomposition_table(e: Explanation) -> Table:
    d = e.decomposition
    table = Table(title="where the time went", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("when", justify="right")
    table.add_column("took", justify="right")
    rows = (
        ("start occurred", d.started_at, None),
        ("start written to Kafka", d.start_in_kafka, d.start_to_kafka_ms),
        ("completion occurred (lag after the start)", d.completed_at, d.lag_ms),
        ("completion written to Kafka", d.completion_in_kafka, d.completion_to_kafka_ms),
        ("monitor wrote its verdict", d.verdict_at, d.monitor_ms),
        ("end to end (start occurred to verdict)", None, d.end_to_end_ms),
    )
    for what, when, took in rows:
        table.add_row(what, _when(when), "" if took is None else f"{took} ms")
    if d.slowest is not None:
        table.caption = f"most of the time: {PARTS[d.slowest]}"
    return table


def _inputs_table(e: Explanation) -> Table:
    table = Table(title="input records", title_justify="left")
    for name in ("position", "side", "event_id", "occurred_at", "Kafka time", "value"):
        table.add_column(name)
    for r in e.inputs:
        value = "" if r.raw is None else r.raw.decode("utf-8", "replace")
        table.add_row(
            f"{r.topic}[{r.partition}]@{r.offset}",
            r.side or (r.problem or "-"),
            r.event_id or "",
            _when(r.occurred_at),
            _when(r.timestamp),
            value if len(value) <= 120 else value[:117] + "...",
        )
    return table


def _outputs_table(e: Explanation) -> Table:
    table = Table(title="output records", title_justify="left")
    for name in ("position", "Kafka time", "record"):
        table.add_column(name)
    for r in (*e.breaches, *e.measurements):
        v = r.value
        if v is None:
            what = "tombstone: breach deleted (retracted)"
        elif "kind" in v:
            what = f"breach {v['kind']} {v['status']}, detected_at {_when(v['detected_at'])}"
        else:
            verdict = "on time" if v.get("on_time") else "late"
            what = f"measurement: lag {v['lag_ms']} ms, {verdict}"
        table.add_row(f"{r.topic}[{r.partition}]@{r.offset}", _when(r.timestamp), what)
    return table


def _pages_table(e: Explanation) -> Table:
    table = Table(title="pages that name it (freshness.alerts)", title_justify="left")
    for name in ("Kafka time", "alert", "status", "summary"):
        table.add_column(name)
    for r in e.pages:
        v = r.value or {}
        table.add_row(
            _when(r.timestamp), str(v.get("alert_id")), str(v.get("status")), str(v.get("summary"))
        )
    return table


def _when(ms: int | None) -> str:
    return "" if ms is None or ms < 0 else format_event_time(ms)
