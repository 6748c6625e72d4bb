"""Command-line options of ``freshness replay`` and ``freshness explain`` (argparse only, so
building the parser imports nothing heavy). TIME and DUR are parsed by the commands
(:mod:`streams.replay.timespec`), so a bad one is one line on stderr, not a usage dump."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

TIME_HELP = "RFC 3339 (2026-04-23T10:46:57Z), epoch ms, 'now', or relative like -2h or -90s"
DEFAULT_EXPLAIN_WINDOW = "24h"


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", required=True, metavar="TIME", help=TIME_HELP)
    p.add_argument("--to", default="now", metavar="TIME", help="end of the range (now)")
    p.add_argument(
        "--flow", action="append", default=None, metavar="NAME", help="only this flow (repeat)"
    )
    p.add_argument(
        "--flows", type=Path, default=None, metavar="FILE", help="judge with these flows instead"
    )
    p.add_argument(
        "--lookback",
        default=None,
        metavar="DUR",
        help="read at most this far before --from (default: the longest give_up_after)",
    )
    p.add_argument("--output", type=Path, default=None, metavar="FILE", help="JSON lines out")
    p.add_argument("--diff", action="store_true", help="compare with the live output topics")
    p.add_argument("--json", action="store_true", help="summary as JSON on stdout, no progress")


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("flow", metavar="FLOW", help="flow name, e.g. lead_to_posthog")
    p.add_argument("key", metavar="KEY", help="entity key, e.g. a lead_id")
    p.add_argument("--json", action="store_true", help="everything as JSON on stdout")
    p.add_argument(
        "--around", default=None, metavar="TIME", help=f"scan around this time ({TIME_HELP})"
    )
    p.add_argument(
        "--window",
        default=DEFAULT_EXPLAIN_WINDOW,
        metavar="DUR",
        help=f"how far to look: either side of --around, else back from now "
        f"({DEFAULT_EXPLAIN_WINDOW})",
    )
    p.add_argument("--flows", type=Path, default=None, metavar="FILE", help="flows file")


TIME_OPTIONS = ("--from", "--to", "--around")
_RELATIVE = re.compile(r"-\d[\dhdms]*")


def join_relative_times(argv: Sequence[str]) -> list[str]:
    """``["--from", "-2h"]`` as ``["--from=-2h"]``: argparse takes a value that starts with a
    dash for an option, so a relative TIME after its option is joined to it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg in TIME_OPTIONS and nxt is not None and _RELATIVE.fullmatch(nxt):
            out.append(f"{arg}={nxt}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out
