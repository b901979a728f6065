//! The source ladder: priority sources, how each tier takes the air, and arbitration.

use chrono::{DateTime, Utc};
use grimnir_planner::{StationId, Tier};

use crate::error::{Error, Result};

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(String);

        impl $name {
            /// Wraps an id.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

typed_id!(
    /// Identifies a priority source (an emergency alert, a DJ's live connection, a booked show).
    SourceId
);
typed_id!(
    /// Identifies a mount: one programme output of a station.
    MountId
);

/// How a tier takes the air from what is on (SPEC.md "Priority Rules" 4–6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Preemption {
    /// Tier 0: stops what is on and goes on air at once.
    CutIn,
    /// Tiers 1 and 2: go on air at once while what was on fades out over [`Timing::fade`].
    ///
    /// [`Timing::fade`]: crate::Timing::fade
    FadeOut,
    /// Tiers 3 and 4: wait until what is on ends by itself.
    NaturalTransition,
}

/// How `tier` takes the air.
///
/// ```
/// use grimnir_priority::{Preemption, Tier, preemption};
///
/// assert_eq!(preemption(Tier::Emergency), Preemption::CutIn);
/// assert_eq!(preemption(Tier::LiveScheduled), Preemption::FadeOut);
/// assert_eq!(preemption(Tier::Fallback), Preemption::NaturalTransition);
/// ```
pub fn preemption(tier: Tier) -> Preemption {
    match tier {
        Tier::Emergency => Preemption::CutIn,
        Tier::LiveOverride | Tier::LiveScheduled => Preemption::FadeOut,
        Tier::Automation | Tier::Fallback => Preemption::NaturalTransition,
    }
}

/// A source that claims the air at a tier from `start`, until `end` or until it is deactivated:
/// an emergency alert (tier 0), a DJ's takeover (1), a booked live show (2).
///
/// Automation (3) is the timeline and fallback (4) the station's fallback audio; neither is
/// activated as a priority source (see [`PrioritySource::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PrioritySource {
    /// Its id; activating an id that is already active updates it (a reconnection).
    pub id: SourceId,
    /// Its tier: `emergency`, `live_override` or `live_scheduled`.
    pub tier: Tier,
    /// What the engine plays: the alert audio for tier 0, the live input (mount, URL) for 1–2.
    pub input: String,
    /// The station it is for.
    pub station: StationId,
    /// The mount it is for.
    pub mount: MountId,
    /// When it claims the air.
    pub start: DateTime<Utc>,
    /// When it gives the air back; `None` until it is deactivated.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub end: Option<DateTime<Utc>>,
}

impl PrioritySource {
    /// A source with no end.
    ///
    /// ```
    /// use grimnir_priority::{PrioritySource, Tier};
    ///
    /// let at = "2026-11-24T10:00:00Z".parse().unwrap();
    /// let alert = PrioritySource::new("eas-1", Tier::Emergency, "/alerts/eas.mp3", "wgmr", "main", at)
    ///     .until("2026-11-24T10:00:30Z".parse().unwrap());
    /// assert!(alert.is_on_at(at));
    /// assert!(!alert.is_on_at("2026-11-24T10:00:30Z".parse().unwrap()));
    /// ```
    pub fn new(
        id: impl Into<SourceId>,
        tier: Tier,
        input: impl Into<String>,
        station: impl Into<StationId>,
        mount: impl Into<MountId>,
        start: DateTime<Utc>,
    ) -> Self {
        PrioritySource {
            id: id.into(),
            tier,
            input: input.into(),
            station: station.into(),
            mount: mount.into(),
            start,
            end: None,
        }
    }

    /// The same source, ending at `end`.
    pub fn until(mut self, end: DateTime<Utc>) -> Self {
        self.end = Some(end);
        self
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn is_on_at(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && self.end.is_none_or(|e| t < e)
    }

    /// Checks the tier (0–2), the id and input (not empty) and that `end` is after `start`.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, value: String, reason: &str| Error::InvalidSource {
            id: self.id.to_string(),
            field,
            value,
            reason: reason.to_owned(),
        };
        if self.id.as_str().trim().is_empty() {
            return Err(invalid(
                "id",
                format!("{:?}", self.id.as_str()),
                "must not be empty",
            ));
        }
        if self.tier > Tier::LiveScheduled {
            return Err(invalid(
                "tier",
                format!("{:?}", self.tier),
                "a priority source is at tier 0, 1 or 2; automation is the timeline and \
                 fallback the configured fallback audio",
            ));
        }
        if self.input.trim().is_empty() {
            return Err(invalid(
                "input",
                format!("{:?}", self.input),
                "must not be empty",
            ));
        }
        if let Some(end) = self.end {
            if end <= self.start {
                return Err(invalid("end", end.to_rfc3339(), "must be after start"));
            }
        }
        Ok(())
    }
}

/// Whether a source at (`tier`, `start`) wins over one at (`other_tier`, `other_start`): a lower
/// tier wins; at equal tiers the earlier start wins (SPEC.md "Priority Rules" 1–3). A full tie
/// goes to neither, so the source already chosen keeps the air.
pub fn outranks(
    tier: Tier,
    start: DateTime<Utc>,
    other_tier: Tier,
    other_start: DateTime<Utc>,
) -> bool {
    (tier, start) < (other_tier, other_start)
}

/// The source that holds the air at `t` among `sources`, given in activation order: the one on
/// at `t` that [`outranks`] all others; on a full tie, the one activated first.
///
/// ```
/// use grimnir_priority::{PrioritySource, Tier, arbitrate};
///
/// let t = |s: &str| s.parse().unwrap();
/// let a = PrioritySource::new("dj-a", Tier::LiveOverride, "live/a", "wgmr", "main", t("2026-11-24T10:00:00Z"));
/// let b = PrioritySource::new("dj-b", Tier::LiveOverride, "live/b", "wgmr", "main", t("2026-11-24T10:05:00Z"));
/// let show = PrioritySource::new("show", Tier::LiveScheduled, "live/show", "wgmr", "main", t("2026-11-24T09:00:00Z"));
/// let sources = [show, b, a];
/// let now = t("2026-11-24T10:10:00Z");
/// // Tier 1 beats tier 2; between the two tier-1 sources the earlier start wins.
/// assert_eq!(arbitrate(&sources, now).map(|s| s.id.as_str()), Some("dj-a"));
/// ```
pub fn arbitrate(sources: &[PrioritySource], t: DateTime<Utc>) -> Option<&PrioritySource> {
    let mut best: Option<&PrioritySource> = None;
    for s in sources.iter().filter(|s| s.is_on_at(t)) {
        if best.is_none_or(|b| outranks(s.tier, s.start, b.tier, b.start)) {
            best = Some(s);
        }
    }
    best
}
