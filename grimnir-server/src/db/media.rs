//! The media library: a station's audio files (`media_items`), its tags (`tags`, linked through
//! `media_tag_links`) and the analyser's work queue (`analysis_jobs`).
//!
//! A media item's row holds what people edit (title, artist, album, tempo, cue points) and what
//! the analyser measures (length, integrated loudness, true peak, cue points where none were
//! set); genre, year, sample rate, channels and the uploaded file's name live in its `metadata`
//! JSON object, where [`super::programme`] reads genre and year for the planner.
//!
//! # The analysis queue
//!
//! [`create`] stores an item together with a `pending` job in one transaction. Workers take
//! jobs with [`claim_job`]: a conditional `UPDATE … SET status = 'running' WHERE id = ? AND
//! status = 'pending'` that only one worker can win, so several servers may share one database.
//! A job ends with [`finish_job`] (`done`, the measurements written to the item) or
//! [`fail_job`] (back to `pending` for another attempt, or `failed` once
//! [`MAX_ATTEMPTS`] have been made). A job left `running` by a server that died is handed out
//! again by [`requeue_stalled`] once its lease has run out.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use serde_json::{Map, Value};

use super::schema::{analysis_jobs, media_items, media_tag_links, tags};
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, is_unique_violation, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a media item.
    MediaId
}

uuid_id! {
    /// The id of a tag.
    TagId
}

uuid_id! {
    /// The id of an analysis job.
    AnalysisJobId
}

/// Longest title, artist or album, in characters (the columns are `VARCHAR(512)`).
pub const MAX_TEXT_CHARS: usize = 512;
/// Longest tag name, in characters (the column is `VARCHAR(255)`).
pub const MAX_TAG_CHARS: usize = 255;
/// Attempts at analysing an item before its job is `failed` for good.
pub const MAX_ATTEMPTS: i32 = 3;

diesel::define_sql_function! {
    /// SQL `LOWER`, on every backend. SQLite connections replace the built-in, which folds
    /// ASCII only, with Rust's `str::to_lowercase` (see `ConnectionManager::establish`).
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Where an item's analysis stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnalysisState {
    /// Waiting for (or in) the analyser.
    Pending,
    /// Measured.
    Done,
    /// The analyser gave up; the job's error says why.
    Failed,
}

impl AnalysisState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisState::Pending => "pending",
            AnalysisState::Done => "done",
            AnalysisState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StorageError> {
        match s {
            "pending" => Ok(AnalysisState::Pending),
            "done" => Ok(AnalysisState::Done),
            "failed" => Ok(AnalysisState::Failed),
            other => Err(StorageError::Corrupt {
                table: "media_items",
                column: "analysis_state",
                value: other.to_owned(),
                expected: "pending, done or failed",
            }),
        }
    }
}

/// A tag as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Its id.
    pub id: TagId,
    /// Its station.
    pub station_id: StationId,
    /// The label, unique within the station.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A media item as stored, with its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRecord {
    /// Its id.
    pub id: MediaId,
    /// Its station.
    pub station_id: StationId,
    /// Track title.
    pub title: String,
    /// Artist, when known.
    pub artist: Option<String>,
    /// Album, when known.
    pub album: Option<String>,
    /// Genre, when known.
    pub genre: Option<String>,
    /// Year of release, when known.
    pub year: Option<i32>,
    /// Tempo in beats per minute, when known.
    pub bpm: Option<f64>,
    /// The file, relative to the media directory.
    pub storage_key: String,
    /// MIME type of the file.
    pub content_type: String,
    /// File size in bytes.
    pub size_bytes: i64,
    /// Length in milliseconds, once known.
    pub duration_ms: Option<i64>,
    /// Sample rate of the file, Hz.
    pub sample_rate: Option<u32>,
    /// Channels of the file.
    pub channels: Option<u32>,
    /// Name of the uploaded file, as the client gave it.
    pub filename: Option<String>,
    /// Integrated loudness, LUFS, once analysed (none for silence).
    pub loudness_lufs: Option<f64>,
    /// True peak, dBTP, once analysed (none for silence).
    pub true_peak_dbtp: Option<f64>,
    /// Where playback starts, ms.
    pub cue_in_ms: Option<i64>,
    /// Where playback ends, ms.
    pub cue_out_ms: Option<i64>,
    /// Where analysis stands.
    pub analysis_state: AnalysisState,
    /// Why the last analysis attempt failed, if it did.
    pub analysis_error: Option<String>,
    /// Its tags, by name.
    pub tags: Vec<Tag>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new media item: its file is in place under the media directory.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMedia {
    /// Its id, which the file is named after.
    pub id: MediaId,
    /// Track title (1 to [`MAX_TEXT_CHARS`] characters).
    pub title: String,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Year of release.
    pub year: Option<i32>,
    /// The file, relative to the media directory.
    pub storage_key: String,
    /// MIME type of the file.
    pub content_type: String,
    /// File size in bytes.
    pub size_bytes: i64,
    /// Length in milliseconds, when the probe could tell.
    pub duration_ms: Option<i64>,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Name of the uploaded file.
    pub filename: Option<String>,
}

/// Changes to an item; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaChanges {
    /// A new title.
    pub title: Option<String>,
    /// A new artist.
    pub artist: Option<Option<String>>,
    /// A new album.
    pub album: Option<Option<String>>,
    /// A new genre.
    pub genre: Option<Option<String>>,
    /// A new year.
    pub year: Option<Option<i32>>,
    /// A new tempo.
    pub bpm: Option<Option<f64>>,
    /// A new cue-in point, ms.
    pub cue_in_ms: Option<Option<i64>>,
    /// A new cue-out point, ms.
    pub cue_out_ms: Option<Option<i64>>,
}

/// What the analyser measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurements {
    /// Length, ms.
    pub duration_ms: i64,
    /// Integrated loudness, LUFS; none for silence.
    pub loudness_lufs: Option<f64>,
    /// True peak, dBTP; none for silence.
    pub true_peak_dbtp: Option<f64>,
    /// First audible moment, ms.
    pub cue_in_ms: i64,
    /// Just after the last audible moment, ms.
    pub cue_out_ms: i64,
}

/// Which items of a station a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaFilter {
    /// Text that the title, artist or album contains (case-insensitive).
    pub text: Option<String>,
    /// The name of a tag the item carries.
    pub tag: Option<String>,
}

/// A job taken by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The job.
    pub id: AnalysisJobId,
    /// The item to analyse.
    pub media_id: MediaId,
    /// Its station.
    pub station_id: StationId,
    /// Its file, relative to the media directory.
    pub storage_key: String,
    /// Which attempt this is, from 1.
    pub attempt: i32,
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// It will be tried again.
    Retry,
    /// It will not: the item's analysis is `failed`.
    GaveUp,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = media_items)]
struct MediaRow {
    id: String,
    station_id: String,
    title: String,
    artist: Option<String>,
    album: Option<String>,
    storage_key: String,
    content_type: String,
    size_bytes: i64,
    duration_ms: Option<i64>,
    loudness_lufs: Option<f64>,
    true_peak_dbtp: Option<f64>,
    bpm: Option<f64>,
    cue_in_ms: Option<i64>,
    cue_out_ms: Option<i64>,
    analysis_state: String,
    metadata: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tags)]
struct TagRow {
    id: String,
    station_id: String,
    name: String,
    created_at: NaiveDateTime,
}

impl TryFrom<TagRow> for Tag {
    type Error = StorageError;

    fn try_from(row: TagRow) -> Result<Self, StorageError> {
        Ok(Tag {
            id: stored_id("tags", "id", &row.id)?,
            station_id: stored_id("tags", "station_id", &row.station_id)?,
            name: row.name,
            created_at: row.created_at.and_utc(),
        })
    }
}

fn metadata_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl MediaRow {
    fn into_record(
        self,
        tags: Vec<Tag>,
        analysis_error: Option<String>,
    ) -> Result<MediaRecord, StorageError> {
        let extra = metadata_object(&self.metadata);
        let text = |key: &str| extra.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |key: &str| extra.get(key).and_then(Value::as_u64);
        Ok(MediaRecord {
            id: stored_id("media_items", "id", &self.id)?,
            station_id: stored_id("media_items", "station_id", &self.station_id)?,
            title: self.title,
            artist: self.artist,
            album: self.album,
            genre: text("genre"),
            year: extra
                .get("year")
                .and_then(Value::as_i64)
                .and_then(|y| i32::try_from(y).ok()),
            bpm: self.bpm,
            storage_key: self.storage_key,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            duration_ms: self.duration_ms,
            sample_rate: number("sample_rate").and_then(|n| u32::try_from(n).ok()),
            channels: number("channels").and_then(|n| u32::try_from(n).ok()),
            filename: text("filename"),
            loudness_lufs: self.loudness_lufs,
            true_peak_dbtp: self.true_peak_dbtp,
            cue_in_ms: self.cue_in_ms,
            cue_out_ms: self.cue_out_ms,
            analysis_state: AnalysisState::parse(&self.analysis_state)?,
            analysis_error,
            tags,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        })
    }
}

/// A title, artist, album or genre: surrounding whitespace removed, 1 to [`MAX_TEXT_CHARS`]
/// characters, no control characters.
pub fn check_text(field: &'static str, value: &str) -> Result<String, StorageError> {
    let trimmed = value.trim();
    let invalid = |reason: &str| StorageError::Invalid {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(&format!(
            "must be at most {MAX_TEXT_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

fn check_tag_name(value: &str) -> Result<String, StorageError> {
    let name = check_text("name", value)?;
    if name.chars().count() > MAX_TAG_CHARS {
        return Err(StorageError::Invalid {
            field: "name",
            value: value.to_owned(),
            reason: format!("must be at most {MAX_TAG_CHARS} characters"),
        });
    }
    Ok(name)
}

fn not_found(id: impl ToString) -> StorageError {
    StorageError::NotFound {
        entity: "media item",
        id: id.to_string(),
    }
}

fn tag_not_found(id: impl ToString) -> StorageError {
    StorageError::NotFound {
        entity: "tag",
        id: id.to_string(),
    }
}

/// The tags of the given items, by item id, each list by name.
fn tags_of(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<Tag>>, StorageError> {
    let mut out: BTreeMap<String, Vec<Tag>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(String, TagRow)> = media_tag_links::table
        .inner_join(tags::table)
        .filter(media_tag_links::media_id.eq_any(ids))
        .order((tags::name, tags::id))
        .select((media_tag_links::media_id, TagRow::as_select()))
        .load(conn)?;
    for (media, row) in rows {
        out.entry(media).or_default().push(row.try_into()?);
    }
    Ok(out)
}

/// The last error of each failed job of the given items.
fn errors_of(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<BTreeMap<String, String>, StorageError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows: Vec<(String, Option<String>)> = analysis_jobs::table
        .filter(analysis_jobs::media_id.eq_any(ids))
        .filter(analysis_jobs::error.is_not_null())
        .order(analysis_jobs::updated_at)
        .select((analysis_jobs::media_id, analysis_jobs::error))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, e)| e.map(|e| (m, e)))
        .collect())
}

fn records(conn: &mut DbConnection, rows: Vec<MediaRow>) -> Result<Vec<MediaRecord>, StorageError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut tags = tags_of(conn, &ids)?;
    let mut errors = errors_of(conn, &ids)?;
    rows.into_iter()
        .map(|row| {
            let t = tags.remove(&row.id).unwrap_or_default();
            let e = errors.remove(&row.id);
            row.into_record(t, e)
        })
        .collect()
}

/// Stores a new item of `station` with a pending analysis job, and returns the item and the
/// job. Call it inside a transaction, so that neither is stored without the other.
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    new: &NewMedia,
) -> Result<(MediaRecord, AnalysisJobId), StorageError> {
    let title = check_text("title", &new.title)?;
    let artist = new
        .artist
        .as_deref()
        .map(|a| check_text("artist", a))
        .transpose()?;
    let album = new
        .album
        .as_deref()
        .map(|a| check_text("album", a))
        .transpose()?;
    let mut metadata = Map::new();
    if let Some(genre) = &new.genre {
        metadata.insert("genre".into(), check_text("genre", genre)?.into());
    }
    if let Some(year) = new.year {
        metadata.insert("year".into(), year.into());
    }
    metadata.insert("sample_rate".into(), new.sample_rate.into());
    metadata.insert("channels".into(), new.channels.into());
    if let Some(name) = &new.filename {
        metadata.insert("filename".into(), name.clone().into());
    }
    let at = now();
    diesel::insert_into(media_items::table)
        .values((
            media_items::id.eq(new.id.to_string()),
            media_items::station_id.eq(station.to_string()),
            media_items::title.eq(title),
            media_items::artist.eq(artist),
            media_items::album.eq(album),
            media_items::storage_key.eq(&new.storage_key),
            media_items::content_type.eq(&new.content_type),
            media_items::size_bytes.eq(new.size_bytes),
            media_items::duration_ms.eq(new.duration_ms),
            media_items::analysis_state.eq(AnalysisState::Pending.as_str()),
            media_items::metadata.eq(Value::Object(metadata).to_string()),
            media_items::created_at.eq(at),
            media_items::updated_at.eq(at),
        ))
        .execute(conn)?;
    let job = AnalysisJobId::random();
    diesel::insert_into(analysis_jobs::table)
        .values((
            analysis_jobs::id.eq(job.to_string()),
            analysis_jobs::media_id.eq(new.id.to_string()),
            analysis_jobs::status.eq("pending"),
            analysis_jobs::attempts.eq(0),
            analysis_jobs::created_at.eq(at),
            analysis_jobs::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok((get(conn, station, new.id)?, job))
}

/// The item `id` of `station`.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: MediaId,
) -> Result<MediaRecord, StorageError> {
    let row = media_items::table
        .filter(media_items::id.eq(id.to_string()))
        .filter(media_items::station_id.eq(station.to_string()))
        .select(MediaRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))?;
    records(conn, vec![row])?.pop().ok_or_else(|| not_found(id))
}

/// `LIKE` pattern for text anywhere, with `%`, `_` and the escape character escaped by `!`.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of `station`'s items that match `filter`, by title, artist, then id, and how many
/// match in all.
pub fn list_page(
    conn: &mut DbConnection,
    station: StationId,
    filter: &MediaFilter,
    page: Page,
) -> Result<(Vec<MediaRecord>, i64), StorageError> {
    let station_text = station.to_string();
    let matching = || {
        let mut query = media_items::table
            .filter(media_items::station_id.eq(station_text.clone()))
            .into_boxed();
        if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
            let pattern = contains_pattern(text.trim());
            query = query.filter(
                lower(media_items::title.nullable())
                    .like(pattern.clone())
                    .escape('!')
                    .or(lower(media_items::artist).like(pattern.clone()).escape('!'))
                    .or(lower(media_items::album).like(pattern).escape('!')),
            );
        }
        if let Some(tag) = &filter.tag {
            query = query.filter(
                media_items::id.eq_any(
                    media_tag_links::table
                        .inner_join(tags::table)
                        .filter(tags::station_id.eq(station_text.clone()))
                        .filter(tags::name.eq(tag.trim().to_owned()))
                        .select(media_tag_links::media_id),
                ),
            );
        }
        query
    };
    let total: i64 = matching().count().get_result(conn)?;
    let rows = matching()
        .order((media_items::title, media_items::artist, media_items::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(MediaRow::as_select())
        .load(conn)?;
    Ok((records(conn, rows)?, total))
}

/// Applies `changes` and returns the item as stored afterwards. Cue points are checked against
/// each other and the item's length: `0 <= cue_in < cue_out <= duration`.
pub fn update(
    conn: &mut DbConnection,
    station: StationId,
    id: MediaId,
    changes: &MediaChanges,
) -> Result<MediaRecord, StorageError> {
    let title = changes
        .title
        .as_deref()
        .map(|t| check_text("title", t))
        .transpose()?;
    let checked = |field: &'static str, v: &Option<Option<String>>| {
        v.as_ref()
            .map(|v| v.as_deref().map(|t| check_text(field, t)).transpose())
            .transpose()
    };
    let artist = checked("artist", &changes.artist)?;
    let album = checked("album", &changes.album)?;
    let genre = checked("genre", &changes.genre)?;
    if let Some(Some(year)) = changes.year
        && !(0..=9999).contains(&year)
    {
        return Err(StorageError::Invalid {
            field: "year",
            value: year.to_string(),
            reason: "must be between 0 and 9999".into(),
        });
    }
    if let Some(Some(bpm)) = changes.bpm
        && !(bpm.is_finite() && bpm > 0.0 && bpm <= 1000.0)
    {
        return Err(StorageError::Invalid {
            field: "bpm",
            value: bpm.to_string(),
            reason: "must be above 0 and at most 1000".into(),
        });
    }
    // The write comes first (see dsp_graphs::update): an SQLite transaction that starts with a
    // read cannot wait for a concurrent writer. A missing item is found by reading back.
    diesel::update(
        media_items::table
            .filter(media_items::id.eq(id.to_string()))
            .filter(media_items::station_id.eq(station.to_string())),
    )
    .set(media_items::updated_at.eq(now()))
    .execute(conn)?;
    let row = media_items::table
        .filter(media_items::id.eq(id.to_string()))
        .filter(media_items::station_id.eq(station.to_string()))
        .select(MediaRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(id))?;
    let cue_in = changes.cue_in_ms.unwrap_or(row.cue_in_ms);
    let cue_out = changes.cue_out_ms.unwrap_or(row.cue_out_ms);
    check_cues(cue_in, cue_out, row.duration_ms)?;
    let mut metadata = metadata_object(&row.metadata);
    if let Some(genre) = genre {
        match genre {
            Some(g) => metadata.insert("genre".into(), g.into()),
            None => metadata.remove("genre"),
        };
    }
    if let Some(year) = changes.year {
        match year {
            Some(y) => metadata.insert("year".into(), y.into()),
            None => metadata.remove("year"),
        };
    }
    diesel::update(media_items::table.filter(media_items::id.eq(id.to_string())))
        .set((
            title.map(|t| media_items::title.eq(t)),
            artist.map(|a| media_items::artist.eq(a)),
            album.map(|a| media_items::album.eq(a)),
            changes.bpm.map(|b| media_items::bpm.eq(b)),
            changes.cue_in_ms.map(|c| media_items::cue_in_ms.eq(c)),
            changes.cue_out_ms.map(|c| media_items::cue_out_ms.eq(c)),
            media_items::metadata.eq(Value::Object(metadata).to_string()),
        ))
        .execute(conn)?;
    get(conn, station, id)
}

/// Checks cue points against each other and the length.
pub fn check_cues(
    cue_in: Option<i64>,
    cue_out: Option<i64>,
    duration: Option<i64>,
) -> Result<(), StorageError> {
    let invalid = |field: &'static str, value: i64, reason: String| StorageError::Invalid {
        field,
        value: value.to_string(),
        reason,
    };
    if let Some(i) = cue_in {
        if i < 0 {
            return Err(invalid("cue_in_ms", i, "must not be negative".into()));
        }
        if let Some(d) = duration
            && i >= d
        {
            return Err(invalid(
                "cue_in_ms",
                i,
                format!("must be before the end of the item ({d} ms)"),
            ));
        }
    }
    if let Some(o) = cue_out {
        if o <= 0 {
            return Err(invalid("cue_out_ms", o, "must be above 0".into()));
        }
        if let Some(d) = duration
            && o > d
        {
            return Err(invalid(
                "cue_out_ms",
                o,
                format!("must be within the item's length ({d} ms)"),
            ));
        }
    }
    if let (Some(i), Some(o)) = (cue_in, cue_out)
        && o <= i
    {
        return Err(invalid(
            "cue_out_ms",
            o,
            format!("must be after cue_in_ms ({i} ms)"),
        ));
    }
    Ok(())
}

/// What in `station`'s programme refers to item `id`, described for people, or `None`.
/// Clock slots (hard items, stop sets) and show lists refer to items by id.
pub fn programme_users(
    conn: &mut DbConnection,
    station: StationId,
    id: MediaId,
) -> Result<Option<String>, StorageError> {
    use super::programme::{Reference, show_references, slot_references};
    let id_text = id.to_string();
    for clock in super::clocks::all(conn, station)? {
        for (position, slot) in clock.clock.slots.iter().enumerate() {
            if slot_references(&slot.kind)
                .iter()
                .any(|(_, r)| *r == Reference::Media(&id_text))
            {
                return Ok(Some(format!("slot {position} of clock {}", clock.id)));
            }
        }
    }
    for show in super::shows::all(conn, station)? {
        if show_references(&show.show)
            .iter()
            .any(|(_, r)| *r == Reference::Media(&id_text))
        {
            return Ok(Some(format!("show {}", show.id)));
        }
    }
    Ok(None)
}

/// Deletes the item, its tag links, its analysis jobs and the planned schedule entries that
/// would play it from `from` on (entries that ended before stay, as history); returns the item
/// as it was and how many schedule entries were removed. The file is the caller's to remove.
pub fn delete(
    conn: &mut DbConnection,
    station: StationId,
    id: MediaId,
    from: DateTime<Utc>,
) -> Result<(MediaRecord, usize), StorageError> {
    use super::schema::schedule_entries;
    let record = get(conn, station, id)?;
    let unplanned = diesel::delete(
        schedule_entries::table
            .filter(schedule_entries::station_id.eq(station.to_string()))
            .filter(schedule_entries::source_type.eq("media"))
            .filter(schedule_entries::source_id.eq(id.to_string()))
            .filter(schedule_entries::ends_at.gt(from.naive_utc())),
    )
    .execute(conn)?;
    // Links and jobs go with the row (ON DELETE CASCADE); deleted here too so that no backend's
    // foreign key settings matter.
    diesel::delete(media_tag_links::table.filter(media_tag_links::media_id.eq(id.to_string())))
        .execute(conn)?;
    diesel::delete(analysis_jobs::table.filter(analysis_jobs::media_id.eq(id.to_string())))
        .execute(conn)?;
    let deleted = diesel::delete(
        media_items::table
            .filter(media_items::id.eq(id.to_string()))
            .filter(media_items::station_id.eq(station.to_string())),
    )
    .execute(conn)?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    Ok((record, unplanned))
}

/// Every tag of `station`, by name, with how many it has in all.
pub fn list_tags(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<Tag>, i64), StorageError> {
    let total: i64 = tags::table
        .filter(tags::station_id.eq(station.to_string()))
        .count()
        .get_result(conn)?;
    let rows = tags::table
        .filter(tags::station_id.eq(station.to_string()))
        .order((tags::name, tags::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(TagRow::as_select())
        .load(conn)?;
    let items = rows
        .into_iter()
        .map(Tag::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Creates a tag; a name the station has already is [`StorageError::Conflict`].
pub fn create_tag(
    conn: &mut DbConnection,
    station: StationId,
    name: &str,
) -> Result<Tag, StorageError> {
    let name = check_tag_name(name)?;
    let id = TagId::random();
    let inserted = diesel::insert_into(tags::table)
        .values((
            tags::id.eq(id.to_string()),
            tags::station_id.eq(station.to_string()),
            tags::name.eq(&name),
            tags::created_at.eq(now()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(StorageError::Conflict {
                entity: "tag",
                field: "name",
                value: name,
            });
        }
        Err(e) => return Err(e.into()),
    }
    get_tag(conn, station, id)
}

/// The tag `id` of `station`.
pub fn get_tag(
    conn: &mut DbConnection,
    station: StationId,
    id: TagId,
) -> Result<Tag, StorageError> {
    tags::table
        .filter(tags::id.eq(id.to_string()))
        .filter(tags::station_id.eq(station.to_string()))
        .select(TagRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| tag_not_found(id))?
        .try_into()
}

/// Deletes a tag and its links.
pub fn delete_tag(
    conn: &mut DbConnection,
    station: StationId,
    id: TagId,
) -> Result<Tag, StorageError> {
    let tag = get_tag(conn, station, id)?;
    diesel::delete(media_tag_links::table.filter(media_tag_links::tag_id.eq(id.to_string())))
        .execute(conn)?;
    diesel::delete(tags::table.filter(tags::id.eq(id.to_string()))).execute(conn)?;
    Ok(tag)
}

/// Links tag `tag` to item `media` (both of `station`); linking twice changes nothing.
/// Returns whether a link was made.
pub fn link_tag(
    conn: &mut DbConnection,
    station: StationId,
    media: MediaId,
    tag: TagId,
) -> Result<bool, StorageError> {
    get_tag(conn, station, tag)?;
    get(conn, station, media)?;
    let linked = diesel::select(diesel::dsl::exists(
        media_tag_links::table
            .filter(media_tag_links::media_id.eq(media.to_string()))
            .filter(media_tag_links::tag_id.eq(tag.to_string())),
    ))
    .get_result::<bool>(conn)?;
    if linked {
        return Ok(false);
    }
    match diesel::insert_into(media_tag_links::table)
        .values((
            media_tag_links::media_id.eq(media.to_string()),
            media_tag_links::tag_id.eq(tag.to_string()),
        ))
        .execute(conn)
    {
        Ok(_) => Ok(true),
        // Linked by a concurrent request meanwhile: the same outcome.
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Unlinks tag `tag` from item `media`; unlinking what is not linked changes nothing. Returns
/// whether a link was removed.
pub fn unlink_tag(
    conn: &mut DbConnection,
    station: StationId,
    media: MediaId,
    tag: TagId,
) -> Result<bool, StorageError> {
    get_tag(conn, station, tag)?;
    get(conn, station, media)?;
    let removed = diesel::delete(
        media_tag_links::table
            .filter(media_tag_links::media_id.eq(media.to_string()))
            .filter(media_tag_links::tag_id.eq(tag.to_string())),
    )
    .execute(conn)?;
    Ok(removed > 0)
}

/// Takes one pending job for this worker, oldest first, skipping jobs that failed less than
/// `backoff` × attempts ago. `None` when there is nothing to do. Safe against other workers on
/// the same database: a job is taken by a conditional update that only one of them wins.
pub fn claim_job(
    conn: &mut DbConnection,
    at: DateTime<Utc>,
    backoff: TimeDelta,
) -> Result<Option<ClaimedJob>, StorageError> {
    let candidates: Vec<(String, String, i32, NaiveDateTime)> = analysis_jobs::table
        .filter(analysis_jobs::status.eq("pending"))
        .order((analysis_jobs::created_at, analysis_jobs::id))
        .limit(32)
        .select((
            analysis_jobs::id,
            analysis_jobs::media_id,
            analysis_jobs::attempts,
            analysis_jobs::updated_at,
        ))
        .load(conn)?;
    for (job, media, attempts, updated) in candidates {
        if attempts > 0 && updated.and_utc() + backoff * attempts > at {
            continue;
        }
        let won = diesel::update(
            analysis_jobs::table
                .filter(analysis_jobs::id.eq(&job))
                .filter(analysis_jobs::status.eq("pending"))
                .filter(analysis_jobs::attempts.eq(attempts)),
        )
        .set((
            analysis_jobs::status.eq("running"),
            analysis_jobs::attempts.eq(attempts + 1),
            analysis_jobs::updated_at.eq(now()),
        ))
        .execute(conn)?;
        if won != 1 {
            continue; // another worker took it
        }
        let item: Option<(String, String)> = media_items::table
            .filter(media_items::id.eq(&media))
            .select((media_items::station_id, media_items::storage_key))
            .first(conn)
            .optional()?;
        let Some((station, storage_key)) = item else {
            // The item was deleted meanwhile; its job goes with it.
            diesel::delete(analysis_jobs::table.filter(analysis_jobs::id.eq(&job)))
                .execute(conn)?;
            continue;
        };
        return Ok(Some(ClaimedJob {
            id: stored_id("analysis_jobs", "id", &job)?,
            media_id: stored_id("analysis_jobs", "media_id", &media)?,
            station_id: stored_id("media_items", "station_id", &station)?,
            storage_key,
            attempt: attempts + 1,
        }));
    }
    Ok(None)
}

/// Writes the measurements to the item (cue points only where none are set: an operator's
/// cues win), marks it analysed and the job done. Call it inside a transaction.
pub fn finish_job(
    conn: &mut DbConnection,
    job: &ClaimedJob,
    measured: &Measurements,
) -> Result<(), StorageError> {
    let id = job.media_id.to_string();
    let at = now();
    diesel::update(media_items::table.filter(media_items::id.eq(&id)))
        .set((
            media_items::duration_ms.eq(Some(measured.duration_ms)),
            media_items::loudness_lufs.eq(measured.loudness_lufs),
            media_items::true_peak_dbtp.eq(measured.true_peak_dbtp),
            media_items::analysis_state.eq(AnalysisState::Done.as_str()),
            media_items::updated_at.eq(at),
        ))
        .execute(conn)?;
    diesel::update(
        media_items::table
            .filter(media_items::id.eq(&id))
            .filter(media_items::cue_in_ms.is_null()),
    )
    .set(media_items::cue_in_ms.eq(Some(measured.cue_in_ms)))
    .execute(conn)?;
    diesel::update(
        media_items::table
            .filter(media_items::id.eq(&id))
            .filter(media_items::cue_out_ms.is_null()),
    )
    .set(media_items::cue_out_ms.eq(Some(measured.cue_out_ms)))
    .execute(conn)?;
    diesel::update(analysis_jobs::table.filter(analysis_jobs::id.eq(job.id.to_string())))
        .set((
            analysis_jobs::status.eq("done"),
            analysis_jobs::error.eq(None::<String>),
            analysis_jobs::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failed attempt: the job goes back to `pending` while attempts remain, else it is
/// `failed` and so is the item's analysis. Call it inside a transaction.
pub fn fail_job(
    conn: &mut DbConnection,
    job: &ClaimedJob,
    error: &str,
) -> Result<FailOutcome, StorageError> {
    let outcome = if job.attempt >= MAX_ATTEMPTS {
        FailOutcome::GaveUp
    } else {
        FailOutcome::Retry
    };
    let at = now();
    let status = match outcome {
        FailOutcome::Retry => "pending",
        FailOutcome::GaveUp => "failed",
    };
    // The message is for people; a decoder's can be long.
    let error: String = error.chars().take(2000).collect();
    diesel::update(analysis_jobs::table.filter(analysis_jobs::id.eq(job.id.to_string())))
        .set((
            analysis_jobs::status.eq(status),
            analysis_jobs::error.eq(Some(error)),
            analysis_jobs::updated_at.eq(at),
        ))
        .execute(conn)?;
    if outcome == FailOutcome::GaveUp {
        diesel::update(media_items::table.filter(media_items::id.eq(job.media_id.to_string())))
            .set((
                media_items::analysis_state.eq(AnalysisState::Failed.as_str()),
                media_items::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(outcome)
}

/// Hands jobs left `running` since before `lease_start` (their worker died) back to the queue;
/// returns how many.
pub fn requeue_stalled(
    conn: &mut DbConnection,
    lease_start: DateTime<Utc>,
) -> Result<usize, StorageError> {
    Ok(diesel::update(
        analysis_jobs::table
            .filter(analysis_jobs::status.eq("running"))
            .filter(analysis_jobs::updated_at.lt(lease_start.naive_utc())),
    )
    .set((
        analysis_jobs::status.eq("pending"),
        analysis_jobs::error.eq(Some("the worker stopped before it finished")),
        analysis_jobs::updated_at.eq(now()),
    ))
    .execute(conn)?)
}

/// The status, attempts and error of item `media`'s latest job (for tests and tools).
pub fn job_of(
    conn: &mut DbConnection,
    media: MediaId,
) -> Result<Option<(String, i32, Option<String>)>, StorageError> {
    Ok(analysis_jobs::table
        .filter(analysis_jobs::media_id.eq(media.to_string()))
        .order(analysis_jobs::created_at.desc())
        .select((
            analysis_jobs::status,
            analysis_jobs::attempts,
            analysis_jobs::error,
        ))
        .first(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_checked() {
        assert_eq!(check_text("title", "  Song ").unwrap(), "Song");
        assert!(check_text("title", " ").is_err());
        assert!(check_text("title", "a\u{7}b").is_err());
        assert!(check_text("title", &"x".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(check_tag_name(&"x".repeat(MAX_TAG_CHARS + 1)).is_err());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ab"), "%ab%");
        assert_eq!(contains_pattern("100%_!"), "%100!%!_!!%");
    }

    #[test]
    fn cues_must_be_ordered_and_within_the_item() {
        assert!(check_cues(Some(0), Some(1000), Some(1000)).is_ok());
        assert!(check_cues(None, None, None).is_ok());
        assert!(check_cues(Some(500), None, None).is_ok());
        let field = |r: Result<(), StorageError>| match r {
            Err(StorageError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(check_cues(Some(-1), None, None)), "cue_in_ms");
        assert_eq!(field(check_cues(Some(1000), None, Some(1000))), "cue_in_ms");
        assert_eq!(
            field(check_cues(None, Some(1001), Some(1000))),
            "cue_out_ms"
        );
        assert_eq!(field(check_cues(Some(500), Some(500), None)), "cue_out_ms");
        assert_eq!(
            field(check_cues(Some(600), Some(500), Some(900))),
            "cue_out_ms"
        );
        assert_eq!(field(check_cues(None, Some(0), None)), "cue_out_ms");
    }
}
