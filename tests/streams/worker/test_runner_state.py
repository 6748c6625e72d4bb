"""Which failures are a state directory that cannot be written (the worker stops on them
in one line), and which tracebacks the worker's log drops for them."""

from __future__ import annotations

import errno
import logging

from streams.errors import StateError
from streams.worker.runner import StateFailureFilter, state_write_failure

ROCKSDB = "IO error: While appending to file: /s/v1/tables/t-1.db/000004.log: File too large"


def test_rocksdb_and_os_write_errors_name_the_path_and_the_cause() -> None:
    assert state_write_failure(Exception(ROCKSDB)) == (
        "cannot write the worker's state: While appending to file: "
        "/s/v1/tables/t-1.db/000004.log: File too large"
    )
    full = OSError(errno.ENOSPC, "No space left on device", "/s/worker.lock")
    assert state_write_failure(full) == (
        "cannot write the worker's state: /s/worker.lock: No space left on device"
    )
    assert state_write_failure(StateError("cannot write X")) == "cannot write X"


def test_a_cause_is_found_through_the_exception_chain() -> None:
    outer = RuntimeError("the step failed")
    outer.__cause__ = Exception(ROCKSDB)
    assert state_write_failure(outer) is not None


def test_other_failures_are_not_state_failures() -> None:
    assert state_write_failure(None) is None
    assert state_write_failure(Exception("boom")) is None
    assert state_write_failure(ValueError(ROCKSDB)) is None  # RocksDB raises plain Exception
    assert state_write_failure(OSError(errno.ECONNREFUSED, "Connection refused")) is None


def test_the_log_drops_only_the_tracebacks_of_a_state_failure() -> None:
    keep = StateFailureFilter()

    def record(msg: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord("faust", logging.ERROR, __file__, 1, msg, args, info)

    assert not keep.filter(record("Crashed reason=%r", Exception(ROCKSDB)))
    assert not keep.filter(record("Crashed", exc=Exception(ROCKSDB)))
    assert keep.filter(record("Crashed reason=%r", Exception("boom")))
    assert keep.filter(record("Unable connect to node with id %s", 1))
