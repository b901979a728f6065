//! The committed example scenario, through the same code path as `examples/simulate.rs`.
#![cfg(all(feature = "yaml", feature = "json"))]

mod common;

use common::*;
use grimnir_priority::{AirRecord, Format, Scenario, Tier, simulate};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/scenarios/emergency-and-live.yaml"
);

#[test]
fn the_example_scenario_plays_as_its_comments_say() {
    let text = std::fs::read_to_string(FILE).unwrap();
    let scenario = Scenario::from_str_as(&text, Format::Yaml).unwrap();
    let log = simulate(&scenario).unwrap();
    assert_eq!(label_at(&log, "10:13:10"), Some("eas-1".into()));
    assert_eq!(label_at(&log, "10:13:30"), Some("Track 5".into()));
    assert_eq!(tier_at(&log, "10:21:00"), Some(Tier::LiveOverride));
    assert_eq!(tier_at(&log, "10:24:05"), Some(Tier::Fallback));
    assert_eq!(tier_at(&log, "10:25:00"), Some(Tier::LiveOverride));
    assert_eq!(tier_at(&log, "10:31:00"), Some(Tier::Automation));
    assert!(
        !log.records
            .iter()
            .any(|r| matches!(r, AirRecord::Rejected { .. }))
    );

    // One JSON object per line, and each line reads back as the record it came from.
    let lines = log.to_json_lines().unwrap();
    let back: Vec<AirRecord> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, log.records);
}

#[test]
fn scenario_files_name_what_is_wrong() {
    let text = std::fs::read_to_string(FILE)
        .unwrap()
        .replace("live_timeout: 30", "live_timout: 30");
    let err = Scenario::from_str_as(&text, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("live_timout"), "{err}");
    let text = std::fs::read_to_string(FILE)
        .unwrap()
        .replace("until: 2026-11-24T10:40:00Z", "until: 2026-11-24T10:20:00Z");
    let err = Scenario::from_str_as(&text, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("events[2].at"), "{err}");
}
