//! The on-air API with a running executor pool, on SQLite, PostgreSQL and MariaDB: an emergency
//! takes tier 0, shows in the executor state, the event stream and the audit log, and survives
//! a restart; skip, stop and reload act on the executor; now-playing answers from memory; spins
//! count the play history; DJs go live and back.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::api::{self, Credential, World};
use common::onair::{eventually, now, store_mount, store_songs, title_on_air};
use grimnir_server::db::Database;
use grimnir_server::events::{Event, Tier};
use grimnir_server::executor_pool::{ExecutorPool, RecordingSink};
use grimnir_server::http::{self, AppState};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

/// A world whose state runs a fast executor pool.
async fn world(db: Database) -> (World, Arc<RecordingSink>) {
    let mut state = common::state(db);
    let sink = Arc::new(RecordingSink::new());
    state.executors = common::onair::pool(&state.db, &state.events, sink.clone());
    (World::new(state).await, sink)
}

fn bearer(token: &str) -> Credential {
    Credential::Bearer(token.to_owned())
}

async fn post(app: &axum::Router, who: &Credential, path: &str, body: Value) -> api::Answer {
    api::call(Method::POST, path)
        .auth(who)
        .json(&body)
        .send(app)
        .await
}

async fn get(app: &axum::Router, who: &Credential, path: &str) -> api::Answer {
    api::call(Method::GET, path).auth(who).send(app).await
}

/// Runs `check` on every backend, side by side.
async fn on_every_backend<F, Fut>(check: F)
where
    F: Fn(&'static str, Database) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let backends = api::backends();
    let mut runs = Vec::new();
    for backend in &backends {
        let db = api::open(backend).await;
        runs.push(tokio::spawn(check(backend.name, db)));
    }
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

async fn emergency(name: &'static str, db: Database) {
    let (w, sink) = world(db).await;
    let a = w.a;
    store_songs(
        &w.state.db,
        a,
        now() + chrono::Duration::seconds(1),
        &[("Song 1", 120)],
    )
    .await;
    let pool = w.state.executors.clone();
    eventually(&format!("{name}: Song 1 on air"), WAIT, || async {
        (title_on_air(&pool, a).as_deref() == Some("Song 1")).then_some(())
    })
    .await;
    let mut stream = w.state.events.subscribe();
    let manager = bearer(&w.manager_a.token);
    let dj = bearer(&w.dj_a.token);
    let path = format!("/api/v1/stations/{a}/priority/emergency");
    let body = json!({"audio_file": "/alerts/eas.mp3", "duration_seconds": 600});

    let refused = post(&w.app, &dj, &path, body.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "{name}: a DJ may not"
    );
    let empty = post(&w.app, &manager, &path, json!({"audio_file": " "})).await;
    assert_eq!(
        (empty.status, empty.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("audio_file"))
    );

    let answer = post(&w.app, &manager, &path, body).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{name}: {}",
        answer.text
    );
    assert_eq!(answer.body["source"]["priority"], 0);
    assert_eq!(answer.body["source"]["tier"], "emergency");
    assert_eq!(
        answer.body["on_air"]["state"], "emergency",
        "{name}: {}",
        answer.text
    );
    assert_eq!(answer.body["on_air"]["priority"], 0);
    assert_eq!(answer.body["on_air"]["item"]["title"], "/alerts/eas.mp3");
    let source_id = answer.body["source"]["id"].as_str().unwrap().to_owned();
    assert!(sink.commands(a).iter().any(|c| matches!(c,
        grimnir_priority::Command::InsertEmergency { audio, .. } if audio == "/alerts/eas.mp3")));

    // The executor state, for one station and in the list.
    let state = get(&w.app, &dj, &format!("/api/v1/stations/{a}/executor/state")).await;
    assert_eq!(state.status, StatusCode::OK, "{name}: {}", state.text);
    assert_eq!(state.body["state"], "emergency");
    assert_eq!(state.body["current_priority"], 0);
    assert_eq!(state.body["current_source_type"], "emergency_audio");
    assert_eq!(state.body["current_source_id"], source_id.as_str());
    assert_eq!(state.body["running"], true);
    let all = get(&w.app, &dj, "/api/v1/executor/states").await;
    assert_eq!(all.status, StatusCode::OK);
    let mine: Vec<&Value> = all.body["items"].as_array().unwrap().iter().collect();
    assert!(
        mine.iter()
            .any(|s| s["station_id"] == a.to_string() && s["state"] == "emergency")
    );
    assert!(
        mine.iter().all(|s| s["station_id"] == a.to_string()),
        "{name}: only A for its DJ"
    );
    let other = get(
        &w.app,
        &bearer(&w.manager_b.token),
        "/api/v1/executor/states",
    )
    .await;
    assert!(
        other.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["station_id"] != a.to_string())
    );

    // The event stream saw the tier change.
    let change = tokio::time::timeout(WAIT, async {
        loop {
            let delivery = stream.recv().await.unwrap();
            if let Event::PriorityChange(change) = &delivery.envelope().event
                && delivery.envelope().station_id == a.as_uuid()
            {
                return change.clone();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(change.to.tier, Tier::Emergency);
    assert_eq!(change.from.map(|f| f.tier), Some(Tier::Automation));

    // Listed, and in the audit log.
    let sources = get(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/priority/sources"),
    )
    .await;
    assert_eq!(sources.body["total"], 1, "{name}: {}", sources.text);
    let audit = get(&w.app, &manager, &format!("/api/v1/audit?station_id={a}")).await;
    assert!(
        audit.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "priority.emergency"
                && e["details"]["input"] == "/alerts/eas.mp3"),
        "{name}: {}",
        audit.text
    );

    // A restart (a new pool on the same database) puts the alert back.
    w.state.executors.shutdown();
    let pool = common::onair::pool(&w.state.db, &w.state.events, Arc::new(RecordingSink::new()));
    eventually(
        &format!("{name}: the alert back after a restart"),
        WAIT,
        || async {
            pool.now_playing(a)
                .filter(|s| s.now.state == "emergency")
                .map(|_| ())
        },
    )
    .await;
    let app = http::router(AppState {
        executors: pool.clone(),
        ..w.state.clone()
    });
    let removed = api::call(
        Method::DELETE,
        &format!("/api/v1/stations/{a}/priority/sources/{source_id}"),
    )
    .auth(&manager)
    .send(&app)
    .await;
    assert_eq!(
        removed.status,
        StatusCode::NO_CONTENT,
        "{name}: {}",
        removed.text
    );
    let back = pool.now_playing(a).unwrap();
    assert_eq!(back.now.priority, Some(3), "{name}: automation is back");
    assert_eq!(title_on_air(&pool, a).as_deref(), Some("Song 1"));
    let again = api::call(
        Method::DELETE,
        &format!("/api/v1/stations/{a}/priority/sources/{source_id}"),
    )
    .auth(&manager)
    .send(&app)
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_takes_tier_0_shows_everywhere_and_survives_a_restart() {
    on_every_backend(emergency).await;
}

async fn playout(name: &'static str, db: Database) {
    let (w, _) = world(db).await;
    let a = w.a;
    let songs = [("Song 1", 120), ("Song 2", 120), ("Song 3", 120)];
    store_songs(&w.state.db, a, now() + chrono::Duration::seconds(1), &songs).await;
    let pool = w.state.executors.clone();
    eventually(&format!("{name}: Song 1 on air"), WAIT, || async {
        (title_on_air(&pool, a).as_deref() == Some("Song 1")).then_some(())
    })
    .await;
    let dj = bearer(&w.dj_a.token);
    let key = Credential::ApiKey(w.key_a_dj.key.clone());

    let now_playing = get(&w.app, &key, &format!("/api/v1/stations/{a}/now-playing")).await;
    assert_eq!(
        now_playing.status,
        StatusCode::OK,
        "{name}: {}",
        now_playing.text
    );
    assert_eq!(now_playing.headers["content-type"], "application/json");
    assert_eq!(now_playing.body["running"], true);
    assert_eq!(now_playing.body["item"]["title"], "Song 1");
    assert_eq!(now_playing.body["item"]["kind"], "media");
    assert_eq!(now_playing.body["priority"], 3);

    let skipped = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/playout/skip"),
        json!({}),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::OK, "{name}: {}", skipped.text);
    assert_eq!(
        skipped.body["item"]["title"], "Song 2",
        "{name}: {}",
        skipped.text
    );

    let stopped = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/playout/stop"),
        json!({}),
    )
    .await;
    assert_eq!(stopped.status, StatusCode::OK);
    assert_eq!(stopped.body["state"], "idle");
    assert_eq!(stopped.body["item"], Value::Null);

    let reloaded = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/playout/reload"),
        json!({}),
    )
    .await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert_eq!(
        reloaded.body["item"]["title"], "Song 2",
        "{name}: {}",
        reloaded.text
    );
    assert_eq!(reloaded.body["priority"], 3);

    let audit = get(
        &w.app,
        &bearer(&w.manager_a.token),
        &format!("/api/v1/audit?station_id={a}"),
    )
    .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("playout."))
        .collect();
    assert_eq!(actions.len(), 3, "{name}: {actions:?}");

    // Other stations' callers are refused; an unknown station is 404.
    let other = get(
        &w.app,
        &bearer(&w.manager_b.token),
        &format!("/api/v1/stations/{a}/now-playing"),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let unknown = get(
        &w.app,
        &bearer(&w.admin.token),
        &format!("/api/v1/stations/{}/now-playing", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    w.state.executors.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_stop_and_reload_act_on_the_executor_and_now_playing_answers() {
    on_every_backend(playout).await;
}

async fn spins(name: &'static str, db: Database) {
    let (w, _) = world(db).await;
    let a = w.a;
    let key = Credential::ApiKey(w.key_a_dj.key.clone());
    let dj = bearer(&w.dj_a.token);
    let hook = "/api/v1/webhooks/track-start";
    for _ in 0..2 {
        let hit = post(
            &w.app,
            &key,
            hook,
            json!({"title": "Hit", "artist": "Band", "duration_ms": 180000}),
        )
        .await;
        assert_eq!(hit.status, StatusCode::CREATED, "{name}: {}", hit.text);
        assert_eq!(hit.body["now_playing"]["title"], "Hit");
    }
    let missing = post(&w.app, &dj, hook, json!({"title": "Other"})).await;
    assert_eq!(
        (missing.status, missing.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("station_id"))
    );
    let elsewhere = post(
        &w.app,
        &key,
        hook,
        json!({"title": "Other", "station_id": w.b.to_string()}),
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let untitled = post(&w.app, &key, hook, json!({"title": "  "})).await;
    assert_eq!(untitled.field(), Some("title"));
    let other = post(
        &w.app,
        &dj,
        hook,
        json!({"title": "Other", "station_id": a.to_string()}),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{name}: {}", other.text);

    let spins = get(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/analytics/spins"),
    )
    .await;
    assert_eq!(spins.status, StatusCode::OK, "{name}: {}", spins.text);
    assert_eq!(spins.body["total"], 2, "{name}: {}", spins.text);
    assert_eq!(spins.body["items"][0]["title"], "Hit");
    assert_eq!(spins.body["items"][0]["artist"], "Band");
    assert_eq!(spins.body["items"][0]["plays"], 2);
    assert_eq!(spins.body["items"][1]["title"], "Other");
    assert_eq!(spins.body["items"][1]["plays"], 1);
    let paged = get(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/analytics/spins?limit=1&offset=1"),
    )
    .await;
    assert_eq!(paged.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(paged.body["items"][0]["title"], "Other");
    let past = get(
        &w.app,
        &dj,
        &format!(
            "/api/v1/stations/{a}/analytics/spins?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"
        ),
    )
    .await;
    assert_eq!(past.body["total"], 0);
    let backwards = get(
        &w.app,
        &dj,
        &format!(
            "/api/v1/stations/{a}/analytics/spins?from=2020-01-02T00:00:00Z&to=2020-01-01T00:00:00Z"
        ),
    )
    .await;
    assert_eq!(
        (backwards.status, backwards.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("to"))
    );

    // What the external playout reported shows in now-playing once the executor runs.
    let pool = w.state.executors.clone();
    eventually(&format!("{name}: A's executor running"), WAIT, || async {
        pool.is_running(a).then_some(())
    })
    .await;
    post(&w.app, &key, hook, json!({"title": "Latest"})).await;
    let now_playing = get(&w.app, &dj, &format!("/api/v1/stations/{a}/now-playing")).await;
    assert_eq!(
        now_playing.body["reported"]["title"], "Latest",
        "{name}: {}",
        now_playing.text
    );
    assert_eq!(now_playing.body["reported"]["kind"], "external");
    pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spins_count_the_play_history_and_webhook_reports() {
    on_every_backend(spins).await;
}

async fn live(name: &'static str, db: Database) {
    let (w, _) = world(db).await;
    let a = w.a;
    let mount = store_mount(&w.state.db, a).await;
    let mount_b = store_mount(&w.state.db, w.b).await;
    let pool = w.state.executors.clone();
    eventually(&format!("{name}: A's executor running"), WAIT, || async {
        pool.now_playing(a)
            .filter(|s| s.now.item.is_some())
            .map(|_| ())
    })
    .await;
    let dj = bearer(&w.dj_a.token);

    let authorized = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/live/authorize"),
        json!({"mount_id": mount}),
    )
    .await;
    assert_eq!(
        authorized.status,
        StatusCode::CREATED,
        "{name}: {}",
        authorized.text
    );
    assert_eq!(authorized.body["purpose"], "live_source");
    let credential = authorized.body["credential"].as_str().unwrap();
    let keys = w.state.auth.keys();
    let claims = keys.verify_live(credential).unwrap();
    assert_eq!(claims.station, a.to_string());
    assert_eq!(claims.mount, mount.to_string());
    assert_eq!(claims.sub, w.dj_a.id.to_string());
    assert!(claims.exp - claims.iat <= 300);
    assert!(keys.verify(credential).is_err(), "not an access token");
    assert!(
        keys.verify_live(&w.dj_a.token).is_err(),
        "an access token is not a credential"
    );
    let foreign = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/live/authorize"),
        json!({"mount_id": mount_b}),
    )
    .await;
    assert_eq!(
        (foreign.status, foreign.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("mount_id"))
    );

    let bad = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/live/handover"),
        json!({"input": "live/dj", "priority": 0}),
    )
    .await;
    assert_eq!(bad.field(), Some("priority"));
    let on = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/live/handover"),
        json!({"input": "icecast://localhost:8000/live", "priority": 1, "mount_id": mount}),
    )
    .await;
    assert_eq!(on.status, StatusCode::CREATED, "{name}: {}", on.text);
    assert_eq!(on.body["on_air"]["priority"], 1);
    assert!(["live", "fading"].contains(&on.body["on_air"]["state"].as_str().unwrap()));
    assert_eq!(on.body["on_air"]["item"]["kind"], "live_icecast");
    let id = on.body["source"]["id"].as_str().unwrap().to_owned();

    let off = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/live/release"),
        json!({"source_id": id}),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{name}: {}", off.text);
    assert_eq!(off.body["source"]["active"], false);
    assert_eq!(
        off.body["on_air"]["priority"], 4,
        "{name}: the fallback again, no timeline"
    );
    let twice = post(
        &w.app,
        &dj,
        &format!("/api/v1/stations/{a}/live/release"),
        json!({"source_id": id}),
    )
    .await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
    pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dj_is_authorized_goes_live_and_gives_the_air_back() {
    on_every_backend(live).await;
}

/// Without a started pool, sources are stored and applied later; playout controls say no
/// executor runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_running_executor_sources_wait_and_controls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        grimnir_server::db::DatabaseUrl::sqlite_file(dir.path().join("g.db")),
        Default::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let w = World::new(common::state(db)).await;
    let a = w.a;
    let manager = bearer(&w.manager_a.token);
    let created = post(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/priority/override"),
        json!({"source_url": "icecast://localhost:8000/live"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["on_air"], Value::Null);
    assert_eq!(created.body["source"]["priority"], 1);
    let skip = post(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/playout/skip"),
        json!({}),
    )
    .await;
    assert_eq!(
        (skip.status, skip.code()),
        (StatusCode::CONFLICT, "executor_not_running")
    );
    let now_playing = get(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/now-playing"),
    )
    .await;
    assert_eq!(now_playing.body["running"], false);
    let state = get(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/executor/state"),
    )
    .await;
    assert_eq!(
        (
            state.body["state"].as_str(),
            state.body["last_heartbeat"].is_null()
        ),
        (Some("idle"), true)
    );
    let both = post(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/priority/sources"),
        json!({"priority": 2, "source_type": "live", "input": "x", "ends_at": "2099-01-01T00:00:00Z", "duration_seconds": 5}),
    )
    .await;
    assert_eq!(both.field(), Some("duration_seconds"));
    let tier3 = post(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/priority/sources"),
        json!({"priority": 3, "source_type": "live", "input": "x"}),
    )
    .await;
    assert_eq!(tier3.field(), Some("priority"));

    // When the pool starts, the stored override takes the air.
    let pool: ExecutorPool =
        common::onair::pool(&w.state.db, &w.state.events, Arc::new(RecordingSink::new()));
    eventually("the override on air", WAIT, || async {
        pool.now_playing(a)
            .filter(|s| s.now.priority == Some(1))
            .map(|_| ())
    })
    .await;
    pool.shutdown();
}

async fn graph(name: &'static str, db: Database) {
    let (w, sink) = world(db).await;
    let a = w.a;
    store_songs(
        &w.state.db,
        a,
        now() + chrono::Duration::seconds(1),
        &[("Song 1", 120)],
    )
    .await;
    let pool = w.state.executors.clone();
    eventually(&format!("{name}: Song 1 on air"), WAIT, || async {
        (title_on_air(&pool, a).as_deref() == Some("Song 1")).then_some(())
    })
    .await;
    let manager = bearer(&w.manager_a.token);
    let created = post(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/dsp-graphs"),
        json!({"name": "night", "nodes": [{"type": "limiter"}]}),
    )
    .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{name}: {}",
        created.text
    );
    let graph = created.body["id"].as_str().unwrap().to_owned();
    let loads = |graph: String| {
        let sink = sink.clone();
        move || {
            sink.commands(a).iter().any(|c| {
                matches!(c, grimnir_priority::Command::LoadGraph { graph: g, .. } if *g == graph)
            })
        }
    };
    assert!(
        !loads(graph.clone())(),
        "{name}: not loaded before it is applied"
    );
    let applied = post(
        &w.app,
        &manager,
        &format!("/api/v1/stations/{a}/dsp-graphs/{graph}/apply"),
        json!({}),
    )
    .await;
    assert_eq!(applied.status, StatusCode::OK, "{name}: {}", applied.text);
    let loaded = loads(graph.clone());
    eventually(
        &format!("{name}: the engine told to load the graph"),
        WAIT,
        || {
            let done = loaded();
            async move { done.then_some(()) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_graph_is_loaded_by_the_engine_at_once() {
    on_every_backend(graph).await;
}
