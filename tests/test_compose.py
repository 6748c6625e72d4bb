"""docker-compose.yml cannot run here (no Docker engine); it must at least agree with the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.flows.config import load_flows
from streams.settings import Settings
from streams.topics import required_topics

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_kafka_image_is_the_version_the_code_runs() -> None:
    image = _compose()["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{Settings().kafka_version}"


def test_listed_topics_are_the_codes_topics() -> None:
    listed = _compose()["x-freshness-topics"]
    app_id = Settings.model_fields["app_id"].default
    specs = required_topics(load_flows(None), app_id)
    expected = [s.name + (" (compacted)" if s.compacted else "") for s in specs]
    assert listed == expected


def test_services_start_in_order_and_run_the_cli() -> None:
    services = _compose()["services"]
    assert "healthcheck" in services["kafka"]
    assert services["topic-init"]["command"] == ["topics", "create"]
    assert services["worker"]["command"] == ["worker"]
    assert services["api"]["command"] == ["api"]
    for name in ("worker", "api"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["topic-init"]["condition"] == "service_completed_successfully"
        assert services[name]["build"] == "."
    assert services["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_services_reach_kafka_on_its_internal_listener() -> None:
    services = _compose()["services"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("topic-init", "worker", "api"):
        bootstrap = services[name]["environment"]["FRESHNESS_KAFKA_BOOTSTRAP"]
        assert f"//{bootstrap}" in advertised


def test_dockerfile_installs_from_the_lock_with_the_pinned_uv() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv==0.13.9" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    assert 'ENTRYPOINT ["freshness"]' in dockerfile
