"""The ``freshness.stats`` contract: its records, their keys, one encoder and one decoder.

Workers write these records (:meth:`streams.pipeline.join.Joiner._publish_stats`), the API
reads them (:mod:`api.readmodel`); both import this module and nothing else knows the
shapes. The JSON is ``schemas/output/stats.schema.json`` (documented in ``docs/events.md``):

* a **window** record, key ``window:<flow>:<partition>:<minute>``: the outcomes and lag
  sketch of one minute of completion time in one join partition, cumulative (the next
  record of the key replaces it); a tombstone deletes it once it is
  :data:`RETENTION_MINUTES` old;
* a **gauge** record, key ``gauge:<flow>:<partition>``: that partition's current state.

:func:`encode` writes the same bytes, field for field and in the same order, as the dict
literals workers wrote before this module existed, and :func:`decode` reads every record
already in the topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from streams.stats import _checks
from streams.stats.sketch import LagSketch

MINUTE_MS = 60_000
RETENTION_MINUTES = 25 * 60
"""Window records live this long: workers tombstone (and drop from their state) windows
older than this behind their wall clock, and the API keeps this span behind its reference
time, so a 24 h window always has whole minutes."""


@dataclass(slots=True)
class WindowStats:
    """Counters and lag sketch of one flow for one minute of completion time.

    The body of a window record, and (as :meth:`to_json`) the worker's table value of it.
    """

    count: int = 0
    on_time: int = 0
    late: int = 0
    lost: int = 0
    clock_skew: int = 0
    sketch: LagSketch = field(default_factory=LagSketch)

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "on_time": self.on_time,
            "late": self.late,
            "lost": self.lost,
            "clock_skew": self.clock_skew,
            "sketch": self.sketch.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> WindowStats:
        """What :meth:`to_json` wrote (extra fields are ignored); ``ValueError`` otherwise."""
        obj = _checks.mapping(data, "window stats")
        return cls(
            count=_checks.integer(obj, "count"),
            on_time=_checks.integer(obj, "on_time"),
            late=_checks.integer(obj, "late"),
            lost=_checks.integer(obj, "lost"),
            clock_skew=_checks.integer(obj, "clock_skew"),
            sketch=LagSketch.from_json(_checks.field(obj, "sketch")),
        )


@dataclass(slots=True)
class WindowRecord:
    """``kind: window``: the stats of ``flow`` in ``partition`` for one ``minute``."""

    flow: str
    partition: int
    minute: int
    """Epoch ms // 60000 of the completions (for ``lost``, of the give-up time)."""
    stats: WindowStats
    updated_at: int
    """Wall clock of the write, epoch ms."""

    @property
    def key(self) -> str:
        return window_key(self.flow, self.partition, self.minute)


@dataclass(slots=True)
class GaugeRecord:
    """``kind: gauge``: the current state of ``flow`` in ``partition``."""

    flow: str
    partition: int
    pending: int
    oldest_pending_started_at: int | None
    open_breaches: int
    monitor_lag_ms: int
    watermark_ms: int | None
    updated_at: int

    @property
    def key(self) -> str:
        return gauge_key(self.flow, self.partition)


StatsRecord = WindowRecord | GaugeRecord


@dataclass(frozen=True, slots=True)
class StatsKey:
    """A parsed ``freshness.stats`` key; ``minute`` is None for a gauge."""

    kind: Literal["window", "gauge"]
    flow: str
    partition: int
    minute: int | None = None


def window_key(flow: str, partition: int, minute: int) -> str:
    return f"window:{flow}:{partition}:{minute}"


def gauge_key(flow: str, partition: int) -> str:
    return f"gauge:{flow}:{partition}"


def parse_key(key: str) -> StatsKey:
    """The key :func:`window_key` or :func:`gauge_key` made (e.g. of a tombstone)."""
    kind, _, rest = key.partition(":")
    try:
        if kind == "window":
            flow, partition, minute = rest.rsplit(":", 2)
            return StatsKey("window", _key_flow(flow), _key_int(partition), _key_int(minute))
        if kind == "gauge":
            flow, partition = rest.rsplit(":", 1)
            return StatsKey("gauge", _key_flow(flow), _key_int(partition))
    except ValueError as exc:
        raise ValueError(f"not a freshness.stats key: {key[:200]!r} ({exc})") from None
    raise ValueError(f"not a freshness.stats key: {key[:200]!r} (kind is not window or gauge)")


def _key_flow(text: str) -> str:
    if not text:
        raise ValueError("no flow name")
    return text


def _key_int(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{text!r} is not a non-negative integer")
    return int(text)


# ---- encoding ---------------------------------------------------------------------------


def to_json(record: StatsRecord) -> dict[str, Any]:
    """The record as the JSON object of the contract (what :func:`encode` serializes)."""
    if isinstance(record, WindowRecord):
        return {
            "kind": "window",
            "flow": record.flow,
            "partition": record.partition,
            "minute": record.minute,
            **record.stats.to_json(),
            "updated_at": record.updated_at,
        }
    return {
        "kind": "gauge",
        "flow": record.flow,
        "partition": record.partition,
        "pending": record.pending,
        "oldest_pending_started_at": record.oldest_pending_started_at,
        "open_breaches": record.open_breaches,
        "monitor_lag_ms": record.monitor_lag_ms,
        "watermark_ms": record.watermark_ms,
        "updated_at": record.updated_at,
    }


def encode(record: StatsRecord) -> bytes:
    """The value bytes of ``record`` in ``freshness.stats``."""
    return orjson.dumps(to_json(record))


def decode(value: bytes) -> StatsRecord:
    """The record of a ``freshness.stats`` value; ``ValueError`` saying what is wrong."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a freshness.stats record: not JSON ({exc})") from None
    return from_json(data)


def from_json(data: object) -> StatsRecord:
    """The record of a decoded ``freshness.stats`` value; ``ValueError`` for anything that
    is not a complete window or gauge record (extra fields are ignored)."""
    try:
        obj = _checks.mapping(data, "the value")
        kind = _checks.field(obj, "kind")
        if kind == "window":
            return _window(obj)
        if kind == "gauge":
            return _gauge(obj)
        raise ValueError(f"kind {kind!r} is neither 'window' nor 'gauge'")
    except ValueError as exc:
        raise ValueError(f"not a freshness.stats record: {exc}") from None


def _window(obj: Mapping[str, Any]) -> WindowRecord:
    return WindowRecord(
        flow=_checks.string(obj, "flow"),
        partition=_checks.integer(obj, "partition"),
        minute=_checks.integer(obj, "minute"),
        stats=WindowStats.from_json(obj),
        updated_at=_checks.integer(obj, "updated_at"),
    )


def _gauge(obj: Mapping[str, Any]) -> GaugeRecord:
    return GaugeRecord(
        flow=_checks.string(obj, "flow"),
        partition=_checks.integer(obj, "partition"),
        pending=_checks.integer(obj, "pending"),
        oldest_pending_started_at=_checks.optional_integer(obj, "oldest_pending_started_at"),
        open_breaches=_checks.integer(obj, "open_breaches"),
        monitor_lag_ms=_checks.integer(obj, "monitor_lag_ms", minimum=None),
        watermark_ms=_checks.optional_integer(obj, "watermark_ms"),
        updated_at=_checks.integer(obj, "updated_at"),
    )


def record_kv(record: StatsRecord) -> tuple[bytes, bytes]:
    """Key and value of ``record`` in ``freshness.stats``."""
    return record.key.encode(), encode(record)
