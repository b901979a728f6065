//! Sign-in, refresh, sign-out, and who a request comes from.
//!
//! **Sign-in** checks the password (a wrong password and an unknown email take the same time and
//! give the same answer), replaces a bcrypt or outdated hash by a new argon2id one, starts a
//! session — a refresh-token family — and returns an access token and the family's first refresh
//! token. Successes and failures go to the audit log.
//!
//! **Refresh** spends the presented refresh token and returns a new pair in the same family. A
//! token is good once: presenting a spent one means two parties hold it (a stolen token, or a
//! client that lost an answer), so the whole family is revoked, which also ends the session's
//! access tokens; the event is audited as `auth.refresh_reuse`. Two refreshes racing with one
//! token cannot both win: the database marks it spent for one of them only, and the other is
//! treated as reuse.
//!
//! **Sign-out** revokes the family of the presented refresh token.
//!
//! **Authentication** of a request: an access token must verify (see [`super::token`]), its user
//! must exist and be enabled, and its session must not be revoked; an API key must match a
//! stored key that is neither revoked nor expired, of an enabled user.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::Connection as _;

use super::Auth;
use super::api_key;
use super::password::{self, PasswordError, Verified};
use super::policy::{Credential, Principal};
use super::token::{self, REFRESH_TTL, TokenError};
use crate::audit::{self, Actor, Entry};
use crate::db::refresh_tokens::{self, FamilyId};
use crate::db::users::{self, User, UserId};
use crate::db::{Database, DbConnection, StorageError, api_keys, members, now, spent_tickets};

/// Why a sign-in, refresh or authentication failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown email or wrong password.
    #[error("unknown email or wrong password")]
    InvalidCredentials,
    /// The password was right, but the account is disabled.
    #[error("the account is disabled")]
    AccountDisabled,
    /// The access token, refresh token or API key is not (or no longer) good.
    #[error("{0}")]
    InvalidToken(String),
    /// The access token has expired.
    #[error("the access token has expired")]
    TokenExpired,
    /// A spent refresh token was presented again: its family is revoked.
    #[error("the refresh token was used before; every session token of its login is revoked")]
    RefreshReused,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Signing or randomness failed.
    #[error(transparent)]
    Token(TokenError),
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => AuthError::TokenExpired,
            TokenError::Invalid(reason) => AuthError::InvalidToken(reason),
            other => AuthError::Token(other),
        }
    }
}

/// Where a request came from, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The request id.
    pub request_id: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
}

/// What a successful sign-in or refresh returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The user signed in.
    pub user: User,
    /// The session (refresh-token family).
    pub session: FamilyId,
    /// A JWT for the `Authorization: Bearer` header.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token, good for one refresh.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

fn naive_in(from: NaiveDateTime, ttl: std::time::Duration) -> NaiveDateTime {
    from + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

fn audit_entry(actor: Actor, action: &str, target: &str, info: &RequestInfo) -> Entry {
    Entry::new(actor, action, target).request(info.request_id.clone(), info.remote_addr.clone())
}

/// Runs costly password work on the blocking pool, without holding a database connection.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Storage(StorageError::Task(e.to_string())))
}

impl Auth {
    fn issue(
        &self,
        user: User,
        session: FamilyId,
        refresh_token: String,
    ) -> Result<Tokens, AuthError> {
        let access_token = self
            .keys()
            .issue(user.id, session, Utc::now().timestamp())?;
        Ok(Tokens {
            user,
            session,
            access_token,
            expires_in: token::ACCESS_TTL.as_secs(),
            refresh_token,
            refresh_expires_in: REFRESH_TTL.as_secs(),
        })
    }

    /// Signs `email` in with `password`.
    pub async fn login(
        &self,
        db: &Database,
        email: &str,
        password: &str,
        info: &RequestInfo,
    ) -> Result<Tokens, AuthError> {
        let lookup = email.to_owned();
        let found = db
            .run(move |conn| users::find_for_login(conn, &lookup))
            .await?;
        let (password_for_check, stored) = (password.to_owned(), found.clone());
        let verified = blocking(move || match &stored {
            Some((_, hash)) => password::verify(&password_for_check, hash),
            None => {
                password::verify_nothing(&password_for_check);
                Ok(Verified::Mismatch)
            }
        })
        .await?;
        let verified = match verified {
            Ok(v) => v,
            Err(PasswordError::UnknownHashFormat) => {
                tracing::error!(%email, "stored password hash has an unknown format");
                Verified::Mismatch
            }
            Err(e) => return Err(e.into()),
        };
        let user = match (found, verified) {
            (Some((user, _)), Verified::Match { rehash }) => (user, rehash),
            (found, _) => {
                let entry = audit_entry(Actor::Anonymous, "auth.login_failed", "user", info)
                    .details(serde_json::json!({ "email": email.trim().to_lowercase() }));
                let entry = match found {
                    Some((user, _)) => entry.target(user.id),
                    None => entry,
                };
                db.run(move |conn| audit::record(conn, &entry).map(drop))
                    .await?;
                return Err(AuthError::InvalidCredentials);
            }
        };
        let (user, rehash) = user;
        if user.disabled {
            let entry = audit_entry(Actor::User(user.id), "auth.login_refused", "user", info)
                .target(user.id)
                .details(serde_json::json!({ "reason": "disabled" }));
            db.run(move |conn| audit::record(conn, &entry).map(drop))
                .await?;
            return Err(AuthError::AccountDisabled);
        }
        let new_hash = if rehash {
            let password = password.to_owned();
            Some(blocking(move || password::hash(&password)).await??)
        } else {
            None
        };
        let (refresh_token, refresh_hash) = token::new_refresh_token()?;
        let session = FamilyId::random();
        let entry = audit_entry(Actor::User(user.id), "auth.login", "user", info)
            .target(user.id)
            .details(serde_json::json!({ "session": session.to_string(), "rehashed": rehash }));
        let user_id = user.id;
        db.run(move |conn| {
            conn.transaction(|conn| {
                if let Some(hash) = &new_hash {
                    users::set_password_hash(conn, user_id, hash)?;
                }
                let at = now();
                refresh_tokens::insert(
                    conn,
                    user_id,
                    session,
                    &refresh_hash,
                    at,
                    naive_in(at, REFRESH_TTL),
                )?;
                audit::record(conn, &entry).map(drop)
            })
        })
        .await?;
        self.issue(user, session, refresh_token)
    }

    /// Exchanges a refresh token for a new access token and refresh token (rotation).
    pub async fn refresh(
        &self,
        db: &Database,
        presented: &str,
        info: &RequestInfo,
    ) -> Result<Tokens, AuthError> {
        enum Outcome {
            Unknown,
            Revoked,
            Expired,
            Reused,
            UserGone,
            Rotated(User, FamilyId),
        }
        let hash = token::refresh_token_hash(presented);
        let (next, next_hash) = token::new_refresh_token()?;
        // Racing refreshes of one token can make MySQL pick a deadlock victim; the loser's
        // transaction rolled back, and running it again finds the token spent.
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let (info, hash, next_hash) = (info.clone(), hash.clone(), next_hash.clone());
            let result = db
                .run(move |conn| {
                    conn.transaction(|conn| {
                        // Spending first: the write that decides the race is the transaction's
                        // first statement (see `refresh_tokens::spend`).
                        let at = now();
                        let spent = refresh_tokens::spend(conn, &hash, at)?;
                        let Some(row) = refresh_tokens::find_by_hash(conn, &hash)? else {
                            return Ok(Outcome::Unknown);
                        };
                        if spent {
                            return match users::find(conn, row.user_id)? {
                                Some(user) if !user.disabled => {
                                    refresh_tokens::insert(
                                        conn,
                                        user.id,
                                        row.family_id,
                                        &next_hash,
                                        at,
                                        naive_in(at, REFRESH_TTL),
                                    )?;
                                    Ok(Outcome::Rotated(user, row.family_id))
                                }
                                _ => {
                                    refresh_tokens::revoke_family(conn, row.family_id, at)?;
                                    Ok(Outcome::UserGone)
                                }
                            };
                        }
                        if row.revoked_at.is_some() {
                            return Ok(Outcome::Revoked);
                        }
                        if row.used_at.is_none() {
                            // Neither spendable nor spent nor revoked: expired.
                            return Ok(Outcome::Expired);
                        }
                        refresh_tokens::revoke_family(conn, row.family_id, at)?;
                        let entry =
                            audit_entry(Actor::Anonymous, "auth.refresh_reuse", "session", &info)
                                .target(row.family_id)
                                .details(serde_json::json!({ "user_id": row.user_id.to_string() }));
                        audit::record(conn, &entry)?;
                        Ok(Outcome::Reused)
                    })
                })
                .await;
            match result {
                Err(e) if attempt < 3 && crate::db::is_retryable(&e) => continue,
                other => break other?,
            }
        };
        // A reused token revokes its family: cached principals of it must go.
        db.note_write();
        match outcome {
            Outcome::Rotated(user, family) => self.issue(user, family, next),
            Outcome::Reused => Err(AuthError::RefreshReused),
            Outcome::Unknown => Err(AuthError::InvalidToken("unknown refresh token".into())),
            Outcome::Revoked => Err(AuthError::InvalidToken(
                "the refresh token is revoked".into(),
            )),
            Outcome::Expired => Err(AuthError::InvalidToken(
                "the refresh token has expired".into(),
            )),
            Outcome::UserGone => Err(AuthError::InvalidToken(
                "the account is disabled or gone".into(),
            )),
        }
    }

    /// Ends the session of a refresh token: its whole family is revoked. Unknown tokens are
    /// ignored, so the answer says nothing about which tokens exist.
    pub async fn logout(
        &self,
        db: &Database,
        presented: &str,
        info: &RequestInfo,
    ) -> Result<(), AuthError> {
        let hash = token::refresh_token_hash(presented);
        let info = info.clone();
        let done = db
            .run(move |conn| {
                let Some(row) = refresh_tokens::find_by_hash(conn, &hash)? else {
                    return Ok(());
                };
                conn.transaction(|conn| {
                    if refresh_tokens::revoke_family(conn, row.family_id, now())? > 0 {
                        let entry =
                            audit_entry(Actor::User(row.user_id), "auth.logout", "session", &info)
                                .target(row.family_id);
                        audit::record(conn, &entry)?;
                    }
                    Ok(())
                })
            })
            .await;
        // The session's access tokens must stop working now, cached or not.
        db.note_write();
        done?;
        Ok(())
    }

    /// The principal of an `Authorization: Bearer` access token: from the cache when this
    /// session's principal was read within [`PRINCIPAL_TTL`](super::PRINCIPAL_TTL) and
    /// nothing was written through the server since, else from the database.
    pub async fn authenticate_bearer(
        &self,
        db: &Database,
        bearer: &str,
    ) -> Result<Principal, AuthError> {
        let access = self.keys().verify(bearer)?;
        self.session_principal(db, access.user, access.session)
            .await
    }

    /// The principal of `user` signed in with `session`: from the cache when it was read
    /// within [`PRINCIPAL_TTL`](super::PRINCIPAL_TTL) and nothing was written through the
    /// server since, else from the database, refused when the user or the session is gone.
    async fn session_principal(
        &self,
        db: &Database,
        user: UserId,
        session: FamilyId,
    ) -> Result<Principal, AuthError> {
        let generation = db.write_generation();
        if let Some(principal) = self.cached_principal(user, session, generation) {
            return Ok(principal);
        }
        let principal = db
            .run(move |conn| {
                let user = usable_user(conn, user)?;
                if refresh_tokens::family_revoked(conn, session)? {
                    return Ok(Err("the session has ended".to_owned()));
                }
                let user = match user {
                    Ok(user) => user,
                    Err(reason) => return Ok(Err(reason)),
                };
                let stations = members::roles_of(conn, user.id)?;
                Ok(Ok(Principal::user(
                    user.id, user.email, user.role, session, stations,
                )))
            })
            .await?
            .map_err(AuthError::InvalidToken)?;
        self.cache_principal(user, session, generation, &principal);
        Ok(principal)
    }

    /// The principal of an API key.
    pub async fn authenticate_api_key(
        &self,
        db: &Database,
        presented: &str,
    ) -> Result<Principal, AuthError> {
        let invalid = || AuthError::InvalidToken("unknown or malformed API key".into());
        let (prefix, secret) = api_key::split(presented).ok_or_else(invalid)?;
        let (prefix, secret) = (prefix.to_owned(), secret.to_owned());
        db.run(move |conn| {
            let Some((key, secret_hash)) = api_keys::find_by_prefix(conn, &prefix)? else {
                return Ok(Err("unknown or malformed API key".to_owned()));
            };
            if !api_key::secret_matches(&secret, &secret_hash) {
                return Ok(Err("unknown or malformed API key".to_owned()));
            }
            key_principal(conn, key)
        })
        .await?
        .map_err(AuthError::InvalidToken)
    }

    /// A ticket for opening one event stream as `principal`, with the same credential, and
    /// when it expires (Unix seconds). See [`token::TicketClaims`].
    pub fn issue_ticket(&self, principal: &Principal) -> Result<(String, i64), AuthError> {
        let cred = match principal.credential {
            Credential::Session(session) => format!("session:{session}"),
            Credential::ApiKey(key) => format!("api_key:{key}"),
        };
        let now = Utc::now().timestamp();
        let exp = now.saturating_add(i64::try_from(token::TICKET_TTL.as_secs()).unwrap_or(30));
        let claims = token::TicketClaims {
            iss: token::ISSUER.to_owned(),
            aud: token::TICKET_AUDIENCE.to_owned(),
            sub: principal.user_id.to_string(),
            cred,
            iat: now,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        Ok((self.keys().sign_ticket(&claims)?, exp))
    }

    /// The principal of an event stream ticket, which is spent: a ticket presented a second
    /// time is refused, by this server or any other sharing its database
    /// ([`crate::db::spent_tickets`]). Its credential is checked as when it is used itself: a
    /// session that has ended, a revoked key or a disabled user refuse the ticket too.
    pub async fn redeem_ticket(&self, db: &Database, ticket: &str) -> Result<Principal, AuthError> {
        let claims = self.keys().verify_ticket(ticket)?;
        let malformed = || AuthError::InvalidToken("not an event stream ticket".into());
        let user: UserId = claims.sub.parse().map_err(|_| malformed())?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or_else(malformed)?;
        let jti = claims.jti.clone();
        let first = db
            .run(move |conn| spent_tickets::spend(conn, &jti, expires_at))
            .await?;
        if !first {
            return Err(AuthError::InvalidToken(
                "the ticket was used before; ask for a new one".into(),
            ));
        }
        match claims.cred.split_once(':') {
            Some(("session", session)) => {
                let session = session.parse().map_err(|_| malformed())?;
                self.session_principal(db, user, session).await
            }
            Some(("api_key", key)) => {
                let key: api_keys::ApiKeyId = key.parse().map_err(|_| malformed())?;
                db.run(move |conn| match api_keys::find(conn, key)? {
                    Some(key) if key.user_id == user => key_principal(conn, key),
                    _ => Ok(Err("the API key no longer exists".to_owned())),
                })
                .await?
                .map_err(AuthError::InvalidToken)
            }
            _ => Err(malformed()),
        }
    }
}

/// The principal of a stored API key, or why it is refused: revoked, expired, or its user
/// gone or disabled. Notes the key's use (at most once a minute).
fn key_principal(
    conn: &mut DbConnection,
    key: api_keys::ApiKey,
) -> Result<Result<Principal, String>, StorageError> {
    let now = Utc::now();
    if key.revoked_at.is_some() {
        return Ok(Err("the API key is revoked".to_owned()));
    }
    if key.expires_at.is_some_and(|t| t <= now) {
        return Ok(Err("the API key has expired".to_owned()));
    }
    let user = match usable_user(conn, key.user_id)? {
        Ok(user) => user,
        Err(reason) => return Ok(Err(reason)),
    };
    // Writing on every request would make each API call a write; a minute is precise enough
    // for "last used".
    if key
        .last_used_at
        .is_none_or(|t| now - t > chrono::Duration::seconds(60))
    {
        api_keys::touch(conn, key.id)?;
    }
    let stations = members::roles_of(conn, user.id)?;
    Ok(Ok(Principal::api_key(
        key.id,
        key.station_id,
        key.role,
        user.id,
        user.email,
        user.role,
        stations,
    )))
}

/// The user, if it exists and is enabled; otherwise why not.
fn usable_user(conn: &mut DbConnection, id: UserId) -> Result<Result<User, String>, StorageError> {
    Ok(match users::find(conn, id)? {
        None => Err("the user no longer exists".to_owned()),
        Some(user) if user.disabled => Err("the account is disabled".to_owned()),
        Some(user) => Ok(user),
    })
}

/// Revokes every session of a user (after a password change, or when an admin disables it).
pub fn end_sessions(conn: &mut DbConnection, user: UserId) -> Result<usize, StorageError> {
    refresh_tokens::revoke_user(conn, user, now())
}
