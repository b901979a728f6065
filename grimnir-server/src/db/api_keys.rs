//! API keys for integrations and webhooks: a visible prefix, the hash of the secret, one station
//! and one role.
//!
//! The key format and the hashing live in [`crate::auth::api_key`]; this module stores rows.
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::members::StationRole;
use super::schema::api_keys;
use super::stations::StationId;
use super::users::UserId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

/// Longest key name, in characters (the column is `VARCHAR(255)`).
pub const MAX_NAME_CHARS: usize = 255;

uuid_id! {
    /// The id of an API key.
    ApiKeyId
}

/// An API key as stored, without the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The user who created it; the key never does more than this user may.
    pub user_id: UserId,
    /// The station it is limited to.
    pub station_id: StationId,
    /// Name shown to people (`playout webhook`).
    pub name: String,
    /// The visible start of the key, to recognise it in lists and logs.
    pub prefix: String,
    /// The role it acts with at its station.
    pub role: StationRole,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last accepted.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a new key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The user creating it.
    pub user_id: UserId,
    /// Its station.
    pub station_id: StationId,
    /// Name shown to people: 1 to [`MAX_NAME_CHARS`] characters, no control characters.
    pub name: String,
    /// The visible prefix, unique.
    pub prefix: String,
    /// Hash of the secret part.
    pub secret_hash: String,
    /// Its role at the station.
    pub role: StationRole,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct Row {
    id: String,
    user_id: String,
    station_id: Option<String>,
    name: String,
    prefix: String,
    role: String,
    created_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
    last_used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

impl TryFrom<Row> for ApiKey {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        let corrupt =
            |column: &'static str, value: &str, expected: &'static str| StorageError::Corrupt {
                table: "api_keys",
                column,
                value: value.to_owned(),
                expected,
            };
        let station = row
            .station_id
            .as_deref()
            .ok_or_else(|| corrupt("station_id", "NULL", "a station id"))?;
        Ok(ApiKey {
            id: stored_id("api_keys", "id", &row.id)?,
            user_id: stored_id("api_keys", "user_id", &row.user_id)?,
            station_id: stored_id("api_keys", "station_id", station)?,
            name: row.name,
            prefix: row.prefix,
            role: row
                .role
                .parse()
                .map_err(|_| corrupt("role", &row.role, "`manager` or `dj`"))?,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            last_used_at: row.last_used_at.map(|t| t.and_utc()),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
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

fn load(conn: &mut DbConnection, id: &str) -> Result<ApiKey, StorageError> {
    api_keys::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "API key",
            id: id.to_owned(),
        })?
        .try_into()
}

/// Stores a new key and returns it as stored.
pub fn create(conn: &mut DbConnection, new: &NewApiKey) -> Result<ApiKey, StorageError> {
    let name = check_name(&new.name)?;
    let id = ApiKeyId::random().to_string();
    conn.transaction(|conn| {
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(&id),
                api_keys::user_id.eq(new.user_id.to_string()),
                api_keys::station_id.eq(new.station_id.to_string()),
                api_keys::name.eq(name),
                api_keys::prefix.eq(&new.prefix),
                api_keys::secret_hash.eq(&new.secret_hash),
                api_keys::role.eq(new.role.as_str()),
                api_keys::created_at.eq(now()),
                api_keys::expires_at.eq(new.expires_at),
            ))
            .execute(conn)?;
        load(conn, &id)
    })
}

/// The key with this prefix and the hash of its secret, if there is one.
pub fn find_by_prefix(
    conn: &mut DbConnection,
    prefix: &str,
) -> Result<Option<(ApiKey, String)>, StorageError> {
    let row: Option<(Row, String)> = api_keys::table
        .filter(api_keys::prefix.eq(prefix))
        .select((Row::as_select(), api_keys::secret_hash))
        .first(conn)
        .optional()?;
    row.map(|(row, hash)| Ok((ApiKey::try_from(row)?, hash)))
        .transpose()
}

/// The key with this id, at whichever station, if there is one.
pub fn find(conn: &mut DbConnection, id: ApiKeyId) -> Result<Option<ApiKey>, StorageError> {
    match load(conn, &id.to_string()) {
        Ok(key) => Ok(Some(key)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The key with this id at this station.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: ApiKeyId,
) -> Result<ApiKey, StorageError> {
    let key = load(conn, &id.to_string())?;
    if key.station_id != station {
        return Err(StorageError::NotFound {
            entity: "API key",
            id: id.to_string(),
        });
    }
    Ok(key)
}

/// One page of a station's keys, newest first, revoked ones included, and how many in all.
pub fn list(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<ApiKey>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = api_keys::table
        .filter(api_keys::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = api_keys::table
        .filter(api_keys::station_id.eq(&station))
        .order((api_keys::created_at.desc(), api_keys::id))
        .select(Row::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?
        .into_iter()
        .map(ApiKey::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Revokes a key of this station (again is fine) and returns it as stored afterwards.
pub fn revoke(
    conn: &mut DbConnection,
    station: StationId,
    id: ApiKeyId,
) -> Result<ApiKey, StorageError> {
    // The write first: SQLite then waits for a concurrent writer instead of failing.
    conn.transaction(|conn| {
        diesel::update(
            api_keys::table
                .find(id.to_string())
                .filter(api_keys::station_id.eq(station.to_string()))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(now()))
        .execute(conn)?;
        get(conn, station, id)
    })
}

/// Records that a key was accepted now.
pub fn touch(conn: &mut DbConnection, id: ApiKeyId) -> Result<(), StorageError> {
    diesel::update(api_keys::table.find(id.to_string()))
        .set(api_keys::last_used_at.eq(now()))
        .execute(conn)?;
    Ok(())
}
