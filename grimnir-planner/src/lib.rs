//! Deterministic radio schedules: clocks, smart blocks and shows turned into a gap-free,
//! explainable timeline.
//!
//! `grimnir-planner` is the scheduling core of [Grimnir Radio]. It is pure: no I/O, no async,
//! no clock of its own. Give it a [`StationConfig`] (time zone, smart blocks, clocks, the weekly
//! grid, dated overrides, shows) and a [`Library`] (media metadata and play history), and it
//! plans any window into a [`Timeline`] of entries in UTC:
//!
//! - **No gap, no overlap.** Entries tile the window; hard starts (a clock slot's `hard_start`,
//!   the top of every hour, a show's start and end) are met to the millisecond by filling the
//!   last smart block before them and cutting the item that crosses them with a fade.
//! - **Never dead air.** When rules cannot all be met, they are loosened in a documented order
//!   (see [`Relaxation`]) and the air is filled anyway; each loosening is reported as a
//!   [`Diagnostic`]. Before a song may come back within its title separation, a block that has
//!   run dry borrows from the station filler, then from the whole library in
//!   least-recently-played order, so a thin block does not replay its few songs while the library
//!   could fill; the item that just played never plays again next while anything else can.
//!   Only an empty library yields a [`Tier::Fallback`] entry.
//! - **Deterministic.** Randomness comes only from ChaCha8 streams seeded from the plan seed, the
//!   station and the pick's place in the schedule. Same inputs, same timeline, byte for byte.
//! - **Time zones done right.** Clocks and shows are local; the timeline is UTC. The 23- and
//!   25-hour days, and Lord Howe Island's half-hour change, are planned correctly.
//! - **Explainable.** Each entry carries its [`Provenance`] (clock, slot, block, seed, rules that
//!   turned candidates down, rules loosened); [`Timeline::explain`] renders it for a person.
//! - **Rolling.** [`Planner::extend`] continues a plan exactly as one longer plan would;
//!   [`Planner::replan`] re-plans from a moment on after a change, keeping what came before;
//!   [`diff`] compares two timelines; [`Timeline::what_plays_at`] answers "what is on at T?".
//!
//! # Example
//!
//! ```
//! use grimnir_planner::*;
//!
//! let mut config = StationConfig::new(Station::new("wgmr", chrono_tz::America::New_York));
//! config.smart_blocks.push(SmartBlock::new("music", None));
//! config.clocks.push(Clock {
//!     id: "standard".into(),
//!     name: "Standard hour".into(),
//!     slots: vec![
//!         Slot::new(SlotKind::HardItem { media: "id".into() }),
//!         Slot::new(SlotKind::SmartBlock { block: "music".into(), duration: None }),
//!     ],
//! });
//! config.grid.default = Some("standard".into());
//!
//! let mut items = vec![MediaItem::new("id", "Station ID", Millis::from_secs(8)).tagged("id")];
//! for i in 0..40 {
//!     items.push(MediaItem::new(format!("t{i}"), format!("Track {i}"), Millis::from_secs(200 + i))
//!         .by(format!("Artist {}", i % 12)));
//! }
//! let planner = Planner::new(config, Library { items, history: vec![] })?;
//!
//! let start = "2026-11-24T05:00:00Z".parse().unwrap(); // midnight in New York
//! let (timeline, diagnostics) = planner.plan(PlanRequest::new(Window::hours(start, 3)?, 42));
//! let first = &timeline.entries[0];
//! assert_eq!(first.source.media_id().map(|m| m.as_str()), Some("id"));
//! println!("{}", timeline.explain(first));
//! for d in &diagnostics {
//!     println!("{d}");
//! }
//! # Ok::<(), grimnir_planner::Error>(())
//! ```
//!
//! # Features
//!
//! - `serde`: serialize and deserialize every model type and the timeline.
//! - `yaml`: read station and library files in YAML ([`StationConfig::from_str_as`]).
//! - `json`: read them in JSON, and write timelines as JSON ([`Timeline::to_json`]).
//!
//! [Grimnir Radio]: https://github.com/grimnir-radio/grimnir

#![cfg_attr(docsrs, feature(doc_cfg))]

mod block;
mod clock;
mod diagnostic;
mod error;
mod filter;
mod ids;
mod media;
mod plan;
mod rng;
mod show;
mod station;
mod time;
mod timeline;

#[cfg(feature = "serde")]
mod files;

pub use block::{Order, Quota, Separation, SmartBlock, TargetDuration, Window as SeparationWindow};
pub use clock::{Clock, DatedOverride, GridRule, Slot, SlotKind, WeeklyGrid};
pub use diagnostic::{Diagnostic, DiagnosticKind, Severity};
pub use error::{Error, Result};
pub use filter::{DateOp, Filter, MAX_FILTER_DEPTH, NumberOp, TagOp, TextOp};
pub use ids::{BlockId, ClockId, MediaId, ShowId, StationId, WebstreamId};
pub use media::{Library, MIN_PLAYABLE, MediaItem, Play};
pub use plan::{Catalog, MAX_WINDOW, PlanRequest, Planner, Window};
pub use show::{MonthDay, Overbooked, Repeat, Show, ShowContent, Underbooked};
pub use station::{Station, StationConfig, Webstream};
pub use time::Millis;
pub use timeline::{
    Entry, Provenance, Rejection, Relaxation, Role, Rule, Source, Tier, Timeline, TimelineDiff,
    Transition, diff,
};

#[cfg(feature = "serde")]
pub use files::Format;

pub use chrono;
pub use chrono_tz;
