//! Priority sources: the emergencies, overrides and live sources that claim a station's air
//! above automation (SPEC.md `priority_sources`).
//!
//! A row is written when a source is created and marked inactive when it is removed; the
//! executor pool re-applies the active rows when a station's executor starts, so an emergency
//! survives a restart of the server.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{mounts, priority_sources};
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a priority source.
    PrioritySourceId
}

/// Longest `source_type`, in characters (the column is `VARCHAR(32)`).
pub const MAX_SOURCE_TYPE_CHARS: usize = 32;

/// Longest input (an audio file or a live URL), in characters.
pub const MAX_INPUT_CHARS: usize = 2048;

/// A priority source as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PrioritySourceRow {
    /// Its id.
    pub id: PrioritySourceId,
    /// Its station.
    pub station_id: StationId,
    /// The mount it is for, when it names one.
    pub mount_id: Option<uuid::Uuid>,
    /// Its tier: 0 emergency, 1 live override, 2 live scheduled.
    pub priority: u8,
    /// What kind of input: `emergency_audio`, `live_icecast`, `webstream`, …
    pub source_type: String,
    /// The id of what it plays, when that has one.
    pub source_id: Option<String>,
    /// What the engine plays: the alert audio, or the live input (mount or URL).
    pub input: String,
    /// When it claims the air.
    pub starts_at: DateTime<Utc>,
    /// When it gives the air back; none until removed.
    pub ends_at: Option<DateTime<Utc>>,
    /// Whether it still claims the air (false once removed).
    pub active: bool,
    /// Further details, as given (a JSON object; `input` is kept in it).
    pub metadata: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What a new priority source is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPrioritySource {
    /// Its station.
    pub station_id: StationId,
    /// The mount it is for: one of the station's mounts.
    pub mount_id: Option<uuid::Uuid>,
    /// Its tier, 0 to 2.
    pub priority: u8,
    /// What kind of input, 1 to [`MAX_SOURCE_TYPE_CHARS`] characters.
    pub source_type: String,
    /// The id of what it plays, when that has one.
    pub source_id: Option<String>,
    /// What the engine plays, 1 to [`MAX_INPUT_CHARS`] characters.
    pub input: String,
    /// When it claims the air.
    pub starts_at: DateTime<Utc>,
    /// When it gives the air back (after `starts_at`), if known.
    pub ends_at: Option<DateTime<Utc>>,
    /// Further details: who asked, why.
    pub details: serde_json::Map<String, serde_json::Value>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = priority_sources)]
struct Row {
    id: String,
    station_id: String,
    mount_id: Option<String>,
    priority: i16,
    source_type: String,
    source_id: Option<String>,
    starts_at: NaiveDateTime,
    ends_at: Option<NaiveDateTime>,
    active: bool,
    metadata: String,
    created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = priority_sources)]
struct Insert<'a> {
    id: &'a str,
    station_id: &'a str,
    mount_id: Option<&'a str>,
    priority: i16,
    source_type: &'a str,
    source_id: Option<&'a str>,
    starts_at: NaiveDateTime,
    ends_at: Option<NaiveDateTime>,
    active: bool,
    metadata: &'a str,
    created_at: NaiveDateTime,
}

impl TryFrom<Row> for PrioritySourceRow {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        let corrupt = |column, value: String, expected| StorageError::Corrupt {
            table: "priority_sources",
            column,
            value,
            expected,
        };
        let metadata: serde_json::Value = serde_json::from_str(&row.metadata)
            .map_err(|_| corrupt("metadata", row.metadata.clone(), "a JSON object"))?;
        let input = metadata
            .get("input")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let priority = u8::try_from(row.priority)
            .ok()
            .filter(|p| *p <= 4)
            .ok_or_else(|| corrupt("priority", row.priority.to_string(), "a tier 0 to 4"))?;
        Ok(PrioritySourceRow {
            id: stored_id("priority_sources", "id", &row.id)?,
            station_id: stored_id("priority_sources", "station_id", &row.station_id)?,
            mount_id: row
                .mount_id
                .as_deref()
                .map(|m| stored_id("priority_sources", "mount_id", m))
                .transpose()?,
            priority,
            source_type: row.source_type,
            source_id: row.source_id,
            input,
            starts_at: row.starts_at.and_utc(),
            ends_at: row.ends_at.map(|t| t.and_utc()),
            active: row.active,
            metadata,
            created_at: row.created_at.and_utc(),
        })
    }
}

fn invalid(field: &'static str, value: impl ToString, reason: &str) -> StorageError {
    StorageError::Invalid {
        field,
        value: value.to_string(),
        reason: reason.to_owned(),
    }
}

/// Whether `mount` is one of `station`'s mounts.
pub fn mount_of_station(
    conn: &mut DbConnection,
    station: StationId,
    mount: uuid::Uuid,
) -> Result<bool, StorageError> {
    let found = mounts::table
        .filter(mounts::id.eq(mount.to_string()))
        .filter(mounts::station_id.eq(station.to_string()))
        .count()
        .get_result::<i64>(conn)?;
    Ok(found > 0)
}

/// Stores a new active priority source and returns it as stored. Refuses a tier above 2, an
/// empty or overlong type or input, and an end not after the start (all as
/// [`StorageError::Invalid`] naming the field). It starts with the insert, so that on SQLite it
/// waits for a concurrent writer; check the mount with [`mount_of_station`] before.
pub fn create(
    conn: &mut DbConnection,
    new: &NewPrioritySource,
) -> Result<PrioritySourceRow, StorageError> {
    if new.priority > 2 {
        return Err(invalid(
            "priority",
            new.priority,
            "a priority source is at tier 0, 1 or 2",
        ));
    }
    let source_type = new.source_type.trim();
    if source_type.is_empty() || source_type.chars().count() > MAX_SOURCE_TYPE_CHARS {
        return Err(invalid(
            "source_type",
            &new.source_type,
            &format!("must be 1 to {MAX_SOURCE_TYPE_CHARS} characters"),
        ));
    }
    let input = new.input.trim();
    if input.is_empty() || input.chars().count() > MAX_INPUT_CHARS {
        return Err(invalid(
            "input",
            &new.input,
            &format!("must be 1 to {MAX_INPUT_CHARS} characters"),
        ));
    }
    if let Some(source_id) = &new.source_id
        && (source_id.is_empty() || source_id.len() > 36)
    {
        return Err(invalid(
            "source_id",
            source_id,
            "must be 1 to 36 characters",
        ));
    }
    let starts_at = chrono::SubsecRound::trunc_subsecs(new.starts_at, 6);
    let ends_at = new
        .ends_at
        .map(|t| chrono::SubsecRound::trunc_subsecs(t, 6));
    if ends_at.is_some_and(|e| e <= starts_at) {
        return Err(invalid(
            "ends_at",
            ends_at.map(|e| e.to_rfc3339()).unwrap_or_default(),
            "must be after the start",
        ));
    }
    let mut metadata = new.details.clone();
    metadata.insert("input".to_owned(), serde_json::Value::from(input));
    let metadata = serde_json::Value::Object(metadata).to_string();
    let id = PrioritySourceId::random().to_string();
    let mount_id = new.mount_id.map(|m| m.to_string());
    diesel::insert_into(priority_sources::table)
        .values(Insert {
            id: &id,
            station_id: &new.station_id.to_string(),
            mount_id: mount_id.as_deref(),
            priority: i16::from(new.priority),
            source_type,
            source_id: new.source_id.as_deref(),
            starts_at: starts_at.naive_utc(),
            ends_at: ends_at.map(|t| t.naive_utc()),
            active: true,
            metadata: &metadata,
            created_at: now(),
        })
        .execute(conn)?;
    load(conn, &id)
}

fn load(conn: &mut DbConnection, id: &str) -> Result<PrioritySourceRow, StorageError> {
    priority_sources::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "priority source",
            id: id.to_owned(),
        })?
        .try_into()
}

/// The priority source `id` of `station`.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: PrioritySourceId,
) -> Result<PrioritySourceRow, StorageError> {
    let row = load(conn, &id.to_string())?;
    if row.station_id != station {
        return Err(StorageError::NotFound {
            entity: "priority source",
            id: id.to_string(),
        });
    }
    Ok(row)
}

/// One page of `station`'s active priority sources that have not ended by `at`, by tier, then
/// start, and how many there are in all.
pub fn list_active(
    conn: &mut DbConnection,
    station: StationId,
    at: DateTime<Utc>,
    page: Page,
) -> Result<(Vec<PrioritySourceRow>, i64), StorageError> {
    let at = at.naive_utc();
    let station = station.to_string();
    let total = priority_sources::table
        .filter(priority_sources::station_id.eq(&station))
        .filter(priority_sources::active.eq(true))
        .filter(
            priority_sources::ends_at
                .is_null()
                .or(priority_sources::ends_at.gt(at)),
        )
        .count()
        .get_result::<i64>(conn)?;
    let items = priority_sources::table
        .filter(priority_sources::station_id.eq(&station))
        .filter(priority_sources::active.eq(true))
        .filter(
            priority_sources::ends_at
                .is_null()
                .or(priority_sources::ends_at.gt(at)),
        )
        .order((
            priority_sources::priority,
            priority_sources::starts_at,
            priority_sources::id,
        ))
        .select(Row::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?
        .into_iter()
        .map(PrioritySourceRow::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Marks the source inactive and ends it at `at` (if it had no earlier end); returns it as
/// stored afterwards. A source already inactive is [`StorageError::NotFound`].
pub fn deactivate(
    conn: &mut DbConnection,
    station: StationId,
    id: PrioritySourceId,
    at: DateTime<Utc>,
) -> Result<PrioritySourceRow, StorageError> {
    let row = get(conn, station, id)?;
    if !row.active {
        return Err(StorageError::NotFound {
            entity: "active priority source",
            id: id.to_string(),
        });
    }
    let at = chrono::SubsecRound::trunc_subsecs(at, 6);
    let ends_at = match row.ends_at {
        Some(e) if e <= at => e,
        _ => at.max(row.starts_at + chrono::Duration::microseconds(1)),
    };
    diesel::update(priority_sources::table.find(id.to_string()))
        .set((
            priority_sources::active.eq(false),
            priority_sources::ends_at.eq(Some(ends_at.naive_utc())),
        ))
        .execute(conn)?;
    load(conn, &id.to_string())
}
