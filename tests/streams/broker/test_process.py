"""EmbeddedBroker pieces that need no broker: properties, ids, ports, pid files, Java."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker import process
from streams.broker.process import BrokerConfig, EmbeddedBroker
from streams.errors import BrokerError


def _config(tmp_path: Path, port: int = 19092, controller: int = 19093) -> BrokerConfig:
    return BrokerConfig(
        port=port, controller_port=controller, data_dir=tmp_path / "data", libs=tmp_path / "libs"
    )


def test_properties_are_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    text = process.render_properties(_config(tmp_path))
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path / "data" / "log")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert "controller.quorum.bootstrap.servers" not in props  # static voters only


def test_extra_properties_override_defaults(tmp_path: Path) -> None:
    cfg = BrokerConfig(
        port=1,
        controller_port=2,
        data_dir=tmp_path,
        libs=tmp_path,
        extra_properties={"num.partitions": "3"},
    )
    assert "num.partitions=3\n" in process.render_properties(cfg)


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {process.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
        assert not cid.startswith("-")


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert process.port_in_use("127.0.0.1", port)
    assert not process.port_in_use("127.0.0.1", port)


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrokerError, match=r"Java is not on PATH.*Java 17.*apt-get install"):
        process.find_java()


def test_start_without_java_fails_before_touching_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    broker = EmbeddedBroker(_config(tmp_path))
    with pytest.raises(BrokerError, match="Java is not on PATH"):
        broker.start()
    assert not broker.config.data_dir.exists()


def test_start_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        broker = EmbeddedBroker(_config(tmp_path, port=taken, controller=process.free_port()))
        with pytest.raises(BrokerError, match=rf"127\.0\.0\.1:{taken} is already in use"):
            broker.start()


def test_stale_pid_file_is_not_a_running_broker(tmp_path: Path) -> None:
    broker = EmbeddedBroker(_config(tmp_path))
    broker.config.data_dir.mkdir(parents=True)
    # our own pid is alive but is not kafka.Kafka: a reused pid must not count
    broker.config.pid_file.write_text(f"{os.getpid()}\n")
    assert broker.pid() is None
    broker.config.pid_file.write_text("not a pid\n")
    assert broker.pid() is None
    assert broker.stop() is None
    assert not broker.config.pid_file.exists()


def test_pid_of_a_process_running_this_broker_is_found(tmp_path: Path) -> None:
    """A live process whose command line names kafka.Kafka and our properties file counts."""
    broker = EmbeddedBroker(_config(tmp_path))
    broker.config.data_dir.mkdir(parents=True)
    props = str(broker.config.properties_file)
    code = "import time; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, "kafka.Kafka", props])
    try:
        broker.config.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 10
        while broker.pid() is None and time.monotonic() < deadline:  # until exec shows argv
            time.sleep(0.02)
        assert broker.pid() == proc.pid
        assert broker.stop(timeout_s=5) == proc.pid
        assert proc.wait(5) is not None
        assert broker.pid() is None
    finally:
        proc.kill()
        proc.wait()


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.log_tail(tmp_path / "missing.log") == "(no log)"


def test_free_ports_are_below_the_ephemeral_range_and_free(tmp_path: Path) -> None:
    """A reconnecting client must never be able to take the broker's port as its own local
    end (TCP self-connect): test brokers get ports the kernel never hands out."""
    ephemeral = process.ephemeral_range()
    ports = {process.free_port() for _ in range(50)}
    assert all(process.LOWEST_FREE_PORT <= p < ephemeral.start for p in ports)
    assert len(ports) > 40  # random, so parallel tests rarely collide
    rng = random.Random(7)
    taken = process.free_port(rng=random.Random(7))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        assert process.free_port(rng=rng) != taken
    fake = tmp_path / "range"
    fake.write_text("40000\t60999\n")
    assert process.ephemeral_range(fake) == range(40000, 61000)
    assert process.ephemeral_range(tmp_path / "missing") == range(49152, 65536)
