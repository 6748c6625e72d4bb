"""Every Kafka client the monitor makes, built from one description of the connection.

:func:`client_options` is the one place where connection settings become aiokafka
arguments; :func:`new_consumer`, :func:`new_producer` and :func:`new_admin` add them to
every client and refuse a caller's attempt to set them itself, so no client can connect
differently from the others. :func:`faust_app_options` is the same for a Faust app (which
builds its own aiokafka clients from ``broker`` and, later, ``broker_credentials``).

Security seam (DESIGN section 13): the ``FRESHNESS_KAFKA_SECURITY_PROTOCOL``, ``_SASL_*`` and
``_SSL_*`` settings become fields of :class:`KafkaConnection`, are read from
:class:`~streams.settings.Settings` in :func:`connection` and mapped to aiokafka's
``security_protocol``, ``sasl_*`` and ``ssl_context`` in :func:`client_options`. Nothing
outside this module changes (Faust's ``broker_credentials`` in :func:`faust_app_options`).
Today every connection is plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings

CONNECTION_OPTIONS = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)
"""aiokafka arguments only :func:`client_options` may set."""


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where and how every client connects (tests and benchmarks build one directly)."""

    bootstrap: str
    """Bootstrap servers, ``host:port[,host:port]``."""


def connection(kafka: Settings | KafkaConnection) -> KafkaConnection:
    """The connection described by ``kafka`` (a :class:`KafkaConnection` is returned as is)."""
    if isinstance(kafka, KafkaConnection):
        return kafka
    return KafkaConnection(bootstrap=kafka.kafka_bootstrap)


def client_options(kafka: Settings | KafkaConnection) -> dict[str, Any]:
    """The aiokafka arguments of the connection: the same for consumers, producers and
    admin clients. Only keys of :data:`CONNECTION_OPTIONS` appear."""
    conn = connection(kafka)
    return {"bootstrap_servers": conn.bootstrap}


def faust_app_options(kafka: Settings | KafkaConnection) -> dict[str, Any]:
    """The ``faust.App`` arguments of the connection: ``broker`` (one ``kafka://`` URL per
    bootstrap server)."""
    conn = connection(kafka)
    urls = [f"kafka://{hp.strip()}" for hp in conn.bootstrap.split(",") if hp.strip()]
    return {"broker": urls}


def _with_connection(kafka: Settings | KafkaConnection, options: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(CONNECTION_OPTIONS & options.keys())
    if clash:
        raise TypeError(
            f"{', '.join(clash)} come from the connection (streams.kafka.client_options), "
            "not from the caller"
        )
    return {**client_options(kafka), **options}


def new_consumer(kafka: Settings | KafkaConnection, **options: Any) -> AIOKafkaConsumer:
    """An unstarted ``AIOKafkaConsumer`` on the connection; ``options`` are aiokafka's own
    (``group_id``, ``enable_auto_commit``, ...). Call it from a coroutine: aiokafka binds the
    running event loop."""
    return AIOKafkaConsumer(**_with_connection(kafka, options))


def new_producer(kafka: Settings | KafkaConnection, **options: Any) -> AIOKafkaProducer:
    """An unstarted ``AIOKafkaProducer`` on the connection (``acks``, ``linger_ms``, ...)."""
    return AIOKafkaProducer(**_with_connection(kafka, options))


def new_admin(kafka: Settings | KafkaConnection, **options: Any) -> AIOKafkaAdminClient:
    """An unstarted ``AIOKafkaAdminClient`` on the connection (``request_timeout_ms``, ...)."""
    return AIOKafkaAdminClient(**_with_connection(kafka, options))
