//! Event stream tickets already presented (see [`crate::auth::Auth::redeem_ticket`]).
//!
//! A ticket is good once across every server sharing the database: presenting it inserts its
//! id, and the table's key refuses a second insert of the same id, whichever server tries it.
//! Rows are kept until their ticket would have expired; an expired ticket is refused before it
//! gets here, so [`prune`] may then delete them.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::spent_tickets;
use super::{DbConnection, StorageError};

/// Longest ticket id stored, in bytes (the column is `VARCHAR(36)`: a UUID).
pub const MAX_JTI_LEN: usize = 36;

/// Spends the ticket `jti`, which expires at `expires_at`: `true` the first time, `false` when
/// it was spent before (on any server). An id longer than [`MAX_JTI_LEN`] is never one this
/// server issued and is refused as spent.
pub fn spend(
    conn: &mut DbConnection,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, StorageError> {
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Ok(false);
    }
    let inserted = diesel::insert_into(spent_tickets::table)
        .values((
            spent_tickets::jti.eq(jti),
            spent_tickets::expires_at.eq(expires_at.naive_utc()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the ids of tickets that expired before `before`; returns how many.
pub fn prune(conn: &mut DbConnection, before: DateTime<Utc>) -> Result<usize, StorageError> {
    Ok(diesel::delete(
        spent_tickets::table.filter(spent_tickets::expires_at.lt(before.naive_utc())),
    )
    .execute(conn)?)
}
