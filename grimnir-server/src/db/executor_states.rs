//! Executor states: one row per station saying what its executor is doing (SPEC.md
//! `executor_states`). The executor pool writes it on every change of state or tier and as a
//! heartbeat; the API reads it.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::executor_states;
use super::stations::StationId;
use super::{DbConnection, StorageError, stored_id, uuid_id};

uuid_id! {
    /// The id of an executor state row.
    ExecutorStateId
}

/// What a station's executor is doing, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorStateRow {
    /// Its station.
    pub station_id: StationId,
    /// `idle`, `preloading`, `playing`, `fading`, `live` or `emergency`.
    pub state: String,
    /// The tier on air, 0 to 4 (4, fallback, while nothing is).
    pub current_priority: u8,
    /// The id of what is on air, when it has one.
    pub current_source_id: Option<String>,
    /// What kind of source is on air: `media`, `live`, `webstream`, `emergency_audio`,
    /// `fallback`.
    pub current_source_type: Option<String>,
    /// The engine's last reported buffer depth, in samples.
    pub buffer_depth: i64,
    /// The executor's last sign of life.
    pub last_heartbeat: DateTime<Utc>,
    /// Further details: what is on air, the active sources, whether the engine is up.
    pub metadata: serde_json::Value,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = executor_states)]
struct Row {
    station_id: String,
    state: String,
    current_priority: i16,
    current_source_id: Option<String>,
    current_source_type: Option<String>,
    buffer_depth: i64,
    last_heartbeat: NaiveDateTime,
    metadata: String,
}

#[derive(Insertable)]
#[diesel(table_name = executor_states)]
struct Insert<'a> {
    id: &'a str,
    station_id: &'a str,
    state: &'a str,
    current_priority: i16,
    current_source_id: Option<&'a str>,
    current_source_type: Option<&'a str>,
    buffer_depth: i64,
    last_heartbeat: NaiveDateTime,
    metadata: &'a str,
}

impl TryFrom<Row> for ExecutorStateRow {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        let metadata = serde_json::from_str(&row.metadata).map_err(|_| StorageError::Corrupt {
            table: "executor_states",
            column: "metadata",
            value: row.metadata.clone(),
            expected: "a JSON object",
        })?;
        Ok(ExecutorStateRow {
            station_id: stored_id("executor_states", "station_id", &row.station_id)?,
            state: row.state,
            current_priority: u8::try_from(row.current_priority).unwrap_or(4),
            current_source_id: row.current_source_id,
            current_source_type: row.current_source_type,
            buffer_depth: row.buffer_depth,
            last_heartbeat: row.last_heartbeat.and_utc(),
            metadata,
        })
    }
}

/// Writes `state` as its station's row, replacing the one there. The source id is cut to the
/// column's 36 characters.
pub fn upsert(conn: &mut DbConnection, state: &ExecutorStateRow) -> Result<(), StorageError> {
    let station = state.station_id.to_string();
    let metadata = state.metadata.to_string();
    let source_id = state
        .current_source_id
        .as_deref()
        .map(|s| s.get(..36).unwrap_or(s));
    let heartbeat = chrono::SubsecRound::trunc_subsecs(state.last_heartbeat, 6).naive_utc();
    let priority = i16::from(state.current_priority);
    // An update first, and an insert when there was no row: the one statement that works the
    // same on the three backends. A concurrent insert loses on the unique station key and is
    // retried as an update.
    let changes = (
        executor_states::state.eq(&state.state),
        executor_states::current_priority.eq(priority),
        executor_states::current_source_id.eq(source_id),
        executor_states::current_source_type.eq(state.current_source_type.as_deref()),
        executor_states::buffer_depth.eq(state.buffer_depth),
        executor_states::last_heartbeat.eq(heartbeat),
        executor_states::metadata.eq(&metadata),
    );
    diesel::update(executor_states::table.filter(executor_states::station_id.eq(&station)))
        .set(changes)
        .execute(conn)?;
    if exists(conn, &station)? {
        return Ok(());
    }
    let inserted = diesel::insert_into(executor_states::table)
        .values(Insert {
            id: &ExecutorStateId::random().to_string(),
            station_id: &station,
            state: &state.state,
            current_priority: priority,
            current_source_id: source_id,
            current_source_type: state.current_source_type.as_deref(),
            buffer_depth: state.buffer_depth,
            last_heartbeat: heartbeat,
            metadata: &metadata,
        })
        .execute(conn);
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if super::is_unique_violation(&e) => {
            diesel::update(executor_states::table.filter(executor_states::station_id.eq(&station)))
                .set(changes)
                .execute(conn)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn exists(conn: &mut DbConnection, station: &str) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        executor_states::table.filter(executor_states::station_id.eq(station)),
    ))
    .get_result(conn)?)
}

/// Sets the heartbeat of `station`'s row, if it has one.
pub fn heartbeat(
    conn: &mut DbConnection,
    station: StationId,
    at: DateTime<Utc>,
    buffer_depth: Option<i64>,
) -> Result<(), StorageError> {
    let at = chrono::SubsecRound::trunc_subsecs(at, 6).naive_utc();
    let target = executor_states::table.filter(executor_states::station_id.eq(station.to_string()));
    match buffer_depth {
        Some(depth) => diesel::update(target)
            .set((
                executor_states::last_heartbeat.eq(at),
                executor_states::buffer_depth.eq(depth),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set(executor_states::last_heartbeat.eq(at))
            .execute(conn)?,
    };
    Ok(())
}

/// Marks `station`'s row (if it has one) idle with nothing on air: its executor was stopped.
pub fn mark_idle(conn: &mut DbConnection, station: StationId) -> Result<(), StorageError> {
    diesel::update(
        executor_states::table.filter(executor_states::station_id.eq(station.to_string())),
    )
    .set((
        executor_states::state.eq("idle"),
        executor_states::current_priority.eq(4i16),
        executor_states::current_source_id.eq(None::<String>),
        executor_states::current_source_type.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(())
}

/// The row of `station`.
pub fn get(conn: &mut DbConnection, station: StationId) -> Result<ExecutorStateRow, StorageError> {
    executor_states::table
        .filter(executor_states::station_id.eq(station.to_string()))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "executor state of station",
            id: station.to_string(),
        })?
        .try_into()
}

/// The rows of these stations (every station's with `None`), by station id.
pub fn list(
    conn: &mut DbConnection,
    stations: Option<&[StationId]>,
) -> Result<Vec<ExecutorStateRow>, StorageError> {
    let mut query = executor_states::table
        .order(executor_states::station_id)
        .select(Row::as_select())
        .into_boxed();
    if let Some(stations) = stations {
        if stations.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = stations.iter().map(ToString::to_string).collect();
        query = query.filter(executor_states::station_id.eq_any(ids));
    }
    query
        .load(conn)?
        .into_iter()
        .map(ExecutorStateRow::try_from)
        .collect()
}
