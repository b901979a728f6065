//! The HTTP service on a real socket and through `tower::ServiceExt::oneshot`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use grimnir_server::db::{Database, DatabaseUrl, PoolOptions};
use grimnir_server::http;
use tower::ServiceExt;

async fn sqlite(dir: &tempfile::TempDir) -> Database {
    let url = DatabaseUrl::sqlite_file(dir.path().join("grimnir.db"));
    Database::open(url, PoolOptions::default()).await.unwrap()
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_readiness_on_loopback_and_stops_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir).await;
    db.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve(
        listener,
        http::router(common::state(db)),
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));

    let health = common::get(addr, "/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, r#"{"status":"ok"}"#);
    assert_eq!(health.header("content-type"), Some("application/json"));
    let first_id = health.header("x-request-id").unwrap().to_owned();
    assert!(is_uuid(&first_id), "{first_id}");

    let ready = common::get(addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, r#"{"status":"ready"}"#);
    let second_id = ready.header("x-request-id").unwrap();
    assert!(is_uuid(second_id));
    assert_ne!(second_id, first_id, "each request gets its own id");

    // A sane id from the client is kept; one that could confuse a log reader is replaced.
    let traced = common::get(addr, "/healthz", &[("x-request-id", "lb-7f3a:42")]).await;
    assert_eq!(traced.header("x-request-id"), Some("lb-7f3a:42"));
    let odd = common::get(addr, "/healthz", &[("x-request-id", "a b\"c")]).await;
    assert!(is_uuid(odd.header("x-request-id").unwrap()));

    let missing = common::get(addr, "/nope", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("x-request-id").is_some());

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server did not stop after shutdown was asked for")
        .unwrap();
    result.unwrap();
    // No longer accepting connections.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_unavailable_until_the_migrations_ran() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir).await;
    let app = http::router(common::state(db.clone()));
    let request = || Request::get("/readyz").body(Body::empty()).unwrap();

    let response = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert!(
        body["reason"].as_str().unwrap().contains("not applied"),
        "{body}"
    );

    db.migrate().await.unwrap();
    let response = app.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_notices_a_schema_dropped_behind_its_back() {
    use diesel::connection::SimpleConnection;

    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir).await;
    db.migrate().await.unwrap();
    let app = http::router(common::state(db.clone()));
    db.run(|c| Ok(c.batch_execute("PRAGMA foreign_keys = OFF; DROP TABLE stations;")?))
        .await
        .unwrap();
    let response = app
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
