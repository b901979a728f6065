//! The executor pool on real databases: it follows a stored timeline, records what it plays,
//! re-applies stored priority sources when it starts, isolates a panicking station, and picks
//! up stations created and deactivated while it runs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::api;
use common::onair::{eventually, now, pool, recording_pool, store_songs, title_on_air};
use diesel::prelude::*;
use grimnir_priority::{Command, Item};
use grimnir_server::db::schema::play_history;
use grimnir_server::db::stations::{self, NewStation, StationChanges, StationId};
use grimnir_server::db::{Database, Page, executor_states, priority_sources};
use grimnir_server::events::{Event, EventBus};
use grimnir_server::executor_pool::{CommandSink, RecordingSink};

const WAIT: Duration = Duration::from_secs(15);

async fn station(db: &Database, name: &str) -> StationId {
    let name = name.to_owned();
    db.run(move |c| stations::create(c, &NewStation::new(name, "UTC")))
        .await
        .unwrap()
        .id
}

fn plays_of(sink: &RecordingSink, station: StationId, title: &str) -> usize {
    sink.commands(station)
        .iter()
        .filter(|c| {
            matches!(
                c,
                Command::Play {
                    item: Item::Entry { .. },
                    ..
                }
            )
        })
        .filter(|c| matches!(c, Command::Play { item, .. } if item.label() == title))
        .count()
}

async fn follows_a_stored_timeline(name: &str, db: Database) {
    let a = station(&db, "Timeline FM").await;
    let start = now();
    store_songs(
        &db,
        a,
        start,
        &[("Song 1", 2), ("Song 2", 2), ("Song 3", 30)],
    )
    .await;
    let events = EventBus::memory();
    let mut stream = events.subscribe();
    let (pool, sink) = recording_pool(&db, &events);

    eventually(&format!("{name}: Song 1 on air"), WAIT, || async {
        (title_on_air(&pool, a).as_deref() == Some("Song 1")).then_some(())
    })
    .await;
    eventually(&format!("{name}: Song 3 on air"), WAIT, || async {
        (title_on_air(&pool, a).as_deref() == Some("Song 3")).then_some(())
    })
    .await;
    assert!(
        plays_of(&sink, a, "Song 2") >= 1,
        "{name}: Song 2 was played"
    );
    assert!(
        sink.commands(a)
            .iter()
            .any(|c| matches!(c, Command::LoadGraph { .. }))
    );

    // The executor state is stored and its heartbeat moves on.
    let first = db.run(move |c| executor_states::get(c, a)).await.unwrap();
    assert_eq!(first.current_priority, 3, "{name}");
    assert!(
        ["playing", "preloading"].contains(&first.state.as_str()),
        "{name}: {first:?}"
    );
    eventually(&format!("{name}: a later heartbeat"), WAIT, || {
        let db = db.clone();
        let before = first.last_heartbeat;
        async move {
            let row = db.run(move |c| executor_states::get(c, a)).await.unwrap();
            (row.last_heartbeat > before).then_some(())
        }
    })
    .await;

    // Each song has a play history row; the ones that left the air have an end.
    let rows: Vec<(String, Option<chrono::NaiveDateTime>)> = db
        .run(move |c| {
            Ok(play_history::table
                .filter(play_history::station_id.eq(a.to_string()))
                .order(play_history::started_at)
                .select((play_history::title, play_history::ended_at))
                .load(c)?)
        })
        .await
        .unwrap();
    let titles: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["Song 1", "Song 2", "Song 3"], "{name}");
    assert!(
        rows[0].1.is_some() && rows[1].1.is_some() && rows[2].1.is_none(),
        "{name}: {rows:?}"
    );

    // now_playing was published for each song.
    let mut published = Vec::new();
    while published.len() < 3 {
        let delivery = tokio::time::timeout(WAIT, stream.recv())
            .await
            .unwrap()
            .unwrap();
        if let Event::NowPlaying(now) = &delivery.envelope().event
            && delivery.envelope().station_id == a.as_uuid()
        {
            published.push(now.title.clone());
        }
    }
    assert_eq!(published, ["Song 1", "Song 2", "Song 3"], "{name}");
    pool.shutdown();
}

async fn reapplies_a_stored_emergency(name: &str, db: Database) {
    let a = station(&db, "Alert FM").await;
    store_songs(&db, a, now(), &[("Song 1", 60)]).await;
    db.run(move |c| {
        priority_sources::create(
            c,
            &priority_sources::NewPrioritySource {
                station_id: a,
                mount_id: None,
                priority: 0,
                source_type: "emergency_audio".into(),
                source_id: None,
                input: "/alerts/eas.mp3".into(),
                starts_at: chrono::Utc::now(),
                ends_at: None,
                details: serde_json::Map::new(),
            },
        )
    })
    .await
    .unwrap();
    let events = EventBus::memory();
    for run in ["first start", "restart"] {
        let (pool, sink) = recording_pool(&db, &events);
        let on_air = eventually(&format!("{name} {run}: the alert on air"), WAIT, || async {
            pool.now_playing(a)
                .filter(|s| s.now.state == "emergency")
                .map(|s| s.now.clone())
        })
        .await;
        assert_eq!(on_air.priority, Some(0), "{name} {run}");
        assert_eq!(on_air.item.unwrap().title, "/alerts/eas.mp3");
        assert!(sink.commands(a).iter().any(
            |c| matches!(c, Command::InsertEmergency { audio, .. } if audio == "/alerts/eas.mp3")
        ));
        let row = db.run(move |c| executor_states::get(c, a)).await.unwrap();
        assert_eq!(
            (row.state.as_str(), row.current_priority),
            ("emergency", 0),
            "{name} {run}"
        );
        pool.shutdown();
    }
    let (active, _) = db
        .run(move |c| priority_sources::list_active(c, a, chrono::Utc::now(), Page::ALL))
        .await
        .unwrap();
    assert_eq!(active.len(), 1, "{name}: the source stays stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_a_stored_timeline_and_reapplies_stored_sources() {
    let backends = api::backends();
    let runs: Vec<_> = backends
        .iter()
        .map(|backend| {
            let (name, url) = (backend.name, backend.url.clone());
            tokio::spawn(async move {
                let db = Database::open(url, Default::default()).await.unwrap();
                db.migrate().await.unwrap();
                follows_a_stored_timeline(name, db.clone()).await;
                reapplies_a_stored_emergency(name, db).await;
            })
        })
        .collect();
    let mut failed = None;
    for run in runs {
        if let Err(e) = run.await {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Panics the first time it is given commands for one station; records everything else.
#[derive(Debug)]
struct PanicOnce {
    station: StationId,
    armed: AtomicBool,
    inner: RecordingSink,
}

impl CommandSink for PanicOnce {
    fn deliver(&self, station: StationId, commands: &[Command]) {
        if station == self.station && self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected panic for station {station}");
        }
        self.inner.deliver(station, commands);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_station_is_restarted_and_the_others_play_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        grimnir_server::db::DatabaseUrl::sqlite_file(dir.path().join("g.db")),
        Default::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let doomed = station(&db, "Doomed FM").await;
    let steady = station(&db, "Steady FM").await;
    store_songs(&db, doomed, now(), &[("Doomed song", 60)]).await;
    store_songs(&db, steady, now(), &[("Steady song", 60)]).await;
    let sink = Arc::new(PanicOnce {
        station: doomed,
        armed: AtomicBool::new(true),
        inner: RecordingSink::new(),
    });
    let pool = pool(&db, &EventBus::memory(), sink.clone());

    eventually("the doomed station back on air", WAIT, || async {
        (pool.panics() == 1 && title_on_air(&pool, doomed).as_deref() == Some("Doomed song"))
            .then_some(())
    })
    .await;
    eventually("the steady station on air", WAIT, || async {
        (title_on_air(&pool, steady).as_deref() == Some("Steady song")).then_some(())
    })
    .await;
    let graphs = |s| {
        sink.inner
            .commands(s)
            .iter()
            .filter(|c| matches!(c, Command::LoadGraph { .. }))
            .count()
    };
    // The steady station started once; the doomed one's first start panicked before anything
    // was recorded, and its second recorded its own LoadGraph.
    assert_eq!(graphs(steady), 1);
    assert_eq!(graphs(doomed), 1);
    assert_eq!(pool.panics(), 1);
    assert!(pool.is_running(doomed) && pool.is_running(steady));
    pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_created_deactivated_and_deleted_while_running_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        grimnir_server::db::DatabaseUrl::sqlite_file(dir.path().join("g.db")),
        Default::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let (pool, _) = recording_pool(&db, &EventBus::memory());
    let a = station(&db, "New FM").await;
    let b = station(&db, "Doomed FM").await;
    eventually("the new stations running", WAIT, || async {
        (pool.is_running(a) && pool.is_running(b)).then_some(())
    })
    .await;
    // With no timeline, the fallback plays.
    let fallback = eventually("the fallback on air", WAIT, || async {
        pool.now_playing(a).and_then(|s| s.now.item.clone())
    })
    .await;
    assert_eq!((fallback.kind.as_str(), fallback.priority), ("fallback", 4));

    db.run(move |c| {
        stations::update(
            c,
            a,
            &StationChanges {
                active: Some(false),
                ..StationChanges::default()
            },
        )
    })
    .await
    .unwrap();
    db.run(move |c| stations::delete(c, b)).await.unwrap();
    eventually("both stopped", WAIT, || async {
        (!pool.is_running(a) && !pool.is_running(b)).then_some(())
    })
    .await;
    assert!(pool.now_playing(a).is_none());
    let idle = eventually("the deactivated station's state idle", WAIT, || {
        let db = db.clone();
        async move {
            db.run(move |c| executor_states::get(c, a))
                .await
                .ok()
                .filter(|row| row.state == "idle")
        }
    })
    .await;
    assert_eq!(idle.current_priority, 4);
    pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grimnir_serve_runs_the_pool_and_reapplies_a_stored_emergency() {
    use grimnir_server::config::{Config, EnvVars};
    let data = tempfile::tempdir().unwrap();
    let env = EnvVars::from_pairs([
        ("GRIMNIR_DATA_DIR", data.path().to_str().unwrap()),
        ("GRIMNIR_HTTP_LISTEN", "127.0.0.1:0"),
    ]);
    let (config, _) = Config::load(None, &env).unwrap();
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let db = Database::open(config.database.url.clone(), Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    // As a previous run of the server left it: a station with an emergency on.
    let a = station(&db, "Served FM").await;
    db.run(move |c| {
        priority_sources::create(
            c,
            &priority_sources::NewPrioritySource {
                station_id: a,
                mount_id: None,
                priority: 0,
                source_type: "emergency_audio".into(),
                source_id: None,
                input: "/alerts/eas.mp3".into(),
                starts_at: chrono::Utc::now(),
                ends_at: None,
                details: serde_json::Map::new(),
            },
        )
    })
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        grimnir_server::server::serve(&config, async {
            let _ = stopped.await;
        })
        .await
    });
    let row = eventually("the served station's executor state", WAIT, || {
        let db = db.clone();
        async move { db.run(move |c| executor_states::get(c, a)).await.ok() }
    })
    .await;
    assert_eq!((row.state.as_str(), row.current_priority), ("emergency", 0));
    assert_eq!(row.current_source_type.as_deref(), Some("emergency_audio"));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
