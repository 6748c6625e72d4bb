"""The API's state: a read model rebuilt only from the output topics.

Feed it records with :meth:`ReadModel.apply` (decoded) or :meth:`ReadModel.apply_raw`
(bytes, as read from Kafka); query it with the ``*_view`` methods. It imports nothing from
Kafka, so tests and the end-to-end suite can drive it directly.

Guarantees:

* Idempotent: applying a record twice, or a replayed record with the same content, changes
  nothing (latest-per-key for breaches and stats; measurements dedup on event ids;
  quarantine dedups on the source position).
* Deterministic: ``/v1/flows`` and ``/v1/breaches`` are functions of the records applied,
  not of arrival order across partitions or of the wall clock (except the ``stale`` marks
  of gauges and ``source``, how long Kafka has been silent). Two API processes that have
  read the same topics answer the same.
* Never raises on a bad record: it is counted in ``progress.bad_records`` and skipped.

Not thread-safe: mutate and query from one event loop (queries never await).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from api import timeline
from api.breaches import BreachFilter, BreachIndex, decode_cursor, encode_cursor
from api.entities import EntityIndex
from api.errors import InvalidQueryError, NotFoundError
from api.models import (
    BreachPage,
    BreachView,
    EntityView,
    ErrorBudget,
    FlowList,
    FlowView,
    KafkaSource,
    LagQuantiles,
    StatsSource,
    Windows,
    WindowView,
)
from streams import slo, topics
from streams.alerting.ledger import Ledger
from streams.core.model import Flow
from streams.stats import records as stats
from streams.stats.windows import DAY_MINUTES, Aggregate, FlowStats, Tally, WindowResult

Clock = Callable[[], int]
STALE_FACTOR = 3
"""A gauge older than this many stats intervals is reported stale."""
RECOMPUTE_MS = 250
"""``freshness api``'s ``recompute_ms``: its flow views lag the records applied by at most
this (bench/api_latency.py --burst measures what it buys)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Progress:
    """How far the read model is from the output topics; written by the consumer.

    ``ready`` (what ``/readyz`` answers) holds while the model has caught up *and* Kafka
    answers: through an outage the model keeps serving its last state, marked stale
    (:meth:`ReadModel.source_view`), and ``waiting_for`` says since when Kafka is silent.
    """

    ready: bool = False
    waiting_for: list[str] = field(default_factory=lambda: ["no consumer attached yet"])
    records_applied: int = 0
    bad_records: int = 0
    caught_up: bool = False
    """Read once up to the end offsets seen at the first connection (stays true after)."""
    connected: bool = True
    """False while the broker has not answered the reader for ``SILENT_AFTER_MS``."""
    last_contact_at: int | None = None
    """Wall clock (ms) of the broker's last answer to the reader; None: never, or no Kafka."""
    silent_since: int | None = None
    """Wall clock (ms) since which the broker has not answered (None while connected)."""

    def mark_caught_up(self) -> None:
        self.caught_up = True
        self.ready = self.connected
        if self.connected:
            self.waiting_for = []

    def heard(self, at: int) -> None:
        """The broker answered at ``at``: connected again, and ready if caught up."""
        self.last_contact_at = at if self.last_contact_at is None else max(at, self.last_contact_at)
        if not self.connected:
            self.connected, self.silent_since = True, None
            if self.caught_up:
                self.ready, self.waiting_for = True, []

    def silent(self, since: int, why: str) -> None:
        """No answer since ``since``: not ready, and ``waiting_for`` is ``why``."""
        if self.connected:
            self.connected, self.silent_since = False, since
        self.ready = False
        self.waiting_for = [why]


class ReadModel:
    """Breaches, statistics, quarantine counts and timelines of the configured flows."""

    def __init__(
        self,
        flows: Iterable[Flow],
        *,
        entity_capacity: int = 100_000,
        stats_interval_ms: int = 2_000,
        clock: Clock = wall_clock_ms,
        recompute_ms: int = 0,
    ) -> None:
        """``recompute_ms``: the least time (monotonic) between two computations of the flow
        views while records keep arriving; 0 recomputes after every change (tests, replay
        of a fixed set of records). See :meth:`flows_view`."""
        self.flows: dict[str, Flow] = {f.name: f for f in flows}
        self.breaches = BreachIndex()
        self.entities = EntityIndex(entity_capacity)
        self.stats: dict[str, FlowStats] = {name: FlowStats() for name in self.flows}
        self.quarantine: dict[str, int] = {}
        self._quarantined: set[tuple[str, int, int]] = set()
        self.progress = Progress()
        self.alerts = Ledger()
        """``freshness.alerts`` and ``freshness.alert-deliveries`` (see ``api.alerts``)."""
        self.stats_interval_ms = stats_interval_ms
        self.clock = clock
        self._version = 0
        self._cache: tuple[tuple[int, int, bool], FlowList] | None = None
        self.recompute_ms = recompute_ms
        self._computed_at = 0.0

    # ---- apply -------------------------------------------------------------------------

    def apply_raw(
        self, topic: str, key: bytes | None, value: bytes | None, offset: int = 0
    ) -> None:
        """Apply one Kafka record of an output topic (``value`` None is a tombstone);
        ``offset`` is the record's (an alert state's version)."""
        if topic in (topics.ALERTS, topics.ALERT_DELIVERIES):
            self._apply_alerting(topic, key, value, offset)
            return
        try:
            record = None if value is None else orjson.loads(value)
        except orjson.JSONDecodeError:
            self.progress.bad_records += 1
            return
        self.apply(topic, record, None if key is None else key.decode("utf-8", "replace"))

    def apply(self, topic: str, record: Any, key: str | None = None) -> None:
        """Apply one decoded record of ``topic``; unknown topics and bad records are skipped."""
        self.progress.records_applied += 1
        try:
            if record is not None and not isinstance(record, dict):
                raise TypeError("record is not a JSON object")
            if topic == topics.BREACHES:
                self._apply_breach(record, key)
            elif topic == topics.STATS:
                self._apply_stats(record, key)
            elif topic == topics.MEASUREMENTS:
                if record is not None:
                    self.entities.add(record)
            elif topic == topics.QUARANTINE and record is not None:
                self._apply_quarantine(record)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.progress.bad_records += 1

    def _apply_alerting(
        self, topic: str, key: bytes | None, value: bytes | None, offset: int
    ) -> None:
        self.progress.records_applied += 1
        bad = self.alerts.bad_records
        if topic == topics.ALERTS:
            self.alerts.apply_alert(key, value, offset)
        else:
            self.alerts.apply_progress(key, value)
        self.progress.bad_records += self.alerts.bad_records - bad
        self._version += 1

    def _apply_breach(self, record: dict[str, Any] | None, key: str | None) -> None:
        breach_id = key if record is None else str(record.get("breach_id") or key)
        if not breach_id:
            raise KeyError("breach_id")
        if record is not None:
            # Validate now so that a bad record is skipped here, never a 500 at query time.
            record = BreachView.model_validate({**record, "breach_id": breach_id}).model_dump()
        self.breaches.apply(breach_id, record)
        self._version += 1

    def _apply_stats(self, record: dict[str, Any] | None, key: str | None) -> None:
        if record is None:
            if key is None:
                return
            sk = stats.parse_key(key)
            if sk.minute is None:
                self._flow_stats(sk.flow).delete_gauge(sk.partition)
            else:
                self._flow_stats(sk.flow).delete_window(sk.partition, sk.minute)
        else:
            rec = stats.from_json(record)
            if isinstance(rec, stats.WindowRecord):
                self._flow_stats(rec.flow).apply_window(rec)
            else:
                self._flow_stats(rec.flow).apply_gauge(rec)
        self._version += 1

    def _flow_stats(self, flow: str) -> FlowStats:
        found = self.stats.get(flow)
        if found is None:
            found = self.stats[flow] = FlowStats()
        return found

    def _apply_quarantine(self, record: dict[str, Any]) -> None:
        where = (str(record["topic"]), int(record["partition"]), int(record["offset"]))
        if where in self._quarantined:
            return
        self._quarantined.add(where)
        reason = str(record["reason"])
        self.quarantine[reason] = self.quarantine.get(reason, 0) + 1

    # ---- flows -------------------------------------------------------------------------

    def flows_view(self) -> FlowList:
        """Every configured flow, in configuration order.

        Cached until data changes, the clock's second turns or Kafka connects or goes
        silent; and, with ``recompute_ms``, computed at most once per ``recompute_ms`` while
        records keep arriving. Why: computing the views merges every partition's sketches of
        the last 24 h (about 15 ms here), and the consumer may apply a batch between any two
        requests, so without the bound a burst of requests recomputed them over and over
        (docs/api.md has the figures). A view is then at most ``recompute_ms`` behind the
        records applied.
        """
        now = self.clock()
        cache_key = (self._version, now // 1000, self.progress.connected)
        cached = self._cache
        if cached is not None and (cached[0] == cache_key or self._recent(cached[0], cache_key)):
            return cached[1]
        result = FlowList(flows=[self._flow_view(f, now) for f in self.flows.values()])
        self._cache = (cache_key, result)
        self._computed_at = time.monotonic()
        return result

    def _recent(self, cached: tuple[int, int, bool], wanted: tuple[int, int, bool]) -> bool:
        """Whether a view computed for ``cached`` may still serve ``wanted``: only new records
        (same second, same connection state) within ``recompute_ms`` of its computation."""
        if not self.recompute_ms or cached[1:] != wanted[1:]:
            return False
        return (time.monotonic() - self._computed_at) * 1000 < self.recompute_ms

    def source_view(self, now: int) -> KafkaSource:
        """How live the views are: connected, or blind for how long (the wall clock)."""
        p = self.progress
        if p.connected:
            return KafkaSource(connected=True, last_contact_at=p.last_contact_at, stale_for_ms=0)
        since = p.last_contact_at if p.last_contact_at is not None else p.silent_since
        stale = 0 if since is None else max(0, now - since)
        return KafkaSource(connected=False, last_contact_at=p.last_contact_at, stale_for_ms=stale)

    def flow_view(self, name: str) -> FlowView:
        self.require_flow(name)
        for view in self.flows_view().flows:
            if view.name == name:
                return view
        raise NotFoundError(f"unknown flow {name!r}")  # pragma: no cover - guarded above

    def require_flow(self, name: str) -> Flow:
        flow = self.flows.get(name)
        if flow is None:
            known = ", ".join(self.flows) or "none configured"
            raise NotFoundError(f"unknown flow {name!r}; known flows: {known}")
        return flow

    def flow_totals(self, name: str) -> Aggregate:
        """All-time totals of the flow's window records, never decreasing (Prometheus
        counters; see :mod:`streams.stats.windows`)."""
        return self._flow_stats(name).total

    def _flow_view(self, flow: Flow, now: int) -> FlowView:
        flow_stats = self._flow_stats(flow.name)
        as_of = flow_stats.as_of()
        ref_minute = (now if as_of is None else as_of) // stats.MINUTE_MS
        five, hour = flow_stats.window(ref_minute, 5), flow_stats.window(ref_minute, 60)
        day = flow_stats.window(ref_minute, DAY_MINUTES)
        windows = Windows(
            last_5m=_window_view(five), last_1h=_window_view(hour), last_24h=_window_view(day)
        )
        gauges = list(flow_stats.gauges.values())
        starts = (g.oldest_pending_started_at for g in gauges)
        oldest = min((at for at in starts if at is not None), default=None)
        stale_after = STALE_FACTOR * self.stats_interval_ms
        stale = sorted(g.partition for g in gauges if now - g.updated_at > stale_after)
        open_breaches = self.breaches.open_for(flow.name)
        oldest_deadline = min((int(b["deadline"]) for b in open_breaches), default=None)
        monitor_lag = max((g.monitor_lag_ms for g in gauges), default=None)
        budget = _error_budget(flow, day, open_breaches)
        verdict = slo.flow_status(
            slo.FlowHealth(
                target_ms=flow.target_ms,
                objective=flow.objective,
                last_1h=_outcomes(hour.tally),
                last_5m=_outcomes(five.tally),
                open_breaches=len(open_breaches),
                oldest_open_deadline=oldest_deadline,
                as_of=as_of,
                monitor_lag_ms=monitor_lag,
                stale_partitions=tuple(stale),
            )
        )
        return FlowView(
            name=flow.name,
            target_ms=flow.target_ms,
            objective=flow.objective,
            give_up_after_ms=flow.give_up_after_ms,
            as_of=as_of,
            windows=windows,
            open_breaches=len(open_breaches),
            oldest_open_breach_deadline=oldest_deadline,
            pending=sum(g.pending for g in gauges),
            oldest_pending_started_at=oldest,
            oldest_pending_age_ms=(
                None if oldest is None or as_of is None else max(0, as_of - oldest)
            ),
            monitor_lag_ms=monitor_lag,
            status=verdict.status,
            status_reasons=list(verdict.reasons),
            stats=StatsSource(
                partitions=len(gauges), stale_partitions=stale, updated_at=flow_stats.updated_at
            ),
            source=self.source_view(now),
            alerts_firing=sorted(
                s.event.alert for s in self.alerts.firing() if s.event.flow == flow.name
            ),
            error_budget=budget,
        )

    # ---- breaches ----------------------------------------------------------------------

    def breaches_page(self, flt: BreachFilter, *, cursor: str | None, limit: int) -> BreachPage:
        """One page in ``(deadline, breach_id)`` order; see :mod:`api.breaches`."""
        if flt.flow is not None:
            self.require_flow(flt.flow)
        try:
            after = None if cursor is None else decode_cursor(cursor)
        except ValueError as exc:
            raise InvalidQueryError(str(exc)) from None
        items, last = self.breaches.page(flt, after=after, limit=limit)
        return BreachPage(
            items=[BreachView.model_validate(r) for r in items],
            next_cursor=None if last is None else encode_cursor(last),
        )

    def breach_view(self, breach_id: str) -> BreachView:
        record = self.breaches.get(breach_id)
        if record is None:
            raise NotFoundError(f"unknown breach {breach_id!r}")
        return BreachView.model_validate(record)

    # ---- entities ----------------------------------------------------------------------

    def entity_view(self, flow_name: str, key: str) -> EntityView:
        """The entity's timeline; 404 when neither a measurement nor a breach is known."""
        flow = self.require_flow(flow_name)
        measurements = self.entities.get(flow_name, key)
        breach = self.breaches.get(f"{flow_name}:{key}")
        if not measurements and breach is None:
            raise NotFoundError(
                f"no measurement or breach of {flow_name}:{key}: it is unknown, still "
                f"pending within its target, or older than the API's timeline cache "
                f"({self.entities.capacity} entities)"
            )
        as_of = self._flow_stats(flow_name).as_of()
        return timeline.build(flow, key, measurements, breach, as_of)


def _error_budget(
    flow: Flow, day: WindowResult, open_breaches: list[dict[str, Any]]
) -> ErrorBudget:
    """The budget over ``day``: its outcomes plus the open overdue breaches declared in it
    (the alerter's rule, ``streams.alerting.evaluate``)."""
    first_ms = day.from_minute * stats.MINUTE_MS
    overdue = sum(
        1 for b in open_breaches if b["kind"] == "overdue" and int(b["detected_at"]) >= first_ms
    )
    t = day.tally
    outcomes = slo.Outcomes(on_time=t.on_time, late=t.late, lost=t.lost, overdue=overdue)
    return ErrorBudget(
        window_ms=(day.to_minute - day.from_minute + 1) * stats.MINUTE_MS,
        objective=flow.objective,
        good=outcomes.good,
        bad=outcomes.bad,
        burn_rate=slo.burn_rate(outcomes, flow.objective),
        remaining_ratio=slo.budget_remaining(outcomes, flow.objective),
    )


def _outcomes(t: Tally) -> slo.Outcomes:
    return slo.Outcomes(on_time=t.on_time, late=t.late, lost=t.lost)


def _window_view(res: WindowResult) -> WindowView:
    t = res.tally
    p50, p95, p99 = res.sketch.quantiles((0.50, 0.95, 0.99))
    return WindowView(
        window_ms=(res.to_minute - res.from_minute + 1) * stats.MINUTE_MS,
        from_ms=res.from_minute * stats.MINUTE_MS,
        to_ms=(res.to_minute + 1) * stats.MINUTE_MS,
        count=t.count,
        on_time=t.on_time,
        late=t.late,
        lost=t.lost,
        clock_skew=t.clock_skew,
        outcomes=t.on_time + t.late + t.lost,
        on_time_ratio=_outcomes(t).on_time_ratio(),
        lag_ms=LagQuantiles(p50=p50, p95=p95, p99=p99, max=res.sketch.max),
    )
