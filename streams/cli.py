"""``freshness``: the command line (DESIGN section 7).

Each sub-command lives in the module that owns its domain; this file only parses arguments,
builds the one :class:`~streams.settings.Settings` object and turns errors into one line on
stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from streams.errors import FreshnessError
from streams.replay.options import (
    add_explain_arguments,
    add_replay_arguments,
    join_relative_times,
)
from streams.settings import Settings, load_settings
from streams.simulate.options import add_score_arguments, add_simulate_arguments

Handler = Callable[[argparse.Namespace, Settings], int]


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    from streams.broker import commands

    return commands.run(args.action, settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka import admin

    return admin.run_create(settings)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker import runner

    return runner.run(settings)


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from api import server

    return server.run(settings)


def _alerter(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alerting import alerter

    return alerter.run(settings)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from streams import up

    duration = None if args.duration is None else args.duration / 1000
    return up.run(settings, rate=args.rate, duration_s=duration, simulate=not args.no_simulate)


def duration_ms(text: str) -> int:
    """argparse type: ``90s``, ``10m``, ``1h30m`` → milliseconds."""
    from streams.flows.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.simulate import runner

    return runner.run(args, settings)


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from streams.simulate import observe

    return observe.run(args, settings)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.replay import replay_command

    return replay_command.run(args, settings)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from streams.replay import explain_command

    return explain_command.run(args, settings)


def _rules(args: argparse.Namespace, settings: Settings) -> int:
    from streams.alerting import rules

    return rules.run(settings, flows=args.flows, output=args.output)


def _add_kafka(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["start", "stop", "status"])


def _add_topics(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["create"])


def _add_up(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, default=20.0, help="simulated events/s (default 20)")
    p.add_argument(
        "--duration",
        type=duration_ms,
        help="stop after this long, e.g. 90s or 10m (default: Ctrl-C)",
    )
    p.add_argument("--no-simulate", action="store_true", help="no simulated traffic")


def _add_rules(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", choices=["prometheus"], help="the rule format")
    p.add_argument(
        "--flows", type=Path, help="flows YAML (default: FRESHNESS_FLOWS, else the packaged four)"
    )
    p.add_argument("-o", "--output", type=Path, help="write the rule file here, not stdout")


def _no_arguments(p: argparse.ArgumentParser) -> None:
    return None


Command = tuple[str, str, Handler, Callable[[argparse.ArgumentParser], None]]
COMMANDS: tuple[Command, ...] = (
    ("kafka", "the embedded dev broker (Apache Kafka, KRaft)", _kafka, _add_kafka),
    (
        "topics",
        "create every topic the configured flows and app id need (idempotent)",
        _topics,
        _add_topics,
    ),
    ("worker", "run a Faust worker (join, breaches, stats)", _worker, _no_arguments),
    ("api", "serve the HTTP API", _api, _no_arguments),
    (
        "alerter",
        "evaluate alert policies and page (PagerDuty, Alertmanager, webhook)",
        _alerter,
        _no_arguments,
    ),
    ("up", "broker, topics, worker, API and simulated traffic, with a live view", _up, _add_up),
    (
        "simulate",
        "live funnel traffic with injected faults and a ground-truth file",
        _simulate,
        add_simulate_arguments,
    ),
    ("score", "judge the monitor's output against a simulate run", _score, add_score_arguments),
    (
        "replay",
        "judge a time range of the input topics again, in memory (--diff, --output)",
        _replay,
        add_replay_arguments,
    ),
    (
        "explain",
        "one entity's records, verdict and lag decomposition from the raw topics",
        _explain,
        add_explain_arguments,
    ),
    (
        "rules",
        "Prometheus recording and alerting rules from the flows' alert policies",
        _rules,
        _add_rules,
    ),
)
"""Every subcommand: name, help, handler, and what adds its arguments."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freshness", description="Streaming funnel freshness monitor."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, handler, add_arguments in COMMANDS:
        command = sub.add_parser(name, help=help_text)
        add_arguments(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = join_relative_times(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, load_settings())
    except FreshnessError as exc:
        print(f"freshness: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
