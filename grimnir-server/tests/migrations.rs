//! Import jobs: recorded for backups that are checked first, listed, followed as server-sent
//! events, cancelled; admins only. Runs on SQLite, PostgreSQL and MariaDB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request};
use common::api::{self, Credential, World};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

fn admin(world: &World) -> Credential {
    Credential::Bearer(world.admin.token.clone())
}

/// Backups in `dir`, as each system writes them (only their first bytes matter here).
fn backups(dir: &Path) -> [(String, &'static str); 4] {
    let zip = dir.join("azuracast.zip");
    let mut z = b"PK\x03\x04".to_vec();
    z.extend_from_slice(&[0u8; 60]);
    std::fs::write(&zip, z).unwrap();
    let dump = dir.join("libretime.sql");
    std::fs::write(
        &dump,
        "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n",
    )
    .unwrap();
    let custom = dir.join("libretime.dump");
    std::fs::write(&custom, b"PGDMP\x01\x0e\x00\x04\x08\x01\x01").unwrap();
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a backup at all").unwrap();
    [
        (zip.display().to_string(), "azuracast"),
        (dump.display().to_string(), "libretime"),
        (custom.display().to_string(), "libretime"),
        (text.display().to_string(), "none"),
    ]
}

async fn jobs_are_checked_recorded_followed_and_cancelled(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let dir = tempfile::tempdir().unwrap();
    let [(zip, _), (sql, _), (custom, _), (text, _)] = backups(dir.path());
    let post = |source: &str, body: serde_json::Value| {
        api::call(Method::POST, &format!("/api/v1/migrations/{source}"))
            .auth(&admin(&world))
            .json(&body)
    };

    // Bad backups are refused, naming the field and what is wrong.
    for (source, path, says) in [
        ("azuracast", "relative/backup.zip".to_owned(), "absolute"),
        (
            "azuracast",
            dir.path().join("missing.zip").display().to_string(),
            "missing.zip",
        ),
        (
            "azuracast",
            dir.path().display().to_string(),
            "regular file",
        ),
        ("azuracast", text.clone(), "AzuraCast"),
        ("azuracast", sql.clone(), "AzuraCast"),
        (
            "libretime",
            zip.clone().replace("azuracast.zip", "notes.txt"),
            "LibreTime",
        ),
    ] {
        let refused = post(source, json!({"backup_path": path}))
            .send(&world.app)
            .await;
        assert_eq!(refused.status, 422, "{name}: {path}: {}", refused.text);
        assert_eq!(refused.field(), Some("backup_path"), "{name}");
        assert!(
            refused.text.contains(says),
            "{name}: {says} in {}",
            refused.text
        );
    }
    let unknown = post("azuracast", json!({"backup_path": zip, "extra": 1}))
        .send(&world.app)
        .await;
    assert_eq!(unknown.status, 422, "{name}: {}", unknown.text);

    // Good ones are recorded as pending, with who asked.
    let mut ids = Vec::new();
    for (source, path) in [
        ("azuracast", &zip),
        ("libretime", &sql),
        ("libretime", &custom),
    ] {
        let created = post(source, json!({"backup_path": path}))
            .send(&world.app)
            .await;
        assert_eq!(created.status, 201, "{name}: {}", created.text);
        let job = &created.body;
        assert_eq!(job["source"], source, "{name}");
        assert_eq!(job["status"], "pending", "{name}");
        assert_eq!(job["progress"], 0, "{name}");
        assert_eq!(job["backup_path"], path.as_str(), "{name}");
        assert_eq!(job["created_by"], world.admin.id.to_string(), "{name}");
        ids.push(job["id"].as_str().unwrap().to_owned());
    }

    // Listed newest first; read one by one.
    let list = api::call(Method::GET, "/api/v1/migrations?limit=2")
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(list.status, 200, "{name}: {}", list.text);
    assert_eq!(list.body["total"], 3, "{name}");
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2, "{name}");
    let one = api::call(Method::GET, &format!("/api/v1/migrations/{}", ids[0]))
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(one.status, 200, "{name}: {}", one.text);
    assert_eq!(one.body["source"], "azuracast", "{name}");

    // The event stream gives the job's state at once, and ends when the job is cancelled.
    let request = Request::builder()
        .uri(format!("/api/v1/migrations/{}/events", ids[0]))
        .header("authorization", format!("Bearer {}", world.admin.token))
        .body(Body::empty())
        .unwrap();
    let response = world.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200, "{name}");
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{name}"
    );
    let mut body = response.into_body();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("no first event")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(first.starts_with("event: job\n"), "{name}: {first}");
    assert!(first.contains(r#""status":"pending""#), "{name}: {first}");
    assert!(first.contains(&ids[0]), "{name}: {first}");

    let cancelled = api::call(Method::DELETE, &format!("/api/v1/migrations/{}", ids[0]))
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(cancelled.status, 204, "{name}: {}", cancelled.text);
    // The stream notices within a poll or two and ends.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "{name}: the stream did not end after the job was cancelled"
    );
    let gone = api::call(Method::GET, &format!("/api/v1/migrations/{}", ids[0]))
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(gone.status, 404, "{name}: {}", gone.text);

    // A running job cannot be cancelled.
    let running = ids[1].clone();
    world
        .state
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use grimnir_server::db::schema::migration_jobs;
            diesel::update(migration_jobs::table.filter(migration_jobs::id.eq(&running)))
                .set(migration_jobs::status.eq("running"))
                .execute(c)
                .map_err(grimnir_server::db::StorageError::from)
        })
        .await
        .unwrap();
    let busy = api::call(Method::DELETE, &format!("/api/v1/migrations/{}", ids[1]))
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    assert_eq!(busy.status, 409, "{name}: {}", busy.text);
    assert!(busy.text.contains("running"), "{name}: {}", busy.text);

    // Admins only: a manager is refused.
    let manager = api::call(Method::GET, "/api/v1/migrations")
        .auth(&Credential::Bearer(world.manager_a.token.clone()))
        .send(&world.app)
        .await;
    assert_eq!(manager.status, 403, "{name}: {}", manager.text);

    // Each job recorded and cancelled is in the audit log.
    let audit = api::call(Method::GET, "/api/v1/audit?limit=200")
        .auth(&admin(&world))
        .send(&world.app)
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("migration."))
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "migration.create").count(),
        3,
        "{name}: {actions:?}"
    );
    assert!(actions.contains(&"migration.cancel"), "{name}: {actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_checked_recorded_followed_and_cancelled_on_every_backend() {
    for backend in api::backends() {
        jobs_are_checked_recorded_followed_and_cancelled(&backend).await;
    }
}
