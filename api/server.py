"""``freshness api``: serve :func:`api.app.create_app` with uvicorn.

Binds ``settings.api_host:settings.api_port`` (``127.0.0.1:8000`` by default). Starts and
answers ``/healthz`` immediately, even while Kafka is down; ``/readyz`` turns 200 once the
read model has caught up with the output topics.

Guarantees:

* A Kafka refusal that retrying cannot fix ends the process non-zero with one line (a
  :class:`~streams.kafka.KafkaFatalError`, printed by the CLI): refused credentials or TLS
  settings before the server starts (:func:`~streams.kafka.check_connection`, the secured
  handshake every client makes; nothing else is printed), and any refusal the output reader
  meets later (an ACL, a broker that starts refusing: its ``on_fatal``) after a clean
  shutdown. An unreachable broker is not a refusal: the API serves and waits it out.
* Weak API secrets are refused by the settings in production; in development each is one
  WARNING line at start-up.
* Every answer has the API's JSON error shape, even those uvicorn writes itself: a head
  h11 cannot parse, or more than :data:`~api.limits.MAX_HEAD_BYTES` of it still pending, gets
  a JSON 400 (:class:`JsonErrorH11Protocol`), not uvicorn's plain text (the limits a parsed
  head is held to are :mod:`api.limits`'). uvicorn sends no ``Server`` header.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.app import create_app
from api.limits import MAX_HEAD_BYTES, error_body
from streams.kafka import KafkaFatalError, check_connection
from streams.logs import install_repeat_filter
from streams.settings import Settings, weak_api_secrets

log = logging.getLogger(__name__)


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering the requests h11 cannot parse (malformed, or more
    than :data:`~api.limits.MAX_HEAD_BYTES` of a head pending) with the API's JSON error body.

    uvicorn answers those before any ASGI app sees them, from ``send_400_response``; this is
    the one method replaced, through ``uvicorn.Config(http=...)``, its documented way of
    choosing the protocol class.
    """

    def send_400_response(self, msg: str) -> None:
        body = error_body(
            "bad_request",
            f"the request is malformed, or its request line and headers exceed "
            f"{MAX_HEAD_BYTES} bytes",
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def uvicorn_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration every server of the API uses (``freshness api``, the demo)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=JsonErrorH11Protocol,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        server_header=False,
        **options,
    )


def run(settings: Settings) -> int:
    """Serve until interrupted; 0 on a clean shutdown, 1 if the server could not start.

    Raises :class:`KafkaFatalError` when Kafka refuses the connection's credentials or TLS
    settings (before serving), or refuses the reader later (after shutting down).
    """
    asyncio.run(check_connection(settings))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_repeat_filter()
    for line in weak_api_secrets(settings):
        log.warning("%s (refused with FRESHNESS_ENV=production)", line)
    refused: list[KafkaFatalError] = []
    server: uvicorn.Server | None = None

    def stop(error: KafkaFatalError) -> None:
        refused.append(error)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=stop)
    config = uvicorn_config(
        app, settings.api_host, settings.api_port, log_level="info", access_log=False
    )
    server = uvicorn.Server(config)
    server.run()
    if refused:
        raise refused[0]
    return 0 if server.started else 1
