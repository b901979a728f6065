//! A compact way to write a timeline by hand: a start and a list of items that follow one
//! another. Scenario files, tests and examples use it; a real station gets its timeline from
//! `grimnir-planner`.

use chrono::{DateTime, Utc};
use grimnir_planner::chrono_tz::Tz;
use grimnir_planner::{
    Entry, MediaId, Millis, Provenance, Role, Source, StationId, Tier, Timeline, Transition,
    WebstreamId,
};

use crate::time::plus;

/// What a programme item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ItemKind {
    /// A smart block pick: soft, re-syncing may trim or drop it.
    #[default]
    Song,
    /// A fixed item (a station ID, a hard item): never trimmed by re-syncing.
    Fixed,
    /// An advert break: fixed.
    Stopset,
    /// A relayed stream: fixed.
    Webstream,
    /// A live programme slot (tier 2): on air only when a live source is activated for it.
    Live,
    /// Filler: soft.
    Filler,
    /// The planner found nothing: fallback audio (tier 4).
    Fallback,
}

/// One item of a [`Programme`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ProgrammeEntry {
    /// Its title (the media id is derived from it).
    pub title: String,
    /// How long it is on air.
    pub length: Millis,
    /// What it is.
    #[cfg_attr(feature = "serde", serde(default))]
    pub kind: ItemKind,
    /// Its tier; by default 2 for live, 4 for fallback, 3 for the rest.
    #[cfg_attr(feature = "serde", serde(default))]
    pub tier: Option<Tier>,
    /// The show it belongs to: a change of show is a hard start.
    #[cfg_attr(feature = "serde", serde(default))]
    pub show: Option<String>,
    /// The planner cut it short at a hard boundary: what follows is a hard start.
    #[cfg_attr(feature = "serde", serde(default))]
    pub trimmed: bool,
    /// It starts at a hard boundary (as a clock slot's `hard_start`), which the planner marks.
    #[cfg_attr(feature = "serde", serde(default))]
    pub hard_start: bool,
    /// How long it keeps sounding under the next item.
    #[cfg_attr(feature = "serde", serde(default))]
    pub crossfade: Millis,
}

impl ProgrammeEntry {
    /// A song (soft).
    pub fn song(title: impl Into<String>, length: Millis) -> Self {
        ProgrammeEntry {
            title: title.into(),
            length,
            kind: ItemKind::Song,
            tier: None,
            show: None,
            trimmed: false,
            hard_start: false,
            crossfade: Millis::ZERO,
        }
    }

    /// An item of another kind.
    pub fn of(kind: ItemKind, title: impl Into<String>, length: Millis) -> Self {
        ProgrammeEntry {
            kind,
            ..ProgrammeEntry::song(title, length)
        }
    }
}

/// Items played one after another from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Programme {
    /// The station.
    pub station: StationId,
    /// The station's zone: the top of each local hour is a hard start. Default UTC.
    #[cfg_attr(feature = "serde", serde(default = "utc"))]
    pub timezone: Tz,
    /// When the first item starts.
    pub start: DateTime<Utc>,
    /// The items.
    pub entries: Vec<ProgrammeEntry>,
}

#[cfg(feature = "serde")]
fn utc() -> Tz {
    Tz::UTC
}

impl Programme {
    /// An empty programme in UTC.
    pub fn new(station: impl Into<StationId>, start: DateTime<Utc>) -> Self {
        Programme {
            station: station.into(),
            timezone: Tz::UTC,
            start,
            entries: Vec::new(),
        }
    }

    /// The timeline: entries back to back from `start`, with provenance that says which are
    /// soft (songs, filler) and which fixed. Zero-length items are left out.
    pub fn to_timeline(&self) -> Timeline {
        let mut at = self.start;
        let mut entries = Vec::with_capacity(self.entries.len());
        for (step, p) in self.entries.iter().enumerate() {
            if p.length == Millis::ZERO {
                continue;
            }
            let end = plus(at, p.length);
            if end <= at {
                break;
            }
            let id = MediaId::new(p.title.to_lowercase().replace(' ', "-"));
            let (source, kind, default_tier) = match p.kind {
                ItemKind::Song | ItemKind::Fixed | ItemKind::Stopset | ItemKind::Filler => (
                    Source::Media {
                        id,
                        title: p.title.clone(),
                        artists: Vec::new(),
                        cue_in: Millis::ZERO,
                        cue_out: p.length.saturating_add(p.crossfade),
                    },
                    match p.kind {
                        ItemKind::Song => "smart_block",
                        ItemKind::Stopset => "stopset",
                        ItemKind::Filler => "filler",
                        _ => "hard_item",
                    },
                    Tier::Automation,
                ),
                ItemKind::Webstream => (
                    Source::Webstream {
                        id: WebstreamId::new(id.as_str()),
                    },
                    "webstream",
                    Tier::Automation,
                ),
                ItemKind::Live => (
                    Source::Live {
                        name: p.title.clone(),
                    },
                    "live",
                    Tier::LiveScheduled,
                ),
                ItemKind::Fallback => (Source::Fallback, "filler", Tier::Fallback),
            };
            entries.push(Entry {
                start: at,
                end,
                source,
                tier: p.tier.unwrap_or(default_tier),
                transition: Transition {
                    fade_in: Millis::ZERO,
                    fade_out: Millis::ZERO,
                    overlap: p.crossfade,
                },
                provenance: Provenance {
                    role: Role::Slot,
                    clock: None,
                    slot: None,
                    kind: kind.to_owned(),
                    show: p.show.as_deref().map(Into::into),
                    block: None,
                    seed: None,
                    frame: self.start,
                    step: u32::try_from(step).unwrap_or(u32::MAX),
                    pick: 0,
                    rejected: Vec::new(),
                    relaxed: Vec::new(),
                    trimmed: p.trimmed,
                    hard_start: p.hard_start,
                },
            });
            at = end;
        }
        Timeline {
            station: self.station.clone(),
            timezone: self.timezone,
            seed: 0,
            now: self.start,
            start: self.start,
            end: at,
            entries,
        }
    }
}
