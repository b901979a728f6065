#!/usr/bin/env bash
# Peak memory of planning ten stations × 48 hours over the synthetic 100,000-item library
# (the `plan_48h` benchmark's inputs), which criterion cannot measure.
#
#   bash benches/planner-memory.sh
#
# Builds grimnir-planner's `synthetic_plan` example in release and runs it under GNU time: one
# catalog of the library shared by ten planners, all kept (as a server holds them), each
# planning 48 hours. Prints the peak resident set size against the 200 MB target.
set -euo pipefail

TARGET_MB=200
TIME=/usr/bin/time

log() { printf 'planner-memory: %s\n' "$*"; }

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

# GNU time (Debian package `time`), only when missing: the shell keyword cannot report memory.
ensure_deb_packages time

cd "$(dirname "$0")/.."
cargo build --release --quiet -p grimnir-planner --example synthetic_plan
example="${CARGO_TARGET_DIR:-target}"/release/examples/synthetic_plan

# Runs the example with the given arguments, passes its output through and reports the peak.
measure() {
    local label="$1"
    shift
    local report
    report="$(mktemp)"
    "$TIME" -v -o "$report" "$example" "$@"
    local kb
    kb="$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$report")"
    rm -f "$report"
    local verdict="over"
    if [ "$kb" -lt $((TARGET_MB * 1024)) ]; then
        verdict="under"
    fi
    # Megabytes of 2^20 bytes, as GNU time reports kilobytes of 2^10.
    printf '%s: peak RSS %d MB, %s the %d MB target\n' \
        "$label" $(((kb + 512) / 1024)) "$verdict" "$TARGET_MB"
}

measure "ten stations sharing one catalog" --stations 10
