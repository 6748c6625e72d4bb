#!/usr/bin/env bash
# `make schemathesis` (and, bounded, tests/faults/test_schemathesis.py in `make test`): fuzz the
# API against its own /openapi.json with every check.
#
# Serves `python -m api.demo` (a seeded read model, no Kafka; explain?inputs=true reads the
# seeded records; the receivers judge records as the real API does and discard what they
# accept) on a free loopback port, once without a read token and once with
# FRESHNESS_API_TOKEN set, both times with the receivers enabled (their own token and secret,
# sent only to their operations through a schemathesis.toml), and fails if schemathesis finds
# anything: a 5xx, a response that does not match its schema, a request accepted that should
# not be, or an auth bypass. Exit code: the first failing run's.
#
# MAX_EXAMPLES (default 200) bounds the examples per operation; SEED makes a run repeatable.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
ST=${ST:-$ROOT/.venv/bin/schemathesis}
WORK=$(mktemp -d)  # schemathesis keeps a .schemathesis/ cache in its working directory
trap 'rm -rf "$WORK"' EXIT
MAX_EXAMPLES=${MAX_EXAMPLES:-200}
SEED_ARGS=()
[[ -n ${SEED:-} ]] && SEED_ARGS=(--seed "$SEED")
export ST_INGEST_TOKEN="ingest-$RANDOM$RANDOM$RANDOM$RANDOM"
export ST_WEBHOOK_SECRET="webhook-$RANDOM$RANDOM$RANDOM$RANDOM"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The receivers get their own credentials; the read token (when set) goes to every other
# operation. ${...} is expanded by schemathesis from the environment.
#
# The receivers' body schemas say "a JSON object (or an array of them)": whether a record is
# valid depends on the topic in the path and on the key fields of the flows that read it,
# which OpenAPI cannot tie to a path parameter, so a schema-valid body may rightly get 422
# naming each bad record (that judgement is tested record by record in
# tests/api/test_receivers.py). For those two operations 422 is an expected answer to
# schema-valid data. And a body over the limits (FRESHNESS_INGEST_MAX_RECORDS, _MAX_BYTES) is
# refused with 413, which schemathesis does not count as a refusal by default. Every other
# check, 5xx included, stays as it is.
config() {
  local token=$1
  [[ -n $token ]] && echo 'headers = { Authorization = "Bearer ${ST_READ_TOKEN}" }'
  cat <<'EOF'
[[operations]]
include-path = "/v1/events/{topic}"
headers = { Authorization = "Bearer ${ST_INGEST_TOKEN}" }
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "413", "422"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "413", "415", "422"]

[[operations]]
include-path = "/v1/webhooks/posthog"
headers = { X-Freshness-Webhook-Secret = "${ST_WEBHOOK_SECRET}" }
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "413", "422"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "413", "415", "422"]
EOF
}

run_one() {
  local token=$1 port pid status=0
  port=$(free_port)
  config "$token" >"$WORK/schemathesis.toml"
  if [[ -n $token ]]; then
    export ST_READ_TOKEN=$token
    FRESHNESS_API_TOKEN=$token FRESHNESS_INGEST_TOKEN=$ST_INGEST_TOKEN \
      FRESHNESS_WEBHOOK_INGEST_SECRET=$ST_WEBHOOK_SECRET \
      "$PY" -m api.demo --port "$port" --breaches 500 &
  else
    env -u FRESHNESS_API_TOKEN FRESHNESS_INGEST_TOKEN=$ST_INGEST_TOKEN \
      FRESHNESS_WEBHOOK_INGEST_SECRET=$ST_WEBHOOK_SECRET \
      "$PY" -m api.demo --port "$port" --breaches 500 &
  fi
  pid=$!
  trap 'kill $pid 2>/dev/null || true' RETURN
  for _ in $(seq 150); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "== schemathesis, token $([[ -n $token ]] && echo set || echo unset), port $port"
  (cd "$WORK" && SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks PYTHONPATH=$ROOT \
    "$ST" --config-file "$WORK/schemathesis.toml" --no-color run \
    "http://127.0.0.1:$port/openapi.json" --checks all --max-examples "$MAX_EXAMPLES" \
    --workers 2 "${SEED_ARGS[@]}") || status=$?
  return $status
}

status=0
run_one "" || status=$?
run_one "schemathesis-$RANDOM$RANDOM$RANDOM" || { s=$?; [[ $status -ne 0 ]] || status=$s; }
exit $status
