"""``freshness api`` when Kafka refuses its credentials: it exits non-zero with one line,
whether the refusal comes at start-up (the secured handshake, before anything is served) or
later (the broker was unreachable at start, then came up and refused: the output reader's
``on_fatal`` shuts the server down cleanly). On the embedded broker with a SASL_SSL SCRAM
listener and certificates made at test time (``tests/integration/test_kafka_security.py``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from streams.broker import jars
from streams.broker.process import BrokerConfig, EmbeddedBroker, SaslSslListener, free_port
from streams.settings import Settings
from tests.conftest import TEST_JVM_OPTS
from tests.integration.test_kafka_security import (
    KEYSTORE_PASSWORD,
    PASSWORD,
    USER,
    WRONG_PASSWORD_LINE,
    SecureBroker,
    assert_one_line,
    make_certificates,
    secure_broker,
)

pytestmark = pytest.mark.integration
__all__ = ["secure_broker"]  # a fixture, used by name

REFUSED_LATER_LINE = (
    r"freshness: the API's output reader stopped: KafkaRefusedError: cannot connect to Kafka "
    r"at 127\.0\.0\.1:\d+: SASL authentication failed for user 'alice' .*"
)


def api_argv() -> list[str]:
    return [sys.executable, "-m", "streams.cli", "api"]


def test_a_refused_password_at_start_up_exits_with_one_line(
    secure_broker: SecureBroker,
) -> None:
    env = secure_broker.env(
        FRESHNESS_KAFKA_SASL_PASSWORD="not-the-password", FRESHNESS_API_PORT=str(free_port())
    )
    proc = subprocess.run(
        api_argv(), env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert_one_line(proc, WRONG_PASSWORD_LINE)


def sasl_broker(base: Path) -> tuple[EmbeddedBroker, str]:
    """An unstarted broker with a SASL_SSL listener; its SASL_SSL bootstrap."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates", pytrace=False)
    make_certificates(base / "certs")
    settings = Settings()
    ports: list[int] = []
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
        libs=jars.ensure_jars(settings.kafka_dir, settings.kafka_version),
        jvm_opts=TEST_JVM_OPTS,
        sasl_ssl=listener,
    )
    assert config.sasl_ssl_bootstrap is not None
    return EmbeddedBroker(config), config.sasl_ssl_bootstrap


def test_a_broker_that_refuses_after_start_up_stops_the_api_cleanly(tmp_path: Path) -> None:
    broker, bootstrap = sasl_broker(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "FRESHNESS_KAFKA_BOOTSTRAP": bootstrap,
        "FRESHNESS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "FRESHNESS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRESHNESS_KAFKA_SASL_USERNAME": USER,
        "FRESHNESS_KAFKA_SASL_PASSWORD": "not-the-password",
        "FRESHNESS_KAFKA_SSL_CAFILE": str(tmp_path / "certs" / "ca.pem"),
        "FRESHNESS_HOME": str(tmp_path / "home"),
        "FRESHNESS_API_PORT": str(port),
    }
    stderr = tmp_path / "api.stderr"
    with stderr.open("wb") as err:
        api = subprocess.Popen(api_argv(), env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while True:  # nothing listens on the bootstrap yet: the API serves and waits
            assert api.poll() is None, stderr.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.2)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503
        broker.start(timeout_s=120)  # now the listener answers, and refuses the password
        code = api.wait(90)
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
        broker.stop()
    text = stderr.read_text()
    assert code != 0, text
    lines = text.strip().splitlines()
    assert re.fullmatch(REFUSED_LATER_LINE, lines[-1]), lines[-1]
    assert "Traceback" not in text
    assert "Application shutdown complete" in text  # a clean shutdown, not a crash
