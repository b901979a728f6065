//! `/api/v1/stations/{station_id}/api-keys`: keys for integrations and webhooks.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::members::StationRoleDto;
use super::page::{PageParams, Paginated};
use super::stations::StationPath;
use crate::audit;
use crate::auth::api_key;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::api_keys::{self, ApiKey, ApiKeyId, NewApiKey};
use crate::db::members::StationRole;
use crate::db::stations::{self, StationId};
use crate::http::AppState;

/// An API key, without its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// The user who created it; the key never does more than this user may.
    pub user_id: Uuid,
    /// Name shown to people.
    #[schema(example = "playout webhook")]
    pub name: String,
    /// The visible start of the key.
    #[schema(example = "grk_Q3v9ZtP0aLm2")]
    pub prefix: String,
    /// `manager` or `dj`.
    #[schema(example = "dj")]
    pub role: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last accepted (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        ApiKeyDto {
            id: k.id.as_uuid(),
            station_id: k.station_id.as_uuid(),
            user_id: k.user_id.as_uuid(),
            name: k.name,
            prefix: k.prefix,
            role: k.role.as_str().to_owned(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// Name shown to people.
    #[schema(example = "playout webhook")]
    pub name: String,
    /// `manager` or `dj`.
    pub role: StationRoleDto,
    /// When it stops being accepted (default: never).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The whole key, for the `X-API-Key` header. Store it now: it is not shown again.
    pub key: String,
    /// The key's details.
    pub api_key: ApiKeyDto,
}

/// The `{station_id}` and `{key_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ApiKeyPath {
    /// The station.
    pub station_id: Uuid,
    /// The key.
    pub key_id: Uuid,
}

/// List a station's API keys, revoked ones included (admins, its managers).
#[utoipa::path(
    get, path = "/stations/{station_id}/api-keys", tag = "api-keys",
    params(StationPath, PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of keys, newest first", body = Paginated<ApiKeyDto>),
        (status = 400, description = "Not a station id, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<ApiKeyDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ApiKeyRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            api_keys::list(conn, station, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(ApiKeyDto::from),
    ))
}

/// Create an API key for a station (admins, its managers).
///
/// The answer holds the key; it is stored only as a hash and is never shown again.
#[utoipa::path(
    post, path = "/stations/{station_id}/api-keys", tag = "api-keys",
    params(StationPath),
    request_body = CreateApiKey,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `key` is shown this once", body = CreatedApiKey),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ApiKeyWrite, Some(station))?;
    if body.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::invalid_field(
            "expires_at",
            "must be in the future",
        ));
    }
    let generated = api_key::generate().map_err(|e| {
        tracing::error!(error = %e, "API key generation");
        ApiError::internal()
    })?;
    let role = StationRole::from(body.role);
    let new = NewApiKey {
        user_id: principal.user_id,
        station_id: station,
        name: body.name,
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash,
        role,
        expires_at: body
            .expires_at
            .map(|t| chrono::SubsecRound::trunc_subsecs(t, 6).naive_utc()),
    };
    let entry = audit_entry(&principal, &info, "api_key.create", "api_key").station(station);
    state
        .db
        .run(move |conn| stations::get(conn, station))
        .await?;
    let key = super::transaction(&state.db, move |conn| {
        let key = api_keys::create(conn, &new)?;
        let details = serde_json::json!({
            "name": key.name, "prefix": key.prefix, "role": key.role.as_str(),
        });
        audit::record(conn, &entry.target(key.id).details(details))?;
        Ok(key)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: generated.key,
            api_key: key.into(),
        }),
    ))
}

/// Revoke an API key (admins, the station's managers). It is refused from now on.
#[utoipa::path(
    delete, path = "/stations/{station_id}/api-keys/{key_id}", tag = "api-keys",
    params(ApiKeyPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Not a station or key id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such key at this station", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<ApiKeyPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ApiKeyId::from(path.key_id);
    authorize(&principal, Action::ApiKeyWrite, Some(station))?;
    let entry = audit_entry(&principal, &info, "api_key.revoke", "api_key")
        .target(id)
        .station(station);
    super::transaction(&state.db, move |conn| {
        let key = api_keys::revoke(conn, station, id)?;
        audit::record(
            conn,
            &entry.details(serde_json::json!({ "prefix": key.prefix })),
        )?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
