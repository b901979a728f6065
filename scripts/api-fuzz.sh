#!/usr/bin/env bash
# The property-based API fuzz run of `make test`: schemathesis (from PyPI, in a venv of its own)
# generates requests from the served OpenAPI document and sends them to a real `grimnir serve`
# on loopback, signed in as an admin. It fails on any 5xx, any status the document does not
# list, and any response that breaks the document's schema, content type or headers.
#
# Environment: FUZZ_API_SECONDS (the time budget, default 180; the fuzzing phase repeats until
# it is spent), FUZZ_API_EXAMPLES (examples per operation and round, default 25), CARGO,
# CARGO_TARGET_DIR.
set -euo pipefail

log() { printf 'api-fuzz: %s\n' "$*"; }

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SCHEMATHESIS_VERSION="4.32.5"
cargo="${CARGO:-cargo}"
budget="${FUZZ_API_SECONDS:-180}"
examples="${FUZZ_API_EXAMPLES:-25}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/grimnir"
venv="$cache/schemathesis-$SCHEMATHESIS_VERSION"

# --- schemathesis ---------------------------------------------------------------------------
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ensure_deb_packages python3 python3-venv
fi
if [ ! -x "$venv/bin/schemathesis" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the server -----------------------------------------------------------------------------
"$cargo" build --quiet -p grimnir-server --bin grimnir
bin="${CARGO_TARGET_DIR:-target}/debug/grimnir"

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
export GRIMNIR_DATA_DIR="$work/data"
export GRIMNIR_HTTP_LISTEN="127.0.0.1:$port"
export GRIMNIR_STATIONS_DIR="$work/stations"
export GRIMNIR_LOG_LEVEL="${GRIMNIR_LOG_LEVEL:-warn}"
# Limits high enough that the run tests the routes, not the limiter (429 stays documented).
export GRIMNIR_AUTH_LOGIN_PER_MINUTE=100000
export GRIMNIR_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE=100000
export GRIMNIR_AUTH_PUBLIC_PER_MINUTE=100000
export GRIMNIR_AUTH_USER_PER_MINUTE=100000
mkdir -p "$GRIMNIR_DATA_DIR" "$GRIMNIR_STATIONS_DIR"

email="fuzz@example.org"
password="$("$bin" user create --email "$email" --role admin | sed -n 's/^password: //p')"
[ -n "$password" ] || { log "grimnir user create printed no password"; exit 1; }

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
    if python3 - "$base" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1)
PY
    if ! kill -0 "$server_pid" 2>/dev/null; then
        log "the server stopped before answering:"; cat "$work/server.log"; exit 1
    fi
    sleep 0.2
done

token="$(python3 - "$base" "$email" "$password" <<'PY'
import json, sys, urllib.request
base, email, password = sys.argv[1:4]
request = urllib.request.Request(
    base + "/api/v1/auth/login",
    data=json.dumps({"email": email, "password": password}).encode(),
    headers={"content-type": "application/json"},
)
print(json.load(urllib.request.urlopen(request, timeout=10))["access_token"])
PY
)"

# --- the run --------------------------------------------------------------------------------
log "fuzzing $base for at most ${budget}s, $examples examples per operation"
status=0
# One worker: with two, hypothesis parses lambda sources with `ast.parse` on two threads at
# once, which CPython 3.11 can fail with "SystemError: AST constructor recursion depth
# mismatch", a crash of the tool that schemathesis reports as a failed run.
"$venv/bin/schemathesis" --no-color run "$base/api/v1/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --max-time "$budget" \
    --request-timeout 10 \
    --workers 1 \
    --seed 1 \
    --report-dir "$work/report" || status=$?

if grep -q "panicked" "$work/server.log"; then
    log "the server panicked during the run:"; grep -A5 "panicked" "$work/server.log"
    status=1
fi
if [ "$status" -ne 0 ]; then
    log "failed (schemathesis exit $status); server log tail:"
    tail -n 40 "$work/server.log"
fi
exit "$status"
