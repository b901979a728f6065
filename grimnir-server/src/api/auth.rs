//! `/api/v1/auth`: sign in, refresh, sign out, who am I, change my password.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::Json;
use super::users::UserDto;
use crate::audit;
use crate::auth::password::{self, Verified};
use crate::auth::policy::{Action, Credential, Principal};
use crate::auth::sessions::{self, RequestInfo, Tokens};
use crate::db::members::StationRole;
use crate::db::users;
use crate::http::AppState;

/// Credentials to sign in with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email (any case).
    #[schema(example = "dj@example.org")]
    pub email: String,
    /// The password.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// A refresh token to spend or revoke.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last sign-in or refresh.
    pub refresh_token: String,
}

/// A new access token and refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer …`, valid for `expires_in` seconds.
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires (900).
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Good for one refresh; spend it before `refresh_expires_in` seconds.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session (all tokens of one sign-in).
    pub session_id: Uuid,
    /// Who signed in.
    pub user: UserDto,
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        TokenResponse {
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
            refresh_expires_in: t.refresh_expires_in,
            session_id: t.session.as_uuid(),
            user: t.user.into(),
        }
    }
}

/// A role at a station.
#[derive(Debug, Serialize, ToSchema)]
pub struct StationGrant {
    /// The station.
    pub station_id: Uuid,
    /// The role there: `manager` or `dj`.
    #[schema(example = "manager")]
    pub role: String,
}

/// Who the caller is and what it may do where.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user (for an API key, the user who created it).
    pub user_id: Uuid,
    /// The user's email.
    pub email: String,
    /// Whether the caller acts as an admin (never for an API key).
    pub admin: bool,
    /// `session` or `api_key`.
    #[schema(example = "session")]
    pub credential: &'static str,
    /// The API key, when the caller is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
    /// Where the caller has a role, and which.
    pub stations: Vec<StationGrant>,
}

/// A new password for oneself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The new password: at least 10 characters.
    pub new_password: String,
}

pub(crate) fn role_name(role: StationRole) -> String {
    role.as_str().to_owned()
}

/// Sign in with email and password.
///
/// Returns an access token (15 minutes) and a refresh token. Limited per client address and per
/// account. A bcrypt password hash of an imported user is replaced by argon2id on success.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Unknown email or wrong password", body = ErrorBody),
        (status = 403, description = "The account is disabled", body = ErrorBody),
        (status = 422, description = "A field is missing or malformed", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    info: RequestInfo,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let ip = info.remote_addr.as_deref().and_then(|a| a.parse().ok());
    state
        .auth
        .check_login(ip, &body.email)
        .map_err(ApiError::rate_limited)?;
    let tokens = state
        .auth
        .login(&state.db, &body.email, &body.password, &info)
        .await?;
    Ok(Json(tokens.into()))
}

/// Exchange a refresh token for a new pair.
///
/// The presented token is spent. Presenting a spent token again revokes every token of its
/// sign-in (`refresh_token_reused`).
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens; the old refresh token is spent", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ErrorBody),
        (status = 422, description = "A field is missing", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    info: RequestInfo,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let tokens = state
        .auth
        .refresh(&state.db, &body.refresh_token, &info)
        .await?;
    Ok(Json(tokens.into()))
}

/// Sign out: revoke the session of a refresh token.
///
/// Its access tokens are refused from now on too. Unknown tokens are accepted silently.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 422, description = "A field is missing", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    info: RequestInfo,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .logout(&state.db, &body.refresh_token, &info)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A ticket for opening one event stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTicket {
    /// Pass it as `?ticket=` to `GET /api/v1/events` (WebSocket) or
    /// `GET /api/v1/events/stream` (SSE), instead of a header. Good once.
    pub ticket: String,
    /// Seconds left to present it (30).
    #[schema(example = 30)]
    pub expires_in: u64,
}

/// A ticket to open the event stream where no header can be set: a browser's `WebSocket` or
/// `EventSource`. The stream opened with it is the caller's own, limited to the stations the
/// caller may read when it is opened. The ticket is good once and for 30 seconds.
#[utoipa::path(
    post, path = "/auth/ticket", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A ticket for one event stream", body = EventTicket),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub(crate) async fn event_ticket(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<EventTicket>, ApiError> {
    // Anyone signed in may watch the stations they may read; the stream narrows to them.
    authorize(&principal, Action::SelfRead, None)?;
    let (ticket, _expires_at) = state.auth.issue_ticket(&principal)?;
    Ok(Json(EventTicket {
        ticket,
        expires_in: crate::auth::token::TICKET_TTL.as_secs(),
    }))
}

/// Who am I: the caller's user, credential and roles.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub(crate) async fn me(principal: Principal) -> Result<Json<Me>, ApiError> {
    authorize(&principal, Action::SelfRead, None)?;
    Ok(Json(Me {
        user_id: principal.user_id.as_uuid(),
        email: principal.email.clone(),
        admin: principal.is_admin(),
        credential: match principal.credential {
            Credential::ApiKey(_) => "api_key",
            _ => "session",
        },
        api_key_id: match principal.credential {
            Credential::ApiKey(key) => Some(key.as_uuid()),
            _ => None,
        },
        stations: principal
            .stations()
            .map(|(station, role)| StationGrant {
                station_id: station.as_uuid(),
                role: role_name(role),
            })
            .collect(),
    }))
}

/// Change one's own password.
///
/// Every session of the user ends, this one included: sign in again with the new password.
/// Not for API keys.
#[utoipa::path(
    put, path = "/auth/password", tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every session ended"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not for API keys", body = ErrorBody),
        (status = 422, description = "Wrong current password, or the new one is too short", body = ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    authorize(&principal, Action::PasswordChange, None)?;
    password::check_new(&body.new_password)
        .map_err(|e| ApiError::invalid_field("new_password", e.to_string()))?;
    let user = principal.user_id;
    let stored = state
        .db
        .run(move |conn| users::password_hash(conn, user))
        .await?;
    let (current, new) = (body.current_password, body.new_password);
    let new_hash =
        tokio::task::spawn_blocking(move || match password::verify(&current, &stored)? {
            Verified::Match { .. } => password::hash(&new).map(Some),
            Verified::Mismatch => Ok(None),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "password task");
            ApiError::internal()
        })??
        .ok_or_else(|| ApiError::invalid_field("current_password", "wrong password"))?;
    let entry = audit_entry(&principal, &info, "user.password_change", "user").target(user);
    super::transaction(&state.db, move |conn| {
        users::set_password_hash(conn, user, &new_hash)?;
        sessions::end_sessions(conn, user)?;
        audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
