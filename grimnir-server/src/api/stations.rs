//! `/api/v1/stations`: stations, each seen by its admins, managers and DJs.

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
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::stations::{self, NewStation, Station, StationChanges, StationFilter, StationId};
use crate::http::AppState;

/// A station.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StationDto {
    /// Its id.
    pub id: Uuid,
    /// Name shown to people.
    #[schema(example = "WGMR FM")]
    pub name: String,
    /// IANA time zone its clocks and shows are planned in.
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Whether it is meant to be on air.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Station> for StationDto {
    fn from(s: Station) -> Self {
        StationDto {
            id: s.id.as_uuid(),
            name: s.name,
            timezone: s.timezone.name().to_owned(),
            description: s.description,
            active: s.active,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A new station.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStation {
    /// Name shown to people: 1 to 255 characters.
    #[schema(example = "WGMR FM")]
    pub name: String,
    /// An IANA time zone name.
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether it is meant to be on air (default yes).
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Changes to a station; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStation {
    /// A new name.
    pub name: Option<String>,
    /// A new IANA time zone name.
    pub timezone: Option<String>,
    /// A new description; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Whether it is meant to be on air.
    pub active: Option<bool>,
}

/// The `{station_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StationPath {
    /// The station.
    pub station_id: Uuid,
}

/// List the stations the caller may see.
///
/// Admins see every station; others the stations where they have a role; an API key its own.
#[utoipa::path(
    get, path = "/stations", tag = "stations",
    params(PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of stations, by name", body = Paginated<StationDto>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub(crate) async fn list_stations(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<StationDto>>, ApiError> {
    authorize(&principal, Action::StationList, None)?;
    let page = params.page()?;
    let visible: Option<Vec<StationId>> = (!principal.is_admin()).then(|| {
        principal
            .stations()
            .map(|(s, _)| s)
            .filter(|s| crate::auth::policy::allows(&principal, Action::StationRead, Some(*s)))
            .collect()
    });
    let (items, total) = state
        .db
        .run(move |conn| {
            let filter = match &visible {
                None => StationFilter::All,
                Some(ids) => StationFilter::Only(ids),
            };
            stations::list_page(conn, filter, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(StationDto::from),
    ))
}

/// Create a station (admins).
#[utoipa::path(
    post, path = "/stations", tag = "stations",
    request_body = CreateStation,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = StationDto),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_station(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Json(body): Json<CreateStation>,
) -> Result<(StatusCode, Json<StationDto>), ApiError> {
    authorize(&principal, Action::StationCreate, None)?;
    let new = NewStation {
        name: body.name,
        timezone: body.timezone,
        description: body.description,
        active: body.active,
    };
    let entry = audit_entry(&principal, &info, "station.create", "station");
    let station = super::transaction(&state.db, move |conn| {
        let station = stations::create(conn, &new)?;
        let details = serde_json::json!({ "name": station.name });
        audit::record(
            conn,
            &entry
                .target(station.id)
                .station(station.id)
                .details(details),
        )?;
        Ok(station)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(station.into())))
}

/// Get a station.
#[utoipa::path(
    get, path = "/stations/{station_id}", tag = "stations",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The station", body = StationDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn get_station(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
) -> Result<Json<StationDto>, ApiError> {
    let id = StationId::from(path.station_id);
    authorize(&principal, Action::StationRead, Some(id))?;
    let station = state.db.run(move |conn| stations::get(conn, id)).await?;
    Ok(Json(station.into()))
}

/// Change a station (admins, its managers).
#[utoipa::path(
    patch, path = "/stations/{station_id}", tag = "stations",
    params(StationPath),
    request_body = UpdateStation,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The station as changed", body = StationDto),
        (status = 409, description = "A station file declares the station", body = ErrorBody),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_station(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<UpdateStation>,
) -> Result<Json<StationDto>, ApiError> {
    let id = StationId::from(path.station_id);
    authorize(&principal, Action::StationUpdate, Some(id))?;
    let changes = StationChanges {
        name: body.name,
        timezone: body.timezone,
        description: body.description,
        active: body.active,
    };
    let details = serde_json::json!({
        "name": changes.name,
        "timezone": changes.timezone,
        "description_changed": changes.description.is_some(),
        "active": changes.active,
    });
    let entry = audit_entry(&principal, &info, "station.update", "station")
        .target(id)
        .station(id)
        .details(details);
    let station = super::transaction(&state.db, move |conn| {
        refuse_if_declared(conn, id)?;
        let station = stations::update(conn, id, &changes)?;
        audit::record(conn, &entry)?;
        Ok(station)
    })
    .await?;
    Ok(Json(station.into()))
}

/// Delete a station and everything that belongs to it (admins).
#[utoipa::path(
    delete, path = "/stations/{station_id}", tag = "stations",
    params(StationPath),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "A station file declares the station", body = ErrorBody),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn delete_station(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
) -> Result<StatusCode, ApiError> {
    let id = StationId::from(path.station_id);
    authorize(&principal, Action::StationDelete, Some(id))?;
    let entry = audit_entry(&principal, &info, "station.delete", "station")
        .target(id)
        .station(id);
    super::transaction(&state.db, move |conn| {
        refuse_if_declared(conn, id)?;
        stations::delete(conn, id)?;
        audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses a change to a station that a station file declares: the file's next revision would
/// undo it.
pub(crate) fn refuse_if_declared(
    conn: &mut crate::db::DbConnection,
    station: StationId,
) -> Result<(), ApiError> {
    match crate::station_files::declared_by(conn, station)? {
        Some(path) => Err(ApiError::managed_by_file(
            format!("station {station}"),
            &path,
        )),
        None => Ok(()),
    }
}
