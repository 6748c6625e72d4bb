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
  logged at INFO (:func:`streams.logs.demote_coordinator_loading`);
* a state directory that cannot be written (a full disk, a read-only or unwritable one)
  stops the worker with one line naming the path and the cause, exit 2, and no traceback:
  at start-up when ``worker.lock`` cannot be written, at run time when RocksDB cannot
  (:func:`state_write_failure`, :func:`stop_for_state`). A failed agent stops the worker
  (:func:`_supervisor_class`) rather than being restarted on the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from streams.errors import ConfigError, StateError
from streams.flows.config import load_flows
from streams.kafka.admin import ensure_required_topics
from streams.logs import demote_coordinator_loading
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)
LOCK_NAME = "worker.lock"
FORCED_STOP_EXIT = 1
STATE_FAILURE_EXIT = 2
"""Exit status of a worker that stopped because its state directory cannot be written (the
status of every one-line refusal of ``freshness``)."""
STATE_WRITE_ERRNOS = frozenset(
    {errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)
ROCKSDB_IO_ERROR = "IO error: "
STATE_ADVICE = (
    "the worker stopped. Free space (or make the directory writable) and start it again: "
    "RocksDB recovers from its write-ahead log and the uncommitted input is read again"
)


def claim_state_dir(datadir: Path) -> IO[str]:
    """Hold ``datadir/worker.lock`` for the life of the process (the returned file).

    Raises :class:`ConfigError` naming the holder's pid when another process holds it, and
    :class:`StateError` naming the path and the cause when the lock cannot be written.
    """
    try:
        datadir.mkdir(parents=True, exist_ok=True)
        lock = (datadir / LOCK_NAME).open("a+")
    except OSError as exc:
        raise StateError(_unwritable(exc, datadir / LOCK_NAME)) from None
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
    try:
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
    except OSError as exc:
        with contextlib.suppress(OSError):  # closing flushes again, and fails again
            lock.close()
        raise StateError(_unwritable(exc, datadir / LOCK_NAME)) from None
    return lock


def _unwritable(exc: OSError, path: Path) -> str:
    return f"cannot write the state directory: {exc.filename or path}: {exc.strerror or exc}"


def state_write_failure(exc: BaseException | None) -> str | None:
    """What a failed write into the state directory says (the path and the cause), or
    ``None`` when ``exc`` (or what caused it) is not one.

    RocksDB reports its failures as a plain ``Exception("IO error: <what>: <path>: <cause>")``
    (rocksdict passes the C++ status text on); Python's own writes raise :class:`OSError`.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, StateError):
            return str(exc)
        if isinstance(exc, OSError) and exc.errno in STATE_WRITE_ERRNOS:
            return f"cannot write the worker's state: {exc.filename}: {exc.strerror}"
        text = str(exc)
        if type(exc) is Exception and text.startswith(ROCKSDB_IO_ERROR):
            return f"cannot write the worker's state: {text.removeprefix(ROCKSDB_IO_ERROR)}"
        exc = exc.__cause__ or exc.__context__
    return None


def stop_for_state(failure: str) -> NoReturn:
    """End the process at once, in one line: a worker that cannot write its state must not
    go on, and Faust's orderly stop on a crash can hang for seconds and print tracebacks of
    its own. Stopping here is as safe as ``kill -9``: no offset was committed for a step that
    did not finish, and RocksDB recovers from its write-ahead log."""
    line = f"freshness: {failure}; {STATE_ADVICE}\n"
    os.write(2, line.encode())  # fd 2 itself: Faust's worker redirects sys.stderr into its log
    os._exit(STATE_FAILURE_EXIT)


class StateFailureFilter(logging.Filter):
    """Drops the tracebacks of a state-directory write failure: the worker stops on it and
    says it in one line (:func:`stop_for_state`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        args = record.args if isinstance(record.args, tuple) else ()
        reasons = [exc, *(a for a in args if isinstance(a, BaseException))]
        return all(state_write_failure(r) is None for r in reasons)


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
    """Faust's worker for ``app``: a bounded stop, a crashed agent stops it, a plain-text
    log (see the module docstring)."""
    # Faust types the setting as a typing special form, not as a class.
    app.conf.agent_supervisor = _supervisor_class(app)  # type: ignore[assignment]
    worker_class = _worker_class(settings.session_timeout_ms / 1000)
    worker = worker_class(app, loglevel=settings.log_level, quiet=True, stdout=stdout or sys.stdout)
    if not worker.stdout.isatty():
        worker.spinner = None  # it writes cursor codes into a log file even when not a TTY
    return worker


def _worker_class(stop_timeout_s: float) -> type[faust.Worker]:
    import faust

    class Worker(faust.Worker):
        """Stops within ``stop_timeout_s`` of a signal; a state write failure ends it in one
        line, with no traceback."""

        _watchdog: threading.Timer | None = None

        def _schedule_shutdown(self, signal: Any) -> None:
            if self._watchdog is None:
                self._watchdog = stop_watchdog(stop_timeout_s)
            super()._schedule_shutdown(signal)

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            for handler in logger.handlers:
                handler.addFilter(StateFailureFilter())

        def _shutdown_loop(self) -> None:
            failure = state_write_failure(self.crash_reason)
            if failure is not None:
                stop_for_state(failure)  # e.g. RocksDB failed to open at an assignment
            super()._shutdown_loop()

    return Worker


def _supervisor_class(app: faust.App) -> type[Any]:
    import mode

    class StopOnCrash(mode.OneForOneSupervisor):
        """Faust's supervisor of agents, except that an agent that failed stops the worker:
        Faust's own restarts it on the next message (a full disk then cost a traceback
        every 10 s while the worker looked alive). An actor cancelled by a rebalance is
        restarted as Faust does."""

        async def restart_service(self, service: Any) -> None:
            reason = service.crash_reason
            if reason is None or isinstance(reason, asyncio.CancelledError):
                await super().restart_service(service)
            elif (failure := state_write_failure(reason)) is not None:
                stop_for_state(failure)
            else:
                await app.crash(reason)

    return StopOnCrash


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
