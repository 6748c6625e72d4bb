"""Command-line options of ``freshness simulate`` and ``freshness score`` (argparse only, so
building the parser imports nothing heavy)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1]")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def add_simulate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=_positive, default=50.0, help="input records per second (50)")
    p.add_argument(
        "--duration",
        default=None,
        help="how long to run, e.g. 30s, 10m, 1h (default: until Ctrl-C); a finite run only "
        "starts entities whose records (or overdue deadline) fall before its end",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--run-id", default=None, help="run id in every key (default: random hex)")
    p.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="ground-truth file, JSON lines (default: ./simulate-<run id>.truth.jsonl)",
    )
    fractions = p.add_argument_group("injected faults (fractions of starts; malformed: of records)")
    for name, what in (
        ("late", "completion after the target"),
        ("missing", "no completion (overdue, then lost after give_up_after)"),
        ("duplicate", "start or completion delivered twice"),
        ("out-of-order", "completion delivered before its start"),
        ("skew", "completion occurred_at before the start's (negative lag)"),
        ("malformed", "records the monitor must quarantine (six reasons, evenly)"),
    ):
        fractions.add_argument(f"--{name}", type=_fraction, default=0.0, help=f"{what} (0)")
    paths = p.add_argument_group(
        "how records reach the monitor (default: every record straight to Kafka)"
    )
    paths.add_argument(
        "--posthog-host",
        default=None,
        metavar="URL",
        help="capture the PostHog flows' completions through the real posthog SDK against this "
        "capture endpoint, the SDK bridge writing them when PostHog answers",
    )
    paths.add_argument(
        "--posthog-flush-interval",
        type=_positive,
        default=0.25,
        metavar="S",
        help="the SDK's flush_interval in seconds (0.25; its default of 5 is a lead's whole "
        "target)",
    )
    paths.add_argument(
        "--receiver-url",
        default=None,
        metavar="URL",
        help="POST the completions of --receiver-flow to the monitor's /v1/events/{topic} at "
        "this API (token: FRESHNESS_INGEST_TOKEN)",
    )
    paths.add_argument(
        "--receiver-flow",
        default="approval_to_notification",
        metavar="FLOW",
        help="the flow whose completions go through --receiver-url (approval_to_notification)",
    )
    lag = p.add_argument_group("on-time lag: log-normal, median = fraction x target")
    lag.add_argument("--lag-fraction", type=_fraction, default=0.25, help="median / target (0.25)")
    lag.add_argument("--lag-sigma", type=_positive, default=0.5, help="log-normal sigma (0.5)")


def add_score_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truth", type=Path, required=True, help="the run's ground-truth file")
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="most seconds to wait, past the last expected deadline, for the monitor to "
        "catch up (30)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="judge once no new record of the run arrived for this many seconds (3)",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the report to this file")
