//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grimnir_priority::programme::{ItemKind, Programme, ProgrammeEntry};
use grimnir_priority::{
    AirLog, Command, ExecutorConfig, Item, Millis, PrioritySource, Tier, grimnir_planner::Timeline,
};

pub fn t(s: &str) -> DateTime<Utc> {
    format!("2026-11-24T{s}Z").parse().expect("a time of day")
}

pub fn config() -> ExecutorConfig {
    ExecutorConfig::new("wgmr", "main", "wgmr-fm", "/fallback.mp3")
}

/// From 10:00: a 10 s ID, Tracks 1–10 (4:00 each, soft), filler to 11:00, an ID at 11:00 and
/// Tracks 11–20.
pub fn hour() -> Arc<Timeline> {
    let mut p = Programme::new("wgmr", t("10:00:00"));
    p.entries.push(ProgrammeEntry::of(
        ItemKind::Fixed,
        "ID 10",
        Millis::from_secs(10),
    ));
    for i in 1..=10 {
        p.entries.push(ProgrammeEntry::song(
            format!("Track {i}"),
            Millis::from_secs(240),
        ));
    }
    p.entries.push(ProgrammeEntry::song(
        "Filler",
        Millis::from_secs(3600 - 10 - 2400),
    ));
    p.entries.push(ProgrammeEntry::of(
        ItemKind::Fixed,
        "ID 11",
        Millis::from_secs(10),
    ));
    for i in 11..=20 {
        p.entries.push(ProgrammeEntry::song(
            format!("Track {i}"),
            Millis::from_secs(240),
        ));
    }
    Arc::new(p.to_timeline())
}

pub fn source(id: &str, tier: Tier, start: &str) -> PrioritySource {
    PrioritySource::new(id, tier, format!("in/{id}"), "wgmr", "main", t(start))
}

pub fn label_at(log: &AirLog, at: &str) -> Option<String> {
    log.on_air_at(t(at)).main.map(|a| a.item.label())
}

pub fn tier_at(log: &AirLog, at: &str) -> Option<Tier> {
    log.on_air_at(t(at)).main.map(|a| a.tier)
}

/// The `Play` commands for an item with this label, as (at, offset).
pub fn plays_of(log: &AirLog, label: &str) -> Vec<(DateTime<Utc>, Millis)> {
    log.commands()
        .filter_map(|c| match c {
            Command::Play {
                at, item, offset, ..
            } if item.label() == label => Some((*at, *offset)),
            _ => None,
        })
        .collect()
}

pub fn is_source(item: &Item, id: &str) -> bool {
    matches!(item, Item::Source { id: s } if s.as_str() == id)
}
