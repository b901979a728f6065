//! `/api/v1/stations/{station_id}/members`: who has which role at a station.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::members::{self, Member, StationRole};
use crate::db::stations::{self, StationId};
use crate::db::users::UserId;
use crate::http::AppState;

/// A role at a station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StationRoleDto {
    /// Runs the station: settings, members, API keys.
    Manager,
    /// Runs the air.
    Dj,
}

impl From<StationRoleDto> for StationRole {
    fn from(r: StationRoleDto) -> Self {
        match r {
            StationRoleDto::Manager => StationRole::Manager,
            StationRoleDto::Dj => StationRole::Dj,
        }
    }
}

/// A member of a station.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberDto {
    /// The station.
    pub station_id: Uuid,
    /// The user.
    pub user_id: Uuid,
    /// The user's email.
    pub email: String,
    /// `manager` or `dj`.
    #[schema(example = "dj")]
    pub role: String,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

impl From<Member> for MemberDto {
    fn from(m: Member) -> Self {
        MemberDto {
            station_id: m.station_id.as_uuid(),
            user_id: m.user_id.as_uuid(),
            email: m.email,
            role: m.role.as_str().to_owned(),
            created_at: m.created_at,
        }
    }
}

/// The role to give.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    /// `manager` or `dj`.
    pub role: StationRoleDto,
}

/// The `{station_id}` and `{user_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The station.
    pub station_id: Uuid,
    /// The user.
    pub user_id: Uuid,
}

/// List a station's members (admins, its managers).
#[utoipa::path(
    get, path = "/stations/{station_id}/members", tag = "members",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of members, by email", body = Paginated<MemberDto>),
        (status = 400, description = "Not a station id, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<MemberDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MemberRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            members::list(conn, station, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(MemberDto::from),
    ))
}

/// Give a user a role at a station, or change it (admins, its managers).
#[utoipa::path(
    put, path = "/stations/{station_id}/members/{user_id}", tag = "members",
    params(MemberPath),
    request_body = SetMember,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The membership", body = MemberDto),
        (status = 400, description = "Not a station or user id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station or user", body = ErrorBody),
        (status = 422, description = "Not a role", body = ErrorBody),
    )
)]
pub(crate) async fn set_member(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MemberPath>,
    Json(body): Json<SetMember>,
) -> Result<Json<MemberDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let user = UserId::from(path.user_id);
    authorize(&principal, Action::MemberWrite, Some(station))?;
    let role = StationRole::from(body.role);
    let entry = audit_entry(&principal, &info, "member.set", "user")
        .target(user)
        .station(station)
        .details(serde_json::json!({ "role": role.as_str() }));
    let member = super::transaction(&state.db, move |conn| {
        let member = members::set(conn, station, user, role)?;
        audit::record(conn, &entry)?;
        Ok(member)
    })
    .await?;
    Ok(Json(member.into()))
}

/// Take a user's role at a station away (admins, its managers).
#[utoipa::path(
    delete, path = "/stations/{station_id}/members/{user_id}", tag = "members",
    params(MemberPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Not a station or user id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such member", body = ErrorBody),
    )
)]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    let user = UserId::from(path.user_id);
    authorize(&principal, Action::MemberWrite, Some(station))?;
    let entry = audit_entry(&principal, &info, "member.remove", "user")
        .target(user)
        .station(station);
    super::transaction(&state.db, move |conn| {
        members::remove(conn, station, user)?;
        audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
