//! `/api/v1/stations/{station_id}/webstreams`: external streams a station relays, and checks
//! of their health.
//!
//! Station-scoped like DSP graphs (SPEC.md lists them under `/api/v1/webstreams`; a webstream
//! belongs to one station, and its clocks and shows refer to it). URLs are http or https, at
//! most 2048 characters, without credentials; up to 8 fallbacks. Request headers are stored,
//! and their values are write-only: answers list header names only.
//!
//! `GET …/{stream_id}/health` makes real requests: each URL gets one bounded GET (5 s from
//! resolution to the last byte read; only the head and the first 4 KiB are read). Because the
//! server makes these requests itself, only station managers and admins may create webstreams
//! and probe them; link-local and metadata addresses are refused (see
//! [`crate::webstream_probe`]).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::stations::{self, StationId};
use crate::db::webstreams::{
    self, NewWebstream, WebstreamChanges, WebstreamId, WebstreamRecord, check_stream,
};
use crate::http::AppState;
use crate::webstream_probe::{self, HealthReport, HealthState, ProbeSettings};

/// The routes of this module.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webstreams, create_webstream))
        .routes(routes!(get_webstream, update_webstream, delete_webstream))
        .routes(routes!(check_webstream_health))
}

/// A webstream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebstreamDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// Name shown to people.
    #[schema(example = "Network news")]
    pub name: String,
    /// The primary URL.
    #[schema(example = "https://stream.example.org/news.mp3")]
    pub url: String,
    /// Backup URLs, tried in order.
    pub fallback_urls: Vec<String>,
    /// The names of the request headers sent (their values are never answered).
    pub header_names: Vec<String>,
    /// The health found by the last check; `unknown` until checked, and after the URLs change.
    pub health_state: HealthState,
    /// When it was last checked.
    pub last_health_check: Option<DateTime<Utc>>,
    /// What the last check found, URL by URL.
    pub last_health: Option<HealthReport>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<WebstreamRecord> for WebstreamDto {
    fn from(w: WebstreamRecord) -> Self {
        WebstreamDto {
            id: w.id.as_uuid(),
            station_id: w.station_id.as_uuid(),
            name: w.name,
            url: w.url,
            fallback_urls: w.fallback_urls,
            header_names: w.headers.into_keys().collect(),
            health_state: w.health_state,
            last_health_check: w.last_health_check,
            last_health: w.last_health,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A new webstream.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebstream {
    /// Name shown to people: 1 to 255 characters.
    #[schema(example = "Network news")]
    pub name: String,
    /// The primary URL: http or https, no credentials, at most 2048 characters.
    #[schema(example = "https://stream.example.org/news.mp3")]
    pub url: String,
    /// Backup URLs, tried in order: at most 8, the same rules.
    #[serde(default)]
    pub fallback_urls: Vec<String>,
    /// Request headers (at most 16), e.g. `Authorization`; values are write-only.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Changes to a webstream; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebstream {
    /// A new name.
    pub name: Option<String>,
    /// A new primary URL.
    pub url: Option<String>,
    /// New fallbacks, replacing the old list.
    pub fallback_urls: Option<Vec<String>>,
    /// New headers, replacing all the old ones (send every header again: values are never
    /// shown, so they cannot be read back and kept).
    pub headers: Option<BTreeMap<String, String>>,
}

/// The `{station_id}` and `{stream_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebstreamPath {
    /// The station.
    pub station_id: Uuid,
    /// The webstream.
    pub stream_id: Uuid,
}

fn refused(problem: (String, String)) -> ApiError {
    ApiError::invalid_field(problem.0, problem.1)
}

/// List a station's webstreams.
#[utoipa::path(
    get, path = "/stations/{station_id}/webstreams", tag = "webstreams",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of webstreams, by name", body = Paginated<WebstreamDto>),
        (status = 400, description = "Bad station id or paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_webstreams(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<WebstreamDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::WebstreamRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            webstreams::list_page(conn, station, page)
        })
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(WebstreamDto::from),
    ))
}

/// Create a webstream at a station (managers: the server will make requests to its URLs).
#[utoipa::path(
    post, path = "/stations/{station_id}/webstreams", tag = "webstreams",
    params(StationPath),
    request_body = CreateWebstream,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created, health unknown", body = WebstreamDto),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused (`url`, `fallback_urls[1]`, `headers.X-Name`)", body = ErrorBody),
    )
)]
pub(crate) async fn create_webstream(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateWebstream>,
) -> Result<(StatusCode, Json<WebstreamDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::WebstreamWrite, Some(station))?;
    check_stream(
        Some(&body.url),
        Some(&body.fallback_urls),
        Some(&body.headers),
    )
    .map_err(refused)?;
    let new = NewWebstream {
        name: body.name,
        url: body.url,
        fallback_urls: body.fallback_urls,
        headers: body.headers,
    };
    let entry = audit_entry(&principal, &info, "webstream.create", "webstream");
    let stream = super::transaction(&state.db, move |conn| {
        stations::get(conn, station)?;
        let stream = webstreams::create(conn, station, &new)?;
        let details = serde_json::json!({ "name": stream.name, "url": stream.url });
        audit::record(
            conn,
            &entry.target(stream.id).station(station).details(details),
        )?;
        Ok(stream)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(stream.into())))
}

/// Get a webstream.
#[utoipa::path(
    get, path = "/stations/{station_id}/webstreams/{stream_id}", tag = "webstreams",
    params(WebstreamPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The webstream", body = WebstreamDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such webstream at the station", body = ErrorBody),
    )
)]
pub(crate) async fn get_webstream(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<WebstreamPath>,
) -> Result<Json<WebstreamDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::WebstreamRead, Some(station))?;
    let id = WebstreamId::from(path.stream_id);
    let stream = state
        .db
        .run(move |conn| webstreams::get(conn, station, id))
        .await?;
    Ok(Json(stream.into()))
}

/// Change a webstream. New URLs make the health `unknown` until the next check.
#[utoipa::path(
    patch, path = "/stations/{station_id}/webstreams/{stream_id}", tag = "webstreams",
    params(WebstreamPath),
    request_body = UpdateWebstream,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The webstream as changed", body = WebstreamDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such webstream at the station", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_webstream(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<WebstreamPath>,
    Json(body): Json<UpdateWebstream>,
) -> Result<Json<WebstreamDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::WebstreamWrite, Some(station))?;
    let id = WebstreamId::from(path.stream_id);
    let changed: Vec<&str> = [
        ("name", body.name.is_some()),
        ("url", body.url.is_some()),
        ("fallback_urls", body.fallback_urls.is_some()),
        ("headers", body.headers.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let details = serde_json::json!({ "changed": changed });
    let entry = audit_entry(&principal, &info, "webstream.update", "webstream");
    let stream = super::transaction(&state.db, move |conn| {
        let old = webstreams::get(conn, station, id)?;
        // Fallbacks are checked against the primary they will stand beside.
        let url = body.url.as_deref().unwrap_or(&old.url);
        let fallbacks = body.fallback_urls.as_deref().unwrap_or(&old.fallback_urls);
        check_stream(Some(url), Some(fallbacks), body.headers.as_ref()).map_err(refused)?;
        let changes = WebstreamChanges {
            name: body.name,
            url: body.url,
            fallback_urls: body.fallback_urls,
            headers: body.headers,
        };
        let stream = webstreams::update(conn, station, id, &changes)?;
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(stream)
    })
    .await?;
    Ok(Json(stream.into()))
}

/// Delete a webstream. One that a clock slot or show plays is not deleted: 409 names it.
#[utoipa::path(
    delete, path = "/stations/{station_id}/webstreams/{stream_id}", tag = "webstreams",
    params(WebstreamPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such webstream at the station", body = ErrorBody),
        (status = 409, description = "A clock or show plays it", body = ErrorBody),
    )
)]
pub(crate) async fn delete_webstream(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<WebstreamPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::WebstreamWrite, Some(station))?;
    let id = WebstreamId::from(path.stream_id);
    let entry = audit_entry(&principal, &info, "webstream.delete", "webstream");
    super::transaction(&state.db, move |conn| {
        webstreams::get(conn, station, id)?;
        if let Some(user) = webstreams::users(conn, station, id)? {
            return Err(ApiError::conflict(format!(
                "webstream {id} is played by {user}; change that first"
            )));
        }
        webstreams::delete(conn, station, id)?;
        audit::record(conn, &entry.target(id).station(station))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check a webstream's health now (managers): one bounded GET to the primary URL and to each
/// fallback at once, reading only the response head and the first 4 KiB. The state becomes
/// `healthy` (the primary delivers audio), `degraded` (only a fallback does) or `down`, and is
/// recorded with the check.
#[utoipa::path(
    get, path = "/stations/{station_id}/webstreams/{stream_id}/health", tag = "webstreams",
    params(WebstreamPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "What each URL answered, and the state that follows", body = HealthReport),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such webstream at the station", body = ErrorBody),
    )
)]
pub(crate) async fn check_webstream_health(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<WebstreamPath>,
) -> Result<Json<HealthReport>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::WebstreamWrite, Some(station))?;
    let id = WebstreamId::from(path.stream_id);
    let stream = state
        .db
        .run(move |conn| webstreams::get(conn, station, id))
        .await?;
    let urls: Vec<String> = std::iter::once(stream.url)
        .chain(stream.fallback_urls)
        .collect();
    let headers: Vec<(String, String)> = stream.headers.into_iter().collect();
    let report = webstream_probe::probe(&urls, &headers, ProbeSettings::default()).await;
    let recorded = report.clone();
    let entry = audit_entry(&principal, &info, "webstream.health_check", "webstream");
    super::transaction(&state.db, move |conn| {
        webstreams::record_health(conn, station, id, &recorded)?;
        let details = serde_json::json!({ "state": recorded.state });
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(())
    })
    .await?;
    if report.state != HealthState::Healthy {
        tracing::warn!(station = %station, webstream = %id, state = report.state.as_str(), "webstream health check");
    }
    Ok(Json(report))
}
