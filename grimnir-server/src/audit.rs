//! The audit log: who changed what, when, from where.
//!
//! Every change to users, station members and API keys, and every sign-in (successful or not),
//! is recorded; schedule changes and priority overrides are recorded the same way by their
//! endpoints. [`record`] is blocking and takes a connection, so a handler writes the entry in the
//! same transaction as the change it describes: either both are stored or neither.
//!
//! The log is kept for ever unless `audit.retention_days` is set (see [`crate::config`]); then
//! `grimnir serve` deletes older entries every hour with [`prune`], which records that it did.
//!
//! ```no_run
//! use grimnir_server::audit::{self, Actor, Entry};
//! use grimnir_server::db::{Database, StorageError};
//!
//! # async fn example(db: Database) -> Result<(), StorageError> {
//! db.run(|conn| {
//!     audit::record(
//!         conn,
//!         &Entry::new(Actor::System, "schedule.update", "schedule_entry")
//!             .details(serde_json::json!({"reason": "clock changed"})),
//!     )
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::api_keys::ApiKeyId;
use crate::db::schema::audit_log;
use crate::db::stations::StationId;
use crate::db::users::UserId;
use crate::db::{DbConnection, Page, StorageError, now, uuid_id};

uuid_id! {
    /// The id of an audit entry.
    AuditId
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// An API key, acting for the user who created it.
    ApiKey {
        /// The key.
        key: ApiKeyId,
        /// Its user.
        user: UserId,
    },
    /// Nobody signed in (a failed sign-in).
    Anonymous,
    /// The server itself or its command line.
    System,
}

/// One entry to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Who acted.
    pub actor: Actor,
    /// What was done: `user.create`, `auth.login`, `schedule.update`, …
    pub action: String,
    /// Kind of thing acted on: `user`, `station`, `api_key`, …
    pub target_type: String,
    /// Id of the thing acted on.
    pub target_id: Option<String>,
    /// The station concerned.
    pub station_id: Option<StationId>,
    /// The request id of the API call, to find its logs.
    pub request_id: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// A JSON object describing the change. Never put secrets or password hashes here.
    pub details: serde_json::Value,
}

impl Entry {
    /// An entry with no target id, station, request or details.
    pub fn new(actor: Actor, action: impl Into<String>, target_type: impl Into<String>) -> Self {
        Entry {
            actor,
            action: action.into(),
            target_type: target_type.into(),
            target_id: None,
            station_id: None,
            request_id: None,
            remote_addr: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// With the id of the thing acted on.
    pub fn target(mut self, id: impl ToString) -> Self {
        self.target_id = Some(id.to_string());
        self
    }

    /// With the station concerned.
    pub fn station(mut self, station: StationId) -> Self {
        self.station_id = Some(station);
        self
    }

    /// With a JSON object describing the change.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// With the request id and client address of an API call.
    pub fn request(mut self, request_id: Option<String>, remote_addr: Option<String>) -> Self {
        self.request_id = request_id;
        self.remote_addr = remote_addr;
        self
    }
}

/// A recorded entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Its id.
    pub id: AuditId,
    /// When it was recorded.
    pub occurred_at: DateTime<Utc>,
    /// The user who acted (also for an API key).
    pub actor_user_id: Option<String>,
    /// The API key that acted.
    pub actor_api_key_id: Option<String>,
    /// The station concerned.
    pub station_id: Option<String>,
    /// What was done.
    pub action: String,
    /// Kind of thing acted on.
    pub target_type: String,
    /// Id of the thing acted on.
    pub target_id: Option<String>,
    /// Request id of the API call.
    pub request_id: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
    /// The JSON object describing the change.
    pub details: serde_json::Value,
}

/// Longest request id and client address kept (the columns' sizes).
const MAX_REQUEST_ID: usize = 128;
const MAX_REMOTE_ADDR: usize = 64;

fn clip(value: Option<&str>, max: usize) -> Option<&str> {
    value.map(|v| match v.char_indices().nth(max) {
        Some((end, _)) => &v[..end],
        None => v,
    })
}

/// Stores an entry; returns its id.
pub fn record(conn: &mut DbConnection, entry: &Entry) -> Result<AuditId, StorageError> {
    let id = AuditId::random();
    let (user, key) = match entry.actor {
        Actor::User(user) => (Some(user.to_string()), None),
        Actor::ApiKey { key, user } => (Some(user.to_string()), Some(key.to_string())),
        Actor::Anonymous | Actor::System => (None, None),
    };
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(id.to_string()),
            audit_log::occurred_at.eq(now()),
            audit_log::actor_user_id.eq(user),
            audit_log::actor_api_key_id.eq(key),
            audit_log::station_id.eq(entry.station_id.map(|s| s.to_string())),
            audit_log::action.eq(&entry.action),
            audit_log::target_type.eq(&entry.target_type),
            audit_log::target_id.eq(entry.target_id.as_deref()),
            audit_log::request_id.eq(clip(entry.request_id.as_deref(), MAX_REQUEST_ID)),
            audit_log::remote_addr.eq(clip(entry.remote_addr.as_deref(), MAX_REMOTE_ADDR)),
            audit_log::details.eq(entry.details.to_string()),
        ))
        .execute(conn)?;
    Ok(id)
}

type Row = (
    String,
    NaiveDateTime,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

/// One page of entries, newest first, optionally of one station, and how many in all.
pub fn list(
    conn: &mut DbConnection,
    station: Option<StationId>,
    page: Page,
) -> Result<(Vec<Recorded>, i64), StorageError> {
    let mut count = audit_log::table.count().into_boxed();
    let mut rows = audit_log::table
        .select((
            audit_log::id,
            audit_log::occurred_at,
            audit_log::actor_user_id,
            audit_log::actor_api_key_id,
            audit_log::station_id,
            audit_log::action,
            audit_log::target_type,
            audit_log::target_id,
            audit_log::request_id,
            audit_log::remote_addr,
            audit_log::details,
        ))
        .order((audit_log::occurred_at.desc(), audit_log::id))
        .limit(page.limit)
        .offset(page.offset)
        .into_boxed();
    if let Some(station) = station {
        count = count.filter(audit_log::station_id.eq(station.to_string()));
        rows = rows.filter(audit_log::station_id.eq(station.to_string()));
    }
    let total: i64 = count.get_result(conn)?;
    let items = rows
        .load::<Row>(conn)?
        .into_iter()
        .map(|row| {
            let details = serde_json::from_str(&row.10).map_err(|_| StorageError::Corrupt {
                table: "audit_log",
                column: "details",
                value: row.10.clone(),
                expected: "a JSON document",
            })?;
            Ok(Recorded {
                id: crate::db::stored_id("audit_log", "id", &row.0)?,
                occurred_at: row.1.and_utc(),
                actor_user_id: row.2,
                actor_api_key_id: row.3,
                station_id: row.4,
                action: row.5,
                target_type: row.6,
                target_id: row.7,
                request_id: row.8,
                remote_addr: row.9,
                details,
            })
        })
        .collect::<Result<_, StorageError>>()?;
    Ok((items, total))
}

/// How many entries [`prune`] deletes per statement, so that a first prune of a long log
/// does not hold a lock on the table for long.
pub const PRUNE_BATCH: usize = 1000;

/// Deletes the entries that occurred before `before`, [`PRUNE_BATCH`] at a time, oldest first,
/// and records one `audit.prune` entry saying how many went and up to when, so the log shows
/// its own gaps. Returns how many were deleted.
pub fn prune(conn: &mut DbConnection, before: DateTime<Utc>) -> Result<usize, StorageError> {
    let cutoff = before.naive_utc();
    let mut deleted = 0;
    loop {
        // Ids first, then the delete: MySQL refuses a LIMIT in a subquery of the table it
        // deletes from.
        let ids: Vec<String> = audit_log::table
            .filter(audit_log::occurred_at.lt(cutoff))
            .order((audit_log::occurred_at, audit_log::id))
            .select(audit_log::id)
            .limit(i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX))
            .load(conn)?;
        if ids.is_empty() {
            break;
        }
        let batch = ids.len();
        deleted +=
            diesel::delete(audit_log::table.filter(audit_log::id.eq_any(ids))).execute(conn)?;
        if batch < PRUNE_BATCH {
            break;
        }
    }
    if deleted > 0 {
        record(
            conn,
            &Entry::new(Actor::System, "audit.prune", "audit_log").details(serde_json::json!({
                "deleted": deleted,
                "before": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })),
        )?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn long_values_are_clipped_on_char_boundaries() {
        assert_eq!(clip(Some("abc"), 2), Some("ab"));
        assert_eq!(clip(Some("ææææ"), 3), Some("æææ"));
        assert_eq!(clip(Some("ab"), 64), Some("ab"));
        assert_eq!(clip(None, 1), None);
    }
}
