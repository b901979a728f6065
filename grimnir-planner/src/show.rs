//! Shows: calendar events that take over the air from the clocks for a fixed span.

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};

use crate::error::{Error, Result};
use crate::ids::{BlockId, MediaId, ShowId, WebstreamId, check_id};
use crate::time::Millis;

/// A calendar event with fixed local start and end times.
///
/// ```yaml
/// - id: jazz-night
///   name: Jazz Night
///   repeat: { weekly: [fri] }
///   starts_on: 2026-01-02
///   start: "20:00"
///   end: "22:00"            # or `duration: 2h`; an end at or before the start is the next day
///   content: { smart_block: jazz }
///   underbooked: filler     # what fills the rest when the content runs short
///   overbooked: trim        # what happens to content that runs past the end
/// ```
///
/// While a show is on, its span is a hard boundary at both ends: whatever plays into its start is
/// trimmed with a fade, and clocks resume at the show's end mid-hour.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Show {
    /// Unique id within the station.
    pub id: ShowId,
    /// Name shown to people.
    pub name: String,
    /// Which dates it runs on.
    #[cfg_attr(feature = "serde", serde(default))]
    pub repeat: Repeat,
    /// First local date it may run.
    pub starts_on: NaiveDate,
    /// Last local date it may start (included); no end when absent.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub ends_on: Option<NaiveDate>,
    /// Local start time.
    pub start: NaiveTime,
    /// Local end time; at or before `start` means the next day. Give this or `duration`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub end: Option<NaiveTime>,
    /// Length in real time; give this or `end`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub duration: Option<Millis>,
    /// What goes on air.
    pub content: ShowContent,
    /// What fills the show when its content is shorter than the show.
    #[cfg_attr(feature = "serde", serde(default))]
    pub underbooked: Underbooked,
    /// What happens to content that would run past the show's end.
    #[cfg_attr(feature = "serde", serde(default))]
    pub overbooked: Overbooked,
}

/// The dates a show runs on.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Repeat {
    /// Only on `starts_on`.
    #[default]
    Once,
    /// On these weekdays every week.
    Weekly(Vec<Weekday>),
    /// On these weekdays every `n` weeks, counting from the week (Monday to Sunday) that holds
    /// `starts_on`.
    EveryNWeeks {
        /// Weeks between runs (2 = fortnightly).
        n: u32,
        /// The weekdays.
        days: Vec<Weekday>,
    },
    /// Once a month.
    Monthly(MonthDay),
}

/// Which day of the month a monthly show runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum MonthDay {
    /// This day of the month (1–31); months without it are skipped.
    Day(u32),
    /// The `nth` (1–4) or last (`-1`) such weekday of the month.
    Nth {
        /// 1–4, or -1 for the last.
        nth: i32,
        /// The weekday.
        weekday: Weekday,
    },
}

/// What a show puts on air.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ShowContent {
    /// A live programme (priority tier 2): one entry spanning the show.
    Live,
    /// Items chosen by a smart block, filling the show.
    SmartBlock(BlockId),
    /// A fixed running order.
    List(Vec<MediaId>),
    /// A relayed external stream spanning the show.
    Webstream(WebstreamId),
}

/// Policy for a show whose content ends before the show does.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Underbooked {
    /// Fill the rest from the station's filler block.
    #[default]
    Filler,
    /// Fill the rest from this smart block.
    SmartBlock(BlockId),
    /// Play a fixed list again from the top (smart-block shows never run short).
    Repeat,
}

/// Policy for content that would run past a show's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Overbooked {
    /// LibreTime's boundary rule: the item crossing the end is cut there with a fade, and later
    /// items never play.
    #[default]
    Trim,
    /// The crossing item is left out whole (nothing is cut mid-item); the rest of the show is
    /// filled by the underbooked policy.
    DropCrossing,
}

const MAX_SHOW: Millis = Millis::from_minutes(24 * 60);

impl Show {
    /// Checks the fields; references are checked by the station.
    pub fn validate(&self, at: &str) -> Result<()> {
        check_id(&format!("{at}.id"), self.id.as_str())?;
        match (self.end, self.duration) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    format!("{at}.duration"),
                    self.duration.unwrap_or_default(),
                    "give either `end` or `duration`, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    format!("{at}.end"),
                    "none",
                    "give `end` or `duration`",
                ));
            }
            (None, Some(d)) if d == Millis::ZERO || d > MAX_SHOW => {
                return Err(Error::invalid(
                    format!("{at}.duration"),
                    d,
                    "must be longer than zero and at most 24 hours",
                ));
            }
            _ => {}
        }
        if let Some(until) = self.ends_on {
            if until < self.starts_on {
                return Err(Error::invalid(
                    format!("{at}.ends_on"),
                    until,
                    format!("comes before starts_on ({})", self.starts_on),
                ));
            }
        }
        match &self.repeat {
            Repeat::Weekly(days) if days.is_empty() => {
                return Err(Error::invalid(
                    format!("{at}.repeat.weekly"),
                    "[]",
                    "needs a weekday",
                ));
            }
            Repeat::EveryNWeeks { n, days } => {
                if *n == 0 || *n > 52 {
                    return Err(Error::invalid(
                        format!("{at}.repeat.every_n_weeks.n"),
                        n,
                        "1 to 52",
                    ));
                }
                if days.is_empty() {
                    return Err(Error::invalid(
                        format!("{at}.repeat.every_n_weeks.days"),
                        "[]",
                        "needs a weekday",
                    ));
                }
            }
            Repeat::Monthly(MonthDay::Day(d)) if !(1..=31).contains(d) => {
                return Err(Error::invalid(
                    format!("{at}.repeat.monthly.day"),
                    d,
                    "1 to 31",
                ));
            }
            Repeat::Monthly(MonthDay::Nth { nth, .. }) if !matches!(nth, 1..=4 | -1) => {
                return Err(Error::invalid(
                    format!("{at}.repeat.monthly.nth.nth"),
                    nth,
                    "1 to 4, or -1 for the last",
                ));
            }
            _ => {}
        }
        if let ShowContent::List(items) = &self.content {
            if items.is_empty() {
                return Err(Error::invalid(
                    format!("{at}.content.list"),
                    "[]",
                    "empty running order",
                ));
            }
        }
        if self.underbooked == Underbooked::Repeat && !matches!(self.content, ShowContent::List(_))
        {
            return Err(Error::invalid(
                format!("{at}.underbooked"),
                "repeat",
                "only a fixed list can be repeated",
            ));
        }
        Ok(())
    }

    /// Whether the show runs on local date `date`.
    pub fn runs_on(&self, date: NaiveDate) -> bool {
        if date < self.starts_on || self.ends_on.is_some_and(|e| date > e) {
            return false;
        }
        match &self.repeat {
            Repeat::Once => date == self.starts_on,
            Repeat::Weekly(days) => days.contains(&date.weekday()),
            Repeat::EveryNWeeks { n, days } => {
                let week = |d: NaiveDate| {
                    (d - chrono::TimeDelta::days(i64::from(d.weekday().num_days_from_monday())))
                        .num_days_from_ce()
                        .div_euclid(7)
                };
                days.contains(&date.weekday())
                    && (week(date) - week(self.starts_on)).rem_euclid(*n as i32) == 0
            }
            Repeat::Monthly(MonthDay::Day(d)) => date.day() == *d,
            Repeat::Monthly(MonthDay::Nth { nth, weekday }) => {
                if date.weekday() != *weekday {
                    return false;
                }
                if *nth == -1 {
                    (date + chrono::TimeDelta::days(7)).month() != date.month()
                } else {
                    (date.day() - 1) / 7 + 1 == *nth as u32
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(repeat: Repeat) -> Show {
        Show {
            id: "s".into(),
            name: "S".into(),
            repeat,
            starts_on: NaiveDate::from_ymd_opt(2026, 1, 7).unwrap(), // a Wednesday
            ends_on: None,
            start: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            end: Some(NaiveTime::from_hms_opt(22, 0, 0).unwrap()),
            duration: None,
            content: ShowContent::Live,
            underbooked: Underbooked::Filler,
            overbooked: Overbooked::Trim,
        }
    }

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    #[test]
    fn recurrences() {
        let once = show(Repeat::Once);
        assert!(once.runs_on(d(1, 7)) && !once.runs_on(d(1, 14)));
        let fortnightly = show(Repeat::EveryNWeeks {
            n: 2,
            days: vec![Weekday::Wed, Weekday::Fri],
        });
        assert!(fortnightly.runs_on(d(1, 7)) && fortnightly.runs_on(d(1, 9)));
        assert!(!fortnightly.runs_on(d(1, 14)) && fortnightly.runs_on(d(1, 21)));
        assert!(!fortnightly.runs_on(d(1, 5)), "before starts_on");
        let first_friday = show(Repeat::Monthly(MonthDay::Nth {
            nth: 1,
            weekday: Weekday::Fri,
        }));
        assert!(first_friday.runs_on(d(2, 6)) && !first_friday.runs_on(d(2, 13)));
        let last_friday = show(Repeat::Monthly(MonthDay::Nth {
            nth: -1,
            weekday: Weekday::Fri,
        }));
        assert!(last_friday.runs_on(d(2, 27)) && !last_friday.runs_on(d(2, 20)));
        let thirty_first = show(Repeat::Monthly(MonthDay::Day(31)));
        assert!(thirty_first.runs_on(d(3, 31)) && !thirty_first.runs_on(d(4, 30)));
    }

    #[test]
    fn validation() {
        let mut s = show(Repeat::Weekly(vec![]));
        assert!(
            s.validate("shows[0]")
                .unwrap_err()
                .to_string()
                .contains("shows[0].repeat.weekly")
        );
        s.repeat = Repeat::Once;
        s.duration = Some(Millis::from_minutes(30));
        assert!(
            s.validate("shows[0]").is_err(),
            "end and duration both given"
        );
    }
}
