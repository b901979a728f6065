//! Station members: a user's role at one station (the `station_users` table).
//!
//! Admins act everywhere through their [`AccountRole`](super::users::AccountRole); everyone else
//! acts at a station only through a [`StationRole`] given here.
//!
//! Each function takes a [`DbConnection`] and is blocking; call it through
//! [`Database::run`](super::Database::run) from async code.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{station_users, users};
use super::stations::StationId;
use super::users::UserId;
use super::{DbConnection, Page, StorageError, now, stored_id};

/// A user's role at one station. Ordered: a manager may do everything a DJ may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum StationRole {
    /// Runs the air: sees the station and what plays.
    Dj,
    /// Runs the station: its settings, members and API keys.
    Manager,
}

impl StationRole {
    /// The stored name: `manager` or `dj`.
    pub fn as_str(self) -> &'static str {
        match self {
            StationRole::Manager => "manager",
            StationRole::Dj => "dj",
        }
    }
}

impl fmt::Display for StationRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StationRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manager" => Ok(StationRole::Manager),
            "dj" => Ok(StationRole::Dj),
            _ => Err("expected `manager` or `dj`".to_owned()),
        }
    }
}

/// A member of a station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The station.
    pub station_id: StationId,
    /// The user.
    pub user_id: UserId,
    /// The user's email, for people reading the list.
    pub email: String,
    /// The user's role at the station.
    pub role: StationRole,
    /// Since when (UTC).
    pub created_at: DateTime<Utc>,
}

fn parse_role(value: &str) -> Result<StationRole, StorageError> {
    value.parse().map_err(|_| StorageError::Corrupt {
        table: "station_users",
        column: "role",
        value: value.to_owned(),
        expected: "`manager` or `dj`",
    })
}

type MemberRow = (String, String, String, String, NaiveDateTime);

fn member(row: MemberRow) -> Result<Member, StorageError> {
    let (station_id, user_id, email, role, created_at) = row;
    Ok(Member {
        station_id: stored_id("station_users", "station_id", &station_id)?,
        user_id: stored_id("station_users", "user_id", &user_id)?,
        email,
        role: parse_role(&role)?,
        created_at: created_at.and_utc(),
    })
}

fn load(
    conn: &mut DbConnection,
    station: &str,
    user: &str,
) -> Result<Option<Member>, StorageError> {
    station_users::table
        .inner_join(users::table)
        .filter(station_users::station_id.eq(station))
        .filter(station_users::user_id.eq(user))
        .select((
            station_users::station_id,
            station_users::user_id,
            users::email,
            station_users::role,
            station_users::created_at,
        ))
        .first::<MemberRow>(conn)
        .optional()?
        .map(member)
        .transpose()
}

/// Gives `user` the `role` at `station`, replacing a role it had there; returns the membership.
/// A station or user that does not exist is [`StorageError::NotFound`].
pub fn set(
    conn: &mut DbConnection,
    station: StationId,
    user: UserId,
    role: StationRole,
) -> Result<Member, StorageError> {
    let (station, user) = (station.to_string(), user.to_string());
    // The write first: SQLite then waits for a concurrent writer instead of failing.
    conn.transaction(|conn| {
        diesel::update(station_users::table.find((&station, &user)))
            .set(station_users::role.eq(role.as_str()))
            .execute(conn)?;
        if let Some(member) = load(conn, &station, &user)? {
            return Ok(member);
        }
        if !super::stations::exists(conn, &station)? {
            return Err(StorageError::NotFound {
                entity: "station",
                id: station.clone(),
            });
        }
        if !diesel::select(diesel::dsl::exists(users::table.find(&user))).get_result(conn)? {
            return Err(StorageError::NotFound {
                entity: "user",
                id: user.clone(),
            });
        }
        diesel::insert_into(station_users::table)
            .values((
                station_users::station_id.eq(&station),
                station_users::user_id.eq(&user),
                station_users::role.eq(role.as_str()),
                station_users::created_at.eq(now()),
            ))
            .execute(conn)?;
        load(conn, &station, &user)?.ok_or_else(|| StorageError::NotFound {
            entity: "member",
            id: user.clone(),
        })
    })
}

/// Takes `user`'s role at `station` away.
pub fn remove(
    conn: &mut DbConnection,
    station: StationId,
    user: UserId,
) -> Result<(), StorageError> {
    let deleted =
        diesel::delete(station_users::table.find((station.to_string(), user.to_string())))
            .execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "member",
            id: user.to_string(),
        });
    }
    Ok(())
}

/// One page of a station's members by email, and how many there are in all.
pub fn list(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<Member>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = station_users::table
        .filter(station_users::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = station_users::table
        .inner_join(users::table)
        .filter(station_users::station_id.eq(&station))
        .order((users::email, users::id))
        .select((
            station_users::station_id,
            station_users::user_id,
            users::email,
            station_users::role,
            station_users::created_at,
        ))
        .limit(page.limit)
        .offset(page.offset)
        .load::<MemberRow>(conn)?
        .into_iter()
        .map(member)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Every station where `user` has a role, with the role.
pub fn roles_of(
    conn: &mut DbConnection,
    user: UserId,
) -> Result<Vec<(StationId, StationRole)>, StorageError> {
    station_users::table
        .filter(station_users::user_id.eq(user.to_string()))
        .select((station_users::station_id, station_users::role))
        .load::<(String, String)>(conn)?
        .into_iter()
        .map(|(station, role)| {
            Ok((
                stored_id("station_users", "station_id", &station)?,
                parse_role(&role)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(StationRole::Manager > StationRole::Dj);
        for role in [StationRole::Manager, StationRole::Dj] {
            assert_eq!(role.as_str().parse::<StationRole>().unwrap(), role);
        }
        assert!("admin".parse::<StationRole>().is_err());
    }
}
