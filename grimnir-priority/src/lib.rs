//! The five-tier source ladder of a radio station, and a sans-IO executor that decides what is
//! on air, second by second.
//!
//! `grimnir-priority` is the executor of [Grimnir Radio]. It is a pure state machine: an
//! [`Executor`] takes an instant and an [`Event`] (a clock tick, a new timeline, a priority
//! source on or off, engine telemetry, an engine failure or restart) and returns
//! [`Command`]s for the media engine (LoadGraph, Preload, Play, Fade, Stop, InsertEmergency,
//! RouteLive), each with the exact instant it takes effect, plus a [`StateChange`] record for
//! every change of state or tier. It has no clock, thread, socket or async runtime, so the same
//! code runs live in a server and in [`simulate`], which plays a day of a station in
//! milliseconds.
//!
//! - **The ladder** (SPEC.md "Priority Rules"): Emergency (0) > Live override (1) > Live
//!   scheduled (2) > Automation (3) > Fallback (4). A lower tier wins; at equal tiers the first in
//!   time wins ([`arbitrate`]). Tier 0 cuts in at once; tiers 1–2 take the air at once while
//!   what they replace fades out over [`Timing::fade`]; tiers 3–4 wait for a natural transition
//!   ([`preemption`]).
//! - **The timing rules**: look ahead 60 s, preload at T−30 s, priority check (and the `Play`
//!   for T) at T−5 s, transition at T; all in [`Timing`].
//! - **Recovery**: after a short interruption automation resumes with the entry after the
//!   interrupted one and re-syncs with the timeline at the next hard start by trimming or
//!   stretching soft items; after a long one, with the entry the timeline has for that moment. A
//!   live source dropped or silent beyond [`Timing::live_timeout`] hands over to automation
//!   (the fallback bridges a drop meanwhile); silence on automation hands over to the fallback
//!   until the next entry; after an engine restart the executor puts back what should be on air
//!   at the position it should have reached.
//! - **States**: [`State`] Idle → Preloading → Playing → Fading → Live → Emergency, with only the
//!   edges of [`State::can_change_to`].
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use grimnir_priority::*;
//! use grimnir_priority::programme::{Programme, ProgrammeEntry};
//!
//! let t = |s: &str| -> chrono::DateTime<chrono::Utc> { s.parse().unwrap() };
//! // Ten four-minute songs from 10:00.
//! let mut programme = Programme::new("wgmr", t("2026-11-24T10:00:00Z"));
//! for i in 1..=10 {
//!     programme.entries.push(ProgrammeEntry::song(format!("Track {i}"), Millis::from_secs(240)));
//! }
//! let timeline = Arc::new(programme.to_timeline());
//!
//! // An alert at 10:13 (during Track 4) for 30 s.
//! let config = ExecutorConfig::new("wgmr", "main", "fm", "/fallback.mp3");
//! let alert = PrioritySource::new("eas", Tier::Emergency, "/alerts/eas.mp3", "wgmr", "main",
//!     t("2026-11-24T10:13:00Z")).until(t("2026-11-24T10:13:30Z"));
//! let scenario = Scenario::new(config, Some(timeline), t("2026-11-24T10:00:00Z"), t("2026-11-24T10:40:00Z"))
//!     .with(t("2026-11-24T10:13:00Z"), Event::SourceActivated { source: alert });
//! let log = simulate(&scenario)?;
//!
//! // The alert was on air at 10:13:10 ...
//! assert_eq!(log.on_air_at(t("2026-11-24T10:13:10Z")).main.map(|a| a.tier), Some(Tier::Emergency));
//! // ... and then automation resumed at Track 5.
//! let after = log.on_air_at(t("2026-11-24T10:13:31Z")).main.unwrap();
//! assert_eq!(after.item.label(), "Track 5");
//! # Ok::<(), grimnir_priority::Error>(())
//! ```
//!
//! # Features
//!
//! - `serde`: serialize and deserialize the configuration, events, commands, state changes,
//!   scenarios and the air log.
//! - `yaml`: read scenario files in YAML ([`Scenario::from_str_as`]).
//! - `json`: read them in JSON, and write the air log as JSON lines
//!   ([`AirLog::to_json_lines`]).
//!
//! [Grimnir Radio]: https://github.com/grimnir-radio/grimnir

#![cfg_attr(docsrs, feature(doc_cfg))]

mod command;
mod config;
mod error;
mod event;
mod executor;
pub mod programme;
mod simulate;
mod source;
mod state;
mod time;

#[cfg(feature = "serde")]
mod files;

pub use command::{AirItem, Command, Item};
pub use config::{ExecutorConfig, MAX_TIMING, Timing};
pub use error::{Error, Result};
pub use event::{Deactivation, Event, Telemetry};
pub use executor::{Executor, MAX_RESYNC_RUN, OnAir, Status, Step, is_hard_start, is_soft};
pub use simulate::{AirLog, AirRecord, Scenario, ScriptedEvent, simulate};
pub use source::{MountId, Preemption, PrioritySource, SourceId, arbitrate, outranks, preemption};
pub use state::{Reason, State, StateChange};

#[cfg(feature = "serde")]
pub use files::Format;

pub use chrono;
pub use grimnir_planner;
pub use grimnir_planner::{Millis, Tier};
