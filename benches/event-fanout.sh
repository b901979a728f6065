#!/usr/bin/env bash
# Event delivery latency to many WebSocket clients of one grimnir-server instance.
#
#   bash benches/event-fanout.sh [CLIENTS] [BUS]
#
# Builds grimnir-server's `event_fanout` example in release and runs it with 100 clients
# (SPEC.md's floor: p95 under 100 ms) and with CLIENTS (default 1000; the target: p99 under
# 10 ms), each receiving 200 `now_playing` events published at 50 a second. BUS is `memory`
# (default), `nats://127.0.0.1:4222` or `redis://127.0.0.1:6379`; with a bus the publisher is a
# second instance, so every event crosses it.
#
# Each size runs twice:
# - `one process`: server, publisher and clients share a process and every core, so the
#   figures include the clients' own work;
# - `split`: the server (with the publisher) in one process pinned to CPU 0, the clients in
#   another pinned to CPU 1, one runtime thread each, the way clients on other machines would
#   leave the server its core. Needs two CPUs and `taskset`; skipped with a reason otherwise.
set -euo pipefail

CLIENTS="${1:-1000}"
BUS="${2:-memory}"

log() { printf 'event-fanout: %s\n' "$*"; }

cd "$(dirname "$0")/.."
# Every client holds two descriptors (its end and the server's).
want=$((2 * CLIENTS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -n "$want" 2>/dev/null || {
        log "cannot raise the open-file limit to $want (ulimit -n is $(ulimit -n)); raise the hard limit"
        exit 1
    }
fi
cargo build --release --quiet -p grimnir-server --example event_fanout
example="${CARGO_TARGET_DIR:-target}"/release/examples/event_fanout

# The server in one process on CPU 0, the clients in another on CPU 1.
split() {
    local clients="$1" out server addr=""
    out="$(mktemp)"
    TOKIO_WORKER_THREADS=1 taskset -c 0 "$example" --role server --clients "$clients" \
        --events 200 --rate 50 --bus "$BUS" >"$out" 2>&1 &
    server=$!
    for _ in $(seq 200); do
        addr="$(sed -n 's/^listening on //p' "$out")"
        [ -n "$addr" ] && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        cat "$out"
        rm -f "$out"
        kill "$server" 2>/dev/null || true
        log "the server did not start"
        return 1
    fi
    local status=0
    TOKIO_WORKER_THREADS=1 taskset -c 1 "$example" --role clients --connect "$addr" \
        --clients "$clients" --events 200 --rate 50 || status=$?
    wait "$server" || status=$?
    sed 's/^/server: /' "$out"
    rm -f "$out"
    return "$status"
}

can_split=yes
if ! command -v taskset >/dev/null; then
    can_split="no: taskset (util-linux) is not installed"
elif [ "$(nproc)" -lt 2 ]; then
    can_split="no: one CPU"
fi

for clients in 100 "$CLIENTS"; do
    log "$clients clients, bus $BUS, one process"
    "$example" --clients "$clients" --events 200 --rate 50 --bus "$BUS"
    if [ "$can_split" = yes ]; then
        log "$clients clients, bus $BUS, split: server on CPU 0, clients on CPU 1"
        split "$clients"
    else
        log "split run skipped ($can_split)"
    fi
done
