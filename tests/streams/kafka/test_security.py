"""Kafka security settings: which combinations are refused, what each client is given, how a
refused handshake is worded, and the broker's SASL_SSL listener. No broker here
(``tests/integration/test_kafka_security.py`` has the real one)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from pydantic import SecretStr

from streams import kafka
from streams.broker.process import BrokerConfig, SaslSslListener, render_properties
from streams.errors import BrokerError, ConfigError
from streams.kafka import KafkaConnection, KafkaRefusedError
from streams.settings import load_settings

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")

SASL_SSL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "alice",
    "kafka_sasl_password": "s3cret",
}


def test_sasl_ssl_settings_become_every_clients_options() -> None:
    settings = load_settings(kafka_bootstrap="k1:9093", kafka_ssl_cafile=CA, **SASL_SSL)
    options = kafka.client_options(settings)
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": "k1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert set(kafka.client_options(settings)) <= kafka.clients.CONNECTION_OPTIONS
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in repr(kafka.connection(settings))


def test_plaintext_stays_bootstrap_alone_and_unwrapped() -> None:
    assert kafka.client_options(load_settings()) == {"bootstrap_servers": "127.0.0.1:9092"}
    assert kafka.faust_app_options(KafkaConnection("k:1")) == {"broker": ["kafka://k:1"]}


def test_a_faust_app_gets_the_same_credentials() -> None:
    sasl = kafka.faust_app_options(load_settings(kafka_bootstrap="k1:9093", **SASL_SSL))
    creds = sasl["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.protocol.value, creds.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (creds.username, creds.password) == ("alice", "s3cret")
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    tls = kafka.faust_app_options(load_settings(kafka_security_protocol="SSL"))
    assert isinstance(tls["broker_credentials"], faust.SSLCredentials)
    plain = kafka.faust_app_options(
        load_settings(**{**SASL_SSL, "kafka_security_protocol": "SASL_PLAINTEXT"})
    )
    assert plain["broker_credentials"].protocol.value == "SASL_PLAINTEXT"
    assert plain["broker_credentials"].ssl_context is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"kafka_sasl_password": None},
            "FRESHNESS_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs FRESHNESS_KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_sasl_mechanism": None, "kafka_sasl_username": None},
            "needs FRESHNESS_KAFKA_SASL_MECHANISM, FRESHNESS_KAFKA_SASL_USERNAME (mechanism",
        ),
        (
            {"kafka_security_protocol": "SSL"},
            "FRESHNESS_KAFKA_SASL_MECHANISM, FRESHNESS_KAFKA_SASL_USERNAME, "
            "FRESHNESS_KAFKA_SASL_PASSWORD set but FRESHNESS_KAFKA_SECURITY_PROTOCOL=SSL does "
            "not use SASL",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_cafile": CA},
            "FRESHNESS_KAFKA_SSL_CAFILE set but FRESHNESS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT "
            "does not use TLS",
        ),
        (
            {"kafka_ssl_keyfile": CA},
            "FRESHNESS_KAFKA_SSL_KEYFILE is set without FRESHNESS_KAFKA_SSL_CERTFILE",
        ),
        (
            {"kafka_ssl_cafile": "/nonexistent/ca.pem"},
            "FRESHNESS_KAFKA_SSL_CAFILE=/nonexistent/ca.pem is not a readable file",
        ),
        (
            {"kafka_sasl_mechanism": "GSSAPI"},
            "FRESHNESS_KAFKA_SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256' or "
            "'SCRAM-SHA-512'",
        ),
    ],
)
def test_a_combination_that_cannot_work_is_refused_in_one_line(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**{**SASL_SSL, **changes})
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith("invalid settings: ")


def test_sasl_settings_without_a_sasl_protocol_are_refused() -> None:
    with pytest.raises(ConfigError, match="FRESHNESS_KAFKA_SASL_USERNAME set but"):
        load_settings(kafka_sasl_username="alice")


CONN = KafkaConnection("h:1", "SASL_SSL", "SCRAM-SHA-512", "alice", SecretStr("x"))


def _verify_error() -> ssl.SSLCertVerificationError:
    err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    err.verify_message = "self-signed certificate in certificate chain"
    return err


@pytest.mark.parametrize(
    ("exc", "wording"),
    [
        (
            SaslAuthenticationFailed("invalid credentials"),
            "SASL authentication failed for user 'alice' (check FRESHNESS_KAFKA_SASL_USERNAME"
            " / FRESHNESS_KAFKA_SASL_PASSWORD)",
        ),
        (
            UnsupportedSaslMechanismError(),
            "the listener does not accept SASL mechanism SCRAM-SHA-512; check "
            "FRESHNESS_KAFKA_SASL_MECHANISM",
        ),
        (
            _verify_error(),
            "the broker's TLS certificate is not trusted (self-signed certificate in "
            "certificate chain); check FRESHNESS_KAFKA_SSL_CAFILE",
        ),
        (ssl.SSLError(1, "wrong version number"), "the TLS handshake failed ("),
        (ConnectionRefusedError(), None),
        (KafkaConnectionError("down"), None),
        (TimeoutError(), None),
    ],
)
def test_a_refused_handshake_says_what_and_which_settings(
    exc: BaseException, wording: str | None
) -> None:
    said = kafka.clients.refusal(CONN, exc)
    if wording is None:
        assert said is None, "an unreachable broker is retried, not a refusal"
    else:
        assert said is not None
        assert said.startswith(wording)


def test_a_refusal_is_a_fatal_one_line_error() -> None:
    err = KafkaRefusedError("cannot connect to Kafka at h:1: SASL authentication failed")
    assert isinstance(err, BrokerError)
    assert not kafka.retriable(err)


async def test_a_secured_client_is_checked_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(conn: KafkaConnection) -> None:
        raise KafkaRefusedError(f"cannot connect to Kafka at {conn.bootstrap}: refused")

    monkeypatch.setattr(kafka.clients, "check_connection", refuse)
    settings = load_settings(kafka_bootstrap="127.0.0.1:1", **SASL_SSL)
    for client in (kafka.new_consumer(settings), kafka.new_producer(settings)):
        with pytest.raises(KafkaRefusedError, match=r"127\.0\.0\.1:1: refused"):
            await client.start()
    plain = kafka.new_producer(KafkaConnection("127.0.0.1:1"))
    assert "start" not in vars(plain), "a plaintext client is aiokafka's own"
    await plain.stop()


def test_the_broker_gains_a_sasl_ssl_listener_only_when_asked(tmp_path: Path) -> None:
    base = BrokerConfig(port=1, controller_port=2, data_dir=tmp_path, libs=tmp_path)
    listener = SaslSslListener(3, tmp_path / "b.p12", "pw", (("alice", "a-pw"),))
    plain = render_properties(base)
    assert "SASL" not in plain
    assert "ssl." not in plain
    secure = BrokerConfig(
        port=1, controller_port=2, data_dir=tmp_path, libs=tmp_path, sasl_ssl=listener
    )
    props = dict(line.split("=", 1) for line in render_properties(secure).splitlines())
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL_SSL://127.0.0.1:3"
    )
    assert props["advertised.listeners"].endswith(",SASL_SSL://127.0.0.1:3")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(tmp_path / "b.p12")
    assert secure.sasl_ssl_bootstrap == "127.0.0.1:3"
    assert base.sasl_ssl_bootstrap is None
    assert listener.scram_arguments() == [
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=a-pw]",
    ]
    with pytest.raises(BrokerError, match="may not contain"):
        SaslSslListener(3, tmp_path, "pw", (("bob", "a,b"),)).scram_arguments()
