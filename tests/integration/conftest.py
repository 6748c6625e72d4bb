"""Integration harness: real ``freshness worker`` processes and readers of the output topics.

Every worker test gets a broker of its own (fresh topics: workers read from the beginning
and judge by event time, so another test's history must not be there), its own app id and
its own key prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import topics
from streams.broker.process import EmbeddedBroker, free_port
from streams.flows.config import load_flows
from streams.kafka import (
    KafkaConnection,
    ensure_topics,
    new_consumer,
    new_producer,
    partition_list,
    topic_partitions,
)
from streams.process import Child

READY_MARK = "Ready"


@dataclass
class WorkerProcess:
    """One ``freshness worker`` subprocess with its own log file."""

    bootstrap: str
    home: Path
    app_id: str
    worker_id: str = "0"
    flows: Path | None = None
    child: Child | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.home / f"worker-{self.app_id}-{self.worker_id}.log"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.proc

    def start(self, timeout_s: float = 90.0, *, wait: bool = True) -> None:
        env = dict(os.environ)
        env.update(
            FRESHNESS_KAFKA_BOOTSTRAP=self.bootstrap,
            FRESHNESS_HOME=str(self.home),
            FRESHNESS_APP_ID=self.app_id,
            FRESHNESS_WORKER_ID=self.worker_id,
            FRESHNESS_LOG_LEVEL="info",
        )
        if self.flows is not None:
            env["FRESHNESS_FLOWS"] = str(self.flows)
        argv = [sys.executable, "-m", "streams.cli", "worker"]
        self.child = Child(f"worker {self.worker_id}", argv, self.log_path, env)
        self.child.start()
        if wait:
            self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            if READY_MARK in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        pytest.fail(f"worker not ready after {timeout_s}s:\n{self.tail()}")

    def assigned(self, topic: str) -> str | None:
        """The partitions of ``topic`` in the last assignment this worker logged ("{0-3}")."""
        last = None
        for line in self.log_path.read_text(errors="replace").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 2 and cells[0] == topic and cells[1].startswith("{"):
                last = cells[1]
        return last

    def tail(self, lines: int = 60) -> str:
        return "" if self.child is None else self.child.tail(lines)

    def kill9(self) -> None:
        assert self.child is not None
        self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


@dataclass
class OutputReader:
    """Reads output topics from the beginning, keeping records whose key has ``prefix``."""

    bootstrap: str
    prefix: str
    records: dict[str, list[tuple[bytes, dict[str, object]]]] = field(default_factory=dict)
    gauges: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    """Latest stats gauge per (flow, join partition), from any worker."""
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)
    tombstones: list[tuple[int, bytes]] = field(default_factory=list)
    """Breach tombstones: (number of breach records read before it, key)."""
    """Latest stats window record per key."""
    _consumer: Any = None

    async def _ensure(self) -> Any:
        if self._consumer is None:
            c = new_consumer(
                KafkaConnection(self.bootstrap),
                enable_auto_commit=False,
                max_partition_fetch_bytes=8 * 1024 * 1024,
            )
            await c.start()
            names = (topics.MEASUREMENTS, topics.BREACHES, topics.QUARANTINE, topics.STATS)
            parts = await topic_partitions(c, names)
            missing = [t for t, ps in parts.items() if not ps]
            if missing:
                await c.stop()
                pytest.fail(f"output topics {missing} have no partitions")
            tps = partition_list(parts)
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            self._consumer = c
        return self._consumer

    async def poll(self, seconds: float = 0.5) -> None:
        c = await self._ensure()
        batches = await c.getmany(timeout_ms=int(seconds * 1000), max_records=100_000)
        for tp, msgs in batches.items():
            for m in msgs:
                if m.value is None:
                    key = m.key or b""
                    if tp.topic == topics.BREACHES and key.split(b":", 1)[-1].startswith(
                        self.prefix.encode()
                    ):
                        self.tombstones.append((len(self.records.get(tp.topic, [])), key))
                    continue
                rec = orjson.loads(m.value)
                if tp.topic == topics.STATS:
                    if rec.get("kind") == "gauge":
                        self.gauges[(str(rec["flow"]), int(rec["partition"]))] = rec
                    else:
                        self.windows[(m.key or b"").decode()] = rec
                    continue
                if tp.topic == topics.QUARANTINE:
                    pass  # keyed by source position; tests match on topic/partition/offset
                elif not (m.key or b"").split(b":", 1)[-1].startswith(self.prefix.encode()):
                    continue
                self.records.setdefault(tp.topic, []).append((m.key or b"", rec))

    async def until(self, done: Callable[[OutputReader], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.poll()
            if done(self):
                return True
        return False

    async def caught_up(self, since_ms: int, flows: int, partitions: int = 8) -> bool:
        """Wait until gauges newer than ``since_ms`` say every partition is caught up."""

        def done(r: OutputReader) -> bool:
            fresh = [g for g in r.gauges.values() if g["updated_at"] >= since_ms]
            return len(fresh) == flows * partitions and all(g["monitor_lag_ms"] == 0 for g in fresh)

        return await self.until(done, timeout_s=90)

    def of(self, topic: str) -> list[dict[str, object]]:
        return [r for _, r in self.records.get(topic, [])]

    def latest_breaches(self) -> dict[str, dict[str, object]]:
        """The compacted topic's final state: latest record per key, tombstones delete."""
        out: dict[str, dict[str, object]] = {}
        deletes = iter(self.tombstones)
        pending = next(deletes, None)
        for i, (_, rec) in enumerate([*self.records.get(topics.BREACHES, []), (b"", {})]):
            while pending is not None and pending[0] == i:
                out.pop(pending[1].decode(), None)
                pending = next(deletes, None)
            if rec:
                out[str(rec["breach_id"])] = rec
        return out

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def produce(
    bootstrap: str, records: list[tuple[str, bytes, bytes | None]]
) -> list[tuple[str, int, int]]:
    """Send ``records`` in order; return where each landed (topic, partition, offset)."""
    p = new_producer(KafkaConnection(bootstrap), linger_ms=5, max_request_size=4 * 1024 * 1024)
    await p.start()
    try:
        futs = [await p.send(t, v, key=k) for t, k, v in records]
        await p.flush()
        return [(md.topic, md.partition, md.offset) for md in [await f for f in futs]]
    finally:
        await p.stop()


@pytest.fixture
def own_broker(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[str]:
    """A broker of this test's own (2 s to start): worker tests read their topics from the
    beginning, so another test's records must not be there."""
    shared = kafka_broker.config
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    config = replace(shared, port=port, controller_port=controller, data_dir=tmp_path / "kafka")
    broker = EmbeddedBroker(config)
    try:
        broker.start(timeout_s=120)
        yield config.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def restartable_broker(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own that the test may stop and start again (same port)."""
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    config = replace(
        kafka_broker.config, port=port, controller_port=controller, data_dir=tmp_path / "kafka"
    )
    broker = EmbeddedBroker(config)
    broker.start(timeout_s=120)
    yield broker
    broker.stop()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def default_app_id(prefix: str) -> str:
    """The app id of the workers a test starts unless it names another."""
    return f"app-{prefix}"


@pytest.fixture
async def funnel_topics(own_broker: str, prefix: str) -> str:
    """``own_broker`` with every topic the default flows and the default app id need."""
    specs = topics.required_topics(load_flows(None), default_app_id(prefix))
    await ensure_topics(KafkaConnection(own_broker), specs, 8, 1)
    return own_broker


@pytest.fixture
def workers(
    funnel_topics: str, tmp_path: Path, prefix: str
) -> Iterator[Callable[..., WorkerProcess]]:
    """``workers(worker_id="0", flows=None, app_id=None)`` starts a worker; all stop at the end."""
    started: list[WorkerProcess] = []

    def start(
        worker_id: str = "0",
        flows: Path | None = None,
        app_id: str | None = None,
        wait: bool = True,
    ) -> WorkerProcess:
        app = app_id or default_app_id(prefix)
        w = WorkerProcess(funnel_topics, tmp_path, app, worker_id, flows)
        started.append(w)
        w.start(wait=wait)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
async def reader(funnel_topics: str, prefix: str) -> Iterator[OutputReader]:  # type: ignore[misc]
    r = OutputReader(funnel_topics, prefix)
    yield r
    await r.close()


@pytest.fixture(name="produce")
def produce_fixture() -> Callable[..., object]:
    """``await produce(bootstrap, [(topic, key, value), ...])``: sent and acknowledged."""
    return produce
