"""Faust settings that are not the user's to choose: one home, each value with its reason.

User-facing knobs (partitions, replication, session timeout, batch sizes that matter to
latency) are in :class:`~streams.settings.Settings`; these are fixed properties of how the
worker uses Faust, measured with ``bench/throughput.py`` (``docs/benchmarks.md``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final

FAUST_TUNING: Final[MappingProxyType[str, Any]] = MappingProxyType(
    {
        # Faust's own aiohttp server (port 6066) serves nothing the monitor uses.
        "web_enabled": False,
        # A new worker reads the internal topic and the changelog from their start.
        "consumer_auto_offset_reset": "earliest",
        # Every partition of the join is owned by exactly one agent: no leader election.
        "topic_disable_leader": True,
        # Standbys double the changelog reads on two cores; recovery is from the changelog.
        "table_standby_replicas": 0,
        # Output and changelog records are appended in bulk: let batches fill for 5 ms.
        "producer_linger_ms": 5,
        "producer_max_batch_size": 256 * 1024,
        # One flow-events message carries up to FRESHNESS_INGEST_BATCH events, so a poll of
        # 2000 messages is plenty; the stream buffer holds a few polls.
        "broker_max_poll_records": 2000,
        "stream_buffer_maxsize": 8192,
    }
)
"""Keyword arguments of :class:`faust.App` that :func:`streams.worker.app.build_worker`
passes as they are."""
