"""``freshness replay``: judge a time range of the input topics again, in memory.

    freshness replay --from -2h [--to now] [--flow NAME]... [--flows FILE]
                     [--lookback DUR] [--output FILE] [--diff] [--json]

Reads the range's input records (and the lookback before it) straight from Kafka with a
group-less consumer, judges them with the worker's pipeline (:mod:`streams.replay.engine`),
prints a summary per flow and, on request, writes the final state per key
(:mod:`streams.replay.output`) and compares it with the live output topics
(:mod:`streams.replay.diff`). It never writes to Kafka.

Exit status: 0; 1 when ``--diff`` found a difference; 2 with one line on stderr for a bad
argument (an unparsable time, ``--from`` not before ``--to``, an unknown flow, a range
without input records) or when Kafka cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.core.clock import now_ms
from streams.core.model import Flow
from streams.core.timeparse import format_event_time
from streams.errors import ConfigError
from streams.flows.config import flow_topics, load_flows
from streams.kafka import new_consumer
from streams.replay import console, diff, live
from streams.replay.engine import ReplayEngine, ReplayOptions, ReplayResult
from streams.replay.merge import TimeMerge
from streams.replay.output import write_output
from streams.replay.source import (
    CONSUMER_OPTIONS,
    Plan,
    plan_range,
    quiet_client_logs,
    read_inputs,
    start_consumer,
)
from streams.replay.summary import summary_json
from streams.replay.timespec import parse_span, parse_time
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class Request:
    """The replay asked for, with every argument checked."""

    flows: tuple[Flow, ...]
    from_ms: int
    to_ms: int
    lookback_ms: int
    output: Path | None
    diff: bool
    json: bool


def request_from(args: argparse.Namespace, settings: Settings, now: int) -> Request:
    """Checked arguments; raises :class:`ConfigError` with one line naming the bad one."""
    from_ms = parsed("--from", parse_time, args.from_, now)
    to_ms = min(parsed("--to", parse_time, args.to, now), now)  # nothing is written later
    cap = None if args.lookback is None else parsed("--lookback", parse_span, args.lookback)
    if from_ms >= to_ms:
        raise ConfigError(
            f"--from {format_event_time(from_ms)} is not before --to {format_event_time(to_ms)}"
        )
    flows = select_flows(load_flows(args.flows or settings.flows), args.flow)
    lookback = max(f.give_up_after_ms for f in flows)
    if cap is not None:
        lookback = min(lookback, cap)
    return Request(flows, from_ms, to_ms, lookback, args.output, args.diff, args.json)


def parsed(option: str, parse: Callable[..., int], *args: Any) -> int:
    """``parse(*args)``; its ValueError becomes a :class:`ConfigError` naming ``option``."""
    try:
        return parse(*args)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


def select_flows(flows: Sequence[Flow], names: Sequence[str] | None) -> tuple[Flow, ...]:
    """The flows named (all when None), in configuration order; an unknown name is an error."""
    if not names:
        return tuple(flows)
    known = {f.name for f in flows}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown flow {unknown[0]!r}; the flows are: {', '.join(f.name for f in flows)}"
        )
    return tuple(f for f in flows if f.name in set(names))


def options_from(settings: Settings) -> ReplayOptions:
    return ReplayOptions(
        tick_interval_ms=settings.tick_interval_ms,
        watermark_grace_ms=settings.watermark_grace_ms,
        max_future_skew_ms=settings.max_future_skew_ms,
        done_retention_ms=settings.done_retention_ms,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The command: 0, or 1 when ``--diff`` found differences (errors raise)."""
    quiet_client_logs()
    req = request_from(args, settings, now_ms())
    return asyncio.run(_main(req, settings))


async def _main(req: Request, settings: Settings) -> int:
    ui = console.Ui(quiet=req.json)
    consumer = new_consumer(settings, **CONSUMER_OPTIONS)
    try:
        await start_consumer(consumer, settings)
        started = time.perf_counter()
        plan = await plan_range(
            consumer, flow_topics(req.flows), req.from_ms, req.to_ms, req.lookback_ms
        )
        _require_data(plan, req)
        result = await replay(consumer, plan, req.flows, options_from(settings), ui)
        seconds = time.perf_counter() - started
        report = await _diff(consumer, plan, result, settings, ui) if req.diff else None
    finally:
        await consumer.stop()
    return _report(req, result, seconds, report, ui)


def _require_data(plan: Plan, req: Request) -> None:
    if plan.in_range() == 0:
        raise ConfigError(
            f"no input records between {format_event_time(req.from_ms)} and "
            f"{format_event_time(req.to_ms)} on {', '.join(flow_topics(req.flows))}"
        )


GC_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def quiet_gc() -> Iterator[None]:
    """The join holds millions of small objects, and the collector's default thresholds
    (700 allocations) make it walk them again and again: in-process measurements of the
    pipeline ran at half speed with them. During the read, what exists before is frozen
    out of collection and collections run every 100,000 allocations instead."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


async def replay(
    consumer: Any, plan: Plan, flows: Sequence[Flow], options: ReplayOptions, ui: console.Ui
) -> ReplayResult:
    """Read the plan's records and judge them; the engine's result."""
    engine = ReplayEngine(
        flows, plan.spans, from_ms=plan.from_ms, to_ms=plan.to_ms, options=options
    )
    merge = TimeMerge(plan.spans, options.tick_interval_ms)
    with ui.progress("reading input", plan.to_read()) as advance, quiet_gc():
        await read_inputs(consumer, plan, merge, engine.feed, advance)
    return engine.finish()


async def _diff(
    consumer: Any, plan: Plan, result: ReplayResult, settings: Settings, ui: console.Ui
) -> diff.DiffReport:
    ranges = await live.output_ranges(consumer, live.LIVE_TOPICS, plan.from_ms - live.SLACK_MS)
    names = {f.name for f in result.flows}
    with ui.progress("reading live outputs", live.total(ranges)) as advance:
        records, _ = await live.read_outputs(
            consumer, ranges, lambda key: live.ours(key, names, settings.app_id), advance
        )
    delay = settings.watermark_grace_ms + settings.tick_interval_ms
    return diff.compare(result, plan.spans, records, judge_delay_ms=delay)


def _report(
    req: Request,
    result: ReplayResult,
    seconds: float,
    report: diff.DiffReport | None,
    ui: console.Ui,
) -> int:
    lines = None if req.output is None else write_output(result, req.output)
    if req.json:
        doc = summary_json(result, seconds)
        if req.output is not None:
            doc["output"] = {"path": str(req.output), "lines": lines}
        if report is not None:
            doc["diff"] = console.diff_json(report)
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        ui.summary(result, seconds)
        if req.output is not None:
            ui.line(f"wrote {lines} records to {req.output}")
        if report is not None:
            ui.diff(report)
    return 1 if report is not None and report.differences else 0
