"""``/metrics``: the read model in Prometheus text format (``prometheus_client``).

Every value is computed at scrape time from the read model, so API processes that have
read the same topics expose the same numbers. This module decodes nothing itself: the
numbers come from :class:`~api.readmodel.ReadModel` and the stats types it holds.

**Counters never decrease within a process** (so ``rate()`` and ``increase()`` see no
false counter resets). ``freshness_on_time``, ``freshness_late``, ``freshness_lost``,
``freshness_clock_skew`` and the ``freshness_lag_seconds`` histogram are the read model's
all-time totals (:meth:`~api.readmodel.ReadModel.flow_totals`), kept apart from its
sliding windows (:mod:`streams.stats.windows`): per live (partition, minute) slot they
hold the per-field maximum of every window record seen, so a smaller record replayed
after a worker crash lowers nothing; when the worker tombstones a window at expiry (25 h)
or the read model prunes it, its maximum stays in the total as retired instead of being
subtracted (total = retired + the sum of the live slots' maxima). A restarted API process
counts again from what the topic still holds: a real counter reset, which Prometheus
handles. The quarantine and read-model counters only count up as well.

The lag histogram of each flow has its bucket edges around that flow's target
(:data:`TARGET_MULTIPLES`); a bucket counts the totals' sketch bins whose value is at or
below its edge (bin values are within the sketch's 1 % of the lags), ``+Inf`` and
``_count`` are the number of lags, and ``_sum`` adds the bins' values (it goes down when
negative lags, clock skew, are observed, as any Prometheus histogram sum may).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from api.models import FlowView
from api.readmodel import ReadModel
from streams.alerting.evaluate import OpenOverdue, build_snapshot
from streams.alerting.policy import AlertPolicy, default_policy
from streams.alerting.rules import OLDEST_OPEN_DEADLINE, WINDOW_BAD, WINDOW_GOOD, window_label
from streams.stats.windows import Aggregate, Tally

TARGET_MULTIPLES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Histogram bucket edges, as multiples of the flow's target."""

_FLOW_COUNTERS: tuple[tuple[str, str, Callable[[Tally], int]], ...] = (
    ("freshness_on_time", "Starts completed within target.", lambda t: t.on_time),
    ("freshness_late", "Starts completed after their target.", lambda t: t.late),
    ("freshness_lost", "Starts with no completion within give_up_after.", lambda t: t.lost),
    ("freshness_clock_skew", "Measurements with a negative lag.", lambda t: t.clock_skew),
)
_FLOW_GAUGES: tuple[tuple[str, str, Callable[[FlowView], float]], ...] = (
    ("freshness_open_breaches", "Open breaches.", lambda v: v.open_breaches),
    ("freshness_pending", "Starts waiting for their completion.", lambda v: v.pending),
    (
        "freshness_oldest_pending_age_seconds",
        "Age of the oldest pending start (to the flow's watermark).",
        lambda v: (v.oldest_pending_age_ms or 0) / 1000.0,
    ),
    (
        "freshness_monitor_lag_seconds",
        "Worst backlog of the workers.",
        lambda v: (v.monitor_lag_ms or 0) / 1000.0,
    ),
    ("freshness_target_seconds", "The flow's freshness target.", lambda v: v.target_ms / 1000.0),
    (
        "freshness_objective_ratio",
        "The flow's objective: the share of starts to complete within target.",
        lambda v: v.objective,
    ),
)
_STATUSES = ("ok", "warning", "breaching")


def bucket_edges(target_ms: int) -> list[float]:
    """Upper bounds in seconds for a flow whose target is ``target_ms``."""
    return [round(target_ms * m / 1000.0, 6) for m in TARGET_MULTIPLES]


def histogram_buckets(
    agg: Aggregate, edges_s: list[float]
) -> tuple[list[tuple[str, float]], float]:
    """Cumulative ``(le, count)`` pairs (``+Inf`` last) and the approximate sum in seconds."""
    counts = agg.bucket_counts(edge * 1000.0 for edge in edges_s)
    buckets = [(_fmt(edge), float(c)) for edge, c in zip(edges_s, counts, strict=True)]
    buckets.append(("+Inf", float(agg.bins.count)))
    return buckets, agg.bins.approx_sum() / 1000.0


def _fmt(x: float) -> str:
    return repr(float(x))


class ReadModelCollector(Collector):
    """Collects the freshness metrics of one read model."""

    def __init__(self, model: ReadModel, policies: Mapping[str, AlertPolicy] | None = None) -> None:
        self.model = model
        given = policies or {}
        self.policies = {
            name: given.get(name) or default_policy(flow) for name, flow in model.flows.items()
        }

    def collect(self) -> Iterator[Metric]:
        yield from self._flow_metrics()
        yield from self._burn_metrics()
        yield from self._alert_metrics()
        yield from self._process_metrics()

    def _alert_metrics(self) -> list[Metric]:
        """From ``freshness.alerts`` and ``freshness.alert-deliveries`` (the alerter writes
        its sinks' all-time counts there; the per-field maximum seen is reported, so the
        counter never decreases)."""
        model = self.model
        firing = GaugeMetricFamily(
            "freshness_alerts_firing",
            "1 while the alert fires, 0 once resolved (every alert the outbox holds).",
            labels=["flow", "alert"],
        )
        for state in sorted(model.alerts.states.values(), key=lambda s: s.alert_id):
            firing.add_metric([state.event.flow, state.event.alert], float(state.event.firing))
        deliveries = CounterMetricFamily(
            "freshness_alert_deliveries",
            "Requests to alert sinks by result (delivered, resent, retried, dead_lettered).",
            labels=["sink", "result"],
        )
        for counts in model.alerts.total_counts():
            for result, value in counts.by_result().items():
                deliveries.add_metric([counts.sink, result], value)
        budget = GaugeMetricFamily(
            "freshness_error_budget_remaining_ratio",
            "Error budget left over the last 24 h (1 - burn rate, clipped to [0, 1]).",
            labels=["flow"],
        )
        for view in model.flows_view().flows:
            if view.error_budget is not None:
                budget.add_metric([view.name], view.error_budget.remaining_ratio)
        return [firing, deliveries, budget]

    def _flow_metrics(self) -> list[Metric]:
        model = self.model
        views = {f.name: f for f in model.flows_view().flows}
        lag = HistogramMetricFamily(
            "freshness_lag_seconds",
            "Lag from start to completion (event time), buckets around the flow's target.",
            labels=["flow"],
        )
        counters = [CounterMetricFamily(n, h, labels=["flow"]) for n, h, _ in _FLOW_COUNTERS]
        gauges = [GaugeMetricFamily(n, h, labels=["flow"]) for n, h, _ in _FLOW_GAUGES]
        status = GaugeMetricFamily(
            "freshness_flow_status",
            "1 for the flow's current status (ok, warning, breaching), else 0.",
            labels=["flow", "status"],
        )
        for name, flow in model.flows.items():
            totals = model.flow_totals(name)
            lag.add_metric([name], *histogram_buckets(totals, bucket_edges(flow.target_ms)))
            for family, (_, _, count) in zip(counters, _FLOW_COUNTERS, strict=True):
                family.add_metric([name], count(totals.tally))
            view = views[name]
            for gauge, (_, _, value) in zip(gauges, _FLOW_GAUGES, strict=True):
                gauge.add_metric([name], value(view))
            for s in _STATUSES:
                status.add_metric([name, s], 1.0 if view.status == s else 0.0)
        return [lag, *counters, *gauges, status]

    def _burn_metrics(self) -> list[Metric]:
        """What ``freshness rules prometheus`` judges: per flow and burn window of its alert
        policy, the alerter's good and bad counts (:func:`build_snapshot` over the read
        model, as of now), and the oldest open breach's deadline (epoch seconds)."""
        model, now = self.model, self.model.clock()
        labels = ["flow", "window"]
        good = GaugeMetricFamily(WINDOW_GOOD, "Good (on-time) starts in the window.", labels=labels)
        bad = GaugeMetricFamily(
            WINDOW_BAD,
            "Bad starts (late, lost, open overdue declared) in the window.",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            OLDEST_OPEN_DEADLINE, "Deadline of the oldest open breach.", labels=["flow"]
        )
        for name, policy in self.policies.items():
            open_ = model.breaches.open_for(name)
            if open_:
                oldest.add_metric([name], min(int(b["deadline"]) for b in open_) / 1000.0)
            overdue = [
                OpenOverdue(str(b["key"]), int(b["deadline"]), int(b["detected_at"]))
                for b in open_
                if b["kind"] == "overdue"
            ]
            snap = build_snapshot(policy, model.stats.get(name), overdue, now_ms=now)
            for counts in snap.windows:
                window = [name, window_label(counts.window_ms)]
                good.add_metric(window, counts.outcomes.good)
                bad.add_metric(window, counts.bad)
        return [good, bad, oldest]

    def _process_metrics(self) -> list[Metric]:
        model = self.model
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
        stale = GaugeMetricFamily(
            "freshness_api_kafka_stale_seconds",
            "0 while Kafka answers the API's reader; else how long it has not (the views are "
            "its last state).",
        )
        stale.add_metric([], model.source_view(model.clock()).stale_for_ms / 1000)
        applied = CounterMetricFamily(
            "freshness_api_records_applied", "Output-topic records applied to the read model."
        )
        applied.add_metric([], model.progress.records_applied)
        bad = CounterMetricFamily(
            "freshness_api_bad_records", "Output-topic records the read model could not use."
        )
        bad.add_metric([], model.progress.bad_records)
        return [quarantined, ready, stale, applied, bad]


def registry_for(
    model: ReadModel, policies: Mapping[str, AlertPolicy] | None = None
) -> CollectorRegistry:
    """A fresh registry (not the global one) exposing ``model``; the burn windows are those
    of ``policies`` (by flow name; a flow without one has the default policy)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReadModelCollector(model, policies))
    return registry
