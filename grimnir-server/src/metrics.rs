//! Prometheus metrics with the names of SPEC.md "Observability & Reliability", served at
//! `GET /metrics` in the text exposition format.
//!
//! Metrics go through the `metrics` crate's facade to a recorder that [`install`] sets up
//! once per process. Other parts of the server record through the helpers here, which keep the
//! names and labels in one place:
//!
//! | family | kind | helper |
//! | --- | --- | --- |
//! | `grimnir_planner_build_duration_seconds{station_id}` | histogram | [`planner_build_duration`] |
//! | `grimnir_planner_entries_generated_total{station_id}` | counter | [`planner_entries_generated`] |
//! | `grimnir_planner_smart_block_materialize_duration_seconds{block_id}` | histogram | [`planner_smart_block_materialize_duration`] |
//! | `grimnir_planner_separation_violations_total{station_id}` | counter | [`planner_separation_violations`] |
//! | `grimnir_executor_state{station_id,state}` | gauge, 1 for the current state | [`executor_state`] |
//! | `grimnir_executor_transition_duration_seconds{station_id}` | histogram | [`executor_transition_duration`] |
//! | `grimnir_executor_priority_changes_total{station_id,from_priority,to_priority}` | counter | [`executor_priority_change`] |
//! | `grimnir_media_buffer_depth_samples{station_id}` | gauge | [`media_buffer_depth`] |
//! | `grimnir_media_dropouts_total{station_id}` | counter | [`media_dropouts`] |
//! | `grimnir_media_cpu_usage_percent{station_id}` | gauge | [`media_cpu_usage`] |
//! | `grimnir_media_loudness_lufs{station_id}` | gauge | [`media_loudness`] |
//! | `grimnir_media_true_peak_dbtp{station_id}` | gauge | [`media_true_peak`] |
//! | `grimnir_media_output_health{station_id,output_id}` | gauge, 0 down, 1 up | [`media_output_health`] |
//! | `grimnir_api_request_duration_seconds{endpoint,method}` | histogram | [`track_requests`] |
//! | `grimnir_api_requests_total{endpoint,method,status}` | counter | [`track_requests`] |
//! | `grimnir_api_active_websockets{event_type}` | gauge | the WebSocket handler |
//!
//! The event bus adds `grimnir_events_*` families (published, received from other instances,
//! sent to the bus, publish failures by reason, delivered to clients, lagged, slow clients
//! dropped, undecodable bus messages, open streams, bus connected).
//!
//! `endpoint` is the route template (`/api/v1/events`), never the raw path, so ids in paths do
//! not multiply the series. Every family is described in the output from the start, with
//! `# HELP` and `# TYPE` lines, even before it has a sample.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use uuid::Uuid;

use crate::events::EventType;

/// Why the recorder could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Another metrics recorder was installed in this process first.
    #[error("cannot install the Prometheus recorder: {0}")]
    Install(String),
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family: its name, kind and help text.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The name, as exported.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, help }
}

const PLANNER_BUILD: &str = "grimnir_planner_build_duration_seconds";
const PLANNER_ENTRIES: &str = "grimnir_planner_entries_generated_total";
const PLANNER_SMART_BLOCK: &str = "grimnir_planner_smart_block_materialize_duration_seconds";
const PLANNER_VIOLATIONS: &str = "grimnir_planner_separation_violations_total";
const EXECUTOR_STATE: &str = "grimnir_executor_state";
const EXECUTOR_TRANSITION: &str = "grimnir_executor_transition_duration_seconds";
const EXECUTOR_PRIORITY_CHANGES: &str = "grimnir_executor_priority_changes_total";
const MEDIA_BUFFER: &str = "grimnir_media_buffer_depth_samples";
const MEDIA_DROPOUTS: &str = "grimnir_media_dropouts_total";
const MEDIA_CPU: &str = "grimnir_media_cpu_usage_percent";
const MEDIA_LOUDNESS: &str = "grimnir_media_loudness_lufs";
const MEDIA_TRUE_PEAK: &str = "grimnir_media_true_peak_dbtp";
const MEDIA_OUTPUT_HEALTH: &str = "grimnir_media_output_health";
const API_DURATION: &str = "grimnir_api_request_duration_seconds";
const API_REQUESTS: &str = "grimnir_api_requests_total";
const API_WEBSOCKETS: &str = "grimnir_api_active_websockets";
const EVENTS_PUBLISHED: &str = "grimnir_events_published_total";
const EVENTS_RECEIVED: &str = "grimnir_events_received_total";
const EVENTS_BUS_SENT: &str = "grimnir_events_bus_sent_total";
const EVENTS_PUBLISH_FAILURES: &str = "grimnir_events_publish_failures_total";
const EVENTS_DECODE_FAILURES: &str = "grimnir_events_bus_decode_failures_total";
const EVENTS_BUS_UP: &str = "grimnir_events_bus_connected";
const EVENTS_DELIVERED: &str = "grimnir_events_delivered_total";
const EVENTS_LAGGED: &str = "grimnir_events_lagged_total";
const EVENTS_CLIENTS_DROPPED: &str = "grimnir_events_clients_dropped_total";
const EVENTS_STREAMS: &str = "grimnir_events_open_streams";

/// Every family the server exports.
pub const FAMILIES: &[Family] = &[
    family(
        PLANNER_BUILD,
        Kind::Histogram,
        "Time to build a station's schedule window.",
    ),
    family(
        PLANNER_ENTRIES,
        Kind::Counter,
        "Timeline entries generated by the planner.",
    ),
    family(
        PLANNER_SMART_BLOCK,
        Kind::Histogram,
        "Time to materialize one smart block.",
    ),
    family(
        PLANNER_VIOLATIONS,
        Kind::Counter,
        "Artist/title/album separation rules the planner could not keep.",
    ),
    family(
        EXECUTOR_STATE,
        Kind::Gauge,
        "1 for the executor's current state, 0 for the others.",
    ),
    family(
        EXECUTOR_TRANSITION,
        Kind::Histogram,
        "Time an executor state transition took.",
    ),
    family(
        EXECUTOR_PRIORITY_CHANGES,
        Kind::Counter,
        "Changes of the priority tier on air, by tier before and after.",
    ),
    family(
        MEDIA_BUFFER,
        Kind::Gauge,
        "Audio queued ahead of the output, in samples per channel.",
    ),
    family(
        MEDIA_DROPOUTS,
        Kind::Counter,
        "Audio dropouts in the media engine.",
    ),
    family(
        MEDIA_CPU,
        Kind::Gauge,
        "CPU used by the station's media engine, percent of one core.",
    ),
    family(
        MEDIA_LOUDNESS,
        Kind::Gauge,
        "Integrated loudness of the programme output, LUFS.",
    ),
    family(
        MEDIA_TRUE_PEAK,
        Kind::Gauge,
        "True peak of the programme output, dBTP.",
    ),
    family(
        MEDIA_OUTPUT_HEALTH,
        Kind::Gauge,
        "Output state: 1 up, 0 down.",
    ),
    family(
        API_DURATION,
        Kind::Histogram,
        "HTTP request duration by route template and method.",
    ),
    family(
        API_REQUESTS,
        Kind::Counter,
        "HTTP requests by route template, method and status.",
    ),
    family(
        API_WEBSOCKETS,
        Kind::Gauge,
        "Open event WebSockets receiving each event type.",
    ),
    family(
        EVENTS_PUBLISHED,
        Kind::Counter,
        "Events published on this instance.",
    ),
    family(
        EVENTS_RECEIVED,
        Kind::Counter,
        "Events received from other instances over the bus.",
    ),
    family(
        EVENTS_BUS_SENT,
        Kind::Counter,
        "Events sent to the NATS or Redis bus.",
    ),
    family(
        EVENTS_PUBLISH_FAILURES,
        Kind::Counter,
        "Events that reached this instance only, not the bus, by reason.",
    ),
    family(
        EVENTS_DECODE_FAILURES,
        Kind::Counter,
        "Messages on the bus that were not valid events.",
    ),
    family(
        EVENTS_BUS_UP,
        Kind::Gauge,
        "1 while the NATS or Redis bus is connected and subscribed, else 0.",
    ),
    family(
        EVENTS_DELIVERED,
        Kind::Counter,
        "Events sent to stream clients, by transport.",
    ),
    family(
        EVENTS_LAGGED,
        Kind::Counter,
        "Events stream clients missed because they fell behind, by transport.",
    ),
    family(
        EVENTS_CLIENTS_DROPPED,
        Kind::Counter,
        "Stream clients disconnected because a send did not complete in time.",
    ),
    family(
        EVENTS_STREAMS,
        Kind::Gauge,
        "Open event streams, by transport.",
    ),
];

/// Histogram buckets, in seconds: 1 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls return the same
/// handle) and describes every family. Metrics recorded before this call are lost.
pub fn install() -> Result<&'static PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .map_err(|e| MetricsError::Install(e.to_string()))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|e| MetricsError::Install(e.to_string()))?;
            for f in FAMILIES {
                match f.kind {
                    Kind::Counter => metrics::describe_counter!(f.name, f.help),
                    Kind::Gauge => metrics::describe_gauge!(f.name, f.help),
                    Kind::Histogram => metrics::describe_histogram!(f.name, f.help),
                }
            }
            Ok(handle)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs the recorder's upkeep (draining histogram samples) every `period` until the returned
/// task is aborted. The server starts it next to [`install`].
pub fn spawn_upkeep(
    handle: &'static PrometheusHandle,
    period: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// The metrics in the Prometheus text format, every family described even without samples;
/// `None` when no recorder is installed.
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?.as_ref().ok()?;
    let mut text = handle.render();
    for f in FAMILIES {
        if !text.contains(&format!("# TYPE {} ", f.name)) {
            let _ = write!(
                text,
                "# HELP {} {}\n# TYPE {} {}\n",
                f.name,
                f.help,
                f.name,
                f.kind.as_str()
            );
        }
    }
    Some(text)
}

/// `GET /metrics`.
async fn metrics_handler() -> Response {
    match render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        )
            .into_response(),
    }
}

/// The `/metrics` route.
pub fn router() -> Router {
    Router::new().route("/metrics", get(metrics_handler))
}

/// Middleware recording `grimnir_api_request_duration_seconds` and
/// `grimnir_api_requests_total` under the route template. Apply it with
/// [`Router::route_layer`] after every route is added, so it runs after routing and sees the
/// [`MatchedPath`]; unmatched requests are not recorded.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!(API_DURATION, "endpoint" => endpoint.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    counter!(API_REQUESTS, "endpoint" => endpoint, "method" => method, "status" => status)
        .increment(1);
    response
}

// --- planner ---

/// A schedule window for `station` was built in `took`.
pub fn planner_build_duration(station: Uuid, took: Duration) {
    histogram!(PLANNER_BUILD, "station_id" => station.to_string()).record(took.as_secs_f64());
}

/// The planner generated `entries` timeline entries for `station`.
pub fn planner_entries_generated(station: Uuid, entries: u64) {
    counter!(PLANNER_ENTRIES, "station_id" => station.to_string()).increment(entries);
}

/// Smart block `block` was materialized in `took`.
pub fn planner_smart_block_materialize_duration(block: Uuid, took: Duration) {
    histogram!(PLANNER_SMART_BLOCK, "block_id" => block.to_string()).record(took.as_secs_f64());
}

/// The planner could not keep `violations` separation rules for `station`.
pub fn planner_separation_violations(station: Uuid, violations: u64) {
    counter!(PLANNER_VIOLATIONS, "station_id" => station.to_string()).increment(violations);
}

// --- executor ---

/// The executor states, by the names `executor_states.state` stores.
pub const EXECUTOR_STATES: [&str; 6] = [
    "idle",
    "preloading",
    "playing",
    "fading",
    "live",
    "emergency",
];

/// `station`'s executor is now in `state` (a name of [`EXECUTOR_STATES`]): its series is set to
/// 1 and the other states' to 0.
pub fn executor_state(station: Uuid, state: &str) {
    let station = station.to_string();
    for other in EXECUTOR_STATES {
        if other != state {
            gauge!(EXECUTOR_STATE, "station_id" => station.clone(), "state" => other).set(0.0);
        }
    }
    gauge!(EXECUTOR_STATE, "station_id" => station, "state" => state.to_owned()).set(1.0);
}

/// A state transition of `station`'s executor took `took`.
pub fn executor_transition_duration(station: Uuid, took: Duration) {
    histogram!(EXECUTOR_TRANSITION, "station_id" => station.to_string()).record(took.as_secs_f64());
}

/// The tier on air at `station` changed from `from` to `to` (0 emergency … 4 fallback).
pub fn executor_priority_change(station: Uuid, from: u8, to: u8) {
    counter!(
        EXECUTOR_PRIORITY_CHANGES,
        "station_id" => station.to_string(),
        "from_priority" => from.to_string(),
        "to_priority" => to.to_string()
    )
    .increment(1);
}

// --- media engine ---

/// `station`'s engine holds `samples` samples per channel ahead of its output.
pub fn media_buffer_depth(station: Uuid, samples: u64) {
    // Precise up to 2^53 samples: 5,900 years at 48 kHz.
    gauge!(MEDIA_BUFFER, "station_id" => station.to_string()).set(samples as f64);
}

/// `station`'s engine had `dropouts` more dropouts.
pub fn media_dropouts(station: Uuid, dropouts: u64) {
    counter!(MEDIA_DROPOUTS, "station_id" => station.to_string()).increment(dropouts);
}

/// `station`'s engine uses `percent` of one core.
pub fn media_cpu_usage(station: Uuid, percent: f64) {
    gauge!(MEDIA_CPU, "station_id" => station.to_string()).set(percent);
}

/// `station`'s integrated loudness is `lufs`; not finite (silence) is not recorded.
pub fn media_loudness(station: Uuid, lufs: f64) {
    if lufs.is_finite() {
        gauge!(MEDIA_LOUDNESS, "station_id" => station.to_string()).set(lufs);
    }
}

/// `station`'s true peak is `dbtp`; not finite (silence) is not recorded.
pub fn media_true_peak(station: Uuid, dbtp: f64) {
    if dbtp.is_finite() {
        gauge!(MEDIA_TRUE_PEAK, "station_id" => station.to_string()).set(dbtp);
    }
}

/// Output `output` of `station` is up or down.
pub fn media_output_health(station: Uuid, output: &str, up: bool) {
    gauge!(
        MEDIA_OUTPUT_HEALTH,
        "station_id" => station.to_string(),
        "output_id" => output.to_owned()
    )
    .set(if up { 1.0 } else { 0.0 });
}

// --- event bus and streams (crate-internal) ---

pub(crate) fn event_published(event_type: EventType) {
    counter!(EVENTS_PUBLISHED, "event_type" => event_type.as_str()).increment(1);
}

pub(crate) fn event_received(event_type: EventType) {
    counter!(EVENTS_RECEIVED, "event_type" => event_type.as_str()).increment(1);
}

pub(crate) fn event_bus_sent() {
    counter!(EVENTS_BUS_SENT).increment(1);
}

pub(crate) fn event_publish_failure(reason: &'static str) {
    counter!(EVENTS_PUBLISH_FAILURES, "reason" => reason).increment(1);
}

pub(crate) fn event_bus_decode_failure() {
    counter!(EVENTS_DECODE_FAILURES).increment(1);
}

pub(crate) fn event_bus_up(up: bool) {
    gauge!(EVENTS_BUS_UP).set(if up { 1.0 } else { 0.0 });
}

pub(crate) fn event_delivered(transport: &'static str) {
    counter!(EVENTS_DELIVERED, "transport" => transport).increment(1);
}

pub(crate) fn event_lagged(transport: &'static str, missed: u64) {
    counter!(EVENTS_LAGGED, "transport" => transport).increment(missed);
}

pub(crate) fn event_client_dropped(transport: &'static str) {
    counter!(EVENTS_CLIENTS_DROPPED, "transport" => transport).increment(1);
}

/// Counts an open stream (and, for WebSockets, each event type it receives) until dropped.
#[derive(Debug)]
pub(crate) struct OpenStream {
    transport: &'static str,
    websocket_types: Vec<EventType>,
}

impl OpenStream {
    pub(crate) fn new(transport: &'static str, websocket_types: Vec<EventType>) -> Self {
        gauge!(EVENTS_STREAMS, "transport" => transport).increment(1.0);
        for t in &websocket_types {
            gauge!(API_WEBSOCKETS, "event_type" => t.as_str()).increment(1.0);
        }
        OpenStream {
            transport,
            websocket_types,
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!(EVENTS_STREAMS, "transport" => self.transport).decrement(1.0);
        for t in &self.websocket_types {
            gauge!(API_WEBSOCKETS, "event_type" => t.as_str()).decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_family_is_listed_once() {
        let spec = [
            PLANNER_BUILD,
            PLANNER_ENTRIES,
            PLANNER_SMART_BLOCK,
            PLANNER_VIOLATIONS,
            EXECUTOR_STATE,
            EXECUTOR_TRANSITION,
            EXECUTOR_PRIORITY_CHANGES,
            MEDIA_BUFFER,
            MEDIA_DROPOUTS,
            MEDIA_CPU,
            MEDIA_LOUDNESS,
            MEDIA_TRUE_PEAK,
            MEDIA_OUTPUT_HEALTH,
            API_DURATION,
            API_REQUESTS,
            API_WEBSOCKETS,
        ];
        for name in spec {
            assert_eq!(
                FAMILIES.iter().filter(|f| f.name == name).count(),
                1,
                "{name}"
            );
        }
        for f in FAMILIES {
            assert!(f.name.starts_with("grimnir_"), "{}", f.name);
            assert_eq!(
                f.name.ends_with("_seconds"),
                f.kind == Kind::Histogram,
                "{}: durations are histograms in seconds",
                f.name
            );
            assert_eq!(
                f.name.ends_with("_total"),
                f.kind == Kind::Counter,
                "{}",
                f.name
            );
        }
    }
}
