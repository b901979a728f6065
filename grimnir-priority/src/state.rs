//! The executor's states, the edges allowed between them, and the record of every change.

use chrono::{DateTime, Utc};
use grimnir_planner::Tier;

/// The executor's state (SPEC.md `executor_states.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum State {
    /// Nothing on air: before the first event, and while the engine is down.
    Idle,
    /// Automation or fallback on air, and the next entry preloaded, waiting for its start.
    Preloading,
    /// Automation or fallback on air, nothing preloaded yet.
    Playing,
    /// A live source has taken the air and what it replaced is fading out.
    Fading,
    /// A live source (tier 1 or 2) on air.
    Live,
    /// An emergency source (tier 0) on air.
    Emergency,
}

impl State {
    /// Every state, in declaration order.
    pub const ALL: [State; 6] = [
        State::Idle,
        State::Preloading,
        State::Playing,
        State::Fading,
        State::Live,
        State::Emergency,
    ];

    /// The state's name as stored in `executor_states.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Preloading => "preloading",
            State::Playing => "playing",
            State::Fading => "fading",
            State::Live => "live",
            State::Emergency => "emergency",
        }
    }

    /// Whether the executor may go from `self` to `to` (a different state).
    ///
    /// - Every state may fall to `Idle` (engine failure) and jump to `Emergency` (tier 0 cuts in
    ///   from anywhere), except that `Emergency` does not enter itself.
    /// - `Idle` starts into `Preloading`, `Playing` or `Live`, never into `Fading`: with nothing
    ///   on air there is nothing to fade.
    /// - Automation (`Playing` ⇄ `Preloading`) goes to `Fading` when a live source takes over, or
    ///   straight to `Live` when the fade time is zero.
    /// - `Fading` ends in `Live`, or back in automation if the live source left mid-fade.
    /// - `Live` goes to `Fading` (a higher live tier takes over) or back to automation.
    /// - `Emergency` ends in automation or live; it never fades.
    ///
    /// ```
    /// use grimnir_priority::State;
    ///
    /// assert!(State::Playing.can_change_to(State::Fading));
    /// assert!(!State::Idle.can_change_to(State::Fading));
    /// assert!(!State::Emergency.can_change_to(State::Fading));
    /// ```
    pub fn can_change_to(self, to: State) -> bool {
        use State::*;
        match (self, to) {
            (a, b) if a == b => false,
            (_, Idle) | (_, Emergency) => true,
            (Idle, Preloading | Playing | Live) => true,
            (Preloading, Playing | Fading | Live) => true,
            (Playing, Preloading | Fading | Live) => true,
            (Fading, Preloading | Playing | Live) => true,
            (Live, Fading | Preloading | Playing) => true,
            (Emergency, Preloading | Playing | Live) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the state or the tier on air changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Reason {
    /// The first event: the executor put the timeline (or fallback) on air.
    Startup,
    /// The next entry was preloaded.
    Preload,
    /// A timeline entry began at its time.
    EntryStart,
    /// An emergency source cut in.
    Emergency,
    /// A live override took the air.
    LiveOverride,
    /// A scheduled live source took the air.
    LiveScheduled,
    /// A source reached its end or was ended on purpose.
    SourceEnded,
    /// A fade finished.
    FadeComplete,
    /// A live source dropped; the fallback bridges while it may come back.
    LiveDropped,
    /// A dropped live source came back within its timeout.
    LiveReconnected,
    /// A dropped live source did not come back within its timeout.
    LiveTimeout,
    /// A live source stayed silent longer than its timeout.
    LiveSilent,
    /// Automation went silent; the fallback took over until the next entry.
    AutomationSilent,
    /// The planner published a new timeline.
    TimelineReplaced,
    /// The engine failed.
    EngineFailed,
    /// The engine came back.
    EngineRestarted,
    /// An operator skipped the entry on air.
    Skipped,
}

/// One recorded change of state or of the tier on air: what the server persists as
/// `executor_states`, publishes as `priority_change` and keeps to audit overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StateChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The tier on air before (`None`: nothing was).
    pub from_tier: Option<Tier>,
    /// The tier on air after.
    pub to_tier: Option<Tier>,
    /// Why.
    pub reason: Reason,
}
