//! Executor states (`/api/v1/executor/states`, `/api/v1/stations/{station_id}/executor/state`)
//! and playout controls (`/api/v1/stations/{station_id}/playout/skip|stop|reload`).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::StorageError;
use crate::db::executor_states::{self, ExecutorStateRow};
use crate::db::members::StationRole;
use crate::db::stations::StationId;
use crate::executor_pool::{NowPlaying, PoolError, Snapshot};
use crate::http::AppState;

/// What a station's executor is doing, as last stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutorStateDto {
    /// The station.
    pub station_id: Uuid,
    /// `idle`, `preloading`, `playing`, `fading`, `live` or `emergency`.
    #[schema(example = "playing")]
    pub state: String,
    /// The tier on air, 0 (emergency) to 4 (fallback).
    #[schema(example = 3)]
    pub current_priority: u8,
    /// The id of what is on air, when it has one.
    pub current_source_id: Option<String>,
    /// What kind of source is on air.
    #[schema(example = "media")]
    pub current_source_type: Option<String>,
    /// The engine's last reported buffer depth, in samples.
    pub buffer_depth: i64,
    /// The executor's last sign of life; none when it never ran.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Whether this server runs the station's executor now.
    pub running: bool,
    /// What is on air, the active sources, whether the engine is up.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl ExecutorStateDto {
    fn new(row: ExecutorStateRow, running: bool) -> Self {
        ExecutorStateDto {
            station_id: row.station_id.as_uuid(),
            state: row.state,
            current_priority: row.current_priority,
            current_source_id: row.current_source_id,
            current_source_type: row.current_source_type,
            buffer_depth: row.buffer_depth,
            last_heartbeat: Some(row.last_heartbeat),
            running,
            details: row.metadata,
        }
    }
}

/// List the executor states of the stations the caller may read (admins: all).
#[utoipa::path(
    get, path = "/executor/states", tag = "executor",
    params(PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of executor states, by station id", body = Paginated<ExecutorStateDto>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub(crate) async fn list_executor_states(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<ExecutorStateDto>>, ApiError> {
    let page = params.page()?;
    let readable: Option<Vec<StationId>> = if principal.is_admin() {
        None
    } else {
        Some(
            principal
                .stations()
                .filter(|(_, role)| *role >= StationRole::Dj)
                .map(|(s, _)| s)
                .filter(|s| {
                    crate::auth::policy::allows(&principal, Action::ExecutorStateRead, Some(*s))
                })
                .collect(),
        )
    };
    let rows = state
        .db
        .run(move |conn| executor_states::list(conn, readable.as_deref()))
        .await?;
    let total = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let take = usize::try_from(page.limit).unwrap_or(0);
    let items = rows
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|row| {
            let running = state.executors.is_running(row.station_id);
            ExecutorStateDto::new(row, running)
        })
        .collect();
    Ok(Json(Paginated::new(items, total, page)))
}

/// Read a station's executor state (admins, its managers and DJs, its API keys). A station
/// whose executor never ran is `idle`, without a heartbeat.
#[utoipa::path(
    get, path = "/stations/{station_id}/executor/state", tag = "executor",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The executor state", body = ExecutorStateDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn get_executor_state(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
) -> Result<Json<ExecutorStateDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ExecutorStateRead, Some(station))?;
    let row = state
        .db
        .run(move |conn| {
            crate::db::stations::get(conn, station)?;
            match executor_states::get(conn, station) {
                Ok(row) => Ok(Some(row)),
                Err(StorageError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
    let running = state.executors.is_running(station);
    Ok(Json(match row {
        Some(row) => ExecutorStateDto::new(row, running),
        None => ExecutorStateDto {
            station_id: station.as_uuid(),
            state: "idle".to_owned(),
            current_priority: 4,
            current_source_id: None,
            current_source_type: None,
            buffer_depth: 0,
            last_heartbeat: None,
            running,
            details: serde_json::json!({}),
        },
    }))
}

/// Carries out a playout control and records it in the audit log.
async fn control(
    state: &AppState,
    principal: &Principal,
    info: &RequestInfo,
    station: StationId,
    what: &'static str,
) -> Result<Json<NowPlaying>, ApiError> {
    authorize(principal, Action::PlayoutControl, Some(station))?;
    let exists = state
        .db
        .run(move |conn| crate::db::stations::get(conn, station))
        .await;
    if let Err(e @ StorageError::NotFound { .. }) = exists {
        return Err(e.into());
    }
    let result: Result<std::sync::Arc<Snapshot>, PoolError> = match what {
        "skip" => state.executors.skip(station).await,
        "stop" => state.executors.stop(station).await,
        _ => state.executors.reload(station).await,
    };
    let snapshot = result?;
    let entry = audit_entry(principal, info, &format!("playout.{what}"), "station")
        .target(station)
        .station(station)
        .details(serde_json::json!({
            "state": snapshot.now.state,
            "on_air": snapshot.now.item.as_ref().map(|i| i.title.clone()),
        }));
    super::transaction(&state.db, move |conn| {
        audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(Json(snapshot.now.clone()))
}

/// Skip the timeline entry on air: the next one plays from its beginning (admins, managers,
/// DJs, API keys). Changes nothing while a priority source holds the air.
#[utoipa::path(
    post, path = "/stations/{station_id}/playout/skip", tag = "playout",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What is on air afterwards", body = NowPlaying),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 409, description = "The station's executor is not running", body = ErrorBody),
    )
)]
pub(crate) async fn skip(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
) -> Result<Json<NowPlaying>, ApiError> {
    control(&state, &principal, &info, path.station_id.into(), "skip").await
}

/// Stop playout: what is on air stops and nothing plays until a reload (admins, managers,
/// DJs, API keys).
#[utoipa::path(
    post, path = "/stations/{station_id}/playout/stop", tag = "playout",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What is on air afterwards (nothing)", body = NowPlaying),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 409, description = "The station's executor is not running", body = ErrorBody),
    )
)]
pub(crate) async fn stop(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
) -> Result<Json<NowPlaying>, ApiError> {
    control(&state, &principal, &info, path.station_id.into(), "stop").await
}

/// Reload: read the station's timeline and priority sources again, and resume playout if it
/// was stopped, at the position the timeline has reached (admins, managers, DJs, API keys).
#[utoipa::path(
    post, path = "/stations/{station_id}/playout/reload", tag = "playout",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What is on air afterwards", body = NowPlaying),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 409, description = "The station's executor is not running", body = ErrorBody),
    )
)]
pub(crate) async fn reload(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
) -> Result<Json<NowPlaying>, ApiError> {
    control(&state, &principal, &info, path.station_id.into(), "reload").await
}
