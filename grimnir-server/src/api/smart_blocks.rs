//! `/api/v1/stations/{station_id}/smart-blocks`: rule-based track selection, and a preview of
//! what a block would pick.
//!
//! A block's `rules` are a `grimnir-planner` smart block without its `id` and `name`:
//!
//! ```json
//! {"filter": {"tags": {"include": ["rock"]}},
//!  "order": "random",
//!  "separation": {"artist": {"minutes": 30}, "title": {"minutes": 120}},
//!  "quotas": [{"max_per_artist": 2}],
//!  "duration": {"target": "15m", "tolerance": 30}}
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use grimnir_planner::{Millis, SmartBlock};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::programme::{DiagnosticDto, PlannedEntryDto, planner_error, planner_value};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::programme;
use crate::db::smart_blocks::{self, SmartBlockId, SmartBlockInput, StoredSmartBlock};
use crate::db::stations::{self, StationId};
use crate::http::AppState;
use crate::planning;

/// A smart block.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SmartBlockDto {
    /// Its id: what clocks, shows and the filler setting refer to.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// Name shown to people.
    #[schema(example = "Rock rotation")]
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Filter, order, separation, quotas and target duration, as `grimnir-planner` writes
    /// them, with every default filled in.
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<StoredSmartBlock> for SmartBlockDto {
    fn from(b: StoredSmartBlock) -> Self {
        let mut rules = serde_json::to_value(&b.block).unwrap_or_default();
        if let Some(map) = rules.as_object_mut() {
            map.remove("id");
            map.remove("name");
        }
        SmartBlockDto {
            id: b.id.as_uuid(),
            station_id: b.station_id.as_uuid(),
            name: b.name,
            description: b.description,
            rules,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A new smart block.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSmartBlock {
    /// Name shown to people: 1 to 255 characters.
    #[schema(example = "Rock rotation")]
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Filter, order, separation, quotas and target duration (each optional).
    #[schema(value_type = Object)]
    pub rules: serde_json::Value,
}

/// Changes to a smart block; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSmartBlock {
    /// A new name.
    pub name: Option<String>,
    /// A new description; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New rules, replacing the old ones whole.
    #[schema(value_type = Option<Object>)]
    pub rules: Option<serde_json::Value>,
}

/// The `{station_id}` and `{block_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SmartBlockPath {
    /// The station.
    pub station_id: Uuid,
    /// The smart block.
    pub block_id: Uuid,
}

/// What to materialize.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaterializeRequest {
    /// How long to fill: seconds, or a length such as `"15m"` or `"1:00:00"` (1 s to 24 h).
    #[schema(value_type = f64, example = 900)]
    pub duration: serde_json::Value,
    /// The seed: the same seed, block, library and start give the same items (default 1).
    #[serde(default)]
    pub seed: Option<u64>,
    /// When the stretch starts, for separation and date filters (default now).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// What a smart block would pick.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MaterializedDto {
    /// The block.
    pub block_id: Uuid,
    /// The seed used.
    pub seed: u64,
    /// Start of the stretch.
    pub starts_at: DateTime<Utc>,
    /// End of the stretch.
    pub ends_at: DateTime<Utc>,
    /// The items in playing order; they tile the stretch, the last cut at its end.
    pub items: Vec<PlannedEntryDto>,
    /// What the planner had to work around (rules loosened, nothing eligible).
    pub diagnostics: Vec<DiagnosticDto>,
}

/// Reads and validates rules as the planner's block, naming the field below `rules`.
fn rules(value: &serde_json::Value, name: &str) -> Result<SmartBlock, ApiError> {
    let mut value = value.clone();
    let Some(map) = value.as_object_mut() else {
        return Err(ApiError::invalid_field("rules", "must be an object"));
    };
    for key in ["id", "name"] {
        if map.contains_key(key) {
            return Err(ApiError::invalid_field(
                format!("rules.{key}"),
                "is the block's own; leave it out of the rules",
            ));
        }
    }
    map.insert("id".into(), "new".into());
    map.insert("name".into(), name.into());
    let block: SmartBlock = planner_value(&value, "rules")?;
    block
        .validate("rules")
        .map_err(|e| planner_error(&e, "rules", "rules"))?;
    Ok(block)
}

/// List a station's smart blocks.
#[utoipa::path(
    get, path = "/stations/{station_id}/smart-blocks", tag = "smart-blocks",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of smart blocks, by name", body = Paginated<SmartBlockDto>),
        (status = 400, description = "Not a station id, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_smart_blocks(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<SmartBlockDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            smart_blocks::list(conn, station, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(SmartBlockDto::from),
    ))
}

/// Create a smart block (admins, the station's managers). The planner validates the rules.
#[utoipa::path(
    post, path = "/stations/{station_id}/smart-blocks", tag = "smart-blocks",
    params(StationPath),
    request_body = CreateSmartBlock,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = SmartBlockDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused, e.g. `rules.separation.artist.minutes`", body = ErrorBody),
    )
)]
pub(crate) async fn create_smart_block(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateSmartBlock>,
) -> Result<(StatusCode, Json<SmartBlockDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let input = SmartBlockInput {
        block: rules(&body.rules, &body.name)?,
        name: body.name,
        description: body.description,
    };
    let entry =
        audit_entry(&principal, &info, "smart_block.create", "smart_block").station(station);
    state
        .db
        .run(move |conn| stations::get(conn, station))
        .await?;
    let block = super::transaction(&state.db, move |conn| {
        let block = smart_blocks::create(conn, station, &input)?;
        let details = serde_json::json!({ "name": block.name });
        audit::record(conn, &entry.target(block.id).details(details))?;
        Ok(block)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(block.into())))
}

/// Get a smart block.
#[utoipa::path(
    get, path = "/stations/{station_id}/smart-blocks/{block_id}", tag = "smart-blocks",
    params(SmartBlockPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The smart block", body = SmartBlockDto),
        (status = 400, description = "Not a station or block id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such smart block at this station", body = ErrorBody),
    )
)]
pub(crate) async fn get_smart_block(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<SmartBlockPath>,
) -> Result<Json<SmartBlockDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = SmartBlockId::from(path.block_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let block = state
        .db
        .run(move |conn| smart_blocks::get(conn, station, id))
        .await?;
    Ok(Json(block.into()))
}

/// Change a smart block (admins, the station's managers). New rules replace the old whole.
#[utoipa::path(
    patch, path = "/stations/{station_id}/smart-blocks/{block_id}", tag = "smart-blocks",
    params(SmartBlockPath),
    request_body = UpdateSmartBlock,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The smart block as changed", body = SmartBlockDto),
        (status = 400, description = "Not a station or block id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such smart block at this station", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_smart_block(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<SmartBlockPath>,
    Json(body): Json<UpdateSmartBlock>,
) -> Result<Json<SmartBlockDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = SmartBlockId::from(path.block_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let current = state
        .db
        .run(move |conn| smart_blocks::get(conn, station, id))
        .await?;
    let name = body.name.unwrap_or(current.name);
    let block = match &body.rules {
        Some(value) => rules(value, &name)?,
        None => current.block,
    };
    let input = SmartBlockInput {
        name,
        description: body.description.unwrap_or(current.description),
        block,
    };
    let entry = audit_entry(&principal, &info, "smart_block.update", "smart_block")
        .target(id)
        .station(station)
        .details(serde_json::json!({
            "name": input.name, "rules_changed": body.rules.is_some(),
        }));
    let block = super::transaction(&state.db, move |conn| {
        let block = smart_blocks::replace(conn, station, id, &input)?;
        audit::record(conn, &entry)?;
        Ok(block)
    })
    .await?;
    Ok(Json(block.into()))
}

/// Delete a smart block (admins, the station's managers). Refused while a clock, a show or the
/// filler setting uses it.
#[utoipa::path(
    delete, path = "/stations/{station_id}/smart-blocks/{block_id}", tag = "smart-blocks",
    params(SmartBlockPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a station or block id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such smart block at this station", body = ErrorBody),
        (status = 409, description = "A clock, show or the filler setting uses it", body = ErrorBody),
    )
)]
pub(crate) async fn delete_smart_block(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<SmartBlockPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    let id = SmartBlockId::from(path.block_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let entry = audit_entry(&principal, &info, "smart_block.delete", "smart_block")
        .target(id)
        .station(station);
    super::transaction(&state.db, move |conn| {
        let block = smart_blocks::get(conn, station, id)?;
        if let Some(user) = programme::block_users(conn, station, &id.to_string())? {
            return Err(ApiError::conflict(format!(
                "smart block `{id}` is used by {user}"
            )));
        }
        smart_blocks::delete(conn, station, id)?;
        audit::record(
            conn,
            &entry.details(serde_json::json!({ "name": block.name })),
        )?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Preview a smart block: the items it would pick to fill a stretch, with the planner's
/// diagnostics. Nothing is stored; the same seed and start give the same items.
#[utoipa::path(
    post, path = "/stations/{station_id}/smart-blocks/{block_id}/materialize", tag = "smart-blocks",
    params(SmartBlockPath),
    request_body = MaterializeRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The items and diagnostics", body = MaterializedDto),
        (status = 400, description = "Not a station or block id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such smart block at this station", body = ErrorBody),
        (status = 409, description = "The station's programme cannot be planned as stored", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn materialize_smart_block(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<SmartBlockPath>,
    Json(body): Json<MaterializeRequest>,
) -> Result<Json<MaterializedDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = SmartBlockId::from(path.block_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let length: Millis = planner_value(&body.duration, "duration")?;
    let seed = body.seed.unwrap_or(1);
    let at = body.at.unwrap_or_else(Utc::now);
    let (entries, diagnostics) = state
        .db
        .run(move |conn| Ok(planning::materialize(conn, station, id, length, at, seed)))
        .await??;
    Ok(Json(MaterializedDto {
        block_id: id.as_uuid(),
        seed,
        starts_at: entries.first().map_or(at, |e| e.start),
        ends_at: entries.last().map_or(at, |e| e.end),
        items: entries.iter().map(PlannedEntryDto::from).collect(),
        diagnostics: diagnostics.iter().map(DiagnosticDto::from).collect(),
    }))
}
