//! Smart block filters: conditions over every metadata field, combined with AND, OR and NOT.
//!
//! In a station file a filter is a small tree:
//!
//! ```yaml
//! filter:
//!   all:
//!     - genre: { is: rock }
//!     - year: { between: [1990, 1999] }
//!     - artist: { is_not: "The Rolling Stones" }
//!     - added_at: { within_last: 30d }     # relative to the plan's `now`
//!     - any:
//!         - tags: { include: [power, recurrent] }
//!         - energy: { gt: 0.7 }
//! ```
//!
//! Text comparisons ignore case. A condition on a field the item does not have is false, except
//! the negative ones: `is_not` (text), `exclude` (tags) and `not_within` (dates; never played
//! counts as not within). `duration` compares the playable length (between cue points) in
//! seconds. `last_played` reads the item's own field, as the library knew it when the plan was
//! made; plays within the plan itself are governed by the separation rules, not by filters.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::media::MediaItem;
use crate::time::{Instant, Millis, to_instant};

/// Deepest nesting of `all`/`any`/`not` accepted; deeper trees are refused rather than risk
/// exhausting the stack on hostile input.
pub const MAX_FILTER_DEPTH: usize = 32;

/// A condition on media items.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Filter {
    /// Every inner filter holds.
    All(Vec<Filter>),
    /// At least one inner filter holds.
    Any(Vec<Filter>),
    /// The inner filter does not hold.
    Not(Box<Filter>),
    /// Compares the id.
    Id(TextOp),
    /// Compares the title.
    Title(TextOp),
    /// Compares each artist; holds when any artist matches (`is_not`: when none is equal).
    Artist(TextOp),
    /// Compares the album.
    Album(TextOp),
    /// Compares the genre.
    Genre(TextOp),
    /// Compares the mood.
    Mood(TextOp),
    /// Compares the playable length in seconds.
    Duration(NumberOp),
    /// Compares the release year.
    Year(NumberOp),
    /// Compares the tempo.
    Bpm(NumberOp),
    /// Compares the energy (0–1).
    Energy(NumberOp),
    /// Compares the analysed loudness in LUFS.
    Lufs(NumberOp),
    /// Compares when the item was added.
    AddedAt(DateOp),
    /// Compares when the item last played.
    LastPlayed(DateOp),
    /// Looks at the tags.
    Tags(TagOp),
}

/// A comparison on a text field, ignoring case.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TextOp {
    /// Equal.
    Is(String),
    /// Not equal (also true when the field is empty).
    IsNot(String),
    /// Contains the text.
    Contains(String),
    /// Starts with the text.
    StartsWith(String),
    /// Ends with the text.
    EndsWith(String),
}

/// A comparison on a number field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum NumberOp {
    /// Equal.
    Eq(f64),
    /// Less than.
    Lt(f64),
    /// Greater than.
    Gt(f64),
    /// From the first to the second value, both included.
    Between([f64; 2]),
}

/// A comparison on a date field. Relative forms count back from the plan's `now`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DateOp {
    /// Strictly before the instant.
    Before(DateTime<Utc>),
    /// Strictly after the instant.
    After(DateTime<Utc>),
    /// From the first to the second instant, both included.
    Between([DateTime<Utc>; 2]),
    /// No longer ago than this (e.g. added in the last 30 days).
    WithinLast(Millis),
    /// Longer ago than this, or never (e.g. not played in the last 3 hours).
    NotWithin(Millis),
}

/// A condition on tags (compared ignoring case).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TagOp {
    /// Has at least one of these tags.
    Include(Vec<String>),
    /// Has all of these tags.
    IncludeAll(Vec<String>),
    /// Has none of these tags.
    Exclude(Vec<String>),
}

impl Filter {
    /// Checks the tree; `at` is its path, e.g. `smart_blocks[0].filter`.
    pub fn validate(&self, at: &str) -> Result<()> {
        self.validate_depth(at, 0)
    }

    fn validate_depth(&self, at: &str, depth: usize) -> Result<()> {
        if depth > MAX_FILTER_DEPTH {
            return Err(Error::invalid(
                at,
                "…",
                format!("filters may nest at most {MAX_FILTER_DEPTH} deep"),
            ));
        }
        match self {
            Filter::All(list) | Filter::Any(list) => {
                let name = if matches!(self, Filter::All(_)) {
                    "all"
                } else {
                    "any"
                };
                if list.is_empty() {
                    return Err(Error::invalid(
                        format!("{at}.{name}"),
                        "[]",
                        "needs a condition",
                    ));
                }
                for (i, f) in list.iter().enumerate() {
                    f.validate_depth(&format!("{at}.{name}[{i}]"), depth + 1)?;
                }
                Ok(())
            }
            Filter::Not(inner) => inner.validate_depth(&format!("{at}.not"), depth + 1),
            Filter::Id(op) => op.validate(&format!("{at}.id")),
            Filter::Title(op) => op.validate(&format!("{at}.title")),
            Filter::Artist(op) => op.validate(&format!("{at}.artist")),
            Filter::Album(op) => op.validate(&format!("{at}.album")),
            Filter::Genre(op) => op.validate(&format!("{at}.genre")),
            Filter::Mood(op) => op.validate(&format!("{at}.mood")),
            Filter::Duration(op) => op.validate(&format!("{at}.duration")),
            Filter::Year(op) => op.validate(&format!("{at}.year")),
            Filter::Bpm(op) => op.validate(&format!("{at}.bpm")),
            Filter::Energy(op) => op.validate(&format!("{at}.energy")),
            Filter::Lufs(op) => op.validate(&format!("{at}.lufs")),
            Filter::AddedAt(op) => op.validate(&format!("{at}.added_at")),
            Filter::LastPlayed(op) => op.validate(&format!("{at}.last_played")),
            Filter::Tags(op) => op.validate(&format!("{at}.tags")),
        }
    }

    /// Whether `item` satisfies the filter, with relative dates counted back from `now`.
    ///
    /// This is the reference semantics. The planner evaluates a pre-lowercased form of the same
    /// rules; a test checks that the two agree.
    pub fn matches(&self, item: &MediaItem, now: DateTime<Utc>) -> bool {
        self.compile()
            .matches(&ItemText::of(item), item, to_instant(now))
    }

    /// Whether the answer depends on `now` (then a pool cannot be reused across plans).
    pub(crate) fn uses_now(&self) -> bool {
        match self {
            Filter::All(l) | Filter::Any(l) => l.iter().any(Filter::uses_now),
            Filter::Not(f) => f.uses_now(),
            Filter::AddedAt(op) | Filter::LastPlayed(op) => {
                matches!(op, DateOp::WithinLast(_) | DateOp::NotWithin(_))
            }
            _ => false,
        }
    }

    pub(crate) fn compile(&self) -> Compiled {
        let text = |op: &TextOp| match op {
            TextOp::Is(s) => CText::Is(s.to_lowercase()),
            TextOp::IsNot(s) => CText::IsNot(s.to_lowercase()),
            TextOp::Contains(s) => CText::Contains(s.to_lowercase()),
            TextOp::StartsWith(s) => CText::StartsWith(s.to_lowercase()),
            TextOp::EndsWith(s) => CText::EndsWith(s.to_lowercase()),
        };
        let lower = |v: &Vec<String>| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
        match self {
            Filter::All(l) => Compiled::All(l.iter().map(Filter::compile).collect()),
            Filter::Any(l) => Compiled::Any(l.iter().map(Filter::compile).collect()),
            Filter::Not(f) => Compiled::Not(Box::new(f.compile())),
            Filter::Id(op) => Compiled::Text(TextField::Id, text(op)),
            Filter::Title(op) => Compiled::Text(TextField::Title, text(op)),
            Filter::Artist(op) => Compiled::Text(TextField::Artist, text(op)),
            Filter::Album(op) => Compiled::Text(TextField::Album, text(op)),
            Filter::Genre(op) => Compiled::Text(TextField::Genre, text(op)),
            Filter::Mood(op) => Compiled::Text(TextField::Mood, text(op)),
            Filter::Duration(op) => Compiled::Number(NumberField::Duration, op.clone()),
            Filter::Year(op) => Compiled::Number(NumberField::Year, op.clone()),
            Filter::Bpm(op) => Compiled::Number(NumberField::Bpm, op.clone()),
            Filter::Energy(op) => Compiled::Number(NumberField::Energy, op.clone()),
            Filter::Lufs(op) => Compiled::Number(NumberField::Lufs, op.clone()),
            Filter::AddedAt(op) => Compiled::Date(DateField::Added, op.clone()),
            Filter::LastPlayed(op) => Compiled::Date(DateField::LastPlayed, op.clone()),
            Filter::Tags(TagOp::Include(t)) => Compiled::TagsAny(lower(t)),
            Filter::Tags(TagOp::IncludeAll(t)) => Compiled::TagsAll(lower(t)),
            Filter::Tags(TagOp::Exclude(t)) => Compiled::Not(Box::new(Compiled::TagsAny(lower(t)))),
        }
    }
}

impl TextOp {
    fn validate(&self, at: &str) -> Result<()> {
        let (name, s) = match self {
            TextOp::Is(s) => ("is", s),
            TextOp::IsNot(s) => ("is_not", s),
            TextOp::Contains(s) => ("contains", s),
            TextOp::StartsWith(s) => ("starts_with", s),
            TextOp::EndsWith(s) => ("ends_with", s),
        };
        if s.is_empty() {
            return Err(Error::invalid(
                format!("{at}.{name}"),
                "\"\"",
                "needs some text to compare",
            ));
        }
        Ok(())
    }
}

impl NumberOp {
    fn validate(&self, at: &str) -> Result<()> {
        let (name, vals): (&str, &[f64]) = match self {
            NumberOp::Eq(v) => ("eq", std::slice::from_ref(v)),
            NumberOp::Lt(v) => ("lt", std::slice::from_ref(v)),
            NumberOp::Gt(v) => ("gt", std::slice::from_ref(v)),
            NumberOp::Between(r) => ("between", r),
        };
        if let Some(bad) = vals.iter().find(|v| !v.is_finite()) {
            return Err(Error::invalid(
                format!("{at}.{name}"),
                bad,
                "must be a finite number",
            ));
        }
        if let NumberOp::Between([lo, hi]) = self {
            if lo > hi {
                return Err(Error::invalid(
                    format!("{at}.between"),
                    format!("[{lo}, {hi}]"),
                    "the first value must not exceed the second",
                ));
            }
        }
        Ok(())
    }

    fn holds(&self, v: f64) -> bool {
        match *self {
            NumberOp::Eq(x) => v == x,
            NumberOp::Lt(x) => v < x,
            NumberOp::Gt(x) => v > x,
            NumberOp::Between([lo, hi]) => lo <= v && v <= hi,
        }
    }
}

impl DateOp {
    fn validate(&self, at: &str) -> Result<()> {
        if let DateOp::Between([a, b]) = self {
            if a > b {
                return Err(Error::invalid(
                    format!("{at}.between"),
                    format!("[{a}, {b}]"),
                    "the first date must not come after the second",
                ));
            }
        }
        Ok(())
    }

    fn holds(&self, v: Option<Instant>, now: Instant) -> bool {
        match (self, v) {
            (DateOp::NotWithin(_), None) => true,
            (_, None) => false,
            (DateOp::Before(t), Some(v)) => v < to_instant(*t),
            (DateOp::After(t), Some(v)) => v > to_instant(*t),
            (DateOp::Between([a, b]), Some(v)) => to_instant(*a) <= v && v <= to_instant(*b),
            (DateOp::WithinLast(d), Some(v)) => v >= now.saturating_sub(d.signed()),
            (DateOp::NotWithin(d), Some(v)) => v < now.saturating_sub(d.signed()),
        }
    }
}

impl TagOp {
    fn validate(&self, at: &str) -> Result<()> {
        let (name, tags) = match self {
            TagOp::Include(t) => ("include", t),
            TagOp::IncludeAll(t) => ("include_all", t),
            TagOp::Exclude(t) => ("exclude", t),
        };
        if tags.is_empty() {
            return Err(Error::invalid(
                format!("{at}.{name}"),
                "[]",
                "needs at least one tag",
            ));
        }
        if let Some(i) = tags.iter().position(|t| t.trim().is_empty()) {
            return Err(Error::invalid(
                format!("{at}.{name}[{i}]"),
                "\"\"",
                "empty tag",
            ));
        }
        Ok(())
    }
}

/// Lower-cased text fields of an item, computed once per item by the planner's index.
#[derive(Debug, Clone)]
pub(crate) struct ItemText {
    pub id: String,
    pub title: String,
    pub artists: Vec<String>,
    pub album: String,
    pub genre: String,
    pub mood: String,
    /// Sorted, lower-cased.
    pub tags: Vec<String>,
}

impl ItemText {
    pub(crate) fn of(item: &MediaItem) -> Self {
        let mut tags: Vec<String> = item.tags.iter().map(|t| t.to_lowercase()).collect();
        tags.sort();
        tags.dedup();
        ItemText {
            id: item.id.as_str().to_lowercase(),
            title: item.title.to_lowercase(),
            artists: item.artists.iter().map(|a| a.to_lowercase()).collect(),
            album: item.album.as_deref().unwrap_or("").to_lowercase(),
            genre: item.genre.as_deref().unwrap_or("").to_lowercase(),
            mood: item.mood.as_deref().unwrap_or("").to_lowercase(),
            tags,
        }
    }

    pub(crate) fn has_tag(&self, tag: &str) -> bool {
        self.tags.binary_search_by(|t| t.as_str().cmp(tag)).is_ok()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum TextField {
    Id,
    Title,
    Artist,
    Album,
    Genre,
    Mood,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum NumberField {
    Duration,
    Year,
    Bpm,
    Energy,
    Lufs,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum DateField {
    Added,
    LastPlayed,
}

#[derive(Debug, Clone)]
pub(crate) enum CText {
    Is(String),
    IsNot(String),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
}

impl CText {
    fn positive(&self, v: &str) -> bool {
        match self {
            CText::Is(s) | CText::IsNot(s) => v == s,
            CText::Contains(s) => v.contains(s.as_str()),
            CText::StartsWith(s) => v.starts_with(s.as_str()),
            CText::EndsWith(s) => v.ends_with(s.as_str()),
        }
    }
}

/// A filter with its text lower-cased once, ready to run over many items.
#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    All(Vec<Compiled>),
    Any(Vec<Compiled>),
    Not(Box<Compiled>),
    Text(TextField, CText),
    Number(NumberField, NumberOp),
    Date(DateField, DateOp),
    TagsAny(Vec<String>),
    TagsAll(Vec<String>),
}

impl Compiled {
    pub(crate) fn matches(&self, text: &ItemText, item: &MediaItem, now: Instant) -> bool {
        match self {
            Compiled::All(l) => l.iter().all(|f| f.matches(text, item, now)),
            Compiled::Any(l) => l.iter().any(|f| f.matches(text, item, now)),
            Compiled::Not(f) => !f.matches(text, item, now),
            Compiled::Text(field, op) => {
                let hit = match field {
                    TextField::Id => op.positive(&text.id),
                    TextField::Title => op.positive(&text.title),
                    TextField::Artist => text.artists.iter().any(|a| op.positive(a)),
                    TextField::Album => op.positive(&text.album),
                    TextField::Genre => op.positive(&text.genre),
                    TextField::Mood => op.positive(&text.mood),
                };
                if matches!(op, CText::IsNot(_)) {
                    !hit
                } else {
                    hit
                }
            }
            Compiled::Number(field, op) => {
                let v = match field {
                    NumberField::Duration => Some(item.playable().as_secs_f64()),
                    NumberField::Year => item.year.map(f64::from),
                    NumberField::Bpm => item.bpm,
                    NumberField::Energy => item.energy,
                    NumberField::Lufs => item.lufs,
                };
                v.is_some_and(|v| op.holds(v))
            }
            Compiled::Date(field, op) => {
                let v = match field {
                    DateField::Added => item.added_at,
                    DateField::LastPlayed => item.last_played,
                };
                op.holds(v.map(to_instant), now)
            }
            Compiled::TagsAny(tags) => tags.iter().any(|t| text.has_tag(t)),
            Compiled::TagsAll(tags) => tags.iter().all(|t| text.has_tag(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    fn song() -> MediaItem {
        MediaItem {
            album: Some("Blue Lines".into()),
            genre: Some("Trip-Hop".into()),
            year: Some(1991),
            energy: Some(0.4),
            added_at: Some("2026-05-20T00:00:00Z".parse().unwrap()),
            ..MediaItem::new("m1", "Unfinished Sympathy", Millis::from_secs(308))
                .by("Massive Attack")
                .tagged("Gold")
        }
    }

    #[test]
    fn text_ops_ignore_case() {
        let s = song();
        assert!(Filter::Artist(TextOp::Is("massive attack".into())).matches(&s, now()));
        assert!(Filter::Title(TextOp::StartsWith("UNFIN".into())).matches(&s, now()));
        assert!(Filter::Album(TextOp::EndsWith("lines".into())).matches(&s, now()));
        assert!(Filter::Genre(TextOp::Contains("hop".into())).matches(&s, now()));
        assert!(!Filter::Artist(TextOp::IsNot("Massive Attack".into())).matches(&s, now()));
        assert!(Filter::Mood(TextOp::IsNot("sad".into())).matches(&s, now()));
    }

    #[test]
    fn numbers_dates_and_tags() {
        let s = song();
        assert!(Filter::Year(NumberOp::Between([1990.0, 1999.0])).matches(&s, now()));
        assert!(
            !Filter::Bpm(NumberOp::Gt(0.0)).matches(&s, now()),
            "missing field is false"
        );
        assert!(Filter::Duration(NumberOp::Gt(300.0)).matches(&s, now()));
        let month = Millis::from_secs(30 * 86_400);
        assert!(Filter::AddedAt(DateOp::WithinLast(month)).matches(&s, now()));
        assert!(
            Filter::LastPlayed(DateOp::NotWithin(month)).matches(&s, now()),
            "never played"
        );
        assert!(Filter::Tags(TagOp::Include(vec!["gold".into(), "new".into()])).matches(&s, now()));
        assert!(
            !Filter::Tags(TagOp::IncludeAll(vec!["gold".into(), "new".into()])).matches(&s, now())
        );
        assert!(!Filter::Tags(TagOp::Exclude(vec!["GOLD".into()])).matches(&s, now()));
        let f = Filter::All(vec![
            Filter::Energy(NumberOp::Lt(0.5)),
            Filter::Any(vec![
                Filter::Year(NumberOp::Eq(1991.0)),
                Filter::Year(NumberOp::Eq(2001.0)),
            ]),
            Filter::Not(Box::new(Filter::Genre(TextOp::Is("pop".into())))),
        ]);
        assert!(f.matches(&s, now()));
    }

    #[test]
    fn validation_names_the_path() {
        let f = Filter::All(vec![Filter::Year(NumberOp::Between([2000.0, 1990.0]))]);
        let e = f
            .validate("smart_blocks[1].filter")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("smart_blocks[1].filter.all[0].year.between"),
            "{e}"
        );
        let mut deep = Filter::Year(NumberOp::Eq(1.0));
        for _ in 0..40 {
            deep = Filter::Not(Box::new(deep));
        }
        assert!(deep.validate("f").is_err());
    }
}
