//! What comes out of the executor: commands for the media engine, each with the instant it must
//! take effect.

use chrono::{DateTime, Utc};
use grimnir_planner::{Millis, Source, Tier};

use crate::source::SourceId;

/// Something the engine plays.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
pub enum Item {
    /// A timeline entry.
    Entry {
        /// Its index in the timeline it came from.
        index: usize,
        /// Its planned start in that timeline (with `index`, it names the entry).
        planned_start: DateTime<Utc>,
        /// What it plays.
        source: Source,
    },
    /// A priority source.
    Source {
        /// Its id.
        id: SourceId,
    },
    /// The configured fallback audio, in a loop.
    Fallback,
}

impl Item {
    /// A short label for logs: the entry's title, the source id, or `fallback`.
    pub fn label(&self) -> String {
        match self {
            Item::Entry { source, index, .. } => match source {
                Source::Media { title, .. } => title.clone(),
                Source::Webstream { id } => format!("webstream {id}"),
                Source::Live { name } => format!("live {name}"),
                _ => format!("entry {index}"),
            },
            Item::Source { id } => id.to_string(),
            Item::Fallback => "fallback".to_owned(),
        }
    }
}

/// What is on air, and at which tier.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AirItem {
    /// What plays.
    pub item: Item,
    /// The tier it holds the air at.
    pub tier: Tier,
}

/// A command for the media engine (SPEC.md: LoadGraph, Play, Stop, Fade, InsertEmergency,
/// RouteLive, and Preload). `at` is the instant it must take effect; a command is often sent
/// ahead of it (a `Play` at the priority check, `check_lead` before the entry starts).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "command", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Command {
    /// Load the station's DSP graph (at start and after every engine restart).
    LoadGraph {
        /// When.
        at: DateTime<Utc>,
        /// The graph.
        graph: String,
    },
    /// Open, decode and buffer an item that will play at `starts`.
    Preload {
        /// When to preload.
        at: DateTime<Utc>,
        /// The item.
        item: Item,
        /// When it is due on air.
        starts: DateTime<Utc>,
    },
    /// Play an item.
    Play {
        /// When it starts sounding.
        at: DateTime<Utc>,
        /// The item.
        item: Item,
        /// Where in the item to start (beyond the entry's own cue-in).
        offset: Millis,
        /// How long it sounds, crossfade tail included; `None` for the fallback loop, which
        /// plays until stopped.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        length: Option<Millis>,
        /// Fade in from silence.
        fade_in: Millis,
        /// Fade out at the end of `length`.
        fade_out: Millis,
    },
    /// Fade an item out over `length`, then stop it.
    Fade {
        /// When the fade begins.
        at: DateTime<Utc>,
        /// The item.
        item: Item,
        /// How long the fade lasts.
        length: Millis,
    },
    /// Stop an item at once, or cancel it if it is only due to play.
    Stop {
        /// When.
        at: DateTime<Utc>,
        /// The item.
        item: Item,
    },
    /// Cut to an emergency alert.
    InsertEmergency {
        /// When.
        at: DateTime<Utc>,
        /// The emergency source.
        source: SourceId,
        /// The alert audio.
        audio: String,
        /// Where in the alert to start (non-zero when putting it back after an engine restart).
        offset: Millis,
    },
    /// Route a live input to the programme.
    RouteLive {
        /// When.
        at: DateTime<Utc>,
        /// The live source.
        source: SourceId,
        /// The live input (mount or URL).
        input: String,
    },
}

impl Command {
    /// The instant the command takes effect.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Command::LoadGraph { at, .. }
            | Command::Preload { at, .. }
            | Command::Play { at, .. }
            | Command::Fade { at, .. }
            | Command::Stop { at, .. }
            | Command::InsertEmergency { at, .. }
            | Command::RouteLive { at, .. } => *at,
        }
    }

    /// The command's name as in SPEC.md: `LoadGraph`, `Preload`, `Play`, …
    pub fn name(&self) -> &'static str {
        match self {
            Command::LoadGraph { .. } => "LoadGraph",
            Command::Preload { .. } => "Preload",
            Command::Play { .. } => "Play",
            Command::Fade { .. } => "Fade",
            Command::Stop { .. } => "Stop",
            Command::InsertEmergency { .. } => "InsertEmergency",
            Command::RouteLive { .. } => "RouteLive",
        }
    }
}
