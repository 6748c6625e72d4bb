"""Per-flow statistics rebuilt from ``freshness.stats``: windows of outcomes and lag sketches.

The workers publish, per (flow, partition, minute), a cumulative window record that the
next one for the same key replaces, and per (flow, partition) a gauge. This module keeps
the latest of each and answers window queries by summing:

* replacing a window record applies ``new - old`` to the minute's and the hour's aggregate
  (sketch bins and counts are plain sums, so they subtract exactly), and to an all-time
  aggregate used by ``/metrics``;
* a window query sums whole hours plus the minutes at its edges (at most ~140 sums for
  24 h), so its cost does not grow with traffic.

Min and max are not subtractable; they are recomputed from the (at most one per partition)
records of a minute when one of them changes, and taken over the window's minutes at query
time, so ``max`` stays exact. Everything is a pure function of the records applied: two
read models fed the same records answer the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.stats.sketch import LagSketch

MINUTE_MS = 60_000
HOUR_MINUTES = 60
DAY_MINUTES = 1440
KEEP_MINUTES = DAY_MINUTES + HOUR_MINUTES
"""Window records older than this (before the reference minute) are dropped from memory."""


@dataclass(slots=True)
class Tally:
    """Outcome counts; ``count`` is measurements (on time plus late)."""

    count: int = 0
    on_time: int = 0
    late: int = 0
    lost: int = 0
    clock_skew: int = 0

    def add(self, other: Tally, sign: int = 1) -> None:
        self.count += sign * other.count
        self.on_time += sign * other.on_time
        self.late += sign * other.late
        self.lost += sign * other.lost
        self.clock_skew += sign * other.clock_skew


@dataclass(slots=True)
class WindowRecord:
    """The latest ``kind: window`` stats record of one (flow, partition, minute)."""

    partition: int
    minute: int
    tally: Tally
    sketch: LagSketch
    updated_at: int


@dataclass(slots=True)
class Gauge:
    """The latest ``kind: gauge`` stats record of one (flow, partition)."""

    partition: int
    pending: int
    oldest_pending_started_at: int | None
    open_breaches: int
    monitor_lag_ms: int
    watermark_ms: int | None
    updated_at: int


@dataclass(slots=True)
class Aggregate:
    """A sum of window records: counts and sketch bins (no min/max, see module doc)."""

    tally: Tally = field(default_factory=Tally)
    pos: dict[int, int] = field(default_factory=dict)
    neg: dict[int, int] = field(default_factory=dict)
    zero: int = 0
    n: int = 0

    def add_record(self, rec: WindowRecord, sign: int) -> None:
        self.tally.add(rec.tally, sign)
        _add_bins(self.pos, rec.sketch.pos, sign)
        _add_bins(self.neg, rec.sketch.neg, sign)
        self.zero += sign * rec.sketch.zero
        self.n += sign * rec.sketch.count

    def add(self, other: Aggregate) -> None:
        self.tally.add(other.tally)
        _add_bins(self.pos, other.pos, 1)
        _add_bins(self.neg, other.neg, 1)
        self.zero += other.zero
        self.n += other.n

    def sketch(self, lo: float | None, hi: float | None) -> LagSketch:
        """A sketch of this aggregate whose quantiles are clamped to ``[lo, hi]``."""
        if self.n <= 0 or lo is None or hi is None:
            return LagSketch()
        return LagSketch(
            pos=dict(self.pos), neg=dict(self.neg), zero=self.zero, count=self.n, min=lo, max=hi
        )


def _add_bins(into: dict[int, int], src: dict[int, int], sign: int) -> None:
    for k, c in src.items():
        v = into.get(k, 0) + sign * c
        if v:
            into[k] = v
        else:
            into.pop(k, None)


@dataclass(slots=True)
class WindowResult:
    from_minute: int
    to_minute: int
    tally: Tally
    sketch: LagSketch


class FlowStats:
    """Statistics of one flow. Not thread-safe; mutate and query from one event loop."""

    def __init__(self) -> None:
        self._records: dict[tuple[int, int], WindowRecord] = {}
        self._by_minute: dict[int, dict[int, WindowRecord]] = {}
        self._minutes: dict[int, Aggregate] = {}
        self._minmax: dict[int, tuple[float, float]] = {}
        self._hours: dict[int, Aggregate] = {}
        self.total = Aggregate()
        """All-time sum of the latest window records (monotone unless a worker resets)."""
        self.gauges: dict[int, Gauge] = {}
        self._floor = -(2**62)
        self.updated_at: int | None = None

    # ---- apply -------------------------------------------------------------------------

    def apply_window(self, rec: WindowRecord) -> None:
        """Replace the record of ``(partition, minute)``; idempotent for a repeated record."""
        self._touch(rec.updated_at)
        slot = (rec.partition, rec.minute)
        old = self._records.get(slot)
        if old is not None:
            self.total.add_record(old, -1)
        self.total.add_record(rec, 1)
        if rec.minute < self._floor:
            self._records.pop(slot, None)
            return
        minute_agg = self._minutes.setdefault(rec.minute, Aggregate())
        hour_agg = self._hours.setdefault(rec.minute // HOUR_MINUTES, Aggregate())
        if old is not None:
            minute_agg.add_record(old, -1)
            hour_agg.add_record(old, -1)
        minute_agg.add_record(rec, 1)
        hour_agg.add_record(rec, 1)
        self._records[slot] = rec
        self._by_minute.setdefault(rec.minute, {})[rec.partition] = rec
        self._refresh_minmax(rec.minute)

    def apply_gauge(self, gauge: Gauge) -> None:
        self._touch(gauge.updated_at)
        self.gauges[gauge.partition] = gauge
        ref = self.as_of()
        if ref is not None:
            self._prune(ref // MINUTE_MS - KEEP_MINUTES)

    def delete(self, kind: str, partition: int, minute: int | None) -> None:
        """Apply a tombstone of a compacted stats key."""
        if kind == "gauge":
            self.gauges.pop(partition, None)
            return
        if minute is None:
            return
        old = self._records.pop((partition, minute), None)
        if old is None:
            return
        self.total.add_record(old, -1)
        self._minutes[minute].add_record(old, -1)
        self._hours[minute // HOUR_MINUTES].add_record(old, -1)
        self._by_minute[minute].pop(partition, None)
        self._refresh_minmax(minute)

    def _touch(self, updated_at: int) -> None:
        if self.updated_at is None or updated_at > self.updated_at:
            self.updated_at = updated_at

    def _refresh_minmax(self, minute: int) -> None:
        recs = self._by_minute.get(minute, {}).values()
        los = [r.sketch.min for r in recs if r.sketch.min is not None]
        his = [r.sketch.max for r in recs if r.sketch.max is not None]
        if los and his:
            self._minmax[minute] = (min(los), max(his))
        else:
            self._minmax.pop(minute, None)

    def _prune(self, floor: int) -> None:
        if floor <= self._floor:
            return
        self._floor = floor
        for minute in [m for m in self._by_minute if m < floor]:
            for rec in self._by_minute.pop(minute).values():
                self._records.pop((rec.partition, rec.minute), None)
            self._minutes.pop(minute, None)
            self._minmax.pop(minute, None)
        for hour in [h for h in self._hours if (h + 1) * HOUR_MINUTES <= floor]:
            del self._hours[hour]

    # ---- query -------------------------------------------------------------------------

    def as_of(self) -> int | None:
        """Reference time: the newest watermark; else the newest stats record; else None."""
        marks = [g.watermark_ms for g in self.gauges.values() if g.watermark_ms is not None]
        if marks:
            return max(marks)
        return self.updated_at

    def window(self, ref_minute: int, minutes: int) -> WindowResult:
        """Sum of the ``minutes`` minute buckets ending with ``ref_minute`` (inclusive)."""
        lo_minute = ref_minute - minutes + 1
        acc = Aggregate()
        m = lo_minute
        while m <= ref_minute:
            if m % HOUR_MINUTES == 0 and m + HOUR_MINUTES - 1 <= ref_minute:
                hour = self._hours.get(m // HOUR_MINUTES)
                if hour is not None:
                    acc.add(hour)
                m += HOUR_MINUTES
                continue
            agg = self._minutes.get(m)
            if agg is not None:
                acc.add(agg)
            m += 1
        lo, hi = _minmax_over(self._minmax, lo_minute, ref_minute)
        return WindowResult(lo_minute, ref_minute, acc.tally, acc.sketch(lo, hi))


def _minmax_over(
    minmax: dict[int, tuple[float, float]], lo_minute: int, hi_minute: int
) -> tuple[float | None, float | None]:
    lo: float | None = None
    hi: float | None = None
    span = hi_minute - lo_minute + 1
    keys: Iterable[int] = range(lo_minute, hi_minute + 1) if span <= len(minmax) else sorted(minmax)
    for m in keys:
        if m < lo_minute or m > hi_minute:
            continue
        pair = minmax.get(m)
        if pair is None:
            continue
        lo = pair[0] if lo is None or pair[0] < lo else lo
        hi = pair[1] if hi is None or pair[1] > hi else hi
    return lo, hi


def parse_window(data: dict[str, Any]) -> WindowRecord:
    """Build a :class:`WindowRecord`; raises ``KeyError``/``TypeError``/``ValueError``."""
    return WindowRecord(
        partition=int(data["partition"]),
        minute=int(data["minute"]),
        tally=Tally(
            count=int(data.get("count", 0)),
            on_time=int(data.get("on_time", 0)),
            late=int(data.get("late", 0)),
            lost=int(data.get("lost", 0)),
            clock_skew=int(data.get("clock_skew", 0)),
        ),
        sketch=LagSketch.from_json(data.get("sketch") or {}),
        updated_at=int(data.get("updated_at", 0)),
    )


def parse_gauge(data: dict[str, Any]) -> Gauge:
    """Build a :class:`Gauge`; raises ``KeyError``/``TypeError``/``ValueError``."""
    oldest = data.get("oldest_pending_started_at")
    mark = data.get("watermark_ms")
    return Gauge(
        partition=int(data["partition"]),
        pending=int(data.get("pending", 0)),
        oldest_pending_started_at=None if oldest is None else int(oldest),
        open_breaches=int(data.get("open_breaches", 0)),
        monitor_lag_ms=int(data.get("monitor_lag_ms", 0)),
        watermark_ms=None if mark is None else int(mark),
        updated_at=int(data.get("updated_at", 0)),
    )
