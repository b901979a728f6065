//! `/api/v1/stations/{station_id}/schedule`: the planned timeline, re-planned on request and
//! edited entry by entry.
//!
//! `POST …/schedule/refresh` plans a window with `grimnir-planner` from the station's
//! programme as stored, and replaces the stored entries of that window in one transaction.
//! Each stored entry keeps the planner's whole entry (see [`crate::db::schedule`]), which the
//! executor plays from.

use axum::extract::State;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use grimnir_planner::{Millis, Source, Tier};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::programme::{DiagnosticDto, PlannedEntryDto};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::programme;
use crate::db::schedule::{self, ScheduleEntryId, StoredEntry};
use crate::db::stations::{self, StationId};
use crate::http::AppState;
use crate::planning;

/// The window `refresh` plans, and `list` shows, when none is given.
pub const DEFAULT_WINDOW: TimeDelta = TimeDelta::hours(24);

/// A stored schedule entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleEntryDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// What plays, when, and why.
    #[serde(flatten)]
    pub planned: PlannedEntryDto,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

impl From<StoredEntry> for ScheduleEntryDto {
    fn from(s: StoredEntry) -> Self {
        ScheduleEntryDto {
            id: s.id.as_uuid(),
            station_id: s.station_id.as_uuid(),
            planned: PlannedEntryDto::from(&s.entry),
            updated_at: s.updated_at,
        }
    }
}

/// Which entries: those overlapping `from`..`to`, a page of them.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleParams {
    /// Start of the span (default now).
    pub from: Option<DateTime<Utc>>,
    /// End of the span (default 24 hours after `from`).
    pub to: Option<DateTime<Utc>>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<u64>,
}

/// What to re-plan.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Start of the window (default now). An entry on air then is kept, and the plan starts
    /// where it ends.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// End of the window (default 24 hours after `from`; at most 62 days after it). The last
    /// entry planned is kept whole and may run past it.
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// The plan seed (default: one derived from the station's id, so the same window and
    /// programme give the same schedule).
    #[serde(default)]
    pub seed: Option<u64>,
}

/// What a refresh did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefreshSummary {
    /// The window asked for.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// Where the new entries start (`from`, or the end of the entry kept on air then).
    pub planned_from: DateTime<Utc>,
    /// Where the new entries end.
    pub planned_until: DateTime<Utc>,
    /// The seed used.
    pub seed: u64,
    /// Entries written.
    pub entries_written: u64,
    /// Stored entries the new ones replaced.
    pub entries_removed: u64,
    /// How long reading the programme and planning took, in milliseconds.
    pub took_ms: u64,
    /// What the planner worked around.
    pub diagnostics: Vec<DiagnosticDto>,
}

/// A new source for an entry.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceChange {
    /// A media item of the station, from its cue-in (tier 3, automation).
    Media {
        /// The media item.
        media_id: Uuid,
    },
    /// A webstream of the station (tier 3, automation).
    Webstream {
        /// The webstream.
        webstream_id: Uuid,
    },
    /// A live programme (tier 2, live scheduled).
    Live {
        /// Its name.
        name: String,
    },
}

/// Changes to one entry; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEntry {
    /// A new start. Without a new `ends_at`, the entry keeps its length.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// A new end.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// A new source.
    #[serde(default)]
    pub source: Option<SourceChange>,
}

/// The `{station_id}` and `{entry_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EntryPath {
    /// The station.
    pub station_id: Uuid,
    /// The schedule entry.
    pub entry_id: Uuid,
}

fn millis_between(start: DateTime<Utc>, end: DateTime<Utc>) -> Millis {
    Millis::from_millis(u64::try_from((end - start).num_milliseconds()).unwrap_or(0))
}

/// List a station's schedule: the entries overlapping `from`..`to`, in time order.
#[utoipa::path(
    get, path = "/stations/{station_id}/schedule", tag = "schedule",
    params(StationPath, ScheduleParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of entries, in time order", body = Paginated<ScheduleEntryDto>),
        (status = 400, description = "Not a station id, a bad time, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_schedule(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<ScheduleParams>,
) -> Result<Json<Paginated<ScheduleEntryDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ScheduleRead, Some(station))?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let from = params.from.unwrap_or_else(Utc::now);
    let to = params.to.unwrap_or(from + DEFAULT_WINDOW);
    if to <= from {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            "must come after `from`",
        )
        .with_field("to"));
    }
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            schedule::list(conn, station, from, to, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(ScheduleEntryDto::from),
    ))
}

/// Re-plan a station's schedule (admins, its managers): plan the window with the planner and
/// replace the stored entries there, in one transaction.
#[utoipa::path(
    post, path = "/stations/{station_id}/schedule/refresh", tag = "schedule",
    params(StationPath),
    request_body = RefreshRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What was planned and stored", body = RefreshSummary),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 409, description = "The station's programme cannot be planned as stored (the message names the clock, show or block)", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn refresh_schedule(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<RefreshSummary>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ScheduleWrite, Some(station))?;
    let from = body.from.unwrap_or_else(Utc::now).trunc_subsecs(3);
    let to = body.to.unwrap_or(from + DEFAULT_WINDOW);
    if to <= from {
        return Err(ApiError::invalid_field("to", "must come after `from`"));
    }
    let seed = body.seed.unwrap_or_else(|| planning::default_seed(station));
    let plan = state
        .db
        .run(move |conn| Ok(planning::plan_window(conn, station, from, to, seed)))
        .await??;
    let planned_from = plan.timeline.start;
    let planned_until = plan.timeline.covered_until();
    let written = plan.timeline.entries.len();
    let entry = audit_entry(&principal, &info, "schedule.refresh", "schedule")
        .target(station)
        .station(station)
        .details(serde_json::json!({
            "from": planned_from, "to": planned_until, "seed": seed, "entries": written,
        }));
    let entries = plan.timeline.entries;
    let removed = super::transaction(&state.db, move |conn| {
        let removed =
            schedule::replace_window(conn, station, planned_from, planned_until, &entries)?;
        audit::record(conn, &entry)?;
        Ok(removed)
    })
    .await?;
    // The station's executor reads the new timeline now rather than at its next re-read.
    state.executors.timeline_changed(station);
    Ok(Json(RefreshSummary {
        from,
        to,
        planned_from,
        planned_until,
        seed,
        entries_written: written as u64,
        entries_removed: removed as u64,
        took_ms: u64::try_from(plan.took.as_millis()).unwrap_or(u64::MAX),
        diagnostics: plan.diagnostics.iter().map(DiagnosticDto::from).collect(),
    }))
}

/// Edit one schedule entry (admins, the station's managers): move it, or replace what it plays.
/// Refused when it would overlap another entry.
#[utoipa::path(
    patch, path = "/stations/{station_id}/schedule/{entry_id}", tag = "schedule",
    params(EntryPath),
    request_body = UpdateEntry,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The entry as changed", body = ScheduleEntryDto),
        (status = 400, description = "Not a station or entry id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such entry at this station", body = ErrorBody),
        (status = 409, description = "It would overlap another entry (`field` says which end)", body = ErrorBody),
        (status = 422, description = "A field is refused, or names a source the station does not have", body = ErrorBody),
    )
)]
pub(crate) async fn update_schedule_entry(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<EntryPath>,
    Json(body): Json<UpdateEntry>,
) -> Result<Json<ScheduleEntryDto>, ApiError> {
    let station = StationId::from(path.station_id);
    let id = ScheduleEntryId::from(path.entry_id);
    authorize(&principal, Action::ScheduleWrite, Some(station))?;
    if let Some(SourceChange::Live { name }) = &body.source
        && name.trim().is_empty()
    {
        return Err(ApiError::invalid_field("source.name", "must not be empty"));
    }
    let entry = audit_entry(&principal, &info, "schedule.update", "schedule_entry")
        .target(id)
        .station(station);
    let stored = super::transaction(&state.db, move |conn| {
        let current = schedule::get(conn, station, id)?;
        let mut new = current.entry.clone();
        let start = body.starts_at.unwrap_or(new.start).trunc_subsecs(3);
        let end = match (body.starts_at, body.ends_at) {
            (_, Some(end)) => end.trunc_subsecs(3),
            (Some(_), None) => start + (new.end - new.start),
            (None, None) => new.end,
        };
        if end <= start {
            return Err(ApiError::invalid_field(
                "ends_at",
                "must come after starts_at",
            ));
        }
        let length = millis_between(start, end);
        match &body.source {
            Some(SourceChange::Media { media_id }) => {
                let Some(item) = programme::media_item(conn, station, &media_id.to_string())?
                else {
                    return Err(ApiError::invalid_field(
                        "source.media_id",
                        format!("no media item `{media_id}` with a known length at this station"),
                    ));
                };
                let cue_out = item
                    .effective_cue_out()
                    .min(item.cue_in.saturating_add(length));
                new.source = Source::Media {
                    id: item.id,
                    title: item.title,
                    artists: item.artists,
                    cue_in: item.cue_in,
                    cue_out,
                };
                new.tier = Tier::Automation;
            }
            Some(SourceChange::Webstream { webstream_id }) => {
                let text = webstream_id.to_string();
                if !programme::webstream_exists(conn, station, &text)? {
                    return Err(ApiError::invalid_field(
                        "source.webstream_id",
                        format!("no webstream `{webstream_id}` at this station"),
                    ));
                }
                new.source = Source::Webstream { id: text.into() };
                new.tier = Tier::Automation;
            }
            Some(SourceChange::Live { name }) => {
                new.source = Source::Live {
                    name: name.trim().to_owned(),
                };
                new.tier = Tier::LiveScheduled;
            }
            None => {}
        }
        new.start = start;
        new.end = end;
        if let Some(other) = schedule::overlapping(conn, station, start, end, id)? {
            let field = if other.entry.start <= start {
                "starts_at"
            } else {
                "ends_at"
            };
            return Err(ApiError::conflict(format!(
                "it would overlap entry `{}` ({} to {})",
                other.id, other.entry.start, other.entry.end
            ))
            .with_field(field));
        }
        let stored = schedule::update(conn, station, id, &new)?;
        let (old_type, _) = schedule::source_columns(&current.entry.source);
        let (new_type, new_id) = schedule::source_columns(&new.source);
        audit::record(
            conn,
            &entry.details(serde_json::json!({
                "before": {"starts_at": current.entry.start, "ends_at": current.entry.end,
                           "source_type": old_type},
                "after": {"starts_at": start, "ends_at": end, "source_type": new_type,
                          "source_id": new_id},
            })),
        )?;
        Ok(stored)
    })
    .await?;
    state.executors.timeline_changed(station);
    Ok(Json(stored.into()))
}
