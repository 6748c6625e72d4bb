"""--diff: what counts as a difference between a replay and the live output topics."""

from __future__ import annotations

from typing import Any

import orjson

from streams import topics
from streams.replay.diff import LiveRecord, compare
from streams.replay.engine import ReplayResult, Span
from streams.replay.output import output_lines
from tests.streams.replay.kit import LEAD, T0, Log, replay

END = T0 + 60_000
DELAY = 400


def scenario() -> tuple[Log, ReplayResult]:
    log = Log()
    log.start(LEAD, "on", T0)
    log.end(LEAD, "on", T0 + 1_000)
    log.start(LEAD, "late", T0 + 10)
    log.end(LEAD, "late", T0 + 8_010)
    log.start(LEAD, "missing", T0 + 20)
    return log, replay(log, T0, END)


def as_live(result: ReplayResult) -> list[LiveRecord]:
    out = []
    for n, line in enumerate(output_lines(result)):
        rec = orjson.loads(line)
        out.append(LiveRecord(rec["topic"], rec["key"], rec["value"], 0, n))
    return out


def edited(records: list[LiveRecord], key: str, topic: str, **fields: Any) -> list[LiveRecord]:
    out = []
    for r in records:
        if r.key == key and r.topic == topic and r.value is not None:
            r = LiveRecord(r.topic, r.key, {**r.value, **fields}, r.partition, r.offset)
        out.append(r)
    return out


def spans(log: Log) -> dict[tuple[str, int], Span]:
    return log.spans(T0, END, 3_600_000)


def diff(log: Log, result: ReplayResult, live: list[LiveRecord]) -> Any:
    return compare(result, spans(log), live, judge_delay_ms=DELAY)


def test_the_live_final_state_equals_the_replay() -> None:
    log, result = scenario()
    report = diff(log, result, as_live(result))
    assert report.differences == []
    assert report.compared == 3


def test_a_different_lag_is_a_difference_naming_the_entity() -> None:
    log, result = scenario()
    live = edited(as_live(result), f"{LEAD.name}:on", topics.MEASUREMENTS, lag_ms=999)
    (d,) = diff(log, result, live).differences
    assert (d.kind, d.breach_id, d.record, d.field) == (
        "different",
        f"{LEAD.name}:on",
        "measurement",
        "lag_ms",
    )
    assert "lead_to_posthog:on (start on-s): measurement.lag_ms: live 999, replay 1000" in d.line()


def test_read_order_and_detection_time_are_not_differences() -> None:
    log, result = scenario()
    live = edited(as_live(result), f"{LEAD.name}:on", topics.MEASUREMENTS, out_of_order=True)
    live = edited(live, f"{LEAD.name}:late", topics.BREACHES, detected_at=1)
    assert diff(log, result, live).differences == []
    changed = edited(live, f"{LEAD.name}:late", topics.BREACHES, status="open")
    assert [d.field for d in diff(log, result, changed).differences] == ["status"]


def test_missing_and_extra() -> None:
    log, result = scenario()
    live = [r for r in as_live(result) if r.key != f"{LEAD.name}:missing"]
    (d,) = diff(log, result, live).differences
    assert (d.kind, d.record) == ("extra", "breach")
    del result.measurements[f"{LEAD.name}:on"]
    kinds = {(x.kind, x.breach_id) for x in diff(log, result, live).differences}
    assert ("missing", f"{LEAD.name}:on") in kinds


def test_a_tombstone_deletes_the_live_breach() -> None:
    log, result = scenario()
    live = as_live(result)
    live.append(LiveRecord(topics.BREACHES, f"{LEAD.name}:missing", None, 0, 99))
    (d,) = diff(log, result, live).differences
    assert (d.kind, d.breach_id, d.replay["kind"]) == ("extra", f"{LEAD.name}:missing", "overdue")


def test_live_verdicts_on_records_after_the_range_are_cut_at_its_end() -> None:
    log, result = scenario()
    live = as_live(result)
    # live went on: the missing start's completion came after the range (offset 5 of the
    # completion topic's partition lies past the range's end, 2)
    after = {"topic": LEAD.end_topic, "partition": 0, "offset": 5}
    late = {
        **next(r.value for r in live if r.key == f"{LEAD.name}:missing" and r.value),
        "kind": "late",
        "status": "closed",
        "completed_at": T0 + 70_000,
        "lag_ms": 69_980,
        "end_source": after,
    }
    live = [r for r in live if r.key != f"{LEAD.name}:missing"]
    live.append(LiveRecord(topics.BREACHES, f"{LEAD.name}:missing", late, 0, 50))
    assert diff(log, result, live).differences == []
    # but a completion *inside* the range that the replay missed is a difference
    inside = {**late, "end_source": {**after, "offset": 1}}
    live[-1] = LiveRecord(topics.BREACHES, f"{LEAD.name}:missing", inside, 0, 50)
    assert {d.field for d in diff(log, result, live).differences} >= {"kind", "status"}


def test_a_young_overdue_the_live_monitor_has_not_declared_yet() -> None:
    log = Log()
    log.start(LEAD, "young", END - LEAD.target_ms - 100)  # due 100 ms before the end
    log.start(LEAD, "old", END - LEAD.target_ms - 5_000)
    result = replay(log, T0, END)
    report = diff(log, result, [])
    assert report.not_yet_judged == 1
    assert [(d.kind, d.breach_id) for d in report.differences] == [("extra", f"{LEAD.name}:old")]


def test_a_start_before_the_lookback_is_not_compared() -> None:
    log, result = scenario()
    live = as_live(result)
    rec = next(r for r in live if r.topic == topics.MEASUREMENTS)
    value = dict(rec.value or {})
    value["start_source"] = {"topic": LEAD.start_topic, "partition": 0, "offset": 0}
    value["end_source"] = {"topic": LEAD.end_topic, "partition": 0, "offset": 0}
    narrow = {
        tp: Span(1, 1, s.end) if tp == (LEAD.start_topic, 0) else s for tp, s in spans(log).items()
    }
    report = compare(
        result, narrow, [LiveRecord(rec.topic, "lead_to_posthog:x", value, 0, 0)], judge_delay_ms=0
    )
    assert report.outside_lookback == 1


def page(offset: int, *named: tuple[str, int], status: str = "firing") -> LiveRecord:
    """A ``freshness.alerts`` state of the lead flow's stuck alert naming ``(key, deadline)``."""
    oldest = [{"key": k, "deadline": d, "detected_at": d, "overdue_ms": 1} for k, d in named]
    value = {
        "alert_id": f"app/{LEAD.name}/stuck",
        "flow": LEAD.name,
        "alert": "stuck",
        "status": status,
        "details": {"oldest": oldest},
    }
    return LiveRecord(topics.ALERTS, f"app/{LEAD.name}/stuck", value, 0, offset)


def test_a_page_naming_an_on_time_start_is_a_difference() -> None:
    log, result = scenario()
    target = LEAD.target_ms
    live = [*as_live(result), page(7, ("on", T0 + target))]
    (d,) = diff(log, result, live).differences
    assert (d.kind, d.record, d.breach_id, d.start_event_id) == (
        "missing",
        "page",
        f"{LEAD.name}:on",
        "on-s",
    )
    assert d.live == {"alert_id": f"app/{LEAD.name}/stuck", "version": 7, "deadline": T0 + target}
    assert "page app/lead_to_posthog/stuck (version 7) named it overdue" in d.line()
    assert "the replay judges it (lag 1000 ms, on time)" in d.line()


def test_pages_of_breached_starts_match_and_others_are_counted() -> None:
    log, result = scenario()
    target = LEAD.target_ms
    live = [
        *as_live(result),
        page(3, ("late", T0 + 10 + target), ("missing", T0 + 20 + target)),
        page(4, ("missing", T0 + 20 + target)),  # named again: checked once
        page(5, ("on", T0 + target), status="resolved"),  # not a page
        page(6, ("on", T0 + 1 + target), ("nobody", T0)),  # another cycle; unknown key
    ]
    report = diff(log, result, live)
    assert report.differences == []
    assert (report.pages_checked, report.pages_unmatched) == (2, 2)
