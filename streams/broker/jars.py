"""Fetch Apache Kafka as jars from Maven Central into a local cache.

The cache is ``<kafka_dir>/<version>/libs``. It is complete once the marker file
``<kafka_dir>/<version>/.complete`` exists; a complete cache is reused without running
Maven (nor needing it). A fetch resolves into a temporary directory next to the cache
and renames it into place, so an interrupted fetch never leaves a half-filled cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from streams.errors import BrokerError

COMPLETE_MARKER = ".complete"
MAVEN_TIMEOUT_S = 900


def libs_dir(kafka_dir: Path, version: str) -> Path:
    """Where the jars of ``version`` live (or will live)."""
    return kafka_dir / version / "libs"


def is_cached(kafka_dir: Path, version: str) -> bool:
    return (kafka_dir / version / COMPLETE_MARKER).is_file()


def find_maven() -> str:
    """Path of ``mvn``; raises :class:`BrokerError` saying how to install it."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "Maven (mvn) is not on PATH; it fetches Apache Kafka from Maven Central once. "
            "Install it (Debian/Ubuntu: apt-get install maven; macOS: brew install maven) "
            "and try again."
        )
    return mvn


def ensure_jars(kafka_dir: Path, version: str, *, quiet: bool = True) -> Path:
    """Return the libs directory of Kafka ``version``, fetching it first if missing.

    Idempotent: a complete cache returns at once. Raises :class:`BrokerError` when Maven
    is missing or the resolution fails (with the tail of Maven's output).
    """
    libs = libs_dir(kafka_dir, version)
    if is_cached(kafka_dir, version):
        return libs
    mvn = find_maven()
    version_dir = kafka_dir / version
    version_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=version_dir) as tmp:
        staging = Path(tmp) / "libs"
        _resolve(mvn, version, staging, quiet=quiet)
        if not any(staging.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Maven resolved no kafka_2.13 jar for Kafka {version} into {staging}; "
                "check FRESHNESS_KAFKA_VERSION names a released version."
            )
        if is_cached(kafka_dir, version):  # another process finished first
            return libs
        if libs.exists():  # left by a fetch that died between rename and marker
            shutil.rmtree(libs)
        staging.rename(libs)
    (version_dir / COMPLETE_MARKER).write_text(version + "\n")
    return libs


def _resolve(mvn: str, version: str, out: Path, *, quiet: bool) -> None:
    pom = resources.files("streams.broker").joinpath("pom.xml")
    with resources.as_file(pom) as pom_path:
        cmd = [
            mvn,
            "-B",
            "-q" if quiet else "-ntp",
            "-f",
            str(pom_path),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out}",
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise BrokerError(
                f"Maven did not fetch Kafka {version} within {MAVEN_TIMEOUT_S} s; "
                "check the network route to Maven Central (repo.maven.apache.org)."
            ) from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BrokerError(
            f"Maven could not fetch Kafka {version} (exit {proc.returncode}); check the network "
            f"route to Maven Central and that the version exists. Maven said:\n{tail}"
        )


def main() -> int:
    """``python -m streams.broker.jars``: fetch the configured version if missing."""
    from streams.settings import load_settings

    try:
        settings = load_settings()
        cached = is_cached(settings.kafka_dir, settings.kafka_version)
        libs = ensure_jars(settings.kafka_dir, settings.kafka_version)
    except BrokerError as exc:
        print(f"freshness: {exc}", file=sys.stderr)
        return 2
    verb = "found" if cached else "fetched"
    print(f"Kafka {settings.kafka_version} jars {verb} in {libs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
