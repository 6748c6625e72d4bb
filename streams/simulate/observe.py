"""``freshness score``: read what the monitor reported about a simulation run, wait until it
has caught up, and judge it against the truth file (:mod:`streams.simulate.score`).

Reads ``freshness.breaches``, ``freshness.measurements``, ``freshness.quarantine`` and
``freshness.stats`` from just before the run started (by record timestamp), keeping only
this run's records: breach and measurement keys ``<flow>:sim-<run>-...``, quarantine records
at a malformed record's position or whose raw bytes contain the run's key prefix.

It judges once all of these hold, or after ``--wait`` seconds past the last expected
deadline, whichever is first (then it says the monitor had not caught up):

* the wall clock is past the last deadline of every start expected to be overdue, plus
  :data:`DEADLINE_MARGIN_MS`;
* every flow has a gauge in ``freshness.stats`` written after scoring began, and every such
  gauge reports ``monitor_lag_ms == 0``;
* no new record of this run has arrived for ``--settle`` seconds.

Kafka errors: a retriable one (a broker restarting, a leader moving) reconnects and reads
again; any other stops ``score`` with one line naming it.

Exit status: 0 when every precision and recall is 1.000, 1 otherwise, 2 on bad input or
when Kafka refuses (missing output topics, an error retrying cannot fix).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams import topics
from streams.errors import BrokerError, FreshnessError
from streams.kafka import (
    KafkaConnection,
    connection,
    fatal,
    new_consumer,
    offsets_for_time,
    partition_list,
    retriable,
    topic_partitions,
)
from streams.settings import Settings
from streams.simulate.score import Observed, score
from streams.simulate.truth import Truth, read_truth
from streams.stats import records as stats

DEADLINE_MARGIN_MS = 1_500
SEEK_BEFORE_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class OutputReader:
    """Accumulates one run's records from the output topics into an :class:`Observed`."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        self.prefix = truth.key_prefix.encode()
        self.positions = {(m.topic, m.partition, m.offset) for m in truth.malformed}
        self.obs = Observed()
        self.gauges: dict[tuple[str, int], stats.GaugeRecord] = {}

    def _ours(self, key: bytes | None) -> str | None:
        if not key:
            return None
        _, _, entity = key.partition(b":")
        return key.decode() if entity.startswith(self.prefix) else None

    def add(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        """Take one output record (a tombstone deletes a breach's state)."""
        if topic == topics.STATS:
            if value is not None:
                self._gauge(value)
        elif topic == topics.QUARANTINE:
            if value is not None:
                self._quarantine(orjson.loads(value))
        elif (ident := self._ours(key)) is not None:
            if topic == topics.BREACHES:
                self._breach(ident, None if value is None else orjson.loads(value), timestamp)
            elif topic == topics.MEASUREMENTS and value is not None:
                self.obs.measurements[ident] = orjson.loads(value)

    def _gauge(self, value: bytes) -> None:
        try:
            rec = stats.decode(value)
        except ValueError:  # not ours to judge: the API counts it as a bad record
            return
        if isinstance(rec, stats.GaugeRecord):
            self.gauges[(rec.flow, rec.partition)] = rec

    def _breach(self, ident: str, rec: dict[str, Any] | None, timestamp: int) -> None:
        if rec is None:
            self.obs.breaches.pop(ident, None)
            return
        self.obs.breaches[ident] = rec
        self.obs.breach_ids_ever.add(ident)
        if rec.get("kind") == "overdue":
            self.obs.first_overdue_ts.setdefault(ident, timestamp)

    def _quarantine(self, rec: dict[str, Any]) -> None:
        pos = (str(rec.get("topic")), int(rec.get("partition", -1)), int(rec.get("offset", -1)))
        raw = rec.get("raw_b64")
        ours = pos in self.positions or (
            isinstance(raw, str) and self.prefix in base64.b64decode(raw)
        )
        if ours:
            self.obs.quarantine[pos] = rec

    def caught_up(self, since_ms: int) -> bool:
        """Every flow has a gauge written after ``since_ms`` and all of those say lag 0."""
        fresh = [g for g in self.gauges.values() if g.updated_at >= since_ms]
        flows = {g.flow for g in fresh}
        return set(self.truth.flows) <= flows and all(g.monitor_lag_ms == 0 for g in fresh)


OUTPUT_TOPICS = (topics.BREACHES, topics.MEASUREMENTS, topics.QUARANTINE, topics.STATS)
RETRY_S = 1.0


@dataclass(slots=True)
class Judging:
    """When to judge: the stopping rule of the module docstring, over wall time (ms)."""

    due: int
    """The last expected deadline plus the margin (or the start of scoring)."""
    give_up: int
    settle_ms: int
    began: int
    last_size: int = -1
    last_change: int = 0
    last_log: int = 0

    @classmethod
    def of(cls, truth: Truth, wait_s: float, settle_s: float, began: int) -> Judging:
        waits = [s.deadline for s in truth.starts if s.outcome in ("overdue", "lost")]
        due = max([began, *waits]) + DEADLINE_MARGIN_MS
        settle_ms = int(settle_s * 1000)
        give_up = due + int(wait_s * 1000)
        return cls(due, give_up, settle_ms, began, last_change=began, last_log=began)

    def settled(self, size: int, t: int) -> bool:
        """No new record for the settle time (``size`` is how many records are held)."""
        if size != self.last_size:
            self.last_size, self.last_change = size, t
        return t - self.last_change >= self.settle_ms


async def read_outputs(
    kafka: Settings | KafkaConnection,
    truth: Truth,
    *,
    wait_s: float,
    settle_s: float,
    log: Any = None,
) -> tuple[OutputReader, list[str]]:
    """Read until the monitor has caught up (see the module docstring) or time runs out.

    A retriable Kafka error (a broker restarting, a leader moving) reconnects after
    :data:`RETRY_S` and reads again from the run's start (:class:`OutputReader` is
    idempotent for records read again in order) until the give-up time; any other error
    raises :class:`~streams.kafka.KafkaFatalError`.
    """
    reader = OutputReader(truth)
    judging = Judging.of(truth, wait_s, settle_s, now_ms())
    while True:
        try:
            return reader, await _read(kafka, reader, judging, log)
        except FreshnessError:
            raise
        except Exception as exc:
            if not retriable(exc):
                raise fatal(exc, "freshness score") from exc
            if now_ms() >= judging.give_up:
                return reader, [f"judged while Kafka was unreachable ({type(exc).__name__})"]
            if log is not None:
                print(f"score: Kafka: {type(exc).__name__}: {exc}; retrying", file=log)
        await asyncio.sleep(RETRY_S)


async def _read(
    kafka: Settings | KafkaConnection, reader: OutputReader, judging: Judging, log: Any
) -> list[str]:
    """One connection's worth of :func:`read_outputs`: the notes once it is time to judge."""
    consumer = new_consumer(
        kafka,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await _seek_to_run(consumer, kafka, int(reader.truth.header["started_at"]))
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, msgs in batches.items():
                for m in msgs:
                    reader.add(tp.topic, m.key, m.value, m.timestamp)
            notes = _verdict(reader, judging, now_ms(), log)
            if notes is not None:
                return notes
    finally:
        await consumer.stop()


async def _seek_to_run(consumer: Any, kafka: Settings | KafkaConnection, started_at: int) -> None:
    """Assign every partition of the output topics at :data:`SEEK_BEFORE_MS` before the run."""
    parts = await topic_partitions(consumer, OUTPUT_TOPICS)
    missing = [t for t, ps in parts.items() if not ps]
    if missing:
        raise BrokerError(
            f"output topics {', '.join(missing)} do not exist on {connection(kafka).bootstrap}; "
            "run `freshness topics create` and a worker, then score again"
        )
    tps = partition_list(parts)
    consumer.assign(tps)
    for tp, offset in (await offsets_for_time(consumer, tps, started_at - SEEK_BEFORE_MS)).items():
        consumer.seek(tp, offset)


def _verdict(reader: OutputReader, judging: Judging, t: int, log: Any) -> list[str] | None:
    """The notes to judge with once it is time (``[]``: all conditions hold), else None."""
    settled = judging.settled(reader.obs.size(), t)
    caught = reader.caught_up(judging.began)
    if t >= judging.due and caught and settled:
        return []
    if t >= judging.give_up:
        return [
            f"judged after waiting {(judging.give_up - judging.due) / 1000:g} s past the last "
            "deadline: "
            + ("monitor caught up" if caught else "the monitor had NOT caught up")
            + ("" if settled else ", records still arriving")
        ]
    if log is not None and t - judging.last_log >= 5_000:
        judging.last_log = t
        print(
            f"score: waiting ({len(reader.obs.breaches)} breaches, "
            f"{len(reader.obs.measurements)} measurements, "
            f"{len(reader.obs.quarantine)} quarantined; caught up: {caught}; "
            f"deadlines pass in {max(0, judging.due - t) / 1000:.0f} s)",
            file=log,
        )
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of ``freshness score``."""
    truth = read_truth(args.truth)
    reader, notes = asyncio.run(
        read_outputs(settings, truth, wait_s=args.wait, settle_s=args.settle, log=sys.stderr)
    )
    report = score(truth, reader.obs, now_ms())
    report.notes.extend(notes)
    if truth.summary is None:
        report.notes.append("the truth file has no summary line: the run did not end cleanly")
    text = report.format()
    print(text)
    out: Path | None = args.out
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return 0 if report.ok() else 1
