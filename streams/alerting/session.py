"""One term of leadership: rebuild, re-offer what is owed, then evaluate and deliver.

A :class:`LeaderSession` runs while this replica leads (:mod:`streams.alerting.leadership`)
and is cancelled when it stops leading. In order, it:

1. waits for the lease, then registers the outbox's transactional id, which fences the
   previous leader's writes (:mod:`streams.alerting.outbox`);
2. waits until the reader has applied everything in the four topics (breaches, stats, the
   outbox and the delivery progress): the current state of every alert, and per sink the
   newest version it is done with;
3. starts one delivery queue per enabled sink (:class:`~streams.alerting.delivery.
   SinkDriver`) and offers each the states it is owed (:meth:`~streams.alerting.ledger.
   Ledger.owed`): every state newer than what it is done with, same alert id, oldest
   first; Alertmanager gets every firing alert again besides;
4. every ``eval_ms``: evaluates every flow, turns the conditions into state changes
   (:class:`~streams.alerting.tracker.AlertTracker`, restored from the outbox so a firing
   alert is not fired again), writes each change to the outbox and only then offers it to
   the sinks of its routes.

Progress: after a sink took a state (or refused it for good) the session hands a delivery
record and the sink's counts to a :class:`~streams.alerting.progress.ProgressWriter`, which
commits them in batches without holding up any sink. After a crash at any point each sink
is owed the states it had not finished, plus at most those whose progress was not yet
committed: they are sent again with the same alert id (PagerDuty folds a repeated trigger
into the open incident; a repeated resolve or Alertmanager post changes nothing).

Every write and every request waits for the lease first; nothing is done without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.alerting.delivery import DeadLetter, Delivered, SinkDriver
from streams.alerting.evaluate import AlertCondition, build_snapshot, evaluate
from streams.alerting.inputs import AlerterInputs
from streams.alerting.leadership import Leadership
from streams.alerting.outbox import Outbox
from streams.alerting.policy import AlertPolicy
from streams.alerting.progress import ProgressWriter
from streams.alerting.reader import InputReader
from streams.alerting.records import AlertState, DeliveryRecord, SinkCounts
from streams.alerting.sinks import with_links
from streams.alerting.tracker import AlertTracker
from streams.connectors.sink import AlertEvent, Attempt, RateLimit, Sink, Status
from streams.core.clock import Clock, now_ms

log = logging.getLogger(__name__)

COUNTS_EVERY_MS = 5_000
"""How often a sink's counts are written when only retries and re-sends moved them."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    app_id: str
    policies: Mapping[str, AlertPolicy]
    eval_ms: int
    api_url: str | None = None


class LeasedSink:
    """A :class:`~streams.connectors.sink.Sink` that sends only under a valid lease."""

    def __init__(self, sink: Sink, lease: Leadership, clock: Clock) -> None:
        self.sink = sink
        self._lease = lease
        self._clock = clock

    @property
    def name(self) -> str:
        return self.sink.name

    @property
    def rate_limit(self) -> RateLimit | None:
        return self.sink.rate_limit

    @property
    def resend_ms(self) -> int | None:
        return self.sink.resend_ms

    def rate_key(self, event: AlertEvent) -> str:
        return self.sink.rate_key(event)

    async def send(self, event: AlertEvent, now_ms: int) -> Attempt:
        if not self._lease.lease_valid():
            await self._lease.wait_lease()
            now_ms = self._clock()
        return await self.sink.send(event, now_ms)

    async def aclose(self) -> None:
        await self.sink.aclose()


class LeaderSession:
    """The leader's work for one term; :meth:`run` until cancelled (or a failure)."""

    def __init__(
        self,
        config: SessionConfig,
        inputs: AlerterInputs,
        reader: InputReader,
        outbox: Outbox,
        sinks: Sequence[Sink],
        lease: Leadership,
        *,
        clock: Clock = now_ms,
    ) -> None:
        self.config = config
        self.inputs = inputs
        self.reader = reader
        self.outbox = outbox
        self.lease = lease
        self.clock = clock
        self.sinks = [LeasedSink(s, lease, clock) for s in sinks]
        self.drivers: dict[str, SinkDriver] = {}
        self.progress = ProgressWriter(outbox.write_progress, lease.wait_lease)
        self._base: dict[str, SinkCounts] = {}
        self._written: dict[str, dict[str, int]] = {}
        self._counts_at = 0
        self._status: dict[tuple[str, int], Status] = {}
        """The status of every (alert id, version) offered this term, for its delivery record
        (one entry per state change: a queue may still deliver any version it was offered)."""
        self.tracker: AlertTracker | None = None

    async def run(self) -> None:
        """Lead until cancelled; raises what stopped it otherwise."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.lease.wait_lease()
            log.info("alerter: lease held; registering the outbox (fences the previous writer)")
            await self.outbox.start()
            await self.reader.caught_up()
            log.info("alerter: caught up with the topics")
            self._restore()
            tasks = [asyncio.create_task(d.run()) for d in self.drivers.values()]
            tasks.append(asyncio.create_task(self.progress.run()))
            tasks.append(asyncio.create_task(self._evaluate_forever()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            await self._shut(tasks)

    async def _shut(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.aclose()
        await self.outbox.stop()

    # ---- take over ---------------------------------------------------------------------

    def _restore(self) -> None:
        """The tracker from the outbox, a driver per sink, and every owed state offered."""
        ledger = self.inputs.ledger
        restored = [s.event for s in ledger.states.values()]
        policies = self.config.policies.values()
        self.tracker = AlertTracker(self.config.app_id, policies, restored)
        for sink in self.sinks:
            self._base[sink.name] = ledger.counts.get(sink.name) or SinkCounts(sink.name)
            self.drivers[sink.name] = SinkDriver(
                sink,
                clock=self.clock,
                on_delivered=self._delivered,
                on_dead_letter=self._dead_letter,
            )
            self._written[sink.name] = self.drivers[sink.name].counts.by_result()
            resend = sink.resend_ms is not None
            owed = ledger.owed(sink.name, self.config.app_id, resend_firing=resend)
            for event in owed:
                self._offer(sink.name, event)
            log.info("alerter: %s is owed %d alert states", sink.name, len(owed))

    # ---- evaluate ----------------------------------------------------------------------

    async def _evaluate_forever(self) -> None:
        while True:
            started = self.clock()
            await self.lease.wait_lease()
            await self.evaluate_once(self.clock())
            self._maybe_write_counts()
            wait = self.config.eval_ms - (self.clock() - started)
            await asyncio.sleep(max(0, wait) / 1000)

    def conditions(self, now: int) -> list[AlertCondition]:
        """Every flow's conditions at ``now`` (policy order)."""
        out: list[AlertCondition] = []
        for name, policy in self.config.policies.items():
            snapshot = build_snapshot(
                policy, self.inputs.flow_stats(name), self.inputs.open_overdue(name), now_ms=now
            )
            out.extend(evaluate(policy, snapshot, now))
        return out

    async def evaluate_once(self, now: int) -> list[AlertState]:
        """One evaluation: write its state changes (one transaction), then offer them."""
        assert self.tracker is not None
        changes = self.tracker.observe(self.conditions(now), now)
        if not changes:
            return []
        states = [AlertState(e, self._routes(e)) for e in changes]
        await self.lease.wait_lease()
        written = await self.outbox.write_states(states)
        for state in written:
            e = state.event
            log.info("alerter: %s is %s (version %d)", e.alert_id, e.status, e.version)
            for sink in state.routes:
                self._offer(sink, e)
        return written

    def _routes(self, event: AlertEvent) -> tuple[str, ...]:
        """The enabled sinks among the routes of ``event``'s alert."""
        assert self.tracker is not None
        return tuple(r for r in sorted(self.tracker.routes(event)) if r in self.drivers)

    def _offer(self, sink: str, event: AlertEvent) -> None:
        self._status[(event.alert_id, event.version)] = event.status
        self.drivers[sink].offer(with_links(event, self.config.api_url))

    # ---- progress ----------------------------------------------------------------------

    async def _delivered(self, done: Delivered) -> None:
        status = self._status[(done.alert_id, done.version)]
        record = DeliveryRecord(
            done.sink, done.alert_id, done.version, status, "delivered", self.clock()
        )
        self._write_progress(done.sink, record)

    async def _dead_letter(self, letter: DeadLetter) -> None:
        record = DeliveryRecord(
            letter.sink,
            letter.alert_id,
            letter.version,
            self._status[(letter.alert_id, letter.version)],
            "dead_lettered",
            letter.at,
            letter.status,
            letter.body,
        )
        self._write_progress(letter.sink, record)

    def _write_progress(self, sink: str, record: DeliveryRecord) -> None:
        self.progress.add([record, self._counts(sink)])

    def _counts(self, sink: str) -> SinkCounts:
        counts = self.drivers[sink].counts.by_result()
        self._written[sink] = counts
        return self._base[sink].plus(counts, self.clock())

    def _maybe_write_counts(self) -> None:
        now = self.clock()
        if now - self._counts_at < COUNTS_EVERY_MS:
            return
        self._counts_at = now
        moved = [
            name
            for name, driver in self.drivers.items()
            if driver.counts.by_result() != self._written.get(name)
        ]
        if moved:
            self.progress.add(self._counts(name) for name in moved)
