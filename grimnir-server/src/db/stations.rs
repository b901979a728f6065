//! Stations: create, read, list, update and delete.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;

use super::schema::stations;
use super::{DbConnection, Page, StorageError, now};

/// Longest station name, in characters (the column is `VARCHAR(255)`).
pub const MAX_NAME_CHARS: usize = 255;

/// The id of a station: a random UUID, stored as its 36-character text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StationId(uuid::Uuid);

impl StationId {
    /// A new random id.
    pub fn random() -> Self {
        StationId(uuid::Uuid::new_v4())
    }

    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl From<uuid::Uuid> for StationId {
    fn from(id: uuid::Uuid) -> Self {
        StationId(id)
    }
}

impl FromStr for StationId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(StationId)
    }
}

/// A station as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    /// Its id.
    pub id: StationId,
    /// Name shown to people.
    pub name: String,
    /// The IANA time zone its clocks and shows are planned in.
    pub timezone: Tz,
    /// Free text for people.
    pub description: Option<String>,
    /// Whether it is meant to be on air.
    pub active: bool,
    /// When it was created (UTC, microsecond precision).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (UTC, microsecond precision).
    pub updated_at: DateTime<Utc>,
}

/// What a new station is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStation {
    /// Name shown to people: 1 to [`MAX_NAME_CHARS`] characters, no control characters;
    /// surrounding whitespace is removed.
    pub name: String,
    /// An IANA time zone name such as `America/New_York`.
    pub timezone: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Whether it is meant to be on air.
    pub active: bool,
}

impl NewStation {
    /// An active station without a description.
    pub fn new(name: impl Into<String>, timezone: impl Into<String>) -> Self {
        NewStation {
            name: name.into(),
            timezone: timezone.into(),
            description: None,
            active: true,
        }
    }
}

/// Changes to a station; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationChanges {
    /// A new name (same rules as [`NewStation::name`]).
    pub name: Option<String>,
    /// A new IANA time zone name.
    pub timezone: Option<String>,
    /// A new description; `Some(None)` removes it.
    pub description: Option<Option<String>>,
    /// Whether it is meant to be on air.
    pub active: Option<bool>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = stations)]
struct StationRow {
    id: String,
    name: String,
    timezone: String,
    description: Option<String>,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = stations)]
struct InsertStation<'a> {
    id: &'a str,
    name: &'a str,
    timezone: &'a str,
    description: Option<&'a str>,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(AsChangeset)]
#[diesel(table_name = stations)]
struct StationChangeset<'a> {
    name: Option<&'a str>,
    timezone: Option<&'a str>,
    description: Option<Option<&'a str>>,
    active: Option<bool>,
    updated_at: NaiveDateTime,
}

impl TryFrom<StationRow> for Station {
    type Error = StorageError;

    fn try_from(row: StationRow) -> Result<Self, StorageError> {
        let id = row.id.parse().map_err(|_| StorageError::Corrupt {
            table: "stations",
            column: "id",
            value: row.id.clone(),
            expected: "a UUID",
        })?;
        let timezone = row.timezone.parse().map_err(|_| StorageError::Corrupt {
            table: "stations",
            column: "timezone",
            value: row.timezone.clone(),
            expected: "an IANA time zone name",
        })?;
        Ok(Station {
            id,
            name: row.name,
            timezone,
            description: row.description,
            active: row.active,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn check_name(name: &str) -> Result<&str, StorageError> {
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

fn check_timezone(timezone: &str) -> Result<&str, StorageError> {
    match timezone.parse::<Tz>() {
        Ok(_) => Ok(timezone),
        Err(_) => Err(StorageError::Invalid {
            field: "timezone",
            value: timezone.to_owned(),
            reason: "not an IANA time zone name such as Europe/Oslo".to_owned(),
        }),
    }
}

/// Stores a new station with a fresh id and returns it as stored.
pub fn create(conn: &mut DbConnection, new: &NewStation) -> Result<Station, StorageError> {
    let name = check_name(&new.name)?;
    let timezone = check_timezone(&new.timezone)?;
    let id = StationId::random().to_string();
    let at = now();
    conn.transaction(|conn| {
        diesel::insert_into(stations::table)
            .values(InsertStation {
                id: &id,
                name,
                timezone,
                description: new.description.as_deref(),
                active: new.active,
                created_at: at,
                updated_at: at,
            })
            .execute(conn)?;
        // No RETURNING: MySQL lacks it, so read the row back.
        load(conn, &id)
    })
}

fn load(conn: &mut DbConnection, id: &str) -> Result<Station, StorageError> {
    stations::table
        .find(id)
        .select(StationRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "station",
            id: id.to_owned(),
        })?
        .try_into()
}

/// Whether a station with this id (as text) exists.
pub(crate) fn exists(conn: &mut DbConnection, id: &str) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(stations::table.find(id))).get_result(conn)?)
}

/// The station with this id.
pub fn get(conn: &mut DbConnection, id: StationId) -> Result<Station, StorageError> {
    load(conn, &id.to_string())
}

/// Every station, by name, then id.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Station>, StorageError> {
    stations::table
        .order((stations::name, stations::id))
        .select(StationRow::as_select())
        .load(conn)?
        .into_iter()
        .map(Station::try_from)
        .collect()
}

/// Which stations a list covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StationFilter<'a> {
    /// Every station.
    All,
    /// Only these (the ones a user has a role at).
    Only(&'a [StationId]),
}

/// One page of stations by name, then id, and how many the filter covers in all.
pub fn list_page(
    conn: &mut DbConnection,
    filter: StationFilter<'_>,
    page: Page,
) -> Result<(Vec<Station>, i64), StorageError> {
    let ids: Option<Vec<String>> = match filter {
        StationFilter::All => None,
        StationFilter::Only([]) => return Ok((Vec::new(), 0)),
        StationFilter::Only(ids) => Some(ids.iter().map(ToString::to_string).collect()),
    };
    let mut count = stations::table.count().into_boxed();
    let mut rows = stations::table
        .order((stations::name, stations::id))
        .select(StationRow::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .into_boxed();
    if let Some(ids) = &ids {
        count = count.filter(stations::id.eq_any(ids));
        rows = rows.filter(stations::id.eq_any(ids));
    }
    let total: i64 = count.get_result(conn)?;
    let items = rows
        .load(conn)?
        .into_iter()
        .map(Station::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Applies `changes` and returns the station as stored afterwards.
pub fn update(
    conn: &mut DbConnection,
    id: StationId,
    changes: &StationChanges,
) -> Result<Station, StorageError> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    let timezone = changes
        .timezone
        .as_deref()
        .map(check_timezone)
        .transpose()?;
    let id = id.to_string();
    conn.transaction(|conn| {
        // Affected-row counts differ between backends (MySQL counts changed rows, not matched
        // ones), so existence is checked by reading the row back.
        diesel::update(stations::table.find(&id))
            .set(StationChangeset {
                name,
                timezone,
                description: changes.description.as_ref().map(|d| d.as_deref()),
                active: changes.active,
                updated_at: now(),
            })
            .execute(conn)?;
        load(conn, &id)
    })
}

/// Deletes the station and, by cascade, everything that belongs to it.
pub fn delete(conn: &mut DbConnection, id: StationId) -> Result<(), StorageError> {
    let deleted = diesel::delete(stations::table.find(id.to_string())).execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "station",
            id: id.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("  WGMR FM ").unwrap(), "WGMR FM");
        assert!(matches!(
            check_name("   "),
            Err(StorageError::Invalid { field: "name", .. })
        ));
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn time_zones_are_checked() {
        assert!(check_timezone("Australia/Lord_Howe").is_ok());
        let err = check_timezone("Mars/Olympus").unwrap_err();
        assert_eq!(
            err.to_string(),
            "timezone = \"Mars/Olympus\": not an IANA time zone name such as Europe/Oslo"
        );
    }

    #[test]
    fn ids_round_trip_as_text() {
        let id = StationId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<StationId>().unwrap(), id);
        assert!("not-a-uuid".parse::<StationId>().is_err());
    }
}
