#!/usr/bin/env bash
# Requests per second and latency of `GET /api/v1/stations/{id}/now-playing`, signed in, on one
# grimnir-server instance (release build, SQLite, the in-process bus), measured with wrk on
# loopback. The baseline, run side by side on the same server: `GET /healthz`, which touches
# neither authentication nor the executor pool, so the ratio is the cost of the route itself.
#
#   bash benches/now-playing.sh [SECONDS] [CONNECTIONS]
#
# Targets (issue 6): at least 10,000 requests/s with p99 under 10 ms.
set -euo pipefail

SECONDS_PER_RUN="${1:-20}"
CONNECTIONS="${2:-64}"

log() { printf 'now-playing: %s\n' "$*"; }

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ensure_deb_packages wrk

cargo="${CARGO:-cargo}"
"$cargo" build --release --quiet -p grimnir-server --bin grimnir
bin="${CARGO_TARGET_DIR:-target}/release/grimnir"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
export GRIMNIR_DATA_DIR="$work/data" GRIMNIR_HTTP_LISTEN="127.0.0.1:$port"
export GRIMNIR_STATIONS_DIR="$work/stations" GRIMNIR_LOG_LEVEL=warn
export GRIMNIR_JWT_SECRET="now-playing-bench-secret-with-enough-length-0123456789"
# The per-user limit would otherwise answer most of the run with 429.
export GRIMNIR_AUTH_USER_PER_MINUTE=1000000
mkdir -p "$GRIMNIR_DATA_DIR" "$GRIMNIR_STATIONS_DIR"

email="bench@example.org"
password="$("$bin" user create --email "$email" --role admin | sed -n 's/^password: //p')"
"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
    curl -fs "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.2
done

json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
token="$(curl -fs -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" | json '["access_token"]')"
station="$(curl -fs -X POST "$base/api/v1/stations" -H "Authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"name":"Bench FM","timezone":"UTC"}' | json '["id"]')"
# Let the executor pool pick the station up, so the route answers from a running executor.
for _ in $(seq 1 100); do
    body="$(curl -fs "$base/api/v1/stations/$station/now-playing" -H "Authorization: Bearer $token" || true)"
    [ -n "$body" ] && break
    sleep 0.2
done
log "now playing: $body"

run() {
    local path="$1"
    shift
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$@" "$base$path" | tee "$work/wrk.txt" >&2
    local rps p99
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")"
    p99="$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
    printf '%s %s\n' "$rps" "$p99"
}

log "baseline: GET /healthz, $CONNECTIONS connections, ${SECONDS_PER_RUN}s"
read -r base_rps base_p99 < <(run /healthz)
log "GET now-playing, signed in, $CONNECTIONS connections, ${SECONDS_PER_RUN}s"
read -r np_rps np_p99 < <(run "/api/v1/stations/$station/now-playing" -H "Authorization: Bearer $token")

ratio="$(python3 -c "print(f'{$np_rps / $base_rps:.2f}')")"
cat <<SUMMARY

  GET /healthz (baseline)   ${base_rps} requests/s   p99 ${base_p99}
  GET now-playing           ${np_rps} requests/s   p99 ${np_p99}
  now-playing / baseline    ${ratio}
  target                    >= 10000 requests/s, p99 < 10ms

SUMMARY
