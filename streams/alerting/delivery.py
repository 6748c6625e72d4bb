"""Delivery of alert states to one sink: a coalescing, rate-limited, retrying queue.

The alerter makes one :class:`SinkDriver` per enabled sink, runs :meth:`SinkDriver.run` as a
task and :meth:`~SinkDriver.offer` s every alert state it reads from ``freshness.alerts``.
Given its clock and sleep, a driver guarantees:

- **In order per alert.** A state is never sent after a newer state of the same alert (a
  higher ``version``); an offer of a version at or below one already offered is ignored.
- **Coalescing.** A queued state that has not been delivered yet, or is waiting for a retry,
  is replaced by a newer state of the same alert, which keeps its place in the queue: after
  an outage each alert catches up with its newest state, never with the states in between.
  Different alerts are sent in the order they were first queued.
- **Rate limit.** At most ``sink.rate_limit.events`` requests (first attempts, retries and
  re-sends alike) in any window of ``window_ms`` per ``sink.rate_key`` (PagerDuty: 120 per
  minute per routing key).
- **Retries.** A RETRY (429, 5xx, no answer) holds the whole sink (the peer is throttling
  or failing, so other alerts would fail too) for the peer's ``Retry-After`` when it sent one,
  else for an exponential backoff with jitter, and then sends the alert's newest state again.
  Retries never give up: delivery is at-least-once.
- **Dead letters.** A REJECTED request (another 4xx) is logged, counted and handed to
  ``on_dead_letter`` with the request and the response; the next alert goes at once.
- **Re-sends.** When ``sink.resend_ms`` is set (Alertmanager), every alert whose newest
  delivered state is firing is sent again, same version, once ``resend_ms`` has passed since
  its last delivery, until a resolved state of it is delivered.
- **Progress.** ``on_delivered`` is awaited after each delivered state (not after re-sends)
  with the alert id and version, before the next request: once it returns for version v,
  every state of that alert up to v is done for this sink (delivered, replaced by v, or
  dead-lettered). An exception from a hook stops :meth:`~SinkDriver.run` with it.

One request is in flight per sink at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streams.connectors.sink import AlertEvent, Attempt, Outcome, RateLimit, Sink
from streams.core.clock import Clock, now_ms

log = logging.getLogger(__name__)

SleepMs = Callable[[int], Awaitable[None]]
"""Sleeps for the given milliseconds (tests pass a virtual clock's sleep)."""


async def sleep_ms(ms: int) -> None:
    """The real :data:`SleepMs`."""
    await asyncio.sleep(ms / 1000)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How long to hold a failing sink. Without ``Retry-After`` the n-th consecutive RETRY
    holds it ``min(max, initial * 2**(n-1))`` ms minus up to ``jitter`` of that at random;
    a ``Retry-After`` is honoured as given, up to ``retry_after_max_ms``."""

    backoff_initial_ms: int = 1_000
    backoff_max_ms: int = 300_000
    backoff_jitter: float = 0.2
    retry_after_max_ms: int = 3_600_000

    def backoff_ms(self, failures: int, draw: float) -> int:
        """The hold after the ``failures``-th consecutive failure; ``draw`` is in [0, 1)."""
        exponent = min(failures - 1, 40)
        full = min(self.backoff_max_ms, self.backoff_initial_ms << exponent)
        return full - int(full * self.backoff_jitter * draw)

    def hold_ms(self, attempt: Attempt, failures: int, draw: float) -> int:
        if attempt.retry_after_ms is not None:
            return min(attempt.retry_after_ms, self.retry_after_max_ms)
        return self.backoff_ms(failures, draw)


@dataclass(frozen=True, slots=True)
class Delivered:
    """Progress: ``sink`` has taken state ``version`` of ``alert_id``."""

    sink: str
    alert_id: str
    version: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A state ``sink`` refused for good, with what was sent and what came back."""

    sink: str
    alert_id: str
    version: int
    at: int
    url: str
    request: str
    status: int | None
    body: str


@dataclass(slots=True)
class DeliveryCounts:
    """Counters of one driver; :meth:`by_result` feeds
    ``freshness_alert_deliveries_total{sink,result}``."""

    delivered: int = 0
    resent: int = 0
    retried: int = 0
    dead_lettered: int = 0
    coalesced: int = 0
    """Queued states replaced by a newer state of the same alert before being delivered."""
    stale: int = 0
    """Offers ignored because a newer or equal version was already offered."""

    def by_result(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "resent": self.resent,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
        }


async def _ignore(_: object) -> None:
    return None


@dataclass(slots=True)
class _Entry:
    event: AlertEvent
    resend: bool = False


@dataclass(slots=True)
class _Active:
    event: AlertEvent
    sent_at: int


class _Window:
    """Request times of one rate key within the last window."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.sent: deque[int] = deque()

    def free_at(self, now: int) -> int:
        """When the next request may go (``now`` if it may go at once)."""
        while self.sent and self.sent[0] <= now - self.limit.window_ms:
            self.sent.popleft()
        if len(self.sent) < self.limit.events:
            return now
        return self.sent[0] + self.limit.window_ms


def _earliest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


class SinkDriver:
    """The delivery queue of one sink; its guarantees are in the module docstring.

    Use: ``task = asyncio.create_task(driver.run())``; ``driver.offer(event)`` for every
    state; at the end ``driver.stop(); await task; await sink.aclose()``.
    """

    def __init__(
        self,
        sink: Sink,
        policy: DeliveryPolicy | None = None,
        *,
        clock: Clock = now_ms,
        sleep: SleepMs = sleep_ms,
        draw: Callable[[], float] = random.random,
        on_delivered: Callable[[Delivered], Awaitable[None]] = _ignore,
        on_dead_letter: Callable[[DeadLetter], Awaitable[None]] = _ignore,
    ) -> None:
        self.sink = sink
        self.policy = policy or DeliveryPolicy()
        self.counts = DeliveryCounts()
        self._clock = clock
        self._sleep = sleep
        self._draw = draw
        self._on_delivered = on_delivered
        self._on_dead_letter = on_dead_letter
        self._pending: OrderedDict[str, _Entry] = OrderedDict()
        self._newest: dict[str, int] = {}
        self._active: dict[str, _Active] = {}
        self._windows: dict[str, _Window] = {}
        self._failures = 0
        self._hold_until = 0
        self._in_flight = False
        self._wakeup = asyncio.Event()
        self._stopping = False

    @property
    def pending(self) -> int:
        """States queued and not yet delivered (a gauge of the sink's backlog)."""
        return len(self._pending)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight (re-sends may still fall due later)."""
        return not self._pending and not self._in_flight

    @property
    def active(self) -> list[str]:
        """Alert ids kept active by re-sends (their newest delivered state is firing)."""
        return list(self._active)

    def offer(self, event: AlertEvent) -> bool:
        """Queue ``event`` behind the states already queued, replacing a queued older state
        of the same alert in place. Returns False, queueing nothing, when a newer or equal
        version of that alert was offered before. Never blocks."""
        newest = self._newest.get(event.alert_id)
        if newest is not None and event.version <= newest:
            self.counts.stale += 1
            return False
        self._newest[event.alert_id] = event.version
        queued = self._pending.get(event.alert_id)
        if queued is not None and not queued.resend:
            self.counts.coalesced += 1
        self._pending[event.alert_id] = _Entry(event)
        self._wakeup.set()
        return True

    def stop(self) -> None:
        """Make :meth:`run` return after the request in flight, if any."""
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver until :meth:`stop`. Queued states are not sent after it returns, and
        cancelling it drops the request in flight (which was not reported delivered)."""
        while not self._stopping:
            self._wakeup.clear()
            now = self._clock()
            entry, wake_at = self._next(now)
            if entry is None:
                await self._wait(wake_at)
                continue
            self._in_flight = True
            try:
                await self._deliver(entry, now)
            finally:
                self._in_flight = False

    def _next(self, now: int) -> tuple[_Entry | None, int | None]:
        """The entry to send now, or when to look again (``None``: when offered to)."""
        if now < self._hold_until:
            return None, self._hold_until
        resend_at = self._queue_resends(now)
        entry, free_at = self._pick(now)
        if entry is not None:
            return entry, None
        return None, _earliest(free_at, resend_at)

    def _queue_resends(self, now: int) -> int | None:
        """Queue the firing alerts due for a re-send; return when the next one falls due."""
        period = self.sink.resend_ms
        if period is None:
            return None
        due_next: int | None = None
        for alert_id, active in self._active.items():
            if alert_id in self._pending:
                continue
            due = active.sent_at + period
            if due <= now:
                self._pending[alert_id] = _Entry(active.event, resend=True)
            else:
                due_next = _earliest(due_next, due)
        return due_next

    def _pick(self, now: int) -> tuple[_Entry | None, int | None]:
        """Take the first queued entry whose rate key has budget left, and spend it."""
        limit = self.sink.rate_limit
        free_at: int | None = None
        for alert_id, entry in self._pending.items():
            if limit is None:
                del self._pending[alert_id]
                return entry, None
            window = self._window(self.sink.rate_key(entry.event), limit)
            at = window.free_at(now)
            if at <= now:
                del self._pending[alert_id]
                window.sent.append(now)
                return entry, None
            free_at = _earliest(free_at, at)
        return None, free_at

    def _window(self, key: str, limit: RateLimit) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(limit)
        return window

    async def _deliver(self, entry: _Entry, now: int) -> None:
        attempt = await self.sink.send(entry.event, now)
        if attempt.outcome is Outcome.DELIVERED:
            await self._delivered(entry, now)
        elif attempt.outcome is Outcome.RETRY:
            self._retry(entry, attempt)
        else:
            await self._dead_letter(entry, attempt)

    async def _delivered(self, entry: _Entry, sent_at: int) -> None:
        self._failures = 0
        event = entry.event
        if event.firing and self.sink.resend_ms is not None:
            self._active[event.alert_id] = _Active(event, sent_at)
        else:
            self._active.pop(event.alert_id, None)
        if entry.resend:
            self.counts.resent += 1
            return
        self.counts.delivered += 1
        await self._on_delivered(Delivered(self.sink.name, event.alert_id, event.version))

    def _retry(self, entry: _Entry, attempt: Attempt) -> None:
        """Hold the sink, and put the alert's newest state first in the queue."""
        self._failures += 1
        self.counts.retried += 1
        hold = self.policy.hold_ms(attempt, self._failures, self._draw())
        self._hold_until = self._clock() + hold
        alert_id = entry.event.alert_id
        if alert_id in self._pending:
            if not entry.resend:
                self.counts.coalesced += 1
        else:
            self._pending[alert_id] = entry
        self._pending.move_to_end(alert_id, last=False)
        log.info(
            "%s: alert %s version %d not delivered (%s %s), next try in %d ms",
            self.sink.name,
            alert_id,
            entry.event.version,
            attempt.status,
            attempt.body[:200],
            hold,
        )

    async def _dead_letter(self, entry: _Entry, attempt: Attempt) -> None:
        self._failures = 0
        self.counts.dead_lettered += 1
        event = entry.event
        letter = DeadLetter(
            sink=self.sink.name,
            alert_id=event.alert_id,
            version=event.version,
            at=self._clock(),
            url=attempt.url,
            request=attempt.request,
            status=attempt.status,
            body=attempt.body,
        )
        log.warning(
            "%s refused alert %s version %d for good: status %s, response %s",
            self.sink.name,
            event.alert_id,
            event.version,
            attempt.status,
            attempt.body[:2000],
        )
        await self._on_dead_letter(letter)

    async def _wait(self, until: int | None) -> None:
        """Return when offered to or stopped, or at ``until`` (epoch ms) when given."""
        if until is None:
            await self._wakeup.wait()
            return
        delay = until - self._clock()
        if delay <= 0:
            return
        woken = asyncio.ensure_future(self._wakeup.wait())
        slept = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (woken, slept):
                task.cancel()
            await asyncio.gather(woken, slept, return_exceptions=True)
