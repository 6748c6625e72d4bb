"""Two workers share the partitions while one of them is ``kill -9``'d ten times at random
moments (seeded), restarted each time and waited for until it is ready again, with
``freshness simulate`` writing traffic throughout:

* the final outcomes equal the truth (``freshness score``): no start, completion or breach
  is lost to a crash;
* every output record written again (the same measurement key, or the same breach key in
  the same state) is identical to its first copy: at-least-once re-sends are harmless, and
  a re-send that says something else would be a contract breach.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from streams.broker.process import EmbeddedBroker
from streams.flows.config import load_flows
from tests.faults import figures
from tests.faults.support import (
    Simulation,
    count_repeats,
    create_topics,
    fault_broker,
    read_to_end,
    restart,
    run_score,
)
from tests.integration.conftest import OutputReader, WorkerProcess

__all__ = ["fault_broker"]  # a fixture, used by name

APP = "kill9"
FLOWS = load_flows(None)
KILLS = 10
SEED = 13
SIM_SECONDS = 120
RATE = 60
SESSION_TIMEOUT_MS = "6000"
"""The settings' minimum: a killed member leaves its group 6 s later, not 10 s."""
KILL_AFTER_S = (0.3, 3.0)
"""A kill lands this long (uniform) after the victim said it was ready."""


async def test_ten_kill9_lose_nothing_and_resend_only_identical_records(
    fault_broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = fault_broker.config.bootstrap
    monkeypatch.setenv("FRESHNESS_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS)
    await create_topics(bootstrap, APP)
    steady = WorkerProcess(bootstrap, tmp_path, APP, worker_id="0")
    victim = WorkerProcess(bootstrap, tmp_path, APP, worker_id="1")
    sim = Simulation.of(
        bootstrap,
        tmp_path,
        rate=RATE,
        seconds=SIM_SECONDS,
        seed=SEED,
        faults="--late 0.02 --missing 0.01 --duplicate 0.02 --out-of-order 0.02",
    )
    try:
        await asyncio.gather(asyncio.to_thread(restart, steady), asyncio.to_thread(restart, victim))
        sim.start()
        ready_s = await asyncio.to_thread(kill_and_restart, victim, sim)
        truth = await asyncio.to_thread(sim.wait, SIM_SECONDS + 60)
        assert steady.proc is not None
        assert steady.proc.poll() is None, steady.tail()
        reader = OutputReader(bootstrap, f"sim-{truth.run_id}-")
        try:
            # Every partition's gauge, not one per flow (what score waits for): the last
            # kill's partitions may still be rebalancing while the others say lag 0.
            caught_up = await reader.caught_up(time.time_ns() // 1_000_000, len(FLOWS))
            assert caught_up, f"{victim.tail()}\n{steady.tail()}"
            score = await asyncio.to_thread(run_score, bootstrap, tmp_path, sim.truth_path)
            await read_to_end(reader)
        finally:
            await reader.close()
    finally:
        sim.stop()
        victim.stop()
        steady.stop()
    repeats = count_repeats(reader)
    print(
        f"{repeats.records} output records, {repeats.identical} identical re-sends, "
        f"{len(repeats.wrong)} wrong; restarts ready in {min(ready_s):.1f}-{max(ready_s):.1f} s"
    )
    figures.record(  # before the checks: a failed run's figures are the finding
        figures.Row(
            fault="kill -9 of one of two workers, mid-stream",
            injected=KILLS,
            outcomes_checked=score.starts,
            outcomes_lost=score.missed,
            identical_resends=repeats.identical,
            wrong_duplicates=len(repeats.wrong),
            false_overdue=score.false_overdue,
            detail=(
                f"{repeats.records:,} output records read; a restarted worker was ready in "
                f"{min(ready_s):.1f}-{max(ready_s):.1f} s"
            ),
            test="test_ten_kill9_lose_nothing_and_resend_only_identical_records",
        )
    )
    assert score.passed, score.text
    assert repeats.wrong == []


def kill_and_restart(victim: WorkerProcess, sim: Simulation) -> list[float]:
    """``KILLS`` times: wait a random moment, ``kill -9``, restart, wait until ready. Every
    kill lands while the simulator is still writing. Returns each restart's time to ready."""
    rng = random.Random(SEED)
    took = []
    for n in range(KILLS):
        time.sleep(rng.uniform(*KILL_AFTER_S))
        assert sim.running(), f"the simulator ended before kill {n + 1} of {KILLS}"
        victim.kill9()
        took.append(restart(victim))
    return took
