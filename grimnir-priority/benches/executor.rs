//! The executor's throughput, and a simulated day.
//!
//! - `executor/events`: 100,000 events (ticks every 250 ms, telemetry, now and then a live
//!   override on or off) through one executor over a 24-hour timeline; criterion reports
//!   elements per second. Target: at least 1 million events/s.
//! - `executor/day_1000_overrides`: `simulate` over 24 hours of four-minute songs with an ID at
//!   the top of each hour and 1,000 overrides (emergencies, live overrides, drops and
//!   reconnections). Target: under 50 ms.
//!
//! ```text
//! cargo bench -p grimnir-priority --bench executor
//! ```

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use grimnir_priority::grimnir_planner::Timeline;
use grimnir_priority::programme::{ItemKind, Programme, ProgrammeEntry};
use grimnir_priority::{
    Deactivation, Event, Executor, ExecutorConfig, Millis, PrioritySource, Scenario, Telemetry,
    Tier, simulate,
};

fn start() -> DateTime<Utc> {
    "2026-11-24T00:00:00Z".parse().expect("a UTC time")
}

fn config() -> ExecutorConfig {
    ExecutorConfig::new("wgmr", "main", "wgmr-fm", "/fallback.mp3")
}

fn day() -> Arc<Timeline> {
    let mut p = Programme::new("wgmr", start());
    for _ in 0..24 {
        p.entries.push(ProgrammeEntry::of(
            ItemKind::Fixed,
            "ID",
            Millis::from_secs(10),
        ));
        for i in 0..14 {
            p.entries.push(ProgrammeEntry::song(
                format!("Song {i}"),
                Millis::from_secs(240 + i),
            ));
        }
        let used = 10 + (0..14).map(|i| 240 + i).sum::<u64>();
        p.entries.push(ProgrammeEntry::song(
            "Filler",
            Millis::from_secs(3600 - used),
        ));
    }
    Arc::new(p.to_timeline())
}

/// A deterministic mix of events, one every 250 ms.
fn events(n: usize) -> Vec<(DateTime<Utc>, Event)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let at = start() + TimeDelta::milliseconds(250 * i as i64 + 1);
        let event = match i % 2000 {
            0 => Event::SourceActivated {
                source: PrioritySource::new(
                    "dj",
                    Tier::LiveOverride,
                    "live/dj",
                    "wgmr",
                    "main",
                    at,
                ),
            },
            1000 => Event::SourceDeactivated {
                id: "dj".into(),
                cause: Deactivation::Ended,
            },
            k if k % 4 == 1 => Event::Telemetry {
                report: Telemetry::BufferDepth { samples: 96_000 },
            },
            k if k % 4 == 3 => Event::Telemetry {
                report: Telemetry::Position {
                    position: Millis::from_millis(k as u64),
                },
            },
            _ => Event::Tick,
        };
        out.push((at, event));
    }
    out
}

fn overrides(n: usize) -> Scenario {
    let mut s = Scenario::new(
        config(),
        Some(day()),
        start(),
        start() + TimeDelta::hours(24),
    );
    let every = 86_400 / n as i64;
    for i in 0..n {
        let at = start() + TimeDelta::seconds(every * i as i64 + 7);
        let id = format!("o{i}");
        match i % 4 {
            0 => {
                let src = PrioritySource::new(id, Tier::Emergency, "/eas.mp3", "wgmr", "main", at)
                    .until(at + TimeDelta::seconds(20));
                s = s.with(at, Event::SourceActivated { source: src });
            }
            1 | 2 => {
                let tier = if i % 4 == 1 {
                    Tier::LiveOverride
                } else {
                    Tier::LiveScheduled
                };
                let src = PrioritySource::new(id.clone(), tier, "live", "wgmr", "main", at);
                s = s.with(
                    at,
                    Event::SourceActivated {
                        source: src.clone(),
                    },
                );
                s = s.with(
                    at + TimeDelta::seconds(20),
                    Event::SourceDeactivated {
                        id: id.clone().into(),
                        cause: Deactivation::Dropped,
                    },
                );
                s = s.with(
                    at + TimeDelta::seconds(30),
                    Event::SourceActivated { source: src },
                );
                s = s.with(
                    at + TimeDelta::seconds(40),
                    Event::SourceDeactivated {
                        id: id.into(),
                        cause: Deactivation::Ended,
                    },
                );
            }
            _ => {
                s = s.with(
                    at,
                    Event::Telemetry {
                        report: Telemetry::Silence { silent: true },
                    },
                );
                s = s.with(
                    at + TimeDelta::seconds(1),
                    Event::Telemetry {
                        report: Telemetry::Silence { silent: false },
                    },
                );
            }
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let timeline = day();
    let evs = events(100_000);
    let mut group = c.benchmark_group("executor");
    group.throughput(Throughput::Elements(evs.len() as u64));
    group.bench_function("events", |b| {
        b.iter_batched(
            || {
                let mut ex = Executor::new(config()).expect("valid config");
                ex.handle(
                    start(),
                    Event::TimelineReplaced {
                        timeline: Arc::clone(&timeline),
                    },
                )
                .expect("valid timeline");
                ex
            },
            |mut ex| {
                for (at, e) in &evs {
                    let step = ex.handle(*at, e.clone()).expect("accepted");
                    black_box(step.commands.len());
                }
                ex
            },
            BatchSize::LargeInput,
        );
    });
    group.throughput(Throughput::Elements(1));
    // One element is the whole simulated day: criterion's per-second figure is days per second.
    let scenario = overrides(1000);
    group.bench_function("day_1000_overrides", |b| {
        b.iter(|| black_box(simulate(&scenario).expect("valid scenario").records.len()));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
