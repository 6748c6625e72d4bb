"""Kafka for every part of the monitor: clients, metadata, seeking by time, topics, errors.

* :mod:`~streams.kafka.clients`: :class:`KafkaConnection` and the one place connection
  settings become client options (:func:`client_options`); :func:`new_consumer`,
  :func:`new_producer` and :func:`new_admin` build every client from it, and
  :func:`faust_app_options` gives a Faust app the same connection.
* :mod:`~streams.kafka.metadata`: :func:`topic_partitions`, a fresh snapshot of which
  partitions topics have (the one use of aiokafka's private metadata call).
* :mod:`~streams.kafka.offsets`: :func:`offsets_for_time`, where reading from a timestamp
  starts in each partition.
* :mod:`~streams.kafka.errors`: :func:`retriable` and :class:`KafkaFatalError`, how readers
  tell an outage they wait out from a refusal they stop on.
* :mod:`~streams.kafka.admin`: :func:`ensure_topics`, creating what
  :func:`streams.topics.required_topics` lists.
"""

from streams.kafka.admin import ensure_required_topics, ensure_topics
from streams.kafka.clients import (
    KafkaConnection,
    KafkaRefusedError,
    check_connection,
    client_options,
    connection,
    faust_app_options,
    new_admin,
    new_consumer,
    new_producer,
)
from streams.kafka.errors import KafkaFatalError, fatal, retriable
from streams.kafka.metadata import partition_list, topic_partitions
from streams.kafka.offsets import offsets_for_time

__all__ = [
    "KafkaConnection",
    "KafkaFatalError",
    "KafkaRefusedError",
    "check_connection",
    "client_options",
    "connection",
    "ensure_required_topics",
    "ensure_topics",
    "fatal",
    "faust_app_options",
    "new_admin",
    "new_consumer",
    "new_producer",
    "offsets_for_time",
    "partition_list",
    "retriable",
    "topic_partitions",
]
