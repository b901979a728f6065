//! `/metrics`: the SPEC.md families, and requests counted under their route templates. A test
//! binary of its own, as the recorder is global to the process.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::StreamExt;
use grimnir_server::db::{Database, DatabaseUrl, PoolOptions};
use grimnir_server::events::{BufferHealth, Event, EventBus, EventScope};
use grimnir_server::http::events::{self as streams, EventStreams};
use grimnir_server::http::{self, AppState};
use grimnir_server::metrics;
use tower::ServiceExt;
use uuid::Uuid;

const SPEC_FAMILIES: [(&str, &str); 16] = [
    ("grimnir_planner_build_duration_seconds", "histogram"),
    ("grimnir_planner_entries_generated_total", "counter"),
    (
        "grimnir_planner_smart_block_materialize_duration_seconds",
        "histogram",
    ),
    ("grimnir_planner_separation_violations_total", "counter"),
    ("grimnir_executor_state", "gauge"),
    ("grimnir_executor_transition_duration_seconds", "histogram"),
    ("grimnir_executor_priority_changes_total", "counter"),
    ("grimnir_media_buffer_depth_samples", "gauge"),
    ("grimnir_media_dropouts_total", "counter"),
    ("grimnir_media_cpu_usage_percent", "gauge"),
    ("grimnir_media_loudness_lufs", "gauge"),
    ("grimnir_media_true_peak_dbtp", "gauge"),
    ("grimnir_media_output_health", "gauge"),
    ("grimnir_api_request_duration_seconds", "histogram"),
    ("grimnir_api_requests_total", "counter"),
    ("grimnir_api_active_websockets", "gauge"),
];

async fn get_text(app: &Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The value of the sample line starting with `series` (name and labels as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_spec_names_and_count_requests_by_route_template() {
    let handle = metrics::install().unwrap();
    // Installing twice hands back the same recorder.
    assert!(std::ptr::eq(handle, metrics::install().unwrap()));

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        DatabaseUrl::sqlite_file(dir.path().join("grimnir.db")),
        PoolOptions::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let app = http::router(AppState {
        executors: grimnir_server::executor_pool::ExecutorPool::recording(
            db.clone(),
            EventBus::memory(),
        ),
        db,
        auth: grimnir_server::auth::Auth::new(
            &"a metrics test secret of 32+ bytes".parse().unwrap(),
            Default::default(),
        ),
        events: EventBus::memory(),
        media: grimnir_server::media::MediaLibrary::new(
            &grimnir_server::config::Config::default().media,
        ),
    });

    // Before any sample, every family is described.
    let (status, text) = get_text(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for (name, kind) in SPEC_FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} is not described as a {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help"
        );
    }

    assert_eq!(get_text(&app, "/healthz").await.0, StatusCode::OK);
    assert_eq!(get_text(&app, "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get_text(&app, "/api/v1/events/stream").await.0,
        StatusCode::UNAUTHORIZED
    );

    // A route with a parameter is recorded under its template, not the path.
    let templated = Router::new()
        .route("/api/v1/stations/{id}", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn(metrics::track_requests))
        .layer(Extension(EventScope::All));
    for _ in 0..3 {
        let uri = format!("/api/v1/stations/{}", Uuid::new_v4());
        assert_eq!(get_text(&templated, &uri).await.0, StatusCode::OK);
    }

    let station = Uuid::new_v4();
    metrics::executor_state(station, "preloading");
    metrics::executor_state(station, "playing");
    metrics::executor_priority_change(station, 3, 0);
    metrics::executor_transition_duration(station, Duration::from_millis(30));
    metrics::media_buffer_depth(station, 96_000);
    metrics::media_dropouts(station, 2);
    metrics::media_loudness(station, f64::NEG_INFINITY); // silence: not recorded
    metrics::media_true_peak(station, -1.5);
    metrics::media_output_health(station, "main-mp3", true);
    metrics::planner_entries_generated(station, 12);

    let (_, text) = get_text(&app, "/metrics").await;
    let healthz = r#"grimnir_api_requests_total{endpoint="/healthz",method="GET",status="200"}"#;
    assert!(sample(&text, healthz).unwrap() >= 2.0, "{text}");
    let events =
        r#"grimnir_api_requests_total{endpoint="/api/v1/events/stream",method="GET",status="401"}"#;
    assert_eq!(sample(&text, events), Some(1.0), "{text}");
    let template =
        r#"grimnir_api_requests_total{endpoint="/api/v1/stations/{id}",method="GET",status="200"}"#;
    assert_eq!(sample(&text, template), Some(3.0), "{text}");
    let raw_paths = text
        .lines()
        .filter(|l| l.contains(r#"endpoint="/api/v1/stations/"#) && !l.contains("{id}"))
        .count();
    assert_eq!(raw_paths, 0, "raw paths leaked into labels:\n{text}");
    let count = r#"grimnir_api_request_duration_seconds_count{endpoint="/healthz",method="GET"}"#;
    assert!(sample(&text, count).unwrap() >= 2.0, "{text}");
    let bucket = r#"grimnir_api_request_duration_seconds_bucket{endpoint="/healthz",method="GET",le="+Inf"}"#;
    assert!(sample(&text, bucket).unwrap() >= 2.0, "{text}");

    let s = station.to_string();
    let state = |name: &str| {
        sample(
            &text,
            &format!(r#"grimnir_executor_state{{station_id="{s}",state="{name}"}}"#),
        )
    };
    assert_eq!(state("playing"), Some(1.0));
    assert_eq!(state("preloading"), Some(0.0));
    assert_eq!(state("emergency"), Some(0.0));
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"grimnir_executor_priority_changes_total{{station_id="{s}",from_priority="3",to_priority="0"}}"#
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"grimnir_media_buffer_depth_samples{{station_id="{s}"}}"#)
        ),
        Some(96_000.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"grimnir_media_output_health{{station_id="{s}",output_id="main-mp3"}}"#)
        ),
        Some(1.0)
    );
    assert!(!text.contains(&format!(
        r#"grimnir_media_loudness_lufs{{station_id="{s}"}}"#
    )));
    // Described once each, samples or not.
    for (name, _) in SPEC_FAMILIES {
        assert_eq!(
            text.matches(&format!("# TYPE {name} ")).count(),
            1,
            "{name}"
        );
    }
}

/// The metrics once `done` holds of them, or as they are after a second.
async fn settled(render: &impl Fn() -> String, done: impl Fn(&str) -> bool) -> String {
    let mut text = render();
    for _ in 0..100 {
        if done(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        text = render();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_counted() {
    metrics::install().unwrap();
    let bus = EventBus::memory_with_buffer(16);
    let app = Router::new()
        .nest("/api/v1", streams::router(EventStreams::new(bus.clone())))
        .layer(Extension(EventScope::All));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let render = || metrics::render().unwrap();
    let open = |text: &str, event_type: &str| {
        sample(
            text,
            &format!(r#"grimnir_api_active_websockets{{event_type="{event_type}"}}"#),
        )
        .unwrap_or(0.0)
    };
    let lagged = |text: &str| {
        sample(
            text,
            r#"grimnir_events_lagged_total{transport="websocket"}"#,
        )
        .unwrap_or(0.0)
    };
    let published = |text: &str| {
        sample(
            text,
            r#"grimnir_events_published_total{event_type="buffer_health"}"#,
        )
        .unwrap_or(0.0)
    };
    let before = render();

    let url = format!("ws://{addr}/api/v1/events?types=buffer_health,silence_detected");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // The server's stream task starts right after the handshake.
    let during = settled(&render, |text| {
        open(text, "buffer_health") == open(&before, "buffer_health") + 1.0
    })
    .await;
    assert_eq!(
        open(&during, "buffer_health"),
        open(&before, "buffer_health") + 1.0
    );
    assert_eq!(
        open(&during, "silence_detected"),
        open(&before, "silence_detected") + 1.0
    );
    assert_eq!(open(&during, "now_playing"), open(&before, "now_playing"));

    // 100 events into a buffer of 16 before the client reads: it lags, and that is counted.
    let station = Uuid::new_v4();
    for dropouts in 0..100 {
        let event = Event::BufferHealth(BufferHealth {
            depth_samples: 1,
            sample_rate: 48_000,
            dropouts,
        });
        let _ = bus.publish(station, event).unwrap();
    }
    let mut seen = 0;
    let mut saw_lag = false;
    while seen < 100 {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = message.into_text().unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        saw_lag |= value["missed"].is_u64();
        seen += value["missed"].as_u64().unwrap_or(1);
    }
    let after_lag = render();
    assert!(published(&after_lag) >= published(&before) + 100.0);
    // Whether the stream task fell behind depends on scheduling (a fast server task drains
    // the bus into the socket's buffer): a lag the client was told of must be counted.
    if saw_lag {
        assert!(lagged(&after_lag) > lagged(&before), "{after_lag}");
    } else {
        assert!(
            after_lag.contains("grimnir_events_delivered_total"),
            "{after_lag}"
        );
    }

    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}
    // The server's stream task ends right after the close handshake.
    let closed = settled(&render, |text| {
        open(text, "buffer_health") == open(&before, "buffer_health")
    })
    .await;
    assert_eq!(
        open(&closed, "buffer_health"),
        open(&before, "buffer_health")
    );
    server.abort();
}
