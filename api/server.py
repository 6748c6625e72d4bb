"""``freshness api``: serve :func:`api.app.create_app` with uvicorn.

Binds ``settings.api_host:settings.api_port`` (``127.0.0.1:8000`` by default). Starts and
answers ``/healthz`` immediately, even while Kafka is down; ``/readyz`` turns 200 once the
read model has caught up with the output topics. Returns the process exit code.
"""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from streams.logs import install_repeat_filter
from streams.settings import Settings


def run(settings: Settings) -> int:
    """Serve until interrupted; 0 on a clean shutdown."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_repeat_filter()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
