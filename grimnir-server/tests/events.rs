//! The event stream end to end: WebSocket and SSE clients on loopback, the in-process bus, and
//! two server instances sharing real NATS and Redis servers.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::{Extension, Router};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use grimnir_server::events::{
    BufferHealth, Event, EventBus, EventBusConfig, EventBusUrl, EventScope, NowPlaying,
    PublishError, SilenceDetected,
};
use grimnir_server::http::events::{self as streams, EventStreams};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;
use uuid::Uuid;

/// Upper bound for anything a test waits for; a healthy run takes milliseconds.
const WAIT: Duration = Duration::from_secs(10);
/// How long to listen for a second copy of an event that must arrive once.
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Servers and clients

/// One server instance on a loopback port.
struct Instance {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn app(streams: EventStreams, scope: Option<EventScope>) -> Router {
    let app = Router::new().nest("/api/v1", streams::router(streams));
    match scope {
        // What the authentication middleware will do.
        Some(scope) => app.layer(Extension(scope)),
        None => app,
    }
}

async fn start(streams: EventStreams, scope: EventScope) -> Instance {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(streams, Some(scope));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Instance { addr, server }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws(addr: SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/api/v1/events{query}");
    let (socket, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("WebSocket handshake timed out")
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// A WebSocket client whose socket takes in at most about `receive_buffer` bytes the
/// application has not read: a receive buffer set explicitly is not grown by the kernel.
async fn ws_with_receive_buffer(addr: SocketAddr, receive_buffer: u32) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(receive_buffer).unwrap();
    let stream = tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .expect("connect timed out")
        .unwrap();
    let url = format!("ws://{addr}/api/v1/events");
    let (socket, response) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("WebSocket handshake timed out")
    .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// The most a TCP socket's send buffer may grow to here (`net.ipv4.tcp_wmem`'s maximum), or
/// 4 MiB when it cannot be read.
fn max_send_buffer() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20)
}

/// The next text frame as JSON, or `None` if none comes within `within` (or the socket closes).
async fn ws_next(socket: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        match message.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// A Server-Sent Events client over a raw HTTP/1.1 connection.
struct SseClient {
    stream: TcpStream,
    /// Undecoded bytes of the chunked body.
    raw: Vec<u8>,
    /// Decoded body not yet split into events.
    body: String,
}

/// One SSE message: its fields, or only comments.
#[derive(Debug, Default)]
struct SseMessage {
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    comments: Vec<String>,
}

impl SseClient {
    async fn connect(addr: SocketAddr, query: &str) -> SseClient {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/v1/events/stream{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
                .await
                .expect("no SSE response head")
                .unwrap();
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/event-stream"), "{head}");
        assert!(lower.contains("transfer-encoding: chunked"), "{head}");
        SseClient {
            stream,
            raw: raw[head_end + 4..].to_vec(),
            body: String::new(),
        }
    }

    /// Moves complete chunks from `raw` to `body`.
    fn decode(&mut self) {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            let end = line_end + 2 + size + 2;
            if self.raw.len() < end {
                return;
            }
            let chunk = &self.raw[line_end + 2..line_end + 2 + size];
            self.body.push_str(std::str::from_utf8(chunk).unwrap());
            self.raw.drain(..end);
        }
    }

    /// The next message, comments included, or `None` if none comes within `within`.
    async fn next_message(&mut self, within: Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.decode();
            if let Some(end) = self.body.find("\n\n") {
                let block: String = self.body.drain(..end + 2).collect();
                let mut message = SseMessage::default();
                for line in block.lines().filter(|l| !l.is_empty()) {
                    if let Some(comment) = line.strip_prefix(':') {
                        message.comments.push(comment.trim().to_owned());
                    } else if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                        match field {
                            "event" => message.event = Some(value),
                            "id" => message.id = Some(value),
                            "data" => message.data = Some(value),
                            _ => {}
                        }
                    }
                }
                return Some(message);
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// The next event (skipping keep-alive comments) as its SSE name, id and JSON data.
    async fn next_event(&mut self, within: Duration) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.next_message(left).await?;
            if let Some(data) = message.data {
                return Some((
                    message.event.unwrap_or_default(),
                    message.id.unwrap_or_default(),
                    serde_json::from_str(&data).unwrap(),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events

fn now_playing(title: &str) -> Event {
    Event::NowPlaying(NowPlaying {
        entry_id: None,
        media_id: Some(Uuid::new_v4()),
        title: title.to_owned(),
        artist: "Test Artist".to_owned(),
        album: None,
        started_at: Utc::now(),
        duration_ms: Some(180_000),
    })
}

fn buffer_health(dropouts: u64) -> Event {
    Event::BufferHealth(BufferHealth {
        depth_samples: 96_000,
        sample_rate: 48_000,
        dropouts,
    })
}

fn silence() -> Event {
    Event::SilenceDetected(SilenceDetected {
        duration_ms: 5_000,
        threshold_dbfs: -60.0,
    })
}

// ---------------------------------------------------------------------------------------------
// Authorization and filters

async fn oneshot(app: Router, uri: &str) -> (StatusCode, Value) {
    let response = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn without_a_scope_nothing_streams() {
    let app = app(EventStreams::new(EventBus::memory()), None);
    for uri in ["/api/v1/events", "/api/v1/events/stream"] {
        let (status, body) = oneshot(app.clone(), uri).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(body["error"]["code"], "unauthorized", "{uri}");
    }
    // Even a bad filter gets 401 first: nothing about the endpoint leaks.
    let (status, _) = oneshot(app, "/api/v1/events/stream?types=nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_field_named() {
    let allowed = Uuid::new_v4();
    let other = Uuid::new_v4();
    let scoped = app(
        EventStreams::new(EventBus::memory()),
        Some(EventScope::Stations(vec![allowed])),
    );
    let cases = [
        (
            "/api/v1/events/stream?types=now_playing,weather".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_filter",
            "types",
        ),
        (
            "/api/v1/events?types=now_playing,weather".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_filter",
            "types",
        ),
        (
            "/api/v1/events/stream?station=not-a-uuid".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_filter",
            "station",
        ),
        (
            "/api/v1/events/stream?stations=x".to_owned(),
            StatusCode::BAD_REQUEST,
            "unknown_parameter",
            "stations",
        ),
        (
            format!("/api/v1/events/stream?station={allowed},{other}"),
            StatusCode::FORBIDDEN,
            "forbidden_station",
            "station",
        ),
        (
            format!("/api/v1/events?station={other}"),
            StatusCode::FORBIDDEN,
            "forbidden_station",
            "station",
        ),
    ];
    for (uri, status, code, field) in cases {
        let (got, body) = oneshot(scoped.clone(), &uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{uri}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{uri}: {body}"
        );
    }
    // A valid filter on the WebSocket route without an upgrade gets the upgrade's refusal (not
    // JSON), not ours: the filter passed.
    let (status, body) = oneshot(
        scoped,
        &format!("/api/v1/events?station={allowed}&types=now_playing"),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(body, Value::Null, "{status}: {body}");
}

// ---------------------------------------------------------------------------------------------
// One instance

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_gets_what_its_filter_passes_once_and_in_order() {
    let bus = EventBus::memory();
    let instance = start(EventStreams::new(bus.clone()), EventScope::All).await;
    let mine = Uuid::new_v4();
    let other = Uuid::new_v4();
    let mut filtered = ws(
        instance.addr,
        &format!("?station={mine}&types=now_playing,silence_detected"),
    )
    .await;
    let mut everything = ws(instance.addr, "").await;

    let first = bus.publish(mine, now_playing("one")).unwrap();
    let _ = bus.publish(mine, buffer_health(0)).unwrap();
    let _ = bus.publish(other, now_playing("elsewhere")).unwrap();
    let second = bus.publish(mine, silence()).unwrap();

    let got = ws_next(&mut filtered, WAIT).await.unwrap();
    assert_eq!(got["id"], first.to_string());
    assert_eq!(got["type"], "now_playing");
    assert_eq!(got["station_id"], mine.to_string());
    assert_eq!(got["origin"], bus.instance_id().to_string());
    assert_eq!(got["data"]["title"], "one");
    let got = ws_next(&mut filtered, WAIT).await.unwrap();
    assert_eq!(got["id"], second.to_string());
    assert_eq!(got["type"], "silence_detected");
    assert!(
        ws_next(&mut filtered, QUIET).await.is_none(),
        "nothing else"
    );

    for expected in [
        "now_playing",
        "buffer_health",
        "now_playing",
        "silence_detected",
    ] {
        let got = ws_next(&mut everything, WAIT).await.unwrap();
        assert_eq!(got["type"], expected);
    }
    assert!(ws_next(&mut everything, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_caller_without_a_filter_gets_its_stations_only() {
    let bus = EventBus::memory();
    let mine = Uuid::new_v4();
    let instance = start(
        EventStreams::new(bus.clone()),
        EventScope::Stations(vec![mine]),
    )
    .await;
    let mut socket = ws(instance.addr, "").await;
    let _ = bus
        .publish(Uuid::new_v4(), now_playing("not yours"))
        .unwrap();
    let id = bus.publish(mine, now_playing("yours")).unwrap();
    let got = ws_next(&mut socket, WAIT).await.unwrap();
    assert_eq!(got["id"], id.to_string());
    assert!(ws_next(&mut socket, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_holds_up_neither_publisher_nor_other_clients() {
    // Events of 16 KiB, at least 1,000 of them and twice what the stalled client's socket
    // buffers can hold (its receive buffer is fixed at 64 KiB, the server's send buffer grows
    // at most to the kernel's limit), so its sends block and it must be cut off without anyone
    // waiting.
    const EVENT_BYTES: usize = 16 * 1024;
    let events = (2 * (max_send_buffer() + (64 << 10)) / EVENT_BYTES).max(1000);
    let bus = EventBus::memory_with_buffer(2 * events);
    let instance = start(
        EventStreams::new(bus.clone()).send_timeout(Duration::from_millis(300)),
        EventScope::All,
    )
    .await;
    let station = Uuid::new_v4();
    let mut stalled = ws_with_receive_buffer(instance.addr, 64 << 10).await;
    let mut fast = ws(instance.addr, "").await;

    let reader = tokio::spawn(async move {
        let mut sequence = Vec::new();
        while sequence.len() < events {
            let Some(event) = ws_next(&mut fast, WAIT).await else {
                break;
            };
            let title = event["data"]["title"].as_str().unwrap();
            sequence.push(title[..6].parse::<usize>().unwrap());
        }
        sequence
    });
    let padding = "x".repeat(EVENT_BYTES);
    for n in 0..events {
        let _ = bus
            .publish(station, now_playing(&format!("{n:06}{padding}")))
            .unwrap();
    }
    let sequence = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the fast client was held up")
        .unwrap();
    assert_eq!(
        sequence,
        (0..events).collect::<Vec<_>>(),
        "every event, in order"
    );

    // The server cut the stalled client off: its subscription is gone (the fast client's too,
    // which hung up). Reading from the stalled client before that would unblock the server's
    // send and race the send timeout.
    let cut_off = tokio::time::timeout(Duration::from_secs(10), async {
        while bus.subscribers() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        cut_off.is_ok(),
        "{} streams still subscribed",
        bus.subscribers()
    );
    // Reading what its buffers held ends, well before all the events.
    let mut seen = 0;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(message)) = stalled.next().await {
            if matches!(message, Message::Text(_)) {
                seen += 1;
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stalled client's stream did not end ({seen} of {events} events read)"
    );
    assert!(seen < events, "the stalled client got all {seen} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_told_what_it_missed() {
    const EVENTS: u64 = 200;
    let bus = EventBus::memory_with_buffer(16);
    let instance = start(EventStreams::new(bus.clone()), EventScope::All).await;
    let station = Uuid::new_v4();
    let mut socket = ws(instance.addr, "").await;
    for n in 0..EVENTS {
        let _ = bus.publish(station, buffer_health(n)).unwrap();
    }
    // Every event is either delivered or counted in a lagged notice.
    let (mut delivered, mut missed, mut notices) = (0, 0, 0);
    while delivered + missed < EVENTS {
        let got = ws_next(&mut socket, WAIT)
            .await
            .unwrap_or_else(|| panic!("stuck at {delivered} delivered + {missed} missed"));
        match got["type"].as_str().unwrap() {
            "lagged" => {
                notices += 1;
                missed += got["missed"].as_u64().unwrap();
            }
            "buffer_health" => delivered += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(delivered + missed, EVENTS);
    assert!(notices >= 1 && missed > 0, "200 events into a buffer of 16");
    assert!(ws_next(&mut socket, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_falls_behind_is_told_what_it_missed() {
    const EVENTS: u64 = 500;
    let bus = EventBus::memory_with_buffer(16);
    let instance = start(EventStreams::new(bus.clone()), EventScope::All).await;
    let station = Uuid::new_v4();
    let mut client = SseClient::connect(instance.addr, "").await;
    for n in 0..EVENTS {
        let _ = bus.publish(station, buffer_health(n)).unwrap();
    }
    let (mut delivered, mut missed) = (0, 0);
    let mut last = None;
    while delivered + missed < EVENTS {
        let (name, _, data) = client
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("stuck at {delivered} delivered + {missed} missed"));
        if name == "lagged" {
            assert_eq!(data["type"], "lagged");
            missed += data["missed"].as_u64().unwrap();
        } else {
            assert_eq!(name, "buffer_health");
            let n = data["data"]["dropouts"].as_u64().unwrap();
            assert!(last.is_none_or(|last| n > last), "out of order");
            last = Some(n);
            delivered += 1;
        }
    }
    assert_eq!(delivered + missed, EVENTS);
    assert_eq!(last, Some(EVENTS - 1), "the newest event always arrives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_delivers_filtered_events_with_names_ids_and_keep_alives() {
    let bus = EventBus::memory();
    let instance = start(
        EventStreams::new(bus.clone()).keep_alive(Duration::from_millis(100)),
        EventScope::All,
    )
    .await;
    let mine = Uuid::new_v4();
    let mut client =
        SseClient::connect(instance.addr, &format!("?station={mine}&types=now_playing")).await;

    let first = bus.publish(mine, now_playing("first")).unwrap();
    let _ = bus.publish(mine, buffer_health(1)).unwrap();
    let _ = bus
        .publish(Uuid::new_v4(), now_playing("elsewhere"))
        .unwrap();
    let second = bus.publish(mine, now_playing("second")).unwrap();

    for (id, title) in [(first, "first"), (second, "second")] {
        let (name, sse_id, data) = client.next_event(WAIT).await.unwrap();
        assert_eq!(name, "now_playing");
        assert_eq!(sse_id, id.to_string());
        assert_eq!(data["id"], id.to_string());
        assert_eq!(data["data"]["title"], title);
    }
    // Quiet now but for keep-alive comments.
    let mut keep_alives = 0;
    let deadline = Instant::now() + Duration::from_millis(600);
    while Instant::now() < deadline {
        let Some(message) = client.next_message(Duration::from_millis(600)).await else {
            break;
        };
        assert!(message.data.is_none(), "unexpected event {message:?}");
        if message.comments.iter().any(|c| c == "keep-alive") {
            keep_alives += 1;
        }
    }
    assert!(
        keep_alives >= 2,
        "{keep_alives} keep-alives in 600 ms at 100 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_can_close_and_the_stream_ends() {
    let bus = EventBus::memory();
    let instance = start(EventStreams::new(bus.clone()), EventScope::All).await;
    let mut socket = ws(instance.addr, "").await;
    socket.send(Message::Text("hello".into())).await.unwrap();
    socket.close(None).await.unwrap();
    // The server answers the close and ends the stream.
    let ended = tokio::time::timeout(WAIT, async { while socket.next().await.is_some() {} }).await;
    assert!(ended.is_ok());
    // Publishing afterwards is unaffected.
    let _ = bus.publish(Uuid::new_v4(), silence()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Two instances over a real bus

fn test_config(url: &str) -> EventBusConfig {
    EventBusConfig {
        url: url.parse().unwrap(),
        // Each test on its own subjects, so concurrent runs on the same server never meet.
        prefix: format!("grimnir-test.{}", Uuid::new_v4().simple())
            .parse()
            .unwrap(),
        buffer: 1024,
    }
}

async fn connected(config: &EventBusConfig) -> EventBus {
    let bus = EventBus::connect(config).await.unwrap();
    assert!(
        bus.wait_connected(WAIT).await,
        "{} did not connect",
        config.url
    );
    bus
}

/// An event published on instance A reaches a WebSocket and an SSE client of instance B, and a
/// WebSocket client of A itself, exactly once each; and the other way round.
async fn events_cross_instances(url: &str) {
    let config = test_config(url);
    let bus_a = connected(&config).await;
    let bus_b = connected(&config).await;
    assert_ne!(bus_a.instance_id(), bus_b.instance_id());
    let a = start(EventStreams::new(bus_a.clone()), EventScope::All).await;
    let b = start(EventStreams::new(bus_b.clone()), EventScope::All).await;
    let station = Uuid::new_v4();
    let query = format!("?station={station}");
    let mut ws_a = ws(a.addr, &query).await;
    let mut ws_b = ws(b.addr, &query).await;
    let mut sse_b = SseClient::connect(b.addr, &query).await;

    let id = bus_a.publish(station, now_playing("across")).unwrap();
    for (who, got) in [
        ("WebSocket on B", ws_next(&mut ws_b, WAIT).await),
        ("WebSocket on A", ws_next(&mut ws_a, WAIT).await),
    ] {
        let got = got.unwrap_or_else(|| panic!("{who}: nothing arrived"));
        assert_eq!(got["id"], id.to_string(), "{who}");
        assert_eq!(got["origin"], bus_a.instance_id().to_string(), "{who}");
        assert_eq!(got["data"]["title"], "across", "{who}");
    }
    let (name, sse_id, data) = sse_b.next_event(WAIT).await.unwrap();
    assert_eq!((name.as_str(), sse_id), ("now_playing", id.to_string()));
    assert_eq!(data["origin"], bus_a.instance_id().to_string());

    // B to A as well.
    let back = bus_b.publish(station, silence()).unwrap();
    for socket in [&mut ws_a, &mut ws_b] {
        let got = ws_next(socket, WAIT).await.unwrap();
        assert_eq!(got["id"], back.to_string());
    }
    let (_, sse_id, _) = sse_b.next_event(WAIT).await.unwrap();
    assert_eq!(sse_id, back.to_string());

    // Exactly once: no echo, no second copy.
    assert!(ws_next(&mut ws_a, QUIET).await.is_none(), "A saw a copy");
    assert!(ws_next(&mut ws_b, QUIET).await.is_none(), "B saw a copy");
    assert!(
        sse_b.next_event(QUIET).await.is_none(),
        "SSE on B saw a copy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_instances_over_nats() {
    let Some(url) = common::bus_server("nats") else {
        return;
    };
    events_cross_instances(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_instances_over_redis() {
    let Some(url) = common::bus_server("redis") else {
        return;
    };
    events_cross_instances(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_subjects_let_other_services_filter_by_station_and_type() {
    let Some(url) = common::bus_server("nats") else {
        return;
    };
    let config = test_config(&url);
    let bus = connected(&config).await;
    let station = Uuid::new_v4();
    let outsider = async_nats::connect(url.as_str()).await.unwrap();
    let subject = bus.subject(station, grimnir_server::events::EventType::NowPlaying);
    assert_eq!(subject, format!("{}.{station}.now_playing", config.prefix));
    let mut subscriber = outsider.subscribe(subject.clone()).await.unwrap();
    // A marker on the same connection comes back only once the server has the subscription
    // (the client's flush is no round trip).
    outsider
        .publish(subject.clone(), "marker".into())
        .await
        .unwrap();
    let marker = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&marker.payload[..], b"marker");
    let _ = bus.publish(station, buffer_health(0)).unwrap();
    let _ = bus
        .publish(Uuid::new_v4(), now_playing("other station"))
        .unwrap();
    let id = bus.publish(station, now_playing("this one")).unwrap();
    let message = tokio::time::timeout(WAIT, subscriber.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.subject.as_str(), subject);
    let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(envelope["id"], id.to_string());
    assert!(
        tokio::time::timeout(QUIET, subscriber.next())
            .await
            .is_err(),
        "the server filtered the others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_channels_let_other_services_filter_by_station() {
    let Some(url) = common::bus_server("redis") else {
        return;
    };
    let config = test_config(&url);
    let bus = connected(&config).await;
    let station = Uuid::new_v4();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .psubscribe(format!("{}.{station}.*", config.prefix))
        .await
        .unwrap();
    let _ = bus
        .publish(Uuid::new_v4(), now_playing("other station"))
        .unwrap();
    let id = bus.publish(station, silence()).unwrap();
    let mut messages = pubsub.on_message();
    let message = tokio::time::timeout(WAIT, messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message.get_channel_name(),
        format!("{}.{station}.silence_detected", config.prefix)
    );
    let envelope: Value = serde_json::from_slice(message.get_payload_bytes()).unwrap();
    assert_eq!(envelope["id"], id.to_string());
    assert!(tokio::time::timeout(QUIET, messages.next()).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// The bus down

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_bus_unreachable_publishing_fails_soft_and_at_once() {
    for url in [
        format!("nats://127.0.0.1:{}", closed_port()),
        format!("redis://127.0.0.1:{}", closed_port()),
    ] {
        let config = test_config(&url);
        let bus = tokio::time::timeout(WAIT, EventBus::connect(&config))
            .await
            .unwrap_or_else(|_| panic!("{url}: connect waited for the server"))
            .unwrap();
        assert!(
            !bus.wait_connected(Duration::from_millis(300)).await,
            "{url}"
        );
        let mut local = bus.subscribe();
        let started = Instant::now();
        let err = bus
            .publish(Uuid::new_v4(), now_playing("dead air?"))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url}: publish waited {:?}",
            started.elapsed()
        );
        let PublishError::Unavailable {
            bus: named,
            event_id,
        } = &err
        else {
            panic!("{url}: {err:?}");
        };
        assert_eq!(named, &url);
        // This instance's own subscribers still get it.
        let delivered = tokio::time::timeout(WAIT, local.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivered.envelope().id, *event_id);
        assert_eq!(err.reason(), "unavailable");
    }
}

/// A TCP proxy on loopback that can be cut and restored, standing in for a bus server that
/// goes away and comes back.
struct Proxy {
    port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let target = self.target;
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let connection = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                tasks.lock().unwrap().push(connection);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops listening and drops every connection.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    async fn restore(&self) {
        let listener = tokio::time::timeout(WAIT, async {
            loop {
                match TcpListener::bind(("127.0.0.1", self.port)).await {
                    Ok(listener) => return listener,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        })
        .await
        .expect("cannot listen on the proxy port again");
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Instance A reaches the bus through a proxy that is cut and restored: while cut, A's
/// publishes fail at once; once restored, A reconnects by itself and B gets A's events again.
async fn the_bus_comes_back(url: &str, default_port: u16) {
    let target = common::host_port(url, default_port).unwrap();
    let proxy = Proxy::start(target).await;
    let scheme = url.split_once("://").unwrap().0;
    let config_b = test_config(url);
    let config_a = EventBusConfig {
        url: format!("{scheme}://127.0.0.1:{}", proxy.port)
            .parse::<EventBusUrl>()
            .unwrap(),
        ..config_b.clone()
    };
    let bus_a = connected(&config_a).await;
    let bus_b = connected(&config_b).await;
    let a = start(EventStreams::new(bus_a.clone()), EventScope::All).await;
    let b = start(EventStreams::new(bus_b.clone()), EventScope::All).await;
    let station = Uuid::new_v4();
    let mut ws_a = ws(a.addr, &format!("?station={station}")).await;
    let mut ws_b = ws(b.addr, &format!("?station={station}")).await;
    let id = bus_a.publish(station, now_playing("before")).unwrap();
    assert_eq!(
        ws_next(&mut ws_b, WAIT).await.unwrap()["id"],
        id.to_string()
    );

    proxy.cut();
    let lost = tokio::time::timeout(WAIT, async {
        while bus_a.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(lost.is_ok(), "{url}: the loss was not noticed");
    let err = bus_a.publish(station, now_playing("during")).unwrap_err();
    assert!(matches!(err, PublishError::Unavailable { .. }), "{err:?}");

    proxy.restore().await;
    assert!(
        bus_a.wait_connected(Duration::from_secs(20)).await,
        "{url}: did not reconnect"
    );
    let id = bus_a.publish(station, now_playing("after")).unwrap();
    let got = ws_next(&mut ws_b, WAIT).await.unwrap();
    assert_eq!(
        got["id"],
        id.to_string(),
        "the event during the outage never left A"
    );
    // A is subscribed again: B's events reach it.
    let back = bus_b.publish(station, silence()).unwrap();
    assert_eq!(
        ws_next(&mut ws_b, WAIT).await.unwrap()["id"],
        back.to_string()
    );
    // A's own socket: what A published before, during and after the outage (its own events
    // never depend on the bus), then B's event, each once.
    let seen: Vec<Value> = [
        ws_next(&mut ws_a, WAIT).await,
        ws_next(&mut ws_a, WAIT).await,
        ws_next(&mut ws_a, WAIT).await,
        ws_next(&mut ws_a, WAIT).await,
    ]
    .into_iter()
    .map(|v| v.expect("A's socket missed an event"))
    .collect();
    let titles: Vec<&str> = seen[..3]
        .iter()
        .map(|v| v["data"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["before", "during", "after"]);
    assert_eq!(seen[3]["id"], back.to_string());
    assert!(ws_next(&mut ws_a, QUIET).await.is_none());
    assert!(ws_next(&mut ws_b, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_reconnects_after_an_outage() {
    let Some(url) = common::bus_server("nats") else {
        return;
    };
    the_bus_comes_back(&url, 4222).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reconnects_after_an_outage() {
    let Some(url) = common::bus_server("redis") else {
        return;
    };
    the_bus_comes_back(&url, 6379).await;
}
