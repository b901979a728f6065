//! Users: the accounts that sign in.
//!
//! A user has an email (unique, stored in lower case), a password hash (a PHC string: argon2id,
//! or bcrypt for users imported from other systems; see [`crate::auth::password`]) and an
//! [`AccountRole`]. What a non-admin may do at a station comes from
//! [`members`](super::members).
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::users;
use super::{DbConnection, Page, StorageError, is_unique_violation, now, stored_id, uuid_id};

/// Longest email address, in characters (RFC 5321 path limit; the column is `VARCHAR(255)`).
pub const MAX_EMAIL_CHARS: usize = 254;

uuid_id! {
    /// The id of a user.
    UserId
}

/// What an account may do regardless of station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccountRole {
    /// Everything, at every station: users, stations, members, keys.
    Admin,
    /// Only what the user's roles at stations allow.
    User,
}

impl AccountRole {
    /// The stored name: `admin` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Admin => "admin",
            AccountRole::User => "user",
        }
    }
}

impl fmt::Display for AccountRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccountRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(AccountRole::Admin),
            "user" => Ok(AccountRole::User),
            _ => Err("expected `admin` or `user`".to_owned()),
        }
    }
}

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Sign-in address, lower case.
    pub email: String,
    /// What the account may do regardless of station.
    pub role: AccountRole,
    /// A disabled user cannot sign in, and its tokens and keys are refused.
    pub disabled: bool,
    /// When it was created (UTC, microsecond precision).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (UTC, microsecond precision).
    pub updated_at: DateTime<Utc>,
}

/// What a new user is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Sign-in address (see [`normalize_email`]).
    pub email: String,
    /// The PHC string of the password, from [`crate::auth::password::hash`].
    pub password_hash: String,
    /// What the account may do regardless of station.
    pub role: AccountRole,
    /// Whether it starts disabled.
    pub disabled: bool,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// A new sign-in address.
    pub email: Option<String>,
    /// A new account role.
    pub role: Option<AccountRole>,
    /// Disable or enable.
    pub disabled: Option<bool>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    email: String,
    role: String,
    disabled: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;

    fn try_from(row: UserRow) -> Result<Self, StorageError> {
        let role = row.role.parse().map_err(|_| StorageError::Corrupt {
            table: "users",
            column: "role",
            value: row.role.clone(),
            expected: "`admin` or `user`",
        })?;
        Ok(User {
            id: stored_id("users", "id", &row.id)?,
            email: row.email,
            role,
            disabled: row.disabled,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// Checks an email address and returns it trimmed and in lower case, as it is stored and looked
/// up: one `@` with text on both sides, a dot in the domain, no spaces or control characters, at
/// most [`MAX_EMAIL_CHARS`] characters.
pub fn normalize_email(email: &str) -> Result<String, StorageError> {
    let trimmed = email.trim();
    let invalid = |reason: &str| StorageError::Invalid {
        field: "email",
        value: email.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid(&format!(
            "must be at most {MAX_EMAIL_CHARS} characters"
        )));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain spaces or control characters"));
    }
    match trimmed.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(trimmed.to_lowercase())
        }
        _ => Err(invalid("not an email address such as dj@example.org")),
    }
}

fn email_conflict(e: diesel::result::Error, email: &str) -> StorageError {
    if is_unique_violation(&e) {
        StorageError::Conflict {
            entity: "user",
            field: "email",
            value: email.to_owned(),
        }
    } else {
        StorageError::Query(e)
    }
}

/// Stores a new user with a fresh id and returns it as stored. An email that is taken is a
/// [`StorageError::Conflict`].
pub fn create(conn: &mut DbConnection, new: &NewUser) -> Result<User, StorageError> {
    let email = normalize_email(&new.email)?;
    let id = UserId::random().to_string();
    let at = now();
    conn.transaction(|conn| {
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::email.eq(&email),
                users::password_hash.eq(&new.password_hash),
                users::role.eq(new.role.as_str()),
                users::disabled.eq(new.disabled),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(conn)
            .map_err(|e| email_conflict(e, &email))?;
        load(conn, &id)
    })
}

fn load(conn: &mut DbConnection, id: &str) -> Result<User, StorageError> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "user",
            id: id.to_owned(),
        })?
        .try_into()
}

/// The user with this id.
pub fn get(conn: &mut DbConnection, id: UserId) -> Result<User, StorageError> {
    load(conn, &id.to_string())
}

/// The user with this id, if there is one.
pub fn find(conn: &mut DbConnection, id: UserId) -> Result<Option<User>, StorageError> {
    match get(conn, id) {
        Ok(user) => Ok(Some(user)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The user signing in with `email` (matched in lower case) and its password hash.
pub fn find_for_login(
    conn: &mut DbConnection,
    email: &str,
) -> Result<Option<(User, String)>, StorageError> {
    let email = email.trim().to_lowercase();
    let row: Option<(UserRow, String)> = users::table
        .filter(users::email.eq(&email))
        .select((UserRow::as_select(), users::password_hash))
        .first(conn)
        .optional()?;
    row.map(|(row, hash)| Ok((User::try_from(row)?, hash)))
        .transpose()
}

/// The password hash of a user.
pub fn password_hash(conn: &mut DbConnection, id: UserId) -> Result<String, StorageError> {
    users::table
        .find(id.to_string())
        .select(users::password_hash)
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "user",
            id: id.to_string(),
        })
}

/// Replaces a user's password hash.
pub fn set_password_hash(
    conn: &mut DbConnection,
    id: UserId,
    password_hash: &str,
) -> Result<(), StorageError> {
    let id = id.to_string();
    conn.transaction(|conn| {
        diesel::update(users::table.find(&id))
            .set((
                users::password_hash.eq(password_hash),
                users::updated_at.eq(now()),
            ))
            .execute(conn)?;
        load(conn, &id).map(drop)
    })
}

/// One page of users by email, and how many there are in all.
pub fn list(conn: &mut DbConnection, page: Page) -> Result<(Vec<User>, i64), StorageError> {
    let total: i64 = users::table.count().get_result(conn)?;
    let items = users::table
        .order((users::email, users::id))
        .select(UserRow::as_select())
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)?
        .into_iter()
        .map(User::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// How many enabled admins there are.
pub fn count_active_admins(conn: &mut DbConnection) -> Result<i64, StorageError> {
    Ok(users::table
        .filter(users::role.eq(AccountRole::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?)
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChangeset<'a> {
    email: Option<&'a str>,
    role: Option<&'a str>,
    disabled: Option<bool>,
    updated_at: NaiveDateTime,
}

/// Applies `changes` and returns the user as stored afterwards.
pub fn update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
) -> Result<User, StorageError> {
    let email = changes.email.as_deref().map(normalize_email).transpose()?;
    let id = id.to_string();
    conn.transaction(|conn| {
        diesel::update(users::table.find(&id))
            .set(UserChangeset {
                email: email.as_deref(),
                role: changes.role.map(AccountRole::as_str),
                disabled: changes.disabled,
                updated_at: now(),
            })
            .execute(conn)
            .map_err(|e| email_conflict(e, email.as_deref().unwrap_or_default()))?;
        load(conn, &id)
    })
}

/// Deletes the user and, by cascade, its station roles, refresh tokens and API keys.
pub fn delete(conn: &mut DbConnection, id: UserId) -> Result<(), StorageError> {
    let deleted = diesel::delete(users::table.find(id.to_string())).execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "user",
            id: id.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowered() {
        assert_eq!(
            normalize_email("  DJ.Night@Example.ORG ").unwrap(),
            "dj.night@example.org"
        );
        for bad in [
            "",
            "no-at.example.org",
            "@example.org",
            "dj@",
            "dj@localhost",
            "dj@.org",
            "dj@example.",
            "dj@@example.org",
            "d j@example.org",
            "dj@exa\u{7}mple.org",
        ] {
            assert!(
                matches!(
                    normalize_email(bad),
                    Err(StorageError::Invalid { field: "email", .. })
                ),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.org", "x".repeat(MAX_EMAIL_CHARS));
        assert!(normalize_email(&long).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in [AccountRole::Admin, AccountRole::User] {
            assert_eq!(role.as_str().parse::<AccountRole>().unwrap(), role);
        }
        assert!("manager".parse::<AccountRole>().is_err());
    }
}
