//! `/api/v1/stations/{station_id}/shows`: calendar events that take over the air from the
//! clocks for a fixed span.
//!
//! A show's `definition` is a `grimnir-planner` show without its `id` and `name`:
//!
//! ```json
//! {"repeat": {"weekly": ["fri"]}, "starts_on": "2026-01-02", "start": "20:00:00",
//!  "end": "22:00:00", "content": {"smart_block": "<block id>"},
//!  "underbooked": "filler", "overbooked": "trim"}
//! ```
//!
//! `repeat` is `"once"`, `{"weekly": [days]}`, `{"every_n_weeks": {"n": 2, "days": [days]}}` or
//! `{"monthly": {"day": 15}}` / `{"monthly": {"nth": {"nth": -1, "weekday": "fri"}}}`; give
//! `end` (a local time, the next day when at or before `start`) or `duration`; `content` is
//! `"live"`, `{"smart_block": id}`, `{"list": [media ids]}` or `{"webstream": id}`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use grimnir_planner::Show;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::programme::{check_references, planner_error, planner_value};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::DbConnection;
use crate::db::programme;
use crate::db::shows::{self, ShowId, ShowInput, StoredShow};
use crate::db::stations::{self, StationId};
use crate::http::AppState;

/// A show.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShowDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// Name shown to people.
    #[schema(example = "Jazz Night")]
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Repeat rule, dates, times, content and policies, as `grimnir-planner` writes them, with
    /// every default filled in.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<StoredShow> for ShowDto {
    fn from(b: StoredShow) -> Self {
        let mut definition = serde_json::to_value(&b.show).unwrap_or_default();
        if let Some(map) = definition.as_object_mut() {
            map.remove("id");
            map.remove("name");
        }
        ShowDto {
            id: b.id.as_uuid(),
            station_id: b.station_id.as_uuid(),
            name: b.name,
            description: b.description,
            definition,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A new show.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShow {
    /// Name shown to people: 1 to 255 characters.
    #[schema(example = "Jazz Night")]
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Repeat rule, dates, times, content and policies.
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

/// Changes to a show; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShow {
    /// A new name.
    pub name: Option<String>,
    /// A new description; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new definition, replacing the old one whole.
    #[schema(value_type = Option<Object>)]
    pub definition: Option<serde_json::Value>,
}

/// The `{station_id}` and `{show_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ShowPath {
    /// The station.
    pub station_id: Uuid,
    /// The show.
    pub show_id: Uuid,
}

/// Reads and validates a definition as the planner's show, naming the field below
/// `definition`.
fn definition(value: &serde_json::Value, name: &str) -> Result<Show, ApiError> {
    let mut value = value.clone();
    let Some(map) = value.as_object_mut() else {
        return Err(ApiError::invalid_field("definition", "must be an object"));
    };
    for key in ["id", "name"] {
        if map.contains_key(key) {
            return Err(ApiError::invalid_field(
                format!("definition.{key}"),
                "is the show's own; leave it out of the definition",
            ));
        }
    }
    map.insert("id".into(), "new".into());
    map.insert("name".into(), name.into());
    let show: Show = planner_value(&value, "definition")?;
    show.validate("definition")
        .map_err(|e| planner_error(&e, "definition", "definition"))?;
    Ok(show)
}

/// Refuses a definition that refers to smart blocks, media or webstreams the station does not
/// have, naming the field (`definition.content.smart_block`).
fn check_show(conn: &mut DbConnection, station: StationId, show: &Show) -> Result<(), ApiError> {
    let references: Vec<_> = programme::show_references(show)
        .into_iter()
        .map(|(field, r)| (format!("definition.{field}"), r))
        .collect();
    check_references(conn, station, &references)
}

/// List a station's shows.
#[utoipa::path(
    get, path = "/stations/{station_id}/shows", tag = "shows",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of shows, by name", body = Paginated<ShowDto>),
        (status = 400, description = "Not a station id, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_shows(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<ShowDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            shows::list(conn, station, page)
        })
        .await?;
    Ok(Json(Paginated::new(items, total, page).map(ShowDto::from)))
}

/// Create a show (admins, the station's managers). The planner validates the definition; every
/// smart block, media item and webstream named must exist at the station.
#[utoipa::path(
    post, path = "/stations/{station_id}/shows", tag = "shows",
    params(StationPath),
    request_body = CreateShow,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = ShowDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused, or names something the station does not have, e.g. `definition.content.smart_block`", body = ErrorBody),
    )
)]
pub(crate) async fn create_show(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateShow>,
) -> Result<(StatusCode, Json<ShowDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let input = ShowInput {
        show: definition(&body.definition, &body.name)?,
        name: body.name,
        description: body.description,
    };
    let entry = audit_entry(&principal, &info, "show.create", "show").station(station);
    state
        .db
        .run(move |conn| stations::get(conn, station))
        .await?;
    let show = super::transaction(&state.db, move |conn| {
        check_show(conn, station, &input.show)?;
        let show = shows::create(conn, station, &input)?;
        let details = serde_json::json!({ "name": show.name });
        audit::record(conn, &entry.target(show.id).details(details))?;
        Ok(show)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(show.into())))
}

/// Get a show.
#[utoipa::path(
    get, path = "/stations/{station_id}/shows/{show_id}", tag = "shows",
    params(ShowPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The show", body = ShowDto),
        (status = 400, description = "Not a station or show id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such show at this station", body = ErrorBody),
    )
)]
pub(crate) async fn get_show(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<ShowPath>,
) -> Result<Json<ShowDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ShowId::from(path.show_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let show = state
        .db
        .run(move |conn| shows::get(conn, station, id))
        .await?;
    Ok(Json(show.into()))
}

/// Change a show (admins, the station's managers). A new definition replaces the old whole.
#[utoipa::path(
    patch, path = "/stations/{station_id}/shows/{show_id}", tag = "shows",
    params(ShowPath),
    request_body = UpdateShow,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The show as changed", body = ShowDto),
        (status = 400, description = "Not a station or show id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such show at this station", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_show(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<ShowPath>,
    Json(body): Json<UpdateShow>,
) -> Result<Json<ShowDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ShowId::from(path.show_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let current = state
        .db
        .run(move |conn| shows::get(conn, station, id))
        .await?;
    let name = body.name.unwrap_or(current.name);
    let show = match &body.definition {
        Some(value) => definition(value, &name)?,
        None => current.show,
    };
    let changed = body.definition.is_some();
    let input = ShowInput {
        name,
        description: body.description.unwrap_or(current.description),
        show,
    };
    let entry = audit_entry(&principal, &info, "show.update", "show")
        .target(id)
        .station(station)
        .details(serde_json::json!({
            "name": input.name, "definition_changed": changed,
        }));
    let show = super::transaction(&state.db, move |conn| {
        if changed {
            check_show(conn, station, &input.show)?;
        }
        let show = shows::replace(conn, station, id, &input)?;
        audit::record(conn, &entry)?;
        Ok(show)
    })
    .await?;
    Ok(Json(show.into()))
}

/// Delete a show (admins, the station's managers).
#[utoipa::path(
    delete, path = "/stations/{station_id}/shows/{show_id}", tag = "shows",
    params(ShowPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a station or show id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such show at this station", body = ErrorBody),
    )
)]
pub(crate) async fn delete_show(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<ShowPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ShowId::from(path.show_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let entry = audit_entry(&principal, &info, "show.delete", "show")
        .target(id)
        .station(station);
    super::transaction(&state.db, move |conn| {
        let show = shows::get(conn, station, id)?;
        shows::delete(conn, station, id)?;
        audit::record(
            conn,
            &entry.details(serde_json::json!({ "name": show.name })),
        )?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
