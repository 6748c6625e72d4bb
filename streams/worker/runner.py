"""``freshness worker``: make sure the topics exist, then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio

from streams import topics
from streams.admin import ensure_topics
from streams.flows.config import flow_topics, load_flows
from streams.settings import Settings


def run(settings: Settings) -> int:
    import faust

    from streams.worker.app import build_worker

    flows = load_flows(settings.flows)
    specs = topics.ALL_TOPICS + tuple(topics.TopicSpec(t) for t in flow_topics(flows))
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap, specs, settings.partitions, settings.replication_factor
        )
    )
    worker = build_worker(settings, flows)
    faust.Worker(worker.app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
