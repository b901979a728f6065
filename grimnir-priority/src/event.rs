//! What goes into the executor: a closed set of events, each handled at a given time.

use std::sync::Arc;

use grimnir_planner::{Millis, Timeline};

use crate::source::{PrioritySource, SourceId};

/// An input to [`Executor::handle`](crate::Executor::handle). The time it happens at is passed
/// beside it; [`Event::Tick`] carries nothing else.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Event {
    /// The clock: time has reached the given instant. Drivers tick at least at
    /// [`Executor::next_deadline`](crate::Executor::next_deadline).
    Tick,
    /// The planner published a new timeline. The entry on air plays on; what follows it comes
    /// from the new timeline.
    TimelineReplaced {
        /// The new timeline.
        timeline: Arc<Timeline>,
    },
    /// A priority source claims the air from its start (or is reconnected, when its id is
    /// already active).
    SourceActivated {
        /// The source.
        source: PrioritySource,
    },
    /// A priority source went away.
    SourceDeactivated {
        /// Which source.
        id: SourceId,
        /// Whether it ended on purpose or dropped.
        cause: Deactivation,
    },
    /// A report from the media engine.
    Telemetry {
        /// What it reports.
        report: Telemetry,
    },
    /// The media engine stopped (crashed, or its control connection failed). Nothing is on air
    /// until [`Event::EngineRestarted`].
    EngineFailed {
        /// What the driver saw, for the record.
        reason: String,
    },
    /// The media engine is running again (the driver restarted it); the executor reloads the
    /// graph and puts back what should be on air, at the position it should have reached.
    EngineRestarted,
    /// An operator skips the timeline entry on air: it stops at once and the next entry plays
    /// from its beginning, re-synced with the timeline at the next hard start; after the last
    /// entry, the fallback audio. Changes nothing while a priority source or the fallback
    /// bridge holds the air, or while the engine is down.
    Skip,
    /// Another DSP graph was applied to the station: the engine loads it now (when it runs),
    /// and again after every restart.
    GraphChanged {
        /// The graph.
        graph: String,
    },
}

/// Why a source was deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Deactivation {
    /// Ended on purpose (the operator ended the override, the DJ signed off): the air is handed
    /// on at once.
    Ended,
    /// The connection dropped: the source keeps its claim for [`Timing::live_timeout`] and comes
    /// back if it is activated again in time. Meanwhile the fallback audio bridges the gap.
    ///
    /// [`Timing::live_timeout`]: crate::Timing::live_timeout
    Dropped,
}

/// Media engine telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Telemetry {
    /// Playback position in the item on air.
    Position {
        /// The position.
        position: Millis,
    },
    /// Audio buffered ahead of the output.
    BufferDepth {
        /// Buffered samples.
        samples: u64,
    },
    /// The engine's silence detector changed its verdict on the programme output. Silence on
    /// automation hands over to the fallback audio at once (the detector has already waited its
    /// own duration); silence on a live source hands over to automation after
    /// [`Timing::live_timeout`](crate::Timing::live_timeout).
    Silence {
        /// `true` when silence began, `false` when sound came back.
        silent: bool,
    },
    /// One output's health. An output going down changes nothing on air (SPEC.md failure table:
    /// the other outputs continue); it is kept in [`Status`](crate::Status).
    OutputHealth {
        /// The output.
        output: String,
        /// Whether it is up.
        up: bool,
    },
}
