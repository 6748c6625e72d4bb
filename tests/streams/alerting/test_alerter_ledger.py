"""The ledger of the alerting topics: newest state per alert, how far each sink got, what
each sink is owed after a restart, and counts that never decrease."""

from __future__ import annotations

import pytest

from streams.alerting.ledger import Ledger
from streams.alerting.records import (
    AlertState,
    DeliveryRecord,
    SinkCounts,
    encode_alert,
    encode_progress,
)
from streams.testing.peers.alerts import alert_event

A = "app/lead_to_posthog/stuck"
B = "app/dlq_first_retry/backlog"
ALL = ("pagerduty", "alertmanager", "webhook")


def put(ledger: Ledger, alert_id: str, offset: int, status: str = "firing", routes=ALL) -> None:  # type: ignore[no-untyped-def]
    state = AlertState(alert_event(alert_id, status=status, severity="error"), tuple(routes))
    key, value = encode_alert(state)
    ledger.apply_alert(key, value, offset)


def done(ledger: Ledger, sink: str, alert_id: str, version: int, result: str = "delivered") -> None:
    record = DeliveryRecord(sink, alert_id, version, "firing", result, 1_000)  # type: ignore[arg-type]
    ledger.apply_progress(*encode_progress(record))


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    put(ledger, A, 3)
    put(ledger, A, 9, "resolved")
    put(ledger, B, 5)
    return ledger


def test_the_newest_state_of_each_alert_is_kept_whatever_the_order(ledger: Ledger) -> None:
    put(ledger, A, 3)  # a replay of an older record changes nothing
    assert ledger.states[A].event.version == 9
    assert ledger.states[A].event.status == "resolved"
    assert [s.alert_id for s in ledger.firing()] == [B]


def test_a_sink_is_owed_the_newest_state_it_has_not_done_oldest_first(ledger: Ledger) -> None:
    done(ledger, "pagerduty", A, 3)
    assert [(e.alert_id, e.version) for e in ledger.owed("pagerduty", "app")] == [(B, 5), (A, 9)]
    done(ledger, "pagerduty", A, 9)
    done(ledger, "pagerduty", B, 5)
    assert ledger.owed("pagerduty", "app") == []


def test_a_refused_state_is_done_and_never_owed_again(ledger: Ledger) -> None:
    done(ledger, "webhook", A, 9, "dead_lettered")
    done(ledger, "webhook", B, 5)
    assert ledger.owed("webhook", "app") == []
    [progress] = [p for p in ledger.progress(ledger.states[A]) if p.sink == "webhook"]
    assert (progress.state, progress.version) == ("dead_lettered", 9)


def test_alertmanager_gets_every_firing_alert_again_delivered_or_not(ledger: Ledger) -> None:
    done(ledger, "alertmanager", A, 9)
    done(ledger, "alertmanager", B, 5)
    assert [e.alert_id for e in ledger.owed("alertmanager", "app", resend_firing=True)] == [B]
    assert ledger.owed("alertmanager", "app") == []


def test_only_the_sinks_of_a_states_routes_are_owed_it() -> None:
    ledger = Ledger()
    put(ledger, B, 1, routes=("alertmanager", "webhook"))
    assert ledger.owed("pagerduty", "app") == []
    assert [e.alert_id for e in ledger.owed("webhook", "app")] == [B]


def test_progress_says_pending_until_the_sink_took_the_current_version(ledger: Ledger) -> None:
    done(ledger, "pagerduty", A, 3)
    by_sink = {p.sink: p for p in ledger.progress(ledger.states[A])}
    assert (by_sink["pagerduty"].state, by_sink["pagerduty"].version) == ("pending", 3)
    assert (by_sink["webhook"].state, by_sink["webhook"].version) == ("pending", None)
    done(ledger, "pagerduty", A, 9)
    assert ledger.progress(ledger.states[A])[0].state == "delivered"


def test_an_older_delivery_record_does_not_move_progress_back(ledger: Ledger) -> None:
    done(ledger, "pagerduty", A, 9)
    done(ledger, "pagerduty", A, 3)
    assert ledger.done_version("pagerduty", A) == 9


def test_counts_keep_the_highest_of_each_field() -> None:
    ledger = Ledger()
    ledger.apply_progress(*encode_progress(SinkCounts("pagerduty", delivered=5, retried=1)))
    ledger.apply_progress(*encode_progress(SinkCounts("pagerduty", delivered=3, retried=4)))
    [counts] = ledger.total_counts()
    assert (counts.delivered, counts.retried) == (5, 4)


def test_bad_records_are_counted_and_skipped_and_tombstones_delete() -> None:
    ledger = Ledger()
    ledger.apply_alert(A.encode(), b"{not json", 1)
    ledger.apply_progress(b"delivery:x:y", b"[]")
    assert ledger.bad_records == 2
    put(ledger, A, 2)
    ledger.apply_alert(A.encode(), None, 3)
    assert ledger.states == {}


def test_another_deployments_alerts_are_never_owed(ledger: Ledger) -> None:
    put(ledger, "other/lead_to_posthog/stuck", 11)
    assert [e.alert_id for e in ledger.owed("pagerduty", "app")] == [B, A]
    assert [e.alert_id for e in ledger.owed("pagerduty", "other")] == [
        "other/lead_to_posthog/stuck"
    ]
    assert ledger.owed("alertmanager", "ap", resend_firing=True) == []  # a prefix, not an app
