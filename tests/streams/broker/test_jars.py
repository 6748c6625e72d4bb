"""The jar cache: reused when complete, Maven required only to fill it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.broker import jars
from streams.errors import BrokerError


def test_complete_cache_is_reused_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = jars.libs_dir(tmp_path, "9.9.9")
    libs.mkdir(parents=True)
    (tmp_path / "9.9.9" / jars.COMPLETE_MARKER).write_text("9.9.9\n")
    monkeypatch.setenv("PATH", "/nonexistent")  # no mvn: must not be needed
    assert jars.ensure_jars(tmp_path, "9.9.9") == libs


def test_missing_maven_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) is not on PATH.*apt-get install maven"):
        jars.ensure_jars(tmp_path, "4.0.2")
    assert not jars.is_cached(tmp_path, "4.0.2")


def test_a_libs_dir_without_marker_is_not_a_cache(tmp_path: Path) -> None:
    jars.libs_dir(tmp_path, "4.0.2").mkdir(parents=True)
    assert not jars.is_cached(tmp_path, "4.0.2")


def test_pom_is_packaged_with_the_version_as_a_property() -> None:
    from importlib import resources

    pom = resources.files("streams.broker").joinpath("pom.xml").read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<version>${kafka.version}</version>" in pom
    assert "slf4j-simple" in pom
