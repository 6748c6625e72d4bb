"""``ensure_topics`` / ``freshness topics create`` on the real broker: idempotent, compacted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.admin import ensure_topics
from streams.topics import ALL_TOPICS, TopicSpec


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


async def _describe(bootstrap: str, names: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Partition count and cleanup.policy of each topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        configs = await admin.describe_configs(resources)
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    policy: dict[str, str] = {}
    for response in configs:
        for _code, _msg, _type, name, entries in response.resources:
            policy[name] = next(e[1] for e in entries if e[0] == "cleanup.policy")
    return partitions, policy


async def test_ensure_topics_is_idempotent_and_compacts(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    plain, compacted = unique_topic("plain"), unique_topic("compacted")
    specs = [TopicSpec(plain), TopicSpec(compacted, compacted=True)]

    created, existing = await ensure_topics(kafka_bootstrap, specs, 3, 1)
    assert (sorted(created), existing) == (sorted([plain, compacted]), [])
    again = await ensure_topics(kafka_bootstrap, specs, 5, 1)
    assert again == ([], [plain, compacted])

    partitions, policy = await _describe(kafka_bootstrap, [plain, compacted])
    assert partitions == {plain: 3, compacted: 3}  # the second call changed nothing
    assert policy == {plain: "delete", compacted: "compact"}


async def test_cli_creates_every_topic_of_the_design(kafka_bootstrap: str) -> None:
    env = {**os.environ, "FRESHNESS_KAFKA_BOOTSTRAP": kafka_bootstrap, "FRESHNESS_PARTITIONS": "2"}
    cmd = [sys.executable, "-m", "streams.cli", "topics", "create"]
    first = await asyncio.to_thread(_run, cmd, env)
    assert first.returncode == 0, first.stderr
    second = await asyncio.to_thread(_run, cmd, env)
    assert second.returncode == 0, second.stderr
    assert f"0 created, {len(ALL_TOPICS)} already present" in second.stdout
    for spec in ALL_TOPICS:
        assert spec.name in first.stdout + second.stdout

    names = [s.name for s in ALL_TOPICS]
    partitions, policy = await _describe(kafka_bootstrap, names)
    assert set(partitions) == set(names)
    assert {n for n, p in policy.items() if p == "compact"} >= {
        s.name for s in ALL_TOPICS if s.compacted
    }
