"""streams.admin without a broker: topic configs and CreateTopics answers."""

from __future__ import annotations

import pytest

from streams import admin
from streams.errors import BrokerError
from streams.topics import ALL_TOPICS, BREACHES, TopicSpec


def test_breaches_are_compacted() -> None:
    specs = {s.name: s for s in ALL_TOPICS}
    assert admin.topic_config(specs[BREACHES]) == {"cleanup.policy": "compact"}
    assert admin.topic_config(TopicSpec("plain")) == {}


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

    with pytest.raises(BrokerError, match=r"cannot reach Kafka.*freshness kafka start"):
        await admin.ensure_topics(f"127.0.0.1:{free_port()}", [TopicSpec("x")], 1, 1)
