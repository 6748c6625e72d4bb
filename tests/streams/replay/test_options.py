"""Arguments of replay and explain, checked before anything connects to Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import build_parser
from streams.errors import ConfigError
from streams.replay import explain_command, replay_command
from streams.replay.options import join_relative_times
from streams.settings import Settings

NOW = 1_780_000_000_000


def parse(*argv: str) -> object:
    return build_parser().parse_args(join_relative_times(list(argv)))


def test_a_relative_time_after_its_option_is_taken_as_its_value() -> None:
    assert join_relative_times(["replay", "--from", "-2h", "--to", "-1h30m", "--json"]) == [
        "replay",
        "--from=-2h",
        "--to=-1h30m",
        "--json",
    ]
    assert join_relative_times(["replay", "--from", "--json"]) == ["replay", "--from", "--json"]


def test_the_replay_request() -> None:
    args = parse("replay", "--from", "-2h", "--flow", "lead_to_posthog", "--lookback", "30m")
    req = replay_command.request_from(args, Settings(), NOW)  # type: ignore[arg-type]
    assert (req.from_ms, req.to_ms) == (NOW - 7_200_000, NOW)
    assert [f.name for f in req.flows] == ["lead_to_posthog"]
    assert req.lookback_ms == 1_800_000  # capped: the flow gives up after 24 h
    future = parse("replay", "--from", "-2h", "--to", str(NOW + 60_000))
    assert replay_command.request_from(future, Settings(), NOW).to_ms == NOW  # type: ignore[arg-type]
    wide = parse("replay", "--from", "-2h", "--lookback", "48h")
    assert replay_command.request_from(wide, Settings(), NOW).lookback_ms == 86_400_000  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("--from", "-1h", "--to", "-2h"), "is not before --to"),
        (("--from", "now"), "is not before --to"),
        (("--from", "-1h", "--flow", "nope"), "unknown flow 'nope'"),
        (("--from", "soon"), "--from: time 'soon' is not a time"),
        (("--from", "-1h", "--to", "later"), "--to: time 'later'"),
        (("--from", "-1h", "--lookback", "0s"), "--lookback: '0s' must be longer than zero"),
    ],
)
def test_bad_replay_arguments(argv: tuple[str, ...], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        replay_command.request_from(parse("replay", *argv), Settings(), NOW)  # type: ignore[arg-type]


def test_a_flows_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    args = parse("replay", "--from", "-1h", "--flows", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        replay_command.request_from(args, Settings(), NOW)  # type: ignore[arg-type]


def test_the_explain_request() -> None:
    req = explain_command.request_from(parse("explain", "lead_to_posthog", "k"), Settings(), NOW)  # type: ignore[arg-type]
    assert (req.since_ms, req.until_ms, req.scan) == (NOW - 86_400_000, NOW, False)
    around = parse("explain", "lead_to_posthog", "k", "--around", "-1h", "--window", "10m")
    req = explain_command.request_from(around, Settings(), NOW)  # type: ignore[arg-type]
    assert (req.since_ms, req.until_ms, req.scan) == (NOW - 4_200_000, NOW - 3_000_000, True)
    with pytest.raises(ConfigError, match="unknown flow"):
        explain_command.request_from(parse("explain", "nope", "k"), Settings(), NOW)  # type: ignore[arg-type]
