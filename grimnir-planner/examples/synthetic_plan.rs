//! Plans 48 hours for ten stations over the benchmark's synthetic 100,000-item library, and
//! prints what was planned and how long each phase took.
//!
//! ```text
//! cargo run --release -p grimnir-planner --example synthetic_plan -- [--stations N] [--one-at-a-time]
//! ```
//!
//! By default all planners are built first and kept, as a server planning several stations
//! would; `--one-at-a-time` builds, plans and drops each station's planner in turn, so at most
//! one is alive. `--stations 1` plans only the first (New York) station, e.g. under a profiler.
//!
//! The library and stations are those of the `plan_48h` benchmark (`benches/synthetic/`).
//! Criterion cannot see memory; `benches/planner-memory.sh` at the repository root runs this
//! example under `/usr/bin/time -v` to report its peak resident memory.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use grimnir_planner::{Library, Planner};

#[path = "../benches/synthetic/mod.rs"]
mod synthetic;

fn main() -> anyhow::Result<()> {
    let (mut stations, mut one_at_a_time) = (synthetic::STATIONS, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stations" => {
                let n = args.next().context("--stations needs a number")?;
                stations = n
                    .parse()
                    .with_context(|| format!("--stations: `{n}` is not a number"))?;
                if !(1..=synthetic::STATIONS).contains(&stations) {
                    bail!("--stations: from 1 to {}", synthetic::STATIONS);
                }
            }
            "--one-at-a-time" => one_at_a_time = true,
            other => bail!("unknown argument `{other}`; usage: [--stations N] [--one-at-a-time]"),
        }
    }

    let started = Instant::now();
    let mut library = synthetic::library(synthetic::TRACKS, synthetic::LIBRARY_SEED);
    println!(
        "library: {} items, generated in {:.1} ms",
        library.items.len(),
        ms(started.elapsed())
    );

    let mut totals = Totals::default();
    if one_at_a_time {
        for n in 0..stations {
            // The last station takes the original library instead of a copy.
            let copy = if n + 1 < stations {
                library.clone()
            } else {
                std::mem::take(&mut library)
            };
            let planner = build(n, copy, &mut totals)?;
            plan(n, &planner, &mut totals);
        }
    } else {
        let planners = (0..stations)
            .map(|n| build(n, library.clone(), &mut totals))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (n, planner) in planners.iter().enumerate() {
            plan(n, planner, &mut totals);
        }
    }

    println!(
        "{stations} planner(s) built in {:.1} ms{}",
        ms(totals.building),
        if one_at_a_time {
            ", one at a time"
        } else {
            ", all kept"
        }
    );
    println!(
        "{stations} station(s) × {} h planned in {:.1} ms: {} entries, {} diagnostics",
        synthetic::HOURS,
        ms(totals.planning),
        totals.entries,
        totals.diagnostics,
    );
    Ok(())
}

#[derive(Default)]
struct Totals {
    building: Duration,
    planning: Duration,
    entries: usize,
    diagnostics: usize,
}

fn build(n: usize, library: Library, totals: &mut Totals) -> anyhow::Result<Planner> {
    let started = Instant::now();
    let planner = Planner::new(synthetic::station(n), library)
        .with_context(|| format!("synthetic station {n}"))?;
    totals.building += started.elapsed();
    Ok(planner)
}

fn plan(n: usize, planner: &Planner, totals: &mut Totals) {
    let started = Instant::now();
    let (timeline, diagnostics) = planner.plan(synthetic::request(n));
    totals.planning += started.elapsed();
    totals.entries += timeline.entries.len();
    totals.diagnostics += diagnostics.len();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
