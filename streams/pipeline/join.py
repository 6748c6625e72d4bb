"""Join side of the worker: flow-events messages in, state writes and output records out.

One :class:`JoinCore` per join partition, rebuilt from the durable table whenever this
process (re)gains the partition. Every message yields a :class:`Step`: table writes to
apply (entity and stats-window keys, ``None`` deletes) and records to send. The caller
applies and sends both before it moves on, so the table, its changelog and the outputs
advance together and a crash replays from the last committed offset (at-least-once; see
:mod:`streams.core.join` for why replays re-emit identical records).

Table keys are ``<partition>\\x1f<kind>\\x1f<flow>\\x1f<key or minute>`` so a partition's
rows can be found again after a rebalance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from streams import topics
from streams.core.join import MINUTE_MS, JoinCore
from streams.core.model import Flow, Outputs
from streams.core.watermark import WatermarkBoard
from streams.pipeline.codec import Tick, decode

SEP = "\x1f"
STATS_RETENTION_MINUTES = 25 * 60
"""Stats windows are kept (in state and in ``freshness.stats``) for 25 hours."""

Record = tuple[str, bytes, bytes | None]
"""topic, key, value (None: tombstone)."""


class StateStore(Protocol):
    """What the join needs of its durable table (a Faust table in the worker)."""

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


@dataclass(slots=True)
class Step:
    writes: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)


@dataclass(slots=True)
class _Partition:
    core: JoinCore
    board: WatermarkBoard = field(default_factory=WatermarkBoard)
    last_stats: int = 0
    unpublished_windows: set[tuple[str, int]] = field(default_factory=set)


def _entity_key(partition: int, flow: str, key: str) -> bytes:
    return f"{partition}{SEP}e{SEP}{flow}{SEP}{key}".encode()


def _window_key(partition: int, flow: str, minute: int) -> bytes:
    return f"{partition}{SEP}w{SEP}{flow}{SEP}{minute}".encode()


def _json(obj: Any) -> bytes:
    """orjson writes dataclasses (nested ones too) as objects in field order: the same
    bytes as ``orjson.dumps(asdict(obj))``, ten times faster."""
    return orjson.dumps(obj)


class Joiner:
    """All join partitions this process owns."""

    def __init__(
        self,
        flows: Sequence[Flow],
        *,
        done_retention_ms: int,
        stats_interval_ms: int,
    ) -> None:
        self.flows = tuple(flows)
        self.done_retention_ms = done_retention_ms
        self.stats_interval_ms = stats_interval_ms
        self.partitions: dict[int, _Partition] = {}
        self.bad_messages = 0

    def forget_all(self) -> None:
        """A rebalance started: state is rebuilt from the table on the next message."""
        self.partitions.clear()

    def _partition(self, partition: int, store: StateStore, step: Step) -> _Partition:
        part = self.partitions.get(partition)
        if part is None:
            part = self._rebuild(partition, store, step)
            self.partitions[partition] = part
        return part

    def _rebuild(self, partition: int, store: StateStore, step: Step) -> _Partition:
        core = JoinCore(self.flows, done_retention_ms=self.done_retention_ms)
        prefix = f"{partition}{SEP}".encode()
        entities = []
        windows = []
        for raw_key, raw_value in store.items():
            if not raw_key.startswith(prefix):
                continue
            _, kind, flow, rest = raw_key.decode().split(SEP, 3)
            if kind == "e":
                entities.append(((flow, rest), orjson.loads(raw_value)))
            elif kind == "w":
                windows.append(((flow, int(rest)), orjson.loads(raw_value)))
        core.restore_all(entities, windows)
        part = _Partition(core)
        part.unpublished_windows.update(core.windows)
        # Whatever was decided before a crash may not have reached the output topics:
        # send the current state of every breach again (same identity, same content).
        self._emit(
            Outputs(breaches=list(core.breaches()), retractions=list(core.retractions())), step
        )
        return part

    def on_message(
        self, partition: int, offset: int, raw: bytes, store: StateStore, now: int
    ) -> Step:
        """Process one flow-events message of ``partition`` at ``offset``."""
        step = Step()
        part = self._partition(partition, store, step)
        try:
            msg = decode(raw)
        except ValueError:
            self.bad_messages += 1
            return step
        if isinstance(msg, Tick):
            self._on_tick(partition, part, msg, step, now)
        else:
            apply = part.core.apply
            base = offset << 16
            for i, ev in enumerate(msg):
                self._emit(apply(ev, base + i), step)
        self._collect_writes(partition, part, step)
        return step

    def _on_tick(self, partition: int, part: _Partition, tick: Tick, step: Step, now: int) -> None:
        board = part.board
        board.set_partition_counts(tick.partition_counts)
        for r in tick.reports:
            board.observe(r.topic, r.partition, r.watermark, r.lag_ms)
        wms = board.topic_watermarks(board.partition_counts)
        self._emit(part.core.advance(wms), step)
        if now - part.last_stats >= self.stats_interval_ms:
            part.last_stats = now
            self._publish_stats(partition, part, step, now)

    def _emit(self, out: Outputs, step: Step) -> None:
        for m in out.measurements:
            step.records.append((topics.MEASUREMENTS, f"{m.flow}:{m.key}".encode(), _json(m)))
        for b in out.breaches:
            step.records.append((topics.BREACHES, b.breach_id.encode(), _json(b)))
        for breach_id in out.retractions:
            step.records.append((topics.BREACHES, breach_id.encode(), None))

    def _collect_writes(self, partition: int, part: _Partition, step: Step) -> None:
        core = part.core
        dirty, windows = core.take_dirty()
        for flow, key in dirty:
            data = core.export_entity((flow, key))
            step.writes.append(
                (_entity_key(partition, flow, key), None if data is None else _json(data))
            )
        for flow, minute in windows:
            step.writes.append(
                (
                    _window_key(partition, flow, minute),
                    _json(core.windows[(flow, minute)].to_json()),
                )
            )
        part.unpublished_windows.update(windows)

    def _publish_stats(self, partition: int, part: _Partition, step: Step, now: int) -> None:
        core = part.core
        horizon = now // MINUTE_MS - STATS_RETENTION_MINUTES
        for flow, minute in core.prune_windows(horizon):
            step.writes.append((_window_key(partition, flow, minute), None))
            step.records.append(
                (topics.STATS, f"window:{flow}:{partition}:{minute}".encode(), None)
            )
        for flow, minute in sorted(part.unpublished_windows):
            win = core.windows.get((flow, minute))
            if win is None:
                continue
            rec = {"kind": "window", "flow": flow, "partition": partition, "minute": minute}
            rec.update(win.to_json())
            rec["updated_at"] = now
            step.records.append(
                (topics.STATS, f"window:{flow}:{partition}:{minute}".encode(), _json(rec))
            )
        part.unpublished_windows.clear()
        for flow, g in core.gauges().items():
            f = core.flows[flow].flow
            lag = max(part.board.monitor_lag(f.start_topic), part.board.monitor_lag(f.end_topic))
            rec = {
                "kind": "gauge",
                "flow": flow,
                "partition": partition,
                "pending": g.pending,
                "oldest_pending_started_at": g.oldest_pending_started_at,
                "open_breaches": g.open_breaches,
                "monitor_lag_ms": lag,
                "watermark_ms": g.watermark_ms,
                "updated_at": now,
            }
            step.records.append((topics.STATS, f"gauge:{flow}:{partition}".encode(), _json(rec)))
