"""PostHog: the SDK bridge that turns "PostHog answered 2xx" into funnel completions.

An application that sends its lead and payment events to PostHog with posthog-python
instruments its client once, before the first capture::

    bridge = PostHogBridge(KafkaDelivery(settings))     # or HttpDelivery(api_url, token)
    client = bridge.instrument(Posthog(api_key, host=..., flush_interval=0.5))
    client.capture("lead captured", distinct_id=lead_id,
                   properties={"funnel_source": "lead.captured", "funnel_source_id": lead_id})

For every captured event whose properties carry the funnel link (``funnel_source`` and
``funnel_source_id``, names in :class:`LinkProperties`), the moment PostHog answers 2xx for
the batch that holds it, the bridge emits one ``funnel.posthog.ingested`` record
(:class:`Completion`): ``source``, ``source_id``, ``occurred_at`` = that moment (epoch ms
on the injected clock), ``stage: "accepted"``, PostHog's event ``uuid`` and ``event_id`` =
``posthog-accepted-<uuid>``. A batch PostHog refuses emits nothing (the monitor then sees
the start go overdue: that is the point) and is logged with the SDK's own error.

The seam (posthog-python 7.91.1, pinned in pyproject.toml; :meth:`PostHogBridge.instrument`
refuses a client whose internals differ). The SDK has no success callback: ``on_error``
fires only on failure, and ``before_send`` runs when an event is queued, seconds before any
batch exists (``flush_interval`` defaults to 5 s). Every upload goes through one of two
methods, and the bridge wraps both on the client's own objects (no global patching, other
clients in the process are untouched):

* ``Consumer.request(batch)``, called by each background consumer thread of each lane
  (``client._lanes``) with the batch it assembled (``flush_at`` events or what arrived
  within ``flush_interval``). It runs the whole delivery of that batch, the SDK's retries
  included (``Consumer._send``: up to ``max_retries`` more attempts on 5xx, 408, 429 and
  network errors, with backoff), and returns only when an attempt got 200
  (``posthog.request._process_response`` raises ``APIError`` for any other status); it
  raises the last error otherwise, which ``Consumer.upload`` then logs and hands to
  ``on_error``. So "returned" is exactly "PostHog accepted every event of this batch", the
  instant after it answered, once per batch however many attempts it took. Lanes build
  their consumers when they start: eagerly in the constructor, lazily on first use (the AI
  lane) and again after ``fork()`` (``_Lane.rebuild_after_fork``); the bridge wraps each
  lane's ``_start_locked`` too, which creates the consumers before the lane queues the event
  that started it, so no consumer ever uploads unwrapped.
* ``Client._send_sync(msg, lane)``, which ``capture`` calls instead in ``sync_mode``: one
  POST of a one-event batch in the caller's thread, no retries, raising on failure (and
  ``capture`` swallows and logs it). The bridge emits on return, as above.

Only the v0 wire protocol (``POST /batch/``, the SDK's default) is supported: with
``capture_mode="v1"`` a 2xx may still carry per-event drops, which this bridge does not
read, so :meth:`~PostHogBridge.instrument` refuses it rather than claim events it cannot
vouch for.

Emitting never blocks the SDK: records go to an in-memory outbox (bounded by
``max_pending``) that one thread hands to a :class:`~streams.connectors.monitor.Delivery`,
retrying what it says is retriable with backoff; ``event_id`` is derived from the uuid, so
a record delivered twice (a retry after a lost answer) or an event captured twice with the
same uuid is one completion to the monitor. Deliveries (:mod:`streams.connectors.monitor`):
``KafkaDelivery`` (straight to ``funnel.posthog.ingested``, acks=all) or ``HttpDelivery``
(the monitor's ``POST /v1/events/funnel.posthog.ingested`` receiver, for applications
without a Kafka client). Call :meth:`PostHogBridge.flush` after the client's ``flush()``
when a short-lived process must not exit with completions still in the outbox;
:meth:`PostHogBridge.close` flushes and stops. The bridge's delivery thread does not survive
``fork()``: in a pre-forking server, make the client and the bridge after the fork.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from streams import topics
from streams.connectors.monitor import Delivery, DeliveryError
from streams.core.clock import Clock, now_ms
from streams.errors import ConfigError, FreshnessError

log = logging.getLogger(__name__)

Stage = Literal["accepted", "delivered"]
SOURCES = frozenset({"lead.captured", "payment.webhook_received"})
"""The ``source`` values of ``funnel.posthog.ingested`` (its schema's enum)."""
SDK_VERSION = "7.91.1"
"""The posthog-python version whose internals the bridge was written and tested against."""


@dataclass(frozen=True, slots=True)
class LinkProperties:
    """Which event properties link a PostHog event to the funnel start it completes."""

    source: str = "funnel_source"
    """Names the start event: ``lead.captured`` or ``payment.webhook_received``."""
    source_id: str = "funnel_source_id"
    """The start's key: the lead id or the payment id."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One ``funnel.posthog.ingested`` record (``schemas/input/``), as the bridge and the
    webhook receiver write it."""

    event_id: str
    occurred_at: int
    source: str
    source_id: str
    stage: Stage
    uuid: str
    posthog_event: str | None = None
    """The PostHog event's name (informational; the monitor ignores it)."""

    @property
    def key(self) -> bytes:
        """The Kafka key: the entity, so one entity's records stay in order."""
        return self.source_id.encode()

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "occurred_at": self.occurred_at,
                "source": self.source,
                "source_id": self.source_id,
                "stage": self.stage,
                "uuid": self.uuid,
                "posthog_event": self.posthog_event,
            }
        )


def event_id_for(uuid: str, stage: Stage) -> str:
    """The completion's ``event_id``: the same PostHog event at the same stage is always the
    same id, so every re-delivery of it is a duplicate to the monitor."""
    return f"posthog-{stage}-{uuid}"


class LinkError(FreshnessError):
    """A PostHog event carries the funnel link but cannot become a completion."""


def completion_of(
    event: Mapping[str, Any], stage: Stage, at_ms: int, link: LinkProperties = LinkProperties()
) -> Completion | None:
    """The completion of one PostHog event (an SDK message or a destination's ``event``) at
    ``stage``, happened at ``at_ms``; ``None`` when it carries no funnel link.

    Raises :class:`LinkError` when it carries one but has no ``uuid``, or the source id is
    neither a string nor an integer.
    """
    props = event.get("properties")
    if not isinstance(props, Mapping):
        return None
    source, source_id = props.get(link.source), props.get(link.source_id)
    if source is None and source_id is None:
        return None
    if isinstance(source_id, int) and not isinstance(source_id, bool):
        source_id = str(source_id)
    if not isinstance(source, str) or not isinstance(source_id, str) or not source_id:
        raise LinkError(
            f"properties {link.source!r} and {link.source_id!r} must both be non-empty "
            f"strings, got {source!r} and {source_id!r}"
        )
    uuid = event.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise LinkError("the event has no uuid (PostHog gives every event one)")
    name = event.get("event")
    return Completion(
        event_id_for(uuid, stage),
        at_ms,
        source,
        source_id,
        stage,
        uuid,
        name if isinstance(name, str) else None,
    )


# -- the bridge -----------------------------------------------------------------------------


@dataclass(slots=True)
class BridgeStats:
    """Counters since the bridge was made (read them for metrics or tests)."""

    batches_accepted: int = 0
    batches_refused: int = 0
    completions: int = 0
    """Records emitted: linked events of accepted batches."""
    not_emitted: int = 0
    """Linked events of refused batches (no completion: the monitor will see them overdue)."""
    delivered: int = 0
    dropped: int = 0
    """Records the delivery refused for good, or that did not fit in the outbox."""
    delivery_errors: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Outbox:
    records: deque[Completion] = field(default_factory=deque)
    in_flight: int = 0
    closing: bool = False
    abandon: bool = False


class PostHogBridge:
    """Emits an ``accepted`` completion for every linked event PostHog accepts; see the
    module docstring. Thread-safe: any number of SDK threads may report batches."""

    def __init__(
        self,
        delivery: Delivery,
        *,
        link: LinkProperties = LinkProperties(),
        sources: frozenset[str] = SOURCES,
        clock: Clock = now_ms,
        max_pending: int = 100_000,
        batch_size: int = 500,
        retry_s: tuple[float, float] = (0.1, 5.0),
        topic: str = topics.POSTHOG_INGESTED,
    ) -> None:
        self.delivery = delivery
        self.topic = topic
        self.link = link
        self.sources = sources
        self.clock = clock
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.retry_s = retry_s
        self.stats = BridgeStats()
        self._box = _Outbox()
        self._cond = threading.Condition()
        self._unknown_sources: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="posthog-bridge", daemon=True)
        self._thread.start()

    # -- instrumenting the SDK -------------------------------------------------------------

    def instrument(self, client: Any) -> Any:
        """Instrument ``client`` (a ``posthog.Posthog``) in place and return it. Call it
        before the client's first capture. Raises :class:`ConfigError` for a client this
        bridge cannot vouch for (capture v1, unknown internals, already captured, another
        bridge)."""
        owner = getattr(client, "_funnel_bridge", None)
        if owner is self:
            return client
        if owner is not None:
            raise ConfigError("this PostHog client is already instrumented by another bridge")
        lanes = _lanes_of(client)
        mode = getattr(client, "capture_mode", None)
        if getattr(mode, "value", mode) != "v0":
            raise ConfigError(
                f"the PostHog bridge supports capture_mode v0 (POST /batch/, the default), "
                f"not {getattr(mode, 'value', mode)!r}: v1 answers may drop single events"
            )
        if any(lane.queue.qsize() for lane in lanes):
            raise ConfigError("instrument the PostHog client before its first capture")
        for lane in lanes:
            self._wrap_lane(lane)
        self._wrap_sync_send(client)
        client._funnel_bridge = self
        return client

    def _wrap_lane(self, lane: Any) -> None:
        for consumer in lane.consumers:
            self._wrap_consumer(consumer)
        start_locked: Callable[[], None] = lane._start_locked

        def start_and_wrap() -> None:
            start_locked()
            for consumer in lane.consumers:
                self._wrap_consumer(consumer)

        lane._start_locked = start_and_wrap

    def _wrap_consumer(self, consumer: Any) -> None:
        if getattr(consumer, "_funnel_bridge", None) is self:
            return
        request: Callable[[list[dict[str, Any]]], None] = consumer.request

        def request_and_report(batch: list[dict[str, Any]]) -> None:
            try:
                request(batch)
            except Exception as exc:
                self.refused(batch, exc)
                raise
            self.accepted(batch, self.clock())

        consumer.request = request_and_report
        consumer._funnel_bridge = self

    def _wrap_sync_send(self, client: Any) -> None:
        send_sync: Callable[[dict[str, Any], Any], None] = client._send_sync

        def send_and_report(msg: dict[str, Any], lane: Any) -> None:
            try:
                send_sync(msg, lane)
            except Exception as exc:
                self.refused([msg], exc)
                raise
            self.accepted([msg], self.clock())

        client._send_sync = send_and_report

    # -- what the SDK reports --------------------------------------------------------------

    def accepted(self, batch: Sequence[Mapping[str, Any]], at_ms: int) -> None:
        """PostHog answered 2xx at ``at_ms`` for ``batch``: queue its linked completions."""
        records = [c for c in (self._completion(e, at_ms) for e in batch) if c is not None]
        with self._cond:
            self.stats.batches_accepted += 1
            if self._box.closing:
                self._drop(records, "the bridge is closed")
                return
            room = self.max_pending - len(self._box.records) - self._box.in_flight
            if len(records) > room:
                self._drop(records[max(room, 0) :], f"the outbox holds {self.max_pending}")
                records = records[: max(room, 0)]
            self._box.records.extend(records)
            self.stats.completions += len(records)
            self._cond.notify_all()

    def refused(self, batch: Sequence[Mapping[str, Any]], error: BaseException) -> None:
        """PostHog did not accept ``batch`` (after the SDK's retries): emit nothing, log why."""
        linked = 0
        for event in batch:
            with contextlib.suppress(LinkError):
                linked += completion_of(event, "accepted", 0, self.link) is not None
        with self._cond:
            self.stats.batches_refused += 1
            self.stats.not_emitted += linked
        log.error(
            "PostHog did not accept a batch of %d events (%d funnel completions not emitted): %s",
            len(batch),
            linked,
            error,
        )

    def _completion(self, event: Mapping[str, Any], at_ms: int) -> Completion | None:
        try:
            completion = completion_of(event, "accepted", at_ms, self.link)
        except LinkError as exc:
            log.warning("PostHog event %s: no completion: %s", event.get("uuid"), exc)
            return None
        if completion is not None and completion.source not in self.sources:
            if completion.source not in self._unknown_sources:
                self._unknown_sources.add(completion.source)
                log.warning(
                    "PostHog events with %s=%r are not funnel completions (known: %s)",
                    self.link.source,
                    completion.source,
                    ", ".join(sorted(self.sources)),
                )
            return None
        return completion

    def _drop(self, records: Sequence[Completion], why: str) -> None:
        if records:
            self.stats.dropped += len(records)
            log.error("PostHog bridge dropped %d completions: %s", len(records), why)

    # -- delivery --------------------------------------------------------------------------

    def flush(self, timeout_s: float | None = 10.0) -> bool:
        """Wait until every completion queued so far was delivered (or dropped); False on
        timeout. Flush the PostHog client first: its queued events are not accepted yet."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._box.records and not self._box.in_flight, timeout_s
            )

    def close(self, timeout_s: float | None = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``; the rest is dropped and logged),
        then stop the delivery thread and the delivery. Later batches are dropped."""
        with self._cond:
            self._box.closing = True
            self._cond.notify_all()
        if not self.flush(timeout_s):
            with self._cond:
                self._box.abandon = True
                self._cond.notify_all()
        self._thread.join(timeout_s)
        self.delivery.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._box.records or self._box.closing)
                if not self._box.records:
                    return
                n = min(len(self._box.records), self.batch_size)
                batch = [self._box.records.popleft() for _ in range(n)]
                self._box.in_flight = n
            self._deliver(batch)
            with self._cond:
                self._box.in_flight = 0
                self._cond.notify_all()

    def _deliver(self, batch: list[Completion]) -> None:
        delay, longest = self.retry_s
        while True:
            try:
                self.delivery.deliver(self.topic, [(c.key, c.encode()) for c in batch])
            except DeliveryError as exc:
                with self._cond:
                    self.stats.delivery_errors += 1
                    self.stats.last_error = str(exc)
                    if not exc.retriable or self._box.abandon:
                        self._drop(batch, str(exc))
                        return
                    log.warning("PostHog bridge: %s; retrying in %.1f s", exc, delay)
                    self._cond.wait_for(lambda: self._box.abandon, delay)
                delay = min(delay * 2, longest)
                continue
            with self._cond:
                self.stats.delivered += len(batch)
            return


def _lanes_of(client: Any) -> list[Any]:
    """The client's capture lanes, after checking they have what the bridge wraps."""
    lanes = getattr(client, "_lanes", None)
    if not isinstance(lanes, list):
        lanes = None
    ok = lanes is not None and all(
        hasattr(lane, attr) for lane in lanes for attr in ("consumers", "_start_locked", "queue")
    )
    if lanes is None or not ok or not callable(getattr(client, "_send_sync", None)):
        raise ConfigError(
            f"this posthog client's internals are not those of posthog {SDK_VERSION}, which "
            f"the bridge instruments; install posthog=={SDK_VERSION}"
        )
    return lanes
