#!/usr/bin/env bash
# `make schemathesis`: fuzz the API against its own /openapi.json with every check.
#
# Serves `python -m api.demo` (a seeded read model, no Kafka) on a free loopback port, once
# open and once with FRESHNESS_API_TOKEN set (schemathesis sends the token), and fails if
# schemathesis finds anything: a 5xx, a response that does not match its schema, a request
# accepted that should not be, or an auth bypass. Exit code is schemathesis's.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
ST=${ST:-$ROOT/.venv/bin/schemathesis}
WORK=$(mktemp -d)  # schemathesis keeps a .schemathesis/ cache in its working directory
trap 'rm -rf "$WORK"' EXIT
MAX_EXAMPLES=${MAX_EXAMPLES:-200}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_one() {
  local token=$1 port pid status=0
  port=$(free_port)
  if [[ -n $token ]]; then
    FRESHNESS_API_TOKEN=$token "$PY" -m api.demo --port "$port" --breaches 500 &
  else
    env -u FRESHNESS_API_TOKEN "$PY" -m api.demo --port "$port" --breaches 500 &
  fi
  pid=$!
  trap 'kill $pid 2>/dev/null || true' RETURN
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  local auth=()
  [[ -n $token ]] && auth=(-H "Authorization: Bearer $token")
  echo "== schemathesis, token $([[ -n $token ]] && echo set || echo unset), port $port"
  (cd "$WORK" && "$ST" run "http://127.0.0.1:$port/openapi.json" --checks all "${auth[@]}" \
    --max-examples "$MAX_EXAMPLES" --workers 2) || status=$?
  return $status
}

run_one ""
run_one "schemathesis-$RANDOM$RANDOM"
