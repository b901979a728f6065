//! What is on air and what was played: `/api/v1/stations/{station_id}/now-playing`,
//! `/api/v1/stations/{station_id}/analytics/spins`, and the `/api/v1/webhooks/track-start`
//! webhook of external playouts.
//!
//! `now-playing` answers from the executor's in-memory snapshot, rendered as JSON once per
//! change: no database query while the station's executor runs.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::caller::authorize;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::stations::StationPath;
use crate::auth::policy::{Action, Principal};
use crate::db::play_history::{self, NewPlay};
use crate::db::stations::{self, StationId};
use crate::events;
use crate::executor_pool::{NowPlaying, OnAirItem, Snapshot};
use crate::http::AppState;

/// The default window of `spins`: the last seven days.
pub const DEFAULT_SPINS_DAYS: i64 = 7;

/// What is on air at a station (admins, its managers and DJs, its API keys).
///
/// Answered from memory while the station's executor runs; `running` is false (and nothing on
/// air) when it does not.
#[utoipa::path(
    get, path = "/stations/{station_id}/now-playing", tag = "analytics",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What is on air", body = NowPlaying),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn now_playing(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
) -> Result<Response, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::AnalyticsRead, Some(station))?;
    let json = match state.executors.now_playing(station) {
        Some(snapshot) => snapshot.json.clone(),
        None => {
            state
                .db
                .run(move |conn| stations::get(conn, station))
                .await?;
            Snapshot::new(NowPlaying::idle(station)).json
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json))
        .map_err(|_| ApiError::internal())
}

/// The window and page of `spins`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SpinsParams {
    /// Start of the window, RFC 3339 (default: `to` minus seven days).
    pub from: Option<DateTime<Utc>>,
    /// End of the window, RFC 3339, exclusive (default: now).
    pub to: Option<DateTime<Utc>>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<u64>,
}

/// How often one title was played.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpinsDto {
    /// The media item, when the plays named one of the station's.
    pub media_id: Option<Uuid>,
    /// Title.
    pub title: String,
    /// Artist, when known.
    pub artist: Option<String>,
    /// Plays that started in the window.
    pub plays: i64,
}

/// Play counts per title, artist and media item in a window, most played first (admins, its
/// managers and DJs, its API keys).
#[utoipa::path(
    get, path = "/stations/{station_id}/analytics/spins", tag = "analytics",
    params(StationPath, SpinsParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of play counts", body = Paginated<SpinsDto>),
        (status = 400, description = "Not a station id, a bad time, or bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "`to` is not after `from`", body = ErrorBody),
    )
)]
pub(crate) async fn spins(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<SpinsParams>,
) -> Result<Json<Paginated<SpinsDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::AnalyticsRead, Some(station))?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let to = params.to.unwrap_or_else(Utc::now);
    let from = params
        .from
        .unwrap_or(to - chrono::Duration::days(DEFAULT_SPINS_DAYS));
    if to <= from {
        return Err(ApiError::invalid_field("to", "must be after from"));
    }
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            play_history::spins(conn, station, from, to, page)
        })
        .await?;
    Ok(Json(Paginated::new(items, total, page).map(|s| SpinsDto {
        media_id: s.media_id,
        title: s.title,
        artist: s.artist,
        plays: s.plays,
    })))
}

/// A track start reported by an external playout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackStart {
    /// The station (default: the API key's station; required when signed in otherwise).
    #[serde(default)]
    pub station_id: Option<Uuid>,
    /// Title.
    #[schema(example = "Träumerei")]
    pub title: String,
    /// Artist.
    #[serde(default)]
    pub artist: Option<String>,
    /// Album.
    #[serde(default)]
    pub album: Option<String>,
    /// The media item, when it is one of the station's.
    #[serde(default)]
    pub media_id: Option<Uuid>,
    /// When it started (default: now).
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// Its length in milliseconds, when known.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// A recorded track start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrackStarted {
    /// The play history row.
    pub play_id: Uuid,
    /// The station.
    pub station_id: Uuid,
    /// What is now shown as on air.
    pub now_playing: OnAirItem,
}

/// Report a track start from an external playout: recorded in the play history (ending the
/// play before it) and published as `now_playing` (API keys of the station; admins, managers
/// and DJs naming `station_id`).
#[utoipa::path(
    post, path = "/webhooks/track-start", tag = "webhooks",
    request_body = TrackStart,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Recorded and published", body = TrackStarted),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not allowed at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn track_start(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<TrackStart>,
) -> Result<(StatusCode, Json<TrackStarted>), ApiError> {
    let key_station = principal
        .is_api_key()
        .then(|| principal.stations().next().map(|(s, _)| s))
        .flatten();
    let station = match (body.station_id.map(StationId::from), key_station) {
        (Some(asked), Some(key)) if asked != key => return Err(ApiError::forbidden()),
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) if principal.is_api_key() => return Err(ApiError::forbidden()),
        (None, None) => {
            return Err(ApiError::invalid_field(
                "station_id",
                "required unless an API key reports",
            ));
        }
    };
    authorize(&principal, Action::TrackReport, Some(station))?;
    let title = body.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::invalid_field("title", "must not be empty"));
    }
    let started_at = body.started_at.unwrap_or_else(Utc::now);
    let artist = body.artist.filter(|a| !a.trim().is_empty());
    let play = NewPlay {
        station_id: station,
        media_id: body.media_id,
        title: title.clone(),
        artist: artist.clone(),
        started_at,
        ended_at: None,
        metadata: serde_json::json!({
            "via": "webhook",
            "album": body.album,
            "duration_ms": body.duration_ms,
            "reported_by": principal.user_id.to_string(),
        }),
    };
    let play_id = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            play_history::end_open(conn, station, started_at)?;
            play_history::record(conn, &play)
        })
        .await?;
    let item = OnAirItem {
        kind: "external".to_owned(),
        title: title.clone(),
        artist: artist.clone(),
        album: body.album.clone(),
        media_id: body.media_id.map(|m| m.to_string()),
        source_id: None,
        priority: grimnir_planner::Tier::Automation.number(),
        started_at,
        duration_ms: body.duration_ms,
    };
    let _ = state.events.publish(
        station.as_uuid(),
        events::Event::NowPlaying(events::NowPlaying {
            entry_id: None,
            media_id: body.media_id,
            title,
            artist: artist.unwrap_or_default(),
            album: body.album,
            started_at,
            duration_ms: body.duration_ms,
        }),
    );
    state.executors.report(station, item.clone());
    Ok((
        StatusCode::CREATED,
        Json(TrackStarted {
            play_id: play_id.as_uuid(),
            station_id: station.as_uuid(),
            now_playing: item,
        }),
    ))
}
