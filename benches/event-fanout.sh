#!/usr/bin/env bash
# Event delivery latency to many WebSocket clients of one grimnir-server instance.
#
#   bash benches/event-fanout.sh [CLIENTS] [BUS]
#
# Builds grimnir-server's `event_fanout` example in release and runs it twice: with 100 clients
# (SPEC.md's floor: p95 under 100 ms) and with CLIENTS (default 1000; the target: p99 under
# 10 ms), each receiving 200 `now_playing` events published at 50 a second. BUS is `memory`
# (default), `nats://127.0.0.1:4222` or `redis://127.0.0.1:6379`; with a bus the publisher is a
# second instance, so every event crosses it. Server, publisher and clients share one process
# on loopback, so the figures include the clients' own work.
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

for clients in 100 "$CLIENTS"; do
    log "$clients clients, bus $BUS"
    "$example" --clients "$clients" --events 200 --rate 50 --bus "$BUS"
done
