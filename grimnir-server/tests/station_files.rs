//! Declarative station files: validation that names file, line and field; application to
//! each database; changes applied while the server runs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::Duration;

use diesel::prelude::*;
use grimnir_server::db::schema::{dsp_graphs, mounts, stations};
use grimnir_server::db::{Database, DatabaseUrl, PoolOptions};
use grimnir_server::station_files::{
    self, FileState, HlsOutput, OutputSpec, StationFileError, Watcher, dsp_graph_id,
};

const ID: &str = "0b9f3f0e-5c7a-4d8e-9a51-7d4f1c2b3a10";

/// SPEC.md's example station file, with a real id.
fn spec_example() -> String {
    format!(
        r#"# /etc/grimnirradio/stations/wgmr.yaml
station:
  id: "{ID}"
  name: "WGMR FM"
  timezone: "America/New_York"

mounts:
  - id: "mount-main"
    name: "Main Stream 128k MP3"
    outputs:
      - type: icecast
        url: "icecast://source:password@localhost:8000/stream"
        format: mp3
        bitrate_kbps: 128
        channels: 2
        sample_rate: 44100

      - type: hls
        path: "/var/www/hls/wgmr"
        segment_duration_sec: 4
        playlist_size: 6

      - type: recording
        path: "/var/recordings/wgmr"
        format: mp3
        bitrate_kbps: 192
        rotation_days: 30
        max_size_gb: 100

dsp_graph:
  nodes:
    - type: loudness_normalize
      config:
        target_lufs: -16.0
        true_peak_limit_dbtp: -1.0
        integrated_window_sec: 3.0

    - type: agc
      config:
        enabled: true
        target_level_db: -14.0
        max_gain_db: 12.0
        attack_ms: 10
        release_ms: 100

    - type: compressor
      config:
        threshold_db: -20.0
        ratio: 3.0
        knee_db: 6.0
        attack_ms: 5
        release_ms: 50
        makeup_gain_db: 2.0

    - type: limiter
      config:
        threshold_db: -1.0
        lookahead_ms: 5
        release_ms: 10

    - type: silence_detector
      config:
        threshold_db: -40.0
        duration_sec: 5.0
        action: failover_to_fallback

failover:
  live_timeout_sec: 30
  automation_fallback_enabled: true
  fallback_audio_path: "/media/fallback/emergency.mp3"
  fallback_audio_loop: true

priorities:
  emergency: 0
  live_override: 1
  live_scheduled: 2
  automation: 3
  fallback: 4
"#
    )
}

#[test]
fn the_spec_example_is_a_valid_station_file() {
    let file = station_files::parse(Path::new("wgmr.yaml"), &spec_example()).unwrap();
    assert_eq!(file.station.name, "WGMR FM");
    assert_eq!(file.mounts.len(), 1);
    assert_eq!(file.mounts[0].outputs.len(), 3);
    assert!(matches!(
        file.mounts[0].outputs[1],
        OutputSpec::Hls(HlsOutput {
            playlist_size: 6,
            ..
        })
    ));
    assert_eq!(file.dsp_graph.as_ref().unwrap().nodes.len(), 5);
    assert_eq!(file.failover.live_timeout_sec, 30.0);
}

/// Replaces `from` (which must occur once) by `to` in the example.
fn edited(from: &str, to: &str) -> String {
    let text = spec_example();
    assert_eq!(text.matches(from).count(), 1, "{from:?} occurs once");
    text.replace(from, to)
}

#[test]
fn every_mistake_is_named_with_its_file_line_and_field() {
    // (what to change, to what, the field named, the text on its line, words the message
    // holds)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "America/New_York",
            "America/Gotham",
            "station.timezone",
            "timezone:",
            "not an IANA time zone",
        ),
        (
            "bitrate_kbps: 128",
            "bitrate_kbps: 0",
            "mounts[0].outputs[0].bitrate_kbps",
            "bitrate_kbps: 0",
            "8 to 512",
        ),
        (
            "sample_rate: 44100",
            "sample_rate: 44000",
            "mounts[0].outputs[0].sample_rate",
            "sample_rate: 44000",
            "one of",
        ),
        (
            "icecast://source:password@localhost:8000/stream",
            "http://localhost:8000/stream",
            "mounts[0].outputs[0].url",
            "url:",
            "icecast://",
        ),
        (
            "type: hls",
            "type: dash",
            "mounts[0].outputs[1].type",
            "type: dash",
            "unknown variant `dash`",
        ),
        (
            "playlist_size: 6",
            "playlist_size: 6\n        segment_count: 4",
            "mounts[0].outputs[1].segment_count",
            "segment_count",
            "unknown field `segment_count`",
        ),
        (
            "ratio: 3.0",
            "ratio: 0.5",
            "dsp_graph.nodes[2].config.ratio",
            "ratio: 0.5",
            "0.5",
        ),
        (
            "live_timeout_sec: 30",
            "live_timeout_sec: -1",
            "failover.live_timeout_sec",
            "live_timeout_sec",
            "above 0",
        ),
        (
            "automation: 3",
            "automation: 0",
            "priorities.automation",
            "automation: 0",
            "the ladder is fixed",
        ),
        (
            "rotation_days: 30",
            "rotation_days: thirty",
            "mounts[0].outputs[2].rotation_days",
            "rotation_days",
            "invalid type",
        ),
        (
            "name: \"WGMR FM\"",
            "name: \"  \"",
            "station.name",
            "name: \"  \"",
            "not blank",
        ),
    ];
    for (from, to, field, marker, words) in cases {
        let text = edited(from, to);
        let line = 1 + text.lines().position(|l| l.contains(marker)).unwrap();
        let err = station_files::parse(Path::new("/etc/stations/wgmr.yaml"), &text).unwrap_err();
        let StationFileError::Invalid {
            path,
            line: got_line,
            field: got_field,
            message,
            ..
        } = &err
        else {
            panic!("{to}: {err:?}");
        };
        assert_eq!(path, Path::new("/etc/stations/wgmr.yaml"));
        assert_eq!(got_field, field, "{to}: {err}");
        assert_eq!(*got_line, Some(line), "{to}: {err}");
        assert!(message.contains(words), "{to}: {err}");
        // And the one line an operator reads says all of it.
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("/etc/stations/wgmr.yaml:{line}:")) && shown.contains(field),
            "{shown}"
        );
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let twice = spec_example().replace(
        "dsp_graph:",
        "  - id: \"mount-main\"\n    name: again\n    outputs:\n      - type: recording\n        path: /tmp/x\n        format: flac\n\ndsp_graph:",
    );
    let err = station_files::parse(Path::new("a.yaml"), &twice).unwrap_err();
    assert!(
        err.to_string().contains("mounts[1].id") && err.to_string().contains("already"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), spec_example()).unwrap();
    std::fs::write(
        dir.path().join("b.yml"),
        spec_example().replace("mount-main", "other"),
    )
    .unwrap();
    let err = station_files::read_dir(dir.path()).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("b.yml:3:") && shown.contains("already declared in"),
        "{shown}"
    );
}

async fn open(url: DatabaseUrl) -> Database {
    let db = Database::open(url, PoolOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// Loads a directory with the example into `db`, changes it, and checks the database each time.
async fn exercise(db: Database) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wgmr.yaml");
    std::fs::write(&path, spec_example()).unwrap();
    let states = station_files::load_all(&db, dir.path()).await.unwrap();
    assert!(matches!(states.get(&path), Some(FileState::Applied(_))));

    let (name, tz) = db
        .run(|c| {
            Ok(stations::table
                .find(ID)
                .select((stations::name, stations::timezone))
                .first::<(String, String)>(c)?)
        })
        .await
        .unwrap();
    assert_eq!(
        (name.as_str(), tz.as_str()),
        ("WGMR FM", "America/New_York")
    );
    let mount_ids = || {
        db.run(|c| {
            Ok(mounts::table
                .filter(mounts::station_id.eq(ID))
                .order(mounts::id)
                .select(mounts::id)
                .load::<String>(c)?)
        })
    };
    assert_eq!(mount_ids().await.unwrap(), ["mount-main"]);
    let graph_id = dsp_graph_id(ID.parse().unwrap()).to_string();
    let nodes = |id: String| {
        db.run(move |c| {
            Ok(dsp_graphs::table
                .find(id)
                .select(dsp_graphs::nodes)
                .first::<String>(c)
                .optional()?)
        })
    };
    let stored = nodes(graph_id.clone()).await.unwrap().unwrap();
    assert!(stored.contains("\"ratio\":3.0"), "{stored}");
    // The file's graph is the one applied to the station.
    let applied = db
        .run(|c| grimnir_server::db::dsp_graphs::applied(c, ID.parse().unwrap()))
        .await
        .unwrap()
        .expect("the file's graph is applied");
    assert_eq!(applied.id.to_string(), graph_id);

    // Applying the same file again changes nothing and duplicates nothing.
    let mut watcher = Watcher::new(db.clone(), dir.path().to_owned(), states);
    assert!(watcher.check().await.is_empty());

    // A change while running: renamed, a mount swapped for another, the graph edited.
    std::fs::write(
        &path,
        spec_example()
            .replace("WGMR FM", "WGMR Ærø 📻")
            .replace("mount-main", "mount-hq")
            .replace("ratio: 3.0", "ratio: 4.0"),
    )
    .unwrap();
    assert_eq!(watcher.check().await, std::slice::from_ref(&path));
    let name = db
        .run(|c| {
            Ok(stations::table
                .find(ID)
                .select(stations::name)
                .first::<String>(c)?)
        })
        .await
        .unwrap();
    assert_eq!(name, "WGMR Ærø 📻");
    assert_eq!(mount_ids().await.unwrap(), ["mount-hq"]);
    assert!(
        nodes(graph_id.clone())
            .await
            .unwrap()
            .unwrap()
            .contains("\"ratio\":4.0")
    );

    // An invalid change is refused, named, and the station keeps what it had.
    std::fs::write(&path, spec_example().replace("ratio: 3.0", "ratio: 0.5")).unwrap();
    assert!(watcher.check().await.is_empty());
    match watcher.states().get(&path) {
        Some(FileState::Refused { error, .. }) => {
            assert!(error.contains("dsp_graph.nodes[2].config.ratio"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mount_ids().await.unwrap(), ["mount-hq"]);

    // Without a graph, the file's graph goes; the file gone, the station stays.
    let no_graph = {
        let text = spec_example();
        let start = text.find("dsp_graph:").unwrap();
        let end = text.find("failover:").unwrap();
        format!("{}{}", &text[..start], &text[end..])
    };
    std::fs::write(&path, no_graph).unwrap();
    assert_eq!(watcher.check().await, std::slice::from_ref(&path));
    assert_eq!(nodes(graph_id).await.unwrap(), None);
    std::fs::remove_file(&path).unwrap();
    assert!(watcher.check().await.is_empty());
    let count = db
        .run(|c| {
            Ok(stations::table
                .filter(stations::id.eq(ID))
                .count()
                .get_result::<i64>(c)?)
        })
        .await
        .unwrap();
    assert_eq!(count, 1, "a removed file never deletes its station");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_applies_station_files_and_their_changes() {
    let dir = tempfile::tempdir().unwrap();
    exercise(open(DatabaseUrl::sqlite_file(dir.path().join("g.db"))).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_applies_station_files_and_their_changes() {
    let Some(test_db) = common::postgres() else {
        return;
    };
    exercise(open(test_db.url.clone()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_applies_station_files_and_their_changes() {
    let Some(test_db) = common::mysql() else {
        return;
    };
    exercise(open(test_db.url.clone()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_server_applies_a_changed_file_without_a_restart() {
    use grimnir_server::config::{Config, EnvVars};
    let data = tempfile::tempdir().unwrap();
    let stations_dir = tempfile::tempdir().unwrap();
    let path = stations_dir.path().join("wgmr.yaml");
    std::fs::write(&path, spec_example()).unwrap();
    let env = EnvVars::from_pairs([
        ("GRIMNIR_DATA_DIR", data.path().to_str().unwrap()),
        (
            "GRIMNIR_STATIONS_DIR",
            stations_dir.path().to_str().unwrap(),
        ),
        ("GRIMNIR_HTTP_LISTEN", "127.0.0.1:0"),
    ]);
    let (config, _) = Config::load(None, &env).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_config = config.clone();
    let server = tokio::spawn(async move {
        grimnir_server::server::serve(&server_config, async {
            let _ = stopped.await;
        })
        .await
    });
    let db = Database::open(config.database.url.clone(), PoolOptions::default())
        .await
        .unwrap();
    let name = || {
        db.run(|c| {
            Ok(stations::table
                .find(ID)
                .select(stations::name)
                .first::<String>(c)
                .optional()?)
        })
    };
    // Bounded waits: the watcher looks every two seconds.
    let mut seen = None;
    for _ in 0..100 {
        seen = name().await.ok().flatten();
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("WGMR FM"));
    std::fs::write(&path, spec_example().replace("WGMR FM", "WGMR Night")).unwrap();
    for _ in 0..100 {
        seen = name().await.unwrap();
        if seen.as_deref() == Some("WGMR Night") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("WGMR Night"));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_stops_the_server_from_starting() {
    use grimnir_server::config::{Config, EnvVars};
    let data = tempfile::tempdir().unwrap();
    let stations_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        stations_dir.path().join("wgmr.yaml"),
        edited("America/New_York", "Mars/Olympus"),
    )
    .unwrap();
    let env = EnvVars::from_pairs([
        ("GRIMNIR_DATA_DIR", data.path().to_str().unwrap()),
        (
            "GRIMNIR_STATIONS_DIR",
            stations_dir.path().to_str().unwrap(),
        ),
        ("GRIMNIR_HTTP_LISTEN", "127.0.0.1:0"),
    ]);
    let (config, _) = Config::load(None, &env).unwrap();
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        grimnir_server::server::serve(&config, std::future::pending()),
    )
    .await
    .expect("start-up gave up instead of serving");
    let err = started.unwrap_err().to_string();
    assert!(
        err.contains("wgmr.yaml:5:") && err.contains("station.timezone"),
        "{err}"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text at all: a station file or an error, and an error's line lies in the text.
        #[test]
        fn any_text_is_parsed_or_refused_with_a_line_inside_it(text in "\\PC{0,400}") {
            check(&text);
        }

        /// The example with one line cut, doubled or re-indented: the same promise.
        #[test]
        fn an_edited_example_is_parsed_or_refused(
            line in 0usize..90,
            edit in 0u8..4,
            junk in "[ a-z:\\-\\[\\]{}0-9\"']{0,12}",
        ) {
            let mut lines: Vec<String> = spec_example().lines().map(str::to_owned).collect();
            let at = line % lines.len();
            match edit {
                0 => { lines.remove(at); }
                1 => { let copy = lines[at].clone(); lines.insert(at, copy); }
                2 => lines[at] = format!("  {}", lines[at]),
                _ => lines[at].push_str(&junk),
            }
            check(&lines.join("\n"));
        }
    }

    fn check(text: &str) {
        if let Err(e) = station_files::parse(Path::new("fuzz.yaml"), text) {
            let StationFileError::Invalid { line, message, .. } = &e else {
                panic!("{e:?}");
            };
            assert!(!message.is_empty());
            if let Some(line) = line {
                assert!(
                    *line >= 1 && *line <= text.lines().count().max(1) + 1,
                    "{e}"
                );
            }
        }
    }
}

/// While a file declares a station, the API refuses to change what the file declares (the
/// next revision of the file would undo it); once the file is gone, the station is the API's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_leaves_what_a_file_declares_to_the_file() {
    use axum::http::Method;
    use common::api::{self, Credential, World};
    use serde_json::json;

    let db_dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(db_dir.path().join("grimnir.db"));
    let db = Database::open(url, PoolOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wgmr.yaml");
    std::fs::write(&path, spec_example()).unwrap();
    let states = station_files::load_all(&db, dir.path()).await.unwrap();
    let world = World::new(common::state(db.clone())).await;
    let admin = Credential::Bearer(world.admin.token.clone());
    let station = format!("/api/v1/stations/{ID}");
    let file_graph = dsp_graph_id(ID.parse().unwrap());

    let refused = [
        (
            Method::PATCH,
            station.clone(),
            Some(json!({"name": "Renamed"})),
        ),
        (Method::DELETE, station.clone(), None),
        (
            Method::PATCH,
            format!("{station}/dsp-graphs/{file_graph}"),
            Some(json!({"nodes": []})),
        ),
        (
            Method::DELETE,
            format!("{station}/dsp-graphs/{file_graph}"),
            None,
        ),
    ];
    for (method, uri, body) in &refused {
        let mut call = api::call(method.clone(), uri).auth(&admin);
        if let Some(body) = body {
            call = call.json(body);
        }
        let answer = call.send(&world.app).await;
        assert_eq!(answer.status, 409, "{method} {uri}: {}", answer.text);
        assert_eq!(answer.code(), "managed_by_file", "{method} {uri}");
        assert!(
            answer.text.contains("wgmr.yaml"),
            "{method} {uri}: the file is named: {}",
            answer.text
        );
    }

    // Another graph may be saved, but the file decides which graph is applied.
    let saved = api::call(Method::POST, &format!("{station}/dsp-graphs"))
        .auth(&admin)
        .json(&json!({"name": "spare", "nodes": [{"type": "limiter"}]}))
        .send(&world.app)
        .await;
    assert_eq!(saved.status, 201, "{}", saved.text);
    let spare = saved.body["id"].as_str().unwrap().to_owned();
    let apply = api::call(Method::POST, &format!("{station}/dsp-graphs/{spare}/apply"))
        .auth(&admin)
        .send(&world.app)
        .await;
    assert_eq!(apply.status, 409, "{}", apply.text);

    // The file goes: the station stays, and the API may change it.
    std::fs::remove_file(&path).unwrap();
    let mut watcher = Watcher::new(db.clone(), dir.path().to_owned(), states);
    assert!(watcher.check().await.is_empty());
    let renamed = api::call(Method::PATCH, &station)
        .auth(&admin)
        .json(&json!({"name": "Renamed"}))
        .send(&world.app)
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let apply = api::call(Method::POST, &format!("{station}/dsp-graphs/{spare}/apply"))
        .auth(&admin)
        .send(&world.app)
        .await;
    assert_eq!(apply.status, 200, "{}", apply.text);
}

/// A file removed while the server was stopped releases its station at the next start.
#[tokio::test]
async fn a_file_removed_while_stopped_releases_its_station() {
    let db_dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::sqlite_file(db_dir.path().join("grimnir.db"));
    let db = Database::open(url, PoolOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wgmr.yaml");
    std::fs::write(&path, spec_example()).unwrap();
    station_files::load_all(&db, dir.path()).await.unwrap();
    let id = ID.parse().unwrap();
    let declared = db
        .run(move |c| station_files::declared_by(c, id))
        .await
        .unwrap();
    assert_eq!(
        declared.as_deref(),
        Some(path.display().to_string().as_str())
    );

    std::fs::remove_file(&path).unwrap();
    station_files::load_all(&db, dir.path()).await.unwrap();
    let declared = db
        .run(move |c| station_files::declared_by(c, id))
        .await
        .unwrap();
    assert_eq!(declared, None);
}
