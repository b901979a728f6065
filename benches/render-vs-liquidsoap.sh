#!/usr/bin/env bash
# CPU time and peak memory of rendering an hour of music through per-track gain, 5 s crossfades,
# a compressor and a limiter into MP3 (128 kbit/s CBR, LAME quality 2): grimnir-engine's `render`
# example against Liquidsoap 2.1 doing the same, and against bare decode + encode, which is the
# floor both sit on (LAME at -q 2 costs on the order of 100 CPU seconds an hour by itself).
#
#   bash benches/render-vs-liquidsoap.sh
#   HOURS=0.1 bash benches/render-vs-liquidsoap.sh    # a quick check: six minutes
#   INSTRUCTIONS=1 HOURS=0.05 bash benches/render-vs-liquidsoap.sh   # instructions, see below
#
# Targets (engine issue, benchmark a):
# - total CPU: ours ≤ 0.8 × Liquidsoap's;
# - overhead beyond bare decode + encode: ours (ours − gst-launch bare) ≤ 0.15 × Liquidsoap's
#   (Liquidsoap − Liquidsoap bare, that is Liquidsoap rendering the same files with no gain,
#   crossfade or DSP);
# - peak RSS: ours ≤ 0.3 × Liquidsoap's.
#
# Test audio (generated, not timed): 20 tracks, each a major chord over pink noise (own noise per
# channel) with a slow swell of up to 8 dB and a tremolo, peak-limited under -1 dBFS as a master
# is, at levels spread over 18 dB (about -10 to -28 LUFS) so the per-track gain matters. Each
# track lasts (HOURS h + 19 × 5 s) / 20 (3 min 4.75 s for an hour), so the mix with its 19
# crossfades lasts exactly HOURS hours. They are stored as 44.1 kHz stereo MP3 at 192 kbit/s, as
# a music library mostly is, so every run decodes MP3 and resamples to 48 kHz. Each track's
# integrated loudness is measured once with `ffmpeg -af ebur128`, as the library's analysis would,
# and its gain is TARGET_LUFS − that loudness (as grimnir-engine's render computes it).
#
# Then, one after the other under GNU time (user + system CPU seconds, peak RSS):
#
# - ours: `render list out.mp3 --graph graph.yaml --bitrate 128 --quality 2`. Each list line
#   places a file at its start with `cue_out` (its length), 5 s `fade_in`/`fade_out` overlapping
#   the neighbours, and `lufs=` its measured loudness. The graph is loudness_normalize (which
#   only supplies the target: render applies the per-track gain, target − lufs, in the mixer and
#   tells the normalizer each track is on target, so it multiplies by one and, covered by the
#   limiter, leaves out its own true-peak ceiling), compressor, limiter.
# - liquidsoap: `playlist` of the same files, each annotated with its gain in dB for
#   `amplify(override="liq_amplify")`, `crossfade(duration=5, fade_in=5, fade_out=5)`,
#   `compress` with the compressor's parameters, `limit` at the limiter's threshold and release
#   (Liquidsoap 2.1's `limit` is `compress` at 20:1 with no look-ahead and no true-peak
#   detection: cheaper than our look-ahead true-peak limiter, so this does not flatter us), into
#   `output.file(%mp3(bitrate=128, internal_quality=2, samplerate=48000, stereo=true))` on a
#   clock with `sync="none"` (as fast as the CPU allows), shutting down when the playlist ends.
# - liquidsoap bare: the same files straight into the same output.
# - gst-launch bare: the same files, each `filesrc ! mpegaudioparse ! avdec_mp3` into `concat`,
#   then audioconvert, audioresample to 48 kHz stereo, `lamemp3enc target=bitrate bitrate=128
#   cbr=true encoding-engine-quality=high` (LAME -q 2, as render sets it), filesink. Our decoder
#   is uridecodebin, which picks exactly mpegaudioparse ! avdec_mp3 for these files, then
#   audioresample, and our encoder is the same lamemp3enc. (uridecodebin here would link to
#   `concat` in whatever order the 20 decoders come up, and with 20 it fails to preroll.)
#
# Each system resamples with its own default (GStreamer audioresample quality 4, Liquidsoap
# libsamplerate "fast") and decodes with its own default (GStreamer avdec_mp3, Liquidsoap ffmpeg).
# Liquidsoap also pays a fixed couple of CPU seconds at startup to load its script library; its
# bare run pays it too, so it cancels in the overhead.
#
# The bare runs play the files back to back, so they encode 19 × 5 s more audio than the mixes.
# Before taking overheads their CPU time is scaled to the mix's length (× mix / bare length); as
# decoding does not shrink with the overlap, this slightly enlarges both overheads, never hides
# ours.
#
# Timings are of one run each on whatever machine this is; other load on it shows up in them.
#
# With INSTRUCTIONS=1, ours and gst-launch bare are counted by `valgrind --tool=callgrind`
# instead: instructions executed (billions, all threads), the same whatever else the machine is
# doing, so a change to our overhead shows even on a busy machine. Liquidsoap is left out: under
# valgrind it stopped after 27.5 s of audio (seen here), so there is nothing to compare with,
# and no target is judged. Instructions are not seconds either (LAME keeps the vector units
# busy and runs more of them a cycle than most code). valgrind runs programs some 50 times
# slower, so keep HOURS small (0.05 takes a few minutes); short runs are mostly fades, which
# the hour is not.
set -euo pipefail

HOURS="${HOURS:-1}"
INSTRUCTIONS="${INSTRUCTIONS:-0}"
TIME=/usr/bin/time
TRACKS=20
CROSSFADE=5
TARGET_LUFS=-16
SOURCE_RATE=44100
SOURCE_KBPS=192

log() { printf 'render-vs-liquidsoap: %s\n' "$*"; }

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

# GNU time (the shell keyword cannot report memory), ffmpeg to make and measure the test audio,
# gst-launch with the MP3 decoder and LAME encoder; only what is missing.
ensure_deb_packages time ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav
if [ "$INSTRUCTIONS" = 1 ]; then
    ensure_deb_packages valgrind
fi
if ! command -v liquidsoap >/dev/null 2>&1; then
    log "installing liquidsoap (Debian's, 2.1 on Debian 12)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y liquidsoap
fi
log "$(liquidsoap --version | head -n 1)"

cd "$(dirname "$0")/.."

seconds="$(awk -v h="$HOURS" 'BEGIN { s = h * 3600; if (s <= 0) exit 1; printf "%.3f", s }')" || {
    log "HOURS must be a positive number, got '$HOURS'" >&2
    exit 1
}
# Each track's length, so that the mix (tracks overlapping by CROSSFADE) lasts `seconds`.
track="$(awk -v s="$seconds" -v n="$TRACKS" -v x="$CROSSFADE" \
    'BEGIN { printf "%.3f", (s + (n - 1) * x) / n }')"
if awk -v t="$track" -v x="$CROSSFADE" 'BEGIN { exit !(t < 2 * x) }'; then
    log "HOURS=$HOURS makes ${track} s tracks, too short for two ${CROSSFADE} s fades" >&2
    exit 1
fi
bare_seconds="$(awk -v t="$track" -v n="$TRACKS" 'BEGIN { printf "%.3f", t * n }')"
# A run that has not finished in half the audio's duration (or five minutes) is stuck.
bound="$(awk -v s="$seconds" 'BEGIN { b = s / 2; if (b < 300) b = 300; printf "%d", b }')"
if [ "$INSTRUCTIONS" = 1 ]; then
    bound=$((bound * 100))
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/render-vs-liquidsoap.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "building the render example (release)"
cargo build --release --quiet -p grimnir-engine --example render
example="${CARGO_TARGET_DIR:-target}"/release/examples/render

log "synthesizing $TRACKS tracks of ${track} s" \
    "(${SOURCE_RATE} Hz stereo MP3, ${SOURCE_KBPS} kbit/s)"
: >"$work/ours.list"
: >"$work/mix.m3u"
: >"$work/bare.m3u"
for ((i = 0; i < TRACKS; i++)); do
    file="$work/track$(printf '%02d' "$i").mp3"
    # Root walking the circle of fifths from A2; level +9 to -9 dB; swell period 6 to 18 s.
    read -r root level period trem amp < <(awk -v i="$i" 'BEGIN {
        printf "%.2f %d %d %d %.2f\n", 110 * 2 ^ (((i * 7) % 12) / 12), 9 - (i * 7) % 19,
            6 + (i % 4) * 4, 2 + i % 3, 0.1 + 0.05 * (i % 5) }')
    third="$(awk -v r="$root" 'BEGIN { printf "%.2f", r * 1.26 }')"
    fifth="$(awk -v r="$root" 'BEGIN { printf "%.2f", r * 1.5 }')"
    noise="anoisesrc=color=pink:sample_rate=$SOURCE_RATE:amplitude=$amp"
    ffmpeg -nostdin -nostats -hide_banner -loglevel error -y \
        -f lavfi -i "sine=frequency=$root:sample_rate=$SOURCE_RATE" \
        -f lavfi -i "sine=frequency=$third:sample_rate=$SOURCE_RATE" \
        -f lavfi -i "sine=frequency=$fifth:sample_rate=$SOURCE_RATE" \
        -f lavfi -i "$noise:seed=$((2 * i + 1))" \
        -f lavfi -i "$noise:seed=$((2 * i + 2))" \
        -filter_complex "[0][1][2]amix=inputs=3:normalize=0,asplit[a][b];\
[a][3]amix=inputs=2:normalize=0[l];[b][4]amix=inputs=2:normalize=0[r];\
[l][r]join=inputs=2:channel_layout=stereo,\
volume=eval=frame:volume='pow(10,($level-4+4*cos(2*PI*t/$period))/20)',tremolo=f=$trem:d=0.3,\
alimiter=limit=0.89:level=false[out]" \
        -map "[out]" -t "$track" -c:a libmp3lame -b:a "${SOURCE_KBPS}k" "$file"
    # The summary's integrated loudness (an indented "I:" line, after any per-frame lines).
    lufs="$(ffmpeg -nostdin -nostats -hide_banner -i "$file" -af ebur128 -f null - 2>&1 |
        awk '/^ +I:/ { v = $2 } END { print v }')"
    if [ -z "$lufs" ]; then
        log "could not measure the loudness of $file" >&2
        exit 1
    fi
    # The gain render applies: target − loudness, within ±40 dB.
    gain="$(awk -v t="$TARGET_LUFS" -v l="$lufs" \
        'BEGIN { g = t - l; if (g > 40) g = 40; if (g < -40) g = -40; printf "%.2f", g }')"
    start="$(awk -v i="$i" -v t="$track" -v x="$CROSSFADE" 'BEGIN { printf "%.3f", i * (t - x) }')"
    fade_in="$CROSSFADE"
    [ "$i" -eq 0 ] && fade_in=0
    printf '%s %s cue_out=%s fade_in=%s fade_out=%s lufs=%s\n' \
        "$start" "$file" "$track" "$fade_in" "$CROSSFADE" "$lufs" >>"$work/ours.list"
    printf 'annotate:liq_amplify="%s dB":%s\n' "$gain" "$file" >>"$work/mix.m3u"
    printf '%s\n' "$file" >>"$work/bare.m3u"
    log "  $(basename "$file"): $lufs LUFS, gain $gain dB"
done

# Our chain. Parameters match the Liquidsoap script's below.
cat >"$work/graph.yaml" <<EOF
nodes:
  # Supplies the per-track gain's target (render: gain = target_lufs − the item's lufs).
  - type: loudness_normalize
    config: { target_lufs: $TARGET_LUFS.0, true_peak_limit_dbtp: -1.0 }
  - type: compressor
    config: { threshold_db: -20.0, ratio: 3.0, knee_db: 6.0, attack_ms: 5, release_ms: 50,
              makeup_gain_db: 2.0 }
  - type: limiter
    config: { threshold_db: -1.0, lookahead_ms: 5, release_ms: 10 }
EOF

# What both Liquidsoap scripts share: 48 kHz stereo frames, logs to stdout (captured), running as
# root allowed (a container), and the output: a clock without sync, so it renders as fast as the
# CPU allows, and a shutdown once the playlist has run out.
liq_head() {
    cat <<'EOF'
settings.init.allow_root.set(true)
settings.log.file.set(false)
settings.log.stdout.set(true)
settings.log.level.set(3)
settings.frame.audio.samplerate.set(48000)
settings.frame.audio.channels.set(2)
EOF
}
liq_output() {
    cat <<EOF
clock.assign_new(id="render", sync="none", [s])
output.file(fallible=true, on_stop=shutdown,
    %mp3(bitrate=128, internal_quality=2, samplerate=48000, stereo=true), "$1", s)
EOF
}
{
    liq_head
    cat <<EOF
s = playlist(mode="normal", loop=false, reload_mode="never", "$work/mix.m3u")
s = amplify(override="liq_amplify", 1., s)
s = crossfade(duration=$CROSSFADE., fade_in=$CROSSFADE., fade_out=$CROSSFADE., s)
s = compress(threshold=-20., ratio=3., knee=6., attack=5., release=50., gain=2., s)
s = limit(threshold=-1., attack=5., release=10., s)
EOF
    liq_output "$work/liquidsoap.mp3"
} >"$work/mix.liq"
{
    liq_head
    printf 's = playlist(mode="normal", loop=false, reload_mode="never", "%s")\n' "$work/bare.m3u"
    liq_output "$work/liquidsoap-bare.mp3"
} >"$work/bare.liq"

# Static links, made in the order written, so `concat` plays the files in list order.
gst_bare=(gst-launch-1.0 -q concat name=cat '!' audioconvert '!' audioresample
    '!' "audio/x-raw,rate=48000,channels=2"
    '!' lamemp3enc target=bitrate bitrate=128 cbr=true encoding-engine-quality=high
    '!' filesink location="$work/gst-bare.mp3")
while read -r file; do
    gst_bare+=(filesrc location="$file" '!' mpegaudioparse '!' avdec_mp3 '!' cat.)
done <"$work/bare.m3u"

# Runs a command under GNU time, bounded; its output goes to $work/<name>.log. Sets `cpu`
# (user+system seconds), `rss_mb` and `wall`; fails with the log's tail if the command does.
measure() {
    local name="$1"
    shift
    local report="$work/$name.time"
    log "running $name"
    if [ "$INSTRUCTIONS" = 1 ]; then
        set -- valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@"
    fi
    if ! "$TIME" -f "%U %S %M %e" -o "$report" timeout "$bound" "$@" >"$work/$name.log" 2>&1; then
        log "$name failed (exit status 124 means it ran past ${bound} s):" >&2
        tail -n 30 "$report" "$work/$name.log" >&2
        exit 1
    fi
    local user sys kb
    read -r user sys kb wall < <(tail -n 1 "$report")
    cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
    if [ "$INSTRUCTIONS" = 1 ]; then
        # callgrind's summary line, "==pid== I   refs:      16,413,238,365", in billions.
        cpu="$(awk '/I +refs:/ { gsub(",", "", $NF); v = $NF } END { printf "%.3f", v / 1e9 }' \
            "$work/$name.log")"
    fi
    # Megabytes of 2^20 bytes, as GNU time reports kilobytes of 2^10.
    rss_mb=$(((kb + 512) / 1024))
}

# Seconds of audio in an MP3, as ffprobe reads it.
duration() {
    ffprobe -v error -show_entries format=duration -of default=noprint_wrappers=1:nokey=1 "$1" |
        awk '{ printf "%.1f", $1 }'
}

measure ours "$example" "$work/ours.list" "$work/ours.mp3" --graph "$work/graph.yaml" \
    --bitrate 128 --quality 2
ours_cpu="$cpu" ours_rss="$rss_mb" ours_wall="$wall"
sed 's/^/    /' "$work/ours.log"
if ! grep -q "^$TRACKS of $TRACKS items played$" "$work/ours.log" ||
    grep -q '^item ' "$work/ours.log"; then
    log "render did not play every item cleanly (above)" >&2
    exit 1
fi

measure gst-bare "${gst_bare[@]}"
gstbare_cpu="$cpu" gstbare_rss="$rss_mb" gstbare_wall="$wall"

if [ "$INSTRUCTIONS" = 1 ]; then
    read -r scaled ovh share < <(awk -v m="$seconds" -v b="$bare_seconds" -v o="$ours_cpu" \
        -v g="$gstbare_cpu" 'BEGIN { k = g * m / b; printf "%.3f %.3f %.1f\n", k, o - k, 100 * (o - k) / k }')
    printf '\n%s h: %d tracks of %s s with %d s crossfades (mix %s s, back to back %s s)\n' \
        "$HOURS" "$TRACKS" "$track" "$CROSSFADE" "$seconds" "$bare_seconds"
    printf 'instructions (billions): ours %s, gst-launch bare %s (%s scaled to the mix length)\n' \
        "$ours_cpu" "$gstbare_cpu" "$scaled"
    printf 'overhead beyond bare decode + encode: %s billion instructions, %s %% of bare\n' \
        "$ovh" "$share"
    exit 0
fi

measure liquidsoap liquidsoap "$work/mix.liq"
liq_cpu="$cpu" liq_rss="$rss_mb" liq_wall="$wall"

measure liquidsoap-bare liquidsoap "$work/bare.liq"
liqbare_cpu="$cpu" liqbare_rss="$rss_mb" liqbare_wall="$wall"

ours_len="$(duration "$work/ours.mp3")"
liq_len="$(duration "$work/liquidsoap.mp3")"
liqbare_len="$(duration "$work/liquidsoap-bare.mp3")"
gstbare_len="$(duration "$work/gst-bare.mp3")"

printf '\n%s h: %d tracks of %s s with %d s crossfades (mix %s s, back to back %s s)\n' \
    "$HOURS" "$TRACKS" "$track" "$CROSSFADE" "$seconds" "$bare_seconds"
printf '%-16s %10s %12s %10s %10s\n' "" "CPU s" "peak RSS MB" "wall s" "output s"
printf '%-16s %10s %12s %10s %10s\n' "ours" "$ours_cpu" "$ours_rss" "$ours_wall" "$ours_len"
printf '%-16s %10s %12s %10s %10s\n' "liquidsoap" "$liq_cpu" "$liq_rss" "$liq_wall" "$liq_len"
printf '%-16s %10s %12s %10s %10s\n' \
    "liquidsoap bare" "$liqbare_cpu" "$liqbare_rss" "$liqbare_wall" "$liqbare_len"
printf '%-16s %10s %12s %10s %10s\n' \
    "gst-launch bare" "$gstbare_cpu" "$gstbare_rss" "$gstbare_wall" "$gstbare_len"

# Overheads against the bare runs scaled to the mix's length (see the header).
read -r ours_ovh liq_ovh gst_scaled liq_scaled < <(awk -v m="$seconds" -v b="$bare_seconds" \
    -v o="$ours_cpu" -v l="$liq_cpu" -v g="$gstbare_cpu" -v lb="$liqbare_cpu" 'BEGIN {
        k = m / b; printf "%.2f %.2f %.2f %.2f\n", o - g * k, l - lb * k, g * k, lb * k }')
printf 'bare CPU scaled to the mix length: gst-launch %s s, liquidsoap %s s\n' \
    "$gst_scaled" "$liq_scaled"
printf 'overhead beyond bare decode + encode: ours %s s, liquidsoap %s s\n' "$ours_ovh" "$liq_ovh"

# Prints one target's line: name, ours, theirs, the largest ratio allowed.
verdict() {
    awk -v name="$1" -v o="$2" -v t="$3" -v max="$4" 'BEGIN {
        if (t <= 0) { printf "%-40s n/a (liquidsoap figure %s is not positive)\n", name, t; exit }
        r = o / t
        printf "%-40s %6.3f (target <= %.2f)  %s\n", name, r, max, (r <= max) ? "PASS" : "MISS" }'
}
verdict "CPU ours / liquidsoap:" "$ours_cpu" "$liq_cpu" 0.8
verdict "overhead ours / liquidsoap:" "$ours_ovh" "$liq_ovh" 0.15
verdict "peak RSS ours / liquidsoap:" "$ours_rss" "$liq_rss" 0.3

# A run that stopped early did less work: its figures mean nothing. Decoders differ by some
# milliseconds a file in how much of MP3's encoder delay and padding they keep, hence the slack.
short=0
for pair in "ours:$ours_len:$seconds" "liquidsoap:$liq_len:$seconds" \
    "liquidsoap bare:$liqbare_len:$bare_seconds" "gst-launch bare:$gstbare_len:$bare_seconds"; do
    IFS=: read -r name got want <<<"$pair"
    if awk -v g="$got" -v w="$want" 'BEGIN { exit !(g < w - 1 && g < w * 0.995) }'; then
        log "$name wrote ${got} s of audio, expected ${want} s" >&2
        short=1
    fi
done
exit "$short"
