"""The ground-truth file of a simulation run (JSON lines), written by ``simulate``, read by
``score``.

Layout, one JSON object per line, told apart by ``type``:

* ``header`` (first line): ``version``, ``run_id``, ``key_prefix``, ``seed``, ``started_at``
  and ``ends_at`` (epoch ms; ``ends_at`` null for a run until Ctrl-C), ``rate``,
  ``fractions``, ``lag`` (the on-time lag distribution) and ``flows`` (name, topics,
  ``target_ms``, ``give_up_after_ms``);
* ``start``: one per start that was produced (or whose completion was): ``flow``, ``key``,
  ``case`` (what was planned), ``outcome`` (what the monitor must conclude, given what was
  actually produced), ``lag_ms`` (null without a completion), ``started_at``, ``deadline``,
  ``give_up_at``, ``start_event_id``;
* ``malformed``: one per malformed record: ``topic``, ``partition``, ``offset`` (where it
  landed), ``reason``, ``key``;
* ``summary`` (last line, written only when the run ended cleanly): counts and produce
  delays.

Outcomes: ``on_time``, ``late`` (the breach ends ``late``/closed), ``overdue`` (no completion;
the start is still within ``give_up_after`` at the end of the run: an open breach), ``lost``
(no completion and past the give-up already), ``orphan`` (the run was interrupted after the
completion but before its start was produced: the monitor must report nothing).

The writer flushes every line it writes, so a killed run leaves a readable prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from streams.errors import ConfigError

VERSION = 1
OUTCOMES = ("on_time", "late", "overdue", "lost", "orphan")


@dataclass(frozen=True, slots=True)
class TruthStart:
    flow: str
    key: str
    case: str
    outcome: str
    lag_ms: int | None
    started_at: int
    deadline: int
    give_up_at: int
    start_event_id: str

    @property
    def ident(self) -> str:
        """``flow:key``: the measurement key and breach id the monitor uses."""
        return f"{self.flow}:{self.key}"


@dataclass(frozen=True, slots=True)
class TruthMalformed:
    topic: str
    partition: int
    offset: int
    reason: str
    key: str


@dataclass(slots=True)
class Truth:
    """A parsed truth file."""

    header: dict[str, Any]
    starts: list[TruthStart] = field(default_factory=list)
    malformed: list[TruthMalformed] = field(default_factory=list)
    summary: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return str(self.header["run_id"])

    @property
    def key_prefix(self) -> str:
        return str(self.header["key_prefix"])

    @property
    def flows(self) -> list[str]:
        return [str(f["name"]) for f in self.header["flows"]]


class TruthWriter:
    """Appends truth lines to a file; every line is flushed as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[bytes] = path.open("wb")
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(orjson.dumps(record) + b"\n")
        self._fh.flush()
        self.lines += 1

    def header(self, header: dict[str, Any]) -> None:
        self.write({"type": "header", "version": VERSION, **header})

    def start(self, s: TruthStart) -> None:
        self.write(
            {
                "type": "start",
                "flow": s.flow,
                "key": s.key,
                "case": s.case,
                "outcome": s.outcome,
                "lag_ms": s.lag_ms,
                "started_at": s.started_at,
                "deadline": s.deadline,
                "give_up_at": s.give_up_at,
                "start_event_id": s.start_event_id,
            }
        )

    def malformed(self, m: TruthMalformed) -> None:
        self.write(
            {
                "type": "malformed",
                "topic": m.topic,
                "partition": m.partition,
                "offset": m.offset,
                "reason": m.reason,
                "key": m.key,
            }
        )

    def close(self) -> None:
        self._fh.close()


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield n, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: not a JSON line ({exc})") from None


def read_truth(path: Path) -> Truth:
    """Parse a truth file; raises :class:`ConfigError` naming the line at fault."""
    if not path.is_file():
        raise ConfigError(f"truth file {path} does not exist (write one with freshness simulate)")
    truth: Truth | None = None
    for n, rec in _lines(path):
        kind = rec.get("type")
        if truth is None:
            if kind != "header" or rec.get("version") != VERSION:
                raise ConfigError(f"{path}:{n}: the first line must be a version {VERSION} header")
            truth = Truth(rec)
            continue
        try:
            if kind == "start":
                truth.starts.append(
                    TruthStart(
                        str(rec["flow"]),
                        str(rec["key"]),
                        str(rec["case"]),
                        str(rec["outcome"]),
                        None if rec["lag_ms"] is None else int(rec["lag_ms"]),
                        int(rec["started_at"]),
                        int(rec["deadline"]),
                        int(rec["give_up_at"]),
                        str(rec["start_event_id"]),
                    )
                )
            elif kind == "malformed":
                truth.malformed.append(
                    TruthMalformed(
                        str(rec["topic"]),
                        int(rec["partition"]),
                        int(rec["offset"]),
                        str(rec["reason"]),
                        str(rec["key"]),
                    )
                )
            elif kind == "summary":
                truth.summary = rec
            else:
                raise ConfigError(f"{path}:{n}: unknown line type {kind!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}:{n}: bad {kind} line ({exc!r})") from None
    if truth is None:
        raise ConfigError(f"truth file {path} is empty")
    return truth
