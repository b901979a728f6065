//! The planner's output: a gap-free run of entries in UTC, each with its provenance.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::ids::{BlockId, ClockId, MediaId, ShowId, StationId, WebstreamId};
use crate::time::{Instant, Millis, from_instant, to_instant};

/// The priority tiers of the source ladder. Lower numbers win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Tier {
    /// 0: interrupts everything (alerts).
    Emergency = 0,
    /// 1: a manual takeover.
    LiveOverride = 1,
    /// 2: a booked live programme.
    LiveScheduled = 2,
    /// 3: normal automation.
    Automation = 3,
    /// 4: dead-air prevention.
    Fallback = 4,
}

impl Tier {
    /// The tier's number, 0–4.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// What an entry puts on air.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "type", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Source {
    /// A media item between two cue points.
    Media {
        /// The item.
        id: MediaId,
        /// Its title, for people reading the timeline.
        title: String,
        /// Its artists.
        artists: Vec<String>,
        /// Where playback starts in the file.
        cue_in: Millis,
        /// Where playback stops in the file (earlier than the item's own cue-out when trimmed).
        cue_out: Millis,
    },
    /// A relayed external stream.
    Webstream {
        /// The stream.
        id: WebstreamId,
    },
    /// A live programme.
    Live {
        /// Its name.
        name: String,
    },
    /// Nothing could be planned: the executor plays its fallback audio.
    Fallback,
}

impl Source {
    /// The media id, when the entry plays a media item.
    pub fn media_id(&self) -> Option<&MediaId> {
        match self {
            Source::Media { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// How an entry begins and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Transition {
    /// Fade in from silence at the start.
    pub fade_in: Millis,
    /// Fade out to silence at the end of the entry's audio.
    pub fade_out: Millis,
    /// How long the entry's audio keeps sounding after `end`, under the next entry (the
    /// crossfade). The audio of an entry lasts `end - start + overlap`.
    pub overlap: Millis,
}

/// Which part of a show or clock produced an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Role {
    /// A clock slot.
    Slot,
    /// Filler for a stretch between hard starts that the slots left short.
    RunFill,
    /// A show's own content.
    ShowContent,
    /// Filler for a show that ran short.
    ShowFill,
    /// Filler for an hour that has no clock.
    HourFill,
}

/// A rule that can turn a candidate down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Rule {
    /// Same artist played too recently.
    ArtistSeparation,
    /// Same title played too recently.
    TitleSeparation,
    /// Same album played too recently.
    AlbumSeparation,
    /// The run already has enough by this artist.
    MaxPerArtist,
    /// The run already has enough from this album.
    MaxPerAlbum,
    /// Taking it would break a tag share.
    TagShare,
    /// It already played in this run of the block.
    RepeatInRun,
}

impl Rule {
    pub(crate) const ALL: [Rule; 7] = [
        Rule::ArtistSeparation,
        Rule::TitleSeparation,
        Rule::AlbumSeparation,
        Rule::MaxPerArtist,
        Rule::MaxPerAlbum,
        Rule::TagShare,
        Rule::RepeatInRun,
    ];

    /// What the rule is called in explanations.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::ArtistSeparation => "artist separation",
            Rule::TitleSeparation => "title separation",
            Rule::AlbumSeparation => "album separation",
            Rule::MaxPerArtist => "max per artist",
            Rule::MaxPerAlbum => "max per album",
            Rule::TagShare => "tag share",
            Rule::RepeatInRun => "no repeat within the block",
        }
    }
}

/// How many candidates one rule turned down before the entry's item was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Rejection {
    /// The rule.
    pub rule: Rule,
    /// How many candidates it turned down.
    pub count: u32,
}

/// A rule the planner loosened to fill the air, in the order it loosens them.
///
/// For each pick the planner first tries the block with all its rules, then gives way step by
/// step: album separation, artist separation halved, artist separation, quotas. If nothing fits
/// yet, it borrows from the station filler block and then from the whole library, each under its
/// own rules, before it lets the same song come back sooner: title separation halved, title
/// separation, and finally repeats within the block's run. The item that just played is never
/// chosen again while anything else can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Relaxation {
    /// 1. Album separation ignored.
    AlbumSeparation,
    /// 2. Artist separation windows halved.
    ArtistSeparationHalved,
    /// 3. Artist separation ignored.
    ArtistSeparation,
    /// 4. Quotas ignored.
    Quotas,
    /// 5. The block had nothing eligible under the rules so far: the station filler (or, failing
    ///    that, the whole library) supplied the item, under its own rules.
    Filter,
    /// 6. Title separation windows halved.
    TitleSeparationHalved,
    /// 7. Title separation ignored.
    TitleSeparation,
    /// 8. Items may repeat within the block's run.
    RepeatInRun,
}

impl Relaxation {
    /// What was loosened, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Relaxation::AlbumSeparation => "album separation ignored",
            Relaxation::ArtistSeparationHalved => "artist separation halved",
            Relaxation::ArtistSeparation => "artist separation ignored",
            Relaxation::Quotas => "quotas ignored",
            Relaxation::Filter => "nothing eligible left in the block: borrowed from the filler",
            Relaxation::TitleSeparationHalved => "title separation halved",
            Relaxation::TitleSeparation => "title separation ignored",
            Relaxation::RepeatInRun => "repeats within the block allowed",
        }
    }
}

/// Why an entry is what it is: where it came from and what was considered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Provenance {
    /// What produced it.
    pub role: Role,
    /// The clock, for clock-driven entries.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub clock: Option<ClockId>,
    /// The clock slot index, for slot entries.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub slot: Option<u32>,
    /// The slot's kind (`smart_block`, `stopset`, …), or the show content's.
    pub kind: String,
    /// The show, for show entries.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub show: Option<ShowId>,
    /// The smart block that chose the item, if one did.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub block: Option<BlockId>,
    /// The seed of the random stream this pick drew from (hex), for block picks.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub seed: Option<String>,
    /// Start of the clock hour or show that framed this entry.
    pub frame: DateTime<Utc>,
    /// Position of the producing step within its frame, in playing order.
    pub step: u32,
    /// Index of this entry within its step.
    pub pick: u32,
    /// Candidates turned down before this one, by rule.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub rejected: Vec<Rejection>,
    /// Rules loosened to choose this item.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub relaxed: Vec<Relaxation>,
    /// The item was cut short at a hard boundary.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "std::ops::Not::not")
    )]
    pub trimmed: bool,
    /// The entry starts at a hard boundary of the plan: the top of a clock hour, a clock slot's
    /// `hard_start`, a show's start or end. Playout that has drifted (after an interruption)
    /// re-joins the timeline at the next entry marked so.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "std::ops::Not::not")
    )]
    pub hard_start: bool,
}

/// One stretch of air time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Entry {
    /// When it starts on air.
    pub start: DateTime<Utc>,
    /// When the next entry starts.
    pub end: DateTime<Utc>,
    /// What plays.
    pub source: Source,
    /// Its priority tier.
    pub tier: Tier,
    /// Fades and crossfade.
    pub transition: Transition,
    /// Why it is here.
    pub provenance: Provenance,
}

impl Entry {
    /// `end - start`.
    pub fn length(&self) -> Millis {
        Millis::from_millis(u64::try_from((self.end - self.start).num_milliseconds()).unwrap_or(0))
    }
}

/// A planned run of entries for one station.
///
/// Entries are in time order; each starts where the previous ended; the first starts at the
/// window's start and the last is the one that crosses the window's end (it is kept whole: the
/// planning horizon is not a boundary on air).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timeline {
    /// The station.
    pub station: StationId,
    /// The station's zone, for showing local times.
    pub timezone: Tz,
    /// The plan seed.
    pub seed: u64,
    /// The `now` relative date filters were evaluated against.
    pub now: DateTime<Utc>,
    /// Start of the planned window.
    pub start: DateTime<Utc>,
    /// End of the planned window.
    pub end: DateTime<Utc>,
    /// The entries.
    pub entries: Vec<Entry>,
}

impl Timeline {
    /// The entry on air at `t`, if the timeline covers `t`.
    pub fn what_plays_at(&self, t: DateTime<Utc>) -> Option<&Entry> {
        let i = self.entries.partition_point(|e| e.start <= t);
        let e = self.entries.get(i.checked_sub(1)?)?;
        (t < e.end).then_some(e)
    }

    /// Where the timeline's last entry ends (at or after `end`).
    pub fn covered_until(&self) -> DateTime<Utc> {
        self.entries.last().map_or(self.start, |e| e.end)
    }

    /// The timeline as a table for people: one line per entry with its local start, length,
    /// tier, slot kind, clock or show and what plays, a heading per day, and a legend.
    pub fn table(&self, tz: Tz, station_name: &str, hours: u32) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{station_name}: {hours} hours from {}",
            self.entries.first().map_or_else(String::new, |e| {
                e.start
                    .with_timezone(&tz)
                    .format("%a %Y-%m-%d %H:%M %Z")
                    .to_string()
            })
        );
        let _ = writeln!(
            s,
            "{:<20} {:>8}  {:<4} {:<13} {:<22} what",
            "local start", "length", "tier", "kind", "from"
        );
        let mut day = None;
        for e in &self.entries {
            let local = e.start.with_timezone(&tz);
            if day != Some(local.date_naive()) {
                day = Some(local.date_naive());
                let _ = writeln!(s, "── {} ──", local.format("%A %Y-%m-%d"));
            }
            let from = match (&e.provenance.clock, &e.provenance.show, e.provenance.role) {
                (_, _, Role::HourFill) => "filler (no clock)".to_owned(),
                (Some(c), _, Role::RunFill) => format!("{c} / filler"),
                (Some(c), ..) => format!("{c} #{}", e.provenance.slot.map_or(0, |s| s + 1)),
                (_, Some(s), _) => format!("show {s}"),
                _ => String::new(),
            };
            let what = match &e.source {
                Source::Media { title, artists, .. } => {
                    format!("{} – {title}", artists.join(", "))
                }
                Source::Webstream { id } => format!("[webstream {id}]"),
                Source::Live { name } => format!("[LIVE] {name}"),
                _ => "[fallback audio]".to_owned(),
            };
            let mut marks = String::new();
            if e.provenance.trimmed {
                marks.push_str(" ✂");
            }
            if !e.provenance.relaxed.is_empty() {
                marks.push_str(" ≈");
            }
            let tier = match e.tier {
                Tier::LiveScheduled => "2",
                Tier::Fallback => "4!",
                _ => "3",
            };
            let _ = writeln!(
                s,
                "{:<20} {:>8}  {:<4} {:<13} {:<22} {what}{marks}",
                local.format("%a %H:%M:%S%.3f"),
                e.length().to_string(),
                tier,
                e.provenance.kind,
                from,
            );
        }
        let _ = writeln!(
            s,
            "✂ cut at a hard boundary with a fade   ≈ a rule was loosened to fill the air \
             (explain shows which)"
        );
        s
    }

    /// A few lines telling a person why `entry` is in the timeline.
    pub fn explain(&self, entry: &Entry) -> String {
        explain(entry, self.timezone)
    }
}

fn explain(e: &Entry, tz: Tz) -> String {
    use std::fmt::Write as _;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M:%S%.3f %Z");
    let mut s = String::new();
    let what = match &e.source {
        Source::Media {
            id, title, artists, ..
        } if artists.is_empty() => format!("\"{title}\" [{id}]"),
        Source::Media {
            id, title, artists, ..
        } => {
            format!("\"{title}\" by {} [{id}]", artists.join(", "))
        }
        Source::Webstream { id } => format!("webstream {id}"),
        Source::Live { name } => format!("live: {name}"),
        Source::Fallback => "fallback audio (nothing could be planned)".to_owned(),
    };
    let _ = writeln!(s, "{what}");
    let _ = writeln!(
        s,
        "  on air {} → {} ({})",
        local(e.start),
        local(e.end),
        e.length()
    );
    let _ = writeln!(s, "  tier {} ({:?})", e.tier.number(), e.tier);
    let p = &e.provenance;
    let origin = match (p.role, &p.clock, &p.show) {
        (Role::Slot, Some(c), _) => {
            format!(
                "clock `{c}` slot {} ({})",
                p.slot.map_or(0, |x| x + 1),
                p.kind
            )
        }
        (Role::RunFill, Some(c), _) => {
            format!(
                "clock `{c}`: filler, because its slots left the time before a hard start short"
            )
        }
        (Role::ShowContent, _, Some(show)) => format!("show `{show}` ({})", p.kind),
        (Role::ShowFill, _, Some(show)) => format!("show `{show}`: filler, its content ran short"),
        (Role::HourFill, ..) => "station filler: no clock is assigned to this hour".to_owned(),
        _ => p.kind.clone(),
    };
    let _ = writeln!(
        s,
        "  from {origin}, in the frame starting {}",
        local(p.frame)
    );
    if let Some(b) = &p.block {
        let _ = write!(s, "  chosen by smart block `{b}`, pick {}", p.pick + 1);
        if let Some(seed) = &p.seed {
            let _ = write!(s, ", random stream {seed}");
        }
        let _ = writeln!(s);
    }
    if !p.rejected.is_empty() {
        let list: Vec<String> = p
            .rejected
            .iter()
            .map(|r| format!("{} by {}", r.count, r.rule.describe()))
            .collect();
        let _ = writeln!(s, "  candidates turned down first: {}", list.join(", "));
    }
    if !p.relaxed.is_empty() {
        let list: Vec<&str> = p.relaxed.iter().map(|r| r.describe()).collect();
        let _ = writeln!(s, "  rules loosened to fill the air: {}", list.join(", "));
    }
    if let Source::Media {
        cue_in, cue_out, ..
    } = &e.source
    {
        let _ = writeln!(s, "  plays the file from {cue_in} to {cue_out}");
    }
    let t = &e.transition;
    if p.trimmed {
        let _ = writeln!(
            s,
            "  cut short at a hard boundary with a {} fade",
            t.fade_out
        );
    }
    if t.overlap > Millis::ZERO {
        let _ = writeln!(s, "  crossfades {} into the next entry", t.overlap);
    }
    s
}

/// What changed between two timelines of the same station.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineDiff {
    /// Entries identical in both (same times, source and transition).
    pub unchanged: usize,
    /// Entries only in the old timeline.
    pub removed: Vec<Entry>,
    /// Entries only in the new timeline.
    pub added: Vec<Entry>,
    /// Where the two first disagree, if they do.
    pub first_change: Option<DateTime<Utc>>,
}

impl TimelineDiff {
    /// Whether the timelines put the same things on air at the same times.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty()
    }
}

/// Compares two timelines entry by entry, matching entries by start, end, source and transition
/// (provenance is ignored: the same air from different reasoning is no change on air).
pub fn diff(old: &Timeline, new: &Timeline) -> TimelineDiff {
    let same = |a: &Entry, b: &Entry| {
        a.start == b.start && a.end == b.end && a.source == b.source && a.transition == b.transition
    };
    let (mut i, mut j) = (0, 0);
    let mut out = TimelineDiff::default();
    while i < old.entries.len() || j < new.entries.len() {
        match (old.entries.get(i), new.entries.get(j)) {
            (Some(a), Some(b)) if same(a, b) => {
                out.unchanged += 1;
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) => {
                out.first_change.get_or_insert(a.start.min(b.start));
                // Advance whichever side is behind in time; on a tie, both changed.
                if a.start < b.start {
                    out.removed.push(a.clone());
                    i += 1;
                } else if b.start < a.start {
                    out.added.push(b.clone());
                    j += 1;
                } else {
                    out.removed.push(a.clone());
                    out.added.push(b.clone());
                    i += 1;
                    j += 1;
                }
            }
            (Some(a), None) => {
                out.first_change.get_or_insert(a.start);
                out.removed.push(a.clone());
                i += 1;
            }
            (None, Some(b)) => {
                out.first_change.get_or_insert(b.start);
                out.added.push(b.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

pub(crate) fn instant_of(t: DateTime<Utc>) -> Instant {
    to_instant(t)
}

pub(crate) fn time_of(t: Instant) -> DateTime<Utc> {
    from_instant(t)
}
