"""Topic administration: make sure every topic the monitor needs exists.

:func:`ensure_topics` is the one reusable entry point (the CLI, the worker, ``freshness up``
and the tests call it, with :func:`streams.topics.required_topics`). It is idempotent: a
topic that already exists is reported, never altered, so running it against a live cluster
is safe. :func:`committed_offsets` reads a group's committed offsets (the worker's join
reads where it resumes, ``streams.worker.positions``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic

from streams.core.model import Flow
from streams.errors import BrokerError
from streams.flows.config import load_flows
from streams.kafka.clients import KafkaConnection, KafkaRefusedError, connection, new_admin
from streams.settings import Settings
from streams.topics import MESSAGE_MAX_BYTES, TopicSpec, required_topics

TOPIC_ALREADY_EXISTS = 36
REQUEST_TIMEOUT_MS = 30_000
LEADER_WAIT_S = 30.0


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """Broker-side configs a topic is created with: ``cleanup.policy`` for compacted topics,
    and on every topic ``max.message.bytes`` = :data:`~streams.topics.MESSAGE_MAX_BYTES`, so
    a record over the decoder's limit reaches the worker (and is quarantined as
    ``too_large``) on a cluster whose default is Kafka's 1 MiB."""
    config = {"max.message.bytes": str(MESSAGE_MAX_BYTES)}
    if spec.compacted:
        config["cleanup.policy"] = "compact"
    return config


async def ensure_topics(
    kafka: Settings | KafkaConnection,
    specs: Iterable[TopicSpec],
    partitions: int,
    replication_factor: int,
) -> tuple[list[str], list[str]]:
    """Create each topic of ``specs`` that does not exist; return ``(created, existing)``.

    Idempotent and safe to race with another creator (an "already exists" answer counts as
    existing). Existing topics are left as they are, whatever their partition count. Returns
    once every created topic has a leader on every partition. Raises :class:`BrokerError`
    when the cluster cannot be reached or refuses a creation.
    """
    bootstrap = connection(kafka).bootstrap
    wanted = _dedupe(specs)
    admin = new_admin(kafka, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        await asyncio.wait_for(admin.start(), REQUEST_TIMEOUT_MS / 1000)
    except KafkaRefusedError:  # already one line saying which settings to check
        await admin.close()
        raise
    except Exception as exc:
        await admin.close()
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}: {exc}); start it with "
            "`freshness kafka start` or set FRESHNESS_KAFKA_BOOTSTRAP to a running cluster."
        ) from None
    try:
        present = set(await admin.list_topics())
        existing = [s.name for s in wanted if s.name in present]
        missing = [s for s in wanted if s.name not in present]
        created: list[str] = []
        if missing:
            new = [
                NewTopic(s.name, partitions, replication_factor, topic_configs=topic_config(s))
                for s in missing
            ]
            response = await admin.create_topics(new, timeout_ms=REQUEST_TIMEOUT_MS)
            created, raced = _check_created(response.topic_errors)
            existing += raced
            await _wait_for_leaders(admin, created, bootstrap)
        return created, existing
    finally:
        await admin.close()


async def _wait_for_leaders(admin: Any, topics: list[str], bootstrap: str) -> None:
    """Return once every partition of ``topics`` has a leader, so producing right after
    creation does not bounce off ``NOT_LEADER_OR_FOLLOWER``."""
    if not topics:
        return
    deadline = asyncio.get_running_loop().time() + LEADER_WAIT_S
    while True:
        described = await admin.describe_topics(topics)
        if all(_has_leaders(topic) for topic in described):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise BrokerError(
                f"topics {', '.join(topics)} were created on {bootstrap} but have no leader "
                f"after {LEADER_WAIT_S:.0f} s; check the brokers' health."
            )
        await asyncio.sleep(0.05)


def _has_leaders(topic: dict[str, Any]) -> bool:
    partitions = topic.get("partitions") or []
    return (
        topic.get("error_code") == 0
        and bool(partitions)
        and all(p.get("error_code") == 0 and p.get("leader", -1) >= 0 for p in partitions)
    )


def _dedupe(specs: Iterable[TopicSpec]) -> list[TopicSpec]:
    seen: dict[str, TopicSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    return list(seen.values())


def _check_created(topic_errors: Sequence[Sequence[Any]]) -> tuple[list[str], list[str]]:
    """Split a CreateTopics answer into (created, already existing); raise on other errors."""
    created: list[str] = []
    raced: list[str] = []
    failures: list[str] = []
    for entry in topic_errors:
        name, code = str(entry[0]), int(entry[1])
        message = entry[2] if len(entry) > 2 else None
        if code == 0:
            created.append(name)
        elif code == TOPIC_ALREADY_EXISTS:
            raced.append(name)
        else:
            failures.append(f"{name}: error {code} {message or ''}".strip())
    if failures:
        raise BrokerError(
            "Kafka refused to create topics (" + "; ".join(failures) + "); check the partition "
            "count and FRESHNESS_REPLICATION_FACTOR against the cluster."
        )
    return created, raced


async def ensure_required_topics(
    settings: Settings, flows: Sequence[Flow]
) -> tuple[list[str], list[str]]:
    """:func:`ensure_topics` of :func:`~streams.topics.required_topics` for ``flows`` and the
    configured app id, partition count and replication factor: what ``freshness topics
    create``, ``freshness worker`` and ``freshness up`` each make."""
    specs = required_topics(flows, settings.app_id)
    return await ensure_topics(settings, specs, settings.partitions, settings.replication_factor)


def run_create(settings: Settings) -> int:
    """``freshness topics create``: every topic of :func:`ensure_required_topics` for the
    configured flows (``FRESHNESS_FLOWS``)."""
    flows = load_flows(settings.flows)
    compacted = {s.name for s in required_topics(flows, settings.app_id) if s.compacted}
    created, existing = asyncio.run(ensure_required_topics(settings, flows))
    for name in created:
        note = " (compacted)" if name in compacted else ""
        print(f"created {name}: {settings.partitions} partitions{note}")
    for name in existing:
        print(f"found   {name}")
    print(f"{len(created)} created, {len(existing)} already present on {settings.kafka_bootstrap}")
    return 0


async def committed_offsets(
    kafka: Settings | KafkaConnection, group_id: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The committed offset of ``group_id`` in each of ``partitions`` (None: none)."""
    wanted = list(partitions)
    admin = new_admin(kafka, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        await admin.start()
        got = await admin.list_consumer_group_offsets(group_id, partitions=wanted)
    finally:
        await admin.close()
    out: dict[TopicPartition, int | None] = {}
    for tp in wanted:
        md = got.get(tp)
        out[tp] = md.offset if md is not None and md.offset >= 0 else None
    return out
