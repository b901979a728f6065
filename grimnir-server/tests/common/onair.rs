//! Helpers for the executor pool and on-air tests: a fast pool, timelines stored as schedule
//! entries, and bounded waits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use grimnir_priority::Millis;
use grimnir_priority::programme::{Programme, ProgrammeEntry};
use grimnir_server::db::Database;
use grimnir_server::db::schema::{mounts, schedule_entries};
use grimnir_server::db::stations::StationId;
use grimnir_server::events::EventBus;
use grimnir_server::executor_pool::{CommandSink, ExecutorPool, PoolConfig, RecordingSink};

/// A pool configuration that notices things within a fraction of a second.
pub fn fast_config() -> PoolConfig {
    PoolConfig {
        heartbeat: Duration::from_millis(200),
        rescan: Duration::from_millis(100),
        timeline_refresh: Duration::from_millis(300),
        restart_delay: Duration::from_millis(100),
        ..PoolConfig::default()
    }
}

/// A started pool with [`fast_config`] sending to `sink`.
pub fn pool(db: &Database, events: &EventBus, sink: Arc<dyn CommandSink>) -> ExecutorPool {
    let pool = ExecutorPool::new(db.clone(), events.clone(), sink, fast_config());
    pool.start();
    pool
}

/// A started pool with [`fast_config`] and a recording sink, and the sink.
pub fn recording_pool(db: &Database, events: &EventBus) -> (ExecutorPool, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::new());
    (pool(db, events, sink.clone()), sink)
}

/// Now, to the microsecond the databases keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Stores songs back to back from `start` as `station`'s schedule entries, each with the
/// planner entry as its metadata.
pub async fn store_songs(
    db: &Database,
    station: StationId,
    start: DateTime<Utc>,
    songs: &[(&str, u64)],
) {
    let mut programme = Programme::new(station.to_string(), start);
    for (title, secs) in songs {
        programme
            .entries
            .push(ProgrammeEntry::song(*title, Millis::from_secs(*secs)));
    }
    let entries = programme.to_timeline().entries;
    db.run(move |conn| {
        for e in &entries {
            let at = Utc::now().naive_utc();
            diesel::insert_into(schedule_entries::table)
                .values((
                    schedule_entries::id.eq(uuid::Uuid::new_v4().to_string()),
                    schedule_entries::station_id.eq(station.to_string()),
                    schedule_entries::starts_at.eq(e.start.naive_utc()),
                    schedule_entries::ends_at.eq(e.end.naive_utc()),
                    schedule_entries::tier.eq(3i16),
                    schedule_entries::source_type.eq("media"),
                    schedule_entries::metadata.eq(serde_json::to_string(e).unwrap()),
                    schedule_entries::created_at.eq(at),
                    schedule_entries::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
    .await
    .unwrap();
}

/// Stores a mount of `station` and returns its id.
pub async fn store_mount(db: &Database, station: StationId) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    db.run(move |conn| {
        let at = Utc::now().naive_utc();
        diesel::insert_into(mounts::table)
            .values((
                mounts::id.eq(id.to_string()),
                mounts::station_id.eq(station.to_string()),
                mounts::name.eq("main"),
                mounts::outputs.eq("[]"),
                mounts::created_at.eq(at),
                mounts::updated_at.eq(at),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await
    .unwrap();
    id
}

/// Polls `probe` every 20 ms until it answers, for at most `timeout`; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The title on air at `station`, from the pool's memory.
pub fn title_on_air(pool: &ExecutorPool, station: StationId) -> Option<String> {
    pool.now_playing(station)
        .and_then(|s| s.now.item.as_ref().map(|i| i.title.clone()))
}
