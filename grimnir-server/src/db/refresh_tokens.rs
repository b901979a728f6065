//! Refresh tokens, stored as hashes and grouped in rotation families.
//!
//! One login starts a family; every refresh marks the token it spent as used and issues the next
//! one in the same family. The rules that use these rows (rotation, reuse detection) live in
//! [`crate::auth::sessions`]; this module only reads and writes them.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::refresh_tokens;
use super::users::UserId;
use super::{DbConnection, StorageError, stored_id, uuid_id};

uuid_id! {
    /// The id of a refresh token row.
    RefreshTokenId
}

uuid_id! {
    /// A rotation family: every refresh token issued from one login. It is also the session id
    /// that access tokens carry, so revoking the family ends the session's access tokens too.
    FamilyId
}

/// A refresh token as stored (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Its id.
    pub id: RefreshTokenId,
    /// The user it signs in.
    pub user_id: UserId,
    /// Its rotation family.
    pub family_id: FamilyId,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for the next token.
    pub used_at: Option<DateTime<Utc>>,
    /// When it (with its family) was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
struct Row {
    id: String,
    user_id: String,
    family_id: String,
    issued_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

impl TryFrom<Row> for RefreshToken {
    type Error = StorageError;

    fn try_from(row: Row) -> Result<Self, StorageError> {
        Ok(RefreshToken {
            id: stored_id("refresh_tokens", "id", &row.id)?,
            user_id: stored_id("refresh_tokens", "user_id", &row.user_id)?,
            family_id: stored_id("refresh_tokens", "family_id", &row.family_id)?,
            issued_at: row.issued_at.and_utc(),
            expires_at: row.expires_at.and_utc(),
            used_at: row.used_at.map(|t| t.and_utc()),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
        })
    }
}

/// Stores a new token of `family` by its hash.
pub fn insert(
    conn: &mut DbConnection,
    user: UserId,
    family: FamilyId,
    token_hash: &str,
    issued_at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<RefreshTokenId, StorageError> {
    let id = RefreshTokenId::random();
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(id.to_string()),
            refresh_tokens::user_id.eq(user.to_string()),
            refresh_tokens::family_id.eq(family.to_string()),
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::issued_at.eq(issued_at),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The token with this hash, if any.
pub fn find_by_hash(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<RefreshToken>, StorageError> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(RefreshToken::try_from)
        .transpose()
}

/// Spends the token with this hash if it can be spent — not used, not revoked, not expired at
/// `at` — and returns whether this call spent it. Two concurrent refreshes with the same token
/// cannot both spend it.
///
/// It is one `UPDATE`, meant as the first statement of its transaction: SQLite then waits for a
/// concurrent writer instead of failing on a stale read snapshot.
pub fn spend(
    conn: &mut DbConnection,
    token_hash: &str,
    at: NaiveDateTime,
) -> Result<bool, StorageError> {
    let updated = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .filter(refresh_tokens::used_at.is_null())
            .filter(refresh_tokens::revoked_at.is_null())
            .filter(refresh_tokens::expires_at.gt(at)),
    )
    .set(refresh_tokens::used_at.eq(at))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Revokes every token of a family not revoked yet; returns how many.
pub fn revoke_family(
    conn: &mut DbConnection,
    family: FamilyId,
    at: NaiveDateTime,
) -> Result<usize, StorageError> {
    Ok(diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family.to_string()))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(at))
    .execute(conn)?)
}

/// Revokes every token of a user (a password change or an admin's action ends all sessions).
pub fn revoke_user(
    conn: &mut DbConnection,
    user: UserId,
    at: NaiveDateTime,
) -> Result<usize, StorageError> {
    Ok(diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user.to_string()))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(at))
    .execute(conn)?)
}

/// Whether a family is over: a token of it was revoked, or it has no token at all.
pub fn family_revoked(conn: &mut DbConnection, family: FamilyId) -> Result<bool, StorageError> {
    let family = family.to_string();
    let revoked = refresh_tokens::table
        .filter(refresh_tokens::family_id.eq(&family))
        .filter(refresh_tokens::revoked_at.is_not_null());
    let any = refresh_tokens::table.filter(refresh_tokens::family_id.eq(&family));
    let (revoked, any): (bool, bool) =
        diesel::select((diesel::dsl::exists(revoked), diesel::dsl::exists(any)))
            .get_result(conn)?;
    Ok(revoked || !any)
}

/// Deletes tokens that expired before `before`; returns how many. An expired token is refused
/// whether or not its row exists, so only the reuse alarm for tokens that old is given up.
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, StorageError> {
    Ok(
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(before)))
            .execute(conn)?,
    )
}

/// Every token of a family, oldest first (for tests and audits).
pub fn family(
    conn: &mut DbConnection,
    family: FamilyId,
) -> Result<Vec<RefreshToken>, StorageError> {
    refresh_tokens::table
        .filter(refresh_tokens::family_id.eq(family.to_string()))
        .order((refresh_tokens::issued_at, refresh_tokens::id))
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(RefreshToken::try_from)
        .collect()
}
