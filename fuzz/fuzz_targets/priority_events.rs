//! Arbitrary event sequences through a `grimnir-priority` executor: it must never panic, and
//! whatever it accepts keeps its promises.
//!
//! Input layout: byte 0 picks timing values (zero leads and fade included), byte 1 how many
//! programme items follow as 2-byte pairs (kind, length in seconds), then events of 4 bytes
//! each: opcode, two argument bytes, and a time step. Times step forward mostly, but an opcode
//! can also jump far (to the year 262143) or back (a refused event), so the time arithmetic is
//! tried at its edges. Refused input is fine; a panic, nothing on air while the engine runs, or a
//! state change along an edge `State::can_change_to` forbids is a finding.

#![no_main]

use std::sync::Arc;

use grimnir_priority::chrono::{DateTime, TimeDelta, Utc};
use grimnir_priority::programme::{ItemKind, Programme, ProgrammeEntry};
use grimnir_priority::{
    Deactivation, Event, Executor, ExecutorConfig, Millis, PrioritySource, State, Telemetry, Tier,
};
use libfuzzer_sys::fuzz_target;

const KINDS: [ItemKind; 7] = [
    ItemKind::Song,
    ItemKind::Fixed,
    ItemKind::Stopset,
    ItemKind::Webstream,
    ItemKind::Live,
    ItemKind::Filler,
    ItemKind::Fallback,
];

fuzz_target!(|data: &[u8]| {
    let Some((&timing, rest)) = data.split_first() else {
        return;
    };
    let Some((&items, mut rest)) = rest.split_first() else {
        return;
    };
    let mut config = ExecutorConfig::new("wgmr", "main", "fm", "/fallback.mp3");
    let secs = |b: u8| Millis::from_secs(u64::from(b & 0x3f));
    config.timing.fade = secs(timing);
    config.timing.live_timeout = secs(timing.rotate_left(3));
    if timing & 0x80 != 0 {
        config.timing.look_ahead = Millis::ZERO;
        config.timing.preload_lead = Millis::ZERO;
        config.timing.check_lead = Millis::ZERO;
    }
    let Ok(mut executor) = Executor::new(config) else {
        return;
    };
    let base: DateTime<Utc> = "2026-11-24T10:00:00Z"
        .parse()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut programme = Programme::new("wgmr", base);
    for _ in 0..items % 64 {
        let Some((pair, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        rest = tail;
        let kind = KINDS[usize::from(pair[0]) % KINDS.len()];
        let mut entry = ProgrammeEntry::of(
            kind,
            format!("item {}", pair[0]),
            Millis::from_secs(u64::from(pair[1]) * 7),
        );
        entry.trimmed = pair[0] & 0x80 != 0;
        entry.hard_start = pair[0] & 0x40 != 0;
        entry.crossfade = Millis::from_secs(u64::from(pair[1] % 5));
        programme.entries.push(entry);
    }
    let timeline = Arc::new(programme.to_timeline());
    let mut now = base;
    let _ = executor.handle(
        now,
        Event::TimelineReplaced {
            timeline: Arc::clone(&timeline),
        },
    );
    let mut engine_up = true;
    for chunk in rest.chunks_exact(4) {
        let (op, a, b, step) = (chunk[0], chunk[1], chunk[2], chunk[3]);
        now = match op >> 5 {
            6 => DateTime::<Utc>::MAX_UTC,
            7 => now - TimeDelta::seconds(i64::from(step)),
            _ => now
                .checked_add_signed(TimeDelta::milliseconds(i64::from(step) * 997))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        let id = format!("s{}", a % 4);
        let event = match op % 10 {
            0 | 1 => Event::Tick,
            2 => {
                let tier = [
                    Tier::Emergency,
                    Tier::LiveOverride,
                    Tier::LiveScheduled,
                    Tier::Automation,
                ][usize::from(b % 4)];
                let start = now
                    .checked_add_signed(TimeDelta::seconds(i64::from(b) - 64))
                    .unwrap_or(now);
                let mut source = PrioritySource::new(id, tier, "in", "wgmr", "main", start);
                if a & 0x10 != 0 {
                    source.end = start.checked_add_signed(TimeDelta::seconds(i64::from(a)));
                }
                Event::SourceActivated { source }
            }
            3 => Event::SourceDeactivated {
                id: id.into(),
                cause: Deactivation::Ended,
            },
            4 => Event::SourceDeactivated {
                id: id.into(),
                cause: Deactivation::Dropped,
            },
            5 => Event::Telemetry {
                report: Telemetry::Silence { silent: b & 1 == 1 },
            },
            6 => Event::EngineFailed {
                reason: String::new(),
            },
            7 => Event::EngineRestarted,
            8 => Event::TimelineReplaced {
                timeline: Arc::clone(&timeline),
            },
            _ => Event::Telemetry {
                report: Telemetry::Position {
                    position: Millis::from_millis(u64::from(b)),
                },
            },
        };
        let is_fail = matches!(event, Event::EngineFailed { .. });
        let is_restart = matches!(event, Event::EngineRestarted);
        let Ok(step) = executor.handle(now, event) else {
            continue;
        };
        for c in step.changes {
            // A change of tier within one state (fallback to automation) is recorded too.
            assert!(
                c.from == c.to || c.from.can_change_to(c.to),
                "edge {:?} -> {:?}",
                c.from,
                c.to
            );
        }
        if is_fail {
            engine_up = false;
        }
        if is_restart {
            engine_up = true;
        }
        let _ = executor.next_deadline();
        if engine_up {
            assert!(executor.on_air().main.is_some(), "nothing on air at {now}");
        } else {
            assert_eq!(executor.state(), State::Idle);
        }
    }
});
