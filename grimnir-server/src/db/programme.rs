//! A station's programme read from the database as the planner's input: a
//! [`grimnir_planner::StationConfig`] and a [`grimnir_planner::Library`].
//!
//! The definitions are stored as the planner's own serde types (see [`super::smart_blocks`],
//! [`super::clocks`], [`super::shows`]); what has no table of its own, the weekly grid, dated
//! overrides, the filler block, crossfade and trim fade, is one [`ProgrammeSettings`] document
//! per station in `station_programmes`. So the database and a planner station file describe a
//! station the same way, and [`load`] only gathers the parts:
//!
//! - the station: its id (the UUID as text), name and time zone, with the settings' crossfade,
//!   trim fade and filler;
//! - smart blocks, clocks (slots in position order) and shows, each with its row id as the
//!   planner id, in id order;
//! - webstreams from `webstreams`;
//! - the library: every media item with a known length, with its cue points, artist, album,
//!   loudness, tempo, tags (`media_tag_links` → `tags`) and genre, year, mood and energy when
//!   its `metadata` object has them; items the planner would refuse (cue points outside the
//!   file, shorter than [`grimnir_planner::MIN_PLAYABLE`]) are left out with a warning in the
//!   log, so one bad upload never stops a station from being planned;
//! - the play history of the last [`HISTORY_DAYS`] days, for separation rules.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use grimnir_planner::{
    BlockId, DatedOverride, Library, MediaItem, Millis, Play, ShowContent, SlotKind, Station,
    StationConfig, Underbooked, Webstream, WeeklyGrid,
};
use serde::{Deserialize, Serialize};

use super::schema::webstreams;
use super::schema::{media_items, media_tag_links, play_history, station_programmes, tags};
use super::stations::{self, StationId};
use super::{DbConnection, StorageError, clocks, now, shows, smart_blocks};

/// Longest name of a smart block, clock or show, in characters (the columns are
/// `VARCHAR(255)`).
pub const MAX_NAME_CHARS: usize = 255;

/// How far back the play history is read for separation rules, in days.
pub const HISTORY_DAYS: i64 = 7;

/// A station's programme settings that have no table of their own, as the planner models them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeSettings {
    /// Which clock runs in each local hour of the week.
    #[serde(default)]
    pub grid: WeeklyGrid,
    /// Dated replacements of the grid (holidays, special events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<DatedOverride>,
    /// The smart block (its id) that fills the air wherever nothing else can; the whole
    /// library in least-recently-played order when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filler: Option<BlockId>,
    /// How long consecutive smart-block items overlap.
    #[serde(default)]
    pub crossfade: Millis,
    /// Fade applied where an item is cut at a hard start or a show's end.
    #[serde(default = "default_trim_fade")]
    pub trim_fade: Millis,
}

fn default_trim_fade() -> Millis {
    Station::DEFAULT_TRIM_FADE
}

impl Default for ProgrammeSettings {
    fn default() -> Self {
        ProgrammeSettings {
            grid: WeeklyGrid::default(),
            overrides: Vec::new(),
            filler: None,
            crossfade: Millis::ZERO,
            trim_fade: Station::DEFAULT_TRIM_FADE,
        }
    }
}

/// Checks a name of a smart block, clock or show and returns it trimmed.
pub(crate) fn check_name(name: &str) -> Result<&str, StorageError> {
    let trimmed = name.trim();
    let invalid = |reason: &str| StorageError::Invalid {
        field: "name",
        value: name.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(&format!(
            "must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(trimmed)
}

/// A stored JSON document as `T`, naming the column when it is not one.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    text: &str,
    expected: &'static str,
) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| {
        tracing::error!(table, column, error = %e, "stored JSON does not parse");
        StorageError::Corrupt {
            table,
            column,
            value: text.chars().take(200).collect(),
            expected,
        }
    })
}

/// `value` as JSON text. The planner's types are plain data with string keys, which always
/// serialize.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The station's programme settings (the defaults when none were stored).
pub fn settings(
    conn: &mut DbConnection,
    station: StationId,
) -> Result<ProgrammeSettings, StorageError> {
    let text: Option<String> = station_programmes::table
        .find(station.to_string())
        .select(station_programmes::settings)
        .first(conn)
        .optional()?;
    match text {
        Some(text) => from_json(
            "station_programmes",
            "settings",
            &text,
            "programme settings",
        ),
        None => Ok(ProgrammeSettings::default()),
    }
}

/// Stores the station's programme settings (references already checked) and returns them.
pub fn set_settings(
    conn: &mut DbConnection,
    station: StationId,
    settings: &ProgrammeSettings,
) -> Result<ProgrammeSettings, StorageError> {
    let id = station.to_string();
    let text = to_json(settings);
    conn.transaction(|conn| {
        let updated = diesel::update(station_programmes::table.find(&id))
            .set((
                station_programmes::settings.eq(&text),
                station_programmes::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let present = updated > 0
            || diesel::select(diesel::dsl::exists(station_programmes::table.find(&id)))
                .get_result::<bool>(conn)?;
        if !present {
            stations::get(conn, station)?;
            diesel::insert_into(station_programmes::table)
                .values((
                    station_programmes::station_id.eq(&id),
                    station_programmes::settings.eq(&text),
                    station_programmes::updated_at.eq(now()),
                ))
                .execute(conn)?;
        }
        self::settings(conn, station)
    })
}

/// Whether this station has a media item with this id (as text).
pub fn media_exists(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        media_items::table
            .find(id)
            .filter(media_items::station_id.eq(station.to_string())),
    ))
    .get_result(conn)?)
}

/// Whether this station has a webstream with this id (as text).
pub fn webstream_exists(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        webstreams::table
            .find(id)
            .filter(webstreams::station_id.eq(station.to_string())),
    ))
    .get_result(conn)?)
}

/// What at this station still uses smart block `block` (its id as text), described for
/// people, or `None` when nothing does.
pub fn block_users(
    conn: &mut DbConnection,
    station: StationId,
    block: &str,
) -> Result<Option<String>, StorageError> {
    if let Some((clock, position)) = clocks::slots_using_block(conn, station, block)?
        .into_iter()
        .next()
    {
        return Ok(Some(format!("slot {position} of clock {clock}")));
    }
    for show in shows::all(conn, station)? {
        let content =
            matches!(&show.show.content, ShowContent::SmartBlock(b) if b.as_str() == block);
        let fill =
            matches!(&show.show.underbooked, Underbooked::SmartBlock(b) if b.as_str() == block);
        if content || fill {
            return Ok(Some(format!("show {}", show.id)));
        }
    }
    if settings(conn, station)?
        .filler
        .is_some_and(|f| f.as_str() == block)
    {
        return Ok(Some("the station's filler setting".to_owned()));
    }
    Ok(None)
}

/// What at this station still uses clock `clock` (its id as text), described for people, or
/// `None` when nothing does.
pub fn clock_users(
    conn: &mut DbConnection,
    station: StationId,
    clock: &str,
) -> Result<Option<String>, StorageError> {
    let settings = settings(conn, station)?;
    if settings
        .grid
        .default
        .as_ref()
        .is_some_and(|c| c.as_str() == clock)
    {
        return Ok(Some("the grid's default".to_owned()));
    }
    if let Some(i) = settings
        .grid
        .rules
        .iter()
        .position(|r| r.clock.as_str() == clock)
    {
        return Ok(Some(format!("grid rule {i}")));
    }
    if let Some(i) = settings
        .overrides
        .iter()
        .position(|o| o.clock.as_str() == clock)
    {
        return Ok(Some(format!("dated override {i}")));
    }
    Ok(None)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = media_items)]
struct MediaRow {
    id: String,
    title: String,
    artist: Option<String>,
    album: Option<String>,
    duration_ms: Option<i64>,
    loudness_lufs: Option<f64>,
    bpm: Option<f64>,
    cue_in_ms: Option<i64>,
    cue_out_ms: Option<i64>,
    metadata: String,
    created_at: NaiveDateTime,
}

fn millis(ms: i64) -> Millis {
    Millis::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn non_blank(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.trim().is_empty())
}

impl MediaRow {
    /// The planner's item, or `None` when its length is not known yet.
    fn into_item(self, tags: Vec<String>) -> Option<MediaItem> {
        let duration = self.duration_ms.filter(|d| *d > 0).map(millis)?;
        let mut item = MediaItem::new(self.id, self.title, duration);
        item.artists = non_blank(self.artist).into_iter().collect();
        item.album = non_blank(self.album);
        item.lufs = self.loudness_lufs;
        item.bpm = self.bpm;
        item.cue_in = self.cue_in_ms.map_or(Millis::ZERO, millis);
        item.cue_out = self.cue_out_ms.map(millis);
        item.added_at = Some(self.created_at.and_utc());
        item.tags = tags.into_iter().collect();
        if let Ok(serde_json::Value::Object(extra)) = serde_json::from_str(&self.metadata) {
            let text = |key: &str| {
                extra
                    .get(key)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .filter(|t| !t.trim().is_empty())
            };
            item.genre = text("genre");
            item.mood = text("mood");
            item.year = extra
                .get("year")
                .and_then(serde_json::Value::as_i64)
                .and_then(|y| i32::try_from(y).ok());
            item.energy = extra.get("energy").and_then(serde_json::Value::as_f64);
        }
        Some(item)
    }
}

/// Media item `id` of this station as the planner sees it (without tags), or `None` when the
/// station has no such item or its length is not known yet.
pub fn media_item(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
) -> Result<Option<MediaItem>, StorageError> {
    let row: Option<MediaRow> = media_items::table
        .find(id)
        .filter(media_items::station_id.eq(station.to_string()))
        .select(MediaRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.and_then(|r| r.into_item(Vec::new())))
}

/// The station's media as the planner's library, with the play history since `since`.
pub fn library(
    conn: &mut DbConnection,
    station: StationId,
    since: DateTime<Utc>,
) -> Result<Library, StorageError> {
    let station_text = station.to_string();
    let rows: Vec<MediaRow> = media_items::table
        .filter(media_items::station_id.eq(&station_text))
        .order((media_items::created_at, media_items::id))
        .select(MediaRow::as_select())
        .load(conn)?;
    let links: Vec<(String, String)> = media_tag_links::table
        .inner_join(tags::table)
        .filter(tags::station_id.eq(&station_text))
        .order((media_tag_links::media_id, tags::name))
        .select((media_tag_links::media_id, tags::name))
        .load(conn)?;
    let mut tags_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (media, tag) in links {
        tags_of.entry(media).or_default().push(tag);
    }
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let tags = tags_of.remove(&row.id).unwrap_or_default();
        let id = row.id.clone();
        let Some(item) = row.into_item(tags) else {
            continue;
        };
        match item.validate("media") {
            Ok(()) => items.push(item),
            Err(e) => tracing::warn!(media = %id, error = %e, "media item left out of planning"),
        }
    }
    let plays: Vec<(Option<String>, NaiveDateTime)> = play_history::table
        .filter(play_history::station_id.eq(&station_text))
        .filter(play_history::media_id.is_not_null())
        .filter(play_history::started_at.ge(since.naive_utc()))
        .order((play_history::started_at, play_history::id))
        .select((play_history::media_id, play_history::started_at))
        .load(conn)?;
    let history = plays
        .into_iter()
        .filter_map(|(media, at)| {
            media.map(|m| Play {
                media: m.into(),
                started_at: at.and_utc(),
            })
        })
        .collect();
    Ok(Library { items, history })
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webstreams)]
struct WebstreamRow {
    id: String,
    name: String,
    url: String,
    fallback_urls: String,
}

/// The station's programme as the planner's station configuration (not yet validated: building
/// a [`grimnir_planner::Planner`] from it does that).
pub fn station_config(
    conn: &mut DbConnection,
    station: StationId,
) -> Result<StationConfig, StorageError> {
    let row = stations::get(conn, station)?;
    let settings = settings(conn, station)?;
    let mut planner_station = Station::new(station.to_string(), row.timezone);
    planner_station.name = row.name;
    planner_station.crossfade = settings.crossfade;
    planner_station.trim_fade = settings.trim_fade;
    planner_station.filler = settings.filler;
    let mut config = StationConfig::new(planner_station);
    config.grid = settings.grid;
    config.overrides = settings.overrides;
    config.smart_blocks = smart_blocks::all(conn, station)?
        .into_iter()
        .map(|b| b.block)
        .collect();
    config.clocks = clocks::all(conn, station)?
        .into_iter()
        .map(|c| c.clock)
        .collect();
    config.shows = shows::all(conn, station)?
        .into_iter()
        .map(|s| s.show)
        .collect();
    let streams: Vec<WebstreamRow> = webstreams::table
        .filter(webstreams::station_id.eq(station.to_string()))
        .order(webstreams::id)
        .select(WebstreamRow::as_select())
        .load(conn)?;
    config.webstreams = streams
        .into_iter()
        .map(|w| Webstream {
            id: w.id.into(),
            name: w.name,
            url: w.url,
            fallback_urls: serde_json::from_str(&w.fallback_urls).unwrap_or_default(),
        })
        .collect();
    Ok(config)
}

/// The station's programme and library, as of now: what the planner plans from.
pub fn load(
    conn: &mut DbConnection,
    station: StationId,
) -> Result<(StationConfig, Library), StorageError> {
    let config = station_config(conn, station)?;
    let library = library(conn, station, Utc::now() - TimeDelta::days(HISTORY_DAYS))?;
    Ok((config, library))
}

/// The media, smart block and webstream ids a clock slot refers to, with the path of each
/// reference below the slot (`smart_block.block`, `stopset.items[2]`).
pub fn slot_references(kind: &SlotKind) -> Vec<(String, Reference<'_>)> {
    match kind {
        SlotKind::SmartBlock { block, .. } => {
            vec![(
                "smart_block.block".to_owned(),
                Reference::Block(block.as_str()),
            )]
        }
        SlotKind::HardItem { media } => {
            vec![(
                "hard_item.media".to_owned(),
                Reference::Media(media.as_str()),
            )]
        }
        SlotKind::Stopset { items } => items
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("stopset.items[{i}]"), Reference::Media(m.as_str())))
            .collect(),
        SlotKind::Webstream { webstream, .. } => vec![(
            "webstream.webstream".to_owned(),
            Reference::Webstream(webstream.as_str()),
        )],
        _ => Vec::new(),
    }
}

/// Something a programme definition refers to by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reference<'a> {
    /// A smart block.
    Block(&'a str),
    /// A media item.
    Media(&'a str),
    /// A webstream.
    Webstream(&'a str),
    /// A clock.
    Clock(&'a str),
}

impl Reference<'_> {
    /// Whether the thing referred to exists at `station`.
    pub fn exists(
        &self,
        conn: &mut DbConnection,
        station: StationId,
    ) -> Result<bool, StorageError> {
        match *self {
            Reference::Block(id) => smart_blocks::exists(conn, station, id),
            Reference::Media(id) => media_exists(conn, station, id),
            Reference::Webstream(id) => webstream_exists(conn, station, id),
            Reference::Clock(id) => clocks::exists(conn, station, id),
        }
    }

    /// What kind of thing it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Reference::Block(_) => "smart block",
            Reference::Media(_) => "media item",
            Reference::Webstream(_) => "webstream",
            Reference::Clock(_) => "clock",
        }
    }

    /// The id referred to.
    pub fn id(&self) -> &str {
        match *self {
            Reference::Block(id)
            | Reference::Media(id)
            | Reference::Webstream(id)
            | Reference::Clock(id) => id,
        }
    }
}

/// The references of a show, with the path of each below the show's definition.
pub fn show_references(show: &grimnir_planner::Show) -> Vec<(String, Reference<'_>)> {
    let mut out = Vec::new();
    match &show.content {
        ShowContent::SmartBlock(b) => {
            out.push((
                "content.smart_block".to_owned(),
                Reference::Block(b.as_str()),
            ));
        }
        ShowContent::List(items) => out.extend(
            items
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("content.list[{i}]"), Reference::Media(m.as_str()))),
        ),
        ShowContent::Webstream(w) => {
            out.push((
                "content.webstream".to_owned(),
                Reference::Webstream(w.as_str()),
            ));
        }
        _ => {}
    }
    if let Underbooked::SmartBlock(b) = &show.underbooked {
        out.push((
            "underbooked.smart_block".to_owned(),
            Reference::Block(b.as_str()),
        ));
    }
    out
}

/// The references of programme settings, with the path of each.
pub fn settings_references(settings: &ProgrammeSettings) -> Vec<(String, Reference<'_>)> {
    let mut out = Vec::new();
    if let Some(c) = &settings.grid.default {
        out.push(("grid.default".to_owned(), Reference::Clock(c.as_str())));
    }
    for (i, rule) in settings.grid.rules.iter().enumerate() {
        out.push((
            format!("grid.rules[{i}].clock"),
            Reference::Clock(rule.clock.as_str()),
        ));
    }
    for (i, o) in settings.overrides.iter().enumerate() {
        out.push((
            format!("overrides[{i}].clock"),
            Reference::Clock(o.clock.as_str()),
        ));
    }
    if let Some(b) = &settings.filler {
        out.push(("filler".to_owned(), Reference::Block(b.as_str())));
    }
    out
}
