"""Windows and all-time totals of one flow, rebuilt from ``freshness.stats`` records.

Workers publish, per (flow, partition, minute), a cumulative window record that the next
one of the same key replaces, and per (flow, partition) a gauge. :class:`FlowStats` keeps
the latest of each and answers two kinds of question, each with its own guarantee:

* **Windows** (the API's ``last_5m`` ... ``last_24h``, the alerter's burn-rate windows)
  reflect the latest record of every minute: replacing a record applies ``new - old`` to
  the minute's and the hour's aggregate (counts and sketch bins subtract exactly), and a
  tombstone takes the record out. A query sums whole hours plus the minutes at its edges
  (at most ~140 sums for 24 h), so its cost does not grow with traffic. Min and max do not
  subtract; they are recomputed from the (at most one per partition) records of a minute
  when one of them changes and taken over the window's minutes at query time, so ``max``
  stays exact.
* **Totals** (:attr:`FlowStats.total`, Prometheus counters) never decrease, whatever the
  records do: per live (partition, minute) slot the per-field maximum of every record seen
  is what counts (a record replayed from older worker state after a crash can be smaller;
  it lowers nothing), and when a slot is tombstoned (the worker expires windows after
  :data:`~streams.stats.records.RETENTION_MINUTES`) or pruned here, its maximum stays in
  the total as retired. So ``total = retired + sum over live slots of their maximum``,
  kept as a running sum of non-negative increments. A new record of a tombstoned slot is
  a new window (the worker dropped the old one from its state) and counts from zero.

Records of a minute older than :data:`~streams.stats.records.RETENTION_MINUTES` behind the
reference time (:meth:`FlowStats.as_of`) are dropped, from the windows and from the
totals: such a slot is retired, and a later record of it is a replay, not news.

Everything is a pure function of the records applied: two instances fed the same
records in the same order answer the same; windows do not depend on the order at all.
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

    def excess(self, new: Tally) -> tuple[Tally, bool]:
        """What the per-field maximum of this and ``new`` adds to this, and whether
        ``new`` is below this in some field."""
        mine = (self.count, self.on_time, self.late, self.lost, self.clock_skew)
        theirs = (new.count, new.on_time, new.late, new.lost, new.clock_skew)
        delta = Tally(*(max(0, b - a) for a, b in zip(mine, theirs, strict=True)))
        return delta, any(b < a for a, b in zip(mine, theirs, strict=True))


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
        self._peaks: dict[tuple[int, int], Aggregate] = {}
        """Per-field maxima of the slots whose latest record is not their maximum."""
        self._by_minute: dict[int, dict[int, WindowRecord]] = {}
        self._minutes: dict[int, Aggregate] = {}
        self._minmax: dict[int, tuple[float, float]] = {}
        self._hours: dict[int, Aggregate] = {}
        self.total = Aggregate()
        """All-time totals: never decrease (see the module doc)."""
        self.gauges: dict[int, GaugeRecord] = {}
        self._floor = -(2**62)
        self.updated_at: int | None = None

    # ---- apply -------------------------------------------------------------------------

    def apply_window(self, rec: WindowRecord) -> None:
        """Replace the record of ``(partition, minute)``; idempotent for a repeated record."""
        self._touch(rec.updated_at)
        if rec.minute < self._floor:
            return
        slot = (rec.partition, rec.minute)
        old = self._records.get(slot)
        self._raise_total(slot, old, rec.stats)
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
        """Apply the tombstone of a window key: out of the windows, retired in the totals."""
        slot = (partition, minute)
        old = self._records.pop(slot, None)
        self._peaks.pop(slot, None)
        if old is None:
            return
        self._minutes[minute].add_stats(old.stats, -1)
        self._hours[minute // HOUR_MINUTES].add_stats(old.stats, -1)
        self._by_minute[minute].pop(partition, None)
        self._refresh_minmax(minute)

    def _raise_total(
        self, slot: tuple[int, int], old: WindowRecord | None, new: WindowStats
    ) -> None:
        """Add to the totals what ``new`` raises the slot's per-field maximum by."""
        if old is None:
            self.total.add_stats(new)
            return
        peak = self._peaks.get(slot)
        if peak is None:
            tally, bins = Tally.of(old.stats), old.stats.sketch.bins
        else:
            tally, bins = peak.tally, peak.bins
        more_tally, tally_below = tally.excess(Tally.of(new))
        more_bins, bins_below = bins.excess(new.sketch.bins)
        self.total.tally.add(more_tally)
        self.total.bins.add(more_bins)
        if not (tally_below or bins_below):
            self._peaks.pop(slot, None)  # ``new`` is the maximum: nothing else to keep
            return
        raised = Aggregate(Tally(), bins.copy())
        raised.tally.add(tally)
        raised.tally.add(more_tally)
        raised.bins.add(more_bins)
        self._peaks[slot] = raised

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
                self._peaks.pop((rec.partition, rec.minute), None)
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
