//! Plans 48 hours for ten stations over the benchmark's synthetic 100,000-item library, and
//! prints what was planned and how long each phase took.
//!
//! ```text
//! cargo run --release -p grimnir-planner --example synthetic_plan -- [--stations N]
//! ```
//!
//! As a server planning several stations from one library would, it indexes the library once
//! into a shared `Catalog` and keeps one planner per station. `--stations 1` plans only the first
//! (New York) station, e.g. under a profiler.
//!
//! The library and stations are those of the `plan_48h` benchmark (`benches/synthetic/`).
//! Criterion cannot see memory; `benches/planner-memory.sh` at the repository root runs this
//! example under `/usr/bin/time -v` to report its peak resident memory.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use std::sync::Arc;

use grimnir_planner::{Catalog, Planner};

#[path = "../benches/synthetic/mod.rs"]
mod synthetic;

fn main() -> anyhow::Result<()> {
    let mut stations = synthetic::STATIONS;
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
            other => bail!("unknown argument `{other}`; usage: [--stations N]"),
        }
    }

    let started = Instant::now();
    let library = synthetic::library(synthetic::TRACKS, synthetic::LIBRARY_SEED);
    println!(
        "library: {} items, generated in {:.1} ms",
        library.items.len(),
        ms(started.elapsed())
    );

    let started = Instant::now();
    let catalog = Arc::new(Catalog::new(library).context("the synthetic library")?);
    println!("catalog: indexed in {:.1} ms", ms(started.elapsed()));

    let started = Instant::now();
    let planners = (0..stations)
        .map(|n| {
            Planner::with_catalog(synthetic::station(n), Arc::clone(&catalog))
                .with_context(|| format!("synthetic station {n}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!(
        "{stations} planner(s) built in {:.1} ms",
        ms(started.elapsed())
    );

    let started = Instant::now();
    let (mut entries, mut diagnostics) = (0, 0);
    for (n, planner) in planners.iter().enumerate() {
        let (timeline, found) = planner.plan(synthetic::request(n));
        entries += timeline.entries.len();
        diagnostics += found.len();
    }
    println!(
        "{stations} station(s) × {} h planned in {:.1} ms: {entries} entries, {diagnostics} diagnostics",
        synthetic::HOURS,
        ms(started.elapsed()),
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
