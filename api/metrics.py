"""``/metrics``: the read model in Prometheus text format (``prometheus_client``).

Every value is computed at scrape time from the read model, so several API processes expose
the same numbers. Counters are all-time sums over the statistics the workers published
(they only grow while the workers run; a compaction tombstone may lower them, which
Prometheus treats as a counter reset). The lag histogram of each flow is derived from the
merged sketch bins with buckets placed around that flow's target (bucket edges within the
sketch's 1 % relative error).
"""

from __future__ import annotations

from collections.abc import Iterator

from ddsketch.mapping import LogarithmicMapping
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api.readmodel import ReadModel
from api.stats import Aggregate
from streams.stats.sketch import RELATIVE_ACCURACY

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
"""The same bin mapping as :class:`~streams.stats.sketch.LagSketch`."""

TARGET_MULTIPLES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Histogram bucket edges, as multiples of the flow's target."""


def bucket_edges(target_ms: int) -> list[float]:
    """Upper bounds in seconds for a flow whose target is ``target_ms``."""
    return [round(target_ms * m / 1000.0, 6) for m in TARGET_MULTIPLES]


def histogram_buckets(
    agg: Aggregate, edges_s: list[float]
) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``(le, count)`` pairs (``+Inf`` last) and the approximate sum in seconds."""
    values: list[tuple[float, int]] = [(-_MAPPING.value(k), c) for k, c in agg.neg.items()]
    values += [(_MAPPING.value(k), c) for k, c in agg.pos.items()]
    values.append((0.0, agg.zero))
    values.sort()
    buckets: list[tuple[str, float]] = []
    i, acc = 0, 0
    for edge in edges_s:
        edge_ms = edge * 1000.0
        while i < len(values) and values[i][0] <= edge_ms:
            acc += values[i][1]
            i += 1
        buckets.append((_fmt(edge), float(acc)))
    buckets.append(("+Inf", float(agg.n)))
    total_s = sum(v * c for v, c in values) / 1000.0
    return buckets, total_s


def _fmt(x: float) -> str:
    return repr(float(x))


class ReadModelCollector(Collector):
    """Collects the freshness metrics of one read model."""

    def __init__(self, model: ReadModel) -> None:
        self.model = model

    def collect(self) -> Iterator[Metric]:
        model = self.model
        view = {f.name: f for f in model.flows_view().flows}
        lag = HistogramMetricFamily(
            "freshness_lag_seconds",
            "Lag from start to completion (event time), buckets around the flow's target.",
            labels=["flow"],
        )
        on_time = CounterMetricFamily(
            "freshness_on_time", "Starts completed within target.", labels=["flow"]
        )
        late = CounterMetricFamily(
            "freshness_late", "Starts completed after their target.", labels=["flow"]
        )
        lost = CounterMetricFamily(
            "freshness_lost", "Starts with no completion within give_up_after.", labels=["flow"]
        )
        skew = CounterMetricFamily(
            "freshness_clock_skew", "Measurements with a negative lag.", labels=["flow"]
        )
        open_b = GaugeMetricFamily("freshness_open_breaches", "Open breaches.", labels=["flow"])
        pending = GaugeMetricFamily(
            "freshness_pending", "Starts waiting for their completion.", labels=["flow"]
        )
        oldest = GaugeMetricFamily(
            "freshness_oldest_pending_age_seconds",
            "Age of the oldest pending start (to the flow's watermark).",
            labels=["flow"],
        )
        mlag = GaugeMetricFamily(
            "freshness_monitor_lag_seconds", "Worst backlog of the workers.", labels=["flow"]
        )
        status = GaugeMetricFamily(
            "freshness_flow_status",
            "1 for the flow's current status (ok, warning, breaching), else 0.",
            labels=["flow", "status"],
        )
        for name, flow in model.flows.items():
            totals = model.flow_totals(name)
            buckets, sum_s = histogram_buckets(totals, bucket_edges(flow.target_ms))
            lag.add_metric([name], buckets, sum_s)
            on_time.add_metric([name], totals.tally.on_time)
            late.add_metric([name], totals.tally.late)
            lost.add_metric([name], totals.tally.lost)
            skew.add_metric([name], totals.tally.clock_skew)
            fv = view[name]
            open_b.add_metric([name], fv.open_breaches)
            pending.add_metric([name], fv.pending)
            oldest.add_metric([name], (fv.oldest_pending_age_ms or 0) / 1000.0)
            mlag.add_metric([name], (fv.monitor_lag_ms or 0) / 1000.0)
            for s in ("ok", "warning", "breaching"):
                status.add_metric([name, s], 1.0 if fv.status == s else 0.0)
        quarantined = CounterMetricFamily(
            "freshness_quarantined_records",
            "Input records the workers quarantined, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(model.quarantine.items()):
            quarantined.add_metric([reason], count)
        ready = GaugeMetricFamily(
            "freshness_api_ready", "1 when the read model has caught up with the output topics."
        )
        ready.add_metric([], 1.0 if model.progress.ready else 0.0)
        applied = CounterMetricFamily(
            "freshness_api_records_applied", "Output-topic records applied to the read model."
        )
        applied.add_metric([], model.progress.records_applied)
        bad = CounterMetricFamily(
            "freshness_api_bad_records", "Output-topic records the read model could not use."
        )
        bad.add_metric([], model.progress.bad_records)
        yield from (lag, on_time, late, lost, skew, open_b, pending, oldest, mlag, status)
        yield from (quarantined, ready, applied, bad)


def registry_for(model: ReadModel) -> CollectorRegistry:
    """A fresh registry (not the global one) exposing ``model``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReadModelCollector(model))
    return registry
