"""Every Kafka client the monitor makes, built from one description of the connection.

:func:`client_options` is the one place where connection settings become aiokafka
arguments; :func:`new_consumer`, :func:`new_producer` and :func:`new_admin` add them to
every client and refuse a caller's attempt to set them itself, so no client can connect
differently from the others. :func:`faust_app_options` is the same for a Faust app (which
builds its own aiokafka clients from ``broker`` and ``broker_credentials``).

Security (DESIGN section 13): ``FRESHNESS_KAFKA_SECURITY_PROTOCOL``, ``_SASL_*`` and
``_SSL_*`` (checked together by :func:`streams.settings.kafka_security_problem`) become the
fields of :class:`KafkaConnection` in :func:`connection`, and aiokafka's
``security_protocol``, ``sasl_*`` and ``ssl_context`` in :func:`client_options`.

Guarantee: a client of a secured connection (anything but ``PLAINTEXT``) whose start is
refused for good (wrong password, untrusted certificate, a mechanism or protocol the
listener does not speak) raises :class:`KafkaRefusedError` from ``start()``: one line that
names the address, what was refused and which settings to check. It is not retriable
(:func:`streams.kafka.errors.retriable` says False), so readers stop instead of retrying
forever. An unreachable broker is still the ordinary retriable error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from streams.kafka.errors import KafkaFatalError
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

CHECK_TIMEOUT_S = 10.0
"""How long the start-up check waits for one handshake before leaving it to the client."""


class KafkaRefusedError(KafkaFatalError):
    """The cluster refused this client's credentials or TLS settings; fix them and start
    again (retrying with the same settings cannot succeed)."""


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where and how every client connects (tests and benchmarks build one directly).

    The defaults are a plaintext connection, so ``KafkaConnection(bootstrap)`` is what it
    always was. The combination of fields is checked where settings are read
    (:func:`streams.settings.kafka_security_problem`), not here.
    """

    bootstrap: str
    """Bootstrap servers, ``host:port[,host:port]``."""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


def connection(kafka: Settings | KafkaConnection) -> KafkaConnection:
    """The connection described by ``kafka`` (a :class:`KafkaConnection` is returned as is)."""
    if isinstance(kafka, KafkaConnection):
        return kafka
    return KafkaConnection(
        bootstrap=kafka.kafka_bootstrap,
        security_protocol=kafka.kafka_security_protocol,
        sasl_mechanism=kafka.kafka_sasl_mechanism,
        sasl_username=kafka.kafka_sasl_username,
        sasl_password=kafka.kafka_sasl_password,
        ssl_cafile=kafka.kafka_ssl_cafile,
        ssl_certfile=kafka.kafka_ssl_certfile,
        ssl_keyfile=kafka.kafka_ssl_keyfile,
    )


def ssl_context(conn: KafkaConnection) -> ssl.SSLContext | None:
    """The TLS context of a ``SSL``/``SASL_SSL`` connection (hostname checked; the system's
    CAs unless ``FRESHNESS_KAFKA_SSL_CAFILE``), None otherwise. An unreadable file is a
    :class:`KafkaRefusedError` naming its setting."""
    if not conn.uses_tls:
        return None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=conn.ssl_cafile, certfile=conn.ssl_certfile, keyfile=conn.ssl_keyfile
        )
    except (OSError, ssl.SSLError) as exc:
        raise KafkaRefusedError(
            f"cannot use the TLS files for Kafka at {conn.bootstrap} ({exc}); check "
            "FRESHNESS_KAFKA_SSL_CAFILE / FRESHNESS_KAFKA_SSL_CERTFILE / "
            "FRESHNESS_KAFKA_SSL_KEYFILE (PEM files)"
        ) from None
    return context


def client_options(kafka: Settings | KafkaConnection) -> dict[str, Any]:
    """The aiokafka arguments of the connection: the same for consumers, producers and
    admin clients. Only keys of :data:`CONNECTION_OPTIONS` appear; a plaintext connection
    gives ``bootstrap_servers`` alone (aiokafka's defaults)."""
    conn = connection(kafka)
    options: dict[str, Any] = {"bootstrap_servers": conn.bootstrap}
    if conn.security_protocol == "PLAINTEXT":
        return options
    options["security_protocol"] = conn.security_protocol
    if conn.uses_tls:
        options["ssl_context"] = ssl_context(conn)
    if conn.uses_sasl:
        options["sasl_mechanism"] = conn.sasl_mechanism
        options["sasl_plain_username"] = conn.sasl_username
        password = conn.sasl_password
        options["sasl_plain_password"] = None if password is None else password.get_secret_value()
    return options


def faust_app_options(kafka: Settings | KafkaConnection) -> dict[str, Any]:
    """The ``faust.App`` arguments of the connection: ``broker`` (one ``kafka://`` URL per
    bootstrap server) and, for a secured connection, ``broker_credentials``."""
    import faust

    conn = connection(kafka)
    urls = [f"kafka://{hp.strip()}" for hp in conn.bootstrap.split(",") if hp.strip()]
    options: dict[str, Any] = {"broker": urls}
    context = ssl_context(conn)
    if conn.uses_sasl:
        password = conn.sasl_password
        options["broker_credentials"] = faust.SASLCredentials(
            username=conn.sasl_username,
            password=None if password is None else password.get_secret_value(),
            ssl_context=context,
            mechanism=conn.sasl_mechanism,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


async def check_connection(kafka: Settings | KafkaConnection) -> None:
    """Raise :class:`KafkaRefusedError` when the first bootstrap server refuses this
    connection's TLS or SASL settings; return otherwise (also when it cannot be reached,
    which is for the client's own retries to handle). A plaintext connection is not
    checked. Every secured client runs it at ``start()``; Faust's app should run it first
    too (its own clients log and retry)."""
    conn = connection(kafka)
    if conn.security_protocol == "PLAINTEXT":
        return
    options = client_options(conn)
    options.pop("bootstrap_servers")
    address = conn.bootstrap.split(",")[0].strip()
    host, _, port = address.rpartition(":")
    try:
        link = await asyncio.wait_for(
            create_conn(host, int(port), request_timeout_ms=int(CHECK_TIMEOUT_S * 1000), **options),
            CHECK_TIMEOUT_S,
        )
    except (TimeoutError, KafkaError, OSError) as exc:
        reason = refusal(conn, exc)
        if reason is not None:
            raise KafkaRefusedError(f"cannot connect to Kafka at {address}: {reason}") from None
        return
    link.close()


def refusal(conn: KafkaConnection, exc: BaseException) -> str | None:
    """What ``exc`` from a handshake says was refused, with the settings to check; None for
    an error that is not a refusal (a broker down, a timeout)."""
    user = conn.sasl_username
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"SASL authentication failed for user {user!r} (check FRESHNESS_KAFKA_SASL_USERNAME"
            " / FRESHNESS_KAFKA_SASL_PASSWORD)"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"the listener does not accept SASL mechanism {conn.sasl_mechanism}; check "
            "FRESHNESS_KAFKA_SASL_MECHANISM"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker's TLS certificate is not trusted ({exc.verify_message}); check "
            "FRESHNESS_KAFKA_SSL_CAFILE (the CA that signed the broker's certificate)"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"the TLS handshake failed ({getattr(exc, 'reason', None) or exc}); check that "
            f"FRESHNESS_KAFKA_SECURITY_PROTOCOL={conn.security_protocol} is what this "
            "listener speaks, and FRESHNESS_KAFKA_SSL_*"
        )
    return None


def _checked(client: Any, conn: KafkaConnection) -> Any:
    """``client`` whose ``start`` first runs :func:`check_connection` (plaintext: as is)."""
    if conn.security_protocol == "PLAINTEXT":
        return client
    start = client.start

    async def checked_start() -> None:
        try:
            await check_connection(conn)
        except KafkaRefusedError:
            # Release what the unstarted client holds, so the refusal stays the one line
            # (aiokafka warns about an unclosed producer otherwise).
            close = client.close if isinstance(client, AIOKafkaAdminClient) else client.stop
            with contextlib.suppress(Exception):
                await close()
            raise
        await start()

    client.start = checked_start
    return client


def _with_connection(conn: KafkaConnection, options: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(CONNECTION_OPTIONS & options.keys())
    if clash:
        raise TypeError(
            f"{', '.join(clash)} come from the connection (streams.kafka.client_options), "
            "not from the caller"
        )
    return {**client_options(conn), **options}


def new_consumer(kafka: Settings | KafkaConnection, **options: Any) -> AIOKafkaConsumer:
    """An unstarted ``AIOKafkaConsumer`` on the connection; ``options`` are aiokafka's own
    (``group_id``, ``enable_auto_commit``, ...). Call it from a coroutine: aiokafka binds the
    running event loop."""
    conn = connection(kafka)
    return _checked(AIOKafkaConsumer(**_with_connection(conn, options)), conn)


def new_producer(kafka: Settings | KafkaConnection, **options: Any) -> AIOKafkaProducer:
    """An unstarted ``AIOKafkaProducer`` on the connection (``acks``, ``linger_ms``, ...)."""
    conn = connection(kafka)
    return _checked(AIOKafkaProducer(**_with_connection(conn, options)), conn)


def new_admin(kafka: Settings | KafkaConnection, **options: Any) -> AIOKafkaAdminClient:
    """An unstarted ``AIOKafkaAdminClient`` on the connection (``request_timeout_ms``, ...)."""
    conn = connection(kafka)
    return _checked(AIOKafkaAdminClient(**_with_connection(conn, options)), conn)
