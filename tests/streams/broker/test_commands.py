"""``freshness kafka``: bootstrap parsing and answers that need no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.broker import commands
from streams.broker.process import free_port
from streams.cli import main
from streams.errors import BrokerError
from streams.settings import Settings


@pytest.mark.parametrize(
    ("bootstrap", "port"), [("127.0.0.1:9092", 9092), ("localhost:19092", 19092)]
)
def test_local_bootstrap_is_accepted(bootstrap: str, port: int) -> None:
    assert commands.parse_local_bootstrap(bootstrap) == ("127.0.0.1", port)


@pytest.mark.parametrize(
    ("bootstrap", "message"),
    [
        ("kafka.internal:9092", "not a local address"),
        ("127.0.0.1:9092,127.0.0.1:9094", "not one host:port"),
        ("127.0.0.1", "not one host:port"),
        ("127.0.0.1:65535", "out of range"),
    ],
)
def test_unusable_bootstrap_is_refused(bootstrap: str, message: str) -> None:
    with pytest.raises(BrokerError, match=message):
        commands.parse_local_bootstrap(bootstrap)


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}")


def test_status_of_nothing_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert commands.run("status", _settings(tmp_path)) == commands.STATUS_NOT_RUNNING
    assert "kafka not running" in capsys.readouterr().out


def test_stop_of_nothing_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.run("stop", _settings(tmp_path)) == 0
    assert "nothing to stop" in capsys.readouterr().out


def test_cli_prints_one_line_and_exits_2_without_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    version_dir = tmp_path / "kafka" / "4.0.2"
    (version_dir / "libs").mkdir(parents=True)
    (version_dir / ".complete").write_text("4.0.2\n")
    monkeypatch.setenv("FRESHNESS_HOME", str(tmp_path))
    monkeypatch.setenv("FRESHNESS_KAFKA_VERSION", "4.0.2")
    monkeypatch.setenv("FRESHNESS_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["kafka", "start"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("freshness: Java is not on PATH")


def test_cli_without_maven_and_no_cache_prints_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to("/bin/true")  # a java, but no mvn
    monkeypatch.setenv("FRESHNESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FRESHNESS_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert main(["kafka", "start"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("freshness: Maven (mvn) is not on PATH")
