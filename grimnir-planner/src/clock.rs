//! Clocks (hour templates of slots) and the weekly grid that decides which clock runs when.

use chrono::{NaiveDate, Weekday};

use crate::error::{Error, Result};
use crate::ids::{BlockId, ClockId, MediaId, WebstreamId, check_id};
use crate::time::Millis;

const HOUR: Millis = Millis::from_minutes(60);

/// An hour template: the slots that make up one clock hour, in order.
///
/// Slots play one after another from the top of the hour. A slot with a `hard_start` begins
/// exactly at that offset into the hour: whatever plays before it is trimmed with a fade (or the
/// last smart block before it is filled to end there). The top of every hour is itself a hard
/// start. Between two hard starts the last smart block absorbs the difference, so a clock hour
/// is always filled exactly.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Clock {
    /// Unique id within the station.
    pub id: ClockId,
    /// Name shown to people.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: String,
    /// The slots, in playing order.
    pub slots: Vec<Slot>,
}

/// One element of a clock.
///
/// In a file, a slot is a map with exactly one kind key and an optional `hard_start`:
/// `{ stopset: { items: [ad-1, ad-2] }, hard_start: "30:00" }`. Unknown keys are refused, so a
/// misspelt `hard_start` cannot silently turn a timed break into a floating one.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "SlotFile"))]
pub struct Slot {
    /// What the slot plays.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub kind: SlotKind,
    /// Offset into the hour at which this slot must start exactly (`"30:00"`), if any.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub hard_start: Option<Millis>,
}

impl Slot {
    /// A soft slot (starts when the previous one ends).
    pub fn new(kind: SlotKind) -> Self {
        Slot {
            kind,
            hard_start: None,
        }
    }

    /// A slot that starts exactly `offset` into the hour.
    pub fn hard(kind: SlotKind, offset: Millis) -> Self {
        Slot {
            kind,
            hard_start: Some(offset),
        }
    }
}

/// What a clock slot plays.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum SlotKind {
    /// Items chosen by a smart block.
    SmartBlock {
        /// The block.
        block: BlockId,
        /// Overrides the block's target length for this slot.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        duration: Option<Millis>,
    },
    /// One fixed item (a station ID, a feature).
    HardItem {
        /// The item.
        media: MediaId,
    },
    /// A fixed sequence (adverts, promos), played whole and in order.
    Stopset {
        /// The items.
        items: Vec<MediaId>,
    },
    /// An external stream relayed for a set time.
    Webstream {
        /// The stream.
        webstream: WebstreamId,
        /// How long it is relayed.
        duration: Millis,
    },
    /// A live programme (priority tier 2).
    Live {
        /// What the programme is called.
        name: String,
        /// How long it lasts.
        duration: Millis,
    },
}

/// The file form of a [`Slot`]: every kind as an optional key, so that unknown keys can be
/// refused (serde's `flatten` cannot refuse them).
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotFile {
    #[serde(default)]
    smart_block: Option<SmartBlockSlot>,
    #[serde(default)]
    hard_item: Option<HardItemSlot>,
    #[serde(default)]
    stopset: Option<StopsetSlot>,
    #[serde(default)]
    webstream: Option<WebstreamSlot>,
    #[serde(default)]
    live: Option<LiveSlot>,
    #[serde(default)]
    hard_start: Option<Millis>,
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SmartBlockSlot {
    block: BlockId,
    #[serde(default)]
    duration: Option<Millis>,
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HardItemSlot {
    media: MediaId,
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StopsetSlot {
    items: Vec<MediaId>,
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WebstreamSlot {
    webstream: WebstreamId,
    duration: Millis,
}

#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveSlot {
    name: String,
    duration: Millis,
}

#[cfg(feature = "serde")]
impl TryFrom<SlotFile> for Slot {
    type Error = String;

    fn try_from(f: SlotFile) -> Result<Slot, String> {
        let mut kinds = Vec::with_capacity(1);
        if let Some(s) = f.smart_block {
            kinds.push(SlotKind::SmartBlock {
                block: s.block,
                duration: s.duration,
            });
        }
        if let Some(s) = f.hard_item {
            kinds.push(SlotKind::HardItem { media: s.media });
        }
        if let Some(s) = f.stopset {
            kinds.push(SlotKind::Stopset { items: s.items });
        }
        if let Some(s) = f.webstream {
            kinds.push(SlotKind::Webstream {
                webstream: s.webstream,
                duration: s.duration,
            });
        }
        if let Some(s) = f.live {
            kinds.push(SlotKind::Live {
                name: s.name,
                duration: s.duration,
            });
        }
        match (kinds.pop(), kinds.is_empty()) {
            (Some(kind), true) => Ok(Slot {
                kind,
                hard_start: f.hard_start,
            }),
            (None, _) => {
                Err("a slot needs one of smart_block, hard_item, stopset, webstream, live".into())
            }
            (Some(_), false) => Err(
                "a slot has exactly one of smart_block, hard_item, stopset, webstream, live".into(),
            ),
        }
    }
}

impl SlotKind {
    /// Short name of the kind, as used in timelines (`smart_block`, `stopset`, …).
    pub fn name(&self) -> &'static str {
        match self {
            SlotKind::SmartBlock { .. } => "smart_block",
            SlotKind::HardItem { .. } => "hard_item",
            SlotKind::Stopset { .. } => "stopset",
            SlotKind::Webstream { .. } => "webstream",
            SlotKind::Live { .. } => "live",
        }
    }
}

impl Clock {
    /// Checks the slots; references to blocks and media are checked by the station.
    pub fn validate(&self, at: &str) -> Result<()> {
        check_id(&format!("{at}.id"), self.id.as_str())?;
        if self.slots.is_empty() {
            return Err(Error::invalid(
                format!("{at}.slots"),
                "[]",
                "a clock needs at least one slot",
            ));
        }
        let mut last_hard: Option<Millis> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            let s_at = format!("{at}.slots[{i}]");
            if let Some(h) = slot.hard_start {
                if h >= HOUR {
                    return Err(Error::invalid(
                        format!("{s_at}.hard_start"),
                        h,
                        "must lie within the hour (below 60:00)",
                    ));
                }
                if let Some(prev) = last_hard {
                    if h <= prev {
                        return Err(Error::invalid(
                            format!("{s_at}.hard_start"),
                            h,
                            format!("must come after the previous hard start ({prev})"),
                        ));
                    }
                }
                last_hard = Some(h);
            }
            match &slot.kind {
                SlotKind::SmartBlock {
                    duration: Some(d), ..
                } if *d == Millis::ZERO || *d > HOUR => {
                    return Err(Error::invalid(
                        format!("{s_at}.smart_block.duration"),
                        d,
                        "must be longer than zero and at most an hour",
                    ));
                }
                SlotKind::Stopset { items } if items.is_empty() => {
                    return Err(Error::invalid(
                        format!("{s_at}.stopset.items"),
                        "[]",
                        "empty stopset",
                    ));
                }
                SlotKind::Webstream { duration, .. } | SlotKind::Live { duration, .. }
                    if *duration == Millis::ZERO || *duration > HOUR =>
                {
                    return Err(Error::invalid(
                        format!("{s_at}.{}.duration", slot.kind.name()),
                        duration,
                        "must be longer than zero and at most an hour",
                    ));
                }
                SlotKind::Live { name, .. } if name.trim().is_empty() => {
                    return Err(Error::invalid(
                        format!("{s_at}.live.name"),
                        "\"\"",
                        "needs a name",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Which clock runs in each of the 168 local hours of the week, like Rivendell's grid.
///
/// Written as a default clock plus rules; later rules override earlier ones:
///
/// ```yaml
/// grid:
///   default: music
///   rules:
///     - { days: [mon, tue, wed, thu, fri], from: 6, to: 10, clock: breakfast }
///     - { days: [sun], from: 0, to: 24, clock: sunday }
/// ```
///
/// An hour without a clock is filled from the station's filler block, with a diagnostic.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct WeeklyGrid {
    /// The clock for hours no rule covers.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub default: Option<ClockId>,
    /// Assignments, applied in order.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub rules: Vec<GridRule>,
}

/// Assigns a clock to a range of hours on some days of the week.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct GridRule {
    /// The days (`mon` … `sun`); every day when empty.
    #[cfg_attr(feature = "serde", serde(default))]
    pub days: Vec<Weekday>,
    /// First local hour (0–23).
    #[cfg_attr(feature = "serde", serde(default))]
    pub from: u32,
    /// Local hour after the last one (1–24).
    #[cfg_attr(feature = "serde", serde(default = "hours_in_day"))]
    pub to: u32,
    /// The clock.
    pub clock: ClockId,
}

#[cfg(feature = "serde")]
fn hours_in_day() -> u32 {
    24
}

/// Replaces the grid on one local date (a holiday, a special event).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct DatedOverride {
    /// The local date.
    pub date: NaiveDate,
    /// First local hour (0–23).
    #[cfg_attr(feature = "serde", serde(default))]
    pub from: u32,
    /// Local hour after the last one (1–24).
    #[cfg_attr(feature = "serde", serde(default = "hours_in_day"))]
    pub to: u32,
    /// The clock.
    pub clock: ClockId,
}

pub(crate) fn check_hours(at: &str, from: u32, to: u32) -> Result<()> {
    if from > 23 {
        return Err(Error::invalid(
            format!("{at}.from"),
            from,
            "an hour from 0 to 23",
        ));
    }
    if to > 24 || to <= from {
        return Err(Error::invalid(
            format!("{at}.to"),
            to,
            format!("an hour after `from` ({from}) and at most 24"),
        ));
    }
    Ok(())
}

impl WeeklyGrid {
    /// The 168 hours, Monday 00:00 first, as indices into `clocks` resolved by `resolve`.
    pub(crate) fn compile<T: Copy>(
        &self,
        at: &str,
        mut resolve: impl FnMut(&str, &ClockId) -> Result<T>,
    ) -> Result<Vec<Option<T>>> {
        let default = match &self.default {
            Some(c) => Some(resolve(&format!("{at}.default"), c)?),
            None => None,
        };
        let mut hours = vec![default; 168];
        for (i, rule) in self.rules.iter().enumerate() {
            let r_at = format!("{at}.rules[{i}]");
            check_hours(&r_at, rule.from, rule.to)?;
            let clock = resolve(&format!("{r_at}.clock"), &rule.clock)?;
            let days: Vec<u32> = if rule.days.is_empty() {
                (0..7).collect()
            } else {
                rule.days.iter().map(|d| d.num_days_from_monday()).collect()
            };
            for d in days {
                for h in rule.from..rule.to {
                    hours[(d * 24 + h) as usize] = Some(clock);
                }
            }
        }
        Ok(hours)
    }
}
