#!/usr/bin/env bash
# Latency of GET /v1/flows at a constant 200 requests/s for 30 s, measured by vegeta (a real
# constant-rate load tool: open loop, so a slow server shows as latency, not a lower rate).
#
#   bench/api_latency_vegeta.sh                       # against a seeded demo API it starts
#   URL=http://127.0.0.1:8000 bench/api_latency_vegeta.sh   # against a running `freshness api`
#
# vegeta is built once from the Go module proxy into .tools/go-bin (needs Go). The demo API
# holds a busy day (4 flows x 8 partitions x 1440 minutes of sketches, 5,000 breaches) and
# replaces 16 stats records a second while it is measured, as live workers do.
# Writes bench/results/api_latency_vegeta.json; exits 1 when p95 >= 50 ms or a request fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VEGETA_VERSION=v12.12.0
RATE=${RATE:-200}
DURATION=${DURATION:-30s}
OUT=bench/results/api_latency_vegeta.json
GOBIN_DIR=$PWD/.tools/go-bin
VEGETA=$GOBIN_DIR/vegeta

if ! [ -x "$VEGETA" ]; then
    command -v go >/dev/null || { echo "bench: Go is needed to build vegeta (apt-get install golang)" >&2; exit 2; }
    echo "building vegeta $VEGETA_VERSION into $GOBIN_DIR" >&2
    GOBIN=$GOBIN_DIR go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
fi

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${URL:-}" ]; then
    port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    .venv/bin/python -m api.demo --port "$port" --updates-per-s 16 >/dev/null 2>&1 &
    server_pid=$!
    URL=http://127.0.0.1:$port
    for _ in $(seq 100); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    server="python -m api.demo (seeded day, 16/s stats updates)"
else
    server="$URL"
fi
# warm up, then measure
echo "GET $URL/v1/flows" | "$VEGETA" attack -rate="$RATE" -duration=3s >/dev/null
report=$(echo "GET $URL/v1/flows" | "$VEGETA" attack -rate="$RATE" -duration="$DURATION" | "$VEGETA" report -type=json)
.venv/bin/python - "$report" "$OUT" "$server" "$RATE" "$DURATION" <<'PY'
import json, os, platform, sys
from datetime import UTC, datetime
report, out, server, rate, duration = sys.argv[1:]
r = json.loads(report)
ms = {k: round(v / 1e6, 2) for k, v in r["latencies"].items() if k in ("50th", "90th", "95th", "99th", "max", "mean")}
result = {
    "benchmark": "api_latency",
    "endpoint": "GET /v1/flows",
    "load_generator": "vegeta v12.12.0 attack (constant rate, open loop)",
    "target_rate_per_s": float(rate),
    "duration": duration,
    "requests": r["requests"],
    "achieved_rate_per_s": round(r["rate"], 1),
    "success_ratio": r["success"],
    "status_codes": r["status_codes"],
    "latency_ms": ms,
    "goal": {"p95_ms_below": 50.0, "met": ms["95th"] < 50.0 and r["success"] == 1.0},
    "server": server,
    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    "date": datetime.now(UTC).isoformat(timespec="seconds"),
}
with open(out, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(json.dumps(result, indent=2))
sys.exit(0 if result["goal"]["met"] else 1)
PY
