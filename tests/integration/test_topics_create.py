"""``ensure_topics`` / ``freshness topics create`` on the real broker: idempotent, compacted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, ensure_topics, new_admin
from streams.settings import Settings
from streams.topics import MESSAGE_MAX_BYTES, TopicSpec, required_topics

DEFAULT_TOPICS = required_topics(load_flows(None), Settings.model_fields["app_id"].default)
"""What ``topics create`` makes with the default flows and app id."""


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


async def _describe(
    bootstrap: str, names: list[str], config: str = "cleanup.policy"
) -> tuple[dict[str, int], dict[str, str]]:
    """Partition count and the value of ``config`` of each topic (``value@source`` for any
    config but cleanup.policy: source 1 is the topic's own, 4 and 5 the broker's)."""
    admin = new_admin(KafkaConnection(bootstrap))
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
            entry = next((e for e in entries if e[0] == config), None)
            if entry is None:
                policy[name] = ""
            elif config == "cleanup.policy":
                policy[name] = entry[1]
            else:
                policy[name] = f"{entry[1]}@{entry[3]}"
    return partitions, policy


async def test_ensure_topics_is_idempotent_and_compacts(
    kafka_bootstrap: str, unique_topic: Callable[[str], str]
) -> None:
    plain, compacted = unique_topic("plain"), unique_topic("compacted")
    specs = [TopicSpec(plain), TopicSpec(compacted, compacted=True)]

    conn = KafkaConnection(kafka_bootstrap)
    created, existing = await ensure_topics(conn, specs, 3, 1)
    assert (sorted(created), existing) == (sorted([plain, compacted]), [])
    again = await ensure_topics(conn, specs, 5, 1)
    assert again == ([], [plain, compacted])

    partitions, policy = await _describe(kafka_bootstrap, [plain, compacted])
    assert partitions == {plain: 3, compacted: 3}  # the second call changed nothing
    assert policy == {plain: "delete", compacted: "compact"}
    # set on the topic itself (config source 1, TOPIC_CONFIG), not the broker's default
    _, size = await _describe(kafka_bootstrap, [plain, compacted], "max.message.bytes")
    assert size == dict.fromkeys([plain, compacted], f"{MESSAGE_MAX_BYTES}@1")


async def test_cli_creates_every_topic_of_the_design(kafka_bootstrap: str) -> None:
    env = {**os.environ, "FRESHNESS_KAFKA_BOOTSTRAP": kafka_bootstrap, "FRESHNESS_PARTITIONS": "2"}
    env.pop("FRESHNESS_FLOWS", None)
    env.pop("FRESHNESS_APP_ID", None)
    cmd = [sys.executable, "-m", "streams.cli", "topics", "create"]
    first = await asyncio.to_thread(_run, cmd, env)
    assert first.returncode == 0, first.stderr
    second = await asyncio.to_thread(_run, cmd, env)
    assert second.returncode == 0, second.stderr
    assert f"0 created, {len(DEFAULT_TOPICS)} already present" in second.stdout
    for spec in DEFAULT_TOPICS:
        assert spec.name in first.stdout + second.stdout

    names = [s.name for s in DEFAULT_TOPICS]
    partitions, policy = await _describe(kafka_bootstrap, names)
    assert partitions == dict.fromkeys(names, 2)
    assert {n for n, p in policy.items() if p == "compact"} >= {
        s.name for s in DEFAULT_TOPICS if s.compacted
    }


ORDERS_FLOWS = """\
flows:
  - name: order_to_invoice
    start: {topic: shop.order.placed, key: order_id}
    completion: {topic: billing.invoice.sent, key: order_id}
    target: 30s
"""


async def test_cli_creates_the_topics_of_custom_flows_and_the_app_ids_internal_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With ``FRESHNESS_FLOWS`` naming topics outside the default list, ``topics create``
    makes exactly what the worker needs: those topics, the outputs, ``<app id>-flow-events``."""
    flows_file = tmp_path / "flows.yaml"
    flows_file.write_text(ORDERS_FLOWS)
    app_id = f"custom-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "FRESHNESS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FRESHNESS_FLOWS": str(flows_file),
        "FRESHNESS_APP_ID": app_id,
        "FRESHNESS_PARTITIONS": "2",
    }
    cmd = [sys.executable, "-m", "streams.cli", "topics", "create"]
    done = await asyncio.to_thread(_run, cmd, env)
    assert done.returncode == 0, done.stderr
    wanted = ["shop.order.placed", "billing.invoice.sent", f"{app_id}-flow-events"]
    partitions, _ = await _describe(kafka_bootstrap, wanted)
    assert partitions == dict.fromkeys(wanted, 2)
