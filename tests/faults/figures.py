"""The figure table of ``docs/reliability.md``: every fault test records what it measured here,
and the suite writes the table itself when the whole fault suite ran and passed.

A test calls ``record(...)`` once per fault it injected; the row's cells are what it counted,
never a constant it hoped for. Columns the fault does not touch stay empty.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
START = "<!-- figures:start (written by tests/faults; do not edit by hand) -->"
END = "<!-- figures:end -->"


@dataclass
class Row:
    """One injected fault and what the test counted around it."""

    fault: str
    injected: int
    """How many times the fault was injected (kills, outages, poison bursts...)."""
    outcomes_checked: int | None = None
    """Outcomes compared with the ground truth (truth file or scripted scenario)."""
    outcomes_lost: int | None = None
    identical_resends: int | None = None
    """Output records written again byte for byte (at-least-once re-sends; harmless)."""
    wrong_duplicates: int | None = None
    """Output records written again with a different value (a contract breach)."""
    false_overdue: int | None = None
    poison_tried: int | None = None
    stalls: int | None = None
    """Partitions whose lag did not return to 0."""
    cases: int | None = None
    """schemathesis cases run."""
    detail: str = ""
    """One short clause: anything else measured (log lines/s, stop time, ...)."""
    test: str = field(default="", compare=False)


ROWS: list[Row] = []

COLUMNS = (
    ("fault", "fault"),
    ("injected", "injected"),
    ("outcomes_checked", "outcomes checked"),
    ("outcomes_lost", "lost"),
    ("identical_resends", "identical re-sends"),
    ("wrong_duplicates", "wrong duplicates"),
    ("false_overdue", "false overdue"),
    ("poison_tried", "poison tried"),
    ("stalls", "stalls"),
    ("cases", "schemathesis cases"),
    ("detail", "also measured"),
)


def record(row: Row) -> None:
    """Add ``row`` to the table the suite writes at its end."""
    ROWS.append(row)


def table(rows: list[Row]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, rule]
    for row in sorted(rows, key=lambda r: r.fault):
        cells = asdict(row)
        lines.append("| " + " | ".join(_cell(cells[key]) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write(rows: list[Row], stamp: str, doc: Path = DOC) -> None:
    """Replace the table between the markers of ``doc`` with ``rows``."""
    text = doc.read_text()
    body = f"{START}\n{stamp}\n\n{table(rows)}\n{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{doc} has no figure markers")
    doc.write_text(pattern.sub(lambda _: body, text))
