"""``freshness alerter``: judge every flow's alert policy, write state changes to
``freshness.alerts`` and deliver them to the enabled sinks (DESIGN section 9).

A process runs three things:

* an :class:`~streams.alerting.reader.InputReader` that keeps
  :class:`~streams.alerting.inputs.AlerterInputs` up to date with ``freshness.breaches``,
  ``freshness.stats``, ``freshness.alerts`` and ``freshness.alert-deliveries`` (always,
  leader or not, so a standby is ready at once);
* a :class:`~streams.alerting.leadership.Leadership` in the replicas' group;
* while it leads, a :class:`~streams.alerting.session.LeaderSession`, started when the
  group gives it the control partition and cancelled (and awaited) before it gives it up.

Several replicas may run with the same app id; one leads. A session that fails on a
retriable Kafka error starts again while this replica still leads; one that was fenced by
another replica's outbox waits for the next term; any other failure stops the process with
an error (exit 1), as does a fatal error of the reader or the group.

SIGTERM or Ctrl-C stops the session, leaves the group (a standby takes over at once) and
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiokafka.errors import ProducerFenced

from streams.alerting.inputs import AlerterInputs
from streams.alerting.leadership import Leadership
from streams.alerting.outbox import Outbox
from streams.alerting.reader import InputReader
from streams.alerting.session import LeaderSession, SessionConfig
from streams.alerting.sinks import build_sinks
from streams.core.clock import Clock, now_ms
from streams.flows.config import FlowsConfig, load_config
from streams.kafka import retriable
from streams.kafka.admin import ensure_required_topics
from streams.logs import demote_coordinator_loading, install_repeat_filter
from streams.settings import Settings

log = logging.getLogger(__name__)

READY_MARK = "alerter ready"
"""Logged once the reader has caught up with the topics at start."""
LOG_LEVELS = {
    "crit": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
"""``FRESHNESS_LOG_LEVEL`` values (the worker's) as :mod:`logging` levels."""
RESTART_MS = 1_000
"""Pause before a session that failed on a retriable error starts again."""


class Alerter:
    """One alerter replica."""

    def __init__(self, settings: Settings, config: FlowsConfig, *, clock: Clock = now_ms) -> None:
        self.settings = settings
        self.clock = clock
        self.session_config = SessionConfig(
            app_id=settings.app_id,
            policies=dict(config.policies),
            eval_ms=settings.alert_eval_ms,
            api_url=settings.api_public_url,
        )
        self.inputs = AlerterInputs()
        self.reader = InputReader(settings, self.inputs)
        self.leadership = Leadership(
            settings,
            settings.app_id,
            settings.alert_session_timeout_ms,
            on_elected=self._elected,
            on_deposed=self._deposed,
        )
        self.session: LeaderSession | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._failed: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Run until cancelled; raises what made it stop otherwise."""
        self._failed = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(self.reader.run(), name="alerter-reader"),
            asyncio.create_task(self._announce_ready(), name="alerter-ready"),
            asyncio.create_task(self.leadership.run(), name="alerter-leadership"),
        ]
        try:
            waiting = {*tasks, self._failed}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in reversed(tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._deposed()

    async def _announce_ready(self) -> None:
        await self.reader.caught_up()
        log.warning("%s: %d records read", READY_MARK, self.inputs.records)

    # ---- leadership --------------------------------------------------------------------

    def _elected(self) -> None:
        if self._session_task is None or self._session_task.done():
            self._session_task = asyncio.create_task(self._lead(), name="alerter-session")

    async def _deposed(self) -> None:
        task, self._session_task = self._session_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _lead(self) -> None:
        """Sessions, one after another, while this replica holds the control partition."""
        while self.leadership.holds_partition:
            self.session = LeaderSession(
                self.session_config,
                self.inputs,
                self.reader,
                Outbox(self.settings, self.settings.app_id),
                build_sinks(self.settings),
                self.leadership,
                clock=self.clock,
            )
            try:
                await self.session.run()
            except ProducerFenced:
                log.warning("alerter: another replica took over the outbox; standing by")
                return
            except Exception as exc:
                if not retriable(exc):
                    self._fail(exc)
                    return
                log.warning("alerter: session stopped (%r); starting again", exc)
            await asyncio.sleep(RESTART_MS / 1000)

    def _fail(self, exc: BaseException) -> None:
        log.error("alerter: leader session failed: %s: %s", type(exc).__name__, exc)
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(exc)


def check_sinks(settings: Settings) -> tuple[str, ...]:
    """The names of the enabled sinks; :class:`~streams.errors.ConfigError` for a bad sink
    setting (building a sink opens nothing: its HTTP session opens on first use)."""
    return tuple(sink.name for sink in build_sinks(settings))


async def _main(settings: Settings, config: FlowsConfig) -> None:
    await ensure_required_topics(settings, config.flows)
    alerter = Alerter(settings, config)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await alerter.run()


def run(settings: Settings) -> int:
    """``freshness alerter``."""
    logging.basicConfig(
        level=LOG_LEVELS.get(settings.log_level.lower(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_repeat_filter()  # a 20 s broker outage wrote 13,000 lines without it
    demote_coordinator_loading()
    config = load_config(settings.flows)
    names = check_sinks(settings)
    if not names:
        log.warning("alerter: no sink is enabled; alert states go to freshness.alerts only")
    else:
        log.warning("alerter: delivering to %s", ", ".join(names))
    asyncio.run(_main(settings, config))
    return 0
