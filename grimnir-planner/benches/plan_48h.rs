//! Planning 48 hours over a 100,000-item library, for one station and for ten.
//!
//! The library and stations come from `synthetic/mod.rs` (seeded, identical on every machine):
//! four smart blocks an hour plus a stopset. SPEC.md allows 500 ms to build a one-hour schedule;
//! the target is ten stations × 48 hours in under 0.2 s on one core, over 1000 times inside
//! that budget. Peak memory, which criterion cannot see, is measured by
//! `benches/planner-memory.sh` at the repository root.
//!
//! - `plan_48h/build_catalog`: `Catalog::new`: validating and indexing the library, once for
//!   all stations that share it (the library clone it consumes is made outside the timing).
//! - `plan_48h/build_planner`: `Planner::with_catalog`: one station's configuration checked
//!   against the catalog and its block pools built.
//! - `plan_48h/one_station`: `Planner::plan` for 48 hours of one station.
//! - `plan_48h/ten_stations`: ten stations (own id, zone and seed) planned one after another.
//!
//! ```text
//! cargo bench -p grimnir-planner --bench plan_48h -- --warm-up-time 2 --measurement-time 10
//! ```

use std::hint::black_box;

use std::sync::Arc;

use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use grimnir_planner::{Catalog, Planner};

mod synthetic;

fn plan_48h(c: &mut Criterion) {
    let library = synthetic::library(synthetic::TRACKS, synthetic::LIBRARY_SEED);
    let catalog = Arc::new(Catalog::new(library.clone()).expect("the synthetic library is valid"));
    let planners: Vec<Planner> = (0..synthetic::STATIONS)
        .map(|n| Planner::with_catalog(synthetic::station(n), Arc::clone(&catalog)))
        .collect::<Result<_, _>>()
        .expect("the synthetic stations are valid");

    let mut group = c.benchmark_group("plan_48h");
    // Every iteration takes milliseconds to a second: flat sampling keeps the runs within the
    // measurement time instead of criterion's linear ramp of 1, 2, … n iterations per sample.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function("build_catalog", |b| {
        b.iter_batched(
            || library.clone(),
            |library| Catalog::new(library).expect("the synthetic library is valid"),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("build_planner", |b| {
        b.iter(|| {
            Planner::with_catalog(black_box(synthetic::station(0)), Arc::clone(&catalog))
                .expect("the synthetic station is valid")
        });
    });

    group.sample_size(30);
    group.bench_function("one_station", |b| {
        let request = synthetic::request(0);
        b.iter(|| planners[0].plan(black_box(request)));
    });

    group.sample_size(20);
    group.bench_function("ten_stations", |b| {
        b.iter(|| {
            for (n, planner) in planners.iter().enumerate() {
                black_box(planner.plan(black_box(synthetic::request(n))));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, plan_48h);
criterion_main!(benches);
