#!/usr/bin/env bash
# CPU time of grimnir-dsp's broadcast chain against ffmpeg's loudnorm,acompressor,alimiter on the
# same hour of stereo 48 kHz audio. Target: ours takes less CPU (ratio ours/ffmpeg < 1).
#
#   bash benches/dsp-vs-ffmpeg.sh
#   HOURS=0.05 bash benches/dsp-vs-ffmpeg.sh    # a quick check: three minutes of audio
#
# Synthesizes the test audio with ffmpeg's lavfi (two tones over pink noise, swelling between
# 0 and -26 dB every 20 s, with a tremolo, so the dynamics processors have work), builds
# grimnir-dsp's `process` example in release, then runs, one after the other under GNU time:
#
# - ours: `process --graph grimnir-dsp/examples/broadcast.yaml in.wav out.wav` (normalize in
#   live mode, AGC, compressor, limiter, silence detector);
# - ffmpeg: `loudnorm=I=-16:TP=-1,aresample=48000,acompressor=…,alimiter=…` with the same
#   targets. loudnorm works at 192 kHz and outputs 192 kHz; `aresample` brings the compressor
#   and limiter back to 48 kHz, as ours runs, and the output to the input's rate.
#
# Both read the same 16-bit WAV and write 32-bit float WAV, so file handling is comparable; the
# example also meters input and output (integrated loudness, range, true peak), which ffmpeg's
# one-pass loudnorm does as part of its work. Prints user+system CPU seconds and peak RSS of each
# and the ratio.
set -euo pipefail

HOURS="${HOURS:-1}"
TIME=/usr/bin/time

log() { printf 'dsp-vs-ffmpeg: %s\n' "$*"; }

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

# GNU time (Debian package `time`), only when missing: the shell keyword cannot report memory.
ensure_deb_packages time
command -v ffmpeg >/dev/null 2>&1 || {
    log "ffmpeg is needed (Debian package ffmpeg)" >&2
    exit 1
}

cd "$(dirname "$0")/.."

seconds="$(awk -v h="$HOURS" 'BEGIN { s = h * 3600; if (s <= 0) exit 1; printf "%.3f", s }')" || {
    log "HOURS must be a positive number, got '$HOURS'" >&2
    exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "building the process example (release)"
cargo build --release --quiet -p grimnir-dsp --features yaml --example process
example="${CARGO_TARGET_DIR:-target}"/release/examples/process
graph=grimnir-dsp/examples/broadcast.yaml

log "synthesizing ${seconds} s of stereo 48 kHz test audio"
# Left: 110 Hz, right: 165 Hz, each over its own pink noise; then a slow swell (0 to -26 dB,
# 20 s period) and a 3 Hz tremolo.
ffmpeg -nostdin -nostats -hide_banner -loglevel error -y \
    -f lavfi -i "sine=frequency=110:sample_rate=48000" \
    -f lavfi -i "sine=frequency=165:sample_rate=48000" \
    -f lavfi -i "anoisesrc=color=pink:sample_rate=48000:amplitude=0.4:seed=1" \
    -f lavfi -i "anoisesrc=color=pink:sample_rate=48000:amplitude=0.4:seed=2" \
    -filter_complex "[0][2]amix=inputs=2:normalize=0[l];[1][3]amix=inputs=2:normalize=0[r];\
[l][r]join=inputs=2:channel_layout=stereo,\
volume=eval=frame:volume='pow(10,(-13-13*cos(2*PI*t/20))/20)',tremolo=f=3:d=0.4[out]" \
    -map "[out]" -t "$seconds" -c:a pcm_s16le "$work/in.wav"

# Runs a command under GNU time; sets `cpu` (user+system seconds) and `rss_mb`.
measure() {
    local label="$1"
    shift
    local report="$work/time.txt"
    log "running $label"
    "$TIME" -f "%U %S %M" -o "$report" "$@"
    # The last line: a command killed by a signal makes GNU time write a note before it.
    read -r user sys kb < <(tail -n 1 "$report")
    cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
    # Megabytes of 2^20 bytes, as GNU time reports kilobytes of 2^10.
    rss_mb=$(((kb + 512) / 1024))
}

measure "ours" "$example" --graph "$graph" "$work/in.wav" "$work/ours.wav"
ours_cpu="$cpu"
ours_rss="$rss_mb"
rm -f "$work/ours.wav"

measure "ffmpeg" ffmpeg -nostdin -nostats -hide_banner -loglevel error -y -i "$work/in.wav" \
    -af "loudnorm=I=-16:TP=-1,aresample=48000,\
acompressor=threshold=-20dB:ratio=3:attack=5:release=50:makeup=2dB,\
alimiter=limit=-1dB:attack=5:release=10" \
    -c:a pcm_f32le "$work/ffmpeg.wav"
ffmpeg_cpu="$cpu"
ffmpeg_rss="$rss_mb"
rm -f "$work/ffmpeg.wav"

ratio="$(awk -v o="$ours_cpu" -v f="$ffmpeg_cpu" 'BEGIN { if (f > 0) printf "%.3f", o / f; else print "inf" }')"
verdict="$(awk -v r="$ratio" 'BEGIN { print (r != "inf" && r < 1.0) ? "meets" : "misses" }')"

printf '\n%s h of stereo 48 kHz audio (%s s)\n' "$HOURS" "$seconds"
printf '%-8s %10s %12s\n' "" "CPU s" "peak RSS MB"
printf '%-8s %10s %12s\n' "ours" "$ours_cpu" "$ours_rss"
printf '%-8s %10s %12s\n' "ffmpeg" "$ffmpeg_cpu" "$ffmpeg_rss"
printf 'CPU ratio ours/ffmpeg: %s, %s the target (< 1.0)\n' "$ratio" "$verdict"
