//! The event stream over HTTP: WebSocket at `GET /events` and Server-Sent Events at
//! `GET /events/stream`, meant to be nested under `/api/v1`.
//!
//! Both take `?station=<uuid>` (repeatable, or a comma list) and `?types=<type>,<type>`, and
//! both need an [`EventScope`] in the request's extensions, which the authentication middleware
//! inserts; without one they answer `401`. A filter naming a station outside the scope is
//! refused with `403`; no station filter means every station of the scope.
//!
//! | status | `error.code` | when |
//! | --- | --- | --- |
//! | 400 | `invalid_filter` | a `station` or `types` value that cannot be used (`field` names it) |
//! | 400 | `unknown_parameter` | a query parameter other than `station` and `types` |
//! | 401 | `unauthorized` | no [`EventScope`]: the request was not authenticated |
//! | 403 | `forbidden_station` | a requested station outside the scope |
//!
//! Slow clients never hold anyone up: each stream reads from the bus's bounded buffer; a client
//! that falls behind by more than the buffer skips events and gets a `lagged` notice
//! (`{"type":"lagged","missed":N}`; an SSE event named `lagged`). A WebSocket whose send does
//! not complete within the send timeout is closed. WebSockets are pinged and SSE streams carry a
//! `: keep-alive` comment every keep-alive interval.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::events::{
    Delivery, EventBus, EventFilter, EventScope, FilterError, RecvError, Subscription,
};
use crate::metrics::{self, OpenStream};

/// The event streams' settings and the bus they read.
#[derive(Debug, Clone)]
pub struct EventStreams {
    bus: EventBus,
    keep_alive: Duration,
    send_timeout: Duration,
}

impl EventStreams {
    /// Streams from `bus` with a keep-alive every 15 s and a 10 s send timeout.
    pub fn new(bus: EventBus) -> Self {
        EventStreams {
            bus,
            keep_alive: Duration::from_secs(15),
            send_timeout: Duration::from_secs(10),
        }
    }

    /// How often an idle WebSocket is pinged and an idle SSE stream gets a comment.
    pub fn keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// How long a WebSocket send may take before the client is disconnected as too slow.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }
}

/// `GET /events` (WebSocket) and `GET /events/stream` (SSE), to nest under `/api/v1`.
pub fn router(streams: EventStreams) -> Router {
    Router::new()
        .route("/events", get(websocket))
        .route("/events/stream", get(sse))
        .with_state(streams)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

/// The API's error body, `{"error":{"code","message","field"}}`.
// Kept private and small so that the shared API error type can replace it.
fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> Response {
    (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
            },
        }),
    )
        .into_response()
}

fn filter_error(e: &FilterError) -> Response {
    let (status, code) = match e {
        FilterError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden_station"),
        FilterError::UnknownParameter { .. } => (StatusCode::BAD_REQUEST, "unknown_parameter"),
        _ => (StatusCode::BAD_REQUEST, "invalid_filter"),
    };
    error_response(status, code, e.to_string(), e.field())
}

/// Why a stream request is refused.
enum Refusal {
    /// No [`EventScope`]: not authenticated.
    Unauthenticated,
    /// A filter that cannot be used or is outside the scope.
    Filter(FilterError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required".to_owned(),
                None,
            ),
            Refusal::Filter(e) => filter_error(&e),
        }
    }
}

/// The caller's filter within its scope.
fn authorize(scope: Option<&EventScope>, query: Option<&str>) -> Result<EventFilter, Refusal> {
    let scope = scope.ok_or(Refusal::Unauthenticated)?;
    EventFilter::from_query(query.unwrap_or(""))
        .and_then(|filter| filter.within(scope))
        .map_err(Refusal::Filter)
}

fn lagged_notice(missed: u64) -> String {
    format!(r#"{{"type":"lagged","missed":{missed}}}"#)
}

/// Read buffer of an event WebSocket. Clients send next to nothing (pongs, a close), and the
/// WebSocket library zero-fills the whole buffer on every read attempt: at its 128 KiB default
/// that memset was a third of the CPU time of fanning events out to 1,000 clients.
const CLIENT_READ_BUFFER: usize = 4 * 1024;

async fn websocket(
    State(streams): State<EventStreams>,
    scope: Option<Extension<EventScope>>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let filter = match authorize(scope.as_ref().map(|s| &s.0), query.as_deref()) {
        Ok(filter) => filter,
        Err(refusal) => return refusal.into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // Subscribed before the upgrade answers, so no event published after the client saw the
    // 101 is missed.
    let subscription = streams.bus.subscribe();
    upgrade
        .read_buffer_size(CLIENT_READ_BUFFER)
        .on_upgrade(move |socket| run_websocket(socket, subscription, filter, streams))
}

async fn run_websocket(
    mut socket: WebSocket,
    mut subscription: Subscription,
    filter: EventFilter,
    streams: EventStreams,
) {
    let _open = OpenStream::new("websocket", filter.types());
    let mut ping = tokio::time::interval(streams.keep_alive);
    ping.tick().await; // the first tick is immediate
    loop {
        // The frame to send, and whether it is an event (not a ping or a notice).
        let (message, is_event) = tokio::select! {
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; anything else from the client is ignored.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => (Message::Ping(Default::default()), false),
            received = subscription.recv() => match received {
                Ok(delivery) if filter.matches(delivery.envelope()) => {
                    match Utf8Bytes::try_from(delivery.json_bytes().clone()) {
                        Ok(text) => (Message::Text(text), true),
                        Err(_) => continue,
                    }
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    metrics::event_lagged("websocket", missed);
                    (Message::Text(lagged_notice(missed).into()), false)
                }
                Err(RecvError::Closed) => return,
            },
        };
        match tokio::time::timeout(streams.send_timeout, socket.send(message)).await {
            Ok(Ok(())) => {
                if is_event {
                    metrics::event_delivered("websocket");
                }
            }
            Ok(Err(_)) => return,
            Err(_) => {
                metrics::event_client_dropped("websocket");
                tracing::info!("closing an event WebSocket that stopped reading");
                return;
            }
        }
    }
}

async fn sse(
    State(streams): State<EventStreams>,
    scope: Option<Extension<EventScope>>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = match authorize(scope.as_ref().map(|s| &s.0), query.as_deref()) {
        Ok(filter) => filter,
        Err(refusal) => return refusal.into_response(),
    };
    let subscription = streams.bus.subscribe();
    let open = OpenStream::new("sse", Vec::new());
    let stream = futures_util::stream::unfold(
        (subscription, filter, open),
        |(mut subscription, filter, open)| async move {
            loop {
                let event = match subscription.recv().await {
                    Ok(delivery) if filter.matches(delivery.envelope()) => sse_event(&delivery),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => {
                        metrics::event_lagged("sse", missed);
                        SseEvent::default()
                            .event("lagged")
                            .data(lagged_notice(missed))
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok::<_, Infallible>(event), (subscription, filter, open)));
            }
        },
    );
    Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(streams.keep_alive)
                .text("keep-alive"),
        )
        .into_response()
}

fn sse_event(delivery: &Delivery) -> SseEvent {
    metrics::event_delivered("sse");
    let envelope = delivery.envelope();
    SseEvent::default()
        .event(envelope.event_type().as_str())
        .id(envelope.id.to_string())
        .data(delivery.json())
}
