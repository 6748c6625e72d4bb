"""Join side of the pipeline: flow-events messages in, state writes and output records out.

One :class:`JoinCore` per join partition, rebuilt from the durable table whenever this
process (re)gains the partition. Every message yields a :class:`Step`: table writes to
apply (entity and stats-window keys, ``None`` deletes) and records to send. The caller
applies and sends both before it moves on, so the table, its changelog and the outputs
advance together and a crash replays from the last committed offset (at-least-once; see
:mod:`streams.core.join` for why replays re-emit identical records).

A flow-events message this version cannot decode changes no state: it becomes a
``freshness.quarantine`` record (reason ``corrupt_internal``, with its bytes) and a log line,
so an operator sees it in ``freshness_quarantined_records`` and nothing is silently dropped.
Table keys and values, and the output records, are encoded by :mod:`streams.pipeline.codec`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from streams import topics
from streams.core.join import MINUTE_MS, Entity, JoinCore
from streams.core.model import Flow, Outputs
from streams.core.watermark import WatermarkBoard
from streams.errors import StateError
from streams.pipeline import codec
from streams.pipeline.codec import Tick
from streams.pipeline.quarantine import quarantine_record
from streams.stats import records as stats
from streams.stats.records import WindowStats

log = logging.getLogger(__name__)

Record = tuple[str, bytes, bytes | None]
"""topic, key, value (None: tombstone)."""


class StateStore(Protocol):
    """What the join needs of its durable table (a Faust table in the worker)."""

    def rows(self, partition: int) -> Iterable[tuple[bytes, bytes]]:
        """The raw rows the table holds for join ``partition`` (others may come too: only
        rows under the partition's prefix are read)."""
        ...


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


class Joiner:
    """All join partitions this process owns.

    ``events_topic`` is the flow-events topic the messages come from (it names the source
    of a quarantined message).
    """

    def __init__(
        self,
        flows: Sequence[Flow],
        *,
        events_topic: str,
        done_retention_ms: int,
        stats_interval_ms: int,
    ) -> None:
        self.flows = tuple(flows)
        self.events_topic = events_topic
        self.done_retention_ms = done_retention_ms
        self.stats_interval_ms = stats_interval_ms
        self.partitions: dict[int, _Partition] = {}

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
        entities, windows = _read_state(partition, store)
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
        self, partition: int, offset: int, raw: bytes | None, store: StateStore, now: int
    ) -> Step:
        """Process one flow-events message of ``partition`` at ``offset`` at wall time ``now``."""
        step = Step()
        part = self._partition(partition, store, step)
        try:
            msg = codec.decode_rows(raw)
        except ValueError as exc:
            self._quarantine(partition, offset, raw, str(exc), step, now)
            return step
        if isinstance(msg, Tick):
            self._on_tick(partition, part, msg, step, now)
        else:
            out = Outputs()
            apply, base = part.core.apply_row, codec.position(offset, 0)
            for i, row in enumerate(msg):
                apply(row, base | i, out)
            self._emit(out, step)
        self._collect_writes(partition, part, step)
        return step

    def _quarantine(
        self, partition: int, offset: int, raw: bytes | None, detail: str, step: Step, now: int
    ) -> None:
        topic = self.events_topic
        log.error(
            "%s[%d] offset %d is not a flow-events message: %s", topic, partition, offset, detail
        )
        rec = quarantine_record(topic, partition, offset, "corrupt_internal", detail, raw, now)
        step.records.append(
            (topics.QUARANTINE, f"{topic}:{partition}:{offset}".encode(), orjson.dumps(rec))
        )

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

    @staticmethod
    def _emit(out: Outputs, step: Step) -> None:
        records = step.records
        for m in out.measurements:
            records.append((topics.MEASUREMENTS, *codec.measurement_kv(m)))
        for b in out.breaches:
            records.append((topics.BREACHES, *codec.breach_kv(b)))
        for breach_id in out.retractions:
            records.append((topics.BREACHES, *codec.retraction_kv(breach_id)))

    @staticmethod
    def _collect_writes(partition: int, part: _Partition, step: Step) -> None:
        core = part.core
        dirty, windows = core.take_dirty()
        writes = step.writes
        for flow, key in dirty:
            state = core.state(flow, key)
            value = None if state is None else codec.encode_state(state)
            writes.append((codec.entity_key(partition, flow, key), value))
        for flow, minute in windows:
            value = codec.encode_window(core.windows[(flow, minute)])
            writes.append((codec.window_key(partition, flow, minute), value))
        part.unpublished_windows.update(windows)

    def _publish_stats(self, partition: int, part: _Partition, step: Step, now: int) -> None:
        core, records = part.core, step.records
        horizon = now // MINUTE_MS - stats.RETENTION_MINUTES
        for flow, minute in core.prune_windows(horizon):
            step.writes.append((codec.window_key(partition, flow, minute), None))
            records.append((topics.STATS, stats.window_key(flow, partition, minute).encode(), None))
        for flow, minute in sorted(part.unpublished_windows):
            win = core.windows.get((flow, minute))
            if win is not None:
                window = stats.WindowRecord(flow, partition, minute, win, updated_at=now)
                records.append((topics.STATS, *stats.record_kv(window)))
        part.unpublished_windows.clear()
        for flow, g in core.gauges().items():
            f = core.flows[flow].flow
            lag = max(part.board.monitor_lag(f.start_topic), part.board.monitor_lag(f.end_topic))
            gauge = stats.GaugeRecord(
                flow,
                partition,
                pending=g.pending,
                oldest_pending_started_at=g.oldest_pending_started_at,
                open_breaches=g.open_breaches,
                monitor_lag_ms=lag,
                watermark_ms=g.watermark_ms,
                updated_at=now,
            )
            records.append((topics.STATS, *stats.record_kv(gauge)))


def _read_state(
    partition: int, store: StateStore
) -> tuple[list[tuple[tuple[str, str], Entity | bytes]], list[tuple[tuple[str, int], WindowStats]]]:
    """The entities and windows of ``partition`` in the table.

    A row that cannot be decoded stops the worker (:class:`StateError`) rather than being
    skipped: skipping would forget a pending start without a trace.
    """
    prefix = codec.partition_prefix(partition)
    entities = []
    windows = []
    for raw_key, raw_value in store.rows(partition):
        if not raw_key.startswith(prefix):
            continue
        try:
            sk = codec.decode_state_key(raw_key)
            if sk.kind == "e":
                entities.append(((sk.flow, sk.rest), codec.decode_state(raw_value)))
            else:
                windows.append(((sk.flow, int(sk.rest)), codec.decode_window(raw_value)))
        except ValueError as exc:
            raise StateError(
                f"join state row {raw_key[:120]!r} cannot be read ({exc}): the table holds a "
                "row this version of the monitor did not write; run the version that wrote "
                "it, or start over with a new FRESHNESS_APP_ID"
            ) from None
    return entities, windows
