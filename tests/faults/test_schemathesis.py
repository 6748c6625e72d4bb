"""schemathesis in ``make test``: ``tests/api/schemathesis.sh`` with a bounded number of
examples per operation, against the seeded demo API once without and once with a read token
(the receivers enabled both times, with their own credentials), every check on. It must
find nothing (no 5xx, no response outside its schema, no request wrongly accepted, no auth
bypass) over every operation of the OpenAPI document, and the cases it ran go into the figure
table."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from api.app import create_app
from api.demo import build
from streams.settings import Settings
from tests.faults.figures import Row, record

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "api" / "schemathesis.sh"
MAX_EXAMPLES = 25
"""Examples per operation and phase: about a minute a run here (2 cores)."""
MUST_COVER = (
    "/",
    "/v1/flows",
    "/v1/breaches",
    "/v1/entities/{flow}/{key}/explain",
    "/v1/alerts",
    "/v1/events/{topic}",
    "/v1/webhooks/posthog",
)
RUN = re.compile(r"^== schemathesis, token (set|unset)", re.M)
OPERATIONS = re.compile(r"Operations:\s+(\d+) selected / (\d+) total")
CASES = re.compile(r"^\s*(\d+) generated, (\d+) passed", re.M)


def demo_openapi() -> dict[str, Any]:
    """The OpenAPI document the demo serves with the receivers enabled."""
    settings = Settings(ingest_token=SecretStr("i" * 24), webhook_ingest_secret=SecretStr("w" * 24))
    app = create_app(settings, build(settings, now_ms=1_767_225_600_000, breaches=10))
    return app.openapi()


def operations() -> int:
    return sum(len(methods) for methods in demo_openapi()["paths"].values())


def test_the_demo_documents_every_operation_the_fuzzer_must_reach() -> None:
    missing = [p for p in MUST_COVER if p not in demo_openapi()["paths"]]
    assert not missing, missing


def test_schemathesis_finds_nothing_with_and_without_a_token() -> None:
    env = dict(os.environ, MAX_EXAMPLES=str(MAX_EXAMPLES))
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    out = done.stdout + done.stderr
    print(out)
    assert done.returncode == 0, out[-8000:]
    assert RUN.findall(out) == ["unset", "set"], out[-3000:]
    selected = OPERATIONS.findall(out)
    assert selected == [(str(operations()),) * 2] * 2, selected  # every operation, both runs
    runs = CASES.findall(out)
    assert len(runs) == 2, out[-3000:]
    assert all(generated == passed for generated, passed in runs), runs
    cases = sum(int(generated) for generated, _ in runs)
    record(
        Row(
            fault="schemathesis (every check, demo API)",
            injected=2,
            cases=cases,
            detail=f"{MAX_EXAMPLES} examples per operation; runs without and with a read token; "
            "0 failures",
            test="tests/faults/test_schemathesis.py",
        )
    )
