"""The (k) contender's process: the Kafka Streams join in ``bench/peers/kstreams/`` (Java 17,
Maven), built on first use and run as one JVM per benchmark run.

:func:`jar` builds the fat jar with ``mvn -q package`` into
``~/.cache/funnel-freshness/kstreams/<hash of the sources>/`` (so a changed source builds
again, an unchanged one never does; Maven Central must be reachable the first time).
:func:`child` starts it over a flows file written from the monitor's own flow config, and
:func:`passes` reads the line it prints after each pass.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from streams.core.model import CompletionFilter, Flow
from streams.process import Child

SOURCE = Path(
    os.environ.get("BENCH_KSTREAMS_SOURCE") or Path(__file__).resolve().parent / "kstreams"
)
"""The Maven project to build; ``BENCH_KSTREAMS_SOURCE`` names another (a deliberately broken
copy, to see the bench refuse its output)."""
CACHE = Path.home() / ".cache" / "funnel-freshness" / "kstreams"
JAR_NAME = "kstreams-join.jar"
PASS_PREFIX = "KSTREAMS_PASS "
JVM_OPTIONS = ("-Xms512m", "-Xmx2g", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
"""A fixed heap (Kafka Streams itself keeps its defaults); warn-level logs."""


def _sources() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*") if p.is_file() and "target" not in p.parts)


def source_hash() -> str:
    h = hashlib.sha256()
    for p in _sources():
        h.update(str(p.relative_to(SOURCE)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def jar() -> Path:
    """The built jar of the current sources, building it first if it is not cached."""
    build = CACHE / source_hash()
    built = build / "target" / JAR_NAME
    if built.exists():
        return built
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise SystemExit("(k) needs java (17) and mvn on PATH to build bench/peers/kstreams")
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(SOURCE, build, ignore=shutil.ignore_patterns("target"))
    print(f"building the Kafka Streams contender in {build} (mvn -q package)", flush=True)
    done = subprocess.run(["mvn", "-q", "package"], cwd=build, capture_output=True, text=True)
    if done.returncode != 0 or not built.exists():
        raise SystemExit(f"(k) build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return built


def flows_json(flows: Sequence[Flow]) -> bytes:
    """The flows as the Java join reads them (``Flows.load``)."""
    return orjson.dumps([_flow(f) for f in flows])


def _flow(f: Flow) -> dict[str, Any]:
    clauses: list[CompletionFilter] = []
    if f.end_filter is not None:
        clauses = [f.end_filter, *f.end_filter.also]
    return {
        "name": f.name,
        "start_topic": f.start_topic,
        "end_topic": f.end_topic,
        "start_key": list(f.start_key),
        "end_key": list(f.end_key),
        "start_time": list(f.start_time),
        "end_time": list(f.end_time),
        "filter": [{"path": list(c.path), "op": c.op, "value": c.value} for c in clauses],
        "target_ms": f.target_ms,
    }


def output_topic(app_id: str, pass_name: str) -> str:
    """Where pass ``pass_name`` writes its measurements (``KStreamsJoin.outputTopic``)."""
    return f"{app_id}-{pass_name}-measurements"


def internal_topics(app_id: str, pass_name: str) -> list[str]:
    """The topics Kafka Streams makes for a pass: the store's changelog."""
    return [f"{app_id}-{pass_name}-pending-changelog"]


def child(
    bootstrap: str,
    app_id: str,
    home: Path,
    flows: Sequence[Flow],
    expected: int,
    pass_names: Sequence[str],
) -> Child:
    """The JVM of one run: every pass in ``pass_names``, one after the other."""
    built = jar()
    spec = home / f"{app_id}-flows.json"
    spec.write_bytes(flows_json(flows))
    argv = [
        "java",
        *JVM_OPTIONS,
        "-jar",
        str(built),
        bootstrap,
        app_id,
        str(home / app_id),
        str(spec),
        str(expected),
        ",".join(pass_names),
    ]
    return Child(
        "(k) Kafka Streams", argv, home / f"{app_id}.log", dict(os.environ), stop_grace_s=60.0
    )


def passes(log: Path) -> dict[str, dict[str, Any]]:
    """The ``KSTREAMS_PASS`` lines the JVM printed so far, by pass name."""
    out: dict[str, dict[str, Any]] = {}
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(PASS_PREFIX):
            rec = orjson.loads(line[len(PASS_PREFIX) :])
            out[rec["pass"]] = rec
    return out


if __name__ == "__main__":  # build only: python bench/peers/kstreams_app.py
    sys.path.insert(0, str(SOURCE.parent.parent.parent))
    print(jar())
