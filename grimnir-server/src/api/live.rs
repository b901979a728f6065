//! `/api/v1/stations/{station_id}/live/…`: a DJ going live.
//!
//! 1. `authorize`: the DJ gets a short-lived credential for a mount's source client, a JWT
//!    signed with the server's key whose audience (`grimnir-live-source`) and purpose
//!    (`live_source`) make it useless as an access token.
//! 2. `handover`: the DJ's live source takes the air as tier 1 (override) or 2 (scheduled live),
//!    through the executor; it is stored as a priority source.
//! 3. `release`: the DJ's live source gives the air back to automation.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::priority::{PriorityAnswer, check_station_and_mount, end_and_remove, store_and_apply};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::auth::token::{ISSUER, LIVE_AUDIENCE, LIVE_PURPOSE, LIVE_TTL, LiveClaims};
use crate::db::priority_sources::{NewPrioritySource, PrioritySourceId};
use crate::db::stations::StationId;
use crate::http::AppState;

/// A request for a live source credential.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveAuthorize {
    /// The mount the DJ's source client will feed: one of the station's mounts.
    pub mount_id: Uuid,
}

/// A live source credential.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveCredential {
    /// The credential: a JWT for the source client (as its password, or a bearer token).
    pub credential: String,
    /// Always `live_source`.
    #[schema(example = "live_source")]
    pub purpose: String,
    /// The station.
    pub station_id: Uuid,
    /// The mount.
    pub mount_id: Uuid,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// A DJ's live source taking the air.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveHandover {
    /// The live input: the mount path or URL the source client feeds.
    #[schema(example = "icecast://localhost:8000/live")]
    pub input: String,
    /// 1 (override: takes the air from anything but an emergency) or 2 (scheduled live,
    /// the default).
    #[serde(default)]
    #[schema(example = 2)]
    pub priority: Option<u8>,
    /// One of the station's mounts, if it is for one.
    #[serde(default)]
    pub mount_id: Option<Uuid>,
    /// What kind of input (default `live_icecast`).
    #[serde(default)]
    pub source_type: Option<String>,
    /// How long the DJ holds the air, 1 to 604800 (default: until released).
    #[serde(default)]
    pub duration_seconds: Option<u32>,
}

/// Which live source to take off the air.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveRelease {
    /// The priority source id that `handover` answered.
    pub source_id: Uuid,
}

/// Get a short-lived credential for a mount's live source client (admins, the station's
/// managers and DJs).
#[utoipa::path(
    post, path = "/stations/{station_id}/live/authorize", tag = "live",
    params(StationPath),
    request_body = LiveAuthorize,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A credential, valid for five minutes", body = LiveCredential),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "Not a mount of this station", body = ErrorBody),
    )
)]
pub(crate) async fn live_authorize(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<LiveAuthorize>,
) -> Result<(StatusCode, Json<LiveCredential>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::LiveSession, Some(station))?;
    check_station_and_mount(&state, station, Some(body.mount_id)).await?;
    let now = Utc::now();
    let ttl = i64::try_from(LIVE_TTL.as_secs()).unwrap_or(300);
    let claims = LiveClaims {
        iss: ISSUER.to_owned(),
        aud: LIVE_AUDIENCE.to_owned(),
        sub: principal.user_id.to_string(),
        station: station.to_string(),
        mount: body.mount_id.to_string(),
        purpose: LIVE_PURPOSE.to_owned(),
        iat: now.timestamp(),
        exp: now.timestamp().saturating_add(ttl),
        jti: Uuid::new_v4().to_string(),
    };
    let credential = state.auth.keys().sign_live(&claims).map_err(|e| {
        tracing::error!(error = %e, "live credential signing");
        ApiError::internal()
    })?;
    let entry = audit_entry(&principal, &info, "live.authorize", "mount")
        .target(body.mount_id)
        .station(station)
        .details(serde_json::json!({ "jti": claims.jti, "expires_at": claims.exp }));
    super::transaction(&state.db, move |conn| {
        audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(LiveCredential {
            credential,
            purpose: LIVE_PURPOSE.to_owned(),
            station_id: station.as_uuid(),
            mount_id: body.mount_id,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
        }),
    ))
}

/// Put the DJ's live source on air as tier 1 or 2 (admins, the station's managers and DJs).
#[utoipa::path(
    post, path = "/stations/{station_id}/live/handover", tag = "live",
    params(StationPath),
    request_body = LiveHandover,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "On air (or applied when the executor starts)", body = PriorityAnswer),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn live_handover(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<LiveHandover>,
) -> Result<(StatusCode, Json<PriorityAnswer>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::LiveSession, Some(station))?;
    let priority = body.priority.unwrap_or(2);
    if !(1..=2).contains(&priority) {
        return Err(ApiError::invalid_field(
            "priority",
            "a live source goes on air at tier 1 or 2",
        ));
    }
    let starts_at = Utc::now();
    let ends_at = super::priority::end_of(starts_at, None, body.duration_seconds)?;
    let mut details = serde_json::Map::new();
    details.insert("created_by".into(), principal.user_id.to_string().into());
    details.insert("live".into(), true.into());
    let new = NewPrioritySource {
        station_id: station,
        mount_id: body.mount_id,
        priority,
        source_type: body
            .source_type
            .unwrap_or_else(|| "live_icecast".to_owned()),
        source_id: None,
        input: body.input,
        starts_at,
        ends_at,
        details,
    };
    let entry = audit_entry(&principal, &info, "live.handover", "priority_source").station(station);
    let answer = store_and_apply(&state, new, entry).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Take a live source off the air; automation resumes (admins, the station's managers and
/// DJs). Emergencies are not released here.
#[utoipa::path(
    post, path = "/stations/{station_id}/live/release", tag = "live",
    params(StationPath),
    request_body = LiveRelease,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Released; what is on air afterwards", body = PriorityAnswer),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such active live source at this station", body = ErrorBody),
    )
)]
pub(crate) async fn live_release(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<LiveRelease>,
) -> Result<Json<PriorityAnswer>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::LiveSession, Some(station))?;
    let id = PrioritySourceId::from(body.source_id);
    let entry = audit_entry(&principal, &info, "live.release", "priority_source")
        .target(id)
        .station(station);
    let answer = end_and_remove(&state, station, id, entry, move |row| {
        if row.priority == 0 {
            Err(ApiError::not_found(format!(
                "no active live source `{id}` at this station (emergencies are removed at \
                 /priority/sources)"
            )))
        } else {
            Ok(())
        }
    })
    .await?;
    Ok(Json(answer))
}
