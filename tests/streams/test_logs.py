"""The repeat filter: an outage's reconnect errors cost a few lines, and none is hidden."""

from __future__ import annotations

import logging

from streams.logs import RepeatFilter, install_repeat_filter


def record(
    msg: str, *args: object, name: str = "aiokafka", level: int = logging.ERROR
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_are_held_back_for_the_interval_then_counted() -> None:
    now = [0.0]
    f = RepeatFilter(10.0, clock=lambda: now[0])
    first = record("Unable connect to node with id %s", 1)
    assert f.filter(first)
    for i in range(500):
        now[0] = i * 0.01
        assert not f.filter(record("Unable connect to node with id %s", 1))
    now[0] = 10.0
    again = record("Unable connect to node with id %s", 1)
    assert f.filter(again)
    assert again.getMessage() == (
        "Unable connect to node with id 1 [500 more like this in the last 10 s]"
    )
    now[0] = 20.5
    quiet = record("Unable connect to node with id %s", 1)
    assert f.filter(quiet)
    assert quiet.getMessage() == "Unable connect to node with id 1"


def test_other_messages_loggers_and_levels_pass() -> None:
    f = RepeatFilter(10.0, clock=lambda: 0.0)
    assert f.filter(record("a"))
    assert f.filter(record("b"))
    assert f.filter(record("a", name="faust"))
    assert f.filter(record("a", level=logging.WARNING))
    assert not f.filter(record("a"))
    for _ in range(3):  # INFO is never held back: assignment tables share one template
        assert f.filter(record("Setting newly assigned partitions %s", "{0-3}", level=logging.INFO))


def test_install_is_idempotent() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        install_repeat_filter()
        install_repeat_filter()
        assert sum(isinstance(x, RepeatFilter) for x in handler.filters) == 1
    finally:
        root.removeHandler(handler)
