"""The per-flow summary and the --output file of a replay of the scripted scenario."""

from __future__ import annotations

from pathlib import Path

import orjson

from streams.replay.output import output_lines, write_output
from streams.replay.summary import summarize, summary_json
from streams.simulate.percentile import percentile
from streams.simulate.scenario import Scenario
from tests.streams.replay.kit import FLOWS, T0, replay
from tests.streams.replay.test_engine import scenario_log


def test_the_summary_counts_what_the_scenario_planned() -> None:
    log, sc = scenario_log(400)
    assert isinstance(sc, Scenario)
    result = replay(log, T0 + 1_000, T0 + 5_000)
    rows = {r.flow: r for r in summarize(result)}
    assert list(rows) == [f.name for f in FLOWS]
    for f in FLOWS:
        planned = [e for e in sc.expected.values() if e.flow == f.name]
        lags = [e.lag_ms for e in planned if e.lag_ms is not None]
        row = rows[f.name]
        assert row.starts == len(planned)
        assert row.late == sum(lag > f.target_ms for lag in lags)
        assert row.on_time == sum(lag <= f.target_ms for lag in lags)
        assert row.overdue == sum(e.outcome == "missing" for e in planned)
        assert (row.lost, row.pending) == (0, 0)
        assert row.clock_skew == sum(lag < 0 for lag in lags)
        assert row.lag_p95_ms == percentile(lags, 0.95)
        assert row.lag_max_ms == max(lags)
    assert rows[FLOWS[0].name].quarantined == len(sc.malformed)
    doc = summary_json(result, 2.0)
    assert doc["records_read"] == len(sc.records)
    assert doc["records_per_s"] == round(len(sc.records) / 2.0)


def test_the_output_file_is_sorted_json_lines_of_the_contract(tmp_path: Path) -> None:
    log, _ = scenario_log(100)
    result = replay(log, T0 + 1_000, T0 + 5_000)
    path = tmp_path / "out.jsonl"
    n = write_output(result, path)
    lines = path.read_bytes().splitlines()
    assert n == len(lines) == len(result.measurements) + len(result.breaches)
    recs = [orjson.loads(line) for line in lines]
    assert [(r["topic"], r["key"]) for r in recs] == sorted((r["topic"], r["key"]) for r in recs)
    assert all(set(r) == {"topic", "key", "value"} for r in recs)
    assert b"".join(output_lines(result)) == path.read_bytes()
