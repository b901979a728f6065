//! `/api/v1/stations/{station_id}/priority/…`: the priority sources that claim a station's air
//! above automation: emergencies (tier 0) and overrides (tiers 1–2).
//!
//! Every source is stored in `priority_sources`, recorded in the audit log (SPEC.md: "an audit
//! log of priority overrides") and handed to the station's executor, which puts it on air by
//! the ladder's rules. A station whose executor is not running gets it when the executor
//! starts.

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
use crate::audit::{self, Entry};
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::priority_sources::{self, NewPrioritySource, PrioritySourceId, PrioritySourceRow};
use crate::db::stations::{self, StationId};
use crate::executor_pool::{NowPlaying, PoolError};
use crate::http::AppState;

/// Longest duration a source may be given, in seconds (a week).
pub const MAX_DURATION_SECONDS: u32 = 7 * 24 * 3600;

/// The names of the tiers, by number.
const TIER_NAMES: [&str; 5] = [
    "emergency",
    "live_override",
    "live_scheduled",
    "automation",
    "fallback",
];

/// A priority source.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PrioritySourceDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// The mount it names, if any.
    pub mount_id: Option<Uuid>,
    /// Its tier: 0 emergency, 1 live override, 2 live scheduled.
    #[schema(example = 0)]
    pub priority: u8,
    /// The tier's name.
    #[schema(example = "emergency")]
    pub tier: String,
    /// What kind of input.
    #[schema(example = "emergency_audio")]
    pub source_type: String,
    /// The id of what it plays, when that has one.
    pub source_id: Option<String>,
    /// What the engine plays: the alert audio or the live input.
    #[schema(example = "/alerts/eas.mp3")]
    pub input: String,
    /// When it claims the air.
    pub starts_at: DateTime<Utc>,
    /// When it gives the air back, if known.
    pub ends_at: Option<DateTime<Utc>>,
    /// Whether it still claims the air.
    pub active: bool,
    /// Further details: who asked for it.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<PrioritySourceRow> for PrioritySourceDto {
    fn from(r: PrioritySourceRow) -> Self {
        PrioritySourceDto {
            id: r.id.as_uuid(),
            station_id: r.station_id.as_uuid(),
            mount_id: r.mount_id,
            priority: r.priority,
            tier: TIER_NAMES
                .get(usize::from(r.priority))
                .copied()
                .unwrap_or("fallback")
                .to_owned(),
            source_type: r.source_type,
            source_id: r.source_id,
            input: r.input,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            active: r.active,
            metadata: r.metadata,
            created_at: r.created_at,
        }
    }
}

/// A source just created or removed, and what is on air afterwards.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriorityAnswer {
    /// The source.
    pub source: PrioritySourceDto,
    /// What is on air now; `null` when the station's executor is not running (the source is
    /// applied when it starts).
    pub on_air: Option<NowPlaying>,
}

/// A new priority source.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrioritySource {
    /// Its tier: 0 emergency (admins, managers), 1 live override, 2 live scheduled.
    #[schema(example = 1)]
    pub priority: u8,
    /// What kind of input, up to 32 characters.
    #[schema(example = "live_icecast")]
    pub source_type: String,
    /// What the engine plays: the alert audio for tier 0, the live input (mount or URL) for 1–2.
    #[schema(example = "icecast://localhost:8000/live")]
    pub input: String,
    /// One of the station's mounts, if it is for one.
    #[serde(default)]
    pub mount_id: Option<Uuid>,
    /// The id of what it plays, when that has one (up to 36 characters).
    #[serde(default)]
    pub source_id: Option<String>,
    /// When it claims the air (default: now).
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// When it gives the air back (default: when removed). Not with `duration_seconds`.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// How long it holds the air from its start, 1 to 604800. Not with `ends_at`.
    #[serde(default)]
    pub duration_seconds: Option<u32>,
}

/// An emergency takeover (tier 0): the alert cuts in at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Emergency {
    /// The alert audio.
    #[schema(example = "/alerts/eas.mp3")]
    pub audio_file: String,
    /// One of the station's mounts, if it is for one.
    #[serde(default)]
    pub mount_id: Option<Uuid>,
    /// How long the alert holds the air, 1 to 604800 (default: until removed).
    #[serde(default)]
    #[schema(example = 30)]
    pub duration_seconds: Option<u32>,
}

/// A manual override (tier 1): a live source takes the air while what it replaces fades out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The live input.
    #[schema(example = "icecast://localhost:8000/live")]
    pub source_url: String,
    /// What kind of input (default `live_icecast`).
    #[serde(default)]
    pub source_type: Option<String>,
    /// Must be 1 when given: an override is tier 1.
    #[serde(default)]
    pub priority: Option<u8>,
    /// One of the station's mounts, if it is for one.
    #[serde(default)]
    pub mount_id: Option<Uuid>,
    /// How long it holds the air, 1 to 604800 (default: until removed).
    #[serde(default)]
    pub duration_seconds: Option<u32>,
}

/// The `{station_id}` and `{source_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PrioritySourcePath {
    /// The station.
    pub station_id: Uuid,
    /// The priority source.
    pub source_id: Uuid,
}

/// The answer for a request the station's executor could not carry out.
impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::NotRunning(station) => ApiError::new(
                StatusCode::CONFLICT,
                "executor_not_running",
                format!(
                    "no executor runs for station {station}: it is inactive, or the executor \
                     pool has not started it yet"
                ),
            ),
            PoolError::Refused(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused_by_executor",
                e.to_string(),
            ),
            PoolError::Gone(station) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "executor_restarting",
                format!("the executor of station {station} restarted; ask again"),
            ),
            PoolError::Storage(e) => e.into(),
        }
    }
}

/// The end of a source from `ends_at` or `duration_seconds`, checked.
pub(crate) fn end_of(
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    duration_seconds: Option<u32>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    match (ends_at, duration_seconds) {
        (Some(_), Some(_)) => Err(ApiError::invalid_field(
            "duration_seconds",
            "give ends_at or duration_seconds, not both",
        )),
        (_, Some(d)) if d == 0 || d > MAX_DURATION_SECONDS => Err(ApiError::invalid_field(
            "duration_seconds",
            format!("must be between 1 and {MAX_DURATION_SECONDS}"),
        )),
        (_, Some(d)) => Ok(Some(starts_at + chrono::Duration::seconds(i64::from(d)))),
        (Some(end), None) if end <= starts_at => Err(ApiError::invalid_field(
            "ends_at",
            "must be after starts_at",
        )),
        (end, None) => Ok(end),
    }
}

/// Checks that the station exists and that `mount` (if any) is one of its mounts.
pub(crate) async fn check_station_and_mount(
    state: &AppState,
    station: StationId,
    mount: Option<Uuid>,
) -> Result<(), ApiError> {
    let found = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            match mount {
                Some(m) => priority_sources::mount_of_station(conn, station, m),
                None => Ok(true),
            }
        })
        .await?;
    if found {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "mount_id",
            "not a mount of this station",
        ))
    }
}

/// Stores `new` with `entry` in the audit log, hands it to the station's executor, and answers
/// both.
pub(crate) async fn store_and_apply(
    state: &AppState,
    new: NewPrioritySource,
    entry: Entry,
) -> Result<PriorityAnswer, ApiError> {
    check_station_and_mount(state, new.station_id, new.mount_id).await?;
    let row = super::transaction(&state.db, move |conn| {
        let row = priority_sources::create(conn, &new)?;
        let details = serde_json::json!({
            "priority": row.priority,
            "source_type": row.source_type,
            "input": row.input,
            "starts_at": row.starts_at,
            "ends_at": row.ends_at,
            "mount_id": row.mount_id,
        });
        audit::record(conn, &entry.target(row.id).details(details))?;
        Ok(row)
    })
    .await?;
    let on_air = match state.executors.activate_row(&row).await {
        Ok(snapshot) => Some(snapshot.now.clone()),
        Err(PoolError::NotRunning(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(PriorityAnswer {
        source: row.into(),
        on_air,
    })
}

/// Ends a stored source with `entry` in the audit log and takes it off the executor's ladder.
pub(crate) async fn end_and_remove(
    state: &AppState,
    station: StationId,
    id: PrioritySourceId,
    entry: Entry,
    keep: impl FnOnce(&PrioritySourceRow) -> Result<(), ApiError> + Send + 'static,
) -> Result<PriorityAnswer, ApiError> {
    let row = super::transaction(&state.db, move |conn| {
        let row = priority_sources::get(conn, station, id)?;
        keep(&row)?;
        let row = priority_sources::deactivate(conn, station, id, Utc::now())?;
        let details = serde_json::json!({
            "priority": row.priority,
            "source_type": row.source_type,
            "input": row.input,
        });
        audit::record(conn, &entry.details(details))?;
        Ok(row)
    })
    .await?;
    let on_air = match state
        .executors
        .deactivate(
            station,
            grimnir_priority::SourceId::new(id.to_string()),
            grimnir_priority::Deactivation::Ended,
        )
        .await
    {
        Ok(snapshot) => Some(snapshot.now.clone()),
        // Not running, or the source had already ended by its own end time.
        Err(PoolError::NotRunning(_) | PoolError::Refused(_)) => {
            state.executors.now_playing(station).map(|s| s.now.clone())
        }
        Err(e) => return Err(e.into()),
    };
    Ok(PriorityAnswer {
        source: row.into(),
        on_air,
    })
}

/// List a station's active priority sources, by tier then start (admins, its managers and
/// DJs, its API keys).
#[utoipa::path(
    get, path = "/stations/{station_id}/priority/sources", tag = "priority",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of active sources", body = Paginated<PrioritySourceDto>),
        (status = 400, description = "Not a station id, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_priority_sources(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<PrioritySourceDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::PriorityRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            priority_sources::list_active(conn, station, Utc::now(), page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(PrioritySourceDto::from),
    ))
}

/// Create a priority source (tier 1–2: admins, managers, manager API keys; tier 0 likewise, as
/// an emergency).
#[utoipa::path(
    post, path = "/stations/{station_id}/priority/sources", tag = "priority",
    params(StationPath),
    request_body = CreatePrioritySource,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Stored and handed to the executor", body = PriorityAnswer),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_priority_source(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreatePrioritySource>,
) -> Result<(StatusCode, Json<PriorityAnswer>), ApiError> {
    let station = StationId::from(path.station_id);
    let action = if body.priority == 0 {
        Action::PriorityEmergency
    } else {
        Action::PriorityWrite
    };
    authorize(&principal, action, Some(station))?;
    if body.priority > 2 {
        return Err(ApiError::invalid_field(
            "priority",
            "a priority source is at tier 0, 1 or 2; automation is the timeline",
        ));
    }
    let starts_at = body.starts_at.unwrap_or_else(Utc::now);
    let ends_at = end_of(starts_at, body.ends_at, body.duration_seconds)?;
    let mut details = serde_json::Map::new();
    details.insert("created_by".into(), principal.user_id.to_string().into());
    let new = NewPrioritySource {
        station_id: station,
        mount_id: body.mount_id,
        priority: body.priority,
        source_type: body.source_type,
        source_id: body.source_id,
        input: body.input,
        starts_at,
        ends_at,
        details,
    };
    let entry = audit_entry(
        &principal,
        &info,
        "priority_source.create",
        "priority_source",
    )
    .station(station);
    let answer = store_and_apply(&state, new, entry).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Remove a priority source: it gives the air back at once (admins, managers, manager API
/// keys).
#[utoipa::path(
    delete, path = "/stations/{station_id}/priority/sources/{source_id}", tag = "priority",
    params(PrioritySourcePath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Not a station or source id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such active source at this station", body = ErrorBody),
    )
)]
pub(crate) async fn delete_priority_source(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<PrioritySourcePath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    let id = PrioritySourceId::from(path.source_id);
    authorize(&principal, Action::PriorityWrite, Some(station))?;
    let entry = audit_entry(
        &principal,
        &info,
        "priority_source.delete",
        "priority_source",
    )
    .target(id)
    .station(station);
    end_and_remove(&state, station, id, entry, |_| Ok(())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Emergency takeover (tier 0): the alert cuts in at once, whatever is on air (admins,
/// managers, manager API keys; not DJs).
#[utoipa::path(
    post, path = "/stations/{station_id}/priority/emergency", tag = "priority",
    params(StationPath),
    request_body = Emergency,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "On air (or applied when the executor starts)", body = PriorityAnswer),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn emergency(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<Emergency>,
) -> Result<(StatusCode, Json<PriorityAnswer>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::PriorityEmergency, Some(station))?;
    if body.audio_file.trim().is_empty() {
        return Err(ApiError::invalid_field("audio_file", "must not be empty"));
    }
    let starts_at = Utc::now();
    let ends_at = end_of(starts_at, None, body.duration_seconds)?;
    let mut details = serde_json::Map::new();
    details.insert("created_by".into(), principal.user_id.to_string().into());
    let new = NewPrioritySource {
        station_id: station,
        mount_id: body.mount_id,
        priority: 0,
        source_type: "emergency_audio".to_owned(),
        source_id: None,
        input: body.audio_file,
        starts_at,
        ends_at,
        details,
    };
    let entry =
        audit_entry(&principal, &info, "priority.emergency", "priority_source").station(station);
    let answer = store_and_apply(&state, new, entry).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Manual override (tier 1): a live source takes the air from automation and scheduled live
/// shows (admins, managers, manager API keys).
#[utoipa::path(
    post, path = "/stations/{station_id}/priority/override", tag = "priority",
    params(StationPath),
    request_body = Override,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "On air (or applied when the executor starts)", body = PriorityAnswer),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn override_source(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<Override>,
) -> Result<(StatusCode, Json<PriorityAnswer>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::PriorityWrite, Some(station))?;
    if body.priority.is_some_and(|p| p != 1) {
        return Err(ApiError::invalid_field(
            "priority",
            "an override is tier 1; use /priority/emergency for tier 0 and \
             /priority/sources for tier 2",
        ));
    }
    let starts_at = Utc::now();
    let ends_at = end_of(starts_at, None, body.duration_seconds)?;
    let mut details = serde_json::Map::new();
    details.insert("created_by".into(), principal.user_id.to_string().into());
    let new = NewPrioritySource {
        station_id: station,
        mount_id: body.mount_id,
        priority: 1,
        source_type: body
            .source_type
            .unwrap_or_else(|| "live_icecast".to_owned()),
        source_id: None,
        input: body.source_url,
        starts_at,
        ends_at,
        details,
    };
    let entry =
        audit_entry(&principal, &info, "priority.override", "priority_source").station(station);
    let answer = store_and_apply(&state, new, entry).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}
