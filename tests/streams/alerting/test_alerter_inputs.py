"""What the alerter judges, rebuilt from records: open overdue breaches per flow (late,
lost and retracted ones leave), stats per flow, and the alerting topics' ledger."""

from __future__ import annotations

import orjson

from streams import topics
from streams.alerting.inputs import AlerterInputs
from streams.alerting.records import AlertState, encode_alert
from streams.core.model import Breach
from streams.pipeline.codec import breach_kv
from streams.stats import records as stats
from streams.testing.peers.alerts import alert_event

T = 1_776_941_217_000


def breach(key: str, kind: str = "overdue", flow: str = "lead_to_posthog") -> Breach:
    closed = kind != "overdue"
    return Breach(
        breach_id=f"{flow}:{key}",
        flow=flow,
        key=key,
        kind=kind,  # type: ignore[arg-type]
        status="closed" if closed else "open",
        started_at=T,
        deadline=T + 5_000,
        detected_at=T + 5_200,
        completed_at=T + 9_000 if kind == "late" else None,
        lag_ms=9_000 if kind == "late" else None,
        target_ms=5_000,
        start_event_id=f"{key}-s",
    )


def apply_breach(inputs: AlerterInputs, b: Breach) -> None:
    inputs.apply(topics.BREACHES, *breach_kv(b), 0)


def test_open_overdue_breaches_are_indexed_per_flow_until_they_close() -> None:
    inputs = AlerterInputs()
    apply_breach(inputs, breach("a"))
    apply_breach(inputs, breach("b"))
    apply_breach(inputs, breach("c", flow="dlq_first_retry"))
    assert sorted(o.key for o in inputs.open_overdue("lead_to_posthog")) == ["a", "b"]
    [a] = [o for o in inputs.open_overdue("lead_to_posthog") if o.key == "a"]
    assert (a.deadline, a.detected_at) == (T + 5_000, T + 5_200)
    apply_breach(inputs, breach("a", "late"))
    apply_breach(inputs, breach("b", "lost"))
    assert inputs.open_overdue("lead_to_posthog") == []
    assert [o.key for o in inputs.open_overdue("dlq_first_retry")] == ["c"]


def test_a_retracted_breach_tombstone_removes_it() -> None:
    inputs = AlerterInputs()
    apply_breach(inputs, breach("k:with:colons"))
    inputs.apply(topics.BREACHES, b"lead_to_posthog:k:with:colons", None, 1)
    assert inputs.open_overdue("lead_to_posthog") == []


def test_stats_records_and_their_tombstones_reach_the_flows_stats() -> None:
    inputs = AlerterInputs()
    gauge = stats.GaugeRecord("lead_to_posthog", 3, 7, None, 0, 0, T, T)
    inputs.apply(topics.STATS, gauge.key.encode(), stats.encode(gauge), 0)
    flow_stats = inputs.flow_stats("lead_to_posthog")
    assert flow_stats is not None
    assert flow_stats.gauges[3].pending == 7
    inputs.apply(topics.STATS, gauge.key.encode(), None, 1)
    assert flow_stats.gauges == {}
    assert inputs.flow_stats("nope") is None


def test_alerting_topics_go_to_the_ledger_and_bad_records_are_counted() -> None:
    inputs = AlerterInputs()
    state = AlertState(alert_event("app/lead_to_posthog/stuck"), ("pagerduty",))
    inputs.apply(topics.ALERTS, *encode_alert(state), 12)
    assert inputs.ledger.states["app/lead_to_posthog/stuck"].event.version == 12
    inputs.apply(topics.BREACHES, b"x:y", b"{broken", 0)
    inputs.apply(topics.STATS, b"gauge:x:0", orjson.dumps({"kind": "gauge"}), 0)
    assert inputs.bad_records == 2
    inputs.apply("some.other.topic", b"k", b"v", 0)
    assert inputs.bad_records == 2
