"""The one exception tree of the project.

``FreshnessError`` is the root. Callers branch on the subclass; whether a Kafka error is
worth retrying is for :func:`streams.kafka.errors.retriable` to say (from aiokafka's own
flag), and an alert sink's answer is classified by its connector
(:mod:`streams.connectors.sink`). HTTP status mapping happens only at the API edge. Every
message says what was wrong and what to do about it.
"""

from __future__ import annotations


class FreshnessError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(FreshnessError):
    """Settings or a flow definition are wrong; fix the configuration and start again."""


class InputError(FreshnessError):
    """An input record cannot be used; it is quarantined with ``reason``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class StateError(FreshnessError):
    """The worker's durable state cannot be read or written; the worker stops."""


class BrokerError(FreshnessError):
    """The embedded broker cannot be fetched, started or reached, or Kafka refused a client
    in a way retrying cannot fix (:class:`streams.kafka.errors.KafkaFatalError`)."""
