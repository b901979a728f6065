//! Diagnostics: what the planner had to work around, and where.

use chrono::{DateTime, Utc};

use crate::ids::{BlockId, ClockId, MediaId, ShowId};
use crate::time::Millis;
use crate::timeline::Relaxation;

/// How much a diagnostic matters to an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Severity {
    /// Expected behaviour worth knowing (a trimmed song before a hard start).
    Info,
    /// The plan deviates from what was configured (a rule relaxed, a slot dropped).
    Warning,
    /// Nothing could be planned for a stretch: the executor's fallback plays.
    Error,
}

/// Something the planner noticed or worked around, at a time on the timeline.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Diagnostic {
    /// Where on the timeline.
    pub at: DateTime<Utc>,
    /// How much it matters.
    pub severity: Severity,
    /// What happened.
    pub kind: DiagnosticKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// No clock is assigned to this local hour; the filler played.
    NoClock {
        /// Local weekday, Monday = 0.
        weekday: u32,
        /// Local hour.
        hour: u32,
    },
    /// A block's rules were loosened so the air could be filled.
    Relaxed {
        /// The block whose rules gave way (the entry's provenance names the block that
        /// supplied the item, which differs when it was borrowed from a filler).
        block: BlockId,
        /// What was loosened (the last step taken).
        relaxation: Relaxation,
    },
    /// Nothing at all could be chosen; the fallback tier covers the stretch.
    NoMedia {
        /// How long the fallback covers.
        length: Millis,
    },
    /// An item was cut at a hard boundary.
    Trimmed {
        /// The item.
        media: MediaId,
        /// How much of it was cut.
        cut: Millis,
        /// Whether it was a fixed item (hard item, stopset, show list) rather than a block pick.
        fixed: bool,
    },
    /// A clock slot did not fit before the next hard start and was left out.
    SlotDropped {
        /// The clock.
        clock: ClockId,
        /// The slot index.
        slot: u32,
    },
    /// The slots before a hard start came up short; filler made up the rest.
    Underfilled {
        /// The clock.
        clock: ClockId,
        /// How long the filler ran.
        filled: Millis,
    },
    /// Two shows overlap; the later one is shortened or dropped.
    ShowConflict {
        /// The show that gave way.
        show: ShowId,
        /// The show that kept its time.
        with: ShowId,
    },
    /// A show's local start time does not exist that day (skipped by a DST change) and it starts
    /// when the clocks jump, or occurs twice and the first was taken.
    ShowTimeAdjusted {
        /// The show.
        show: ShowId,
        /// `true` when the time was skipped, `false` when it was ambiguous.
        skipped: bool,
    },
    /// A show's content did not fill it; its underbooked policy filled the rest.
    Underbooked {
        /// The show.
        show: ShowId,
        /// How long the policy filled.
        filled: Millis,
    },
    /// A show's content did not fit; items were cut or dropped by its overbooked policy.
    Overbooked {
        /// The show.
        show: ShowId,
        /// How many items never played.
        dropped: u32,
    },
    /// The play history mentions items that are not in the library; those plays were ignored.
    UnknownHistory {
        /// How many plays.
        plays: u32,
    },
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?}: ",
            self.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            self.severity
        )?;
        match &self.kind {
            DiagnosticKind::NoClock { weekday, hour } => {
                let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][*weekday as usize % 7];
                write!(
                    f,
                    "no clock for {day} {hour:02}:00 local; the station filler played"
                )
            }
            DiagnosticKind::Relaxed { block, relaxation } => {
                write!(
                    f,
                    "smart block `{block}`: {} to fill the air",
                    relaxation.describe()
                )
            }
            DiagnosticKind::NoMedia { length } => {
                write!(
                    f,
                    "nothing in the library can play; fallback tier for {length}"
                )
            }
            DiagnosticKind::Trimmed { media, cut, fixed } => write!(
                f,
                "{} `{media}` cut {cut} short at a hard boundary",
                if *fixed { "fixed item" } else { "item" }
            ),
            DiagnosticKind::SlotDropped { clock, slot } => {
                write!(
                    f,
                    "clock `{clock}` slot {} did not fit and was left out",
                    slot + 1
                )
            }
            DiagnosticKind::Underfilled { clock, filled } => {
                write!(f, "clock `{clock}` came up short; filler ran for {filled}")
            }
            DiagnosticKind::ShowConflict { show, with } => {
                write!(f, "show `{show}` overlaps `{with}` and gave way")
            }
            DiagnosticKind::ShowTimeAdjusted {
                show,
                skipped: true,
            } => write!(
                f,
                "show `{show}` starts at a local time skipped by a DST change; it starts when the clocks jump"
            ),
            DiagnosticKind::ShowTimeAdjusted {
                show,
                skipped: false,
            } => write!(
                f,
                "show `{show}` starts at a local time that occurs twice; the first was taken"
            ),
            DiagnosticKind::Underbooked { show, filled } => {
                write!(
                    f,
                    "show `{show}` ran short; its underbooked policy filled {filled}"
                )
            }
            DiagnosticKind::Overbooked { show, dropped } => {
                write!(
                    f,
                    "show `{show}` was overbooked; {dropped} item(s) never played"
                )
            }
            DiagnosticKind::UnknownHistory { plays } => {
                write!(
                    f,
                    "{plays} history play(s) name items not in the library and were ignored"
                )
            }
        }
    }
}
