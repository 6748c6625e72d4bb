"""Windows and all-time totals of one flow, rebuilt from ``freshness.stats`` records.

Workers publish, per (flow, partition, minute), a cumulative window record that the next
one of the same key replaces, and per (flow, partition) a gauge. :class:`FlowStats` keeps
the latest of each and answers window queries by summing (the API's ``last_5m`` ...
``last_24h``, and the alerter's burn-rate windows):

* replacing a window record applies ``new - old`` to the minute's and the hour's aggregate
  (sketch bins and counts are plain sums, so they subtract exactly), and to an all-time
  aggregate used by ``/metrics``;
* a window query sums whole hours plus the minutes at its edges (at most ~140 sums for
  24 h), so its cost does not grow with traffic.

Min and max are not subtractable; they are recomputed from the (at most one per partition)
records of a minute when one of them changes, and taken over the window's minutes at query
time, so ``max`` stays exact. Window records older than
:data:`~streams.stats.records.RETENTION_MINUTES` before the reference minute are dropped
from memory.

Everything is a pure function of the records applied: two read models fed the same
records answer the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.stats.records import (
    MINUTE_MS,
    RETENTION_MINUTES,
    GaugeRecord,
    WindowRecord,
    WindowStats,
)
from streams.stats.sketch import Bins, LagSketch

HOUR_MINUTES = 60
DAY_MINUTES = 1440


@dataclass(slots=True)
class Tally:
    """Outcome counts; ``count`` is measurements (on time plus late)."""

    count: int = 0
    on_time: int = 0
    late: int = 0
    lost: int = 0
    clock_skew: int = 0

    @classmethod
    def of(cls, stats: WindowStats) -> Tally:
        return cls(stats.count, stats.on_time, stats.late, stats.lost, stats.clock_skew)

    def add(self, other: Tally, sign: int = 1) -> None:
        self.count += sign * other.count
        self.on_time += sign * other.on_time
        self.late += sign * other.late
        self.lost += sign * other.lost
        self.clock_skew += sign * other.clock_skew


@dataclass(slots=True)
class Aggregate:
    """A sum of window records: counts and sketch bins (no min/max, see module doc)."""

    tally: Tally = field(default_factory=Tally)
    bins: Bins = field(default_factory=Bins)

    def add_stats(self, stats: WindowStats, sign: int = 1) -> None:
        """Add (``sign=1``) or take back out (``sign=-1``) one window record's body."""
        self.tally.add(Tally.of(stats), sign)
        self.bins.add(stats.sketch.bins, sign)

    def add(self, other: Aggregate) -> None:
        self.tally.add(other.tally)
        self.bins.add(other.bins)

    def sketch(self, lo: float | None, hi: float | None) -> LagSketch:
        """A sketch of this aggregate whose quantiles are clamped to ``[lo, hi]``."""
        if self.bins.count <= 0 or lo is None or hi is None:
            return LagSketch()
        return LagSketch(self.bins.copy(), lo, hi)

    def bucket_counts(self, edges_ms: Iterable[float]) -> list[int]:
        """Cumulative counts of lags at or below each edge (ms, ascending): Prometheus
        histogram buckets; see :meth:`~streams.stats.sketch.Bins.cumulative_counts`."""
        return self.bins.cumulative_counts(list(edges_ms))


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
        self.gauges: dict[int, GaugeRecord] = {}
        self._floor = -(2**62)
        self.updated_at: int | None = None

    # ---- apply -------------------------------------------------------------------------

    def apply_window(self, rec: WindowRecord) -> None:
        """Replace the record of ``(partition, minute)``; idempotent for a repeated record."""
        self._touch(rec.updated_at)
        slot = (rec.partition, rec.minute)
        old = self._records.get(slot)
        if old is not None:
            self.total.add_stats(old.stats, -1)
        self.total.add_stats(rec.stats)
        if rec.minute < self._floor:
            self._records.pop(slot, None)
            return
        minute_agg = self._minutes.setdefault(rec.minute, Aggregate())
        hour_agg = self._hours.setdefault(rec.minute // HOUR_MINUTES, Aggregate())
        if old is not None:
            minute_agg.add_stats(old.stats, -1)
            hour_agg.add_stats(old.stats, -1)
        minute_agg.add_stats(rec.stats)
        hour_agg.add_stats(rec.stats)
        self._records[slot] = rec
        self._by_minute.setdefault(rec.minute, {})[rec.partition] = rec
        self._refresh_minmax(rec.minute)

    def apply_gauge(self, gauge: GaugeRecord) -> None:
        """Replace the gauge of its partition; may move the reference time and so prune."""
        self._touch(gauge.updated_at)
        self.gauges[gauge.partition] = gauge
        ref = self.as_of()
        if ref is not None:
            self._prune(ref // MINUTE_MS - RETENTION_MINUTES)

    def delete_gauge(self, partition: int) -> None:
        """Apply the tombstone of a gauge key."""
        self.gauges.pop(partition, None)

    def delete_window(self, partition: int, minute: int) -> None:
        """Apply the tombstone of a window key."""
        old = self._records.pop((partition, minute), None)
        if old is None:
            return
        self.total.add_stats(old.stats, -1)
        self._minutes[minute].add_stats(old.stats, -1)
        self._hours[minute // HOUR_MINUTES].add_stats(old.stats, -1)
        self._by_minute[minute].pop(partition, None)
        self._refresh_minmax(minute)

    def _touch(self, updated_at: int) -> None:
        if self.updated_at is None or updated_at > self.updated_at:
            self.updated_at = updated_at

    def _refresh_minmax(self, minute: int) -> None:
        recs = self._by_minute.get(minute, {}).values()
        los = [r.stats.sketch.min for r in recs if r.stats.sketch.min is not None]
        his = [r.stats.sketch.max for r in recs if r.stats.sketch.max is not None]
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
