//! Clocks: hour templates (`clock_hours`) made of slots (`clock_slots`), stored as the planner's
//! own [`Clock`] and [`Slot`].
//!
//! Each slot row's `options` column holds the planner [`Slot`] serialized with serde_json (its
//! kind with the kind's fields, and its `hard_start` offset); the other columns mirror it for
//! queries and foreign keys: `kind` ([`SlotKind::name`]), `smart_block_id`, `media_id` (a hard
//! item), `webstream_id`, `duration_ms` (when the slot's length is fixed) and `hard_start`
//! (whether it has one). Slots are kept in `position` order from 0.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use grimnir_planner::{Clock, Millis, Slot, SlotKind};

use super::programme::{check_name, from_json, to_json};
use super::schema::{clock_hours, clock_slots};
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a clock (a `clock_hours` row).
    ClockId
}

/// A clock as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredClock {
    /// Its id.
    pub id: ClockId,
    /// Its station.
    pub station_id: StationId,
    /// Name shown to people.
    pub name: String,
    /// The planner's clock: its `id` is [`id`](Self::id) as text, its `name` is
    /// [`name`](Self::name), its slots in position order.
    pub clock: Clock,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a clock is made of, for creating or replacing one.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockInput {
    /// Name shown to people: 1 to 255 characters, no control characters.
    pub name: String,
    /// The slots in playing order, already validated by the planner and with their references
    /// checked against the station.
    pub slots: Vec<Slot>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = clock_hours)]
struct ClockRow {
    id: String,
    station_id: String,
    name: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = clock_slots)]
struct SlotRow {
    clock_hour_id: String,
    options: String,
}

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        entity: "clock",
        id: id.to_owned(),
    }
}

fn millis_column(length: Millis) -> i64 {
    i64::try_from(length.as_millis()).unwrap_or(i64::MAX)
}

/// The mirror columns of a slot: kind, smart block, media, webstream, fixed length.
fn mirror(
    slot: &Slot,
) -> (
    &'static str,
    Option<&str>,
    Option<&str>,
    Option<&str>,
    Option<i64>,
) {
    let kind = slot.kind.name();
    match &slot.kind {
        SlotKind::SmartBlock { block, duration } => (
            kind,
            Some(block.as_str()),
            None,
            None,
            duration.map(millis_column),
        ),
        SlotKind::HardItem { media } => (kind, None, Some(media.as_str()), None, None),
        SlotKind::Webstream {
            webstream,
            duration,
        } => (
            kind,
            None,
            None,
            Some(webstream.as_str()),
            Some(millis_column(*duration)),
        ),
        SlotKind::Live { duration, .. } => (kind, None, None, None, Some(millis_column(*duration))),
        _ => (kind, None, None, None, None),
    }
}

fn insert_slots(conn: &mut DbConnection, clock: &str, slots: &[Slot]) -> Result<(), StorageError> {
    for (position, slot) in slots.iter().enumerate() {
        let (kind, block, media, webstream, duration) = mirror(slot);
        let position = i32::try_from(position).map_err(|_| StorageError::Invalid {
            field: "slots",
            value: slots.len().to_string(),
            reason: "too many slots".to_owned(),
        })?;
        diesel::insert_into(clock_slots::table)
            .values((
                clock_slots::id.eq(uuid::Uuid::new_v4().to_string()),
                clock_slots::clock_hour_id.eq(clock),
                clock_slots::position.eq(position),
                clock_slots::kind.eq(kind),
                clock_slots::smart_block_id.eq(block),
                clock_slots::media_id.eq(media),
                clock_slots::webstream_id.eq(webstream),
                clock_slots::duration_ms.eq(duration),
                clock_slots::hard_start.eq(slot.hard_start.is_some()),
                clock_slots::options.eq(to_json(slot)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The clocks of `rows`, each with its slots in position order.
fn assemble(
    conn: &mut DbConnection,
    rows: Vec<ClockRow>,
) -> Result<Vec<StoredClock>, StorageError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut slots: BTreeMap<String, Vec<Slot>> = BTreeMap::new();
    if !ids.is_empty() {
        let slot_rows: Vec<SlotRow> = clock_slots::table
            .filter(clock_slots::clock_hour_id.eq_any(&ids))
            .order((clock_slots::clock_hour_id, clock_slots::position))
            .select(SlotRow::as_select())
            .load(conn)?;
        for row in slot_rows {
            let slot: Slot = from_json("clock_slots", "options", &row.options, "a planner slot")?;
            slots.entry(row.clock_hour_id).or_default().push(slot);
        }
    }
    rows.into_iter()
        .map(|row| {
            let clock = Clock {
                id: row.id.as_str().into(),
                name: row.name.clone(),
                slots: slots.remove(&row.id).unwrap_or_default(),
            };
            Ok(StoredClock {
                id: stored_id("clock_hours", "id", &row.id)?,
                station_id: stored_id("clock_hours", "station_id", &row.station_id)?,
                name: row.name,
                clock,
                created_at: row.created_at.and_utc(),
                updated_at: row.updated_at.and_utc(),
            })
        })
        .collect()
}

/// Stores a new clock with its slots at `station` and returns it as stored.
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    input: &ClockInput,
) -> Result<StoredClock, StorageError> {
    let name = check_name(&input.name)?;
    let id = ClockId::random();
    let text = id.to_string();
    let at = now();
    conn.transaction(|conn| {
        diesel::insert_into(clock_hours::table)
            .values((
                clock_hours::id.eq(&text),
                clock_hours::station_id.eq(station.to_string()),
                clock_hours::name.eq(name),
                clock_hours::created_at.eq(at),
                clock_hours::updated_at.eq(at),
            ))
            .execute(conn)?;
        insert_slots(conn, &text, &input.slots)?;
        get(conn, station, id)
    })
}

/// The clock with this id at this station.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: ClockId,
) -> Result<StoredClock, StorageError> {
    let row = clock_hours::table
        .find(id.to_string())
        .filter(clock_hours::station_id.eq(station.to_string()))
        .select(ClockRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(&id.to_string()))?;
    assemble(conn, vec![row])?
        .pop()
        .ok_or_else(|| not_found(&id.to_string()))
}

/// Whether this station has a clock with this id (as text).
pub fn exists(conn: &mut DbConnection, station: StationId, id: &str) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        clock_hours::table
            .find(id)
            .filter(clock_hours::station_id.eq(station.to_string())),
    ))
    .get_result(conn)?)
}

/// One page of a station's clocks by name, then id, and how many it has in all.
pub fn list(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<StoredClock>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = clock_hours::table
        .filter(clock_hours::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let rows = clock_hours::table
        .filter(clock_hours::station_id.eq(&station))
        .order((clock_hours::name, clock_hours::id))
        .select(ClockRow::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?;
    Ok((assemble(conn, rows)?, total))
}

/// Every clock of a station, by id (the order planning uses).
pub fn all(conn: &mut DbConnection, station: StationId) -> Result<Vec<StoredClock>, StorageError> {
    let rows = clock_hours::table
        .filter(clock_hours::station_id.eq(station.to_string()))
        .order(clock_hours::id)
        .select(ClockRow::as_select())
        .load(conn)?;
    assemble(conn, rows)
}

/// Replaces a clock's name and slots, and returns it as stored afterwards.
pub fn replace(
    conn: &mut DbConnection,
    station: StationId,
    id: ClockId,
    input: &ClockInput,
) -> Result<StoredClock, StorageError> {
    let name = check_name(&input.name)?;
    let text = id.to_string();
    conn.transaction(|conn| {
        diesel::update(
            clock_hours::table
                .find(&text)
                .filter(clock_hours::station_id.eq(station.to_string())),
        )
        .set((
            clock_hours::name.eq(name),
            clock_hours::updated_at.eq(now()),
        ))
        .execute(conn)?;
        // Existence is checked by reading back (MySQL counts changed rows, not matched ones).
        get(conn, station, id)?;
        diesel::delete(clock_slots::table.filter(clock_slots::clock_hour_id.eq(&text)))
            .execute(conn)?;
        insert_slots(conn, &text, &input.slots)?;
        get(conn, station, id)
    })
}

/// Deletes a clock of this station and its slots. Whether the grid still uses it is the
/// caller's to check first (see [`super::programme::clock_users`]).
pub fn delete(
    conn: &mut DbConnection,
    station: StationId,
    id: ClockId,
) -> Result<(), StorageError> {
    let text = id.to_string();
    conn.transaction(|conn| {
        // The slots first: the foreign key cascades, but SQLite enforces it only when asked to.
        get(conn, station, id)?;
        diesel::delete(clock_slots::table.filter(clock_slots::clock_hour_id.eq(&text)))
            .execute(conn)?;
        diesel::delete(clock_hours::table.find(&text)).execute(conn)?;
        Ok(())
    })
}

/// The clocks of this station with a slot that plays smart block `block` (its id as text), as
/// `(clock id, slot position)` pairs.
pub fn slots_using_block(
    conn: &mut DbConnection,
    station: StationId,
    block: &str,
) -> Result<Vec<(String, i32)>, StorageError> {
    Ok(clock_slots::table
        .inner_join(clock_hours::table)
        .filter(clock_hours::station_id.eq(station.to_string()))
        .filter(clock_slots::smart_block_id.eq(block))
        .order((clock_hours::id, clock_slots::position))
        .select((clock_hours::id, clock_slots::position))
        .load(conn)?)
}
