//! What an executor is configured with: its station and mount, and the timing rules.

use grimnir_planner::{Millis, StationId};

use crate::error::{Error, Result};
use crate::source::MountId;

/// The timing rules of the executor (SPEC.md "Executor Process").
///
/// For an entry that goes on air at `T`: the executor looks at it from `T - look_ahead`,
/// preloads it at `T - preload_lead`, checks at `T - check_lead` that no higher-priority source
/// will hold the air at `T` and, if none will, sends the `Play` for `T`; at `T` the entry is on
/// air. In files every length is written as seconds or as a string such as `"90s"` or `"1:30"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Timing {
    /// How far ahead the executor plans the automation queue. Default 60 s.
    pub look_ahead: Millis,
    /// How long before its start an entry is preloaded. Default 30 s.
    pub preload_lead: Millis,
    /// How long before its start the priority check commits an entry. Default 5 s.
    pub check_lead: Millis,
    /// How long a live source (tiers 1 and 2) takes to fade out what it replaces. Default 3 s.
    pub fade: Millis,
    /// The fade applied where re-syncing cuts an item short. Default 2 s.
    pub trim_fade: Millis,
    /// How long a live source may be disconnected or silent before automation takes over.
    /// Default 30 s (SPEC.md `failover.live_timeout_sec`).
    pub live_timeout: Millis,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            look_ahead: Millis::from_secs(60),
            preload_lead: Millis::from_secs(30),
            check_lead: Millis::from_secs(5),
            fade: Millis::from_secs(3),
            trim_fade: Millis::from_secs(2),
            live_timeout: Millis::from_secs(30),
        }
    }
}

/// The longest any single timing value may be: a day. Longer leads or timeouts are typing errors.
pub const MAX_TIMING: Millis = Millis::from_secs(86_400);

impl Timing {
    /// Checks that the leads nest (`look_ahead >= preload_lead >= check_lead`) and that no value
    /// is longer than [`MAX_TIMING`].
    ///
    /// ```
    /// use grimnir_priority::{Millis, Timing};
    ///
    /// assert!(Timing::default().validate().is_ok());
    /// let bad = Timing { check_lead: Millis::from_secs(40), ..Timing::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("timing.check_lead"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("timing.look_ahead", self.look_ahead),
            ("timing.preload_lead", self.preload_lead),
            ("timing.check_lead", self.check_lead),
            ("timing.fade", self.fade),
            ("timing.trim_fade", self.trim_fade),
            ("timing.live_timeout", self.live_timeout),
        ];
        for (field, value) in fields {
            if value > MAX_TIMING {
                return Err(Error::InvalidConfig {
                    field,
                    value: value.to_string(),
                    reason: format!("may be at most {MAX_TIMING}"),
                });
            }
        }
        if self.preload_lead > self.look_ahead {
            return Err(Error::InvalidConfig {
                field: "timing.preload_lead",
                value: self.preload_lead.to_string(),
                reason: format!("must not exceed timing.look_ahead ({})", self.look_ahead),
            });
        }
        if self.check_lead > self.preload_lead {
            return Err(Error::InvalidConfig {
                field: "timing.check_lead",
                value: self.check_lead.to_string(),
                reason: format!(
                    "must not exceed timing.preload_lead ({})",
                    self.preload_lead
                ),
            });
        }
        Ok(())
    }
}

/// One executor's configuration: it runs the programme of one station on one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ExecutorConfig {
    /// The station. Timelines and sources for other stations are refused.
    pub station: StationId,
    /// The mount. Sources for other mounts are refused.
    pub mount: MountId,
    /// The DSP graph the engine loads at start and after every restart.
    pub graph: String,
    /// The fallback audio (tier 4), played in a loop when nothing else can be.
    pub fallback: String,
    /// The timing rules.
    #[cfg_attr(feature = "serde", serde(default))]
    pub timing: Timing,
}

impl ExecutorConfig {
    /// A configuration with the default timing.
    ///
    /// ```
    /// use grimnir_priority::ExecutorConfig;
    ///
    /// let config = ExecutorConfig::new("wgmr", "main", "wgmr-fm", "/media/fallback/loop.mp3");
    /// assert_eq!(config.timing.preload_lead.as_millis(), 30_000);
    /// ```
    pub fn new(
        station: impl Into<StationId>,
        mount: impl Into<MountId>,
        graph: impl Into<String>,
        fallback: impl Into<String>,
    ) -> Self {
        ExecutorConfig {
            station: station.into(),
            mount: mount.into(),
            graph: graph.into(),
            fallback: fallback.into(),
            timing: Timing::default(),
        }
    }

    /// Checks the ids, the fallback audio and the timing.
    pub fn validate(&self) -> Result<()> {
        let text = [
            ("station", self.station.as_str()),
            ("mount", self.mount.as_str()),
            ("graph", self.graph.as_str()),
            ("fallback", self.fallback.as_str()),
        ];
        for (field, value) in text {
            if value.trim().is_empty() {
                return Err(Error::InvalidConfig {
                    field,
                    value: format!("{value:?}"),
                    reason: "must not be empty".into(),
                });
            }
        }
        self.timing.validate()
    }
}
