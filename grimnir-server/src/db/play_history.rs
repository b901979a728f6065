//! Play history: what went on air and when (SPEC.md `play_history`), for analytics and the
//! separation rules of the planner.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{media_items, play_history};
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, uuid_id};

uuid_id! {
    /// The id of a play history row.
    PlayId
}

/// Longest title and artist kept, in characters (the columns are `VARCHAR(512)`).
pub const MAX_TEXT_CHARS: usize = 512;

/// One play about to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlay {
    /// The station.
    pub station_id: StationId,
    /// The media item, when it is one of the station's (others are recorded without it).
    pub media_id: Option<uuid::Uuid>,
    /// Title.
    pub title: String,
    /// Artist, when known.
    pub artist: Option<String>,
    /// When it went on air.
    pub started_at: DateTime<Utc>,
    /// When it left the air, when already known.
    pub ended_at: Option<DateTime<Utc>>,
    /// Further details (a JSON object): the timeline entry, the tier, who reported it.
    pub metadata: serde_json::Value,
}

/// How often one title was played in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spins {
    /// The media item, when the plays named one.
    pub media_id: Option<uuid::Uuid>,
    /// Title.
    pub title: String,
    /// Artist, when known.
    pub artist: Option<String>,
    /// Plays that started in the window.
    pub plays: i64,
}

#[derive(Insertable)]
#[diesel(table_name = play_history)]
struct Insert<'a> {
    id: &'a str,
    station_id: &'a str,
    media_id: Option<&'a str>,
    title: &'a str,
    artist: Option<&'a str>,
    started_at: NaiveDateTime,
    ended_at: Option<NaiveDateTime>,
    metadata: &'a str,
}

fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

fn micros(t: DateTime<Utc>) -> NaiveDateTime {
    chrono::SubsecRound::trunc_subsecs(t, 6).naive_utc()
}

/// Records a play and returns its id. A media id that is not one of the station's media items
/// is left out of the row (and kept in its metadata), since the column refers to
/// `media_items`; title and artist are cut to [`MAX_TEXT_CHARS`].
pub fn record(conn: &mut DbConnection, play: &NewPlay) -> Result<PlayId, StorageError> {
    let station = play.station_id.to_string();
    let media = match play.media_id {
        Some(m) => {
            let known = media_items::table
                .filter(media_items::id.eq(m.to_string()))
                .filter(media_items::station_id.eq(&station))
                .count()
                .get_result::<i64>(conn)?;
            (known > 0).then(|| m.to_string())
        }
        None => None,
    };
    let mut metadata = play.metadata.clone();
    if let (Some(m), None, Some(object)) = (play.media_id, &media, metadata.as_object_mut()) {
        object.insert("reported_media_id".to_owned(), m.to_string().into());
    }
    let id = PlayId::random();
    diesel::insert_into(play_history::table)
        .values(Insert {
            id: &id.to_string(),
            station_id: &station,
            media_id: media.as_deref(),
            title: cut(&play.title),
            artist: play.artist.as_deref().map(cut),
            started_at: micros(play.started_at),
            ended_at: play.ended_at.map(micros),
            metadata: &metadata.to_string(),
        })
        .execute(conn)?;
    Ok(id)
}

/// Sets the end of a play that has none yet.
pub fn end(conn: &mut DbConnection, id: PlayId, at: DateTime<Utc>) -> Result<(), StorageError> {
    diesel::update(
        play_history::table
            .find(id.to_string())
            .filter(play_history::ended_at.is_null()),
    )
    .set(play_history::ended_at.eq(Some(micros(at))))
    .execute(conn)?;
    Ok(())
}

/// Ends every play of `station` still open (none has an end) at `at`: after a restart, or when
/// an external playout reports the next track.
pub fn end_open(
    conn: &mut DbConnection,
    station: StationId,
    at: DateTime<Utc>,
) -> Result<usize, StorageError> {
    Ok(diesel::update(
        play_history::table
            .filter(play_history::station_id.eq(station.to_string()))
            .filter(play_history::ended_at.is_null()),
    )
    .set(play_history::ended_at.eq(Some(micros(at))))
    .execute(conn)?)
}

/// How many times each title (by media item, title and artist) started on air at `station` in
/// `[from, to)`, most played first (then by title), one page of it, and how many titles there
/// are in all.
pub fn spins(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    page: Page,
) -> Result<(Vec<Spins>, i64), StorageError> {
    let rows: Vec<(Option<String>, String, Option<String>, i64)> = play_history::table
        .filter(play_history::station_id.eq(station.to_string()))
        .filter(play_history::started_at.ge(micros(from)))
        .filter(play_history::started_at.lt(micros(to)))
        .group_by((
            play_history::media_id,
            play_history::title,
            play_history::artist,
        ))
        .select((
            play_history::media_id,
            play_history::title,
            play_history::artist,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    let mut all: Vec<Spins> = rows
        .into_iter()
        .map(|(media, title, artist, plays)| Spins {
            media_id: media.and_then(|m| m.parse().ok()),
            title,
            artist,
            plays,
        })
        .collect();
    // Ordered here rather than in SQL: the three backends sort text differently.
    all.sort_by(|a, b| {
        b.plays
            .cmp(&a.plays)
            .then_with(|| a.title.cmp(&b.title))
            .then_with(|| a.artist.cmp(&b.artist))
            .then_with(|| a.media_id.cmp(&b.media_id))
    });
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let take = usize::try_from(page.limit).unwrap_or(0);
    let items = all.into_iter().skip(skip).take(take).collect();
    Ok((items, total))
}
