"""What the fault tests share: a broker of the test's own that may be stopped and started
again on the same port, the stack's processes (``freshness api``; workers and alerters come
from the integration harness), ``freshness simulate`` with its truth file, ``freshness
score`` read back into numbers, and the duplicate count over every output record.

A test module uses the fixtures by importing them (``from tests.faults.support import
fault_broker``); pytest then finds them by name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker, free_port
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, ensure_topics
from streams.process import Child
from streams.simulate.truth import Truth, read_truth
from tests.integration.conftest import OutputReader, WorkerProcess

PARTITIONS = 8


@pytest.fixture
def fault_broker(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own (fresh topics, its own ports) that the test may stop and
    start again on the same port. It allows group sessions down to 1 s (the alerter's fail-over
    in seconds) and makes ``__transaction_state`` one partition (the alerter's outbox is
    transactional: 50 partitions cost 10 s of a test here)."""
    port, controller = free_port(), free_port()
    while controller == port:
        controller = free_port()
    config = replace(
        kafka_broker.config,
        port=port,
        controller_port=controller,
        data_dir=tmp_path / "kafka",
        extra_properties={
            "group.min.session.timeout.ms": "1000",
            "transaction.state.log.num.partitions": "1",
        },
    )
    broker = EmbeddedBroker(config)
    broker.start(timeout_s=120)
    try:
        yield broker
    finally:
        broker.stop()


async def create_topics(bootstrap: str, app_id: str, flows: Path | None = None) -> None:
    """Every topic the flows and ``app_id`` need, made before any process starts."""
    specs = topics.required_topics(load_flows(flows), app_id)
    await ensure_topics(KafkaConnection(bootstrap), specs, PARTITIONS, 1)


def freshness(*argv: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *argv]


def env_for(bootstrap: str, home: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, FRESHNESS_KAFKA_BOOTSTRAP=bootstrap, FRESHNESS_HOME=str(home), **extra)


class ApiProcess:
    """One ``freshness api`` subprocess (no token) with its own log."""

    def __init__(self, bootstrap: str, home: Path, app_id: str, flows: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "api.log"
        env = env_for(bootstrap, home, FRESHNESS_API_PORT=str(self.port), FRESHNESS_APP_ID=app_id)
        env.pop("FRESHNESS_API_TOKEN", None)
        if flows is not None:
            env["FRESHNESS_FLOWS"] = str(flows)
        self.child = Child("api", freshness("api"), self.log, env)

    def start(self) -> None:
        self.child.start()

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 now (fails the test if the process died)."""
        if (failure := self.child.failure()) is not None:
            pytest.fail(failure)
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                pytest.fail(f"api not ready after {timeout_s} s:\n{self.child.tail()}")
            time.sleep(0.2)

    def get(self, path: str) -> Any:
        answer = httpx.get(f"{self.url}{path}", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stop(self) -> None:
        self.child.stop()


@dataclass
class Simulation:
    """``freshness simulate`` with a truth file, running in the background."""

    bootstrap: str
    home: Path
    argv: list[str]
    truth_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @classmethod
    def of(
        cls, bootstrap: str, home: Path, *, rate: int, seconds: int, seed: int, faults: str
    ) -> Simulation:
        """``faults``: the simulator's fault options, e.g. ``"--late 0.02 --missing 0.01"``."""
        truth = home / "truth.jsonl"
        argv = freshness("simulate", "--rate", str(rate), "--duration", f"{seconds}s")
        argv += ["--seed", str(seed), "--truth", str(truth), *faults.split()]
        return cls(bootstrap, home, argv, truth)

    @property
    def log_path(self) -> Path:
        return self.home / "simulate.log"

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv, env=env_for(self.bootstrap, self.home), stdout=self._log, stderr=self._log
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout_s: float) -> Truth:
        """Until the run ends (it must succeed); its ground truth."""
        assert self.proc is not None
        code = self.proc.wait(timeout_s)
        assert code == 0, self.log_path.read_text(errors="replace")
        truth = read_truth(self.truth_path)
        assert truth.summary is not None, "the truth file has no summary: the run did not finish"
        return truth

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._log is not None:
            self._log.close()


_ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+(\s+<-- FAIL)?$")
_STARTS = re.compile(r"^score of simulate run \S+: (\d+) starts, (\d+) malformed")


@dataclass
class Score:
    """``freshness score``'s report, read back: what it judged and what did not match."""

    text: str
    returncode: int
    starts: int
    """Starts of the truth file, each with an outcome judged (the outcomes checked)."""
    cells: dict[tuple[str, str], tuple[int, int, int]]
    """(flow or ``quarantine``, kind) → (expected, reported, matched)."""

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and "PASS: every precision and recall is 1.000" in self.text

    @property
    def missed(self) -> int:
        """Expected outcomes with no matching record (lost or wrong)."""
        cells = self.cells.values()
        return sum(expected - min(matched, expected) for expected, _, matched in cells)

    @property
    def false_overdue(self) -> int:
        """On-time starts that ever had a breach record (each would have paged)."""
        return self.text.count("has a breach record")

    def expected(self, kind: str) -> int:
        return sum(e for (group, k), (e, _, _) in self.cells.items() if k == kind)


def run_score(bootstrap: str, home: Path, truth_path: Path, wait_s: int = 90) -> Score:
    """``freshness score`` of ``truth_path``, printed (for the test's log) and parsed."""
    done = subprocess.run(
        [*freshness("score"), "--truth", str(truth_path), "--wait", str(wait_s)],
        env=env_for(bootstrap, home),
        capture_output=True,
        text=True,
        timeout=wait_s + 150,
        check=False,
    )
    print(done.stdout, done.stderr)
    starts, cells = 0, {}
    for line in done.stdout.splitlines():
        if m := _STARTS.match(line):
            starts = int(m.group(1))
        elif m := _ROW.match(line.rstrip()):
            cells[(m.group(1), m.group(2))] = (int(m.group(3)), int(m.group(4)), int(m.group(5)))
    assert starts, f"score printed no summary:\n{done.stdout}{done.stderr}"
    assert cells, f"score printed no table:\n{done.stdout}{done.stderr}"
    return Score(done.stdout + done.stderr, done.returncode, starts, cells)


def log_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


READY_LINE = "[^Worker]: Ready"
"""What a Faust worker logs once it has started (at the harness's INFO level)."""


def starts_logged(worker: WorkerProcess) -> int:
    try:
        return worker.log_path.read_text(errors="replace").count(READY_LINE)
    except FileNotFoundError:
        return 0


def restart(worker: WorkerProcess, timeout_s: float = 90) -> float:
    """Start ``worker`` again (its log is appended to) and wait until this start is ready;
    how long that took (s)."""
    before = starts_logged(worker)
    began = time.monotonic()
    worker.start(wait=False)
    while starts_logged(worker) <= before:
        assert worker.child is not None
        if (failure := worker.child.failure()) is not None:
            pytest.fail(failure)
        if time.monotonic() - began > timeout_s:
            pytest.fail(f"worker {worker.worker_id} not ready in {timeout_s} s:\n{worker.tail()}")
        time.sleep(0.1)
    return time.monotonic() - began


@dataclass
class Repeats:
    """Output records written again: byte for byte the first copy, or different."""

    records: int = 0
    identical: int = 0
    wrong: list[str] = field(default_factory=list)


def count_repeats(reader: OutputReader) -> Repeats:
    """Every measurement and breach record the reader holds, against the first record with
    the same identity: the key for a measurement; the key and the state (kind, status) for a
    breach, whose record changes as the breach moves on (overdue, then late or lost)."""
    seen: dict[tuple[str, str, object, object], dict[str, object]] = {}
    out = Repeats()
    for topic in (topics.MEASUREMENTS, topics.BREACHES):
        for key, value in reader.records.get(topic, []):
            out.records += 1
            state = (
                (value.get("kind"), value.get("status")) if topic == topics.BREACHES else ("", "")
            )
            ident = (topic, key.decode(), *state)
            first = seen.setdefault(ident, value)
            if first is value:
                continue
            if first == value:
                out.identical += 1
            else:
                out.wrong.append(f"{ident}: first {first}, then {value}")
    return out


async def read_to_end(reader: OutputReader, timeout_s: float = 60) -> None:
    """Poll until the reader has read every output topic up to its end offsets of now."""
    consumer = await reader._ensure()
    parts = consumer.assignment()
    ends = await consumer.end_offsets(list(parts))
    deadline = time.monotonic() + timeout_s
    while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
        if time.monotonic() > deadline:
            pytest.fail("the output topics were not read to their end")
        await reader.poll()
