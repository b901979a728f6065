//! Shows: calendar events that take over the air from the clocks, stored as the planner's own
//! [`Show`].
//!
//! The `definition` column holds the whole [`grimnir_planner::Show`] serialized with serde_json
//! (repeat rule, dates, start and end, content, underbooked and overbooked policies), its `id`
//! the row's id and its `name` the row's name, so a show reads back exactly as a station file
//! would declare it. Validation is the planner's ([`Show::validate`]); the API does it, and
//! checks the references, before calling here.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use grimnir_planner::Show;

use super::programme::{check_name, from_json, to_json};
use super::schema::shows;
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of a show.
    ShowId
}

/// A show as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredShow {
    /// Its id.
    pub id: ShowId,
    /// Its station.
    pub station_id: StationId,
    /// Name shown to people.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The planner's show: repeat rule, dates, times, content and policies. Its `id` is
    /// [`id`](Self::id) as text and its `name` is [`name`](Self::name).
    pub show: Show,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a show is made of, for creating or replacing one.
#[derive(Debug, Clone, PartialEq)]
pub struct ShowInput {
    /// Name shown to people: 1 to 255 characters, no control characters.
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The definition, already validated by the planner and with its references checked. Its
    /// `id` and `name` are replaced by the row's.
    pub show: Show,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = shows)]
struct Row {
    id: String,
    station_id: String,
    name: String,
    description: Option<String>,
    definition: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<Row> for StoredShow {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        let mut show: Show = from_json("shows", "definition", &row.definition, "a planner show")?;
        show.id = row.id.as_str().into();
        show.name.clone_from(&row.name);
        Ok(StoredShow {
            id: stored_id("shows", "id", &row.id)?,
            station_id: stored_id("shows", "station_id", &row.station_id)?,
            name: row.name,
            description: row.description,
            show,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn not_found(id: &str) -> StorageError {
    StorageError::NotFound {
        entity: "show",
        id: id.to_owned(),
    }
}

fn definition_of(id: &str, input: &ShowInput, name: &str) -> String {
    let mut show = input.show.clone();
    show.id = id.into();
    show.name = name.to_owned();
    to_json(&show)
}

/// Stores a new show at `station` and returns it as stored.
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    input: &ShowInput,
) -> Result<StoredShow, StorageError> {
    let name = check_name(&input.name)?;
    let show_id = ShowId::random();
    let id = show_id.to_string();
    let at = now();
    conn.transaction(|conn| {
        diesel::insert_into(shows::table)
            .values((
                shows::id.eq(&id),
                shows::station_id.eq(station.to_string()),
                shows::name.eq(name),
                shows::description.eq(input.description.as_deref()),
                shows::definition.eq(definition_of(&id, input, name)),
                shows::created_at.eq(at),
                shows::updated_at.eq(at),
            ))
            .execute(conn)?;
        get(conn, station, show_id)
    })
}

/// The show with this id at this station.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: ShowId,
) -> Result<StoredShow, StorageError> {
    shows::table
        .find(id.to_string())
        .filter(shows::station_id.eq(station.to_string()))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| not_found(&id.to_string()))?
        .try_into()
}

/// Whether this station has a show with this id (as text).
pub fn exists(conn: &mut DbConnection, station: StationId, id: &str) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        shows::table
            .find(id)
            .filter(shows::station_id.eq(station.to_string())),
    ))
    .get_result(conn)?)
}

/// One page of a station's shows by name, then id, and how many it has in all.
pub fn list(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<StoredShow>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = shows::table
        .filter(shows::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = shows::table
        .filter(shows::station_id.eq(&station))
        .order((shows::name, shows::id))
        .select(Row::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?
        .into_iter()
        .map(StoredShow::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Every show of a station, by id (the order planning uses).
pub fn all(conn: &mut DbConnection, station: StationId) -> Result<Vec<StoredShow>, StorageError> {
    shows::table
        .filter(shows::station_id.eq(station.to_string()))
        .order(shows::id)
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(StoredShow::try_from)
        .collect()
}

/// Replaces a show's name, description and definition, and returns it as stored afterwards.
pub fn replace(
    conn: &mut DbConnection,
    station: StationId,
    id: ShowId,
    input: &ShowInput,
) -> Result<StoredShow, StorageError> {
    let name = check_name(&input.name)?;
    let text = id.to_string();
    conn.transaction(|conn| {
        diesel::update(
            shows::table
                .find(&text)
                .filter(shows::station_id.eq(station.to_string())),
        )
        .set((
            shows::name.eq(name),
            shows::description.eq(input.description.as_deref()),
            shows::definition.eq(definition_of(&text, input, name)),
            shows::updated_at.eq(now()),
        ))
        .execute(conn)?;
        get(conn, station, id)
    })
}

/// Deletes a show of this station.
pub fn delete(conn: &mut DbConnection, station: StationId, id: ShowId) -> Result<(), StorageError> {
    let deleted = diesel::delete(
        shows::table
            .find(id.to_string())
            .filter(shows::station_id.eq(station.to_string())),
    )
    .execute(conn)?;
    if deleted == 0 {
        return Err(not_found(&id.to_string()));
    }
    Ok(())
}
