//! The mount API: typed outputs validated field by field, write-only Icecast passwords, names
//! unique per station, and station files owning the mounts they declare. Runs on SQLite,
//! PostgreSQL and MariaDB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;

use axum::http::Method;
use common::api::{self, Credential, World};
use grimnir_server::db::mounts::{self, MountOutput};
use serde_json::{Value, json};

fn manager(world: &World) -> Credential {
    Credential::Bearer(world.manager_a.token.clone())
}

fn mp3() -> Value {
    json!({"format": "mp3", "bitrate_kbps": 128, "sample_rate": 44100})
}

fn icecast(mount: &str, password: Option<&str>) -> Value {
    let mut output = json!({"type": "icecast", "host": "icecast.example.org", "port": 8000,
                            "mount": mount, "encoding": mp3()});
    if let Some(password) = password {
        output["password"] = json!(password);
    }
    output
}

async fn stored_password(world: &World, id: &str) -> String {
    let (station, id) = (world.a, id.to_owned());
    let mount = world
        .state
        .db
        .run(move |c| mounts::get(c, station, &id))
        .await
        .unwrap();
    match &mount.outputs[0] {
        MountOutput::Icecast(t) => t.password.clone(),
        other => panic!("{other:?}"),
    }
}

async fn mounts_keep_their_outputs_and_secrets(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let base = format!("/api/v1/stations/{}/mounts", world.a);
    let post = |body: Value| {
        let (world, base) = (&world, &base);
        async move {
            api::call(Method::POST, base)
                .auth(&manager(world))
                .json(&body)
                .send(&world.app)
                .await
        }
    };

    // Refused values are named by their JSON path.
    let with = |outputs: Value| json!({"name": "Main", "outputs": outputs});
    for (body, field) in [
        (
            with(
                json!([icecast("/live", Some("pw")), {"type": "icecast", "host": "h", "port": 0, "mount": "/a", "password": "pw", "encoding": mp3()}]),
            ),
            "outputs[1].port",
        ),
        (
            with(json!([icecast("live", Some("pw"))])),
            "outputs[0].mount",
        ),
        (
            with(
                json!([{"type": "icecast", "port": 8000, "mount": "/a", "password": "pw", "encoding": mp3()}]),
            ),
            "outputs[0].host",
        ),
        (
            with(
                json!([{"type": "icecast", "host": "bad host", "port": 8000, "mount": "/a", "password": "pw", "encoding": mp3()}]),
            ),
            "outputs[0].host",
        ),
        (
            with(json!([{"type": "hls", "path": "/srv/hls", "segments": 3, "encoding": mp3()}])),
            "outputs[0].segments",
        ),
        (
            with(json!([{"type": "hls", "path": "relative", "encoding": mp3()}])),
            "outputs[0].path",
        ),
        (
            with(
                json!([{"type": "hls", "path": "/srv/hls", "playlist_size": 1, "encoding": mp3()}]),
            ),
            "outputs[0].playlist_size",
        ),
        (
            with(
                json!([{"type": "hls", "path": "/srv/hls", "encoding": {"format": "opus", "bitrate_kbps": 96, "sample_rate": 48000}}]),
            ),
            "outputs[0].encoding.format",
        ),
        (
            with(
                json!([{"type": "recording", "path": "/rec", "file_pattern": "same.mp3", "encoding": mp3()}]),
            ),
            "outputs[0].file_pattern",
        ),
        (
            with(
                json!([{"type": "recording", "path": "/rec", "rotation_days": 0, "encoding": mp3()}]),
            ),
            "outputs[0].rotation_days",
        ),
        (with(json!([{"type": "smtp"}])), "outputs[0].type"),
        (
            with(
                json!([{"type": "icecast", "host": "h", "port": 8000, "mount": "/a", "password": "pw"}]),
            ),
            "outputs[0].encoding",
        ),
        (
            with(
                json!([{"type": "icecast", "host": "h", "port": 8000, "mount": "/a", "password": "pw", "encoding": {"format": "opus", "bitrate_kbps": 96, "sample_rate": 44100}}]),
            ),
            "outputs[0].encoding.sample_rate",
        ),
        (with(json!([icecast("/live", None)])), "outputs[0].password"),
        (with(json!([])), "outputs"),
        (
            json!({"name": "Main", "encoder_preset_id": uuid::Uuid::new_v4(), "outputs": [{"type": "hls", "path": "/srv/hls"}]}),
            "encoder_preset_id",
        ),
    ] {
        let refused = post(body.clone()).await;
        assert_eq!(refused.status, 422, "{name}: {body} → {}", refused.text);
        assert_eq!(
            refused.field(),
            Some(field),
            "{name}: {body} → {}",
            refused.text
        );
    }

    // All three kinds of output; the password is stored but never answered.
    let created = post(json!({"name": "Main", "outputs": [
        icecast("/live", Some("s3cret-source")),
        {"type": "hls", "path": "/srv/hls/main", "encoding": {"format": "aac", "bitrate_kbps": 96, "sample_rate": 48000}},
        {"type": "recording", "path": "/srv/rec", "rotation_days": 30, "encoding": {"format": "flac", "sample_rate": 48000}}
    ]}))
    .await;
    assert_eq!(created.status, 201, "{name}: {}", created.text);
    assert!(
        !created.text.contains("s3cret-source"),
        "{name}: {}",
        created.text
    );
    let outputs = &created.body["outputs"];
    assert_eq!(outputs[0]["type"], "icecast", "{name}");
    assert_eq!(outputs[0]["username"], "source", "{name}: the default user");
    assert_eq!(outputs[0]["password_set"], true, "{name}");
    assert!(outputs[0].get("password").is_none(), "{name}");
    assert_eq!(outputs[1]["segment_duration_sec"], 4.0, "{name}: default");
    assert_eq!(outputs[1]["playlist_size"], 6, "{name}: default");
    assert_eq!(
        outputs[2]["file_pattern"], "%Y-%m-%d_%H-%M-%S",
        "{name}: default"
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    let one = format!("{base}/{id}");

    let taken = post(json!({"name": "Main", "outputs": [icecast("/other", Some("pw"))]})).await;
    assert_eq!(taken.status, 409, "{name}: {}", taken.text);
    // Racing creations of one name: exactly one wins, the others are told it is taken.
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (app, base, token) = (world.app.clone(), base.clone(), manager(&world));
            tokio::spawn(async move {
                api::call(Method::POST, &base)
                    .auth(&token)
                    .json(&json!({"name": "Raced", "outputs": [icecast("/raced", Some("pw"))]}))
                    .send(&app)
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for racer in racers {
        statuses.push(racer.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409], "{name}");
    // The same name at another station is fine.
    let at_b = api::call(
        Method::POST,
        &format!("/api/v1/stations/{}/mounts", world.b),
    )
    .auth(&Credential::Bearer(world.admin.token.clone()))
    .json(&json!({"name": "Main", "outputs": [icecast("/live", Some("pw"))]}))
    .send(&world.app)
    .await;
    assert_eq!(at_b.status, 201, "{name}: {}", at_b.text);

    // A change without the password keeps it for the same host, port and mount point…
    let kept = api::call(Method::PATCH, &one)
        .auth(&manager(&world))
        .json(&json!({"outputs": [icecast("/live", None)]}))
        .send(&world.app)
        .await;
    assert_eq!(kept.status, 200, "{name}: {}", kept.text);
    assert_eq!(kept.body["outputs"].as_array().unwrap().len(), 1, "{name}");
    assert_eq!(
        stored_password(&world, &id).await,
        "s3cret-source",
        "{name}"
    );
    // …and needs one for a new mount point.
    let moved = api::call(Method::PATCH, &one)
        .auth(&manager(&world))
        .json(&json!({"outputs": [icecast("/moved", None)]}))
        .send(&world.app)
        .await;
    assert_eq!(moved.status, 422, "{name}: {}", moved.text);
    assert_eq!(moved.field(), Some("outputs[0].password"), "{name}");
    let replaced = api::call(Method::PATCH, &one)
        .auth(&manager(&world))
        .json(&json!({"name": "Main 128k", "outputs": [icecast("/moved", Some("new-pass"))]}))
        .send(&world.app)
        .await;
    assert_eq!(replaced.status, 200, "{name}: {}", replaced.text);
    assert_eq!(replaced.body["name"], "Main 128k", "{name}");
    assert_eq!(stored_password(&world, &id).await, "new-pass", "{name}");

    // Removing the encoding of an output with no preset to fall back on is refused.
    let no_encoding = api::call(Method::PATCH, &one)
        .auth(&manager(&world))
        .json(&json!({"outputs": [{"type": "icecast", "host": "h", "port": 8000, "mount": "/moved"}]}))
        .send(&world.app)
        .await;
    assert_eq!(no_encoding.status, 422, "{name}: {}", no_encoding.text);

    // A DJ reads; a mount of A is not found through B.
    let list = api::call(Method::GET, &base)
        .auth(&Credential::Bearer(world.dj_a.token.clone()))
        .send(&world.app)
        .await;
    assert_eq!(list.status, 200, "{name}: {}", list.text);
    assert_eq!(list.body["total"], 2, "{name}: Main 128k and Raced");
    let elsewhere = api::call(
        Method::GET,
        &format!("/api/v1/stations/{}/mounts/{id}", world.b),
    )
    .auth(&Credential::Bearer(world.admin.token.clone()))
    .send(&world.app)
    .await;
    assert_eq!(elsewhere.status, 404, "{name}: {}", elsewhere.text);

    let deleted = api::call(Method::DELETE, &one)
        .auth(&manager(&world))
        .send(&world.app)
        .await;
    assert_eq!(deleted.status, 204, "{name}: {}", deleted.text);
    let again = api::call(Method::DELETE, &one)
        .auth(&manager(&world))
        .send(&world.app)
        .await;
    assert_eq!(again.status, 404, "{name}: {}", again.text);

    let audit = api::call(
        Method::GET,
        &format!("/api/v1/audit?station_id={}&limit=200", world.a),
    )
    .auth(&manager(&world))
    .send(&world.app)
    .await;
    assert!(
        !audit.text.contains("s3cret-source") && !audit.text.contains("new-pass"),
        "{name}"
    );
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["mount.create", "mount.update", "mount.delete"] {
        assert!(actions.contains(&action), "{name}: {action} in {actions:?}");
    }
}

const STATION_FILE: &str = r#"
station:
  id: "5f0c3e1a-8d2b-4c6e-9f1a-2b3c4d5e6f70"
  name: "File FM"
  timezone: "Europe/Oslo"
mounts:
  - id: "main"
    name: "Main"
    outputs:
      - type: icecast
        url: "icecast://source:file-secret@localhost:8000/stream"
        format: mp3
        sample_rate: 44100
      - type: hls
        path: /srv/hls/file
"#;

async fn station_files_own_their_mounts(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let path = Path::new("/etc/grimnir/stations/file-fm.yaml");
    let file = grimnir_server::station_files::parse(path, STATION_FILE).unwrap();
    world
        .state
        .db
        .run(move |c| grimnir_server::station_files::apply(c, path, "digest", &file))
        .await
        .unwrap();
    let base = "/api/v1/stations/5f0c3e1a-8d2b-4c6e-9f1a-2b3c4d5e6f70/mounts";
    let admin = Credential::Bearer(world.admin.token.clone());

    // The file's mount reads like any other: the URL taken apart, the password hidden.
    let read = api::call(Method::GET, &format!("{base}/main"))
        .auth(&admin)
        .send(&world.app)
        .await;
    assert_eq!(read.status, 200, "{name}: {}", read.text);
    assert!(!read.text.contains("file-secret"), "{name}: {}", read.text);
    let first = &read.body["outputs"][0];
    assert_eq!(
        (&first["host"], &first["port"], &first["mount"]),
        (&json!("localhost"), &json!(8000), &json!("/stream")),
        "{name}: {first}"
    );
    assert_eq!(
        first["encoding"]["bitrate_kbps"], 128,
        "{name}: the file's default"
    );
    assert_eq!(
        read.body["outputs"][1]["encoding"]["format"], "aac",
        "{name}"
    );

    // Only the file changes them.
    for (method, path, body) in [
        (
            Method::POST,
            base.to_owned(),
            Some(json!({"name": "Extra", "outputs": [icecast("/x", Some("pw"))]})),
        ),
        (
            Method::PATCH,
            format!("{base}/main"),
            Some(json!({"name": "Renamed"})),
        ),
        (Method::DELETE, format!("{base}/main"), None),
    ] {
        let mut call = api::call(method.clone(), &path).auth(&admin);
        if let Some(body) = body {
            call = call.json(&body);
        }
        let refused = call.send(&world.app).await;
        assert_eq!(refused.status, 409, "{name}: {method} → {}", refused.text);
        assert_eq!(refused.code(), "managed_by_file", "{name}: {method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_keep_their_outputs_and_secrets_on_every_backend() {
    for backend in api::backends() {
        mounts_keep_their_outputs_and_secrets(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn station_files_own_their_mounts_on_every_backend() {
    for backend in api::backends() {
        station_files_own_their_mounts(&backend).await;
    }
}
