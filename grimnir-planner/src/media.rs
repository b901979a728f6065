//! Media items, the library they live in, and the play history separation rules look back on.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::ids::{MediaId, check_id, id_ok};
use crate::time::Millis;

/// The shortest an item may play between its cue points.
///
/// Anything shorter is refused when the library is validated: a smart block that could pick
/// millisecond items would fill an hour with millions of entries, and no station airs a sound
/// that short on its own. It bounds a timeline to about one entry per second of air.
pub const MIN_PLAYABLE: Millis = Millis::from_secs(1);

/// One playable file with the metadata rules select on.
///
/// Only `id`, `title` and `duration` are required; every other field is optional metadata.
/// Lengths are in milliseconds ([`Millis`]); in files they are written in seconds or as `m:ss`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct MediaItem {
    /// Unique id within the library.
    pub id: MediaId,
    /// Title as shown on air.
    pub title: String,
    /// Performing artists, main artist first. Separation applies to each of them.
    #[cfg_attr(feature = "serde", serde(default))]
    pub artists: Vec<String>,
    /// Album or release title.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub album: Option<String>,
    /// Length of the whole file.
    pub duration: Millis,
    /// Free-form labels (`new`, `power`, `jingle`, `ad`…), compared case-insensitively.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "BTreeSet::is_empty")
    )]
    pub tags: BTreeSet<String>,
    /// Genre.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub genre: Option<String>,
    /// Release year.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub year: Option<i32>,
    /// Tempo in beats per minute.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub bpm: Option<f64>,
    /// Energy from 0.0 (calm) to 1.0 (intense).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub energy: Option<f64>,
    /// Mood label (`upbeat`, `mellow`…).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub mood: Option<String>,
    /// Integrated loudness from analysis, in LUFS.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub lufs: Option<f64>,
    /// Where playback starts, from the start of the file.
    #[cfg_attr(feature = "serde", serde(default))]
    pub cue_in: Millis,
    /// Where playback ends, from the start of the file; the end of the file when absent.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub cue_out: Option<Millis>,
    /// Fade in from silence over this long when the item starts (no fade when absent).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub fade_in: Option<Millis>,
    /// How long this item overlaps the next when it crossfades, overriding the station default.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub crossfade: Option<Millis>,
    /// When the item was added to the library.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub added_at: Option<DateTime<Utc>>,
    /// When the item last played, as the library knows it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub last_played: Option<DateTime<Utc>>,
}

impl MediaItem {
    /// A minimal item; fill the other fields with struct update syntax.
    pub fn new(id: impl Into<MediaId>, title: impl Into<String>, duration: Millis) -> Self {
        MediaItem {
            id: id.into(),
            title: title.into(),
            artists: Vec::new(),
            album: None,
            duration,
            tags: BTreeSet::new(),
            genre: None,
            year: None,
            bpm: None,
            energy: None,
            mood: None,
            lufs: None,
            cue_in: Millis::ZERO,
            cue_out: None,
            fade_in: None,
            crossfade: None,
            added_at: None,
            last_played: None,
        }
    }

    /// Adds an artist (builder style, for tests and examples).
    pub fn by(mut self, artist: impl Into<String>) -> Self {
        self.artists.push(artist.into());
        self
    }

    /// Adds a tag (builder style).
    pub fn tagged(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// The effective cue-out: `cue_out`, or the end of the file.
    pub fn effective_cue_out(&self) -> Millis {
        self.cue_out.unwrap_or(self.duration)
    }

    /// How long the item plays between its cue points.
    pub fn playable(&self) -> Millis {
        self.effective_cue_out().saturating_sub(self.cue_in)
    }

    /// Checks every field; `at` is the path of this item, e.g. `items[3]`.
    pub fn validate(&self, at: &str) -> Result<()> {
        self.check(&|| at.to_owned())
    }

    /// [`validate`](Self::validate), with the path built only when something is wrong: a large
    /// library is checked without formatting a string per item.
    pub(crate) fn check(&self, path: &dyn Fn() -> String) -> Result<()> {
        let at = path;
        if !id_ok(self.id.as_str()) {
            check_id(&format!("{}.id", at()), self.id.as_str())?;
        }
        if self.title.trim().is_empty() {
            return Err(Error::invalid(
                format!("{}.title", at()),
                "\"\"",
                "a title must not be empty",
            ));
        }
        if self.duration == Millis::ZERO {
            return Err(Error::invalid(
                format!("{}.duration", at()),
                0,
                "must be longer than zero",
            ));
        }
        for (i, a) in self.artists.iter().enumerate() {
            if a.trim().is_empty() {
                return Err(Error::invalid(
                    format!("{}.artists[{i}]", at()),
                    "\"\"",
                    "empty artist",
                ));
            }
        }
        if let Some(out) = self.cue_out {
            if out > self.duration {
                return Err(Error::invalid(
                    format!("{}.cue_out", at()),
                    out,
                    format!("lies past the end of the file ({})", self.duration),
                ));
            }
        }
        if self.cue_in >= self.effective_cue_out() {
            return Err(Error::invalid(
                format!("{}.cue_in", at()),
                self.cue_in,
                format!("must come before cue-out ({})", self.effective_cue_out()),
            ));
        }
        if self.playable() < MIN_PLAYABLE {
            return Err(Error::invalid(
                format!("{}.cue_out", at()),
                self.effective_cue_out(),
                format!(
                    "the item would play {} between its cue points; at least {MIN_PLAYABLE} is needed",
                    self.playable()
                ),
            ));
        }
        check_range(at, "bpm", self.bpm, 1.0, 1000.0)?;
        check_range(at, "energy", self.energy, 0.0, 1.0)?;
        check_range(at, "lufs", self.lufs, -99.0, 10.0)?;
        if let Some(y) = self.year {
            if !(1000..=9999).contains(&y) {
                return Err(Error::invalid(
                    format!("{}.year", at()),
                    y,
                    "must be a four-digit year",
                ));
            }
        }
        for (name, v) in [("fade_in", self.fade_in), ("crossfade", self.crossfade)] {
            if let Some(v) = v {
                if v > self.playable() {
                    return Err(Error::invalid(
                        format!("{}.{name}", at()),
                        v,
                        format!("is longer than the playable length ({})", self.playable()),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_range(
    at: &dyn Fn() -> String,
    field: &str,
    v: Option<f64>,
    lo: f64,
    hi: f64,
) -> Result<()> {
    match v {
        Some(x) if !(x.is_finite() && (lo..=hi).contains(&x)) => Err(Error::invalid(
            format!("{}.{field}", at()),
            x,
            format!("must be a number from {lo} to {hi}"),
        )),
        _ => Ok(()),
    }
}

/// One past play of a media item, for separation and least-recently-played ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Play {
    /// What played.
    pub media: MediaId,
    /// When it started on air.
    pub started_at: DateTime<Utc>,
}

/// The media a station can play, plus what it played recently.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Library {
    /// The items. Their order is the tie-breaker wherever rules leave a choice open.
    #[cfg_attr(feature = "serde", serde(default))]
    pub items: Vec<MediaItem>,
    /// Past plays, in any order. Plays of items no longer in the library are ignored.
    #[cfg_attr(feature = "serde", serde(default))]
    pub history: Vec<Play>,
}

impl Library {
    /// Checks every item and that ids are unique.
    pub fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            item.check(&|| format!("items[{i}]"))?;
            if !seen.insert(item.id.as_str()) {
                return Err(Error::DuplicateId {
                    kind: MediaId::KIND,
                    id: item.id.to_string(),
                    field: format!("items[{i}].id"),
                });
            }
        }
        for (i, play) in self.history.iter().enumerate() {
            if !id_ok(play.media.as_str()) {
                check_id(&format!("history[{i}].media"), play.media.as_str())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let mut item = MediaItem::new("a", "Song", Millis::from_secs(200));
        assert!(item.validate("items[0]").is_ok());
        item.cue_in = Millis::from_secs(250);
        let err = item.validate("items[0]").unwrap_err().to_string();
        assert!(err.contains("items[0].cue_in"), "{err}");
        item.cue_in = Millis::from_millis(199_500);
        let err = item.validate("items[0]").unwrap_err().to_string();
        assert!(
            err.contains("items[0].cue_out") && err.contains("at least 0:01"),
            "{err}"
        );
        item.cue_in = Millis::ZERO;
        item.energy = Some(f64::NAN);
        let err = item.validate("items[0]").unwrap_err().to_string();
        assert!(err.contains("items[0].energy"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let lib = Library {
            items: vec![
                MediaItem::new("a", "One", Millis::from_secs(1)),
                MediaItem::new("a", "Two", Millis::from_secs(1)),
            ],
            history: vec![],
        };
        assert!(matches!(lib.validate(), Err(Error::DuplicateId { .. })));
    }
}
