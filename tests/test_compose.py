"""docker-compose.yml cannot run here (no Docker engine); it must at least agree with the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
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


# ---- the operator's surface: Prometheus, Alertmanager, Grafana (issue 14) ----------------

DEPLOY = ROOT / "deploy"
LONG_RUNNING = ("kafka", "worker", "api", "prometheus", "alertmanager", "grafana")
"""Services with a healthcheck. topic-init runs once; the alerter has no endpoint to ask
(it is up while its process is)."""


def _makefile_var(name: str) -> str:
    (line,) = [x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith(name)]
    return line.split(":=", 1)[1].strip()


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_monitoring_images_are_pinned_to_the_versions_the_tests_run() -> None:
    from streams.testing.peers import alertmanager
    from tests.rules.support import PROMETHEUS_VERSION

    services = _compose()["services"]
    assert _makefile_var("PROMETHEUS_VERSION") == PROMETHEUS_VERSION
    assert _makefile_var("ALERTMANAGER_VERSION") == alertmanager.VERSION
    assert services["prometheus"]["image"] == f"prom/prometheus:v{PROMETHEUS_VERSION}"
    assert services["alertmanager"]["image"] == f"prom/alertmanager:v{alertmanager.VERSION}"
    for name, service in services.items():
        if "build" in service:
            continue
        image, _, tag = service["image"].partition(":")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned: {tag!r}"


def test_long_running_services_have_healthchecks() -> None:
    services = _compose()["services"]
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL"), name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_workers_scale_each_with_a_state_directory_of_its_own() -> None:
    from streams.worker.runner import LOCK_NAME

    worker = _compose()["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    home = worker["environment"]["FRESHNESS_HOME"]
    assert worker["volumes"] == [home]  # anonymous: one volume per replica
    settings = Settings(home=Path(home))
    lock = settings.state_dir / settings.app_id / settings.worker_id / LOCK_NAME
    assert f"open('{lock}')" in worker["healthcheck"]["test"][-1]


def test_prometheus_scrapes_the_api_runs_the_rules_and_alerts_to_alertmanager() -> None:
    services = _compose()["services"]
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (api_job,) = [j for j in config["scrape_configs"] if j["job_name"] == "freshness-api"]
    port = services["api"]["environment"]["FRESHNESS_API_PORT"]
    assert api_job["static_configs"][0]["targets"] == [f"api:{port}"]
    assert api_job["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["freshness.rules.yml"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert services["alerter"]["environment"]["FRESHNESS_ALERTMANAGER_URL"] == (
        "http://alertmanager:9093"
    )
    # Prometheus' alerts must carry exactly the alerter's labels to be the same alerts.
    assert "external_labels" not in config["global"]


def test_the_committed_rules_are_what_freshness_rules_prometheus_prints() -> None:
    from streams.alerting.rules import render
    from streams.flows.config import load_config

    config = load_config(None)
    app_id = Settings.model_fields["app_id"].default
    want = render([config.policies[f.name] for f in config.flows], app_id)
    assert (DEPLOY / "prometheus" / "freshness.rules.yml").read_text() == want, (
        "regenerate: freshness rules prometheus -o deploy/prometheus/freshness.rules.yml"
    )


def test_grafana_gets_the_data_source_and_the_dashboard() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    for volume in grafana["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), volume
    (source,) = _yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = _yaml(DEPLOY / "grafana/provisioning/dashboards/freshness.yml")["providers"]
    mount = "./deploy/grafana/freshness.json:" + provider["options"]["path"] + "/freshness.json:ro"
    assert mount in grafana["volumes"]
    dashboard = orjson.loads((DEPLOY / "grafana" / "freshness.json").read_bytes())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {source["uid"]}


def test_every_mounted_path_exists() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {volume}"


def test_the_image_has_the_locked_environment_installed_non_editably() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev --no-editable" in dockerfile
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    copies = [line for line in runtime.splitlines() if line.startswith("COPY")]
    assert copies == ["COPY --from=build /app/.venv /app/.venv"]  # no source tree
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", ".tools", "tests"} <= set(ignored)
