//! Errors for input the executor cannot use. A refused input changes nothing: the executor's
//! clock, state and sources stay as they were.

use chrono::{DateTime, Utc};

/// Why a configuration, event, timeline or scenario was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field holds a value it may not hold.
    #[error("{field} = {value}: {reason}")]
    InvalidConfig {
        /// Path of the field, e.g. `timing.preload_lead`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An event is stamped earlier than one already handled: time is an input and must not go
    /// backwards.
    #[error("event at {at} is earlier than the executor's clock ({now})")]
    TimeWentBackwards {
        /// The event's time.
        at: DateTime<Utc>,
        /// The time of the latest event handled.
        now: DateTime<Utc>,
    },
    /// A timeline entry breaks the order the executor relies on.
    #[error("timeline entries[{index}]: {reason}")]
    InvalidTimeline {
        /// Index of the offending entry.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A timeline belongs to another station.
    #[error("timeline is for station `{found}`, this executor runs station `{expected}`")]
    ForeignTimeline {
        /// The executor's station.
        expected: String,
        /// The timeline's station.
        found: String,
    },
    /// A priority source field holds a value it may not hold.
    #[error("source `{id}`: {field} = {value}: {reason}")]
    InvalidSource {
        /// The source.
        id: String,
        /// The field, e.g. `end`.
        field: &'static str,
        /// The offending value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A priority source names another station or mount than the executor's.
    #[error("source `{id}` is for {field} `{found}`, this executor runs {field} `{expected}`")]
    ForeignSource {
        /// The source.
        id: String,
        /// `station` or `mount`.
        field: &'static str,
        /// The executor's station or mount.
        expected: String,
        /// The source's.
        found: String,
    },
    /// A source is activated again at another tier than the one it holds: the ladder would
    /// have to reorder a source already on the air. End it, then activate it at the new tier.
    #[error(
        "source `{id}` is already active at tier {active}; it cannot be re-activated at tier \
         {requested} (end it first)"
    )]
    TierChange {
        /// The source.
        id: String,
        /// The tier it holds (0–4).
        active: u8,
        /// The tier asked for.
        requested: u8,
    },
    /// A deactivation names a source that is not active.
    #[error("no active source `{id}`")]
    UnknownSource {
        /// The id that was not found.
        id: String,
    },
    /// A scenario file could not be parsed, or holds something unusable.
    #[error("cannot read {what}: {message}")]
    Parse {
        /// What was being read (`scenario file`).
        what: &'static str,
        /// The parser's message, with line and column where it has them.
        message: String,
    },
    /// A scenario field holds a value it may not hold.
    #[error("scenario {field}: {reason}")]
    InvalidScenario {
        /// Path of the field, e.g. `events[3].at`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
