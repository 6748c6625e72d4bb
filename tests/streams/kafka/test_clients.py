"""Client construction and error classification, without a broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)

from streams import kafka
from streams.errors import BrokerError
from streams.kafka import KafkaConnection
from streams.settings import Settings


def test_options_come_from_the_settings_or_an_explicit_connection() -> None:
    settings = Settings(kafka_bootstrap="k1:9092,k2:9092")
    assert kafka.client_options(settings) == {"bootstrap_servers": "k1:9092,k2:9092"}
    assert kafka.connection(settings) == KafkaConnection("k1:9092,k2:9092")
    explicit = KafkaConnection("127.0.0.1:1")
    assert kafka.connection(explicit) is explicit
    assert kafka.client_options(explicit) == {"bootstrap_servers": "127.0.0.1:1"}
    assert set(kafka.client_options(settings)) <= kafka.clients.CONNECTION_OPTIONS


def test_a_faust_app_gets_one_broker_url_per_bootstrap_server() -> None:
    options = kafka.faust_app_options(KafkaConnection("k1:9092, k2:9093,"))
    assert options == {"broker": ["kafka://k1:9092", "kafka://k2:9093"]}


class Recorder:
    """Stands in for an aiokafka client class: keeps the arguments it was built with."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.mark.parametrize(
    ("build", "cls"),
    [
        (kafka.new_consumer, "AIOKafkaConsumer"),
        (kafka.new_producer, "AIOKafkaProducer"),
        (kafka.new_admin, "AIOKafkaAdminClient"),
    ],
)
def test_every_client_gets_the_connection_and_its_own_options(
    monkeypatch: pytest.MonkeyPatch, build: Callable[..., Any], cls: str
) -> None:
    monkeypatch.setattr(kafka.clients, cls, Recorder)
    client = build(Settings(kafka_bootstrap="k1:9092"), request_timeout_ms=1234)
    assert client.kwargs == {"bootstrap_servers": "k1:9092", "request_timeout_ms": 1234}


@pytest.mark.parametrize("option", ["bootstrap_servers", "security_protocol", "sasl_mechanism"])
def test_a_caller_cannot_set_connection_options(option: str) -> None:
    with pytest.raises(TypeError, match=f"{option} come from the connection"):
        kafka.new_consumer(KafkaConnection("127.0.0.1:1"), **{option: "x"})


@pytest.mark.parametrize(
    ("exc", "again"),
    [
        (KafkaConnectionError("down"), True),
        (NotLeaderForPartitionError(), True),
        (UnknownTopicOrPartitionError(), True),
        (KafkaTimeoutError(), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (TopicAuthorizationFailedError(), False),
        (UnsupportedVersionError(), False),
        (KafkaError("something else"), False),
        (ValueError("a bug"), False),
    ],
)
def test_readers_retry_only_what_kafka_calls_retriable(exc: BaseException, again: bool) -> None:
    assert kafka.retriable(exc) is again


def test_a_fatal_error_is_a_broker_error_that_names_the_reader_and_the_cause() -> None:
    err = kafka.fatal(TopicAuthorizationFailedError(), "the API's output reader")
    assert isinstance(err, BrokerError)
    assert not kafka.retriable(err)
    assert str(err).startswith("the API's output reader stopped: TopicAuthorizationFailedError")
    assert "\n" not in str(err)
