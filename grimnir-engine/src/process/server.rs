//! The gRPC server: a [`Station`] behind `proto/engine.proto`.
//!
//! The station runs on its own threads; the server only hands it commands and relays its
//! events. Nothing on air waits for a call or for a client: a controller that disconnects,
//! hangs or dies leaves the station playing what it was given, and when that runs out the
//! configured fallback.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use grimnir_dsp::DspGraph;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status};

use super::proto;
use crate::input::icecast::{ListenerEvent, LiveConnection, SourceListener};
use crate::mix::Curve;
use crate::output::{NowPlaying, OutputHealth, OutputState};
use crate::render::Item;
use crate::station::{Station, StationConfig, StationEvent, Telemetry};

/// Ids starting with this are the engine's own (its fallback); a controller may not use it.
const ENGINE_PREFIX: &str = "engine:";
/// The id the engine's fallback is reported under.
pub const FALLBACK_ID: &str = "engine:fallback";
/// The fallback does not start when an item is due within this long.
const FALLBACK_GRACE_NS: i64 = 1_000_000_000;
/// After a fallback failed to play, the wait before trying it again.
const FALLBACK_RETRY: Duration = Duration::from_secs(10);
/// How long the fallback takes to fade out under an item that starts.
const FALLBACK_FADE: f64 = 0.5;
/// How long a live source that connects while a route waits may buffer before it goes on
/// air (its jitter buffer's target depth comes first, so the fade-in is not spent on
/// silence).
const LIVE_READY: Duration = Duration::from_secs(2);
/// How often the live endpoint's thread looks for connections and events.
const LIVE_POLL: Duration = Duration::from_millis(50);
/// Updates a slow subscriber may fall behind by before it loses some.
const UPDATE_BACKLOG: usize = 256;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl Listen {
    /// Parses `unix:PATH` or `HOST:PORT` (an IP address and a port).
    pub fn parse(text: &str) -> Result<Listen, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|_| format!("`{text}` is neither unix:PATH nor IP:PORT"))
    }

    /// Whether only this machine can connect: a Unix socket or a loopback address.
    pub fn is_local(&self) -> bool {
        match self {
            Listen::Unix(_) => true,
            Listen::Tcp(addr) => addr.ip().is_loopback(),
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
            Listen::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// The engine's TLS identity and the authority its clients' certificates must come from
/// (PEM text).
#[derive(Clone)]
pub struct ServerTls {
    /// The engine's certificate chain.
    pub cert: String,
    /// Its private key.
    pub key: String,
    /// The certificate authority that signs controllers' client certificates.
    pub client_ca: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The station could not start.
    #[error(transparent)]
    Engine(#[from] crate::EngineError),
    /// The address is reachable from other machines and no token was given.
    #[error("{0} is not a loopback address or a Unix socket: a token is required")]
    Insecure(String),
    /// The address could not be bound.
    #[error("cannot listen on {listen}: {reason}")]
    Bind {
        /// The address.
        listen: String,
        /// Why.
        reason: String,
    },
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(String),
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Bound {
    listen: Listen,
    incoming: Incoming,
}

#[derive(Debug)]
enum Incoming {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

impl Bound {
    /// Binds `listen`. A stale socket file at a Unix path is replaced; one that a process
    /// still listens on is refused. Needs a tokio runtime.
    pub fn bind(listen: &Listen) -> Result<Bound, ServeError> {
        let fail = |e: std::io::Error| ServeError::Bind {
            listen: listen.to_string(),
            reason: e.to_string(),
        };
        let incoming = match listen {
            Listen::Unix(path) => {
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    // A socket someone still answers on is another engine's: never steal it.
                    if std::os::unix::net::UnixStream::connect(path).is_ok() {
                        return Err(ServeError::Bind {
                            listen: listen.to_string(),
                            reason: "another process is listening there".into(),
                        });
                    }
                    if meta.file_type().is_socket() {
                        std::fs::remove_file(path).map_err(fail)?;
                    }
                }
                Incoming::Unix(tokio::net::UnixListener::bind(path).map_err(fail)?)
            }
            Listen::Tcp(addr) => {
                let std_listener = std::net::TcpListener::bind(addr).map_err(fail)?;
                std_listener.set_nonblocking(true).map_err(fail)?;
                Incoming::Tcp(tokio::net::TcpListener::from_std(std_listener).map_err(fail)?)
            }
        };
        let listen = match &incoming {
            Incoming::Tcp(l) => Listen::Tcp(l.local_addr().map_err(fail)?),
            Incoming::Unix(_) => listen.clone(),
        };
        Ok(Bound { listen, incoming })
    }

    /// Where it listens (with the port the system chose for port 0).
    pub fn listen(&self) -> &Listen {
        &self.listen
    }
}

/// An item the engine holds for its controller.
#[derive(Debug, Clone)]
struct Held {
    number: u64,
    item: proto::Item,
    at_ns: i64,
    on_air: bool,
    emergency: bool,
}

#[derive(Debug, Default)]
struct Book {
    next: u64,
    /// What the controller's items are, by their name.
    held: HashMap<String, Held>,
    /// Names of the station's numbers, until their item is over (a stopped item's last
    /// events are still reported).
    names: HashMap<u64, String>,
    /// The engine's fallback, when it is on air (or opening).
    fallback: Option<u64>,
    fallback_failed: Option<Instant>,
    outputs: Vec<proto::OutputHealth>,
    live: LiveBook,
}

/// The live source endpoint's state.
#[derive(Debug, Default)]
struct LiveBook {
    /// The mounts offered; empty without an endpoint.
    mounts: Vec<String>,
    /// Source clients connected and not routed, by mount.
    standby: HashMap<String, LiveConnection>,
    /// Routes waiting for a source client, by mount.
    routes: HashMap<String, proto::RouteLiveRequest>,
    /// Mounts (or network input URLs) whose source is on air: (the live item's id, who).
    routed: HashMap<String, (String, String)>,
    /// SRT/RTP routes waiting for audio, by item id: (URL, cancelled).
    network: HashMap<String, (String, Arc<AtomicBool>)>,
}

impl Book {
    fn number(&mut self, name: &str) -> u64 {
        self.next += 1;
        self.names.insert(self.next, name.to_owned());
        self.next
    }

    fn release(&mut self, number: u64) -> Option<String> {
        let name = self.names.remove(&number)?;
        if self.held.get(&name).is_some_and(|h| h.number == number) {
            self.held.remove(&name);
        }
        if self.fallback == Some(number) {
            self.fallback = None;
        }
        Some(name)
    }
}

struct Core {
    station: Mutex<Option<Station>>,
    book: Mutex<Book>,
    updates: broadcast::Sender<proto::StationUpdate>,
    /// Set when the server shuts down: update streams end, so a graceful shutdown does not
    /// wait for subscribers.
    closing: tokio::sync::watch::Sender<bool>,
    rate: u32,
    channels: usize,
    fallback: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ns(seconds: f64) -> i64 {
    (seconds * 1e9).round() as i64
}

fn seconds(ns: i64) -> f64 {
    ns as f64 / 1e9
}

impl Core {
    /// Runs `f` on the station, or says it has stopped.
    fn with_station<T>(
        &self,
        f: impl FnOnce(&Station) -> Result<T, crate::EngineError>,
    ) -> Result<T, Status> {
        let station = lock(&self.station);
        let station = station
            .as_ref()
            .ok_or_else(|| Status::unavailable("the engine is stopping"))?;
        f(station).map_err(|e| Status::internal(e.to_string()))
    }

    fn clock_ns(&self) -> i64 {
        lock(&self.station).as_ref().map_or(0, |s| ns(s.clock()))
    }

    fn on_event(&self, event: StationEvent) {
        let mut book = lock(&self.book);
        let update = match event {
            StationEvent::Started { id, at, late } => {
                let Some(name) = book.names.get(&id).cloned() else {
                    return;
                };
                if let Some(held) = book.held.get_mut(&name) {
                    held.on_air = true;
                }
                // The fallback gives way to anything else.
                if let Some(fallback) = book.fallback
                    && fallback != id
                {
                    book.fallback = None;
                    if let Some(s) = lock(&self.station).as_ref() {
                        let _ = s.fade_out(fallback, at, FALLBACK_FADE);
                    }
                }
                proto::station_update::Update::Started(proto::ItemStarted {
                    id: name,
                    at_ns: ns(at),
                    late_ns: ns(late),
                })
            }
            StationEvent::Ended { id, at } => {
                let Some(name) = book.release(id) else { return };
                // A network input's route is over with its item (a mount's, when its
                // client disconnects).
                book.live
                    .routed
                    .retain(|key, (routed, _)| key.starts_with('/') || *routed != name);
                proto::station_update::Update::Ended(proto::ItemEnded {
                    id: name,
                    at_ns: ns(at),
                })
            }
            StationEvent::Failed { id, reason } => {
                if book.fallback == Some(id) {
                    book.fallback_failed = Some(Instant::now());
                }
                let Some(name) = book.release(id) else { return };
                proto::station_update::Update::Failed(proto::ItemFailed { id: name, reason })
            }
            StationEvent::Cancelled { id } => {
                book.release(id);
                return;
            }
            StationEvent::Silence { silent } => {
                proto::station_update::Update::Silence(proto::Silence { silent })
            }
            StationEvent::Output(health) => {
                proto::station_update::Update::Output(output_health(&health))
            }
            StationEvent::Warning(message) => {
                proto::station_update::Update::Warning(proto::Warning { message })
            }
            StationEvent::Webstream { id, status } => {
                let Some(name) = book.names.get(&id).cloned() else {
                    return;
                };
                proto::station_update::Update::Webstream(proto::WebstreamHealth {
                    id: name,
                    health: status.health.as_str().to_owned(),
                    url: u32::try_from(status.url).unwrap_or(u32::MAX),
                    switches: status.switches,
                    last_error: status.last_error.unwrap_or_default(),
                })
            }
            StationEvent::Telemetry(t) => {
                let report = self.telemetry(&book, &t);
                book.outputs.clone_from(&report.outputs);
                proto::station_update::Update::Telemetry(report)
            }
        };
        self.keep_air(&mut book);
        drop(book);
        // No subscriber is not an error: the air does not wait for anyone.
        let _ = self.updates.send(proto::StationUpdate {
            update: Some(update),
        });
    }

    fn telemetry(&self, book: &Book, t: &Telemetry) -> proto::Telemetry {
        let station_ns = ns(t.clock);
        let unix_ns = super::unix_now_ns();
        proto::Telemetry {
            station_ns,
            unix_ns,
            buffer_depth_ns: ns(t.buffer_depth as f64 / f64::from(self.rate)),
            underruns: t.underruns,
            dropouts: t.dropouts,
            loudness: t.loudness.map(|l| proto::Loudness {
                momentary_lufs: l.momentary,
                short_term_lufs: l.short_term,
                integrated_lufs: l.integrated,
                range_lu: l.range,
                true_peak_dbtp: l.true_peak,
            }),
            outputs: t.outputs.iter().map(output_health).collect(),
            on_air: t.on_air.as_ref().and_then(|a| {
                Some(proto::OnAir {
                    id: book.names.get(&a.id)?.clone(),
                    position_ns: ns(a.position),
                })
            }),
            cpu_percent: t.cpu_percent,
            emergency: t.emergency,
            fallback: book.fallback.is_some(),
            pending: book.held.values().filter(|h| !h.on_air).count() as u32,
        }
    }

    /// Starts the fallback when nothing is on air and nothing is due.
    fn keep_air(&self, book: &mut Book) {
        let Some(path) = &self.fallback else { return };
        if book.fallback.is_some()
            || book.held.values().any(|h| h.on_air || h.emergency)
            || book
                .fallback_failed
                .is_some_and(|t| t.elapsed() < FALLBACK_RETRY)
        {
            return;
        }
        let now = self.clock_ns();
        if book
            .held
            .values()
            .any(|h| h.at_ns <= now.saturating_add(FALLBACK_GRACE_NS))
        {
            return;
        }
        let number = book.number(FALLBACK_ID);
        let item = Item::new(path.clone(), seconds(now));
        let scheduled = lock(&self.station)
            .as_ref()
            .map(|s| s.schedule(number, item));
        if let Some(Ok(())) = scheduled {
            book.fallback = Some(number);
        } else {
            book.names.remove(&number);
        }
    }
}

impl Core {
    /// A source client passed its credential: it goes on air if a route waits for it, else
    /// it stands by.
    fn live_connected(&self, connection: LiveConnection) {
        let waiting = lock(&self.book).live.routes.contains_key(&connection.mount);
        if waiting {
            // Outside the lock: let its buffer fill so the fade-in is heard.
            connection.source.wait_ready(LIVE_READY);
        }
        let mut book = lock(&self.book);
        let update = proto::LiveConnected {
            mount: connection.mount.clone(),
            user: connection.user.clone(),
            name: connection.name.clone().unwrap_or_default(),
            peer: connection.peer.to_string(),
            routed_id: String::new(),
        };
        let update = match book.live.routes.remove(&connection.mount) {
            Some(route) => {
                let id = route.id.clone();
                match self.route(&mut book, connection, &route) {
                    Ok(()) => proto::LiveConnected {
                        routed_id: id,
                        ..update
                    },
                    Err(e) => {
                        drop(book);
                        self.publish(proto::station_update::Update::Warning(proto::Warning {
                            message: format!("live item `{id}`: {}", e.message()),
                        }));
                        return;
                    }
                }
            }
            None => {
                // A client that reconnects replaces its old, dead connection.
                book.live
                    .standby
                    .insert(connection.mount.clone(), connection);
                update
            }
        };
        drop(book);
        self.publish(proto::station_update::Update::LiveConnected(update));
    }

    /// Puts a connected source client on air as the route's item.
    fn route(
        &self,
        book: &mut Book,
        connection: LiveConnection,
        route: &proto::RouteLiveRequest,
    ) -> Result<(), Status> {
        let LiveConnection {
            mount,
            user,
            name,
            source,
            ..
        } = connection;
        self.route_source(book, Box::new(source), mount, user, name, route)
    }

    /// Puts an open live source on air as the route's item; `key` is its mount or URL.
    fn route_source(
        &self,
        book: &mut Book,
        source: Box<dyn crate::mix::Source>,
        key: String,
        user: String,
        name: Option<String>,
        route: &proto::RouteLiveRequest,
    ) -> Result<(), Status> {
        let now = self.clock_ns();
        let fade = seconds(route.fade_in_ns);
        let meta = if route.title.is_empty() {
            name.map(|title| NowPlaying {
                artist: None,
                title,
            })
        } else {
            Some(NowPlaying {
                artist: (!route.artist.is_empty()).then(|| route.artist.clone()),
                title: route.title.clone(),
            })
        };
        let number = book.number(&route.id);
        let played = self.with_station(|s| {
            s.play_live(number, source, meta, fade)?;
            if route.take_air {
                let others = book
                    .held
                    .values()
                    .filter(|h| h.on_air && !h.emergency)
                    .map(|h| h.number)
                    .chain(book.fallback);
                for other in others {
                    s.fade_out(other, seconds(now), fade.max(0.005))?;
                }
            }
            Ok(())
        });
        if let Err(e) = played {
            book.names.remove(&number);
            return Err(e);
        }
        book.held.insert(
            route.id.clone(),
            Held {
                number,
                item: proto::Item {
                    id: route.id.clone(),
                    media: if key.starts_with('/') {
                        format!("live:{key}")
                    } else {
                        key.clone()
                    },
                    fade_in_ns: route.fade_in_ns,
                    title: route.title.clone(),
                    artist: route.artist.clone(),
                    ..proto::Item::default()
                },
                at_ns: now,
                on_air: false,
                emergency: false,
            },
        );
        book.live.routed.insert(key, (route.id.clone(), user));
        Ok(())
    }

    /// Routes an SRT or RTP input: it is opened now, and goes on air once audio arrives
    /// (its buffer is full), unless the route is stopped first.
    fn route_network(
        self: &Arc<Self>,
        book: &mut Book,
        route: proto::RouteLiveRequest,
    ) -> Result<(), Status> {
        let input = crate::input::network::NetworkInput::open(
            &route.mount,
            crate::input::LiveConfig::new(self.rate, self.channels),
        )
        .map_err(|e| match e {
            crate::EngineError::Media { .. } => Status::invalid_argument(e.to_string()),
            other => Status::internal(other.to_string()),
        })?;
        let cancel = Arc::new(AtomicBool::new(false));
        let id = route.id.clone();
        book.live
            .network
            .insert(route.id.clone(), (route.mount.clone(), Arc::clone(&cancel)));
        let core = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("engine-network-input".into())
            .spawn(move || {
                while !cancel.load(Ordering::Relaxed) && !input.is_ready() {
                    if let Some(e) = input.error() {
                        lock(&core.book).live.network.remove(&route.id);
                        core.publish(proto::station_update::Update::Failed(proto::ItemFailed {
                            id: route.id.clone(),
                            reason: format!("{}: {e}", route.mount),
                        }));
                        return;
                    }
                    std::thread::sleep(LIVE_POLL);
                }
                let mut book = lock(&core.book);
                if cancel.load(Ordering::Relaxed) || book.live.network.remove(&route.id).is_none() {
                    return;
                }
                let key = route.mount.clone();
                if let Err(e) =
                    core.route_source(&mut book, Box::new(input), key, String::new(), None, &route)
                {
                    drop(book);
                    core.publish(proto::station_update::Update::Failed(proto::ItemFailed {
                        id: route.id.clone(),
                        reason: e.message().to_owned(),
                    }));
                }
            });
        if let Err(e) = spawned {
            book.live.network.remove(&id);
            return Err(Status::internal(format!(
                "cannot start an input thread: {e}"
            )));
        }
        Ok(())
    }

    fn listener_event(&self, event: ListenerEvent) {
        let update = match event {
            ListenerEvent::Refused { peer, reason } => {
                proto::station_update::Update::LiveRefused(proto::LiveRefused {
                    peer: peer.to_string(),
                    reason,
                })
            }
            ListenerEvent::Ended { mount, reason, .. } => {
                let mut book = lock(&self.book);
                book.live.routed.remove(&mount);
                book.live.standby.remove(&mount);
                drop(book);
                proto::station_update::Update::LiveDisconnected(proto::LiveDisconnected {
                    mount,
                    reason: reason.unwrap_or_default(),
                })
            }
        };
        self.publish(update);
    }

    fn publish(&self, update: proto::station_update::Update) {
        let _ = self.updates.send(proto::StationUpdate {
            update: Some(update),
        });
    }
}

/// The live endpoint's thread: connections in, events out, until `stop`.
fn live_loop(core: &Core, listener: &SourceListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if let Some(connection) = listener.accept(LIVE_POLL) {
            core.live_connected(connection);
        }
        for event in listener.events() {
            core.listener_event(event);
        }
    }
}

fn output_health(h: &OutputHealth) -> proto::OutputHealth {
    proto::OutputHealth {
        name: h.name.clone(),
        state: match h.state {
            OutputState::Up => proto::OutputState::Up,
            OutputState::Degraded => proto::OutputState::Degraded,
            _ => proto::OutputState::Down,
        } as i32,
        bytes: h.bytes,
        reconnects: h.reconnects,
        dropped_packets: h.dropped,
        last_error: h.last_error.clone().unwrap_or_default(),
        warnings: h.warnings,
        last_warning: h.last_warning.clone().unwrap_or_default(),
    }
}

/// Checks a controller's item id.
fn check_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("item: the id is empty"));
    }
    if id.len() > 256 {
        return Err(Status::invalid_argument(
            "item: the id is longer than 256 bytes",
        ));
    }
    if id.starts_with(ENGINE_PREFIX) {
        return Err(Status::invalid_argument(format!(
            "item `{id}`: ids starting with `{ENGINE_PREFIX}` are the engine's"
        )));
    }
    Ok(())
}

/// An item as the controller sent it, checked and made playable.
fn playable(item: Option<&proto::Item>, at_ns: i64) -> Result<(proto::Item, Item), Status> {
    let item = item.ok_or_else(|| Status::invalid_argument("item: missing"))?;
    let id = &item.id;
    let bad = |what: String| Status::invalid_argument(format!("item `{id}`: {what}"));
    check_id(id)?;
    let web = item.media.starts_with("http://") || item.media.starts_with("https://");
    let path = if web {
        PathBuf::new()
    } else if item.media.starts_with("file://") {
        gst::glib::filename_from_uri(&item.media)
            .map(|(path, _)| path)
            .map_err(|e| bad(format!("media `{}`: {e}", item.media)))?
    } else if item.media.contains("://") {
        return Err(bad(format!(
            "media `{}`: play a local file, a file:// URI or an http(s):// webstream",
            item.media
        )));
    } else if item.media.is_empty() {
        return Err(bad("media: empty".into()));
    } else {
        PathBuf::from(&item.media)
    };
    if web {
        for url in std::iter::once(&item.media).chain(&item.fallback_urls) {
            crate::input::webstream::check_url(url).map_err(bad)?;
        }
    } else if !item.fallback_urls.is_empty() {
        return Err(bad(
            "fallback_urls are for webstreams (http:// or https:// media)".into(),
        ));
    } else if !path.is_file() {
        return Err(Status::not_found(format!(
            "item `{id}`: media {}: no such file",
            path.display()
        )));
    }
    if item.cue_in_ns < 0 || item.fade_in_ns < 0 || item.fade_out_ns < 0 {
        return Err(bad(
            "cue_in_ns, fade_in_ns and fade_out_ns cannot be negative".into(),
        ));
    }
    if let Some(out) = item.cue_out_ns
        && out <= item.cue_in_ns
    {
        return Err(bad(format!(
            "cue_out_ns {out} is not after cue_in_ns {}",
            item.cue_in_ns
        )));
    }
    let curve = match proto::Curve::try_from(item.curve) {
        Ok(proto::Curve::EqualPower) => Curve::EqualPower,
        Ok(proto::Curve::Linear) => Curve::Linear,
        Ok(proto::Curve::SCurve) => Curve::SCurve,
        Err(_) => return Err(bad(format!("curve {} is unknown", item.curve))),
    };
    if item.lufs.is_some_and(|l| !l.is_finite()) {
        return Err(bad("lufs is not a number".into()));
    }
    let mut playable = if web {
        let urls = std::iter::once(item.media.clone())
            .chain(item.fallback_urls.iter().cloned())
            .collect();
        Item::webstream(urls, seconds(at_ns))
    } else {
        Item::new(path, seconds(at_ns))
    };
    playable.cue_in = seconds(item.cue_in_ns);
    playable.cue_out = item.cue_out_ns.map(seconds);
    playable.fade_in = seconds(item.fade_in_ns);
    playable.fade_out = seconds(item.fade_out_ns);
    playable.curve = curve;
    playable.lufs = item.lufs;
    playable.meta = (!item.title.is_empty()).then(|| NowPlaying {
        artist: (!item.artist.is_empty()).then(|| item.artist.clone()),
        title: item.title.clone(),
    });
    Ok((item.clone(), playable))
}

fn in_use(id: &str) -> Status {
    Status::already_exists(format!(
        "item `{id}` is already held: stop it or use another id"
    ))
}

fn unknown(id: &str) -> Status {
    Status::not_found(format!("no item `{id}`: it was never given, or it is over"))
}

/// A station on air behind the gRPC API.
pub struct EngineServer {
    core: Arc<Core>,
    events: Option<std::thread::JoinHandle<()>>,
    live: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl std::fmt::Debug for EngineServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineServer")
            .field("rate", &self.core.rate)
            .field("fallback", &self.core.fallback)
            .finish_non_exhaustive()
    }
}

impl EngineServer {
    /// Puts the station on air (the fallback, if given, until items come).
    pub fn start(config: StationConfig, fallback: Option<PathBuf>) -> Result<Self, ServeError> {
        let rate = config.rate;
        let channels = config.channels;
        let (station, events) = Station::start(config)?;
        let (updates, _) = broadcast::channel(UPDATE_BACKLOG);
        let core = Arc::new(Core {
            station: Mutex::new(Some(station)),
            book: Mutex::new(Book::default()),
            updates,
            closing: tokio::sync::watch::Sender::new(false),
            rate,
            channels,
            fallback,
        });
        {
            let mut book = lock(&core.book);
            core.keep_air(&mut book);
        }
        let relay = Arc::clone(&core);
        let events = std::thread::Builder::new()
            .name("engine-events".into())
            .spawn(move || relay_events(&relay, &events))
            .map_err(|e| {
                crate::EngineError::Pipeline(format!("cannot start the event thread: {e}"))
            })?;
        Ok(EngineServer {
            core,
            events: Some(events),
            live: None,
        })
    }

    /// Takes DJs' live sources from `listener` (an Icecast source endpoint offering
    /// `mounts`): each connection that passes the listener's credential check stands by
    /// until RouteLive puts it on air (or goes on air at once when a route waits for it).
    /// Replaces an endpoint attached before.
    pub fn attach_live(
        &mut self,
        listener: SourceListener,
        mounts: Vec<String>,
    ) -> Result<(), ServeError> {
        self.detach_live();
        lock(&self.core.book).live.mounts = mounts;
        let stop = Arc::new(AtomicBool::new(false));
        let core = Arc::clone(&self.core);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("engine-live".into())
            .spawn(move || live_loop(&core, &listener, &flag))
            .map_err(|e| {
                crate::EngineError::Pipeline(format!("cannot start the live thread: {e}"))
            })?;
        self.live = Some((stop, thread));
        Ok(())
    }

    fn detach_live(&mut self) {
        if let Some((stop, thread)) = self.live.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
        }
        let mut book = lock(&self.core.book);
        book.live.standby.clear();
        book.live.routes.clear();
    }

    /// The gRPC service, for serving on a listener of your own. With a token, every call
    /// must carry `authorization: Bearer <token>`.
    pub fn service(
        &self,
        token: Option<&str>,
    ) -> tonic::service::interceptor::InterceptedService<
        proto::engine_server::EngineServer<Service>,
        Auth,
    > {
        proto::engine_server::EngineServer::with_interceptor(
            Service {
                core: Arc::clone(&self.core),
            },
            Auth {
                token: token.map(|t| Arc::from(t.as_bytes())),
            },
        )
    }

    /// Serves the API on `bound` until `shutdown` completes. Refuses a listener reachable
    /// from other machines without a token.
    pub async fn serve(
        &self,
        bound: Bound,
        token: Option<&str>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.serve_with(bound, token, None, shutdown).await
    }

    /// [`EngineServer::serve`], with mutual TLS on a TCP listener: the engine presents its
    /// certificate and accepts only clients whose certificate `tls.client_ca` signed.
    pub async fn serve_with(
        &self,
        bound: Bound,
        token: Option<&str>,
        tls: Option<&ServerTls>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        if token.is_none() && !bound.listen.is_local() {
            return Err(ServeError::Insecure(bound.listen.to_string()));
        }
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            if matches!(bound.incoming, Incoming::Unix(_)) {
                return Err(ServeError::Transport(
                    "TLS is for TCP listeners; a Unix socket is already local".into(),
                ));
            }
            let config = tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(&tls.cert, &tls.key))
                .client_ca_root(tonic::transport::Certificate::from_pem(&tls.client_ca));
            builder = builder
                .tls_config(config)
                .map_err(|e| ServeError::Transport(format!("TLS: {e}")))?;
        }
        let router = builder
            .http2_keepalive_interval(Some(Duration::from_secs(1)))
            .http2_keepalive_timeout(Some(Duration::from_secs(1)))
            .add_service(self.service(token));
        let closing = self.core.closing.clone();
        let shutdown = async move {
            shutdown.await;
            closing.send_replace(true);
        };
        let served = match bound.incoming {
            Incoming::Unix(l) => {
                router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(l), shutdown)
                    .await
            }
            Incoming::Tcp(l) => {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(l), shutdown)
                    .await
            }
        };
        served.map_err(|e| ServeError::Transport(e.to_string()))
    }

    /// Takes the station off air: what is mixed is encoded and written, the outputs close.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.detach_live();
        for (_, (_, cancel)) in lock(&self.core.book).live.network.drain() {
            cancel.store(true, Ordering::Relaxed);
        }
        let station = lock(&self.core.station).take();
        if let Some(station) = station {
            station.stop();
        }
        if let Some(events) = self.events.take() {
            let _ = events.join();
        }
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn relay_events(core: &Core, events: &Receiver<StationEvent>) {
    for event in events {
        core.on_event(event);
    }
}

/// Checks the shared token on every call.
#[derive(Debug, Clone)]
pub struct Auth {
    token: Option<Arc<[u8]>>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(given) if bool::from(given.as_bytes().ct_eq(token)) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the token is wrong")),
            None => Err(Status::unauthenticated(
                "this engine needs `authorization: Bearer <token>`",
            )),
        }
    }
}

/// The API's implementation (see [`EngineServer::service`]).
#[derive(Clone)]
pub struct Service {
    core: Arc<Core>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

type Updates = Pin<Box<dyn Stream<Item = Result<proto::StationUpdate, Status>> + Send>>;

impl Service {
    /// Schedules a checked item under a new number.
    fn schedule(
        &self,
        book: &mut Book,
        item: proto::Item,
        playable: Item,
        at_ns: i64,
    ) -> Result<(), Status> {
        let number = book.number(&item.id);
        let name = item.id.clone();
        if let Err(e) = self.core.with_station(|s| s.schedule(number, playable)) {
            book.names.remove(&number);
            return Err(e);
        }
        book.held.insert(
            name,
            Held {
                number,
                item,
                at_ns,
                on_air: false,
                emergency: false,
            },
        );
        Ok(())
    }
}

#[tonic::async_trait]
impl proto::engine_server::Engine for Service {
    async fn load_graph(
        &self,
        request: Request<proto::LoadGraphRequest>,
    ) -> Result<Response<proto::LoadGraphReply>, Status> {
        let text = request.into_inner().graph;
        let graph = if text.trim_start().starts_with('{') {
            DspGraph::from_json(&text)
        } else {
            DspGraph::from_yaml(&text)
        }
        .map_err(|e| Status::invalid_argument(format!("graph: {e}")))?;
        self.core.with_station(|s| s.set_graph(graph))?;
        Ok(Response::new(proto::LoadGraphReply {}))
    }

    async fn play(
        &self,
        request: Request<proto::PlayRequest>,
    ) -> Result<Response<proto::PlayReply>, Status> {
        let request = request.into_inner();
        let at_ns = request.at_ns.unwrap_or_else(|| self.core.clock_ns());
        let (item, playable) = playable(request.item.as_ref(), at_ns)?;
        let mut book = lock(&self.core.book);
        if book.held.contains_key(&item.id) {
            return Err(in_use(&item.id));
        }
        self.schedule(&mut book, item, playable, at_ns)?;
        Ok(Response::new(proto::PlayReply { at_ns }))
    }

    async fn queue(
        &self,
        request: Request<proto::QueueRequest>,
    ) -> Result<Response<proto::QueueReply>, Status> {
        let request = request.into_inner();
        // All or nothing: every item is checked before any is queued.
        let mut checked = Vec::with_capacity(request.items.len());
        let mut ids = std::collections::HashSet::new();
        for queued in &request.items {
            let (item, playable) = playable(queued.item.as_ref(), queued.at_ns)?;
            if !ids.insert(item.id.clone()) {
                return Err(Status::invalid_argument(format!(
                    "item `{}` is in the request twice",
                    item.id
                )));
            }
            checked.push((item, playable, queued.at_ns));
        }
        let mut book = lock(&self.core.book);
        if request.replace {
            let waiting: Vec<(String, u64)> = book
                .held
                .iter()
                .filter(|(_, h)| !h.on_air && !h.emergency)
                .map(|(name, h)| (name.clone(), h.number))
                .collect();
            for (name, number) in waiting {
                self.core.with_station(|s| s.stop_item(number))?;
                book.held.remove(&name);
            }
        }
        if let Some((item, ..)) = checked.iter().find(|(i, ..)| book.held.contains_key(&i.id)) {
            return Err(in_use(&item.id));
        }
        for (item, playable, at_ns) in checked {
            self.schedule(&mut book, item, playable, at_ns)?;
        }
        let pending = book.held.values().filter(|h| !h.on_air).count() as u32;
        Ok(Response::new(proto::QueueReply { pending }))
    }

    async fn stop(
        &self,
        request: Request<proto::StopRequest>,
    ) -> Result<Response<proto::StopReply>, Status> {
        let mut book = lock(&self.core.book);
        match request.into_inner().target {
            Some(proto::stop_request::Target::Id(id)) => {
                if let Some(mount) = book
                    .live
                    .routes
                    .iter()
                    .find(|(_, r)| r.id == id)
                    .map(|(m, _)| m.clone())
                {
                    book.live.routes.remove(&mount);
                    return Ok(Response::new(proto::StopReply {}));
                }
                if let Some((_, cancel)) = book.live.network.remove(&id) {
                    cancel.store(true, Ordering::Relaxed);
                    return Ok(Response::new(proto::StopReply {}));
                }
                let held = book.held.remove(&id).ok_or_else(|| unknown(&id))?;
                self.core.with_station(|s| s.stop_item(held.number))?;
            }
            Some(proto::stop_request::Target::All(true)) => {
                book.held.clear();
                book.live.routes.clear();
                for (_, (_, cancel)) in book.live.network.drain() {
                    cancel.store(true, Ordering::Relaxed);
                }
                book.fallback = None;
                self.core.with_station(Station::stop_all)?;
            }
            _ => {
                return Err(Status::invalid_argument(
                    "target: give an item id or all = true",
                ));
            }
        }
        Ok(Response::new(proto::StopReply {}))
    }

    async fn fade(
        &self,
        request: Request<proto::FadeRequest>,
    ) -> Result<Response<proto::FadeReply>, Status> {
        let request = request.into_inner();
        if request.length_ns < 0 {
            return Err(Status::invalid_argument("length_ns cannot be negative"));
        }
        let book = lock(&self.core.book);
        let held = book
            .held
            .get(&request.id)
            .ok_or_else(|| unknown(&request.id))?;
        let at = request.at_ns.map_or(0.0, seconds);
        self.core
            .with_station(|s| s.fade_out(held.number, at, seconds(request.length_ns)))?;
        Ok(Response::new(proto::FadeReply {}))
    }

    async fn insert_emergency(
        &self,
        request: Request<proto::InsertEmergencyRequest>,
    ) -> Result<Response<proto::InsertEmergencyReply>, Status> {
        let received_ns = self.core.clock_ns();
        let request = request.into_inner();
        let (item, playable) = playable(request.item.as_ref(), received_ns)?;
        let mut book = lock(&self.core.book);
        if book.held.contains_key(&item.id) {
            return Err(in_use(&item.id));
        }
        let number = book.number(&item.id);
        if let Err(e) = self
            .core
            .with_station(|s| s.insert_emergency(number, playable))
        {
            book.names.remove(&number);
            return Err(e);
        }
        // What was on air is cut: the controller decides what resumes.
        book.held.retain(|_, h| !h.on_air);
        book.fallback = None;
        book.held.insert(
            item.id.clone(),
            Held {
                number,
                item,
                at_ns: received_ns,
                on_air: false,
                emergency: true,
            },
        );
        Ok(Response::new(proto::InsertEmergencyReply { received_ns }))
    }

    async fn route_live(
        &self,
        request: Request<proto::RouteLiveRequest>,
    ) -> Result<Response<proto::RouteLiveReply>, Status> {
        let route = request.into_inner();
        check_id(&route.id)?;
        if route.fade_in_ns < 0 {
            return Err(Status::invalid_argument(format!(
                "live item `{}`: fade_in_ns cannot be negative",
                route.id
            )));
        }
        let mut book = lock(&self.core.book);
        if book.held.contains_key(&route.id)
            || book.live.routes.values().any(|r| r.id == route.id)
            || book.live.network.contains_key(&route.id)
        {
            return Err(in_use(&route.id));
        }
        if route.mount.starts_with("srt://") || route.mount.starts_with("rtp://") {
            let busy = book
                .live
                .network
                .iter()
                .find(|(_, (url, _))| *url == route.mount)
                .map(|(id, _)| id.clone())
                .or_else(|| book.live.routed.get(&route.mount).map(|(id, _)| id.clone()));
            if let Some(other) = busy {
                return Err(Status::already_exists(format!(
                    "{} is routed as live item `{other}`: stop it first",
                    route.mount
                )));
            }
            self.core.route_network(&mut book, route)?;
            return Ok(Response::new(proto::RouteLiveReply { connected: false }));
        }
        if book.live.mounts.is_empty() {
            return Err(Status::failed_precondition(
                "this engine has no live source endpoint (the `live` section of its config)",
            ));
        }
        if !book.live.mounts.contains(&route.mount) {
            return Err(Status::invalid_argument(format!(
                "mount `{}` is not offered; the endpoint offers {}",
                route.mount,
                book.live.mounts.join(", ")
            )));
        }
        if let Some(other) = book.live.routes.get(&route.mount) {
            return Err(Status::already_exists(format!(
                "live item `{}` already waits for mount {}: stop it first",
                other.id, route.mount
            )));
        }
        if let Some((other, _)) = book.live.routed.get(&route.mount) {
            return Err(Status::already_exists(format!(
                "mount {} is on air as live item `{other}`: stop it first",
                route.mount
            )));
        }
        let connected = match book.live.standby.remove(&route.mount) {
            Some(connection) => {
                self.core.route(&mut book, connection, &route)?;
                true
            }
            None => {
                book.live.routes.insert(route.mount.clone(), route);
                false
            }
        };
        Ok(Response::new(proto::RouteLiveReply { connected }))
    }

    type StreamTelemetryStream = Updates;

    async fn stream_telemetry(
        &self,
        _request: Request<proto::StreamTelemetryRequest>,
    ) -> Result<Response<Updates>, Status> {
        let mut updates = self.core.updates.subscribe();
        let mut closing = self.core.closing.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let update = tokio::select! {
                    _ = closing.wait_for(|c| *c) => break,
                    u = updates.recv() => u,
                };
                let update = match update {
                    Ok(update) => update,
                    Err(broadcast::error::RecvError::Lagged(n)) => proto::StationUpdate {
                        update: Some(proto::station_update::Update::Warning(proto::Warning {
                            message: format!("{n} updates were lost: this client reads too slowly"),
                        })),
                    },
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if tx.send(Ok(update)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn health(
        &self,
        _request: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthReply>, Status> {
        let station_ns = self.core.clock_ns();
        let unix_ns = super::unix_now_ns();
        let book = lock(&self.core.book);
        let mut items: Vec<proto::HeldItem> = book
            .held
            .values()
            .map(|h| proto::HeldItem {
                item: Some(h.item.clone()),
                at_ns: h.at_ns,
                state: if h.on_air {
                    proto::ItemState::OnAir
                } else {
                    proto::ItemState::Queued
                } as i32,
                emergency: h.emergency,
            })
            .collect();
        items.sort_by_key(|h| h.at_ns);
        let live = &book.live;
        let mut inputs: Vec<proto::LiveInput> = live
            .mounts
            .iter()
            .filter_map(|mount| {
                let standby = live.standby.get(mount);
                let routed = live.routed.get(mount);
                let waiting = live.routes.get(mount);
                if standby.is_none() && routed.is_none() && waiting.is_none() {
                    return None;
                }
                Some(proto::LiveInput {
                    mount: mount.clone(),
                    connected: standby.is_some() || routed.is_some(),
                    user: standby
                        .map(|c| c.user.clone())
                        .or_else(|| routed.map(|(_, u)| u.clone()))
                        .unwrap_or_default(),
                    routed_id: routed
                        .map(|(id, _)| id.clone())
                        .or_else(|| waiting.map(|r| r.id.clone()))
                        .unwrap_or_default(),
                })
            })
            .collect();
        for (id, (url, _)) in &live.network {
            inputs.push(proto::LiveInput {
                mount: url.clone(),
                connected: false,
                user: String::new(),
                routed_id: id.clone(),
            });
        }
        for (key, (id, user)) in &live.routed {
            if !key.starts_with('/') {
                inputs.push(proto::LiveInput {
                    mount: key.clone(),
                    connected: true,
                    user: user.clone(),
                    routed_id: id.clone(),
                });
            }
        }
        inputs.sort_by(|a, b| a.mount.cmp(&b.mount));
        Ok(Response::new(proto::HealthReply {
            station_ns,
            unix_ns,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            rate: self.core.rate,
            channels: self.core.channels as u32,
            emergency: book.held.values().any(|h| h.emergency),
            fallback: book.fallback.is_some(),
            items,
            outputs: book.outputs.clone(),
            live: inputs,
            pid: std::process::id(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::Listen;

    #[test]
    fn listen_addresses_are_parsed_and_judged() {
        assert!(Listen::parse("unix:/tmp/e.sock").is_ok_and(|l| l.is_local()));
        assert!(Listen::parse("127.0.0.1:7700").is_ok_and(|l| l.is_local()));
        assert!(Listen::parse("[::1]:7700").is_ok_and(|l| l.is_local()));
        assert!(Listen::parse("0.0.0.0:7700").is_ok_and(|l| !l.is_local()));
        assert!(Listen::parse("localhost:7700").is_err());
        assert!(Listen::parse("unix:").is_err());
    }
}
