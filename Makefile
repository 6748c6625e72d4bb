# funnel-freshness: every developer and CI entry point. `make` alone lists the targets.
#
# Only python3 (3.11+, with pip), java (17+) and mvn are assumed. uv is bootstrapped into
# .tools/ at the exact version that wrote uv.lock; the environment is .venv (uv sync --frozen).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools/uv-$(UV_VERSION)
UV ?= $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced-$(UV_VERSION)
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never

.PHONY: help venv kafka-jars test test-unit test-integration lint fmt typecheck check \
        demo kafka-start kafka-stop kafka-status topics clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

# uv is bootstrapped with pip --target (works on "externally managed" system Pythons too).
# Use another uv with `make UV=uv ...`; it must be $(UV_VERSION) to honour uv.lock as written.
$(STAMP): pyproject.toml uv.lock
	@if ! [ -x "$(UV)" ] && ! command -v "$(UV)" >/dev/null 2>&1; then \
		echo "bootstrapping uv $(UV_VERSION) into $(TOOLS)"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check \
			--target $(TOOLS) uv==$(UV_VERSION) && echo '*' > .tools/.gitignore; \
	fi
	$(UV) sync --frozen
	@touch $@

venv: $(STAMP) ## create .venv from uv.lock (bootstraps uv if needed)

kafka-jars: $(STAMP) ## fetch Apache Kafka jars from Maven Central unless cached
	$(BIN)/python -m streams.broker.jars

test: $(STAMP) kafka-jars alertmanager promtool chromium ## run every test (unit and integration, real broker)
	$(BIN)/pytest tests $(PYTEST_ARGS)

test-unit: $(STAMP) ## run the tests that need no broker
	$(BIN)/pytest tests -m "not integration" $(PYTEST_ARGS)

test-integration: $(STAMP) kafka-jars alertmanager promtool chromium ## run only the tests against the real broker
	$(BIN)/pytest tests -m integration $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on streams/ and api/
	$(BIN)/mypy

check: lint typecheck test ## lint, typecheck and test

kafka-start: $(STAMP) ## start the embedded dev broker (FRESHNESS_KAFKA_BOOTSTRAP, default 127.0.0.1:9092)
	$(BIN)/freshness kafka start

kafka-stop: $(STAMP) ## stop the embedded dev broker
	$(BIN)/freshness kafka stop

kafka-status: $(STAMP) ## is the embedded dev broker running?
	$(BIN)/freshness kafka status

topics: $(STAMP) ## create every input and output topic (idempotent)
	$(BIN)/freshness topics create

demo: $(STAMP) kafka-jars ## run the monitor: broker, topics, worker, API, simulated traffic, live view (Ctrl-C stops all)
	$(BIN)/freshness up

clean: ## remove .venv, .tools and caches (not the Kafka jar cache)
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache

# ---- API (issue 4) ----
.PHONY: schemathesis bench-api api-demo

schemathesis: $(STAMP) ## fuzz the HTTP API against its /openapi.json (every check, open and with a token)
	tests/api/schemathesis.sh

bench-api: $(STAMP) ## GET /v1/flows latency at 200 req/s for 30 s -> bench/results/api_latency.json
	$(BIN)/python bench/api_latency.py

api-demo: $(STAMP) ## serve the API over a seeded demo day on 127.0.0.1:8000 (no Kafka)
	$(BIN)/python -m api.demo --port 8000

.PHONY: bench-api-vegeta
bench-api-vegeta: $(STAMP) ## GET /v1/flows at 200 req/s for 30 s with vegeta (built from the Go proxy; needs Go)
	bench/api_latency_vegeta.sh

# ---- Alertmanager for the sink tests (issue 9) ----
# Built from the Go module proxy (needs Go 1.26+). The module has no compiled web UI
# (ui/app/dist, which the binary embeds), so `go install ...@v0.35.0` cannot build it: the
# source is copied and given a one-page placeholder UI; the API is the real one. Skipped once
# the stamp exists (or the binary, when built by hand). About a minute on 2 cores, cold.
ALERTMANAGER_VERSION := 0.35.0
ALERTMANAGER_DIR := .tools/alertmanager-$(ALERTMANAGER_VERSION)
ALERTMANAGER_STAMP := $(ALERTMANAGER_DIR)/.built
ALERTMANAGER_MODULE := github.com/prometheus/alertmanager@v$(ALERTMANAGER_VERSION)
.PHONY: alertmanager

alertmanager: $(ALERTMANAGER_STAMP) ## build the pinned Alertmanager into .tools/ from the Go module proxy (needs Go)

$(ALERTMANAGER_STAMP):
	@set -euo pipefail; \
	if [ -x $(ALERTMANAGER_DIR)/alertmanager ]; then touch $@; exit 0; fi; \
	command -v go >/dev/null || { echo "make alertmanager needs Go 1.26+ on PATH" >&2; exit 2; }; \
	echo "building Alertmanager $(ALERTMANAGER_VERSION) into $(ALERTMANAGER_DIR)"; \
	go mod download $(ALERTMANAGER_MODULE); \
	work=$(CURDIR)/$(ALERTMANAGER_DIR).build; rm -rf $$work; mkdir -p $$work; \
	cp -R "$$(go env GOMODCACHE)/$(ALERTMANAGER_MODULE)" $$work/src; chmod -R u+w $$work/src; \
	for ui in elm mantine; do \
		mkdir -p $$work/src/ui/app/dist/$$ui; \
		echo '<!doctype html><title>Alertmanager (no UI built)</title>' \
			> $$work/src/ui/app/dist/$$ui/index.html; \
	done; \
	(cd $$work/src && GOTOOLCHAIN=local GOFLAGS='-mod=mod -buildvcs=false' go build -trimpath \
		-ldflags '-X github.com/prometheus/common/version.Version=$(ALERTMANAGER_VERSION)' \
		-o $(CURDIR)/$(ALERTMANAGER_DIR)/alertmanager ./cmd/alertmanager); \
	rm -rf $$work; touch $@

# ---- promtool and Chromium for the operator's surface (issue 14) ----
# promtool (Prometheus 3.16.0 = Go module v0.316.0) by `go install` from the Go module proxy
# (needs Go 1.26+); promtool embeds no web UI, so the plain install works. remove_all_sd
# leaves out the service-discovery plugins (Kubernetes, cloud SDKs), which rule tests and
# `check config` of static scrape configs never use: half the compile (2 min 45 s of CPU
# instead of 5 min 15 s; 77 MB instead of 123 MB). Skipped once the stamp exists (or the
# binary, when built by hand). Once per CI machine, measured here on 2 shared cores: 3 min
# 34 s from a clean clone with an empty Go build cache (modules already downloaded); the
# first download of the modules adds a few minutes (7 min 53 s wall for both, without the
# tag).
PROMETHEUS_VERSION := 3.16.0
PROMTOOL_DIR := .tools/promtool-$(PROMETHEUS_VERSION)
PROMTOOL := $(PROMTOOL_DIR)/promtool
PROMTOOL_STAMP := $(PROMTOOL_DIR)/.built
PROMTOOL_MODULE := github.com/prometheus/prometheus/cmd/promtool@v0.316.0
CHROMIUM ?= /usr/bin/chromium
.PHONY: promtool chromium rules

promtool: $(PROMTOOL_STAMP) ## build the pinned promtool into .tools/ from the Go module proxy (needs Go)

$(PROMTOOL_STAMP):
	@set -euo pipefail; \
	if [ -x $(PROMTOOL) ]; then touch $@; exit 0; fi; \
	command -v go >/dev/null || { echo "make promtool needs Go 1.26+ on PATH" >&2; exit 2; }; \
	echo "building promtool $(PROMETHEUS_VERSION) into $(PROMTOOL_DIR) (minutes, once)"; \
	GOBIN=$(CURDIR)/$(PROMTOOL_DIR) GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go install \
		-trimpath -tags remove_all_sd \
		-ldflags '-X github.com/prometheus/common/version.Version=$(PROMETHEUS_VERSION)' \
		$(PROMTOOL_MODULE); \
	touch $@

chromium: ## install Debian's chromium with apt-get when it is missing (the browser tests)
	@set -euo pipefail; \
	if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	echo "$(CHROMIUM) is missing: installing Debian's chromium with apt-get (about a minute)"; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
	$(CHROMIUM) --version 2>/dev/null

rules: $(STAMP) ## print the Prometheus recording and alerting rules of the flows (FRESHNESS_FLOWS)
	$(BIN)/freshness rules prometheus
