"""faust-streaming 0.15.3 keeps a RocksDB (rocksdict) table on the real broker and a new
worker with an empty state directory recovers the same contents from the changelog topic."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

MakeTopics = Callable[..., Awaitable[list[str]]]
APP = Path(__file__).with_name("faust_table_app.py")
PARTITIONS = 4  # faust_table_app.PARTITIONS
N_KEYS = 200
WAIT_S = 90.0


class FaustWorker:
    """One ``faust_table_app.py worker`` subprocess; leaving the ``with`` always ends it."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        self.env = {**os.environ, **{f"FT_{k.upper()}": v for k, v in env.items()}}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FaustWorker:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), "worker", "-l", "warn", "--without-web"],
                env=self.env,
                cwd=APP.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"faust worker exited ({self.proc.returncode}):\n{self.tail()}")
        if "Crashed reason=" in self.log.read_text(errors="replace"):
            raise AssertionError(f"a faust agent crashed:\n{self.tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (faust shuts down cleanly and leaves the group), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def _send(bootstrap: str, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, orjson.dumps(value), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _wait_for_topic(bootstrap: str, topic: str, worker: FaustWorker) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while topic not in await admin.list_topics():
            worker.check_alive()
            assert time.monotonic() < deadline, f"faust never created {topic}:\n{worker.tail()}"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def _read_changelog(
    bootstrap: str, topic: str, expected: dict[str, int], worker: FaustWorker
) -> dict[str, int]:
    """Latest value per key in the changelog, once it equals ``expected`` or time runs out."""
    await _wait_for_topic(bootstrap, topic, worker)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen: dict[str, int] = {}
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + WAIT_S
        while seen != expected and time.monotonic() < deadline:
            worker.check_alive()
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for msg in messages:
                    assert msg.key is not None
                    assert msg.value is not None
                    seen[json.loads(msg.key)] = json.loads(msg.value)
    finally:
        await consumer.stop()
    return seen


async def _wait_for_dump(path: Path, worker: FaustWorker) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        worker.check_alive()
        assert time.monotonic() < deadline, f"the worker never dumped its table:\n{worker.tail()}"
        await asyncio.sleep(0.25)
    dumped: dict[str, Any] = json.loads(path.read_text())
    return dumped


def _rocksdb_dirs(datadir: Path) -> list[Path]:
    return [current.parent for current in datadir.rglob("CURRENT")]


async def test_rocksdb_table_recovers_from_changelog(
    kafka_bootstrap: str,
    make_topics: MakeTopics,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = unique_topic("faust-commands")
    app_id = f"test-faust-{uuid.uuid4().hex[:8]}"
    await make_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    expected = {f"key-{i}": i * i + 1 for i in range(N_KEYS)}
    common = {"bootstrap": kafka_bootstrap, "app_id": app_id, "topic": topic}
    first_dir, second_dir = tmp_path / "worker-1", tmp_path / "worker-2"

    with FaustWorker(
        tmp_path / "worker-1.log",
        mode="write",
        datadir=str(first_dir),
        dump=str(tmp_path / "dump-1.json"),
        **common,
    ) as writer:
        puts = [(k, {"op": "put", "key": k, "value": v}) for k, v in expected.items()]
        await _send(kafka_bootstrap, topic, puts)
        changelog = await _read_changelog(
            kafka_bootstrap, f"{app_id}-kv-changelog", expected, writer
        )
        assert changelog == expected
        writer.stop()
    assert _rocksdb_dirs(first_dir), "the first worker kept its table in RocksDB"

    assert not second_dir.exists()
    dump = tmp_path / "dump-2.json"
    with FaustWorker(
        tmp_path / "worker-2.log", mode="recover", datadir=str(second_dir), dump=str(dump), **common
    ) as recoverer:
        await _send(kafka_bootstrap, topic, [("dump", {"op": "dump"})])
        recovered = await _wait_for_dump(dump, recoverer)

    assert recovered["items"] == expected
    assert _rocksdb_dirs(second_dir), "the recovering worker rebuilt RocksDB from the changelog"
