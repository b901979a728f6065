//! The executor pool: one task per active station, each driving a
//! [`grimnir_priority::Executor`].
//!
//! A station's task owns its executor. It wakes at the executor's
//! [`next_deadline`](grimnir_priority::Executor::next_deadline) and whenever a request comes
//! through its channel (a priority source on or off, the timeline changed, skip, stop, reload),
//! and after every step it
//!
//! - hands the executor's commands to the [`CommandSink`] (the seam for the media engine
//!   client; [`RecordingSink`] logs and keeps them while no engine is connected);
//! - writes `executor_states` on every change of state or tier, and a heartbeat every
//!   [`PoolConfig::heartbeat`];
//! - writes a `play_history` row when a media item goes on air and ends it when it leaves;
//! - publishes `now_playing` and `priority_change` on the [`EventBus`];
//! - updates the `grimnir_executor_*` metrics;
//! - refreshes its [`NowPlaying`] snapshot, which [`ExecutorPool::now_playing`] reads without
//!   touching the database.
//!
//! When a task starts it re-applies the station's active `priority_sources` rows, so an
//! emergency survives a restart, and loads the timeline with [`crate::db::schedule::playable_timeline`].
//!
//! **Architecture Invariant**: a station's task is isolated. A panic inside it is caught, logged
//! and counted, and the task starts again (with a fresh executor, from what is stored) after
//! [`PoolConfig::restart_delay`]; the other stations never notice.
//!
//! [`ExecutorPool::start`] runs the supervisor, which starts a task for every active station in
//! the database and, every [`PoolConfig::rescan`], starts tasks for stations created or
//! activated since and stops those of stations deleted or deactivated.

mod sink;
mod station;
pub use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use grimnir_priority::{Deactivation, PrioritySource, SourceId, Timing};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::stations::StationId;
use crate::db::{Database, StorageError};
use crate::events::EventBus;

pub use sink::{CommandSink, RECORDING_CAPACITY, RecordingSink};

/// How the pool runs its executors.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The mount every executor plays on (`main`).
    pub mount: String,
    /// The DSP graph name sent with `LoadGraph`.
    pub graph: String,
    /// The fallback audio played where the timeline has nothing.
    pub fallback: String,
    /// The executor's timing rules.
    pub timing: Timing,
    /// How often a running executor writes its heartbeat.
    pub heartbeat: Duration,
    /// How often the supervisor looks for stations created, deleted, activated or deactivated.
    pub rescan: Duration,
    /// How often a station's timeline is read again (a planner elsewhere may have changed it).
    pub timeline_refresh: Duration,
    /// How far ahead of now the timeline is read.
    pub horizon: chrono::Duration,
    /// How long a station's task waits before starting again after a panic or failure.
    pub restart_delay: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            mount: "main".to_owned(),
            graph: "default".to_owned(),
            fallback: "fallback".to_owned(),
            timing: Timing::default(),
            heartbeat: Duration::from_secs(5),
            rescan: Duration::from_secs(10),
            timeline_refresh: Duration::from_secs(30),
            horizon: chrono::Duration::hours(24),
            restart_delay: Duration::from_secs(1),
        }
    }
}

/// An item on air, as the API and the events show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OnAirItem {
    /// `media`, `webstream`, `live`, `emergency_audio`, `live_icecast`, `fallback`, or
    /// `external` (reported by an external playout).
    #[schema(example = "media")]
    pub kind: String,
    /// Its title (for a priority source, its input; for the fallback, `fallback`).
    #[schema(example = "Träumerei")]
    pub title: String,
    /// Its artist, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    /// Its album, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub album: Option<String>,
    /// The media item, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// The priority source or webstream, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The tier it holds the air at, 0 (emergency) to 4 (fallback).
    pub priority: u8,
    /// When it went on air.
    pub started_at: DateTime<Utc>,
    /// How long it is planned to last, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// What is on air at a station, kept in memory by its executor task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NowPlaying {
    /// The station.
    pub station_id: Uuid,
    /// Whether the station's executor is running.
    pub running: bool,
    /// The executor's state: `idle`, `preloading`, `playing`, `fading`, `live`, `emergency`.
    #[schema(example = "playing")]
    pub state: String,
    /// The tier on air, 0 to 4; none while nothing is.
    pub priority: Option<u8>,
    /// What holds the air.
    pub item: Option<OnAirItem>,
    /// What an external playout last reported (`POST /webhooks/track-start`).
    pub reported: Option<OnAirItem>,
    /// The active priority sources, by id.
    pub sources: Vec<String>,
    /// When this was last brought up to date.
    pub updated_at: DateTime<Utc>,
}

impl NowPlaying {
    /// Nothing on air at `station`: no executor runs for it.
    pub fn idle(station: StationId) -> Self {
        NowPlaying {
            station_id: station.as_uuid(),
            running: false,
            state: "idle".to_owned(),
            priority: None,
            item: None,
            reported: None,
            sources: Vec::new(),
            updated_at: Utc::now(),
        }
    }
}

/// A [`NowPlaying`] with its JSON rendered once, so that answering it costs no serialization.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// What is on air.
    pub now: NowPlaying,
    /// `now` as JSON.
    pub json: Bytes,
}

impl Snapshot {
    /// Renders `now`.
    pub fn new(now: NowPlaying) -> Self {
        // Serializing these plain fields cannot fail; an empty object stands in if it did.
        let json = serde_json::to_vec(&now).map_or_else(|_| Bytes::from_static(b"{}"), Bytes::from);
        Snapshot { now, json }
    }
}

/// Why a request to a station's executor failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// No executor runs for the station: the pool is not started, or the station is inactive
    /// or unknown.
    #[error("no executor runs for station {0}")]
    NotRunning(StationId),
    /// The executor refused the request (an invalid source, a source it does not know).
    #[error(transparent)]
    Refused(#[from] grimnir_priority::Error),
    /// The station's task stopped (or restarted) before it answered.
    #[error("the executor of station {0} stopped before it answered")]
    Gone(StationId),
    /// The database failed while the request was carried out.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

type Reply = oneshot::Sender<Result<Arc<Snapshot>, PoolError>>;

/// A request to a station's task.
#[derive(Debug)]
enum Request {
    /// A priority source claims the air (`kind`: its `source_type`, for the record).
    Activate {
        source: PrioritySource,
        kind: String,
        reply: Reply,
    },
    /// A priority source ended or dropped.
    Deactivate {
        id: SourceId,
        cause: Deactivation,
        reply: Reply,
    },
    /// The stored timeline changed: read it again.
    TimelineChanged,
    /// Another DSP graph was applied to the station: read which, and load it.
    GraphApplied,
    /// Skip the entry on air.
    Skip(Reply),
    /// Stop playout: nothing on air until a reload.
    Stop(Reply),
    /// Read the timeline and priority sources again, and resume playout if it was stopped.
    Reload(Reply),
}

#[derive(Debug)]
struct Slot {
    requests: mpsc::Sender<Request>,
    now: Arc<watch::Sender<Arc<Snapshot>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    events: EventBus,
    sink: Arc<dyn CommandSink>,
    config: PoolConfig,
    stations: RwLock<HashMap<StationId, Slot>>,
    started: AtomicBool,
    panics: AtomicU64,
    rescan: tokio::sync::Notify,
    supervisor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(stations) = self.stations.get_mut() {
            for slot in stations.values() {
                slot.task.abort();
            }
        }
    }
}

/// The executor pool: a handle, cheap to clone, shared by the HTTP handlers.
#[derive(Debug, Clone)]
pub struct ExecutorPool {
    inner: Arc<Inner>,
}

/// How many requests may wait for a station's task.
const REQUEST_QUEUE: usize = 64;

impl ExecutorPool {
    /// A pool that sends commands to `sink`. It runs nothing until [`ExecutorPool::start`].
    pub fn new(
        db: Database,
        events: EventBus,
        sink: Arc<dyn CommandSink>,
        config: PoolConfig,
    ) -> Self {
        ExecutorPool {
            inner: Arc::new(Inner {
                db,
                events,
                sink,
                config,
                stations: RwLock::new(HashMap::new()),
                started: AtomicBool::new(false),
                panics: AtomicU64::new(0),
                rescan: tokio::sync::Notify::new(),
                supervisor: std::sync::Mutex::new(None),
            }),
        }
    }

    /// A pool with the default configuration whose commands go to a [`RecordingSink`]: what
    /// `grimnir serve` runs until a media engine is connected.
    pub fn recording(db: Database, events: EventBus) -> Self {
        ExecutorPool::new(
            db,
            events,
            Arc::new(RecordingSink::new()),
            PoolConfig::default(),
        )
    }

    /// Starts the supervisor (once; later calls do nothing). Needs a tokio runtime.
    pub fn start(&self) {
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(supervise(weak));
        if let Ok(mut supervisor) = self.inner.supervisor.lock() {
            *supervisor = Some(task);
        }
    }

    /// Stops the supervisor and every station's task. Playout decisions stop; what the media
    /// engine plays is up to it.
    pub fn shutdown(&self) {
        self.inner.started.store(false, Ordering::SeqCst);
        if let Ok(mut supervisor) = self.inner.supervisor.lock()
            && let Some(task) = supervisor.take()
        {
            task.abort();
        }
        if let Ok(mut stations) = self.inner.stations.write() {
            for (_, slot) in stations.drain() {
                slot.task.abort();
            }
        }
    }

    /// Asks the supervisor to look for new, changed and deleted stations now rather than at
    /// its next [`PoolConfig::rescan`].
    pub fn stations_changed(&self) {
        self.inner.rescan.notify_one();
    }

    /// Whether `station`'s executor runs.
    pub fn is_running(&self, station: StationId) -> bool {
        self.inner
            .stations
            .read()
            .is_ok_and(|s| s.get(&station).is_some_and(|slot| !slot.task.is_finished()))
    }

    /// The stations whose executors run.
    pub fn running(&self) -> Vec<StationId> {
        self.inner
            .stations
            .read()
            .map(|s| s.keys().copied().collect())
            .unwrap_or_default()
    }

    /// How many station tasks have panicked since the pool was made.
    pub fn panics(&self) -> u64 {
        self.inner.panics.load(Ordering::Relaxed)
    }

    /// What is on air at `station`, from memory; `None` when no executor runs for it.
    pub fn now_playing(&self, station: StationId) -> Option<Arc<Snapshot>> {
        let stations = self.inner.stations.read().ok()?;
        let slot = stations.get(&station)?;
        Some(Arc::clone(&slot.now.borrow()))
    }

    /// Records what an external playout reports on air at `station` in its snapshot (when its
    /// executor runs).
    pub fn report(&self, station: StationId, item: OnAirItem) {
        let Ok(stations) = self.inner.stations.read() else {
            return;
        };
        if let Some(slot) = stations.get(&station) {
            slot.now.send_modify(|snapshot| {
                let mut now = snapshot.now.clone();
                now.reported = Some(item);
                now.updated_at = Utc::now();
                *snapshot = Arc::new(Snapshot::new(now));
            });
        }
    }

    /// Puts `source` on the station's ladder; answers what is on air afterwards.
    pub async fn activate(
        &self,
        station: StationId,
        source: PrioritySource,
        kind: impl Into<String>,
    ) -> Result<Arc<Snapshot>, PoolError> {
        let kind = kind.into();
        self.ask(station, |reply| Request::Activate {
            source,
            kind,
            reply,
        })
        .await
    }

    /// Puts a stored priority source on its station's ladder (on the pool's mount); answers
    /// what is on air afterwards.
    pub async fn activate_row(
        &self,
        row: &crate::db::priority_sources::PrioritySourceRow,
    ) -> Result<Arc<Snapshot>, PoolError> {
        let source = station::to_priority_source(row, &self.inner.config.mount);
        self.activate(row.station_id, source, row.source_type.clone())
            .await
    }

    /// Takes source `id` off the station's ladder.
    pub async fn deactivate(
        &self,
        station: StationId,
        id: SourceId,
        cause: Deactivation,
    ) -> Result<Arc<Snapshot>, PoolError> {
        self.ask(station, |reply| Request::Deactivate { id, cause, reply })
            .await
    }

    /// Skips the timeline entry on air.
    pub async fn skip(&self, station: StationId) -> Result<Arc<Snapshot>, PoolError> {
        self.ask(station, Request::Skip).await
    }

    /// Stops playout at the station until [`ExecutorPool::reload`].
    pub async fn stop(&self, station: StationId) -> Result<Arc<Snapshot>, PoolError> {
        self.ask(station, Request::Stop).await
    }

    /// Reads the station's timeline and priority sources again and resumes playout if stopped.
    pub async fn reload(&self, station: StationId) -> Result<Arc<Snapshot>, PoolError> {
        self.ask(station, Request::Reload).await
    }

    /// Tells the station's executor that its stored timeline changed. Does nothing when no
    /// executor runs for it (the timeline is read when one starts).
    pub fn timeline_changed(&self, station: StationId) {
        if let Some(requests) = self.requests(station) {
            // A full queue already holds requests that read the timeline soon enough.
            let _ = requests.try_send(Request::TimelineChanged);
        }
    }

    /// Tells the station's executor that another DSP graph was applied, so the engine loads it
    /// now. Does nothing when no executor runs for it (the graph is read when one starts).
    pub fn graph_applied(&self, station: StationId) {
        if let Some(requests) = self.requests(station) {
            // A full queue: the periodic re-read picks the graph up.
            let _ = requests.try_send(Request::GraphApplied);
        }
    }

    fn requests(&self, station: StationId) -> Option<mpsc::Sender<Request>> {
        let stations = self.inner.stations.read().ok()?;
        stations.get(&station).map(|slot| slot.requests.clone())
    }

    async fn ask(
        &self,
        station: StationId,
        request: impl FnOnce(Reply) -> Request,
    ) -> Result<Arc<Snapshot>, PoolError> {
        let requests = self
            .requests(station)
            .ok_or(PoolError::NotRunning(station))?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(request(reply))
            .await
            .map_err(|_| PoolError::NotRunning(station))?;
        answer.await.map_err(|_| PoolError::Gone(station))?
    }

    /// Starts `station`'s task unless it runs.
    fn ensure(inner: &Arc<Inner>, station: StationId) {
        let Ok(mut stations) = inner.stations.write() else {
            return;
        };
        if stations
            .get(&station)
            .is_some_and(|slot| !slot.task.is_finished())
        {
            return;
        }
        let (requests, receiver) = mpsc::channel(REQUEST_QUEUE);
        let mut idle = NowPlaying::idle(station);
        idle.running = true;
        let (now, _) = watch::channel(Arc::new(Snapshot::new(idle)));
        let now = Arc::new(now);
        let ctx = station::Context {
            station,
            db: inner.db.clone(),
            events: inner.events.clone(),
            sink: Arc::clone(&inner.sink),
            config: inner.config.clone(),
            now: Arc::clone(&now),
        };
        let panics = Arc::downgrade(inner);
        // Everything the station's task logs, deep in the planner or the sink too, carries the
        // station's id.
        let span = tracing::info_span!("station", station_id = %station);
        let task = tokio::spawn(
            station::supervise(ctx, receiver, move || {
                if let Some(inner) = panics.upgrade() {
                    inner.panics.fetch_add(1, Ordering::Relaxed);
                }
            })
            .instrument(span),
        );
        tracing::info!(station_id = %station, "executor started");
        stations.insert(
            station,
            Slot {
                requests,
                now,
                task,
            },
        );
    }

    fn retire(inner: &Inner, station: StationId) {
        if let Ok(mut stations) = inner.stations.write()
            && let Some(slot) = stations.remove(&station)
        {
            slot.task.abort();
            tracing::info!(station_id = %station, "executor stopped");
        } else {
            return;
        }
        // What is stored no longer runs: say so (a deleted station has no row left).
        crate::metrics::executor_state(station.as_uuid(), "idle");
        let db = inner.db.clone();
        tokio::spawn(async move {
            let result = db
                .run(move |conn| crate::db::executor_states::mark_idle(conn, station))
                .await;
            if let Err(e) = result {
                tracing::warn!(station_id = %station, error = %e, "executor state not marked idle");
            }
        });
    }
}

/// Keeps one task per active station until the pool is dropped or shut down.
async fn supervise(pool: Weak<Inner>) {
    loop {
        let Some(inner) = pool.upgrade() else {
            return;
        };
        if !inner.started.load(Ordering::SeqCst) {
            return;
        }
        match inner.db.run(crate::db::stations::list).await {
            Ok(all) => {
                let active: Vec<StationId> =
                    all.iter().filter(|s| s.active).map(|s| s.id).collect();
                for station in &active {
                    ExecutorPool::ensure(&inner, *station);
                }
                let running: Vec<StationId> = inner
                    .stations
                    .read()
                    .map(|s| s.keys().copied().collect())
                    .unwrap_or_default();
                for station in running.into_iter().filter(|s| !active.contains(s)) {
                    ExecutorPool::retire(&inner, station);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list stations for the executor pool"),
        }
        let every = inner.config.rescan;
        let wake = async {
            inner.rescan.notified().await;
        };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = wake => {}
        }
    }
}
