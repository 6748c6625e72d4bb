"""freshness replay against a real worker on the real broker: the scripted scenario (2,000
starts, every fault) runs live, then replays of its range agree with what the worker wrote
(--diff exits 0), give byte-identical --output files, and with a 2 s lead target report
exactly the extra late starts the scenario's planned lags predict. Bad arguments each give
one line and exit 2."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from streams.flows.config import load_flows
from streams.simulate.scenario import Scenario, scripted
from tests.integration.test_worker import reached

FLOWS = load_flows(None)
LEAD = FLOWS[0]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def freshness(bootstrap: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FRESHNESS_KAFKA_BOOTSTRAP=bootstrap, FRESHNESS_HOME=str(home))
    env.pop("FRESHNESS_FLOWS", None)
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def run(bootstrap: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(freshness, bootstrap, home, *args)


def lead_lags(sc: Scenario) -> list[int]:
    return [e.lag_ms for e in sc.expected.values() if e.flow == LEAD.name and e.lag_ms is not None]


def flows_with_lead_target(tmp_path: Path, target: str) -> Path:
    text = resources.files("streams.flows").joinpath("default.yaml").read_text()
    lead, rest = text.split("  - name: payment_to_posthog", 1)
    assert lead.count("target: 5s") == 1
    path = tmp_path / "flows-2s.yaml"
    path.write_text(
        lead.replace("target: 5s", f"target: {target}") + "  - name: payment_to_posthog" + rest
    )
    return path


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["flow"]: r for r in doc["flows"]}


async def test_replay_of_the_scripted_scenario_agrees_with_the_live_worker(
    workers: Any, reader: Any, produce: Any, funnel_topics: str, prefix: str, tmp_path: Path
) -> None:
    t_from = now_ms()
    sc = scripted(FLOWS, 2_000, now=t_from, prefix=prefix)
    await produce(funnel_topics, sc.records)
    workers()
    assert await reader.until(reached(sc, lost=False), timeout_s=120), "the worker never got there"
    await asyncio.sleep(2.0)  # past the last tick: nothing more is on its way
    t_to = now_ms()
    span = ("--from", str(t_from - 1_000), "--to", str(t_to))
    out1, out2 = tmp_path / "one.jsonl", tmp_path / "two.jsonl"

    first = await run(
        funnel_topics, tmp_path, "replay", *span, "--diff", "--json", "--output", str(out1)
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    doc = orjson.loads(first.stdout)
    assert doc["diff"]["differences"] == []
    assert doc["diff"]["compared"] == len(sc.expected) - doc["diff"]["not_yet_judged"]
    assert doc["diff"]["not_yet_judged"] == 0
    for f in FLOWS:
        planned = [e for e in sc.expected.values() if e.flow == f.name]
        lags = [e.lag_ms for e in planned if e.lag_ms is not None]
        row = rows(doc)[f.name]
        assert row["starts"] == len(planned)
        assert row["late"] == sum(lag > f.target_ms for lag in lags)
        assert row["overdue"] == sum(e.outcome == "missing" for e in planned)
    assert rows(doc)[LEAD.name]["quarantined"] == len(sc.malformed)
    print(f"replay: {doc['records_read']} records, {doc['seconds']} s, {doc['diff']['compared']}")

    second = await run(funnel_topics, tmp_path, "replay", *span, "--json", "--output", str(out2))
    assert second.returncode == 0, second.stderr[-3000:]
    assert out1.read_bytes() == out2.read_bytes()
    assert out1.read_bytes().count(b"\n") == orjson.loads(second.stdout)["output"]["lines"] > 1_000

    # would a 2 s lead target have paged? exactly the starts with 2 s < lag <= 5 s more
    tight = flows_with_lead_target(tmp_path, "2s")
    third = await run(funnel_topics, tmp_path, "replay", *span, "--json", "--flows", str(tight))
    assert third.returncode == 0, third.stderr[-3000:]
    late_2s = rows(orjson.loads(third.stdout))[LEAD.name]["late"]
    predicted_extra = sum(2_000 < lag <= 5_000 for lag in lead_lags(sc))
    assert predicted_extra > 0
    assert late_2s - rows(doc)[LEAD.name]["late"] == predicted_extra
    # and the table on a terminal-less stdout says the same
    table = await run(
        funnel_topics, tmp_path, "replay", *span, "--flows", str(tight), "--flow", LEAD.name
    )
    assert table.returncode == 0, table.stderr[-3000:]
    lead_line = next(line for line in table.stdout.splitlines() if LEAD.name in line)
    assert str(late_2s) in lead_line.split()
    assert "payment_to_posthog" not in table.stdout

    # against the live monitor, a 2 s target differs exactly for those starts (and no other)
    diffs = await run(
        funnel_topics, tmp_path, "replay", *span, "--json", "--diff", "--flows", str(tight)
    )
    assert diffs.returncode == 1
    differing = {d["breach_id"] for d in orjson.loads(diffs.stdout)["diff"]["differences"]}
    # every lead start differs (its target_ms, and deadline or verdict), nothing else does
    assert differing == {
        f"{LEAD.name}:{e.key}" for e in sc.expected.values() if e.flow == LEAD.name
    }


async def test_bad_arguments_give_one_line_and_exit_2(funnel_topics: str, tmp_path: Path) -> None:
    cases = [
        (("--from", "-1h", "--to", "-2h"), "is not before --to"),
        (("--from", "-1h", "--flow", "nope"), "unknown flow 'nope'"),
        (("--from", "yesterday"), "is not a time"),
        (("--from", "-10m", "--lookback", "forever"), "is not a duration"),
        (("--from", "-10m"), "no input records between"),
    ]
    for args, says in cases:
        done = await run(funnel_topics, tmp_path, "replay", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (args, done.stderr)
        assert says in lines[0], (args, lines)
        assert "Traceback" not in done.stderr
