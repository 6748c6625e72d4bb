"""streams.kafka.admin without a broker: the topic list, topic configs, CreateTopics answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams import topics
from streams.errors import BrokerError
from streams.flows.config import load_flows
from streams.kafka import KafkaConnection, admin
from streams.topics import BREACHES, TopicSpec, flow_events_topic, required_topics


def test_breaches_are_compacted_and_every_topic_takes_records_over_the_decoders_limit() -> None:
    specs = {s.name: s for s in required_topics(load_flows(None), "app")}
    size = {"max.message.bytes": str(topics.MESSAGE_MAX_BYTES)}
    assert admin.topic_config(specs[BREACHES]) == {"cleanup.policy": "compact", **size}
    assert admin.topic_config(TopicSpec("plain")) == size


def test_required_topics_are_the_flows_inputs_the_outputs_and_the_app_ids_internal_topic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(
        "flows:\n  - name: orders\n    start: {topic: shop.order.placed, key: id}\n"
        "    completion: {topic: shop.order.shipped, key: id}\n    target: 1h\n"
    )
    names = [s.name for s in required_topics(load_flows(path), "shop-monitor")]
    assert names == [
        "shop.order.placed",
        "shop.order.shipped",
        *(s.name for s in topics.OUTPUT_TOPICS),
        "shop-monitor-flow-events",
        "shop-monitor-alerter-control",
    ]
    default = [s.name for s in required_topics(load_flows(None), "a")]
    assert set(default) >= set(topics.INPUT_TOPICS)


def test_the_internal_topics_are_named_after_the_app_id() -> None:
    assert flow_events_topic("funnel-freshness") == "funnel-freshness-flow-events"
    internal = [s for s in required_topics((), "x") if s.internal]
    assert internal == [
        TopicSpec("x-flow-events", internal=True),
        TopicSpec("x-alerter-control", internal=True),
    ]


def test_the_alerts_outbox_and_the_delivery_progress_are_compacted() -> None:
    specs = {s.name: s for s in required_topics((), "x")}
    assert specs[topics.ALERTS].compacted
    assert specs[topics.ALERT_DELIVERIES].compacted


def test_created_and_raced_topics_are_told_apart() -> None:
    answer = [("a", 0, None), ("b", admin.TOPIC_ALREADY_EXISTS, "exists"), ("c", 0, None)]
    assert admin._check_created(answer) == (["a", "c"], ["b"])


def test_other_errors_name_the_topic() -> None:
    answer = [("a", 0, None), ("b", 37, "Number of partitions is invalid.")]
    with pytest.raises(BrokerError, match=r"b: error 37 Number of partitions is invalid"):
        admin._check_created(answer)


def test_duplicate_specs_are_created_once() -> None:
    specs = [TopicSpec("x"), TopicSpec("y", compacted=True), TopicSpec("x")]
    assert [s.name for s in admin._dedupe(specs)] == ["x", "y"]


async def test_unreachable_cluster_says_what_to_do() -> None:
    from streams.broker.process import free_port

    unreachable = KafkaConnection(f"127.0.0.1:{free_port()}")
    with pytest.raises(BrokerError, match=r"cannot reach Kafka.*freshness kafka start"):
        await admin.ensure_topics(unreachable, [TopicSpec("x")], 1, 1)
