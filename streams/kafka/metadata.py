"""Fresh cluster metadata: which partitions topics have right now."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError


async def topic_partitions(consumer: Any, names: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """The partition ids of each topic of ``names`` as the cluster has them now, sorted;
    ``()`` for a topic that does not exist.

    Works on a started consumer that tracks none of ``names`` (a group-less consumer before
    ``assign()``): aiokafka's public ``partitions_for_topic`` only knows topics its client
    already tracks, and no public call returns a fresh snapshot of others. This function
    is the one place that reads the private ``consumer._client.fetch_all_metadata()``
    (aiokafka 0.14; check it on every upgrade). When no broker answers it raises the
    retriable ``KafkaConnectionError``, not aiokafka's plain (non-retriable) ``KafkaError``.
    """
    try:
        cluster = await consumer._client.fetch_all_metadata()
    except KafkaError as exc:
        if type(exc) is not KafkaError:
            raise
        raise KafkaConnectionError(f"no broker answered a metadata request ({exc})") from exc
    return {name: tuple(sorted(cluster.partitions_for_topic(name) or ())) for name in names}


def partition_list(partitions: Mapping[str, Sequence[int]]) -> list[TopicPartition]:
    """``{topic: (0, 1)}`` as ``[TopicPartition(topic, 0), TopicPartition(topic, 1)]``, in
    the mapping's order."""
    return [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
