"""The contracts of ``freshness.alerts`` and ``freshness.alert-deliveries``: their records,
keys, one encoder and one decoder each (JSON: ``schemas/output/alert.schema.json`` and
``schemas/output/alert_delivery.schema.json``, documented in ``docs/events.md``).

The alerter writes both topics (:mod:`streams.alerting.outbox`); it and the API read them
back with the decoders here, and nothing else knows the shapes.

* ``freshness.alerts``, compacted, key = alert id: one :class:`AlertState` per state change
  of an alert (DESIGN section 9). The value carries no version: a state's version is the
  record's **offset**, which grows with every state of the same alert (one key, one
  partition), so it needs no coordination between replicas and survives compaction.
* ``freshness.alert-deliveries``, compacted: per sink and alert, a :class:`DeliveryRecord`
  (key ``delivery:<sink>:<alert id>``) saying the newest version that sink is done with;
  per sink, a :class:`SinkCounts` (key ``counts:<sink>``) with its all-time request counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson

from streams.connectors.sink import AlertEvent, Severity, Status

SEVERITIES: tuple[Severity, ...] = get_args(Severity)
STATUSES: tuple[Status, ...] = get_args(Status)
Result = Literal["delivered", "dead_lettered"]
RESULTS: tuple[Result, ...] = get_args(Result)
RESPONSE_MAX = 4096
"""Characters of a refused request's response kept in its delivery record."""
COUNTER_NAMES = ("delivered", "resent", "retried", "dead_lettered")
"""The ``result`` label values of ``freshness_alert_deliveries_total``."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """One state of one alert as ``freshness.alerts`` holds it, and the sinks it goes to.

    ``event.version`` is the record's offset once written (0 before). ``routes`` names the
    sinks (``pagerduty``, ``alertmanager``, ``webhook``) this state is delivered to; a sink
    that is not enabled is skipped.
    """

    event: AlertEvent
    routes: tuple[str, ...]

    @property
    def alert_id(self) -> str:
        return self.event.alert_id

    def at_version(self, version: int) -> AlertState:
        return AlertState(dataclasses.replace(self.event, version=version), self.routes)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """``sink`` is done with every state of ``alert_id`` up to ``version``: the state of that
    version (``status``) was delivered, or refused for good (``dead_lettered``, with the
    peer's answer)."""

    sink: str
    alert_id: str
    version: int
    status: Status
    result: Result
    at: int
    http_status: int | None = None
    response: str = ""

    @property
    def key(self) -> str:
        return delivery_key(self.sink, self.alert_id)


@dataclass(frozen=True, slots=True)
class SinkCounts:
    """All-time request counts of one sink, by result; they never decrease."""

    sink: str
    delivered: int = 0
    resent: int = 0
    retried: int = 0
    dead_lettered: int = 0
    updated_at: int = 0

    @property
    def key(self) -> str:
        return counts_key(self.sink)

    def by_result(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTER_NAMES}

    def plus(self, more: Mapping[str, int], updated_at: int) -> SinkCounts:
        """These counts with ``more`` (by result name) added."""
        now = {n: getattr(self, n) + int(more.get(n, 0)) for n in COUNTER_NAMES}
        return SinkCounts(self.sink, **now, updated_at=updated_at)


ProgressRecord = DeliveryRecord | SinkCounts


def delivery_key(sink: str, alert_id: str) -> str:
    return f"delivery:{sink}:{alert_id}"


def counts_key(sink: str) -> str:
    return f"counts:{sink}"


# ---- freshness.alerts ---------------------------------------------------------------------


def encode_alert(state: AlertState) -> tuple[bytes, bytes]:
    """``(key, value)`` of one state change."""
    e = state.event
    value = {
        "alert_id": e.alert_id,
        "flow": e.flow,
        "alert": e.alert,
        "severity": e.severity,
        "status": e.status,
        "since": e.since,
        "updated_at": e.updated_at,
        "summary": e.summary,
        "details": e.details,
        "routes": list(state.routes),
    }
    return e.alert_id.encode(), orjson.dumps(value)


def decode_alert(value: bytes, offset: int) -> AlertState:
    """The state :func:`encode_alert` wrote, at version ``offset``; ``ValueError`` otherwise."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"alert record is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("alert record is not a JSON object")
    details = obj.get("details", {})
    routes = obj.get("routes", [])
    if not isinstance(details, dict) or not isinstance(routes, list):
        raise ValueError("alert record: details must be an object and routes a list")
    event = AlertEvent(
        alert_id=_text(obj, "alert_id"),
        version=offset,
        flow=_text(obj, "flow"),
        alert=_text(obj, "alert"),
        severity=_choice(obj, "severity", SEVERITIES),
        status=_choice(obj, "status", STATUSES),
        since=_int(obj, "since"),
        updated_at=_int(obj, "updated_at"),
        summary=str(obj.get("summary", "")),
        details=details,
    )
    return AlertState(event, tuple(str(r) for r in routes))


# ---- freshness.alert-deliveries -----------------------------------------------------------


def encode_progress(record: ProgressRecord) -> tuple[bytes, bytes]:
    """``(key, value)`` of a delivery record or a sink's counts."""
    if isinstance(record, SinkCounts):
        counts = {"kind": "counts", "sink": record.sink, **record.by_result()}
        return record.key.encode(), orjson.dumps({**counts, "updated_at": record.updated_at})
    value = {
        "kind": "delivery",
        "sink": record.sink,
        "alert_id": record.alert_id,
        "version": record.version,
        "status": record.status,
        "result": record.result,
        "at": record.at,
        "http_status": record.http_status,
        "response": record.response[:RESPONSE_MAX],
    }
    return record.key.encode(), orjson.dumps(value)


def decode_progress(value: bytes) -> ProgressRecord:
    """The record :func:`encode_progress` wrote; ``ValueError`` otherwise."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"delivery record is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError("delivery record is not a JSON object")
    kind = obj.get("kind")
    if kind == "counts":
        counts = {name: _int(obj, name) for name in COUNTER_NAMES}
        return SinkCounts(_text(obj, "sink"), **counts, updated_at=_int(obj, "updated_at"))
    if kind != "delivery":
        raise ValueError(f"delivery record: unknown kind {kind!r}")
    status = obj.get("http_status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise ValueError("delivery record: http_status must be an integer or null")
    return DeliveryRecord(
        sink=_text(obj, "sink"),
        alert_id=_text(obj, "alert_id"),
        version=_int(obj, "version"),
        status=_choice(obj, "status", STATUSES),
        result=_choice(obj, "result", RESULTS),
        at=_int(obj, "at"),
        http_status=status,
        response=str(obj.get("response", "")),
    )


# ---- field checks -------------------------------------------------------------------------


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {name!r} must be a non-empty string, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"field {name!r} must be a non-negative integer, got {value!r}")
    return value


def _choice(obj: Mapping[str, Any], name: str, allowed: tuple[Any, ...]) -> Any:
    value = obj.get(name)
    if value not in allowed:
        raise ValueError(f"field {name!r} must be one of {', '.join(allowed)}, got {value!r}")
    return value
