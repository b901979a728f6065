//! `/api/v1/audit`: the audit log, for admins (all of it) and managers (their station's).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::authorize;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Query};
use super::page::{PageParams, Paginated};
use crate::audit::{self, Recorded};
use crate::auth::policy::{Action, Principal};
use crate::db::stations::StationId;
use crate::http::AppState;

/// An audit entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntryDto {
    /// Its id.
    pub id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The user who acted (also for an API key).
    pub actor_user_id: Option<String>,
    /// The API key that acted.
    pub actor_api_key_id: Option<String>,
    /// The station concerned.
    pub station_id: Option<String>,
    /// What was done.
    #[schema(example = "user.create")]
    pub action: String,
    /// Kind of thing acted on.
    #[schema(example = "user")]
    pub target_type: String,
    /// Id of the thing acted on.
    pub target_id: Option<String>,
    /// Request id of the API call.
    pub request_id: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
    /// What changed.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<Recorded> for AuditEntryDto {
    fn from(r: Recorded) -> Self {
        AuditEntryDto {
            id: r.id.as_uuid(),
            occurred_at: r.occurred_at,
            actor_user_id: r.actor_user_id,
            actor_api_key_id: r.actor_api_key_id,
            station_id: r.station_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            request_id: r.request_id,
            remote_addr: r.remote_addr,
            details: r.details,
        }
    }
}

/// Which entries.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this station's entries; required for managers.
    pub station_id: Option<Uuid>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<u64>,
}

/// Read the audit log, newest first (admins; managers with their `station_id`).
#[utoipa::path(
    get, path = "/audit", tag = "audit",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries, newest first", body = Paginated<AuditEntryDto>),
        (status = 400, description = "Bad paging or station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Neither admin nor manager of the station", body = ErrorBody),
    )
)]
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<AuditParams>,
) -> Result<Json<Paginated<AuditEntryDto>>, ApiError> {
    let station = params.station_id.map(StationId::from);
    authorize(&principal, Action::AuditRead, station)?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let (items, total) = state
        .db
        .run(move |conn| audit::list(conn, station, page))
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(AuditEntryDto::from),
    ))
}
