"""What a Kafka error means for a reader: try again, or stop.

Readers branch as aiokafka's own fetcher does (``if not error.retriable: raise``): the
retriable errors (a broker restarting, a leader moving, a topic not there yet) are retried,
everything else stops the reader with a :class:`KafkaFatalError` that says what to check.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError, KafkaTimeoutError

from streams.errors import BrokerError


class KafkaFatalError(BrokerError):
    """Kafka refused in a way retrying cannot fix (authorization, an unsupported version,
    a bad configuration): the reader stops instead of retrying forever."""


def retriable(exc: BaseException) -> bool:
    """Whether a reader should try again after ``exc``.

    True for a ``KafkaError`` whose ``retriable`` flag says so; for ``KafkaTimeoutError``
    (aiokafka raises it once it has retried retriable errors for a whole request timeout:
    the cluster is unreachable, not refusing); and for ``OSError`` (the network, including
    ``TimeoutError``). False for everything else, including programming errors.
    """
    if isinstance(exc, KafkaTimeoutError):
        return True
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    return isinstance(exc, OSError)


def fatal(exc: BaseException, reader: str) -> KafkaFatalError:
    """The one-line error a reader stops with after a non-retriable ``exc``."""
    return KafkaFatalError(
        f"{reader} stopped: {type(exc).__name__}: {exc}. Retrying cannot fix this; check the "
        "cluster (ACLs, broker version) and FRESHNESS_KAFKA_BOOTSTRAP, then start again."
    )
