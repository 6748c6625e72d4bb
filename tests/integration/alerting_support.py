"""What the alerting integration tests share: a broker that accepts short group sessions,
``freshness alerter`` subprocesses, a real Alertmanager, breach records as the worker
writes them, and flows files.

Tests that are about delivery (rate limits, kills, fail-over) write ``freshness.breaches``
records themselves with the worker's own encoder (:func:`streams.pipeline.codec.breach_kv`),
so what is due when is exact; the tests about what is judged run the real worker.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams import topics
from streams.alerting.alerter import READY_MARK
from streams.alerting.ledger import Ledger
from streams.broker.process import EmbeddedBroker, free_port
from streams.core.model import Breach
from streams.flows.config import load_flows
from streams.kafka import (
    KafkaConnection,
    ensure_topics,
    new_consumer,
    new_producer,
    partition_list,
    topic_partitions,
)
from streams.pipeline.codec import breach_kv
from streams.process import Child
from streams.testing.peers.alertmanager import VERSION, AlertmanagerProcess, binary_path

ROOT = Path(__file__).resolve().parents[2]
ROUTING_KEY = "R" * 32
SESSION_MS = 2_000
"""The alerter group's session timeout in these tests (the product default is 10 s)."""
LEADS_MARK = "this replica leads"
WORKING_MARK = "caught up with the topics"
"""Logged by a leader once it has rebuilt the outbox and offered what is owed."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def alert_broker(kafka_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[str]:
    """A broker of this test's own that allows group sessions down to 1 s (the alerters'
    fail-over in seconds, not the product's 10 s)."""
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
            # The first transactional id creates __transaction_state: 1 partition, not 50
            # (that took 10 s of a test on this machine).
            "transaction.state.log.num.partitions": "1",
        },
    )
    broker = EmbeddedBroker(config)
    try:
        broker.start(timeout_s=120)
        yield config.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerProcess]:
    binary = binary_path(ROOT)
    if not binary.is_file():
        pytest.fail(f"Alertmanager {VERSION} is not built: run `make alertmanager`", False)
    process = AlertmanagerProcess(binary, tmp_path / "alertmanager", resolve_timeout="1s")
    try:
        process.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield process
    finally:
        process.stop()


async def create_topics(bootstrap: str, flows_file: Path | None, app_id: str) -> None:
    specs = topics.required_topics(load_flows(flows_file), app_id)
    await ensure_topics(KafkaConnection(bootstrap), specs, 8, 1)


class AlerterProcess:
    """One ``freshness alerter`` subprocess with its own log."""

    def __init__(self, bootstrap: str, home: Path, name: str, **env: str) -> None:
        self.name = name
        self.log = home / f"alerter-{name}.log"
        self.env = {
            **os.environ,
            "FRESHNESS_KAFKA_BOOTSTRAP": bootstrap,
            "FRESHNESS_HOME": str(home),
            "FRESHNESS_ALERT_SESSION_TIMEOUT_MS": str(SESSION_MS),
            "FRESHNESS_LOG_LEVEL": "info",
            **env,
        }
        self.starts = 0
        self.child: Child | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "streams.cli", "alerter"]
        self.child = Child(f"alerter {self.name}", argv, self.log, self.env, stop_grace_s=10)
        self.child.start()
        self.starts += 1

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def count(self, mark: str) -> int:
        return self.text().count(mark)

    async def wait_for(self, mark: str, times: int = 1, timeout_s: float = 60) -> None:
        """Until ``mark`` is in the log ``times`` times; fail with the log tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count(mark) >= times:
                return
            if self.child is not None and (failure := self.child.failure()) is not None:
                pytest.fail(failure)
            await asyncio.sleep(0.05)
        pytest.fail(f"{self.name}: no {mark!r} x{times} in {timeout_s} s:\n{self.tail()}")

    async def wait_ready(self, timeout_s: float = 60) -> None:
        await self.wait_for(READY_MARK, self.starts, timeout_s)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def kill9(self) -> None:
        if self.child is not None:
            self.child.kill()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


def alerter_env(
    app_id: str, flows: Path | None, pagerduty_url: str | None, alertmanager_url: str | None
) -> dict[str, str]:
    env = {"FRESHNESS_APP_ID": app_id}
    if flows is not None:
        env["FRESHNESS_FLOWS"] = str(flows)
    if pagerduty_url is not None:
        env["FRESHNESS_PAGERDUTY_ROUTING_KEY"] = ROUTING_KEY
        env["FRESHNESS_PAGERDUTY_URL"] = pagerduty_url
    if alertmanager_url is not None:
        env["FRESHNESS_ALERTMANAGER_URL"] = alertmanager_url
        env["FRESHNESS_ALERTMANAGER_RESEND_MS"] = "1000"
    return env


def breach(
    flow: str, key: str, deadline: int, *, late_at: int | None = None, target_ms: int = 5_000
) -> Breach:
    """An open overdue breach, or (``late_at``) its closed late state."""
    started = deadline - target_ms
    late = late_at is not None
    return Breach(
        breach_id=f"{flow}:{key}",
        flow=flow,
        key=key,
        kind="late" if late else "overdue",
        status="closed" if late else "open",
        started_at=started,
        deadline=deadline,
        detected_at=deadline + 200,
        completed_at=late_at,
        lag_ms=None if late_at is None else late_at - started,
        target_ms=target_ms,
        start_event_id=f"{key}-s",
    )


async def write_breaches(bootstrap: str, breaches: list[Breach]) -> None:
    """Write breach records as the worker does (its encoder), acknowledged."""
    producer = new_producer(KafkaConnection(bootstrap), acks="all")
    await producer.start()
    try:
        for b in breaches:
            key, value = breach_kv(b)
            await producer.send_and_wait(topics.BREACHES, value, key=key)
    finally:
        await producer.stop()


def shared_topic_flows(path: Path, count: int, *, target: str = "5s", alerts: str = "") -> Path:
    """A flows file of ``count`` flows ``f000``... that all read the same two topics (the
    completion filter tells them apart), each with ``alerts`` (YAML, indented) if given."""
    lines = ["flows:"]
    for i in range(count):
        lines += [
            f"  - name: f{i:03d}",
            "    start: {topic: test.alerting.start, key: id}",
            "    completion:",
            "      topic: test.alerting.done",
            "      key: id",
            f"      filter: 'flow == \"f{i:03d}\"'",
            f"    target: {target}",
        ]
        if alerts:
            lines.append("    alerts:")
            lines += [f"      {line}" for line in alerts.strip().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout_s: float, step_s: float = 0.05
) -> bool:
    """Poll ``check`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        result: Any = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step_s)


async def read_outbox(bootstrap: str) -> Ledger:
    """``freshness.alerts`` and ``freshness.alert-deliveries`` as they are now (committed)."""
    ledger = Ledger()
    consumer = new_consumer(
        KafkaConnection(bootstrap), enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        parts = await topic_partitions(consumer, (topics.ALERTS, topics.ALERT_DELIVERIES))
        tps = partition_list(parts)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for rec in records:
                    if tp.topic == topics.ALERTS:
                        ledger.apply_alert(rec.key, rec.value, rec.offset)
                    else:
                        ledger.apply_progress(rec.key, rec.value)
    finally:
        await consumer.stop()
    return ledger
