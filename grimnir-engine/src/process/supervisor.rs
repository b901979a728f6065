//! [`Supervisor`]: runs an engine process, notices its death, starts a new one and puts back
//! what was on air and queued.
//!
//! The controller sends its calls through the supervisor, which keeps a ledger of what the
//! engine holds in wall-clock time (a new engine has a new station clock). When the engine
//! dies (its process exits, or its telemetry stream breaks or stays silent for
//! [`SupervisorConfig::silence`]) the supervisor reports [`SupervisorEvent::Died`], starts a
//! new process, and replays the ledger: the DSP graph, the item that was on air from the
//! position it has reached by then (its cue-in moved on by the time elapsed since it
//! started), any emergency the same way, and the queue at its times. A call that fails
//! because the engine is gone is kept in the ledger and so reaches the new engine.
//!
//! **A controller restart does not stop the air.** The engine runs in a process group of
//! its own (a Ctrl-C meant for the controller does not reach it). [`Supervisor::detach`]
//! leaves it running; a new supervisor with [`SupervisorConfig::adopt`] (the default) finds
//! it answering on its address and adopts it instead of starting another, rebuilding its
//! ledger from the engine's `Health` (what it holds, on air and queued, and its live
//! routes). An adopted engine is watched by its telemetry stream alone, and killed by its
//! process id when it hangs. Dropping a supervisor without detaching kills its engine.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Mutex, broadcast};

use super::client::{ClientError, EngineClient, Update};
use super::server::Listen;
use super::{ClockMap, proto, unix_now_ns};

/// How far ahead of now a resumed item is scheduled: time to open its file.
const RESUME_MARGIN_NS: i64 = 300_000_000;
/// The fade-in of an item resumed part way through, so it does not start with a click.
const RESUME_FADE_NS: i64 = 50_000_000;

/// How to run the engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupervisorConfig {
    /// The `grimnir-engine` binary.
    pub program: PathBuf,
    /// Its arguments, without `--listen` (the supervisor adds it).
    pub args: Vec<OsString>,
    /// Where the engine listens: a Unix socket path per station is best.
    pub listen: Listen,
    /// The shared token, if the engine has one.
    pub token: Option<String>,
    /// Mutual TLS, if the engine listens on TCP with TLS.
    pub tls: Option<super::ClientTls>,
    /// A telemetry stream silent this long means a hung engine (1.5 s; telemetry comes
    /// every second).
    pub silence: Duration,
    /// How long a new engine may take to say it listens (10 s).
    pub start_timeout: Duration,
    /// Adopt an engine already answering on [`SupervisorConfig::listen`] (one a previous
    /// supervisor detached from) rather than start another (true).
    pub adopt: bool,
}

impl SupervisorConfig {
    /// Runs `program` with `args`, listening on `listen`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, listen: Listen) -> Self {
        SupervisorConfig {
            program: program.into(),
            args,
            listen,
            token: None,
            tls: None,
            silence: Duration::from_millis(1500),
            start_timeout: Duration::from_secs(10),
            adopt: true,
        }
    }
}

/// What the supervisor saw.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// An update from the engine.
    Update(Update),
    /// The engine died.
    Died {
        /// How it was noticed.
        reason: String,
    },
    /// A new engine is up and the ledger was replayed.
    Restarted {
        /// From noticing the death to the replay done.
        took: Duration,
        /// Its process id.
        pid: u32,
    },
    /// Starting a new engine failed; the supervisor tries again.
    RestartFailed {
        /// Why.
        reason: String,
    },
}

/// Why the supervisor could not start or act.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The engine process could not be started.
    #[error("cannot start the engine: {0}")]
    Spawn(String),
    /// The engine refused a call or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// An item the engine holds, in wall-clock time.
#[derive(Debug, Clone)]
struct Entry {
    item: proto::Item,
    at_unix_ns: i64,
    /// When it started sounding (the first engine's start, kept across restarts).
    started_unix_ns: Option<i64>,
    emergency: bool,
    fade: Option<(i64, Duration)>,
}

#[derive(Debug, Default)]
struct Ledger {
    graph: Option<String>,
    entries: HashMap<String, Entry>,
    /// Live routes by item id, until their item ends or is stopped: a crash hangs up on the
    /// DJ, whose client reconnects to the new engine and goes back on air.
    routes: HashMap<String, (String, Duration, bool)>,
}

#[derive(Debug)]
struct Live {
    client: EngineClient,
    clock: ClockMap,
    pid: u32,
    ledger: Ledger,
}

/// An engine process kept alive. Dropping it kills the engine.
#[derive(Debug)]
pub struct Supervisor {
    live: Arc<Mutex<Live>>,
    events: broadcast::Sender<SupervisorEvent>,
    watch: tokio::task::JoinHandle<()>,
    /// The engine's process id, for killing it on drop.
    pid: Arc<AtomicU32>,
    detached: AtomicBool,
    adopted: bool,
}

/// A running engine: its process (unless adopted) and a connected client.
struct Started {
    child: Option<tokio::process::Child>,
    client: EngineClient,
    clock: ClockMap,
    pid: u32,
}

async fn start(config: &SupervisorConfig) -> Result<Started, SupervisorError> {
    let fail = |e: String| SupervisorError::Spawn(e);
    let mut child = tokio::process::Command::new(&config.program)
        .args(&config.args)
        .arg("--listen")
        .arg(config.listen.to_string())
        .stdout(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C for the controller does not stop the
        // air, and a detached engine outlives its controller.
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("{}: {e}", config.program.display())))?;
    let pid = child.id().unwrap_or_default();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no standard output".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let listening = tokio::time::timeout(config.start_timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("listening on ") {
                return true;
            }
        }
        false
    })
    .await;
    if listening != Ok(true) {
        let _ = child.start_kill();
        return Err(fail(format!(
            "it did not say it listens within {:?}",
            config.start_timeout
        )));
    }
    // Keep reading, so the engine never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut client =
        EngineClient::connect_with(&config.listen, config.token.as_deref(), config.tls.as_ref())
            .await?;
    let clock = client.health().await?.clock;
    Ok(Started {
        child: Some(child),
        client,
        clock,
        pid,
    })
}

/// An engine already answering on the address, with what it holds, if there is one.
async fn running(config: &SupervisorConfig) -> Option<(Started, proto::HealthReply)> {
    let attempt = async {
        let mut client = EngineClient::connect_with(
            &config.listen,
            config.token.as_deref(),
            config.tls.as_ref(),
        )
        .await
        .ok()?;
        let health = client.health().await.ok()?;
        Some((client, health))
    };
    let (client, health) = tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()??;
    let pid = health.reply.pid;
    Some((
        Started {
            child: None,
            client,
            clock: health.clock,
            pid,
        },
        health.reply,
    ))
}

/// A ledger of what an adopted engine holds, in wall-clock time.
fn ledger_of(health: &proto::HealthReply, clock: ClockMap) -> Ledger {
    let mut ledger = Ledger::default();
    for held in &health.items {
        let Some(item) = held.item.clone() else {
            continue;
        };
        let at = clock.unix_ns(held.at_ns);
        let mut e = entry(item, at, held.emergency);
        if held.state == proto::ItemState::OnAir as i32 {
            e.started_unix_ns = Some(at);
        }
        ledger.entries.insert(e.item.id.clone(), e);
    }
    for input in &health.live {
        if !input.routed_id.is_empty() && !ledger.entries.contains_key(&input.routed_id) {
            ledger.routes.insert(
                input.routed_id.clone(),
                (input.mount.clone(), Duration::ZERO, false),
            );
        }
    }
    ledger
}

/// Kills a process by id (an adopted engine that hangs; a supervisor's engine on drop).
fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

impl Supervisor {
    /// Starts the engine (or adopts the one answering on its address, with
    /// [`SupervisorConfig::adopt`]) and watches it. Needs a tokio runtime.
    pub async fn start(config: SupervisorConfig) -> Result<Supervisor, SupervisorError> {
        let (events, _) = broadcast::channel(256);
        let adopted = if config.adopt {
            running(&config).await
        } else {
            None
        };
        let was_adopted = adopted.is_some();
        let (started, ledger) = match adopted {
            Some((started, health)) => {
                let ledger = ledger_of(&health, started.clock);
                (started, ledger)
            }
            None => (start(&config).await?, Ledger::default()),
        };
        let pid = Arc::new(AtomicU32::new(started.pid));
        let live = Arc::new(Mutex::new(Live {
            client: started.client.clone(),
            clock: started.clock,
            pid: started.pid,
            ledger,
        }));
        let watch = tokio::spawn(watch(
            config,
            started,
            Arc::clone(&live),
            events.clone(),
            Arc::clone(&pid),
        ));
        Ok(Supervisor {
            live,
            events,
            watch,
            pid,
            detached: AtomicBool::new(false),
            adopted: was_adopted,
        })
    }

    /// Whether it adopted an engine that was already running, rather than starting one.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Stops supervising and leaves the engine running, on air with what it holds: for a
    /// controller that restarts. The next supervisor on the same address adopts it.
    pub fn detach(self) {
        self.detached.store(true, Ordering::Relaxed);
        self.watch.abort();
    }

    /// What the supervisor sees from now on.
    pub fn events(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.events.subscribe()
    }

    /// The engine's process id.
    pub async fn pid(&self) -> u32 {
        self.live.lock().await.pid
    }

    /// A client of the current engine (for calls the supervisor does not wrap, such as
    /// `Health`).
    pub async fn client(&self) -> EngineClient {
        self.live.lock().await.client.clone()
    }

    /// Replaces the DSP graph.
    pub async fn load_graph(&self, graph: &str) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let result = live.client.load_graph(graph).await;
        if kept(&result) {
            live.ledger.graph = Some(graph.to_owned());
        }
        Ok(result?)
    }

    /// Plays `item` at a wall-clock instant (ns since the Unix epoch), or now.
    pub async fn play(
        &self,
        item: proto::Item,
        at_unix_ns: Option<i64>,
    ) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let at = at_unix_ns.unwrap_or_else(unix_now_ns);
        let station = live.clock.station_ns(at);
        let result = live.client.play(item.clone(), Some(station)).await;
        if kept(&result) {
            live.ledger
                .entries
                .insert(item.id.clone(), entry(item, at, false));
        }
        Ok(result.map(|_| ())?)
    }

    /// Queues items at wall-clock instants (ns since the Unix epoch).
    pub async fn queue(&self, items: Vec<(proto::Item, i64)>) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let clock = live.clock;
        let on_wire: Vec<(proto::Item, i64)> = items
            .iter()
            .map(|(item, at)| (item.clone(), clock.station_ns(*at)))
            .collect();
        let result = live.client.queue(on_wire, false).await;
        if kept(&result) {
            for (item, at) in items {
                live.ledger
                    .entries
                    .insert(item.id.clone(), entry(item, at, false));
            }
        }
        Ok(result.map(|_| ())?)
    }

    /// Routes the live source on `mount` to air as item `id` (see
    /// [`EngineClient::route_live`]); after a restart the route is made again, so a DJ whose
    /// client reconnects goes back on air. Returns whether a source client was connected.
    pub async fn route_live(
        &self,
        id: &str,
        mount: &str,
        fade_in: Duration,
        take_air: bool,
    ) -> Result<bool, SupervisorError> {
        let mut live = self.live.lock().await;
        let result = live.client.route_live(id, mount, fade_in, take_air).await;
        if kept(&result) {
            live.ledger
                .routes
                .insert(id.to_owned(), (mount.to_owned(), fade_in, take_air));
        }
        Ok(result?)
    }

    /// Stops one item.
    pub async fn stop(&self, id: &str) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let result = live.client.stop(id).await;
        if kept(&result) {
            live.ledger.entries.remove(id);
            live.ledger.routes.remove(id);
        }
        Ok(result?)
    }

    /// Stops everything.
    pub async fn stop_all(&self) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let result = live.client.stop_all().await;
        if kept(&result) {
            live.ledger.entries.clear();
            live.ledger.routes.clear();
        }
        Ok(result?)
    }

    /// Fades an item out from a wall-clock instant (or now) over `length`.
    pub async fn fade(
        &self,
        id: &str,
        at_unix_ns: Option<i64>,
        length: Duration,
    ) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let at = at_unix_ns.unwrap_or_else(unix_now_ns);
        let station = live.clock.station_ns(at);
        let result = live.client.fade(id, Some(station), length).await;
        if kept(&result)
            && let Some(entry) = live.ledger.entries.get_mut(id)
        {
            entry.fade = Some((at, length));
        }
        Ok(result?)
    }

    /// Cuts an emergency in at once.
    pub async fn insert_emergency(&self, item: proto::Item) -> Result<(), SupervisorError> {
        let mut live = self.live.lock().await;
        let now = unix_now_ns();
        let result = live.client.insert_emergency(item.clone()).await;
        if kept(&result) {
            // What was on air is cut.
            live.ledger
                .entries
                .retain(|_, e| e.started_unix_ns.is_none());
            live.ledger
                .entries
                .insert(item.id.clone(), entry(item, now, true));
        }
        Ok(result.map(|_| ())?)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.watch.abort();
        if !self.detached.load(Ordering::Relaxed) {
            kill(self.pid.load(Ordering::Relaxed));
        }
    }
}

fn entry(item: proto::Item, at_unix_ns: i64, emergency: bool) -> Entry {
    Entry {
        item,
        at_unix_ns,
        started_unix_ns: None,
        emergency,
        fade: None,
    }
}

/// Whether a call's intent stays in the ledger: it succeeded, or the engine was gone (the
/// new engine gets it).
fn kept<T>(result: &Result<T, ClientError>) -> bool {
    matches!(
        result,
        Ok(_) | Err(ClientError::Gone(_) | ClientError::Timeout(_))
    )
}

async fn watch(
    config: SupervisorConfig,
    mut engine: Started,
    live: Arc<Mutex<Live>>,
    events: broadcast::Sender<SupervisorEvent>,
    pid: Arc<AtomicU32>,
) {
    loop {
        let reason = run_until_death(&config, &mut engine, &live, &events).await;
        let noticed = Instant::now();
        match engine.child.as_mut() {
            Some(child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            None => {
                // Adopted: not our child, so no exit status to wait for. A hung one is
                // killed; the socket frees once it is gone.
                kill(engine.pid);
                let gone = Instant::now() + Duration::from_secs(5);
                while std::path::Path::new(&format!("/proc/{}", engine.pid)).exists()
                    && Instant::now() < gone
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        let _ = events.send(SupervisorEvent::Died { reason });
        engine = loop {
            match start(&config).await {
                Ok(new) => break new,
                Err(e) => {
                    let _ = events.send(SupervisorEvent::RestartFailed {
                        reason: e.to_string(),
                    });
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        let mut state = live.lock().await;
        state.client = engine.client.clone();
        state.clock = engine.clock;
        state.pid = engine.pid;
        pid.store(engine.pid, Ordering::Relaxed);
        replay(&mut state).await;
        drop(state);
        let _ = events.send(SupervisorEvent::Restarted {
            took: noticed.elapsed(),
            pid: engine.pid,
        });
    }
}

/// Relays the engine's updates into the ledger and the events until it dies; returns how
/// the death was noticed.
async fn run_until_death(
    config: &SupervisorConfig,
    engine: &mut Started,
    live: &Mutex<Live>,
    events: &broadcast::Sender<SupervisorEvent>,
) -> String {
    let mut updates = match engine.client.updates().await {
        Ok(u) => u,
        Err(e) => return e.to_string(),
    };
    loop {
        let exited = async {
            match engine.child.as_mut() {
                Some(child) => child.wait().await,
                // Adopted: its telemetry is all there is to watch.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = exited => {
                return match status {
                    Ok(s) => format!("the engine process ended: {s}"),
                    Err(e) => format!("the engine process is lost: {e}"),
                };
            }
            update = updates.next_within(config.silence) => {
                let update = match update {
                    Ok(u) => u,
                    Err(e) => return e.to_string(),
                };
                record(&mut *live.lock().await, &update);
                let _ = events.send(SupervisorEvent::Update(update));
            }
        }
    }
}

fn record(live: &mut Live, update: &Update) {
    match update {
        Update::Telemetry(t) => {
            live.clock = ClockMap {
                station_ns: t.station_ns,
                unix_ns: t.unix_ns,
            };
        }
        Update::Started(s) => {
            let at = live.clock.unix_ns(s.at_ns);
            if let Some(entry) = live.ledger.entries.get_mut(&s.id) {
                // A resumed item keeps its first start: its position counts from there.
                entry.started_unix_ns.get_or_insert(at);
            }
        }
        Update::Ended(e) => {
            live.ledger.entries.remove(&e.id);
            live.ledger.routes.remove(&e.id);
        }
        Update::Failed(f) => {
            live.ledger.entries.remove(&f.id);
            live.ledger.routes.remove(&f.id);
        }
        _ => {}
    }
}

/// Puts the ledger back on a new engine.
async fn replay(live: &mut Live) {
    if let Some(graph) = live.ledger.graph.clone() {
        let _ = live.client.load_graph(&graph).await;
    }
    let resume = unix_now_ns() + RESUME_MARGIN_NS;
    let mut entries: Vec<Entry> = live.ledger.entries.values().cloned().collect();
    entries.sort_by_key(|e| e.at_unix_ns);
    let mut queue = Vec::new();
    let mut fades = Vec::new();
    for entry in entries {
        let mut item = entry.item.clone();
        let sounding = entry.started_unix_ns.is_some() || entry.emergency;
        let result = if let Some(started) = entry.started_unix_ns {
            // Resume where it has got to by the time it sounds again.
            let elapsed = resume - started;
            item.cue_in_ns = item.cue_in_ns.saturating_add(elapsed);
            if item.cue_out_ns.is_some_and(|out| item.cue_in_ns >= out) {
                live.ledger.entries.remove(&item.id);
                continue;
            }
            item.fade_in_ns = item.fade_in_ns.max(RESUME_FADE_NS);
            if entry.emergency {
                live.client.insert_emergency(item).await.map(|_| ())
            } else {
                let at = live.clock.station_ns(resume);
                live.client.play(item, Some(at)).await.map(|_| ())
            }
        } else if sounding {
            live.client.insert_emergency(item).await.map(|_| ())
        } else {
            queue.push((item, live.clock.station_ns(entry.at_unix_ns)));
            Ok(())
        };
        if result.is_err() {
            continue;
        }
        if let Some((at, length)) = entry.fade {
            fades.push((entry.item.id.clone(), at, length));
        }
    }
    if !queue.is_empty() {
        let _ = live.client.queue(queue, false).await;
    }
    let routes: Vec<(String, (String, Duration, bool))> = live
        .ledger
        .routes
        .iter()
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect();
    for (id, (mount, fade_in, take_air)) in routes {
        let _ = live.client.route_live(&id, &mount, fade_in, take_air).await;
    }
    for (id, at, length) in fades {
        let at = live.clock.station_ns(at);
        let _ = live.client.fade(&id, Some(at), length).await;
    }
}
