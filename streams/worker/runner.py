"""``freshness worker``: make sure every topic of :func:`streams.topics.required_topics`
exists (for the configured flows and app id), then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio

from streams.flows.config import load_flows
from streams.kafka.admin import ensure_required_topics
from streams.settings import Settings


def run(settings: Settings) -> int:
    import faust

    from streams.worker.app import build_worker

    flows = load_flows(settings.flows)
    asyncio.run(ensure_required_topics(settings, flows))
    worker = build_worker(settings, flows)
    faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
