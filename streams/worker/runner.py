"""``freshness worker``: claim the state directory, make sure every topic of
:func:`streams.topics.required_topics` exists (for the configured flows and app id), then run
the Faust worker until stopped.

Guarantees:

* one worker process per state directory: a second one with the same ``FRESHNESS_APP_ID``
  and ``FRESHNESS_WORKER_ID`` under the same ``FRESHNESS_HOME`` refuses at start-up with one
  line naming the process that holds it (RocksDB would otherwise fail on its LOCK file
  later, with a traceback);
* SIGTERM or Ctrl-C stops the worker within ``FRESHNESS_SESSION_TIMEOUT_MS`` whatever Kafka
  does: Faust's orderly stop waits for its Kafka clients, which hang while the broker is
  unreachable, so a watchdog ends the process (exit 1, one line) when the orderly stop takes
  longer. Nothing is half-written by that: offsets are committed only after the outputs they
  cover were delivered, and RocksDB recovers from its write-ahead log, so the next owner
  simply processes the uncommitted input again;
* the log is plain text: Faust's start-up spinner (cursor escape codes and backspaces) is
  drawn only when stdout is a terminal, and the coordinator-loading error of every start is
  logged at INFO (:func:`streams.logs.demote_coordinator_loading`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from streams.errors import ConfigError
from streams.flows.config import load_flows
from streams.kafka.admin import ensure_required_topics
from streams.logs import demote_coordinator_loading
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)
LOCK_NAME = "worker.lock"
FORCED_STOP_EXIT = 1


def claim_state_dir(datadir: Path) -> IO[str]:
    """Hold ``datadir/worker.lock`` for the life of the process (the returned file).

    Raises :class:`ConfigError` naming the holder's pid when another process holds it.
    """
    datadir.mkdir(parents=True, exist_ok=True)
    lock = (datadir / LOCK_NAME).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise ConfigError(
            f"another worker (pid {holder}) already uses the state directory {datadir}; "
            "give each worker process on one machine its own FRESHNESS_WORKER_ID"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def stop_watchdog(timeout_s: float) -> threading.Timer:
    """A started timer that ends the process if it is still running after ``timeout_s``."""

    def force() -> None:
        print(
            f"freshness worker: the orderly stop took longer than {timeout_s:g} s (Kafka "
            "unreachable?); stopping now. Uncommitted input is processed again on restart.",
            file=sys.stderr,
            flush=True,
        )
        os._exit(FORCED_STOP_EXIT)

    timer = threading.Timer(timeout_s, force)
    timer.daemon = True
    timer.start()
    return timer


def make_worker(app: faust.App, settings: Settings, stdout: IO[str] | None = None) -> faust.Worker:
    """Faust's worker for ``app`` with a bounded stop and a plain-text log (see the module
    docstring)."""
    import faust

    class Worker(faust.Worker):
        _watchdog: threading.Timer | None = None

        def _schedule_shutdown(self, signal: Any) -> None:
            if self._watchdog is None:
                self._watchdog = stop_watchdog(settings.session_timeout_ms / 1000)
            super()._schedule_shutdown(signal)

    worker = Worker(app, loglevel=settings.log_level, quiet=True, stdout=stdout or sys.stdout)
    if not worker.stdout.isatty():
        worker.spinner = None  # it writes cursor codes into a log file even when not a TTY
    return worker


def run(settings: Settings) -> NoReturn:
    """Run until stopped; exits the process (Faust's worker ends with ``SystemExit``)."""
    from streams.worker.app import build_worker

    lock = claim_state_dir(settings.state_dir / settings.app_id / settings.worker_id)
    try:
        demote_coordinator_loading()
        flows = load_flows(settings.flows)
        asyncio.run(ensure_required_topics(settings, flows))
        worker = build_worker(settings, flows)
        make_worker(worker.app, settings).execute_from_commandline()
    finally:
        lock.close()
