"""Every client over SASL_SSL with SCRAM-SHA-512, on the embedded broker with a SASL_SSL
listener and certificates made here (openssl): topics create, a worker (Faust app and input
reader), the simulator's producer, ``freshness score`` and the API's output consumer all work
with the right credentials; a wrong password or a wrong CA stops at start-up with one line.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.consumer import OutputConsumer
from api.readmodel import ReadModel
from streams.broker import jars
from streams.broker.process import BrokerConfig, EmbeddedBroker, SaslSslListener, free_port
from streams.errors import BrokerError
from streams.flows.config import load_flows
from streams.kafka import KafkaRefusedError
from streams.settings import Settings
from tests.conftest import TEST_JVM_OPTS
from tests.integration.conftest import WorkerProcess

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice-s3cret"
KEYSTORE_PASSWORD = "broker-store-pw"
SIM_SECONDS = 10


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> None:
    """``ca.pem`` (test CA), ``broker.p12`` (a cert for 127.0.0.1/localhost it signed, with
    its key and the CA) and ``other-ca.pem`` (a CA that signed nothing here)."""
    d.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=freshness {name}",
            cwd=d,
        )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=localhost",
        cwd=d,
    )  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "broker.pem", "-days", "2", "-extfile", "san.ext",
        cwd=d,
    )  # fmt: skip
    _openssl(
        "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
        "-out", "broker.p12", "-name", "broker", "-passout", f"pass:{KEYSTORE_PASSWORD}",
        cwd=d,
    )  # fmt: skip


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    """The SASL_SSL listener."""
    certs: Path
    home: Path

    def env(self, **changes: str) -> dict[str, str]:
        """The environment of a ``freshness`` process on the SASL_SSL listener."""
        env = {
            "FRESHNESS_KAFKA_BOOTSTRAP": self.bootstrap,
            "FRESHNESS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FRESHNESS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "FRESHNESS_KAFKA_SASL_USERNAME": USER,
            "FRESHNESS_KAFKA_SASL_PASSWORD": PASSWORD,
            "FRESHNESS_KAFKA_SSL_CAFILE": str(self.certs / "ca.pem"),
            "FRESHNESS_HOME": str(self.home),
        }
        env.update(changes)
        return env

    def settings(self, **changes: str) -> Settings:
        env = self.env(**changes)
        return Settings(**{k.removeprefix("FRESHNESS_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates", pytrace=False)
    base = tmp_path_factory.mktemp("secure-kafka")
    make_certificates(base / "certs")
    settings = Settings()
    libs = jars.ensure_jars(settings.kafka_dir, settings.kafka_version)
    ports = [free_port()]
    while len(ports) < 3:
        port = free_port()
        if port not in ports:
            ports.append(port)
    listener = SaslSslListener(
        port=ports[2],
        keystore=base / "certs" / "broker.p12",
        keystore_password=KEYSTORE_PASSWORD,
        users=((USER, PASSWORD),),
    )
    config = BrokerConfig(
        port=ports[0],
        controller_port=ports[1],
        data_dir=base / "kafka",
        libs=libs,
        jvm_opts=TEST_JVM_OPTS,
        sasl_ssl=listener,
    )
    broker = EmbeddedBroker(config)
    try:
        try:
            broker.start(timeout_s=120)
        except BrokerError as exc:
            pytest.fail(f"the SASL_SSL test broker did not start: {exc}", pytrace=False)
        assert config.sasl_ssl_bootstrap is not None
        yield SecureBroker(config.sasl_ssl_bootstrap, base / "certs", base / "home")
    finally:
        broker.stop()


def cli(env: dict[str, str], *argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], pattern: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert re.fullmatch(pattern, lines[0]), lines[0]
    print(lines[0])


WRONG_PASSWORD_LINE = (
    r"freshness: cannot connect to Kafka at 127\.0\.0\.1:\d+: SASL authentication failed for "
    r"user 'alice' \(check FRESHNESS_KAFKA_SASL_USERNAME / FRESHNESS_KAFKA_SASL_PASSWORD\)"
)
WRONG_CA_LINE = (
    r"freshness: cannot connect to Kafka at 127\.0\.0\.1:\d+: the broker's TLS certificate is "
    r"not trusted \(.+\); check FRESHNESS_KAFKA_SSL_CAFILE .*"
)


def test_every_client_works_over_sasl_ssl(secure_broker: SecureBroker, tmp_path: Path) -> None:
    env = secure_broker.env()
    created = cli(env, "topics", "create", timeout=90)
    assert created.returncode == 0, created.stdout + created.stderr
    assert f"on {secure_broker.bootstrap}" in created.stdout

    worker = WorkerProcess(secure_broker.bootstrap, tmp_path, "funnel-freshness")
    saved = dict(os.environ)
    os.environ.update(env)  # WorkerProcess passes os.environ on (plus its own variables)
    try:
        worker.start()
        truth = tmp_path / "truth.jsonl"
        sim = cli(env, "simulate", "--rate", "40", "--duration", f"{SIM_SECONDS}s",
                  "--seed", "7", "--truth", str(truth), timeout=SIM_SECONDS + 60)  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        score = cli(env, "score", "--truth", str(truth), "--wait", "60", timeout=180)
        print(score.stdout)
        assert score.returncode == 0, score.stdout + score.stderr
        assert "PASS: every precision and recall is 1.000" in score.stdout
        asyncio.run(api_consumer_gets_ready(secure_broker.settings()))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        worker.stop()


async def api_consumer_gets_ready(settings: Settings) -> None:
    model = ReadModel(load_flows(None))
    consumer = OutputConsumer(settings, model)
    consumer.start()
    try:
        await consumer.wait_ready(60)
        assert consumer.error is None
    finally:
        await consumer.stop()


def test_a_wrong_password_stops_topics_create_and_the_worker_in_one_line(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    env = secure_broker.env(FRESHNESS_KAFKA_SASL_PASSWORD="not-the-password")
    began = time.monotonic()
    assert_one_line(cli(env, "topics", "create", timeout=60), WRONG_PASSWORD_LINE)
    env["FRESHNESS_HOME"] = str(tmp_path)
    assert_one_line(cli(env, "worker", timeout=60), WRONG_PASSWORD_LINE)
    assert time.monotonic() - began < 30, "refusals must not be retried"


def test_a_wrong_ca_stops_topics_create_and_simulate_in_one_line(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    env = secure_broker.env(FRESHNESS_KAFKA_SSL_CAFILE=str(secure_broker.certs / "other-ca.pem"))
    assert_one_line(cli(env, "topics", "create", timeout=60), WRONG_CA_LINE)
    sim = cli(env, "simulate", "--rate", "5", "--duration", "2s", timeout=60)
    assert_one_line(sim, WRONG_CA_LINE)


async def test_the_api_reader_stops_retrying_on_a_wrong_password(
    secure_broker: SecureBroker,
) -> None:
    settings = secure_broker.settings(FRESHNESS_KAFKA_SASL_PASSWORD="not-the-password")
    model = ReadModel(load_flows(None))
    consumer = OutputConsumer(settings, model, retry_ms=100)
    consumer.start()
    try:
        deadline = time.monotonic() + 20
        while consumer.error is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert consumer.error is not None, "the reader kept retrying a refusal"
        assert f"{KafkaRefusedError.__name__}: cannot connect" in str(consumer.error)
        assert "SASL authentication failed for user 'alice'" in str(consumer.error)
        assert not model.progress.ready
        assert "SASL authentication failed" in model.progress.waiting_for[0]
    finally:
        await consumer.stop()
