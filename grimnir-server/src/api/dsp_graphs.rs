//! `/api/v1/stations/{station_id}/dsp-graphs`: a station's saved processing chains, and the
//! one its engine runs.
//!
//! A chain is the node list of grimnir-dsp (`loudness_normalize`, `agc`, `compressor`,
//! `limiter`, `ducking`, `silence_detector`), written as in a station file: `{"type":
//! "compressor", "config": {"ratio": 4}}`, with every parameter left out taking its default.
//! Impossible values are refused with 422, the field naming the node and parameter
//! (`nodes[1].config.ratio`).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use grimnir_dsp::{DspError, DspGraph, Node};
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
use crate::db::dsp_graphs::{
    self, DspGraphChanges, DspGraphError, DspGraphId, DspGraphRecord, NewDspGraph,
};
use crate::db::stations::{self, StationId};
use crate::db::{DbConnection, StorageError};
use crate::http::AppState;

/// The kinds of processing node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DspNodeType {
    /// Programme loudness to a target (EBU R128 / ATSC A/85).
    LoudnessNormalize,
    /// Automatic gain control toward a level.
    Agc,
    /// Dynamic range compression.
    Compressor,
    /// Look-ahead true-peak limiter.
    Limiter,
    /// Music under a microphone.
    Ducking,
    /// Dead-air detection.
    SilenceDetector,
}

/// One processing node, as documented (the server reads it with grimnir-dsp).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct DspNode {
    /// What the node does.
    #[serde(rename = "type")]
    pub kind: DspNodeType,
    /// Its parameters; any left out take their defaults. See the book's DSP reference for the
    /// parameters of each type and their ranges.
    #[schema(value_type = Option<Object>, example = json!({"threshold_db": -20.0, "ratio": 3.0}))]
    pub config: Option<serde_json::Value>,
}

/// A DSP graph.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DspGraphDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// Name shown to people.
    #[schema(example = "FM broadcast chain")]
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// The nodes in signal order, every parameter filled in.
    #[schema(value_type = Vec<DspNode>)]
    pub nodes: Vec<Node>,
    /// Whether it is the graph applied to the station's engine.
    pub applied: bool,
    /// When it was applied, if it is the applied graph.
    pub applied_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<DspGraphRecord> for DspGraphDto {
    fn from(g: DspGraphRecord) -> Self {
        DspGraphDto {
            id: g.id.as_uuid(),
            station_id: g.station_id.as_uuid(),
            name: g.name,
            description: g.description,
            nodes: g.graph.nodes,
            applied: g.applied_at.is_some(),
            applied_at: g.applied_at,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

/// A new DSP graph.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDspGraph {
    /// Name shown to people: 1 to 255 characters.
    #[schema(example = "FM broadcast chain")]
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The nodes in signal order.
    #[schema(value_type = Vec<DspNode>)]
    pub nodes: Vec<Node>,
}

/// Changes to a DSP graph; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDspGraph {
    /// A new name.
    pub name: Option<String>,
    /// A new description; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// A new node list, replacing the old one whole.
    #[schema(value_type = Option<Vec<DspNode>>)]
    pub nodes: Option<Vec<Node>>,
}

/// The `{station_id}` and `{graph_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DspGraphPath {
    /// The station.
    pub station_id: Uuid,
    /// The graph.
    pub graph_id: Uuid,
}

impl From<DspGraphError> for ApiError {
    fn from(e: DspGraphError) -> Self {
        match e {
            DspGraphError::Storage(e) => e.into(),
            DspGraphError::Graph(DspError::InvalidParameter {
                node,
                field,
                value,
                reason,
                ..
            }) => ApiError::invalid_field(
                format!("nodes[{node}].config.{field}"),
                format!("{value}: {reason}"),
            ),
            DspGraphError::Graph(other) => ApiError::invalid_field("nodes", other.to_string()),
        }
    }
}

/// List a station's DSP graphs.
#[utoipa::path(
    get, path = "/stations/{station_id}/dsp-graphs", tag = "dsp-graphs",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of graphs, by name", body = Paginated<DspGraphDto>),
        (status = 400, description = "Bad station id or paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_dsp_graphs(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<DspGraphDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::DspGraphRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            dsp_graphs::list_page(conn, station, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(DspGraphDto::from),
    ))
}

/// Save a new DSP graph at a station (not applied yet).
#[utoipa::path(
    post, path = "/stations/{station_id}/dsp-graphs", tag = "dsp-graphs",
    params(StationPath),
    request_body = CreateDspGraph,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = DspGraphDto),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_dsp_graph(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateDspGraph>,
) -> Result<(StatusCode, Json<DspGraphDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::DspGraphWrite, Some(station))?;
    let new = NewDspGraph {
        name: body.name,
        description: body.description,
        graph: DspGraph { nodes: body.nodes },
    };
    let entry = audit_entry(&principal, &info, "dsp_graph.create", "dsp_graph");
    let graph = super::transaction(&state.db, move |conn| {
        stations::get(conn, station)?;
        let graph = dsp_graphs::create(conn, station, &new)?;
        let details = serde_json::json!({ "name": graph.name });
        audit::record(
            conn,
            &entry.target(graph.id).station(station).details(details),
        )?;
        Ok(graph)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(graph.into())))
}

/// Get a DSP graph.
#[utoipa::path(
    get, path = "/stations/{station_id}/dsp-graphs/{graph_id}", tag = "dsp-graphs",
    params(DspGraphPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The graph", body = DspGraphDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such graph at the station", body = ErrorBody),
    )
)]
pub(crate) async fn get_dsp_graph(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<DspGraphPath>,
) -> Result<Json<DspGraphDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::DspGraphRead, Some(station))?;
    let id = DspGraphId::from(path.graph_id);
    let graph = state
        .db
        .run(move |conn| dsp_graphs::get(conn, station, id))
        .await?;
    Ok(Json(graph.into()))
}

/// Change a DSP graph. Changing the applied graph does not re-apply it: call apply again to
/// hand the new chain to the engine.
#[utoipa::path(
    patch, path = "/stations/{station_id}/dsp-graphs/{graph_id}", tag = "dsp-graphs",
    params(DspGraphPath),
    request_body = UpdateDspGraph,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The graph as changed", body = DspGraphDto),
        (status = 409, description = "A station file declares the station's graph", body = ErrorBody),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such graph at the station", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_dsp_graph(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<DspGraphPath>,
    Json(body): Json<UpdateDspGraph>,
) -> Result<Json<DspGraphDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::DspGraphWrite, Some(station))?;
    let id = DspGraphId::from(path.graph_id);
    let changed: Vec<&str> = [
        ("name", body.name.is_some()),
        ("description", body.description.is_some()),
        ("nodes", body.nodes.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let details = serde_json::json!({ "changed": changed });
    let changes = DspGraphChanges {
        name: body.name,
        description: body.description,
        graph: body.nodes.map(|nodes| DspGraph { nodes }),
    };
    let entry = audit_entry(&principal, &info, "dsp_graph.update", "dsp_graph");
    let graph = super::transaction(&state.db, move |conn| {
        refuse_if_the_files(conn, station, id)?;
        let graph = dsp_graphs::update(conn, station, id, &changes)?;
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(graph)
    })
    .await?;
    Ok(Json(graph.into()))
}

/// Delete a DSP graph. Deleting the applied graph leaves the station with none applied; the
/// engine keeps running the chain it has until another is applied.
#[utoipa::path(
    delete, path = "/stations/{station_id}/dsp-graphs/{graph_id}", tag = "dsp-graphs",
    params(DspGraphPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "A station file declares the station's graph", body = ErrorBody),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such graph at the station", body = ErrorBody),
    )
)]
pub(crate) async fn delete_dsp_graph(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<DspGraphPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::DspGraphWrite, Some(station))?;
    let id = DspGraphId::from(path.graph_id);
    let entry = audit_entry(&principal, &info, "dsp_graph.delete", "dsp_graph");
    super::transaction(&state.db, move |conn| {
        refuse_if_the_files(conn, station, id)?;
        dsp_graphs::delete(conn, station, id)?;
        audit::record(conn, &entry.target(id).station(station))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Apply a DSP graph to its station: it becomes the chain the station's engine runs (the
/// station's executor has the engine load it at once, and after every engine restart), and the
/// station's previously applied graph stops being applied.
#[utoipa::path(
    post, path = "/stations/{station_id}/dsp-graphs/{graph_id}/apply", tag = "dsp-graphs",
    params(DspGraphPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The graph, now applied", body = DspGraphDto),
        (status = 409, description = "A station file declares the station's graph", body = ErrorBody),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such graph at the station", body = ErrorBody),
    )
)]
pub(crate) async fn apply_dsp_graph(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<DspGraphPath>,
) -> Result<Json<DspGraphDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::DspGraphWrite, Some(station))?;
    let id = DspGraphId::from(path.graph_id);
    let entry = audit_entry(&principal, &info, "dsp_graph.apply", "dsp_graph");
    let graph = super::transaction(&state.db, move |conn| {
        if let Some(path) = file_with_graph(conn, station)? {
            return Err(ApiError::managed_by_file(
                format!("the DSP graph applied to station {station}"),
                &path,
            ));
        }
        let graph = dsp_graphs::apply(conn, station, id)?;
        let details = serde_json::json!({ "name": graph.name, "nodes": graph.graph.nodes.len() });
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(graph)
    })
    .await?;
    // The station's engine loads it now (through the executor), not at its next restart.
    state.executors.graph_applied(station);
    Ok(Json(graph.into()))
}

/// The station file declaring `station`, when it declares a DSP graph: that graph is the one
/// applied, and only the file changes it.
fn file_with_graph(
    conn: &mut DbConnection,
    station: StationId,
) -> Result<Option<String>, ApiError> {
    let Some(path) = crate::station_files::declared_by(conn, station)? else {
        return Ok(None);
    };
    let file_graph = DspGraphId::from(crate::station_files::dsp_graph_id(station.as_uuid()));
    match dsp_graphs::get(conn, station, file_graph) {
        Ok(_) => Ok(Some(path)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a change to the graph a station file declares.
fn refuse_if_the_files(
    conn: &mut DbConnection,
    station: StationId,
    id: DspGraphId,
) -> Result<(), ApiError> {
    if id.as_uuid() != crate::station_files::dsp_graph_id(station.as_uuid()) {
        return Ok(());
    }
    match crate::station_files::declared_by(conn, station)? {
        Some(path) => Err(ApiError::managed_by_file(format!("DSP graph {id}"), &path)),
        None => Ok(()),
    }
}
