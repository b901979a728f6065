//! Golden tests: the demo station's plan is pinned, so any change to what the planner produces
//! for the same inputs is seen and deliberate.
//!
//! When a change to planning is intended, review the new output and update the snapshot
//! (`cargo insta review`, or `INSTA_UPDATE=always cargo test --test golden`) and the hash.

// Helpers here are test code too: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use grimnir_planner::*;

fn demo() -> Planner {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).expect("demo file");
    let config =
        StationConfig::from_str_as(&read("station.yaml"), Format::Yaml).expect("demo station");
    let library = Library::from_str_as(&read("library.yaml"), Format::Yaml).expect("demo library");
    Planner::new(config, library).expect("demo planner")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn demo_morning_snapshot() {
    let planner = demo();
    let tz = chrono_tz::America::New_York;
    let window = Window::new(local(tz, "2026-11-24 06:00"), local(tz, "2026-11-24 09:00")).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 1);
    let lines: Vec<String> = timeline
        .entries
        .iter()
        .map(|e| {
            let what = match &e.source {
                Source::Media { id, cue_out, .. } => format!("{id} (to {cue_out})"),
                Source::Webstream { id } => format!("webstream {id}"),
                Source::Live { name } => format!("live {name}"),
                _ => "fallback".to_owned(),
            };
            format!(
                "{} {:>9} {:<11} {:<11} {what}{}",
                e.start.with_timezone(&tz).format("%H:%M:%S%.3f"),
                e.length().to_string(),
                e.provenance.clock.as_ref().map_or("", |c| c.as_str()),
                e.provenance.kind,
                if e.provenance.trimmed { " cut" } else { "" }
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn demo_48_hours_are_byte_identical() {
    let planner = demo();
    let window = Window::hours(utc("2026-11-24T05:00:00Z"), 48).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 1);
    let json = timeline.to_json();
    assert_eq!(json, planner.plan(PlanRequest::new(window, 1)).0.to_json());
    assert_eq!(
        fnv1a(json.as_bytes()),
        PINNED,
        "the demo plan changed; if intended, re-pin"
    );
}

const PINNED: u64 = 18_266_397_326_234_408_586;
