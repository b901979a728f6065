//! The HTTP service: routes, middleware and serving with graceful shutdown.
//!
//! Routes:
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /healthz` | `200 {"status":"ok"}` while the process serves requests |
//! | `GET /readyz` | `200 {"status":"ready"}` when the database answers and its schema is current; `503 {"status":"not_ready","reason":…}` otherwise |
//! | `/api/v1/…` | the REST API ([`crate::api`]) |
//! | `GET /api/v1/openapi.json` | its OpenAPI 3.1 document |
//! | `GET /api/v1/docs/` | its docs page (Swagger UI, served from the binary) |
//!
//! Any other path answers 404 and a known path asked with another method 405, both with the
//! API's error body.
//! | `GET /metrics` | the Prometheus text format ([`crate::metrics`]) |
//! | `GET /api/v1/events` | the event stream as a WebSocket ([`events`]) |
//! | `GET /api/v1/events/stream` | the event stream as Server-Sent Events ([`events`]) |
//!
//! Every response carries `x-request-id`; every request is logged in a span with its method,
//! path (never the query, which may hold secrets) and request id. Every routed request is
//! counted and timed under its route template ([`crate::metrics::track_requests`]).

pub mod events;
mod request_id;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::Auth;
use crate::db::{Database, Readiness};
use crate::events::EventBus;

pub use crate::events::EventScope;
pub use events::EventStreams;
pub use request_id::{REQUEST_ID_HEADER, RequestId};

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database pool.
    pub db: Database,
    /// Token keys and rate limiters.
    pub auth: Auth,
    /// The event bus the event streams read.
    pub events: EventBus,
    /// The executor pool: what is on air, and the requests that change it.
    pub executors: crate::executor_pool::ExecutorPool,
    /// The media library's files and the analyser's bell.
    pub media: crate::media::MediaLibrary,
}

#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The application's routes with their middleware.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = crate::api::router(&state);
    let docs = crate::api::docs(openapi, &state);
    let streams = EventStreams::new(state.events.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(docs)
        .with_state(state.clone())
        .merge(crate::metrics::router())
        .nest(
            "/api/v1",
            events::router(streams).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::api::caller::scope_events,
            )),
        )
        // After every route, so that it sees the matched route template.
        .route_layer(axum::middleware::from_fn(crate::metrics::track_requests))
        .fallback(crate::api::no_route)
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        // Before routing, so the public limits and the handlers see the client's address.
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::api::caller::assign_client_ip,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .map_or("", |id| id.0.as_str());
                    let span = tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = %id,
                        station_id = tracing::field::Empty,
                    );
                    if let Some(station) = station_in_path(request.uri().path()) {
                        span.record("station_id", tracing::field::display(station));
                    }
                    span
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // Outermost, so the trace span and every handler see the id.
        .layer(axum::middleware::from_fn(request_id::assign))
}

/// The station a request is about: the id after `/api/v1/stations/` in its path, when that is
/// one. Read from the raw path, before routing, so that every line logged for the request
/// carries it, the refusals of authentication included.
fn station_in_path(path: &str) -> Option<uuid::Uuid> {
    let rest = path.strip_prefix("/api/v1/stations/")?;
    let id = rest.split('/').next()?;
    uuid::Uuid::try_parse(id).ok()
}

/// Liveness: the process is up and serving.
async fn healthz() -> Json<Status<'static>> {
    Json(Status {
        status: "ok",
        reason: None,
    })
}

/// Readiness: the database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.db.readiness().await {
        Readiness::Ready => Json(Status {
            status: "ready",
            reason: None,
        })
        .into_response(),
        Readiness::NotReady(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "not_ready",
                    reason: Some(reason),
                }),
            )
                .into_response()
        }
    }
}

/// How long requests in flight may take to finish after shutdown was asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting connections
/// and lets requests in flight finish for up to `grace` before closing what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The peer address feeds the per-address rate limits and the audit log.
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        // A dropped sender also means stop.
        let _ = stop_rx.await;
    })
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    tracing::info!("shutting down: no new connections");
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "requests still running after the grace period; closing them"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::station_in_path;

    #[test]
    fn the_station_of_a_request_is_read_from_its_path() {
        let id = "3f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f";
        for path in [
            format!("/api/v1/stations/{id}"),
            format!("/api/v1/stations/{id}/"),
            format!("/api/v1/stations/{id}/media/x/file"),
        ] {
            assert_eq!(station_in_path(&path).unwrap().to_string(), id, "{path}");
        }
        for path in [
            "/api/v1/stations",
            "/api/v1/stations/",
            "/api/v1/stations/not-a-uuid/mounts",
            "/api/v1/users/3f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f",
            "/healthz",
        ] {
            assert_eq!(station_in_path(path), None, "{path}");
        }
    }
}
