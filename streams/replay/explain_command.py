"""``freshness explain FLOW KEY``: one entity's story from the raw topics.

    freshness explain lead_to_posthog L-42 [--json] [--around TIME] [--window DUR]

1. Reads every version of the entity's breach record and its measurements written within
   the window (default: the last 24 h; with ``--around T``, ``T - window .. T + window``).
2. Reads the input records at the positions those records name (``start_source``,
   ``end_source``).
3. With ``--around``, or when no output record named a position, scans the flow's input
   topics over the same window for every record of the entity (a progress bar shows it).
4. Reads the pages that name the entity: ``freshness.alerts`` states of its flow in the
   window whose ``details.oldest`` lists it (a ``stuck`` alert).
5. Prints the verdict with its arithmetic and the lag decomposition
   (:mod:`streams.replay.explain`), or all of it as JSON with ``--json``.

Exit status: 0; 1 when nothing at all was found for the entity in the window; 2 with one
line on stderr for a bad argument or when Kafka cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from streams.core.clock import now_ms
from streams.core.model import Flow
from streams.core.timeparse import format_event_time
from streams.flows.config import load_flows
from streams.kafka import new_consumer
from streams.replay import console, lookup
from streams.replay.explain import Explanation, InputSeen, build
from streams.replay.replay_command import parsed, select_flows
from streams.replay.source import CONSUMER_OPTIONS, quiet_client_logs, start_consumer
from streams.replay.timespec import parse_span, parse_time
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class Request:
    flows: tuple[Flow, ...]
    flow: Flow
    key: str
    since_ms: int
    until_ms: int
    scan: bool
    json: bool
    now: int


def request_from(args: argparse.Namespace, settings: Settings, now: int) -> Request:
    window = parsed("--window", parse_span, args.window)
    around = None if args.around is None else parsed("--around", parse_time, args.around, now)
    flows = tuple(load_flows(args.flows or settings.flows))
    (flow,) = select_flows(flows, [args.flow])
    if around is None:
        since, until = now - window, now
    else:
        since, until = around - window, around + window
    return Request(flows, flow, args.key, since, until, around is not None, args.json, now)


def run(args: argparse.Namespace, settings: Settings) -> int:
    quiet_client_logs()
    req = request_from(args, settings, now_ms())
    expl = asyncio.run(_main(req, settings))
    if not (expl.inputs or expl.breaches or expl.measurements):
        print(
            f"freshness: no record of {req.flow.name}:{req.key} between "
            f"{format_event_time(req.since_ms)} and {format_event_time(req.until_ms)}; "
            "widen --window or give --around",
            file=sys.stderr,
        )
        return 1
    if req.json:
        sys.stdout.write(orjson.dumps(expl.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console.Ui().explanation(expl)
    return 0


async def _main(req: Request, settings: Settings) -> Explanation:
    ui = console.Ui(quiet=req.json)
    consumer = new_consumer(settings, **CONSUMER_OPTIONS)
    try:
        await start_consumer(consumer, settings)
        return await explain_from_kafka(consumer, req, settings.max_future_skew_ms, ui)
    finally:
        await consumer.stop()


async def explain_from_kafka(
    consumer: Any, req: Request, max_future_skew_ms: int, ui: console.Ui
) -> Explanation:
    """Find the entity's records (outputs, then inputs by position, then by scanning)."""
    ident = f"{req.flow.name}:{req.key}"
    until = None if req.until_ms >= req.now else req.until_ms
    with ui.progress("reading output topics", None) as advance:
        breaches, measurements = await lookup.find_outputs(
            consumer, ident, req.since_ms, until, advance
        )
    decode = lookup.EntityDecoder(req.flows, req.flow, req.key, max_future_skew_ms)
    positions = lookup.positions_in([*measurements, *breaches])
    inputs = await lookup.read_inputs_at(consumer, positions, decode)
    if req.scan or not positions:
        with ui.progress("scanning input topics", None) as advance:
            scanned = await lookup.scan_inputs(consumer, decode, req.since_ms, until, advance)
        inputs = _merged(inputs, scanned)
    with ui.progress("reading freshness.alerts", None) as advance:
        pages = await lookup.find_pages(consumer, req.flow, req.key, req.since_ms, until, advance)
    return build(req.flow, req.key, inputs, breaches, measurements, req.now, pages)


def _merged(first: list[InputSeen], more: list[InputSeen]) -> list[InputSeen]:
    """Both lists, once per position, by Kafka timestamp."""
    by_pos = {r.position(): r for r in (*first, *more)}
    return sorted(by_pos.values(), key=lambda r: (r.timestamp, r.topic, r.partition, r.offset))
