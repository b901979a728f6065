//! One station's task: the driver of its executor.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use grimnir_planner::{Source, Tier, Timeline};
use grimnir_priority::{
    AirItem, Command, Deactivation, Event, Executor, ExecutorConfig, Item, PrioritySource,
    SourceId, StateChange,
};
use tokio::sync::{mpsc, watch};

use super::{CommandSink, NowPlaying, OnAirItem, PoolConfig, PoolError, Request, Snapshot};
use crate::db::play_history::{self, NewPlay, PlayId};
use crate::db::priority_sources::{self, PrioritySourceRow};
use crate::db::stations::StationId;
use crate::db::{Database, Page, StorageError, executor_states};
use crate::events::{self, EventBus};

/// What a station's task works with.
#[derive(Debug)]
pub(super) struct Context {
    pub(super) station: StationId,
    pub(super) db: Database,
    pub(super) events: EventBus,
    pub(super) sink: Arc<dyn CommandSink>,
    pub(super) config: PoolConfig,
    pub(super) now: Arc<watch::Sender<Arc<Snapshot>>>,
}

/// Runs the station's executor until its request channel closes, starting it again after a
/// panic or a failure (a database that cannot be read at start).
pub(super) async fn supervise(
    ctx: Context,
    mut requests: mpsc::Receiver<Request>,
    on_panic: impl Fn() + Send + 'static,
) {
    loop {
        let run = AssertUnwindSafe(run(&ctx, &mut requests))
            .catch_unwind()
            .await;
        match run {
            Ok(Ok(())) => return,
            Ok(Err(e)) => {
                tracing::error!(station_id = %ctx.station, error = %e,
                    "executor failed; starting it again");
            }
            Err(panic) => {
                on_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                tracing::error!(station_id = %ctx.station, panic = %message,
                    "executor panicked; starting it again");
            }
        }
        ctx.now.send_modify(|s| {
            let mut now = s.now.clone();
            now.state = "idle".to_owned();
            now.priority = None;
            now.item = None;
            now.updated_at = Utc::now();
            *s = Arc::new(Snapshot::new(now));
        });
        tokio::time::sleep(ctx.config.restart_delay).await;
    }
}

/// One run of the executor: from what is stored, until the channel closes.
async fn run(ctx: &Context, requests: &mut mpsc::Receiver<Request>) -> Result<(), PoolError> {
    let station = ctx.station;
    let now = Utc::now();
    // Plays left open by an earlier run (a crash, a restart) ended when it did, at the latest.
    ctx.db
        .run(move |conn| play_history::end_open(conn, station, now))
        .await?;
    let config = ExecutorConfig {
        timing: ctx.config.timing,
        ..ExecutorConfig::new(
            station.to_string(),
            ctx.config.mount.as_str(),
            ctx.config.graph.as_str(),
            ctx.config.fallback.as_str(),
        )
    };
    let mut driver = Driver {
        ctx,
        executor: Executor::new(config)?,
        kinds: HashMap::new(),
        air: None,
        air_since: now,
        play: None,
        tier: None,
        stopped: false,
    };
    driver.sync_graph(now).await?;
    let timeline = driver.read_timeline(now).await?;
    let first = match timeline {
        Some(timeline) => Event::TimelineReplaced { timeline },
        None => Event::Tick,
    };
    driver.apply(now, first).await?;
    driver.sync_sources(now).await?;
    driver.persist(Utc::now()).await?;

    let mut heartbeat = tokio::time::interval(ctx.config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.reset();
    let mut refresh = tokio::time::interval(ctx.config.timeline_refresh);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    refresh.reset();
    loop {
        let wake = driver.executor.next_deadline().map(|d| {
            let wait = (d - Utc::now()).to_std().unwrap_or_default();
            tokio::time::Instant::now() + wait
        });
        let deadline = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            request = requests.recv() => {
                let Some(request) = request else {
                    return Ok(());
                };
                driver.serve(request).await?;
            }
            () = deadline => {
                let at = driver.clock();
                // The executor has moved on either way; a record that could not be written
                // (the database briefly away) is not worth restarting playout for.
                if let Err(e) = driver.apply(at, Event::Tick).await {
                    tracing::warn!(station_id = %station, error = %e, "executor step not recorded");
                }
            }
            _ = heartbeat.tick() => {
                let at = driver.clock();
                let buffer = driver.executor.status().buffer_depth
                    .map(|d| i64::try_from(d).unwrap_or(i64::MAX));
                let result = ctx.db
                    .run(move |conn| executor_states::heartbeat(conn, station, at, buffer))
                    .await;
                if let Err(e) = result {
                    tracing::warn!(station_id = %station, error = %e, "executor heartbeat not stored");
                }
            }
            _ = refresh.tick() => {
                let at = driver.clock();
                if let Err(e) = driver.refresh_timeline(at, false).await {
                    tracing::warn!(station_id = %station, error = %e, "timeline not refreshed");
                }
                // A graph applied elsewhere (a station file, another instance) is picked up
                // here; the API's apply asks at once.
                if let Err(e) = driver.sync_graph(at).await {
                    tracing::warn!(station_id = %station, error = %e, "DSP graph not read");
                }
            }
        }
    }
}

struct Driver<'a> {
    ctx: &'a Context,
    executor: Executor,
    /// The `source_type` of each active priority source, for the record.
    kinds: HashMap<SourceId, String>,
    /// What held the air after the last step.
    air: Option<AirItem>,
    air_since: DateTime<Utc>,
    /// The play history row of the media item on air.
    play: Option<PlayId>,
    /// The tier on air after the last step.
    tier: Option<Tier>,
    /// Playout stopped by an operator.
    stopped: bool,
}

impl Driver<'_> {
    /// Now, never before the executor's own time (the wall clock may step back).
    fn clock(&self) -> DateTime<Utc> {
        let now = Utc::now();
        self.executor.now().map_or(now, |t| t.max(now))
    }

    async fn serve(&mut self, request: Request) -> Result<(), PoolError> {
        let at = self.clock();
        match request {
            Request::Activate {
                source,
                kind,
                reply,
            } => {
                // Known before the step, which records and shows the source by its kind.
                let id = source.id.clone();
                let earlier = self.kinds.insert(id.clone(), kind);
                let result = self.apply(at, Event::SourceActivated { source }).await;
                if result.is_err() {
                    match earlier {
                        Some(kind) => self.kinds.insert(id, kind),
                        None => self.kinds.remove(&id),
                    };
                }
                self.answer(reply, result);
            }
            Request::Deactivate { id, cause, reply } => {
                let result = self.apply(at, Event::SourceDeactivated { id, cause }).await;
                self.answer(reply, result);
            }
            Request::GraphApplied => {
                if let Err(e) = self.sync_graph(at).await {
                    tracing::warn!(station_id = %self.ctx.station, error = %e,
                        "DSP graph not read");
                }
            }
            Request::TimelineChanged => {
                if let Err(e) = self.refresh_timeline(at, true).await {
                    tracing::warn!(station_id = %self.ctx.station, error = %e,
                        "timeline not refreshed");
                }
            }
            Request::Skip(reply) => {
                let result = self.apply(at, Event::Skip).await;
                self.answer(reply, result);
            }
            Request::Stop(reply) => {
                let result = self.stop(at).await;
                self.answer(reply, result);
            }
            Request::Reload(reply) => {
                let result = self.reload(at).await;
                self.answer(reply, result);
            }
        }
        Ok(())
    }

    fn answer(&self, reply: super::Reply, result: Result<(), PoolError>) {
        let answer = result.map(|()| Arc::clone(&self.ctx.now.borrow()));
        let _ = reply.send(answer);
    }

    async fn stop(&mut self, at: DateTime<Utc>) -> Result<(), PoolError> {
        if self.stopped {
            return Ok(());
        }
        let on_air = self.executor.on_air();
        let stops: Vec<Command> = [on_air.main, on_air.tail]
            .into_iter()
            .flatten()
            .map(|a| Command::Stop { at, item: a.item })
            .collect();
        if !stops.is_empty() {
            self.ctx.sink.deliver(self.ctx.station, &stops);
        }
        self.stopped = true;
        self.apply(
            at,
            Event::EngineFailed {
                reason: "playout stopped by an operator".to_owned(),
            },
        )
        .await
    }

    async fn reload(&mut self, at: DateTime<Utc>) -> Result<(), PoolError> {
        if self.stopped {
            self.stopped = false;
            self.apply(at, Event::EngineRestarted).await?;
        }
        self.refresh_timeline(at, true).await?;
        self.sync_sources(at).await
    }

    async fn read_timeline(&self, at: DateTime<Utc>) -> Result<Option<Arc<Timeline>>, PoolError> {
        let station = self.ctx.station;
        let to = at + self.ctx.config.horizon;
        let timeline = self
            .ctx
            .db
            .run(move |conn| crate::db::schedule::playable_timeline(conn, station, at, to))
            .await?;
        Ok((!timeline.entries.is_empty()).then(|| Arc::new(timeline)))
    }

    /// Reads the timeline again and hands it to the executor when it differs from the one in
    /// use (or always, when `force`).
    /// Hands the station's applied DSP graph to the executor when it is not the one the
    /// executor has (the pool's configured graph when none is applied).
    async fn sync_graph(&mut self, at: DateTime<Utc>) -> Result<(), PoolError> {
        let station = self.ctx.station;
        let applied = self
            .ctx
            .db
            .run(move |conn| crate::db::dsp_graphs::applied(conn, station))
            .await?;
        let graph = applied.map_or_else(|| self.ctx.config.graph.clone(), |g| g.id.to_string());
        if graph != self.executor.config().graph {
            self.apply(at, Event::GraphChanged { graph }).await?;
        }
        Ok(())
    }

    async fn refresh_timeline(&mut self, at: DateTime<Utc>, force: bool) -> Result<(), PoolError> {
        let Some(timeline) = self.read_timeline(at).await? else {
            return Ok(());
        };
        let same = self.executor.timeline().is_some_and(|old| {
            let ahead = |e: &&grimnir_planner::Entry| e.end > at;
            old.entries
                .iter()
                .filter(ahead)
                .eq(timeline.entries.iter().filter(ahead))
        });
        if same && !force {
            return Ok(());
        }
        self.apply(at, Event::TimelineReplaced { timeline }).await
    }

    /// Brings the executor's priority sources in line with the active stored ones: activates
    /// the ones it lacks, ends the ones no longer stored as active.
    async fn sync_sources(&mut self, at: DateTime<Utc>) -> Result<(), PoolError> {
        let station = self.ctx.station;
        let (rows, _) = self
            .ctx
            .db
            .run(move |conn| priority_sources::list_active(conn, station, at, Page::ALL))
            .await?;
        let stored: Vec<SourceId> = rows
            .iter()
            .map(|r| SourceId::new(r.id.to_string()))
            .collect();
        let gone: Vec<SourceId> = self
            .executor
            .sources()
            .map(|s| s.id.clone())
            .filter(|id| !stored.contains(id))
            .collect();
        for id in gone {
            self.kinds.remove(&id);
            let event = Event::SourceDeactivated {
                id,
                cause: Deactivation::Ended,
            };
            self.apply(at, event).await?;
        }
        for row in rows {
            let id = SourceId::new(row.id.to_string());
            if self.executor.sources().any(|s| s.id == id) {
                continue;
            }
            let source = to_priority_source(&row, &self.ctx.config.mount);
            self.kinds.insert(id.clone(), row.source_type.clone());
            match self.apply(at, Event::SourceActivated { source }).await {
                Ok(()) => {
                    tracing::info!(station_id = %station, source_id = %row.id,
                        tier = row.priority, "priority source re-applied");
                }
                Err(PoolError::Refused(e)) => {
                    self.kinds.remove(&id);
                    tracing::warn!(station_id = %station, source_id = %row.id, error = %e,
                        "stored priority source refused by the executor");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Hands `event` to the executor and carries out what it decided.
    async fn apply(&mut self, at: DateTime<Utc>, event: Event) -> Result<(), PoolError> {
        let started = Instant::now();
        let step = self.executor.handle(at, event)?;
        let commands = step.commands.to_vec();
        let changes = step.changes.to_vec();
        if !commands.is_empty() {
            self.ctx.sink.deliver(self.ctx.station, &commands);
        }
        self.after(at, &changes, started).await
    }

    async fn after(
        &mut self,
        at: DateTime<Utc>,
        changes: &[StateChange],
        started: Instant,
    ) -> Result<(), PoolError> {
        let station = self.ctx.station;
        let uuid = station.as_uuid();
        let air = self.executor.on_air().main;
        let air_changed = air != self.air;
        let previous = self.air.clone();
        if air_changed {
            self.air_since = at;
            if let Some(play) = self.play.take() {
                self.ctx
                    .db
                    .run(move |conn| play_history::end(conn, play, at))
                    .await?;
            }
            if let Some(item) = &air {
                if let Some(play) = self.media_play(item, at) {
                    let id = self
                        .ctx
                        .db
                        .run(move |conn| play_history::record(conn, &play))
                        .await?;
                    self.play = Some(id);
                }
                let shown = self.on_air_item(item, at);
                let _ = self.ctx.events.publish(
                    uuid,
                    events::Event::NowPlaying(events::NowPlaying {
                        entry_id: None,
                        media_id: shown.media_id.as_deref().and_then(|m| m.parse().ok()),
                        title: shown.title,
                        artist: shown.artist.unwrap_or_default(),
                        album: None,
                        started_at: at,
                        duration_ms: shown.duration_ms,
                    }),
                );
            }
        }
        let tier = self.executor.status().tier;
        if tier != self.tier {
            crate::metrics::executor_priority_change(
                uuid,
                self.tier.map_or(4, Tier::number),
                tier.map_or(4, Tier::number),
            );
            if let Some(to) = &air {
                let reason = changes
                    .last()
                    .map_or_else(|| "entry_start".to_owned(), reason_name);
                let _ = self.ctx.events.publish(
                    uuid,
                    events::Event::PriorityChange(events::PriorityChange {
                        from: previous.as_ref().map(|a| self.source_ref(a)),
                        to: self.source_ref(to),
                        reason,
                    }),
                );
            }
            self.tier = tier;
        }
        self.air = air;
        if !changes.is_empty() {
            crate::metrics::executor_state(uuid, self.executor.state().as_str());
        }
        if !changes.is_empty() || air_changed {
            self.persist(at).await?;
        }
        if !changes.is_empty() {
            crate::metrics::executor_transition_duration(uuid, started.elapsed());
        }
        self.publish_snapshot(at);
        Ok(())
    }

    /// Writes the station's `executor_states` row.
    async fn persist(&self, at: DateTime<Utc>) -> Result<(), StorageError> {
        let status = self.executor.status();
        let on_air = status.on_air.main.as_ref();
        let item = on_air.map(|a| self.on_air_item(a, self.air_since));
        let row = executor_states::ExecutorStateRow {
            station_id: self.ctx.station,
            state: status.state.as_str().to_owned(),
            current_priority: status.tier.map_or(Tier::Fallback.number(), Tier::number),
            current_source_id: item
                .as_ref()
                .and_then(|i| i.source_id.clone().or_else(|| i.media_id.clone())),
            current_source_type: item.as_ref().map(|i| i.kind.clone()),
            buffer_depth: status
                .buffer_depth
                .map_or(0, |d| i64::try_from(d).unwrap_or(i64::MAX)),
            last_heartbeat: at,
            metadata: serde_json::json!({
                "on_air": item,
                "tail": status.on_air.tail.as_ref().map(|a| a.item.label()),
                "sources": status.sources.iter().map(SourceId::as_str).collect::<Vec<_>>(),
                "engine_up": status.engine_up,
                "stopped": self.stopped,
                "mount": self.ctx.config.mount,
            }),
        };
        self.ctx
            .db
            .run(move |conn| executor_states::upsert(conn, &row))
            .await
    }

    fn publish_snapshot(&self, at: DateTime<Utc>) {
        let status = self.executor.status();
        let item = status
            .on_air
            .main
            .as_ref()
            .map(|a| self.on_air_item(a, self.air_since));
        let station = self.ctx.station;
        self.ctx.now.send_modify(|snapshot| {
            let now = NowPlaying {
                station_id: station.as_uuid(),
                running: true,
                state: status.state.as_str().to_owned(),
                priority: status.tier.map(Tier::number),
                item,
                reported: snapshot.now.reported.clone(),
                sources: status.sources.iter().map(|s| s.to_string()).collect(),
                updated_at: at,
            };
            *snapshot = Arc::new(Snapshot::new(now));
        });
    }

    /// The play history row for `item`, when it is a media item.
    fn media_play(&self, item: &AirItem, at: DateTime<Utc>) -> Option<NewPlay> {
        let Item::Entry {
            source: Source::Media {
                id, title, artists, ..
            },
            index,
            planned_start,
        } = &item.item
        else {
            return None;
        };
        Some(NewPlay {
            station_id: self.ctx.station,
            media_id: id.as_str().parse().ok(),
            title: title.clone(),
            artist: (!artists.is_empty()).then(|| artists.join(", ")),
            started_at: at,
            ended_at: None,
            metadata: serde_json::json!({
                "media_id": id.as_str(),
                "entry_index": index,
                "planned_start": planned_start,
                "tier": item.tier.number(),
                "via": "executor",
            }),
        })
    }

    fn on_air_item(&self, air: &AirItem, since: DateTime<Utc>) -> OnAirItem {
        let mut shown = OnAirItem {
            kind: String::new(),
            title: air.item.label(),
            artist: None,
            album: None,
            media_id: None,
            source_id: None,
            priority: air.tier.number(),
            started_at: since,
            duration_ms: None,
        };
        match &air.item {
            Item::Entry {
                source,
                index,
                planned_start,
            } => {
                let entry = self
                    .executor
                    .timeline()
                    .and_then(|t| t.entries.get(*index))
                    .filter(|e| e.start == *planned_start);
                shown.duration_ms = entry.map(|e| e.length().as_millis());
                match source {
                    Source::Media { id, artists, .. } => {
                        shown.kind = "media".to_owned();
                        shown.media_id = Some(id.to_string());
                        shown.artist = (!artists.is_empty()).then(|| artists.join(", "));
                    }
                    Source::Webstream { id } => {
                        shown.kind = "webstream".to_owned();
                        shown.source_id = Some(id.to_string());
                    }
                    Source::Live { .. } => shown.kind = "live".to_owned(),
                    _ => shown.kind = "fallback".to_owned(),
                }
            }
            Item::Source { id } => {
                shown.kind = self
                    .kinds
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| "live".to_owned());
                shown.source_id = Some(id.to_string());
                if let Some(source) = self.executor.sources().find(|s| &s.id == id) {
                    shown.title = source.input.clone();
                    shown.duration_ms = source
                        .end
                        .and_then(|e| (e - source.start).to_std().ok())
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                }
            }
            Item::Fallback => shown.kind = "fallback".to_owned(),
        }
        shown
    }

    fn source_ref(&self, air: &AirItem) -> events::SourceRef {
        let shown = self.on_air_item(air, self.air_since);
        events::SourceRef {
            tier: event_tier(air.tier),
            source_type: shown.kind,
            source_id: shown.source_id.or(shown.media_id),
        }
    }
}

fn reason_name(change: &StateChange) -> String {
    serde_json::to_value(change.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", change.reason))
}

fn event_tier(tier: Tier) -> events::Tier {
    match tier {
        Tier::Emergency => events::Tier::Emergency,
        Tier::LiveOverride => events::Tier::LiveOverride,
        Tier::LiveScheduled => events::Tier::LiveScheduled,
        Tier::Automation => events::Tier::Automation,
        Tier::Fallback => events::Tier::Fallback,
    }
}

/// The executor's view of a stored priority source, on the pool's mount.
pub(super) fn to_priority_source(row: &PrioritySourceRow, mount: &str) -> PrioritySource {
    let tier = match row.priority {
        0 => Tier::Emergency,
        1 => Tier::LiveOverride,
        2 => Tier::LiveScheduled,
        3 => Tier::Automation,
        _ => Tier::Fallback,
    };
    let source = PrioritySource::new(
        row.id.to_string(),
        tier,
        row.input.clone(),
        row.station_id.to_string(),
        mount,
        row.starts_at,
    );
    match row.ends_at {
        Some(end) => source.until(end),
        None => source,
    }
}
