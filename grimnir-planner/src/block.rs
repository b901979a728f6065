//! Smart blocks: rule-based selection of media to fill a stretch of time.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::ids::{BlockId, check_id};
use crate::time::Millis;

/// A rule-based selection: which items may play (filter), in what order they are preferred,
/// what must not repeat too soon (separation), what mix to keep (quotas), and how long it runs.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct SmartBlock {
    /// Unique id within the station.
    pub id: BlockId,
    /// Name shown to people.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: String,
    /// Which items may play; every item when absent.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub filter: Option<Filter>,
    /// Preference among eligible items.
    #[cfg_attr(feature = "serde", serde(default))]
    pub order: Order,
    /// Minimum distance between plays of the same artist, title or album.
    #[cfg_attr(feature = "serde", serde(default))]
    pub separation: Separation,
    /// Mix rules within one run of the block.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub quotas: Vec<Quota>,
    /// How long one run of the block lasts when a clock slot does not say.
    #[cfg_attr(feature = "serde", serde(default))]
    pub duration: TargetDuration,
}

impl SmartBlock {
    /// A block over `filter` with default order, separation and length.
    pub fn new(id: impl Into<BlockId>, filter: Option<Filter>) -> Self {
        SmartBlock {
            id: id.into(),
            name: String::new(),
            filter,
            order: Order::default(),
            separation: Separation::default(),
            quotas: Vec::new(),
            duration: TargetDuration::default(),
        }
    }

    /// Checks every field; `at` is the block's path, e.g. `smart_blocks[1]`.
    pub fn validate(&self, at: &str) -> Result<()> {
        check_id(&format!("{at}.id"), self.id.as_str())?;
        if let Some(f) = &self.filter {
            f.validate(&format!("{at}.filter"))?;
        }
        self.order.validate(&format!("{at}.order"))?;
        self.separation.validate(&format!("{at}.separation"))?;
        for (i, q) in self.quotas.iter().enumerate() {
            q.validate(&format!("{at}.quotas[{i}]"))?;
        }
        self.duration.validate(&format!("{at}.duration"))
    }
}

/// Which eligible item a block prefers next.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Order {
    /// Uniformly random, from the plan seed.
    #[default]
    Random,
    /// Random, with tags making items more or less likely (`{power: 4, recurrent: 2, gold: 1}`):
    /// an item's weight is the largest weight among its tags, or 1 when it has none of them.
    WeightedRotation(BTreeMap<String, f64>),
    /// Most recently added first.
    Newest,
    /// Least recently added first.
    Oldest,
    /// The item that has gone longest without playing (counting the plan itself) first.
    LeastRecentlyPlayed,
}

impl Order {
    fn validate(&self, at: &str) -> Result<()> {
        if let Order::WeightedRotation(weights) = self {
            if weights.is_empty() {
                return Err(Error::invalid(
                    format!("{at}.weighted_rotation"),
                    "{}",
                    "needs at least one tag weight",
                ));
            }
            for (tag, w) in weights {
                if !(w.is_finite() && *w > 0.0 && *w <= 1000.0) {
                    return Err(Error::invalid(
                        format!("{at}.weighted_rotation.{tag}"),
                        w,
                        "a weight must be a number above 0 and at most 1000",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How far apart two plays of the same thing must be, in minutes and in items.
///
/// Both limits apply; zero switches a limit off. Separation looks across block, clock-hour and
/// window boundaries and into the play history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Window {
    /// Minimum time between the starts of two plays, in minutes.
    #[cfg_attr(feature = "serde", serde(default))]
    pub minutes: u32,
    /// Minimum number of other items between two plays.
    #[cfg_attr(feature = "serde", serde(default))]
    pub items: u32,
}

impl Window {
    /// A window of `minutes` minutes and `items` items.
    pub const fn new(minutes: u32, items: u32) -> Self {
        Window { minutes, items }
    }

    /// Whether the window restricts anything.
    pub const fn is_off(&self) -> bool {
        self.minutes == 0 && self.items == 0
    }

    fn validate(&self, at: &str) -> Result<()> {
        // A week is already far beyond what any library can honour; larger values are typos.
        if self.minutes > 7 * 24 * 60 {
            return Err(Error::invalid(
                format!("{at}.minutes"),
                self.minutes,
                "at most 10080 (one week)",
            ));
        }
        if self.items > 10_000 {
            return Err(Error::invalid(
                format!("{at}.items"),
                self.items,
                "at most 10000",
            ));
        }
        Ok(())
    }
}

/// Separation windows for artist, title and album.
///
/// The default keeps the same title an hour apart and the same artist 20 minutes apart, which is
/// what most music formats start from; set a window to `{minutes: 0, items: 0}` to switch it off.
/// The same media item never plays twice within one run of a block unless the block has nothing
/// else left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Separation {
    /// Between plays by a shared artist.
    pub artist: Window,
    /// Between plays of the same title.
    pub title: Window,
    /// Between plays from the same album.
    pub album: Window,
}

impl Default for Separation {
    fn default() -> Self {
        Separation {
            artist: Window::new(20, 0),
            title: Window::new(60, 0),
            album: Window::default(),
        }
    }
}

impl Separation {
    /// No separation at all.
    pub const NONE: Separation = Separation {
        artist: Window::new(0, 0),
        title: Window::new(0, 0),
        album: Window::new(0, 0),
    };

    fn validate(&self, at: &str) -> Result<()> {
        self.artist.validate(&format!("{at}.artist"))?;
        self.title.validate(&format!("{at}.title"))?;
        self.album.validate(&format!("{at}.album"))
    }
}

/// A mix rule over one run of a block.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Quota {
    /// At most this many items by one artist.
    MaxPerArtist(u32),
    /// At most this many items from one album.
    MaxPerAlbum(u32),
    /// The share of items carrying `tag`, in percent, kept within bounds at every point of the
    /// run (so the mix is right even when the run is cut short).
    TagShare {
        /// The tag counted.
        tag: String,
        /// At least this many percent (0–100).
        #[cfg_attr(feature = "serde", serde(default))]
        at_least: Option<f64>,
        /// At most this many percent (0–100).
        #[cfg_attr(feature = "serde", serde(default))]
        at_most: Option<f64>,
    },
}

impl Quota {
    fn validate(&self, at: &str) -> Result<()> {
        match self {
            Quota::MaxPerArtist(0) => Err(Error::invalid(
                format!("{at}.max_per_artist"),
                0,
                "must be at least 1",
            )),
            Quota::MaxPerAlbum(0) => Err(Error::invalid(
                format!("{at}.max_per_album"),
                0,
                "must be at least 1",
            )),
            Quota::TagShare {
                tag,
                at_least,
                at_most,
            } => {
                if tag.trim().is_empty() {
                    return Err(Error::invalid(
                        format!("{at}.tag_share.tag"),
                        "\"\"",
                        "empty tag",
                    ));
                }
                for (name, v) in [("at_least", at_least), ("at_most", at_most)] {
                    if let Some(v) = v {
                        if !(v.is_finite() && (0.0..=100.0).contains(v)) {
                            return Err(Error::invalid(
                                format!("{at}.tag_share.{name}"),
                                v,
                                "a share is a percentage from 0 to 100",
                            ));
                        }
                    }
                }
                if at_least.is_none() && at_most.is_none() {
                    return Err(Error::invalid(
                        format!("{at}.tag_share"),
                        tag,
                        "needs at_least, at_most or both",
                    ));
                }
                if let (Some(lo), Some(hi)) = (at_least, at_most) {
                    if lo > hi {
                        return Err(Error::invalid(
                            format!("{at}.tag_share.at_least"),
                            lo,
                            format!("exceeds at_most ({hi})"),
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// How long one run of a block lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct TargetDuration {
    /// The length aimed for.
    pub target: Millis,
    /// How far the run may end from `target` either way.
    pub tolerance: Millis,
    /// Take items in the block's order even when the last one runs past `target + tolerance`
    /// (the next soft slot then starts later). Without it, the last pick prefers an item that
    /// ends within the tolerance, then one that ends before `target + tolerance`; only when every
    /// candidate would run over does the run overrun anyway. Hard starts are never overrun.
    pub allow_overrun: bool,
}

impl Default for TargetDuration {
    fn default() -> Self {
        TargetDuration {
            target: Millis::from_minutes(15),
            tolerance: Millis::from_secs(30),
            allow_overrun: false,
        }
    }
}

impl TargetDuration {
    fn validate(&self, at: &str) -> Result<()> {
        if self.target < Millis::from_secs(1) {
            return Err(Error::invalid(
                format!("{at}.target"),
                self.target,
                "must be at least 1 s",
            ));
        }
        if self.target > Millis::from_minutes(24 * 60) {
            return Err(Error::invalid(
                format!("{at}.target"),
                self.target,
                "at most 24 hours",
            ));
        }
        if self.tolerance > self.target {
            return Err(Error::invalid(
                format!("{at}.tolerance"),
                self.tolerance,
                format!("exceeds the target ({})", self.target),
            ));
        }
        Ok(())
    }
}
