//! The encoder preset API: validation by format, unique names, admins only for changes, and no
//! deleting a preset mounts use. Runs on SQLite, PostgreSQL and MariaDB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use axum::http::Method;
use common::api::{self, Credential, World};
use serde_json::json;

const BASE: &str = "/api/v1/encoder-presets";

fn admin(world: &World) -> Credential {
    Credential::Bearer(world.admin.token.clone())
}

async fn presets_are_validated_named_and_guarded(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let post = |body: serde_json::Value| {
        let world = &world;
        async move {
            api::call(Method::POST, BASE)
                .auth(&admin(world))
                .json(&body)
                .send(&world.app)
                .await
        }
    };

    // Each rule names its field.
    for (body, field) in [
        (
            json!({"name": "x", "format": "wma", "bitrate_kbps": 128, "sample_rate": 44100}),
            "format",
        ),
        (
            json!({"name": "x", "format": "opus", "bitrate_kbps": 96, "sample_rate": 44100}),
            "sample_rate",
        ),
        (
            json!({"name": "x", "format": "flac", "bitrate_kbps": 900, "sample_rate": 48000}),
            "bitrate_kbps",
        ),
        (
            json!({"name": "x", "format": "mp3", "sample_rate": 44100}),
            "bitrate_kbps",
        ),
        (
            json!({"name": "x", "format": "mp3", "bitrate_kbps": 130, "sample_rate": 44100}),
            "bitrate_kbps",
        ),
        (
            json!({"name": "x", "format": "mp3", "quality": 10, "sample_rate": 44100}),
            "quality",
        ),
        (
            json!({"name": "x", "format": "aac", "quality": 3, "sample_rate": 48000}),
            "quality",
        ),
        (
            json!({"name": "x", "format": "aac", "bitrate_kbps": 96, "sample_rate": 48000, "channels": 6}),
            "channels",
        ),
        (
            json!({"name": " ", "format": "aac", "bitrate_kbps": 96, "sample_rate": 48000}),
            "name",
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

    // A manager may read but not create.
    let by_manager = api::call(Method::POST, BASE)
        .auth(&Credential::Bearer(world.manager_a.token.clone()))
        .json(&json!({"name": "MP3 128k", "format": "mp3", "bitrate_kbps": 128, "sample_rate": 44100}))
        .send(&world.app)
        .await;
    assert_eq!(by_manager.status, 403, "{name}: {}", by_manager.text);

    let mp3 = post(
        json!({"name": "MP3 128k", "format": "mp3", "bitrate_kbps": 128,
                          "sample_rate": 44100, "options": {"target": "bitrate"}}),
    )
    .await;
    assert_eq!(mp3.status, 201, "{name}: {}", mp3.text);
    assert_eq!(
        mp3.body["channels"], 2,
        "{name}: channels default to stereo"
    );
    assert_eq!(mp3.body["options"]["target"], "bitrate", "{name}");
    let mp3_id = mp3.body["id"].as_str().unwrap().to_owned();
    let vbr =
        post(json!({"name": "MP3 V2", "format": "mp3", "quality": 2, "sample_rate": 48000})).await;
    assert_eq!(vbr.status, 201, "{name}: {}", vbr.text);
    assert_eq!(vbr.body["bitrate_kbps"], serde_json::Value::Null, "{name}");

    let taken = post(
        json!({"name": "MP3 128k", "format": "aac", "bitrate_kbps": 96, "sample_rate": 48000}),
    )
    .await;
    assert_eq!(taken.status, 409, "{name}: {}", taken.text);
    assert_eq!(taken.field(), Some("name"), "{name}");

    // Any signed-in principal reads them, an API key too.
    let list = api::call(Method::GET, BASE)
        .auth(&Credential::ApiKey(world.key_a_dj.key.clone()))
        .send(&world.app)
        .await;
    assert_eq!(list.status, 200, "{name}: {}", list.text);
    assert_eq!(list.body["total"], 2, "{name}");
    assert_eq!(list.body["items"][0]["name"], "MP3 128k", "{name}: by name");

    // A change is validated whole: FLAC with the old bitrate is refused, without it taken.
    let one = format!("{BASE}/{mp3_id}");
    let flac_kept_bitrate = api::call(Method::PATCH, &one)
        .auth(&admin(&world))
        .json(&json!({"format": "flac"}))
        .send(&world.app)
        .await;
    assert_eq!(
        flac_kept_bitrate.status, 422,
        "{name}: {}",
        flac_kept_bitrate.text
    );
    assert_eq!(flac_kept_bitrate.field(), Some("bitrate_kbps"), "{name}");
    let renamed_to_taken = api::call(Method::PATCH, &one)
        .auth(&admin(&world))
        .json(&json!({"name": "MP3 V2"}))
        .send(&world.app)
        .await;
    assert_eq!(
        renamed_to_taken.status, 409,
        "{name}: {}",
        renamed_to_taken.text
    );
    let aac = api::call(Method::PATCH, &one)
        .auth(&admin(&world))
        .json(&json!({"format": "aac", "bitrate_kbps": 96, "sample_rate": 48000}))
        .send(&world.app)
        .await;
    assert_eq!(aac.status, 200, "{name}: {}", aac.text);
    assert_eq!(aac.body["format"], "aac", "{name}");
    assert_eq!(aac.body["name"], "MP3 128k", "{name}: the name stays");

    // A mount's HLS output takes its encoding from the preset: the preset cannot turn into
    // something HLS cannot carry, nor be deleted while the mount uses it.
    let mount = api::call(
        Method::POST,
        &format!("/api/v1/stations/{}/mounts", world.a),
    )
    .auth(&admin(&world))
    .json(&json!({"name": "HLS", "encoder_preset_id": mp3_id,
                      "outputs": [{"type": "hls", "path": "/srv/hls"}]}))
    .send(&world.app)
    .await;
    assert_eq!(mount.status, 201, "{name}: {}", mount.text);
    let to_opus = api::call(Method::PATCH, &one)
        .auth(&admin(&world))
        .json(&json!({"format": "opus", "sample_rate": 48000}))
        .send(&world.app)
        .await;
    assert_eq!(to_opus.status, 409, "{name}: {}", to_opus.text);
    assert!(to_opus.text.contains("HLS"), "{name}: {}", to_opus.text);
    let still = api::call(Method::GET, &one)
        .auth(&Credential::Bearer(world.dj_a.token.clone()))
        .send(&world.app)
        .await;
    assert_eq!(
        still.body["format"], "aac",
        "{name}: the refused change is rolled back"
    );
    let in_use = api::call(Method::DELETE, &one)
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(in_use.status, 409, "{name}: {}", in_use.text);
    assert!(
        in_use.text.contains("\\\"HLS\\\""),
        "{name}: names the mount: {}",
        in_use.text
    );
    let mount_id = mount.body["id"].as_str().unwrap();
    let gone = api::call(
        Method::DELETE,
        &format!("/api/v1/stations/{}/mounts/{mount_id}", world.a),
    )
    .auth(&admin(&world))
    .send(&world.app)
    .await;
    assert_eq!(gone.status, 204, "{name}: {}", gone.text);
    let deleted = api::call(Method::DELETE, &one)
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(deleted.status, 204, "{name}: {}", deleted.text);
    let missing = api::call(Method::GET, &one)
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(missing.status, 404, "{name}: {}", missing.text);

    let audit = api::call(Method::GET, "/api/v1/audit?limit=200")
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(audit.status, 200, "{name}: {}", audit.text);
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "encoder_preset.create",
        "encoder_preset.update",
        "encoder_preset.delete",
    ] {
        assert!(actions.contains(&action), "{name}: {action} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presets_are_validated_named_and_guarded_on_every_backend() {
    for backend in api::backends() {
        presets_are_validated_named_and_guarded(&backend).await;
    }
}
