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

Exit status: 0 when every precision and recall is 1.000, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streams import topics
from streams.settings import Settings
from streams.simulate.score import Observed, score
from streams.simulate.truth import Truth, read_truth

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
        self.gauges: dict[tuple[str, int], dict[str, Any]] = {}

    def _ours(self, key: bytes | None) -> str | None:
        if not key:
            return None
        _, _, entity = key.partition(b":")
        return key.decode() if entity.startswith(self.prefix) else None

    def add(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        """Take one output record (a tombstone deletes a breach's state)."""
        if topic == topics.STATS:
            if value is not None:
                rec = orjson.loads(value)
                if rec.get("kind") == "gauge":
                    self.gauges[(str(rec["flow"]), int(rec["partition"]))] = rec
        elif topic == topics.QUARANTINE:
            if value is not None:
                self._quarantine(orjson.loads(value))
        elif (ident := self._ours(key)) is not None:
            if topic == topics.BREACHES:
                self._breach(ident, None if value is None else orjson.loads(value), timestamp)
            elif topic == topics.MEASUREMENTS and value is not None:
                self.obs.measurements[ident] = orjson.loads(value)

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
        fresh = [g for g in self.gauges.values() if int(g.get("updated_at", 0)) >= since_ms]
        flows = {str(g["flow"]) for g in fresh}
        return set(self.truth.flows) <= flows and all(g["monitor_lag_ms"] == 0 for g in fresh)


async def read_outputs(
    bootstrap: str, truth: Truth, *, wait_s: float, settle_s: float, log: Any = None
) -> tuple[OutputReader, list[str]]:
    """Read until the monitor has caught up (see the module docstring) or time runs out."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    reader = OutputReader(truth)
    notes: list[str] = []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        # aiokafka has no public call that returns another topic's partitions unsubscribed.
        cluster = await consumer._client.fetch_all_metadata()
        names = (topics.BREACHES, topics.MEASUREMENTS, topics.QUARANTINE, topics.STATS)
        tps = [
            TopicPartition(t, p)
            for t in names
            for p in sorted(cluster.partitions_for_topic(t) or ())
        ]
        if not tps:
            raise RuntimeError("no output topics found (run freshness topics create)")
        consumer.assign(tps)
        since = int(truth.header["started_at"]) - SEEK_BEFORE_MS
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        for tp in tps:
            hit = found.get(tp)
            if hit is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, hit.offset)
        began = now_ms()
        waits = [s.deadline for s in truth.starts if s.outcome in ("overdue", "lost")]
        due = max([began, *waits]) + DEADLINE_MARGIN_MS
        give_up = due + int(wait_s * 1000)
        last_size, last_change, last_log = -1, began, began
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, msgs in batches.items():
                for m in msgs:
                    reader.add(tp.topic, m.key, m.value, m.timestamp)
            t = now_ms()
            if reader.obs.size() != last_size:
                last_size, last_change = reader.obs.size(), t
            caught = reader.caught_up(began)
            if t >= due and caught and t - last_change >= settle_s * 1000:
                break
            if t >= give_up:
                notes.append(
                    f"judged after waiting {wait_s:g} s past the last deadline: "
                    + ("monitor caught up" if caught else "the monitor had NOT caught up")
                    + (", records still arriving" if t - last_change < settle_s * 1000 else "")
                )
                break
            if log is not None and t - last_log >= 5_000:
                last_log = t
                print(
                    f"score: waiting ({len(reader.obs.breaches)} breaches, "
                    f"{len(reader.obs.measurements)} measurements, "
                    f"{len(reader.obs.quarantine)} quarantined; caught up: {caught}; "
                    f"deadlines pass in {max(0, due - t) / 1000:.0f} s)",
                    file=log,
                )
    finally:
        await consumer.stop()
    return reader, notes


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of ``freshness score``."""
    truth = read_truth(args.truth)
    reader, notes = asyncio.run(
        read_outputs(
            settings.kafka_bootstrap, truth, wait_s=args.wait, settle_s=args.settle, log=sys.stderr
        )
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
