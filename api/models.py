"""Pydantic response models of the HTTP API, each with an OpenAPI example.

These are the public contract of ``/v1``: every field is documented, times are epoch
milliseconds and durations end in ``_ms``, exactly like the output topics they come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streams.alerting.ledger import SinkState
from streams.connectors.sink import Severity
from streams.connectors.sink import Status as AlertStatus

Status = Literal["ok", "warning", "breaching"]
BreachKind = Literal["overdue", "late", "lost"]
BreachStatus = Literal["open", "closed"]
EntityState = Literal["on_time", "late", "overdue", "lost"]


def _example(data: Mapping[str, Any]) -> ConfigDict:
    example: dict[str, Any] = dict(data)
    return ConfigDict(json_schema_extra={"examples": [example]})


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`.")
    message: str = Field(description="What was wrong and what to do about it.")
    detail: list[dict[str, object]] | None = Field(
        default=None, description="Per-parameter problems of a rejected request (422 only)."
    )
    incident: str | None = Field(
        default=None,
        description="A 500 only: the id under which the server logged the unexpected error.",
    )


class ErrorBody(BaseModel):
    """Every 4xx answer of the API has this body."""

    model_config = _example(
        {"error": {"code": "not_found", "message": "unknown flow 'nope'", "detail": None}}
    )
    error: ErrorDetail


class SourceRecord(BaseModel):
    """Where an input record sits in Kafka."""

    topic: str
    partition: int
    offset: int


class Health(BaseModel):
    model_config = _example({"status": "ok"})
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether the read model has caught up with the output topics as they were at start."""

    model_config = _example(
        {
            "ready": False,
            "waiting_for": ["freshness.breaches[3]: at offset 120 of 480"],
            "records_applied": 1200,
        }
    )
    ready: bool
    waiting_for: list[str] = Field(description="Empty when ready; otherwise what is missing.")
    records_applied: int = Field(description="Output-topic records applied so far.")


_LAG_EX = {"p50": 812.0, "p95": 3904.0, "p99": 6120.0, "max": 9500.0}


class LagQuantiles(BaseModel):
    """Lag quantiles in ms, merged from the workers' sketches (1 % relative error; exact max).

    All null when the window holds no measurement.
    """

    model_config = _example(_LAG_EX)
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


_WINDOW_EX: dict[str, object] = {
    "window_ms": 300000,
    "from_ms": 1767225360000,
    "to_ms": 1767225660000,
    "count": 1180,
    "on_time": 1172,
    "late": 8,
    "lost": 1,
    "clock_skew": 0,
    "outcomes": 1181,
    "on_time_ratio": 0.99238,
    "lag_ms": _LAG_EX,
}


class WindowView(BaseModel):
    """Outcomes whose completion (or give-up) minute lies in ``[from_ms, to_ms)``."""

    model_config = _example(_WINDOW_EX)
    window_ms: int
    from_ms: int
    to_ms: int
    count: int = Field(description="Measurements (completed starts: on time plus late).")
    on_time: int
    late: int
    lost: int
    clock_skew: int = Field(description="Measurements with a negative lag (counted on time).")
    outcomes: int = Field(description="on_time + late + lost.")
    on_time_ratio: float | None = Field(description="on_time / outcomes; null when none.")
    lag_ms: LagQuantiles


class Windows(BaseModel):
    model_config = _example({"last_5m": _WINDOW_EX, "last_1h": _WINDOW_EX, "last_24h": _WINDOW_EX})
    last_5m: WindowView
    last_1h: WindowView
    last_24h: WindowView


class StatsSource(BaseModel):
    """Freshness of the statistics this view was built from."""

    model_config = _example({"partitions": 8, "stale_partitions": [], "updated_at": 1767225659000})
    partitions: int = Field(description="Worker partitions that have published a gauge.")
    stale_partitions: list[int] = Field(
        description="Partitions whose gauge is older than 3x the stats interval."
    )
    updated_at: int | None = Field(description="Newest stats record for this flow.")


_SOURCE_EX: dict[str, object] = {
    "connected": True,
    "last_contact_at": 1767225659400,
    "stale_for_ms": 0,
}


class KafkaSource(BaseModel):
    """Whether this answer is live: through a Kafka outage the API serves its last state and
    says here for how long it has been blind."""

    model_config = _example(_SOURCE_EX)
    connected: bool = Field(
        description="Kafka answered the API's reader within the last 3 s (false: the view "
        "is the last state read, see `stale_for_ms`)."
    )
    last_contact_at: int | None = Field(
        description="Wall clock (ms) of Kafka's last answer to the API's reader; null: never "
        "(or a read model not fed from Kafka)."
    )
    stale_for_ms: int = Field(
        ge=0,
        description="0 while connected; else how long the reader has had no answer (since its "
        "start when it never had one).",
    )


_BUDGET_EX: dict[str, object] = {
    "window_ms": 86400000,
    "objective": 0.99,
    "good": 11720,
    "bad": 41,
    "burn_rate": 0.3486,
    "remaining_ratio": 0.6514,
}


_FLOW_EX: dict[str, object] = {
    "name": "lead_to_posthog",
    "target_ms": 5000,
    "objective": 0.99,
    "give_up_after_ms": 86400000,
    "as_of": 1767225659000,
    "windows": {"last_5m": _WINDOW_EX, "last_1h": _WINDOW_EX, "last_24h": _WINDOW_EX},
    "open_breaches": 1,
    "oldest_open_breach_deadline": 1767225600000,
    "pending": 37,
    "oldest_pending_started_at": 1767225590000,
    "oldest_pending_age_ms": 69000,
    "monitor_lag_ms": 120,
    "status": "warning",
    "status_reasons": ["1 open breach"],
    "stats": {"partitions": 8, "stale_partitions": [], "updated_at": 1767225659000},
    "source": _SOURCE_EX,
    "alerts_firing": ["stuck"],
    "error_budget": _BUDGET_EX,
}


class ErrorBudget(BaseModel):
    """The flow's error budget over the last 24 h (``streams.slo.budget``): good = on time,
    bad = late + lost + open overdue breaches declared in the window."""

    model_config = _example(_BUDGET_EX)
    window_ms: int
    objective: float
    good: int
    bad: int
    burn_rate: float = Field(description="(bad / (good + bad)) / (1 - objective); 0 if none.")
    remaining_ratio: float = Field(description="1 - burn rate, clipped to [0, 1].")


class FlowView(BaseModel):
    """One flow's freshness right now. The status rule is in ``docs/api.md``."""

    model_config = _example(_FLOW_EX)
    name: str
    target_ms: int
    objective: float
    give_up_after_ms: int
    as_of: int | None = Field(
        description="Reference time (event time, ms): the newest watermark the workers "
        "published for this flow. Windows end at its minute; ages are measured to it."
    )
    windows: Windows
    open_breaches: int = Field(description="Breaches of this flow whose status is open.")
    oldest_open_breach_deadline: int | None
    pending: int = Field(description="Starts waiting for their completion, all partitions.")
    oldest_pending_started_at: int | None
    oldest_pending_age_ms: int | None
    monitor_lag_ms: int | None = Field(description="Worst backlog of the workers, in ms.")
    status: Status
    status_reasons: list[str] = Field(description="Why the status is not ok (empty when ok).")
    stats: StatsSource
    source: KafkaSource
    alerts_firing: list[str] = Field(
        default_factory=list,
        description="Names of this flow's firing alerts (e.g. `stuck`), from freshness.alerts.",
    )
    error_budget: ErrorBudget | None = Field(default=None, description="Error budget left.")


class FlowList(BaseModel):
    model_config = _example({"flows": [_FLOW_EX]})
    flows: list[FlowView]


_BREACH_EX: dict[str, object] = {
    "breach_id": "lead_to_posthog:lead-42",
    "flow": "lead_to_posthog",
    "key": "lead-42",
    "kind": "late",
    "status": "closed",
    "started_at": 1767225600000,
    "deadline": 1767225605000,
    "detected_at": 1767225605300,
    "completed_at": 1767225611000,
    "lag_ms": 11000,
    "target_ms": 5000,
    "start_event_id": "evt-1",
    "start_source": {"topic": "funnel.lead.captured", "partition": 2, "offset": 1041},
    "end_source": {"topic": "funnel.posthog.ingested", "partition": 0, "offset": 977},
}


class BreachView(BaseModel):
    """The current state of one breach (the latest record of its key)."""

    model_config = _example(_BREACH_EX)
    breach_id: str
    flow: str
    key: str
    kind: BreachKind
    status: BreachStatus
    started_at: int
    deadline: int = Field(
        description="started_at + target_ms: the sort key of /v1/breaches and what "
        "since/until filter on."
    )
    detected_at: int = Field(description="Event time at which this state was declared.")
    completed_at: int | None
    lag_ms: int | None
    target_ms: int
    start_event_id: str
    start_source: SourceRecord | None = None
    end_source: SourceRecord | None = None


class BreachPage(BaseModel):
    """One page of breaches ordered by ``(deadline, breach_id)``."""

    model_config = _example(
        {
            "items": [_BREACH_EX],
            "next_cursor": "1767225605300.6c6561645f746f5f706f7374686f673a6c6561642d3432",
        }
    )
    items: list[BreachView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null when nothing matches after it."
    )


class TimelineEvent(BaseModel):
    """One thing that happened to an entity, in time order."""

    model_config = _example(
        {
            "at": 1767225600000,
            "kind": "started",
            "event_id": "evt-1",
            "source": {"topic": "funnel.lead.captured", "partition": 2, "offset": 1041},
            "note": "",
        }
    )
    at: int
    kind: Literal["started", "deadline", "overdue", "completed", "late", "lost"]
    event_id: str | None = None
    source: SourceRecord | None = None
    note: str = ""


class EntityCycle(BaseModel):
    """One start of the entity and what became of it."""

    state: EntityState
    start_event_id: str
    started_at: int
    start_source: SourceRecord | None
    deadline: int
    end_event_id: str | None
    completed_at: int | None
    end_source: SourceRecord | None
    lag_ms: int | None
    clock_skew: bool
    out_of_order: bool = Field(description="The completion was read before its start.")
    breach: BreachView | None
    timeline: list[TimelineEvent]


class EntityView(BaseModel):
    """An entity's timeline: the answer to "where is it stuck"."""

    model_config = _example(
        {
            "flow": "lead_to_posthog",
            "key": "lead-7",
            "state": "overdue",
            "where": "started at 1767225600000 on funnel.lead.captured; no completion on "
            "funnel.posthog.ingested yet, 55000 ms past its deadline",
            "target_ms": 5000,
            "cycles": [
                {
                    "state": "overdue",
                    "start_event_id": "evt-7",
                    "started_at": 1767225600000,
                    "start_source": {
                        "topic": "funnel.lead.captured",
                        "partition": 1,
                        "offset": 88,
                    },
                    "deadline": 1767225605000,
                    "end_event_id": None,
                    "completed_at": None,
                    "end_source": None,
                    "lag_ms": None,
                    "clock_skew": False,
                    "out_of_order": False,
                    "breach": None,
                    "timeline": [],
                }
            ],
        }
    )
    flow: str
    key: str
    state: EntityState = Field(description="State of the newest cycle.")
    where: str = Field(description="One sentence: where the newest cycle is or was stuck.")
    target_ms: int
    cycles: list[EntityCycle] = Field(description="Newest first.")


_DELIVERY_EX: dict[str, object] = {
    "sink": "pagerduty",
    "state": "delivered",
    "version": 1042,
    "at": 1767225601250,
    "http_status": None,
    "response": "",
}


class SinkDelivery(BaseModel):
    """Where one sink stands with the alert's current state."""

    model_config = _example(_DELIVERY_EX)
    sink: str = Field(description="`pagerduty`, `alertmanager` or `webhook`.")
    state: SinkState = Field(
        description="`delivered`: it took this version; `dead_lettered`: it refused it for "
        "good; `pending`: not yet (queued, retrying, or the alerter is down)."
    )
    version: int | None = Field(description="Newest version the sink is done with.")
    at: int | None = Field(description="When it was done with that version.")
    http_status: int | None = Field(default=None, description="A refusal's HTTP status.")
    response: str = Field(default="", description="A refusal's response body (cut).")


_ALERT_EX: dict[str, object] = {
    "alert_id": "funnel-freshness/lead_to_posthog/stuck",
    "flow": "lead_to_posthog",
    "alert": "stuck",
    "severity": "error",
    "status": "firing",
    "since": 1767225601000,
    "updated_at": 1767225601000,
    "summary": "lead_to_posthog: 1 entity stuck past its deadline; oldest 'lead-7' overdue "
    "by 6 s (stuck fires at >= 1 open, oldest >= 5 s)",
    "details": {"open_overdue": 1},
    "version": 1042,
    "routes": ["pagerduty", "alertmanager"],
    "deliveries": [_DELIVERY_EX],
}


class AlertView(BaseModel):
    """The current state of one alert (the latest record of its key in freshness.alerts)."""

    model_config = _example(_ALERT_EX)
    alert_id: str = Field(description="`<app_id>/<flow>/<alert>`; the PagerDuty dedup_key.")
    flow: str
    alert: str = Field(description="`page-fast`, `page-slow`, `ticket`, `stuck`, `backlog`.")
    severity: Severity
    status: AlertStatus
    since: int = Field(description="When the current (or last) firing episode began.")
    updated_at: int = Field(description="When this state was reached.")
    summary: str
    details: dict[str, Any]
    version: int = Field(description="The state's offset in freshness.alerts.")
    routes: list[str] = Field(description="The sinks this state is delivered to.")
    deliveries: list[SinkDelivery] = Field(description="Per sink of the routes.")


class AlertList(BaseModel):
    """Firing alerts, then those resolved in the last 24 h; newest change first in each."""

    model_config = _example({"alerts": [_ALERT_EX]})
    alerts: list[AlertView]


_EXPLAIN_EX: dict[str, object] = {
    "flow": "lead_to_posthog",
    "key": "lead-42",
    "target_ms": 5000,
    "state": "late",
    "start_event_id": "evt-1",
    "verdict": [
        "lag = completed_at - started_at = 2026-01-01T00:00:07.400Z (1767225607400) - "
        "2026-01-01T00:00:00.000Z (1767225600000) = 7400 ms",
        "late: lag 7400 ms > target 5000 ms by 2400 ms",
    ],
    "decomposition": {
        "started_at": 1767225600000,
        "start_in_kafka": 1767225600300,
        "deadline": 1767225605000,
        "completed_at": 1767225607400,
        "completion_in_kafka": 1767225607450,
        "verdict_at": 1767225607570,
        "lag_ms": 7400,
        "start_to_kafka_ms": 300,
        "completion_to_kafka_ms": 50,
        "monitor_ms": 120,
        "end_to_end_ms": 7570,
        "slowest": "lag_ms",
    },
    "clock_skew": False,
    "out_of_order": False,
    "read_out_of_order": False,
    "inputs": [],
    "breaches": [],
    "measurements": [],
    "notes": [],
}


class LagDecomposition(BaseModel):
    """Where an entity's time went (epoch ms; a part is null when a record it needs is not
    known: Kafka timestamps come only with ``inputs=true``)."""

    started_at: int | None = Field(description="The start's occurred_at.")
    start_in_kafka: int | None = Field(description="The start record's Kafka timestamp.")
    deadline: int | None = Field(description="started_at + target_ms.")
    completed_at: int | None = Field(description="The completion's occurred_at.")
    completion_in_kafka: int | None = Field(description="The completion record's timestamp.")
    verdict_at: int | None = Field(description="Kafka timestamp of the verdict's record.")
    lag_ms: int | None = Field(description="completed_at - started_at (what the target judges).")
    start_to_kafka_ms: int | None = Field(description="start_in_kafka - started_at.")
    completion_to_kafka_ms: int | None = Field(description="completion_in_kafka - completed_at.")
    monitor_ms: int | None = Field(
        description="verdict_at minus when the monitor could have known (the later input "
        "record's timestamp; for overdue, the later of the start's timestamp and the deadline)."
    )
    end_to_end_ms: int | None = Field(description="verdict_at - started_at.")
    slowest: str | None = Field(description="The largest of the four parts above, by name.")


class ExplainedInput(BaseModel):
    """An input record of the entity, read from Kafka by position."""

    topic: str
    partition: int
    offset: int
    timestamp: int = Field(description="Kafka timestamp.")
    side: Literal["start", "end"] | None
    event_id: str | None
    occurred_at: int | None
    problem: str | None = Field(description="Why the worker refuses it (quarantine reason).")
    value: str | None = Field(description="The raw value as text.")


class ExplainedOutput(BaseModel):
    """A record of an output topic about the entity (``value`` null: a tombstone)."""

    topic: str
    partition: int = Field(description="-1 when it comes from the read model.")
    offset: int = Field(description="-1 when it comes from the read model.")
    timestamp: int | None = Field(description="Kafka timestamp; null from the read model.")
    value: dict[str, Any] | None


class EntityExplanation(BaseModel):
    """One entity's verdict with its arithmetic and the lag decomposition
    (``freshness explain``'s JSON)."""

    model_config = _example(_EXPLAIN_EX)
    flow: str
    key: str
    target_ms: int
    state: Literal["on_time", "late", "overdue", "lost", "pending", "undeclared", "unknown"]
    start_event_id: str | None = Field(description="The start of the explained cycle.")
    verdict: list[str] = Field(description="The verdict and its arithmetic, one line each.")
    decomposition: LagDecomposition
    clock_skew: bool
    out_of_order: bool = Field(
        description="The completion was written to Kafka before its start (timestamps)."
    )
    read_out_of_order: bool | None = Field(
        description="The measurement's out_of_order: the monitor read the completion first."
    )
    inputs: list[ExplainedInput]
    breaches: list[ExplainedOutput] = Field(description="Breach record versions, in log order.")
    measurements: list[ExplainedOutput]
    notes: list[str]
    pages: list[ExplainedOutput] = Field(
        default_factory=list,
        description="Alerts that name the entity: the current state of each alert whose "
        "details.oldest lists it, its version as the offset (`freshness explain` reads every "
        "state of the window from freshness.alerts).",
    )


class EventsAccepted(BaseModel):
    """``POST /v1/events/{topic}``: every record was validated and Kafka acknowledged it."""

    model_config = _example(
        {"topic": "funnel.notification.acknowledged", "records": 100, "events": 100, "unmatched": 0}
    )
    topic: str
    records: int = Field(description="Records written (all of the request).")
    events: int = Field(description="Flow events they map to (a record may serve several flows).")
    unmatched: int = Field(
        description="Valid completions that match no flow's filter (written, counted unmatched)."
    )


class WebhookAccepted(BaseModel):
    """``POST /v1/webhooks/posthog``: the ``delivered`` completion written, or why none was."""

    model_config = _example(
        {
            "written": 1,
            "event_id": "posthog-delivered-0192f2c1-8f8e-7a55-bf3c-1d0f5b9c2e11",
            "occurred_at": 1767225660123,
            "ignored": None,
        }
    )
    written: int = Field(description="1, or 0 when the event carries no funnel link.")
    event_id: str | None = None
    occurred_at: int | None = Field(default=None, description="Moment of receipt (epoch ms).")
    ignored: str | None = Field(default=None, description="Why nothing was written.")
