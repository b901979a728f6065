//! The materialized schedule: the planner's timeline, entry by entry, in `schedule_entries`.
//!
//! **Contract.** Each row's `metadata` column holds the whole planner [`Entry`] serialized
//! with serde_json; `starts_at`, `ends_at`, `tier` (0–4), `source_type` (`media`, `webstream`,
//! `live`, `fallback`) and `source_id` (the media item or webstream id, when the source has one)
//! mirror it for queries. Whatever writes an entry writes both, and [`timeline`] rebuilds the
//! planner's [`Timeline`] from the `metadata` alone, so the executor plays exactly what was
//! planned.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use grimnir_planner::{Entry, Play, Source, Timeline};

use super::programme::{from_json, to_json};
use super::schema::schedule_entries;
use super::stations::{self, StationId};
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a schedule entry.
    ScheduleEntryId
}

/// A schedule entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    /// Its id.
    pub id: ScheduleEntryId,
    /// Its station.
    pub station_id: StationId,
    /// The planner's entry, as planned or as edited since.
    pub entry: Entry,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = schedule_entries)]
struct Row {
    id: String,
    station_id: String,
    metadata: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<Row> for StoredEntry {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        Ok(StoredEntry {
            id: stored_id("schedule_entries", "id", &row.id)?,
            station_id: stored_id("schedule_entries", "station_id", &row.station_id)?,
            entry: from_json(
                "schedule_entries",
                "metadata",
                &row.metadata,
                "a planner timeline entry",
            )?,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// The `source_type` and `source_id` columns of an entry.
pub fn source_columns(source: &Source) -> (&'static str, Option<&str>) {
    match source {
        Source::Media { id, .. } => ("media", Some(id.as_str())),
        Source::Webstream { id } => ("webstream", Some(id.as_str())),
        Source::Live { .. } => ("live", None),
        _ => ("fallback", None),
    }
}

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        entity: "schedule entry",
        id: id.to_owned(),
    }
}

fn insert(conn: &mut DbConnection, station: &str, entry: &Entry) -> Result<(), StorageError> {
    let (source_type, source_id) = source_columns(&entry.source);
    let at = now();
    diesel::insert_into(schedule_entries::table)
        .values((
            schedule_entries::id.eq(ScheduleEntryId::random().to_string()),
            schedule_entries::station_id.eq(station),
            schedule_entries::starts_at.eq(entry.start.naive_utc()),
            schedule_entries::ends_at.eq(entry.end.naive_utc()),
            schedule_entries::tier.eq(i16::from(entry.tier.number())),
            schedule_entries::source_type.eq(source_type),
            schedule_entries::source_id.eq(source_id),
            schedule_entries::metadata.eq(to_json(entry)),
            schedule_entries::created_at.eq(at),
            schedule_entries::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Replaces the station's entries that overlap `from`..`to` with `entries`, in one
/// transaction, and returns how many were removed.
pub fn replace_window(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    entries: &[Entry],
) -> Result<usize, StorageError> {
    let id = station.to_string();
    conn.transaction(|conn| {
        // The write first: SQLite then waits for a concurrent writer instead of failing.
        let removed = diesel::delete(
            schedule_entries::table
                .filter(schedule_entries::station_id.eq(&id))
                .filter(schedule_entries::ends_at.gt(from.naive_utc()))
                .filter(schedule_entries::starts_at.lt(to.naive_utc())),
        )
        .execute(conn)?;
        for entry in entries {
            insert(conn, &id, entry)?;
        }
        Ok(removed)
    })
}

/// One page of the station's entries that overlap `from`..`to`, in time order, and how many
/// there are in all.
pub fn list(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    page: Page,
) -> Result<(Vec<StoredEntry>, i64), StorageError> {
    let id = station.to_string();
    let (from, to) = (from.naive_utc(), to.naive_utc());
    let total: i64 = schedule_entries::table
        .filter(schedule_entries::station_id.eq(&id))
        .filter(schedule_entries::ends_at.gt(from))
        .filter(schedule_entries::starts_at.lt(to))
        .count()
        .get_result(conn)?;
    let items = schedule_entries::table
        .filter(schedule_entries::station_id.eq(&id))
        .filter(schedule_entries::ends_at.gt(from))
        .filter(schedule_entries::starts_at.lt(to))
        .order((schedule_entries::starts_at, schedule_entries::id))
        .select(Row::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?
        .into_iter()
        .map(StoredEntry::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// The entry with this id at this station.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: ScheduleEntryId,
) -> Result<StoredEntry, StorageError> {
    schedule_entries::table
        .find(id.to_string())
        .filter(schedule_entries::station_id.eq(station.to_string()))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(&id.to_string()))?
        .try_into()
}

/// Another entry of the station that overlaps `start`..`end`, if there is one (the earliest).
pub fn overlapping(
    conn: &mut DbConnection,
    station: StationId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    except: ScheduleEntryId,
) -> Result<Option<StoredEntry>, StorageError> {
    schedule_entries::table
        .filter(schedule_entries::station_id.eq(station.to_string()))
        .filter(schedule_entries::id.ne(except.to_string()))
        .filter(schedule_entries::ends_at.gt(start.naive_utc()))
        .filter(schedule_entries::starts_at.lt(end.naive_utc()))
        .order((schedule_entries::starts_at, schedule_entries::id))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(StoredEntry::try_from)
        .transpose()
}

/// Stores `entry` as the new content of entry `id`, columns and metadata together, and
/// returns it as stored.
pub fn update(
    conn: &mut DbConnection,
    station: StationId,
    id: ScheduleEntryId,
    entry: &Entry,
) -> Result<StoredEntry, StorageError> {
    let (source_type, source_id) = source_columns(&entry.source);
    conn.transaction(|conn| {
        diesel::update(
            schedule_entries::table
                .find(id.to_string())
                .filter(schedule_entries::station_id.eq(station.to_string())),
        )
        .set((
            schedule_entries::starts_at.eq(entry.start.naive_utc()),
            schedule_entries::ends_at.eq(entry.end.naive_utc()),
            schedule_entries::tier.eq(i16::from(entry.tier.number())),
            schedule_entries::source_type.eq(source_type),
            schedule_entries::source_id.eq(source_id),
            schedule_entries::metadata.eq(to_json(entry)),
            schedule_entries::updated_at.eq(now()),
        ))
        .execute(conn)?;
        get(conn, station, id)
    })
}

/// The media entries of the station that start within `from`..`to`, as plays: what the
/// planner counts as history when it plans on from `to`.
pub fn scheduled_plays(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Play>, StorageError> {
    let rows: Vec<(Option<String>, NaiveDateTime)> = schedule_entries::table
        .filter(schedule_entries::station_id.eq(station.to_string()))
        .filter(schedule_entries::source_type.eq("media"))
        .filter(schedule_entries::starts_at.ge(from.naive_utc()))
        .filter(schedule_entries::starts_at.lt(to.naive_utc()))
        .order((schedule_entries::starts_at, schedule_entries::id))
        .select((schedule_entries::source_id, schedule_entries::starts_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(media, at)| {
            media.map(|m| Play {
                media: m.into(),
                started_at: at.and_utc(),
            })
        })
        .collect())
}

/// The rows of `station` that overlap `[from, to)`, in time order.
fn rows_between(
    conn: &mut DbConnection,
    station: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Row>, StorageError> {
    Ok(schedule_entries::table
        .filter(schedule_entries::station_id.eq(station))
        .filter(schedule_entries::ends_at.gt(from.naive_utc()))
        .filter(schedule_entries::starts_at.lt(to.naive_utc()))
        .order((schedule_entries::starts_at, schedule_entries::id))
        .select(Row::as_select())
        .load(conn)?)
}

/// The stored timeline of `station` between `from` and `to`: every entry that overlaps the
/// span, in time order, rebuilt from the planner entries in `metadata`. A row that cannot be
/// read is an error ([`StorageError::Corrupt`]).
///
/// The timeline's `start` and `end` are `from` and `to`, its `now` is `from`, and its `seed`
/// is 0: a stored schedule may join several plans, each with its own seed (each entry's
/// provenance keeps the seed of its pick).
pub fn timeline(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Timeline, StorageError> {
    let row = stations::get(conn, station)?;
    let id = station.to_string();
    let entries = rows_between(conn, &id, from, to)?
        .into_iter()
        .map(|r| StoredEntry::try_from(r).map(|s| s.entry))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Timeline {
        station: id.into(),
        timezone: row.timezone,
        seed: 0,
        now: from,
        start: from,
        end: to,
        entries,
    })
}

/// The stored timeline of `station` between `from` and `to` as the executor plays it: like
/// [`timeline`], but a row whose metadata is not a planner entry, an empty entry, or one that
/// overlaps the entry before it is left out with a warning instead of failing the whole
/// timeline (one bad row must not take a station's programme off the air), and `start` reaches
/// back to the first entry when that entry began before `from` (it is on air at `from`).
pub fn playable_timeline(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Timeline, StorageError> {
    let info = stations::get(conn, station)?;
    let id = station.to_string();
    let mut entries: Vec<Entry> = Vec::new();
    for row in rows_between(conn, &id, from, to)? {
        let row_id = row.id.clone();
        let entry = match StoredEntry::try_from(row) {
            Ok(stored) => stored.entry,
            Err(e) => {
                tracing::warn!(station_id = %station, entry_id = %row_id, error = %e,
                    "schedule entry left out: it cannot be read");
                continue;
            }
        };
        if entry.end <= entry.start || entries.last().is_some_and(|p| entry.start < p.end) {
            tracing::warn!(station_id = %station, entry_id = %row_id,
                "schedule entry left out: empty, or overlapping the entry before it");
            continue;
        }
        entries.push(entry);
    }
    Ok(Timeline {
        station: id.into(),
        timezone: info.timezone,
        seed: 0,
        now: from,
        start: entries.first().map_or(from, |e| e.start.min(from)),
        end: to,
        entries,
    })
}
