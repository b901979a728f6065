//! `/api/v1/stations/{station_id}/clocks`: hour templates made of slots, and a simulation of
//! the hour a clock would make.
//!
//! Each slot is a `grimnir-planner` slot: exactly one kind key, and an optional `hard_start`
//! (an offset into the hour):
//!
//! ```json
//! [{"hard_item": {"media": "<media id>"}},
//!  {"smart_block": {"block": "<block id>", "duration": "20m"}},
//!  {"stopset": {"items": ["<media id>", "<media id>"]}, "hard_start": "30:00"},
//!  {"webstream": {"webstream": "<webstream id>", "duration": "10m"}},
//!  {"live": {"name": "Phone-in", "duration": "15m"}}]
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use grimnir_planner::{Clock, Slot};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::programme::{
    DiagnosticDto, PlannedEntryDto, check_references, planner_error, planner_value,
};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::DbConnection;
use crate::db::clocks::{self, ClockId, ClockInput, StoredClock};
use crate::db::programme;
use crate::db::stations::{self, StationId};
use crate::http::AppState;
use crate::planning;

/// A clock.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClockDto {
    /// Its id: what the grid refers to.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// Name shown to people.
    #[schema(example = "Breakfast hour")]
    pub name: String,
    /// The slots in playing order, as `grimnir-planner` writes them.
    #[schema(value_type = Vec<Object>)]
    pub slots: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<StoredClock> for ClockDto {
    fn from(c: StoredClock) -> Self {
        ClockDto {
            id: c.id.as_uuid(),
            station_id: c.station_id.as_uuid(),
            name: c.name,
            slots: serde_json::to_value(&c.clock.slots).unwrap_or_default(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A new clock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClock {
    /// Name shown to people: 1 to 255 characters.
    #[schema(example = "Breakfast hour")]
    pub name: String,
    /// The slots in playing order; at least one.
    #[schema(value_type = Vec<Object>)]
    pub slots: serde_json::Value,
}

/// Changes to a clock; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClock {
    /// A new name.
    pub name: Option<String>,
    /// New slots, replacing the old ones whole.
    #[schema(value_type = Option<Vec<Object>>)]
    pub slots: Option<serde_json::Value>,
}

/// The `{station_id}` and `{clock_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ClockPath {
    /// The station.
    pub station_id: Uuid,
    /// The clock.
    pub clock_id: Uuid,
}

/// What hour to simulate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Start of the hour simulated (any minute: the clock is joined part way through).
    pub start: DateTime<Utc>,
    /// The seed: the same seed, clock, library and start give the same entries (default 1).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// The hour a clock would make.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SimulationDto {
    /// The clock.
    pub clock_id: Uuid,
    /// The seed used.
    pub seed: u64,
    /// Start of the hour.
    pub starts_at: DateTime<Utc>,
    /// End of the hour.
    pub ends_at: DateTime<Utc>,
    /// The entries in playing order; the last is the one that crosses the end.
    pub entries: Vec<PlannedEntryDto>,
    /// What the planner had to work around.
    pub diagnostics: Vec<DiagnosticDto>,
}

/// Reads and validates slots as the planner's, naming the field below `slots`.
fn slots(value: &serde_json::Value, name: &str) -> Result<Vec<Slot>, ApiError> {
    let slots: Vec<Slot> = planner_value(value, "slots")?;
    let clock = Clock {
        id: "new".into(),
        name: name.to_owned(),
        slots,
    };
    clock
        .validate("clock")
        .map_err(|e| planner_error(&e, "clock", ""))?;
    Ok(clock.slots)
}

/// Refuses slots that refer to smart blocks, media or webstreams the station does not have,
/// naming the slot's field (`slots[2].smart_block.block`).
fn check_slots(
    conn: &mut DbConnection,
    station: StationId,
    slots: &[Slot],
) -> Result<(), ApiError> {
    for (i, slot) in slots.iter().enumerate() {
        let references: Vec<_> = programme::slot_references(&slot.kind)
            .into_iter()
            .map(|(field, r)| (format!("slots[{i}].{field}"), r))
            .collect();
        check_references(conn, station, &references)?;
    }
    Ok(())
}

/// List a station's clocks.
#[utoipa::path(
    get, path = "/stations/{station_id}/clocks", tag = "clocks",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of clocks, by name", body = Paginated<ClockDto>),
        (status = 400, description = "Not a station id, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_clocks(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<ClockDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            clocks::list(conn, station, page)
        })
        .await?;
    Ok(Json(Paginated::new(items, total, page).map(ClockDto::from)))
}

/// Create a clock (admins, the station's managers). The planner validates the slots; every
/// smart block, media item and webstream named must exist at the station.
#[utoipa::path(
    post, path = "/stations/{station_id}/clocks", tag = "clocks",
    params(StationPath),
    request_body = CreateClock,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = ClockDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is refused, or a slot names something the station does not have (`slots[1].smart_block.block`)", body = ErrorBody),
    )
)]
pub(crate) async fn create_clock(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateClock>,
) -> Result<(StatusCode, Json<ClockDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let input = ClockInput {
        slots: slots(&body.slots, &body.name)?,
        name: body.name,
    };
    let entry = audit_entry(&principal, &info, "clock.create", "clock").station(station);
    state
        .db
        .run(move |conn| stations::get(conn, station))
        .await?;
    let clock = super::transaction(&state.db, move |conn| {
        check_slots(conn, station, &input.slots)?;
        let clock = clocks::create(conn, station, &input)?;
        let details = serde_json::json!({ "name": clock.name, "slots": clock.clock.slots.len() });
        audit::record(conn, &entry.target(clock.id).details(details))?;
        Ok(clock)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(clock.into())))
}

/// Get a clock with its slots.
#[utoipa::path(
    get, path = "/stations/{station_id}/clocks/{clock_id}", tag = "clocks",
    params(ClockPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The clock", body = ClockDto),
        (status = 400, description = "Not a station or clock id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such clock at this station", body = ErrorBody),
    )
)]
pub(crate) async fn get_clock(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<ClockPath>,
) -> Result<Json<ClockDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ClockId::from(path.clock_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let clock = state
        .db
        .run(move |conn| clocks::get(conn, station, id))
        .await?;
    Ok(Json(clock.into()))
}

/// Change a clock (admins, the station's managers). New slots replace the old whole.
#[utoipa::path(
    patch, path = "/stations/{station_id}/clocks/{clock_id}", tag = "clocks",
    params(ClockPath),
    request_body = UpdateClock,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The clock as changed", body = ClockDto),
        (status = 400, description = "Not a station or clock id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such clock at this station", body = ErrorBody),
        (status = 422, description = "A field is refused, or a slot names something the station does not have", body = ErrorBody),
    )
)]
pub(crate) async fn update_clock(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<ClockPath>,
    Json(body): Json<UpdateClock>,
) -> Result<Json<ClockDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ClockId::from(path.clock_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let current = state
        .db
        .run(move |conn| clocks::get(conn, station, id))
        .await?;
    let name = body.name.unwrap_or(current.name);
    let new_slots = match &body.slots {
        Some(value) => Some(slots(value, &name)?),
        None => None,
    };
    let changed = new_slots.is_some();
    let input = ClockInput {
        name,
        slots: new_slots.unwrap_or(current.clock.slots),
    };
    let entry = audit_entry(&principal, &info, "clock.update", "clock")
        .target(id)
        .station(station)
        .details(serde_json::json!({ "name": input.name, "slots_changed": changed }));
    let clock = super::transaction(&state.db, move |conn| {
        if changed {
            check_slots(conn, station, &input.slots)?;
        }
        let clock = clocks::replace(conn, station, id, &input)?;
        audit::record(conn, &entry)?;
        Ok(clock)
    })
    .await?;
    Ok(Json(clock.into()))
}

/// Delete a clock and its slots (admins, the station's managers). Refused while the grid uses
/// it.
#[utoipa::path(
    delete, path = "/stations/{station_id}/clocks/{clock_id}", tag = "clocks",
    params(ClockPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a station or clock id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such clock at this station", body = ErrorBody),
        (status = 409, description = "The grid or a dated override uses it", body = ErrorBody),
    )
)]
pub(crate) async fn delete_clock(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<ClockPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ClockId::from(path.clock_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let entry = audit_entry(&principal, &info, "clock.delete", "clock")
        .target(id)
        .station(station);
    super::transaction(&state.db, move |conn| {
        let clock = clocks::get(conn, station, id)?;
        if let Some(user) = programme::clock_users(conn, station, &id.to_string())? {
            return Err(ApiError::conflict(format!(
                "clock `{id}` is used by {user}"
            )));
        }
        clocks::delete(conn, station, id)?;
        audit::record(
            conn,
            &entry.details(serde_json::json!({ "name": clock.name })),
        )?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Simulate a clock: the entries the planner would make for an hour from `start`, with its
/// diagnostics. Nothing is stored.
#[utoipa::path(
    post, path = "/stations/{station_id}/clocks/{clock_id}/simulate", tag = "clocks",
    params(ClockPath),
    request_body = SimulateRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The hour's entries and diagnostics", body = SimulationDto),
        (status = 400, description = "Not a station or clock id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such clock at this station", body = ErrorBody),
        (status = 409, description = "The station's programme cannot be planned as stored", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn simulate_clock(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<ClockPath>,
    Json(body): Json<SimulateRequest>,
) -> Result<Json<SimulationDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ClockId::from(path.clock_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let seed = body.seed.unwrap_or(1);
    let start = body.start;
    let (timeline, diagnostics) = state
        .db
        .run(move |conn| Ok(planning::simulate_clock(conn, station, id, start, seed)))
        .await??;
    Ok(Json(SimulationDto {
        clock_id: id.as_uuid(),
        seed,
        starts_at: timeline.start,
        ends_at: timeline.end,
        entries: timeline.entries.iter().map(PlannedEntryDto::from).collect(),
        diagnostics: diagnostics.iter().map(DiagnosticDto::from).collect(),
    }))
}
