"""Read model: idempotence, determinism across arrival order, bad records, status rule."""

from __future__ import annotations

import random
from typing import Any

import orjson

from api.readmodel import ReadModel
from tests.api.records import NOW, Records, make_model

MINUTE = NOW // 60_000


def scenario(rec: Records) -> list[dict[str, Any]]:
    rng = random.Random(11)
    out: list[dict[str, Any]] = []
    for p in range(4):
        out.extend(
            rec.window(
                [rng.uniform(10, 9_000) for _ in range(30)],
                partition=p,
                minute=MINUTE - m,
                lost=rng.randint(0, 1),
            )
            for m in range(0, 90, 9)
        )
        out.append(rec.gauge(partition=p, pending=p, oldest_pending_started_at=NOW - 1000 * p))
    for i in range(40):
        out.append(rec.breach(f"b{i}", detected_at=NOW - rng.randint(0, 9) * 100))
        out.append(rec.measurement(f"m{i}", lag_ms=rng.randint(1, 9_000)))
    out.extend(rec.quarantine(i) for i in range(5))
    return out


def feed(model: ReadModel, records: list[dict[str, Any]]) -> None:
    for r in records:
        model.apply(Records.topic_of(r), r)


def answers(model: ReadModel) -> bytes:
    from api.breaches import BreachFilter

    flows = model.flows_view().model_dump()
    page = model.breaches_page(BreachFilter(), cursor=None, limit=1000).model_dump()
    return orjson.dumps([flows, page])


def test_two_read_models_fed_in_different_orders_answer_the_same(rec: Records) -> None:
    records = scenario(rec)
    a, b = make_model(), make_model()
    feed(a, records)
    shuffled = records[:]
    random.Random(5).shuffle(shuffled)
    feed(b, shuffled + shuffled[:50])  # and with replays
    assert answers(a) == answers(b)
    assert sum(a.quarantine.values()) == sum(b.quarantine.values()) == 5


def test_bad_records_are_counted_not_raised(model: ReadModel, rec: Records) -> None:
    model.apply_raw("freshness.breaches", b"k", b"{not json")
    model.apply("freshness.breaches", ["not", "an", "object"])
    model.apply("freshness.breaches", {**rec.breach("a"), "kind": "weird"})
    model.apply("freshness.breaches", {"breach_id": "x"})
    model.apply("freshness.stats", {"kind": "window", "flow": "lead_to_posthog"})
    model.apply("freshness.stats", {"kind": "mystery", "flow": "lead_to_posthog"})
    model.apply("freshness.measurements", {"flow": "lead_to_posthog"})
    model.apply("freshness.quarantine", {"reason": "not_json"})
    assert model.progress.bad_records == 8
    assert model.flows_view().flows[0].open_breaches == 0
    model.apply("some.other.topic", {"x": 1})  # ignored, not bad
    assert model.progress.bad_records == 8


def test_apply_raw_decodes_json_and_keys(model: ReadModel, rec: Records) -> None:
    model.apply_raw("freshness.breaches", b"lead_to_posthog:a", orjson.dumps(rec.breach("a")))
    assert model.breach_view("lead_to_posthog:a").kind == "overdue"


def test_status_ok_when_nothing_is_wrong(model: ReadModel, rec: Records) -> None:
    model.apply("freshness.stats", rec.window([100.0] * 200))
    model.apply("freshness.stats", rec.gauge())
    view = model.flow_view("lead_to_posthog")
    assert (view.status, view.status_reasons) == ("ok", [])


def test_status_warning_rules(rec: Records) -> None:
    # one open breach, not yet older than the target past its deadline
    m = make_model()
    m.apply("freshness.stats", rec.gauge())
    m.apply("freshness.breaches", rec.breach("a", started_at=NOW - 9_000))
    assert m.flow_view("lead_to_posthog").status == "warning"
    # monitor lag above target
    m = make_model()
    m.apply("freshness.stats", rec.gauge(monitor_lag_ms=5_001))
    assert m.flow_view("lead_to_posthog").status == "warning"
    # 5 min ratio below objective while the hour is fine
    m = make_model()
    m.apply("freshness.stats", rec.window([100.0] * 5_000, minute=MINUTE - 30))
    m.apply("freshness.stats", rec.window([100.0] * 98 + [9_000.0] * 2))
    m.apply("freshness.stats", rec.gauge())
    view = m.flow_view("lead_to_posthog")
    assert view.status == "warning", view.status_reasons
    assert view.status_reasons[0].startswith("5 min on-time ratio")


def test_status_breaching_rules(rec: Records) -> None:
    m = make_model()
    m.apply("freshness.stats", rec.window([100.0] * 97 + [9_000.0] * 3, minute=MINUTE - 30))
    m.apply("freshness.stats", rec.gauge())
    assert m.flow_view("lead_to_posthog").status == "breaching"
    m = make_model()
    m.apply("freshness.stats", rec.gauge())
    m.apply("freshness.breaches", rec.breach("a", started_at=NOW - 10_001))
    view = m.flow_view("lead_to_posthog")
    assert view.status == "breaching"
    assert view.oldest_open_breach_deadline == NOW - 5_001


def test_flow_view_cache_follows_new_data(model: ReadModel, rec: Records) -> None:
    assert model.flow_view("lead_to_posthog").pending == 0
    model.apply("freshness.stats", rec.gauge(pending=9))
    assert model.flow_view("lead_to_posthog").pending == 9


def apply_breach(model: ReadModel, rec: Records, key: str) -> None:
    record = rec.breach(key)
    model.apply(Records.topic_of(record), record, record["breach_id"])


def test_a_recompute_bound_serves_the_last_view_while_records_keep_arriving() -> None:
    rec = Records()
    bounded = ReadModel(make_model().flows.values(), clock=lambda: NOW, recompute_ms=60_000)
    exact = ReadModel(make_model().flows.values(), clock=lambda: NOW)
    for model in (bounded, exact):
        apply_breach(model, rec, "b1")
        assert model.flow_view("lead_to_posthog").open_breaches == 1
        apply_breach(model, rec, "b2")
    assert exact.flow_view("lead_to_posthog").open_breaches == 2  # recomputed at each change
    assert bounded.flow_view("lead_to_posthog").open_breaches == 1  # within its bound
    bounded.progress.silent(NOW, "kafka: unreachable")  # a connection change is never held
    view = bounded.flow_view("lead_to_posthog")
    assert view.open_breaches == 2
    assert view.source.connected is False
