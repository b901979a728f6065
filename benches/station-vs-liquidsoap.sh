#!/usr/bin/env bash
# A station on air in real time against Liquidsoap 2.1 doing the same, on a local Icecast
# (engine issue, benchmarks b and c):
#
# (b) one station, three outputs (MP3 128 kbit/s, MP3 64 kbit/s, Opus 96 kbit/s), for DURATION
#     seconds (120): CPU (percent of one core) and peak RSS of grimnir-engine's `station`
#     example against one Liquidsoap process doing the same.
# (c) how many such stations run at once in real time on this machine: N station processes
#     side by side, each with its own three mounts, N stepping through STEPS (6 12 18 24 30),
#     STEP_DURATION seconds (60) each; the answer is the largest N at which every station kept
#     up. Target: at least 18. The same for Liquidsoap at the N of LIQ_STEPS (12 18 24; empty
#     to skip). Steps after the first that fails are skipped.
#
#   bash benches/station-vs-liquidsoap.sh
#   DURATION=30 STEP_DURATION=30 STEPS="2 4" LIQ_STEPS=2 bash benches/station-vs-liquidsoap.sh
#   PARTS=c STEPS="18 24" LIQ_STEPS= bash benches/station-vs-liquidsoap.sh
#
# PARTS (b c) picks the benchmarks. The knobs are not called SECONDS: bash owns that name (the
# seconds since the shell started). A full run takes about 15 minutes.
#
# Test audio (generated, not timed): TRACKS tracks of 30 to 59 s, each a plucked chord
# progression over a pink-noise hi-hat at its own tempo and key, at levels spread over about
# 16 dB (about -14 to -30 LUFS), stored as 44.1 kHz stereo MP3 at 192 kbit/s, so both sides
# decode MP3 and resample to their 48 kHz. Each track's integrated loudness is measured once
# with `ffmpeg -af ebur128`. Both sides play the tracks in the same order, again from the first
# after the last; in (c), station k starts at track k − 1 (mod TRACKS), so that the crossfades of
# N stations do not all fall on the same moment (on a real server they do not either).
#
# How each side is set up:
#
# - ours: `station list --graph graph.yaml --icecast … --mount /x-128.mp3=mp3:128
#   --mount /x-64.mp3=mp3:64 --mount /x-96.opus=opus:96`. Each list line places a file with
#   `cue_out` (its length), 5 s `fade_in`/`fade_out` overlapping its neighbours, and `lufs=`
#   its measured loudness. The graph is loudness_normalize, compressor, limiter. The normalizer
#   is there because the station applies an item's gain (target − lufs) only when the graph
#   has one: its target_lufs is the gain's target. Unlike render, the station does not tell the
#   normalizer that the items arrive on target, so it also runs in live mode (gated
#   measurement, slow gain, its true-peak ceiling) on top of the per-item gain: more work than
#   Liquidsoap's chain, never less. Encoders: LAME quality 2 CBR (lamemp3enc), opusenc.
# - liquidsoap: `playlist` of the same files, each annotated with its gain in dB for
#   `amplify(override="liq_amplify")`, `crossfade(duration=5, fade_in=5, fade_out=5)`,
#   `compress` and `limit` with the compressor's and limiter's parameters, `mksafe`, then
#   three `output.icecast` with `%mp3(bitrate=128, internal_quality=2)`,
#   `%mp3(bitrate=64, internal_quality=2)` (both CBR, 48 kHz stereo) and `%opus(bitrate=96)`
#   with opusenc's defaults (constrained VBR, complexity 10, application audio, 20 ms frames),
#   on its default real-time clock, 48 kHz frames.
#
# Each side resamples with its own default (GStreamer audioresample, Liquidsoap libsamplerate)
# and decodes with its own (avdec_mp3, Liquidsoap's ffmpeg). Both encode MP3 with libmp3lame at
# -q 2, which is most of either side's CPU.
#
# Both stream to one `icecast2` started here on a free loopback port (dropping to
# nobody:nogroup when run as root, as Icecast refuses root). No listeners are connected.
#
# What is measured, for each process, over a window that starts WARMUP seconds after all of a
# run's mounts are up on Icecast (so start-up, such as Liquidsoap's loading of its script
# library, stays out) and lasts the run's length less WARMUP and 2 s:
#
# - CPU: user + system time from /proc/PID/stat over the window, percent of one core;
# - peak RSS: VmHWM from /proc/PID/status at the window's end;
# - underruns in the window: ours, from the telemetry the station prints every second (the
#   count at the end less the count at the window's start, so start-up is left out);
#   Liquidsoap, its
#   "We must catchup" and "Too much latency" log lines (at most one a second) in the window;
# - lost packets: ours, an output reported degraded, dropping packets, or down after it was up
#   (and any warning or failed item); Liquidsoap, errors its outputs logged;
# - delivered bitrate of every mount, as Icecast counts the bytes it read from the source
#   (`total_bytes_read` in /admin/stats, polled four times a second; Icecast updates it every
#   5 s, so the rate is taken between its first and last update in the window). This catches a
#   station whose encoders fall behind, which underruns and lost packets do not show (the
#   station reports it as `dropouts`, from its source queue, since this bench found the gap).
#
# A station keeps up when it has no underrun and no lost packet in the window and each of its
# mounts delivered at least DELIVERY_MIN percent of its nominal bitrate (Ogg adds about 3 % to
# Opus's 96 kbit/s).
#
# (b) has no figures of its own in the issue; it is held to benchmark (a)'s: CPU ≤ 0.8 × and
# peak RSS ≤ 0.3 × Liquidsoap's, and ours keeping up.
#
# The machine's other load shows up in every figure: run it on an otherwise idle machine.
set -euo pipefail

DURATION="${DURATION:-120}"
STEP_DURATION="${STEP_DURATION:-60}"
STEPS="${STEPS:-6 12 18 24 30}"
LIQ_STEPS="${LIQ_STEPS-12 18 24}"
PARTS="${PARTS:-b c}"
WARMUP="${WARMUP:-10}"
DELIVERY_MIN="${DELIVERY_MIN:-95}"
TARGET_STATIONS=18
CPU_TARGET=0.8
RSS_TARGET=0.3
TRACKS=10
CROSSFADE=5
TARGET_LUFS=-16
SOURCE_RATE=44100
SOURCE_KBPS=192
SOURCE_PASSWORD=grimnir-bench-source
ADMIN_PASSWORD=grimnir-bench-admin
# How long a run's mounts may take to come up on Icecast.
READY_TIMEOUT=90

log() { printf 'station-vs-liquidsoap: %s\n' "$*"; }
fail() {
    log "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/../scripts/lib.sh"

cd "$(dirname "$0")/.."

is_count() { case "$1" in '' | *[!0-9]*) return 1 ;; *) [ "$1" -gt 0 ] ;; esac }
for knob in DURATION STEP_DURATION WARMUP DELIVERY_MIN; do
    is_count "${!knob}" || fail "$knob must be a positive whole number, got '${!knob}'"
done
for n in $STEPS $LIQ_STEPS; do
    is_count "$n" || fail "STEPS and LIQ_STEPS hold positive whole numbers, got '$n'"
done
[ "$DURATION" -ge $((WARMUP + 10)) ] || fail "DURATION must be at least WARMUP + 10 s"
[ "$STEP_DURATION" -ge $((WARMUP + 10)) ] || fail "STEP_DURATION must be at least WARMUP + 10 s"
run_b=0 run_c=0
for part in $PARTS; do
    case "$part" in
    b) run_b=1 ;;
    c) run_c=1 ;;
    *) fail "PARTS holds b and/or c, got '$part'" ;;
    esac
done

# GNU time is not needed: CPU and memory come from /proc, sampled over the window.
ensure_deb_packages ffmpeg icecast2 curl gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
    gstreamer1.0-plugins-base
if ! command -v liquidsoap >/dev/null 2>&1; then
    log "installing liquidsoap (Debian's, 2.1 on Debian 12)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y liquidsoap
fi
log "$(liquidsoap --version | head -n 1)"
icecast_bin="$(command -v icecast2 || echo /usr/bin/icecast2)"
clk_tck="$(getconf CLK_TCK)"

work="$(mktemp -d "${TMPDIR:-/tmp}/station-vs-liquidsoap.XXXXXX")"
# Icecast, running as nobody, writes its logs under here.
chmod 755 "$work"
icecast_pid=""
# Every process started and not yet waited for: stopped by PID on the way out.
launched=()
cleanup() {
    local pid
    for pid in "${launched[@]}" $icecast_pid; do
        kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${launched[@]}" $icecast_pid; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# Sleeps until the epoch time $1 (at once if it has passed).
sleep_until() {
    local left
    left="$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"
    sleep "$left"
}
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }

log "building the station example (release)"
cargo build --release --quiet -p grimnir-engine --example station
station="${CARGO_TARGET_DIR:-target}"/release/examples/station

# --- Test audio -----------------------------------------------------------------------------

log "synthesizing $TRACKS tracks (${SOURCE_RATE} Hz stereo MP3, ${SOURCE_KBPS} kbit/s)"
declare -a track_file track_len track_lufs track_gain
for ((i = 0; i < TRACKS; i++)); do
    file="$work/track$(printf '%02d' "$i").mp3"
    # Length 30 to 59 s; key walking the circle of fourths from C3; 90 to 129 bpm; level
    # -2 to -18 dB (about -14 to -30 LUFS).
    read -r len root beat level < <(awk -v i="$i" 'BEGIN {
        printf "%d %.2f %.4f %d\n", 30 + (i * 17) % 30, 130.81 * 2 ^ (((i * 5) % 12) / 12),
            60 / (90 + (i * 13) % 40), -2 - (i * 7) % 17 }')
    # A chord a bar (four beats), I–IV–V–iii, plucked on every beat; the right channel
    # slightly detuned, with a third in place of the fifth.
    bar="mod(floor(t/($beat*4)),4)"
    f="($root*pow(2,(5*eq($bar,1)+7*eq($bar,2)+4*eq($bar,3))/12))"
    pluck="exp(-4*mod(t,$beat))"
    left="$pluck*(0.5*sin(2*PI*$f*t)+0.25*sin(4*PI*$f*t)+0.2*sin(3*PI*$f*t))+0.15*sin(PI*$f*t)"
    right="$pluck*(0.5*sin(2*PI*1.004*$f*t)+0.25*sin(4*PI*$f*t)+0.2*sin(2.52*PI*$f*t))"
    right="$right+0.15*sin(PI*$f*t)"
    ffmpeg -nostdin -nostats -hide_banner -loglevel error -y \
        -f lavfi -i "aevalsrc=exprs='$left|$right':s=$SOURCE_RATE:d=$len" \
        -f lavfi -i "anoisesrc=color=pink:sample_rate=$SOURCE_RATE:amplitude=0.3:seed=$((i + 1)):\
nb_samples=256" \
        -filter_complex "[1]volume=eval=frame:volume='exp(-25*mod(t,$beat/2))',\
aformat=channel_layouts=stereo[hat];[0][hat]amix=inputs=2:normalize=0,volume=${level}dB,\
alimiter=limit=0.89:level=false[out]" \
        -map "[out]" -t "$len" -c:a libmp3lame -b:a "${SOURCE_KBPS}k" "$file"
    # The summary's integrated loudness: the last indented "I:" line.
    lufs="$(ffmpeg -nostdin -nostats -hide_banner -i "$file" -af ebur128 -f null - 2>&1 |
        awk '/^ +I:/ { v = $2 } END { print v }')"
    [ -n "$lufs" ] || fail "could not measure the loudness of $file"
    # The gain the station applies: target − loudness, within ±40 dB.
    gain="$(awk -v t="$TARGET_LUFS" -v l="$lufs" \
        'BEGIN { g = t - l; if (g > 40) g = 40; if (g < -40) g = -40; printf "%.2f", g }')"
    track_file[i]="$file" track_len[i]="$len" track_lufs[i]="$lufs" track_gain[i]="$gain"
    log "  $(basename "$file"): $len s, $lufs LUFS, gain $gain dB"
done

# One list for each first track: station k starts at track k − 1 (mod TRACKS), so that the
# stations of a run do not all cross-fade at the same moment, as on a real server.
# Ours: the tracks in order, again and again, until past the longest run (and its slack).
# Liquidsoap's playlist loops by itself.
longest=$((DURATION > STEP_DURATION ? DURATION : STEP_DURATION))
for ((first = 0; first < TRACKS; first++)); do
    list="$work/ours-$first.list"
    : >"$list"
    start=0 k=0
    while [ "$start" -lt $((longest + READY_TIMEOUT + 60)) ]; do
        i=$(((first + k) % TRACKS))
        fade_in="$CROSSFADE"
        [ "$k" -eq 0 ] && fade_in=0
        printf '%s %s cue_out=%s fade_in=%s fade_out=%s lufs=%s\n' "$start" "${track_file[i]}" \
            "${track_len[i]}" "$fade_in" "$CROSSFADE" "${track_lufs[i]}" >>"$list"
        start=$((start + track_len[i] - CROSSFADE))
        k=$((k + 1))
    done
    m3u="$work/liquidsoap-$first.m3u"
    : >"$m3u"
    for ((k = 0; k < TRACKS; k++)); do
        i=$(((first + k) % TRACKS))
        printf 'annotate:liq_amplify="%s dB":%s\n' "${track_gain[i]}" "${track_file[i]}" >>"$m3u"
    done
done

cat >"$work/graph.yaml" <<EOF
nodes:
  # Supplies the per-item gain's target (gain = target_lufs − the item's lufs); see the header.
  - type: loudness_normalize
    config: { target_lufs: $TARGET_LUFS.0, true_peak_limit_dbtp: -1.0 }
  - type: compressor
    config: { threshold_db: -20.0, ratio: 3.0, knee_db: 6.0, attack_ms: 5, release_ms: 50,
              makeup_gain_db: 2.0 }
  - type: limiter
    config: { threshold_db: -1.0, lookahead_ms: 5, release_ms: 10 }
EOF

# --- Icecast ----------------------------------------------------------------------------------

# A loopback port nobody listens on: tried from a random start, at most 50 of them.
port=""
for ((try = 0; try < 50; try++)); do
    candidate=$((20000 + (RANDOM % 20000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port="$candidate"
        break
    fi
done
[ -n "$port" ] || fail "found no free loopback port"

max_stations=1
for n in $STEPS $LIQ_STEPS; do
    [ "$n" -gt "$max_stations" ] && max_stations="$n"
done
sources=$((3 * max_stations + 6))
mkdir -m 777 "$work/icecast"
security="<chroot>0</chroot>"
if [ "$(id -u)" -eq 0 ]; then
    security="$security<changeowner><user>nobody</user><group>nogroup</group></changeowner>"
fi
share="$(dirname "$(dirname "$icecast_bin")")/share/icecast2"
cat >"$work/icecast/icecast.xml" <<EOF
<icecast>
  <location>station-vs-liquidsoap</location>
  <admin>bench@localhost</admin>
  <limits>
    <clients>$((2 * sources + 20))</clients>
    <sources>$sources</sources>
    <queue-size>1048576</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>15</source-timeout>
    <burst-size>65536</burst-size>
  </limits>
  <authentication>
    <source-password>$SOURCE_PASSWORD</source-password>
    <admin-user>admin</admin-user>
    <admin-password>$ADMIN_PASSWORD</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket>
    <port>$port</port>
    <bind-address>127.0.0.1</bind-address>
  </listen-socket>
  <paths>
    <basedir>$share</basedir>
    <logdir>$work/icecast</logdir>
    <webroot>$share/web</webroot>
    <adminroot>$share/admin</adminroot>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>2</loglevel>
  </logging>
  <security>$security</security>
</icecast>
EOF
log "starting icecast2 on 127.0.0.1:$port (up to $sources sources)"
"$icecast_bin" -c "$work/icecast/icecast.xml" >"$work/icecast/stdout.log" 2>&1 &
icecast_pid=$!
for ((try = 0; ; try++)); do
    kill -0 "$icecast_pid" 2>/dev/null || {
        cat "$work/icecast/stdout.log" "$work/icecast/error.log" >&2 2>/dev/null || true
        fail "icecast2 exited at start"
    }
    code="$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/status-json.xsl" ||
        true)"
    [ "$code" = 200 ] && break
    [ "$try" -lt 150 ] || fail "icecast2 did not answer within 15 s"
    sleep 0.1
done

# --- Runs -------------------------------------------------------------------------------------

# A Liquidsoap script for one station whose mounts start with $1, playing the list $2.
liquidsoap_script() {
    cat <<EOF
settings.init.allow_root.set(true)
settings.log.file.set(false)
settings.log.stdout.set(true)
settings.log.level.set(3)
settings.frame.audio.samplerate.set(48000)
settings.frame.audio.channels.set(2)
s = playlist(mode="normal", reload_mode="never", "$2")
s = amplify(override="liq_amplify", 1., s)
s = crossfade(duration=$CROSSFADE., fade_in=$CROSSFADE., fade_out=$CROSSFADE., s)
s = compress(threshold=-20., ratio=3., knee=6., attack=5., release=50., gain=2., s)
s = limit(threshold=-1., attack=5., release=10., s)
s = mksafe(s)
def to_icecast(encoder, mount) =
  output.icecast(encoder, host="127.0.0.1", port=$port, password="$SOURCE_PASSWORD",
    mount=mount, s)
end
to_icecast(%mp3(bitrate=128, internal_quality=2, samplerate=48000, stereo=true), "$1-128.mp3")
to_icecast(%mp3(bitrate=64, internal_quality=2, samplerate=48000, stereo=true), "$1-64.mp3")
# opusenc's defaults, as the station runs it: constrained VBR, complexity 10, "audio", 20 ms.
to_icecast(%opus(bitrate=96, samplerate=48000, channels=2, vbr="constrained", complexity=10,
  application="audio", frame_size=20.), "$1-96.opus")
EOF
}

# Appends "time mount total_bytes_read" for every mount, four times a second, until the file
# $2 exists (or, as a bound, for $3 seconds).
poll_icecast() {
    local out="$1" stop="$2" polls=$(($3 * 4)) i t
    for ((i = 0; i < polls; i++)); do
        [ -e "$stop" ] && return 0
        t="$(now)"
        curl -s -m 2 -u "admin:$ADMIN_PASSWORD" "http://127.0.0.1:$port/admin/stats" |
            awk -v t="$t" 'BEGIN { RS = "<source mount=\"" } NR > 1 {
                m = $0; sub(/".*/, "", m)
                if (match($0, /<total_bytes_read>[0-9]+/))
                    print t, m, substr($0, RSTART + 18, RLENGTH - 18) }' >>"$out" || true
        sleep 0.25
    done
}

# User + system CPU ticks of process $1 (empty once it is gone).
cpu_ticks() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    # Fields after the command name; utime and stime are the 12th and 13th of them.
    stat="${stat##*) }"
    # shellcheck disable=SC2086
    set -- $stat
    echo $((${12} + ${13}))
}
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

# Runs $2 stations of kind $1 (ours or liquidsoap) for $3 seconds, their mounts under /$4-K,
# files in $work/$4. Leaves per-station lines "k cpu_percent rss_kb underruns lost raw_underruns
# self_cpu exit" in $work/$4/stations, "mount kbit/s percent" in $work/$4/mounts, and sets
# window_s, icecast_cpu, ready_s.
run_stations() {
    local kind="$1" n="$2" secs="$3" tag="$4"
    local dir="$work/$tag" k pid prefix
    mkdir -p "$dir"
    local -a pids=()
    log "$tag: $n × $kind for $secs s"
    : >"$dir/icecast.poll"
    poll_icecast "$dir/icecast.poll" "$dir/stop-polling" $((secs + READY_TIMEOUT + 60)) &
    local poller=$!
    launched+=("$poller")
    local t0
    t0="$(now)"
    for ((k = 1; k <= n; k++)); do
        prefix="/$tag-$k"
        if [ "$kind" = ours ]; then
            # Runs 5 s past the window's end, which it reaches if its mounts are up within
            # 5 s; then it prints its summary and ends by itself.
            "$station" "$work/ours-$(((k - 1) % TRACKS)).list" --seconds $((secs + 5)) \
                --graph "$work/graph.yaml" --icecast "127.0.0.1:$port" \
                --password "$SOURCE_PASSWORD" \
                --mount "$prefix-128.mp3=mp3:128" --mount "$prefix-64.mp3=mp3:64" \
                --mount "$prefix-96.opus=opus:96" >"$dir/$k.log" 2>&1 &
        else
            liquidsoap_script "$prefix" "$work/liquidsoap-$(((k - 1) % TRACKS)).m3u" \
                >"$dir/$k.liq"
            liquidsoap "$dir/$k.liq" >"$dir/$k.log" 2>&1 &
        fi
        pids+=("$!")
        launched+=("$!")
    done

    # Ready: every mount of the run seen in one poll.
    local ready="" deadline
    deadline="$(add "$t0" "$READY_TIMEOUT")"
    while awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n < d) }'; do
        local up
        up="$(awk -v p="/$tag-" 'index($2, p) == 1 { if ($1 != t) { t = $1; c = 0 } c++ }
            END { print c + 0 }' "$dir/icecast.poll")"
        if [ "$up" -ge $((3 * n)) ]; then
            ready="$(now)"
            break
        fi
        sleep 0.25
    done
    if [ -z "$ready" ]; then
        log "$tag: not all $((3 * n)) mounts came up within $READY_TIMEOUT s" >&2
        ready="$(now)"
    fi
    ready_s="$(awk -v r="$ready" -v t="$t0" 'BEGIN { printf "%.1f", r - t }')"
    local from to
    from="$(add "$ready" "$WARMUP")"
    to="$(add "$from" $((secs - WARMUP - 2)))"

    sleep_until "$from"
    local -a ticks0=()
    local w0 w1 ice0 ice1
    w0="$(now)"
    for pid in "${pids[@]}"; do ticks0+=("$(cpu_ticks "$pid")"); done
    ice0="$(cpu_ticks "$icecast_pid")"
    sleep_until "$to"
    local -a ticks1=() rss=()
    w1="$(now)"
    for pid in "${pids[@]}"; do
        ticks1+=("$(cpu_ticks "$pid")")
        rss+=("$(peak_rss_kb "$pid")")
    done
    ice1="$(cpu_ticks "$icecast_pid")"
    window_s="$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.1f", b - a }')"
    icecast_cpu="$(awk -v a="$ice0" -v b="$ice1" -v w="$window_s" -v hz="$clk_tck" \
        'BEGIN { printf "%.1f", 100 * (b - a) / hz / w }')"

    # Liquidsoap has no end of its own: it is stopped. Ours end by themselves; bounded.
    if [ "$kind" = liquidsoap ]; then
        for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    fi
    local -a codes=()
    local until
    until="$(add "$(now)" 30)"
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null &&
            awk -v n="$(now)" -v d="$until" 'BEGIN { exit !(n < d) }'; do
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        if wait "$pid" 2>/dev/null; then codes+=(0); else codes+=("$?"); fi
    done
    touch "$dir/stop-polling"
    wait "$poller" || true
    launched=()

    # Per station.
    local stamp
    stamp="$(date -d "@${w0%.*}" '+%Y/%m/%d %H:%M:%S')"
    local offset
    offset="$(awk -v a="$w0" -v t="$t0" 'BEGIN { printf "%.3f", a - t }')"
    : >"$dir/stations"
    for ((k = 1; k <= n; k++)); do
        local cpu="-" under lost raw="-" self="-" f="$dir/$k.log"
        if [ -n "${ticks0[k - 1]}" ] && [ -n "${ticks1[k - 1]}" ]; then
            cpu="$(awk -v a="${ticks0[k - 1]}" -v b="${ticks1[k - 1]}" -v w="$window_s" \
                -v hz="$clk_tck" 'BEGIN { printf "%.2f", 100 * (b - a) / hz / w }')"
        fi
        if [ "$kind" = ours ]; then
            # Telemetry lines: "clock s depth D … underruns U …"; the summary's count
            # less the count reported at the window's start. No summary: it died.
            read -r under raw self < <(awk -v from="$offset" '
                $2 == "s" && $3 == "depth" && $1 <= from {
                    for (i = 4; i < NF; i++) if ($i == "underruns") base = $(i + 1) }
                /^summary / { for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] = kv[2] }
                    done = 1 }
                END { if (done) print s["underruns"] - base, s["underruns"], s["cpu_percent"]
                      else print "died", "-", "-" }' "$f")
            # An output starts down and reports itself up once connected: a loss is a
            # degraded state, dropped packets, or down after up; and any warning or failure.
            lost="$(awk '/^Output\(/ {
                    name = $0; sub(/.*name: "/, "", name); sub(/".*/, "", name)
                    dropped = $0; sub(/.*dropped: /, "", dropped); sub(/,.*/, "", dropped)
                    if (/state: Degraded/ || dropped + 0 > 0 || (/state: Down/ && up[name]))
                        c++
                    if (/state: Up/) up[name] = 1 }
                /^(Warning|Failed)/ { c++ }
                END { print c + 0 }' "$f")"
        else
            # Log lines start "YYYY/MM/DD HH:MM:SS", so they compare as strings.
            under="$(awk -v from="$stamp" 'substr($0, 1, 19) >= from &&
                /We must catchup|Too much latency/ { c++ } END { print c + 0 }' "$f")"
            lost="$(awk -v from="$stamp" 'substr($0, 1, 19) >= from &&
                /\/'"$tag-$k"'-[^]]*:[12]\]/ { c++ } END { print c + 0 }' "$f")"
        fi
        printf '%s %s %s %s %s %s %s %s\n' "$k" "$cpu" "${rss[k - 1]:--}" "$under" "$lost" \
            "$raw" "$self" "${codes[k - 1]}" >>"$dir/stations"
    done

    # Per mount: the rate between Icecast's first and last update of its count in the window.
    awk -v p="/$tag-" -v from="$w0" -v to="$w1" 'index($2, p) == 1 {
            t = $1; m = $2; b = $3
            if ((m in last) && b != last[m] && t >= from && t <= to) {
                if (!(m in t1)) { t1[m] = t; b1[m] = b }
                t2[m] = t; b2[m] = b
            }
            last[m] = b; seen[m] = 1
        }
        END {
            for (m in seen) {
                kbps = m; sub(/.*-/, "", kbps); sub(/\..*/, "", kbps)
                if ((m in t1) && t2[m] > t1[m] + 1) {
                    r = (b2[m] - b1[m]) * 8 / (t2[m] - t1[m]) / 1000
                    printf "%s %.1f %.1f\n", m, r, 100 * r / kbps
                } else printf "%s - 0\n", m
            }
        }' "$dir/icecast.poll" | sort >"$dir/mounts"
    # Mounts never seen deliver nothing.
    for ((k = 1; k <= n; k++)); do
        for m in "/$tag-$k-128.mp3" "/$tag-$k-64.mp3" "/$tag-$k-96.opus"; do
            grep -q "^$m " "$dir/mounts" || printf '%s - 0\n' "$m" >>"$dir/mounts"
        done
    done
}

# Sets, from a run's files: stations_ok (stations that kept up), cpu_sum, cpu_mean, rss_max_mb,
# under_sum, lost_sum, raw_sum, self_mean, deliver_min (lowest percent of nominal, any mount).
summarize() {
    local dir="$work/$1"
    read -r cpu_sum cpu_mean rss_max_mb under_sum lost_sum raw_sum self_mean < <(awk '
        { n++; if ($2 != "-") { c += $2; cn++ } if ($3 != "-" && $3 > r) r = $3
          if ($4 == "died") died++; else u += $4; l += $5
          if ($6 != "-") raw += $6; if ($7 != "-") { s += $7; sn++ } }
        END { printf "%.1f %.2f %d %s %d %s %s\n", c, cn ? c / cn : 0, (r + 512) / 1024,
              died ? u "+" died "died" : u, l, raw, sn ? sprintf("%.2f", s / sn) : "-" }' \
        "$dir/stations")
    deliver_min="$(awk 'NR == 1 || $3 < v { v = $3 } END { printf "%.1f", v }' "$dir/mounts")"
    # A station keeps up: no underrun, no loss, a clean exit, every mount at DELIVERY_MIN %
    # or more. A mount is /<tag>-<k>-<kbps>.<ext>.
    stations_ok="$(awk -v p="/$1-" -v min="$DELIVERY_MIN" '
        FNR == NR { k = substr($1, length(p) + 1); sub(/-.*/, "", k)
                    if ($3 < min) bad[k] = 1; next }
        $4 == "0" && $5 == "0" && $8 == "0" && !($1 in bad) { ok++ }
        END { print ok + 0 }' "$dir/mounts" "$dir/stations")"
}

# Says why a run's stations did not keep up: mounts short of DELIVERY_MIN %, and the log of the
# first station with underruns, losses or a bad exit.
explain() {
    local dir="$work/$1" k
    awk -v min="$DELIVERY_MIN" '$3 < min { printf "  %s delivered %s kbit/s (%s %% of nominal)\n",
        $1, $2, $3 }' "$dir/mounts" | head -n 6 | while read -r line; do log "$line"; done
    while read -r k _ _ under lost _ _ code; do
        if [ "$under" != 0 ] || [ "$lost" != 0 ] || [ "$code" != 0 ]; then
            log "  station $k: underruns $under, lost $lost, exit $code; its log ends:"
            grep -v -E '^ +[0-9.]+ s depth' "$dir/$k.log" | tail -n 8 | sed 's/^/      /'
            return 0
        fi
    done <"$dir/stations"
}

log "load before the runs: $(uptime | sed 's/.*load average/load average/')"

# --- (b) --------------------------------------------------------------------------------------

if [ "$run_b" -eq 1 ]; then
    run_stations ours 1 "$DURATION" b-ours
    summarize b-ours
    b_ours=("$cpu_sum" "$rss_max_mb" "$under_sum" "$lost_sum" "$deliver_min" "$stations_ok"
        "$raw_sum" "$self_mean" "$window_s" "$icecast_cpu")
    [ "$stations_ok" -eq 1 ] || explain b-ours
    run_stations liquidsoap 1 "$DURATION" b-liq
    summarize b-liq
    b_liq=("$cpu_sum" "$rss_max_mb" "$under_sum" "$lost_sum" "$deliver_min" "$stations_ok"
        "" "" "$window_s" "$icecast_cpu")
    [ "$stations_ok" -eq 1 ] || explain b-liq

    printf '\n(b) one station, 3 outputs (MP3 128k, MP3 64k, Opus 96k), %s s run, %s s window\n' \
        "$DURATION" "${b_ours[8]}"
    printf '%-11s %7s %12s %10s %5s %14s %9s\n' "" "CPU %" "peak RSS MB" "underruns" "lost" \
        "delivered min" "keeps up"
    for side in ours liquidsoap; do
        if [ "$side" = ours ]; then row=("${b_ours[@]}"); else row=("${b_liq[@]}"); fi
        printf '%-11s %7s %12s %10s %5s %13s%% %9s\n' "$side" "${row[0]}" "${row[1]}" \
            "${row[2]}" "${row[3]}" "${row[4]}" "$([ "${row[5]}" -eq 1 ] && echo yes || echo no)"
    done
    printf 'ours, its own summary: underruns=%s, cpu_percent=%s\n' \
        "${b_ours[6]}" "${b_ours[7]}"
    printf 'icecast2 CPU: %s %% (ours), %s %% (liquidsoap)\n' "${b_ours[9]}" "${b_liq[9]}"
    verdict() {
        awk -v name="$1" -v o="$2" -v t="$3" -v max="$4" 'BEGIN {
            if (t <= 0) { printf "%-34s n/a (liquidsoap figure %s)\n", name, t; exit }
            r = o / t
            printf "%-34s %6.3f (target <= %.2f)  %s\n", name, r, max,
                (r <= max) ? "PASS" : "MISS" }'
    }
    verdict "(b) CPU ours / liquidsoap:" "${b_ours[0]}" "${b_liq[0]}" "$CPU_TARGET"
    verdict "(b) peak RSS ours / liquidsoap:" "${b_ours[1]}" "${b_liq[1]}" "$RSS_TARGET"
    printf '%-34s %s\n' "(b) ours keeps up in real time:" \
        "$([ "${b_ours[5]}" -eq 1 ] && echo PASS || echo MISS)"
fi

# --- (c) --------------------------------------------------------------------------------------

# Runs the steps $2… for kind $1 and prints a table; sets `best`, the largest N at which every
# station kept up. Steps after the first that fails are skipped: more stations do not help.
fleet() {
    local kind="$1" n
    shift
    best=0
    local -a rows=()
    local failed=0
    for n in "$@"; do
        if [ "$failed" -eq 1 ]; then
            rows+=("$(printf '%4s  skipped: fewer stations already fell behind' "$n")")
            continue
        fi
        local tag="c-$kind-$n"
        [ "$kind" = liquidsoap ] && tag="c-liq-$n"
        run_stations "$kind" "$n" "$STEP_DURATION" "$tag"
        summarize "$tag"
        local verdict=yes
        if [ "$stations_ok" -lt "$n" ]; then
            verdict=no
            failed=1
            explain "$tag"
        else
            best="$n"
        fi
        rows+=("$(printf '%4s %9s %10s %9s %8s %10s %5s %12s%% %9s %8s' "$n" "$cpu_sum" \
            "$cpu_mean" "$self_mean" "$rss_max_mb" "$under_sum" "$lost_sum" "$deliver_min" \
            "$stations_ok/$n" "$verdict")")
        log "$tag: load $(cut -d' ' -f1-3 /proc/loadavg), icecast2 CPU $icecast_cpu %," \
            "mounts up after ${ready_s} s"
    done
    printf '\n(c) %s: N stations at once, %s s each (window %s s)\n' "$kind" "$STEP_DURATION" \
        "$window_s"
    printf '%4s %9s %10s %9s %8s %10s %5s %13s %9s %8s\n' "N" "CPU sum %" "CPU/stn %" \
        "self %" "RSS MB" "underruns" "lost" "delivered min" "keep up" "all"
    printf '%s\n' "${rows[@]}"
}

if [ "$run_c" -eq 1 ]; then
    # shellcheck disable=SC2086
    fleet ours $STEPS
    ours_best="$best"
    liq_best=""
    if [ -n "$LIQ_STEPS" ]; then
        # shellcheck disable=SC2086
        fleet liquidsoap $LIQ_STEPS
        liq_best="$best"
    fi
    printf '\n%-46s %s (target >= %d)  %s\n' "(c) most stations in real time, ours:" \
        "$ours_best" "$TARGET_STATIONS" \
        "$([ "$ours_best" -ge "$TARGET_STATIONS" ] && echo PASS || echo MISS)"
    if [ -n "$liq_best" ]; then
        printf '%-46s %s (of the steps %s)\n' "(c) most stations in real time, liquidsoap:" \
            "$liq_best" "$LIQ_STEPS"
    fi
fi
log "load after the runs: $(uptime | sed 's/.*load average/load average/')"
