"""Score math on crafted truth and observations, the output reader's filtering, and the exit
status of ``freshness score``."""

from __future__ import annotations

import argparse
import base64
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import topics
from streams.settings import Settings
from streams.simulate import observe
from streams.simulate.percentile import percentile
from streams.simulate.score import Observed, score
from streams.simulate.truth import Truth, TruthMalformed, TruthStart, TruthWriter
from streams.stats import records as stats

T0 = 1_776_941_217_000
DAY = 86_400_000
FLOWS = {"lead_to_posthog": 5_000, "dlq_first_retry": 60_000}


def start(n: int, outcome: str, lag: int | None, flow: str = "lead_to_posthog") -> TruthStart:
    key = f"sim-r-{n}"
    at = T0 + n * 100
    return TruthStart(flow, key, outcome, outcome, lag, at, at + FLOWS[flow], at + DAY, f"{key}-s")


def make_truth(starts: list[TruthStart], malformed: list[TruthMalformed] | None = None) -> Truth:
    header = {
        "run_id": "r",
        "key_prefix": "sim-r-",
        "started_at": T0,
        "flows": [{"name": n, "target_ms": t} for n, t in FLOWS.items()],
    }
    return Truth(header, starts, malformed or [])


def measurement(s: TruthStart) -> dict[str, Any]:
    assert s.lag_ms is not None
    target = FLOWS[s.flow]
    return {
        "flow": s.flow,
        "key": s.key,
        "started_at": s.started_at,
        "completed_at": s.started_at + s.lag_ms,
        "lag_ms": s.lag_ms,
        "on_time": s.lag_ms <= target,
    }


def breach(s: TruthStart, kind: str, detected_delay: int = 300) -> dict[str, Any]:
    late = kind == "late"
    assert not late or s.lag_ms is not None
    return {
        "breach_id": s.ident,
        "flow": s.flow,
        "key": s.key,
        "kind": kind,
        "status": "open" if kind == "overdue" else "closed",
        "started_at": s.started_at,
        "deadline": s.deadline,
        "detected_at": s.deadline + detected_delay,
        "completed_at": s.started_at + s.lag_ms if late and s.lag_ms is not None else None,
        "lag_ms": s.lag_ms if late else None,
        "start_event_id": s.start_event_id,
    }


def perfect(truth: Truth) -> Observed:
    obs = Observed()
    for s in truth.starts:
        if s.outcome in ("on_time", "late"):
            obs.measurements[s.ident] = measurement(s)
        if s.outcome in ("late", "overdue"):
            obs.breaches[s.ident] = breach(s, s.outcome)
            obs.breach_ids_ever.add(s.ident)
            obs.first_overdue_ts[s.ident] = s.deadline + 450
    for m in truth.malformed:
        obs.quarantine[(m.topic, m.partition, m.offset)] = {"reason": m.reason}
    return obs


STARTS = [
    start(0, "on_time", 1_200),
    start(1, "on_time", -300),
    start(2, "late", 7_000),
    start(3, "overdue", None),
    start(4, "on_time", 50_000, "dlq_first_retry"),
    start(5, "orphan", None),
]
BAD = [TruthMalformed("funnel.lead.captured", 3, 17, "not_json", "sim-r-bad-0")]
NOW = T0 + 60_000


def test_perfect_observation_scores_one_everywhere() -> None:
    truth = make_truth(STARTS, BAD)
    report = score(truth, perfect(truth), NOW)
    assert report.ok()
    cells = report.cells
    assert (
        cells[("lead_to_posthog", "on_time")].expected,
        cells[("lead_to_posthog", "on_time")].matched,
    ) == (2, 2)
    assert cells[("lead_to_posthog", "late")].precision == 1.0
    assert cells[("lead_to_posthog", "overdue")].recall == 1.0
    assert cells[("lead_to_posthog", "lost")].precision is None
    assert cells[("quarantine", "not_json")].recall == 1.0
    assert report.detection_ms == [300, 300]
    assert report.emission_ms == [450, 450]
    assert "PASS" in report.format()


def test_false_overdue_on_an_on_time_start_fails_precision() -> None:
    truth = make_truth(STARTS)
    obs = perfect(truth)
    obs.breaches[STARTS[0].ident] = breach(STARTS[0], "overdue")
    obs.breach_ids_ever.add(STARTS[0].ident)
    report = score(truth, obs, NOW)
    assert not report.ok()
    overdue = report.cells[("lead_to_posthog", "overdue")]
    assert (overdue.reported, overdue.matched, overdue.precision) == (2, 1, 0.5)
    on_time = report.cells[("lead_to_posthog", "on_time")]
    assert (on_time.reported, on_time.matched) == (2, 1)
    assert "FAIL" in report.format()


def test_retracted_breach_on_an_on_time_start_still_counts() -> None:
    """The latest state may be gone (tombstone), but a breach record was published."""
    truth = make_truth(STARTS)
    obs = perfect(truth)
    obs.breach_ids_ever.add(STARTS[1].ident)
    report = score(truth, obs, NOW)
    assert report.cells[("lead_to_posthog", "on_time")].precision == 0.5


def test_missed_overdue_fails_recall_and_wrong_late_lag_is_no_match() -> None:
    truth = make_truth(STARTS)
    obs = perfect(truth)
    del obs.breaches[STARTS[3].ident]
    obs.breaches[STARTS[2].ident]["lag_ms"] = 6_999
    report = score(truth, obs, NOW)
    assert report.cells[("lead_to_posthog", "overdue")].recall == 0.0
    late = report.cells[("lead_to_posthog", "late")]
    assert (late.precision, late.recall) == (0.0, 0.0)
    assert not report.ok()
    assert any("none reported" in e for e in report.examples)


def test_measurement_lag_must_be_exact_and_orphans_must_be_silent() -> None:
    truth = make_truth(STARTS)
    obs = perfect(truth)
    obs.measurements[STARTS[0].ident]["lag_ms"] = 1_201
    obs.measurements[STARTS[5].ident] = {"flow": "lead_to_posthog", "lag_ms": 1, "on_time": True}
    report = score(truth, obs, NOW)
    measured = report.cells[("lead_to_posthog", "measured")]
    assert (measured.expected, measured.reported, measured.matched) == (3, 4, 2)


def test_overdue_becomes_lost_once_give_up_has_passed() -> None:
    truth = make_truth(STARTS)
    obs = perfect(truth)
    s = STARTS[3]
    assert not score(truth, obs, s.give_up_at + 60_000).ok(), "still overdue after give-up"
    obs.breaches[s.ident] = breach(s, "lost")
    assert score(truth, obs, s.give_up_at + 60_000).ok()
    assert score(truth, obs, s.give_up_at + 1_000).ok(), "either state near the give-up"
    assert not score(truth, obs, s.give_up_at - 1_000).ok(), "lost before the give-up"


def test_quarantine_reason_and_position_must_match() -> None:
    truth = make_truth(STARTS, BAD)
    obs = perfect(truth)
    obs.quarantine[("funnel.lead.captured", 3, 17)] = {"reason": "not_object"}
    obs.quarantine[("funnel.lead.captured", 3, 18)] = {"reason": "not_json"}
    report = score(truth, obs, NOW)
    assert report.cells[("quarantine", "not_json")].recall == 0.0
    assert report.cells[("quarantine", "not_json")].precision == 0.0
    assert report.cells[("quarantine", "not_object")].precision == 0.0


@pytest.mark.parametrize(("q", "want"), [(0.5, 50), (0.95, 95), (0.99, 99), (1.0, 100), (0.001, 1)])
def test_percentile_is_nearest_rank(q: float, want: int) -> None:
    assert percentile(list(range(100, 0, -1)), q) == want


def test_percentile_survives_float_products_and_empty_input() -> None:
    assert percentile(range(1, 101), 0.07) == 7  # 0.07 * 100 == 7.000000000000001
    assert percentile([3.5, 1.25], 0.5) == 1.25
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        percentile([1], 99)


def test_reader_keeps_only_this_runs_records() -> None:
    truth = make_truth(STARTS, BAD)
    reader = observe.OutputReader(truth)
    s = STARTS[3]
    reader.add(topics.BREACHES, s.ident.encode(), orjson.dumps(breach(s, "overdue")), 111)
    reader.add(topics.BREACHES, b"lead_to_posthog:sim-other-3", orjson.dumps({"kind": "x"}), 1)
    reader.add(topics.MEASUREMENTS, b"lead_to_posthog:k", orjson.dumps({"lag_ms": 1}), 1)
    raw = base64.b64encode(b'["sim-r-bad-9"]').decode()
    q = {"topic": "funnel.lead.captured", "partition": 0, "offset": 5, "reason": "not_object"}
    reader.add(topics.QUARANTINE, b"x", orjson.dumps(dict(q, raw_b64=raw)), 1)
    other = base64.b64encode(b"[1]").decode()
    reader.add(topics.QUARANTINE, b"y", orjson.dumps(dict(q, offset=6, raw_b64=other)), 1)
    reader.add(
        topics.QUARANTINE, b"z", orjson.dumps(dict(q, partition=3, offset=17, raw_b64=None)), 1
    )
    assert set(reader.obs.breaches) == {s.ident}
    assert reader.obs.first_overdue_ts == {s.ident: 111}
    assert reader.obs.measurements == {}
    assert set(reader.obs.quarantine) == {
        ("funnel.lead.captured", 0, 5),
        ("funnel.lead.captured", 3, 17),
    }
    reader.add(topics.BREACHES, s.ident.encode(), None, 222)
    assert reader.obs.breaches == {}
    assert reader.obs.breach_ids_ever == {s.ident}
    gauge = stats.GaugeRecord("lead_to_posthog", 0, 0, None, 0, 0, T0, updated_at=T0)
    reader.add(topics.STATS, *stats.record_kv(gauge), 1)
    reader.add(topics.STATS, b"g", b"not a stats record", 1)  # skipped, not fatal
    assert not reader.caught_up(T0), "every flow needs a fresh gauge"
    reader.add(topics.STATS, *stats.record_kv(replace(gauge, flow="dlq_first_retry")), 1)
    assert reader.caught_up(T0)
    assert not reader.caught_up(T0 + 1)


def write_truth(path: Path, truth: Truth) -> None:
    w = TruthWriter(path)
    w.header(dict(truth.header))
    for s in truth.starts:
        w.start(s)
    for m in truth.malformed:
        w.malformed(m)
    w.write({"type": "summary"})
    w.close()


@pytest.mark.parametrize("broken", [False, True])
def test_score_command_exit_status(
    broken: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    truth = make_truth(STARTS, BAD)
    path = tmp_path / "truth.jsonl"
    write_truth(path, truth)
    obs = perfect(truth)
    if broken:
        del obs.measurements[STARTS[4].ident]

    async def fake_read(*args: object, **kwargs: object) -> tuple[observe.OutputReader, list[str]]:
        reader = observe.OutputReader(truth)
        reader.obs = obs
        return reader, []

    monkeypatch.setattr(observe, "read_outputs", fake_read)
    monkeypatch.setattr(observe, "now_ms", lambda: NOW)
    out = tmp_path / "report.txt"
    args = argparse.Namespace(truth=path, wait=1.0, settle=0.1, out=out)
    code = observe.run(args, Settings())
    printed = capsys.readouterr().out
    assert code == (1 if broken else 0)
    assert out.read_text() == printed
    assert ("FAIL" in printed) is broken
    assert "dlq_first_retry" in printed
