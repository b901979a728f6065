//! The station and its configuration file: everything the planner needs besides the library.

use chrono_tz::Tz;

use crate::block::SmartBlock;
use crate::clock::{Clock, DatedOverride, WeeklyGrid, check_hours};
use crate::error::{Error, Result};
use crate::ids::{BlockId, StationId, WebstreamId, check_id};
use crate::show::Show;
use crate::time::Millis;

/// A station: its identity, time zone and transition defaults.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Station {
    /// Unique id.
    pub id: StationId,
    /// Name shown to people.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: String,
    /// The zone its clocks and shows are written in (`Europe/London`).
    pub timezone: Tz,
    /// How long consecutive smart-block items overlap. Items may override it.
    #[cfg_attr(feature = "serde", serde(default))]
    pub crossfade: Millis,
    /// Fade applied where an item is cut at a hard start or a show's end.
    #[cfg_attr(feature = "serde", serde(default = "default_trim_fade"))]
    pub trim_fade: Millis,
    /// Block used wherever nothing else can fill the air (an hour without a clock, a show that
    /// runs short, a block with no eligible item). When absent, the whole library in
    /// least-recently-played order.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub filler: Option<BlockId>,
}

#[cfg(feature = "serde")]
fn default_trim_fade() -> Millis {
    Station::DEFAULT_TRIM_FADE
}

impl Station {
    /// The trim fade used when a station file does not set one.
    pub const DEFAULT_TRIM_FADE: Millis = Millis::from_millis(2000);

    /// A station with no crossfade, the default trim fade and no filler block.
    pub fn new(id: impl Into<StationId>, timezone: Tz) -> Self {
        Station {
            id: id.into(),
            name: String::new(),
            timezone,
            crossfade: Millis::ZERO,
            trim_fade: Self::DEFAULT_TRIM_FADE,
            filler: None,
        }
    }
}

/// An external stream the station relays.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Webstream {
    /// Unique id within the station.
    pub id: WebstreamId,
    /// Name shown to people.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: String,
    /// Primary URL.
    pub url: String,
    /// URLs tried in order when the primary fails.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub fallback_urls: Vec<String>,
}

/// A station file: the station with its blocks, clocks, grid, overrides, shows and webstreams.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct StationConfig {
    /// The station.
    pub station: Station,
    /// Smart blocks.
    #[cfg_attr(feature = "serde", serde(default))]
    pub smart_blocks: Vec<SmartBlock>,
    /// Clocks.
    #[cfg_attr(feature = "serde", serde(default))]
    pub clocks: Vec<Clock>,
    /// Which clock runs when.
    #[cfg_attr(feature = "serde", serde(default))]
    pub grid: WeeklyGrid,
    /// Dated replacements of the grid.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub overrides: Vec<DatedOverride>,
    /// Shows.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub shows: Vec<Show>,
    /// Webstreams.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub webstreams: Vec<Webstream>,
}

impl StationConfig {
    /// A station with nothing configured yet.
    pub fn new(station: Station) -> Self {
        StationConfig {
            station,
            smart_blocks: Vec::new(),
            clocks: Vec::new(),
            grid: WeeklyGrid::default(),
            overrides: Vec::new(),
            shows: Vec::new(),
            webstreams: Vec::new(),
        }
    }

    /// Checks every part on its own; references between parts and to the library are checked
    /// when a [`Planner`](crate::Planner) is built.
    pub fn validate(&self) -> Result<()> {
        check_id("station.id", self.station.id.as_str())?;
        if self.station.crossfade > Millis::from_secs(30) {
            return Err(Error::invalid(
                "station.crossfade",
                self.station.crossfade,
                "at most 30 s",
            ));
        }
        if self.station.trim_fade > Millis::from_secs(30) {
            return Err(Error::invalid(
                "station.trim_fade",
                self.station.trim_fade,
                "at most 30 s",
            ));
        }
        unique(
            "smart_blocks",
            BlockId::KIND,
            self.smart_blocks.iter().map(|b| b.id.as_str()),
        )?;
        for (i, b) in self.smart_blocks.iter().enumerate() {
            b.validate(&format!("smart_blocks[{i}]"))?;
        }
        unique(
            "clocks",
            crate::ClockId::KIND,
            self.clocks.iter().map(|c| c.id.as_str()),
        )?;
        for (i, c) in self.clocks.iter().enumerate() {
            c.validate(&format!("clocks[{i}]"))?;
        }
        for (i, o) in self.overrides.iter().enumerate() {
            check_hours(&format!("overrides[{i}]"), o.from, o.to)?;
        }
        unique(
            "shows",
            crate::ShowId::KIND,
            self.shows.iter().map(|s| s.id.as_str()),
        )?;
        for (i, s) in self.shows.iter().enumerate() {
            s.validate(&format!("shows[{i}]"))?;
        }
        unique(
            "webstreams",
            WebstreamId::KIND,
            self.webstreams.iter().map(|w| w.id.as_str()),
        )?;
        for (i, w) in self.webstreams.iter().enumerate() {
            check_id(&format!("webstreams[{i}].id"), w.id.as_str())?;
            if w.url.trim().is_empty() {
                return Err(Error::invalid(
                    format!("webstreams[{i}].url"),
                    "\"\"",
                    "needs a URL",
                ));
            }
        }
        Ok(())
    }
}

fn unique<'a>(list: &str, kind: &'static str, ids: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(Error::DuplicateId {
                kind,
                id: id.to_owned(),
                field: format!("{list}[{i}].id"),
            });
        }
    }
    Ok(())
}
