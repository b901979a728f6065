//! Event fan-out benchmark: N WebSocket clients on one server instance, a publisher emitting
//! `now_playing` events at a steady rate, and the delivery latency each client sees (from the
//! envelope's `time`, stamped at publish, to the frame's arrival), as p50/p95/p99/max.
//!
//! `--role all` (the default) runs server, publisher and clients in this one process, so the
//! figures include the clients' own work. `--role server` serves and publishes only, once
//! `--clients` streams are open, and prints `listening on ADDR` first; `--role clients
//! --connect ADDR` runs the clients only. Run as two processes (pinned to a core each by
//! `benches/event-fanout.sh`), the server's figure no longer pays for the clients' decoding.
//! With `--bus nats://…` or `--bus redis://…` the publisher is a second instance with a bus
//! connection of its own, so every event crosses the bus. Run it through
//! `benches/event-fanout.sh`, which builds it optimized and raises the open-file limit first.
//!
//! ```text
//! cargo run --release -p grimnir-server --example event_fanout -- \
//!     [--role all|server|clients] [--connect ADDR] \
//!     [--clients 1000] [--events 200] [--rate 50] [--bus memory|nats://…|redis://…]
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::{Extension, Router};
use chrono::Utc;
use futures_util::StreamExt;
use grimnir_server::events::{
    Event, EventBus, EventBusConfig, EventBusUrl, EventScope, NowPlaying,
};
use grimnir_server::http::events::{self as streams, EventStreams};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

/// Which part of the benchmark this process runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Server, publisher and clients.
    All,
    /// Server and publisher.
    Server,
    /// Clients of a server in another process.
    Clients,
}

struct Options {
    role: Role,
    connect: Option<SocketAddr>,
    clients: usize,
    events: usize,
    rate: u32,
    bus: String,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        role: Role::All,
        connect: None,
        clients: 1000,
        events: 200,
        rate: 50,
        bus: "memory".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => options.clients = value.parse()?,
            "--events" => options.events = value.parse()?,
            "--rate" => options.rate = value.parse()?,
            "--bus" => options.bus = value,
            "--role" => {
                options.role = match value.as_str() {
                    "all" => Role::All,
                    "server" => Role::Server,
                    "clients" => Role::Clients,
                    other => bail!("--role is all, server or clients, not {other}"),
                }
            }
            "--connect" => options.connect = Some(value.parse()?),
            other => bail!("unknown option {other}"),
        }
    }
    if options.clients == 0 || options.events == 0 || options.rate == 0 {
        bail!("--clients, --events and --rate must be positive");
    }
    if (options.role == Role::Clients) != options.connect.is_some() {
        bail!("--connect ADDR goes with --role clients, and only with it");
    }
    Ok(options)
}

/// What one client saw: latencies in microseconds, and events it was told it missed.
struct ClientReport {
    latencies_us: Vec<u64>,
    missed: u64,
}

/// The value of the first `"field":"…"` string in `json`: cheaper than parsing the whole
/// event, so that the clients' own work weighs less in the figures.
fn string_field<'a>(json: &'a str, field: &str) -> Option<&'a str> {
    let key = format!("\"{field}\":\"");
    let start = json.find(&key)? + key.len();
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

async fn client(
    addr: SocketAddr,
    events: usize,
    deadline: tokio::time::Instant,
    connected: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<ClientReport> {
    // tungstenite zero-fills its whole read buffer on every read: keep it near an event's size.
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{addr}/api/v1/events"),
        Some(config),
        false,
    )
    .await
    .context("WebSocket connect (is `ulimit -n` high enough?)")?;
    // The server subscribed this client before it answered the handshake.
    let _ = connected.send(()).await;
    drop(connected);
    let mut report = ClientReport {
        latencies_us: Vec::with_capacity(events),
        missed: 0,
    };
    while report.latencies_us.len() + (report.missed as usize) < events {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, socket.next()).await else {
            break;
        };
        let Message::Text(text) = message? else {
            continue;
        };
        let arrived = Utc::now();
        if string_field(&text, "type") == Some("lagged") {
            let value: serde_json::Value = serde_json::from_str(&text)?;
            report.missed += value["missed"].as_u64().unwrap_or(0);
            continue;
        }
        let sent: chrono::DateTime<Utc> =
            string_field(&text, "time").context("no time")?.parse()?;
        let latency = (arrived - sent).num_microseconds().unwrap_or(i64::MAX);
        report
            .latencies_us
            .push(u64::try_from(latency).unwrap_or(0));
    }
    Ok(report)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// The server: the event stream routes on a loopback port, and the instance that publishes
/// (the same one on the in-process bus, a second one with NATS or Redis).
async fn serve(bus_url: &str) -> anyhow::Result<(SocketAddr, EventBus, EventBus)> {
    let config = EventBusConfig {
        url: bus_url.parse()?,
        buffer: 1024,
        ..EventBusConfig::default()
    };
    let bus = EventBus::connect(&config).await?;
    // With NATS or Redis the publisher is a second instance, so events cross the bus.
    let publisher = match config.url {
        EventBusUrl::Memory => bus.clone(),
        _ => EventBus::connect(&config).await?,
    };
    for b in [&bus, &publisher] {
        if !b.wait_connected(Duration::from_secs(10)).await {
            bail!("the event bus {} did not connect", config.url);
        }
    }
    let app = Router::new()
        .nest("/api/v1", streams::router(EventStreams::new(bus.clone())))
        .layer(Extension(EventScope::All));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, bus, publisher))
}

/// `events` `now_playing` events at `rate` a second; how many did not reach the bus.
async fn publish(publisher: &EventBus, events: usize, rate: u32) -> usize {
    let station = Uuid::new_v4();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut failures = 0;
    for n in 0..events {
        tick.tick().await;
        let event = Event::NowPlaying(NowPlaying {
            entry_id: None,
            media_id: Some(Uuid::new_v4()),
            title: format!("Benchmark item {n}"),
            artist: "Grimnir".to_owned(),
            album: None,
            started_at: Utc::now(),
            duration_ms: Some(180_000),
        });
        if publisher.publish(station, event).is_err() {
            failures += 1;
        }
    }
    failures
}

/// Connects the clients in waves (so the listen backlog never overflows) and waits until each
/// is connected, and so subscribed, or failed.
async fn connect_clients(
    addr: SocketAddr,
    options: &Options,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<ClientReport>>> {
    let connecting = Instant::now();
    let run_for = Duration::from_secs_f64(options.events as f64 / f64::from(options.rate));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60) + run_for;
    let mut clients = Vec::with_capacity(options.clients);
    let (connected_tx, mut connected) = tokio::sync::mpsc::channel(options.clients);
    for wave in (0..options.clients).collect::<Vec<_>>().chunks(100) {
        for _ in wave {
            clients.push(tokio::spawn(client(
                addr,
                options.events,
                deadline,
                connected_tx.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(connected_tx);
    let mut ready = 0;
    while tokio::time::timeout(Duration::from_secs(30), connected.recv())
        .await
        .ok()
        .flatten()
        .is_some()
    {
        ready += 1;
    }
    if ready < options.clients {
        eprintln!("only {ready} of {} clients connected", options.clients);
    }
    println!(
        "{} clients connected in {:.2} s",
        options.clients,
        connecting.elapsed().as_secs_f64(),
    );
    clients
}

/// Gathers the clients' reports and prints the latencies; fails when a client failed.
async fn report(
    clients: Vec<tokio::task::JoinHandle<anyhow::Result<ClientReport>>>,
    options: &Options,
) -> anyhow::Result<()> {
    let mut latencies = Vec::with_capacity(options.clients * options.events);
    let (mut missed, mut failed_clients, mut short_clients) = (0, 0, 0);
    for handle in clients {
        match handle.await? {
            Ok(report) => {
                if report.latencies_us.len() < options.events {
                    short_clients += 1;
                }
                missed += report.missed;
                latencies.extend(report.latencies_us);
            }
            Err(e) => {
                failed_clients += 1;
                if failed_clients == 1 {
                    eprintln!("a client failed: {e:#}");
                }
            }
        }
    }
    latencies.sort_unstable();
    let expected = options.clients * options.events;
    println!(
        "delivered {} of {} ({} missed by lagging clients, {} clients short, {} clients failed)",
        latencies.len(),
        expected,
        missed,
        short_clients,
        failed_clients,
    );
    println!(
        "latency ms: p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0)
    );
    if failed_clients > 0 {
        bail!("{failed_clients} clients failed");
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    match options.role {
        Role::All => {
            let (addr, _bus, publisher) = serve(&options.bus).await?;
            let clients = connect_clients(addr, &options).await;
            println!(
                "publishing {} events at {}/s on {}",
                options.events, options.rate, options.bus
            );
            let failures = publish(&publisher, options.events, options.rate).await;
            if failures > 0 {
                eprintln!("{failures} events did not reach the bus");
            }
            report(clients, &options).await
        }
        Role::Server => {
            let (addr, bus, publisher) = serve(&options.bus).await?;
            println!("listening on {addr}");
            // Publishing starts once every client's stream is open.
            let waiting = Instant::now();
            while bus.subscribers() < options.clients {
                if waiting.elapsed() > Duration::from_secs(120) {
                    bail!(
                        "only {} of {} clients subscribed in 120 s",
                        bus.subscribers(),
                        options.clients
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            println!(
                "publishing {} events at {}/s on {}",
                options.events, options.rate, options.bus
            );
            let failures = publish(&publisher, options.events, options.rate).await;
            if failures > 0 {
                eprintln!("{failures} events did not reach the bus");
            }
            // Until the clients have read the last events and gone.
            let draining = Instant::now();
            while bus.subscribers() > 0 && draining.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        }
        Role::Clients => {
            let addr = options.connect.context("--connect")?;
            let clients = connect_clients(addr, &options).await;
            report(clients, &options).await
        }
    }
}
