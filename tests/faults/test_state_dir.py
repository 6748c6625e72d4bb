"""A worker whose state directory stops taking writes (a full disk; an unwritable one):
it stops with one clear line naming the path and the cause, not a storm of tracebacks; its
state is not corrupted; and once the cause is gone a restart recovers, with every outcome
of the scenario right.

Tests run as root here and in CI, where permissions bind nobody, and there is no ``mount``
for a small filesystem to fill. ``RLIMIT_FSIZE`` binds root: with it at 0 every write that
would extend a file fails with ``EFBIG`` ("File too large"; Python ignores ``SIGXFSZ``),
which is what RocksDB, ``worker.lock`` and everything else in the state directory see on a
full disk. The test sets it on the running worker with ``prlimit`` (the disk fills
mid-stream) or from the start (the directory is unwritable before the worker starts). The
worker's output goes to a pipe, which the limit does not touch, so its last words are read.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker
from streams.flows.config import load_flows
from streams.testing.records import valid_record
from streams.worker.runner import LOCK_NAME, STATE_FAILURE_EXIT
from tests.faults import figures
from tests.faults.support import create_topics, env_for, fault_broker, freshness
from tests.integration.conftest import OutputReader, produce

__all__ = ["fault_broker"]  # a fixture, used by name

APP = "statedir"
FLOWS = {f.name: f for f in load_flows(None)}
LEAD = FLOWS["lead_to_posthog"]
PREFIX = "sd-"
KEYS = 20
LAG_MS = 1_000


class PipedWorker:
    """``freshness worker`` with its output on a pipe (kept in ``lines``) and, optionally,
    a file-size limit from its first instruction."""

    def __init__(self, bootstrap: str, home: Path, *, fsize: int | None = None) -> None:
        ids = {"FRESHNESS_APP_ID": APP, "FRESHNESS_WORKER_ID": "0"}
        self.env = env_for(bootstrap, home, FRESHNESS_LOG_LEVEL="info", **ids)
        self.fsize = fsize
        self.lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def _limit(self) -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if self.fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.fsize, self.fsize))

    def start(self) -> None:
        self.proc = subprocess.Popen(
            freshness("worker"),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=self._limit,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def fill_disk(self) -> None:
        """From now on no write may extend a file (``EFBIG``)."""
        assert self.proc is not None
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (0, 0))

    def start_ready(self, timeout_s: float = 90) -> None:
        self.start()
        deadline = time.monotonic() + timeout_s
        while not any("[^Worker]: Ready" in line for line in self.lines):
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail("worker exited:\n" + "\n".join(self.lines[-60:]))
            if time.monotonic() > deadline:
                pytest.fail("worker not ready:\n" + "\n".join(self.lines[-60:]))
            time.sleep(0.1)

    def wait_exit(self, timeout_s: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def lead(key: str, at: int, done: bool) -> list[tuple[str, bytes, bytes]]:
    start = valid_record(LEAD, "start", key, f"{key}-s", at)
    out = [(LEAD.start_topic, key.encode(), orjson.dumps(start))]
    if done:
        end = valid_record(LEAD, "end", key, f"{key}-c", at + LAG_MS)
        out.append((LEAD.end_topic, key.encode(), orjson.dumps(end)))
    return out


def scenario(name: str, at: int) -> list[tuple[str, bytes, bytes]]:
    """``KEYS`` lead starts at ``at``: the even ones complete on time, the odd ones never."""
    return [r for i in range(KEYS) for r in lead(f"{PREFIX}{name}{i}", at, i % 2 == 0)]


def outcomes(reader: OutputReader) -> dict[str, str]:
    """Per key: ``on_time <lag>`` from its measurement, or the breach's kind and status."""
    seen = {str(m["key"]): f"on_time {m['lag_ms']}" for m in reader.of(topics.MEASUREMENTS)}
    for b in reader.latest_breaches().values():
        seen.setdefault(str(b["key"]), f"{b['kind']} {b['status']}")
    return seen


def expected(name: str) -> dict[str, str]:
    return {
        f"{PREFIX}{name}{i}": f"on_time {LAG_MS}" if i % 2 == 0 else "overdue open"
        for i in range(KEYS)
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_a_full_disk_stops_the_worker_in_one_line_and_a_restart_recovers(
    fault_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    bootstrap = fault_broker.config.bootstrap
    await create_topics(bootstrap, APP)
    reader = OutputReader(bootstrap, PREFIX)
    worker = PipedWorker(bootstrap, tmp_path)
    again = PipedWorker(bootstrap, tmp_path)
    try:
        await asyncio.to_thread(worker.start_ready)
        await produce(bootstrap, scenario("before", now_ms()))
        want = expected("before")
        assert await reader.until(lambda r: outcomes(r) == want, 30), outcomes(reader)
        worker.fill_disk()
        filled = len(worker.lines)
        began = time.monotonic()
        await produce(bootstrap, scenario("during", now_ms()))
        code = await asyncio.to_thread(worker.wait_exit, 60)
        stopped_s = time.monotonic() - began
        last_words = worker.lines[filled:]
        print("\n".join(last_words))
        assert code == STATE_FAILURE_EXIT, "\n".join(worker.lines[-40:])
        said = [line for line in last_words if "File too large" in line]
        assert len(said) == 1, said
        assert said[0].startswith("freshness: cannot write the worker's state: ")
        assert str(tmp_path / "state" / APP) in said[0]
        assert not [line for line in last_words if "Traceback" in line]
        # The cause is gone (no limit on the new process): the restart recovers.
        await asyncio.to_thread(again.start_ready)
        want |= expected("during")
        if not await reader.until(lambda r: outcomes(r) == want, 60):
            got = outcomes(reader)
            wrong = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
            pytest.fail(f"after the restart (want, got): {wrong}\n" + "\n".join(again.lines))
        assert not [line for line in again.lines if "Traceback" in line], again.lines[-40:]
    finally:
        worker.stop()
        again.stop()
        await reader.close()
    figures.record(
        figures.Row(
            fault="state directory full mid-stream (writes fail with EFBIG)",
            injected=1,
            outcomes_checked=len(want),
            outcomes_lost=len(want) - sum(outcomes(reader).get(k) == v for k, v in want.items()),
            detail=f"stopped {stopped_s:.1f} s after the traffic, in one line, exit {code}; "
            "the restart recovered",
            test="test_a_full_disk_stops_the_worker_in_one_line_and_a_restart_recovers",
        )
    )


def test_an_unwritable_state_directory_is_refused_at_start_in_one_line(tmp_path: Path) -> None:
    worker = PipedWorker("127.0.0.1:1", tmp_path, fsize=0)  # refused before Kafka is asked
    worker.start()
    code = worker.wait_exit(60)
    worker.stop()
    print("\n".join(worker.lines))
    lock = tmp_path / "state" / APP / "0" / LOCK_NAME
    assert code == 2, worker.lines
    assert worker.lines == [f"freshness: cannot write the state directory: {lock}: File too large"]
    figures.record(
        figures.Row(
            fault="state directory unwritable at start",
            injected=1,
            detail=f"refused in {len(worker.lines)} line, exit {code}",
            test="test_an_unwritable_state_directory_is_refused_at_start_in_one_line",
        )
    )
