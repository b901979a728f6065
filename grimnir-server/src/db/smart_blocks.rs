//! Smart blocks: rule-based track selection, stored as the planner's own [`SmartBlock`].
//!
//! The `rules` column holds the whole [`grimnir_planner::SmartBlock`] serialized with serde_json,
//! its `id` the row's id and its `name` the row's name, so a block reads back exactly as a
//! station file would declare it. Validation of the rules is the planner's
//! ([`SmartBlock::validate`]); the API does it before calling here.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use grimnir_planner::SmartBlock;

use super::programme::{check_name, from_json, to_json};
use super::schema::smart_blocks;
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a smart block.
    SmartBlockId
}

/// A smart block as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSmartBlock {
    /// Its id.
    pub id: SmartBlockId,
    /// Its station.
    pub station_id: StationId,
    /// Name shown to people.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The planner's block: filter, order, separation, quotas, target duration. Its `id` is
    /// [`id`](Self::id) as text and its `name` is [`name`](Self::name).
    pub block: SmartBlock,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a smart block is made of, for creating or replacing one.
#[derive(Debug, Clone, PartialEq)]
pub struct SmartBlockInput {
    /// Name shown to people: 1 to 255 characters, no control characters.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The rules, already validated by the planner. Its `id` and `name` are replaced by the
    /// row's.
    pub block: SmartBlock,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = smart_blocks)]
struct Row {
    id: String,
    station_id: String,
    name: String,
    description: Option<String>,
    rules: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<Row> for StoredSmartBlock {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        let mut block: SmartBlock =
            from_json("smart_blocks", "rules", &row.rules, "a planner smart block")?;
        block.id = row.id.as_str().into();
        block.name.clone_from(&row.name);
        Ok(StoredSmartBlock {
            id: stored_id("smart_blocks", "id", &row.id)?,
            station_id: stored_id("smart_blocks", "station_id", &row.station_id)?,
            name: row.name,
            description: row.description,
            block,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        entity: "smart block",
        id: id.to_owned(),
    }
}

fn rules_of(id: &str, input: &SmartBlockInput, name: &str) -> String {
    let mut block = input.block.clone();
    block.id = id.into();
    block.name = name.to_owned();
    to_json(&block)
}

/// Stores a new smart block at `station` and returns it as stored.
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    input: &SmartBlockInput,
) -> Result<StoredSmartBlock, StorageError> {
    let name = check_name(&input.name)?;
    let block_id = SmartBlockId::random();
    let id = block_id.to_string();
    let at = now();
    conn.transaction(|conn| {
        diesel::insert_into(smart_blocks::table)
            .values((
                smart_blocks::id.eq(&id),
                smart_blocks::station_id.eq(station.to_string()),
                smart_blocks::name.eq(name),
                smart_blocks::description.eq(input.description.as_deref()),
                smart_blocks::rules.eq(rules_of(&id, input, name)),
                smart_blocks::created_at.eq(at),
                smart_blocks::updated_at.eq(at),
            ))
            .execute(conn)?;
        get(conn, station, block_id)
    })
}

/// The smart block with this id at this station.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: SmartBlockId,
) -> Result<StoredSmartBlock, StorageError> {
    smart_blocks::table
        .find(id.to_string())
        .filter(smart_blocks::station_id.eq(station.to_string()))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(&id.to_string()))?
        .try_into()
}

/// Whether this station has a smart block with this id (as text).
pub fn exists(conn: &mut DbConnection, station: StationId, id: &str) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        smart_blocks::table
            .find(id)
            .filter(smart_blocks::station_id.eq(station.to_string())),
    ))
    .get_result(conn)?)
}

/// One page of a station's smart blocks by name, then id, and how many it has in all.
pub fn list(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<StoredSmartBlock>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = smart_blocks::table
        .filter(smart_blocks::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = smart_blocks::table
        .filter(smart_blocks::station_id.eq(&station))
        .order((smart_blocks::name, smart_blocks::id))
        .select(Row::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?
        .into_iter()
        .map(StoredSmartBlock::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Every smart block of a station, by id (the order planning uses).
pub fn all(
    conn: &mut DbConnection,
    station: StationId,
) -> Result<Vec<StoredSmartBlock>, StorageError> {
    smart_blocks::table
        .filter(smart_blocks::station_id.eq(station.to_string()))
        .order(smart_blocks::id)
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredSmartBlock::try_from)
        .collect()
}

/// Replaces a smart block's name, description and rules, and returns it as stored afterwards.
pub fn replace(
    conn: &mut DbConnection,
    station: StationId,
    id: SmartBlockId,
    input: &SmartBlockInput,
) -> Result<StoredSmartBlock, StorageError> {
    let name = check_name(&input.name)?;
    let text = id.to_string();
    conn.transaction(|conn| {
        diesel::update(
            smart_blocks::table
                .find(&text)
                .filter(smart_blocks::station_id.eq(station.to_string())),
        )
        .set((
            smart_blocks::name.eq(name),
            smart_blocks::description.eq(input.description.as_deref()),
            smart_blocks::rules.eq(rules_of(&text, input, name)),
            smart_blocks::updated_at.eq(now()),
        ))
        .execute(conn)?;
        get(conn, station, id)
    })
}

/// Deletes a smart block of this station. Whether anything still uses it is the caller's to
/// check first (see [`super::programme::block_users`]).
pub fn delete(
    conn: &mut DbConnection,
    station: StationId,
    id: SmartBlockId,
) -> Result<(), StorageError> {
    let deleted = diesel::delete(
        smart_blocks::table
            .find(id.to_string())
            .filter(smart_blocks::station_id.eq(station.to_string())),
    )
    .execute(conn)?;
    if deleted == 0 {
        return Err(not_found(&id.to_string()));
    }
    Ok(())
}
