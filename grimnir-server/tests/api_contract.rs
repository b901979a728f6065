//! The API's contract: the served OpenAPI document (a snapshot, and every operation in it is
//! served, and nothing else is on its paths), the offline docs page, and the one error body for
//! bad input of every kind.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;

use axum::Router;
use axum::http::{Method, StatusCode};
use common::api::{self, Credential, World, call};
use grimnir_server::db::{Database, DatabaseUrl};
use grimnir_server::http;
use serde_json::{Value, json};

async fn sqlite_app(dir: &tempfile::TempDir) -> (Router, Database) {
    let db = Database::open(
        DatabaseUrl::sqlite_file(dir.path().join("g.db")),
        Default::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    (http::router(common::state(db.clone())), db)
}

async fn served_document(app: &Router) -> Value {
    let answer = call(Method::GET, "/api/v1/openapi.json").send(app).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The operations of a document: (method, path template).
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a template: every `{param}` a fresh UUID.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_matches_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _db) = sqlite_app(&dir).await;
    let doc = served_document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_nothing_else_on_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _db) = sqlite_app(&dir).await;
    let doc = served_document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 20, "{ops:?}");
    for (method, template) in &ops {
        let item = &doc["paths"][template][method];
        // Documented: a summary, responses with bodies for errors, and security unless public.
        assert!(
            item["summary"].is_string(),
            "{method} {template}: no summary"
        );
        let public = template.starts_with("/api/v1/auth/")
            && ["/login", "/refresh", "/logout"]
                .iter()
                .any(|p| template.ends_with(p));
        assert_eq!(
            item.get("security").is_none(),
            public,
            "{method} {template}: security"
        );
        // Served: anything but the answers for routes that do not exist.
        let path = concrete(template);
        let answer = call(method.to_uppercase().parse().unwrap(), &path)
            .json(&json!({}))
            .send(&app)
            .await;
        assert_ne!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template}"
        );
        assert!(
            !(answer.status == StatusCode::NOT_FOUND
                && answer.body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no route"))),
            "{method} {template} is documented but not served"
        );
        // Every error answer is the one error body.
        if answer.status.is_client_error() {
            assert!(
                answer.body["error"]["code"].is_string(),
                "{method} {template}: {}",
                answer.text
            );
        }
    }
    // On every documented path, the methods not documented are refused with 405.
    for template in doc["paths"].as_object().unwrap().keys() {
        for method in METHODS {
            if doc["paths"][template].get(method).is_some() {
                continue;
            }
            let answer = call(method.to_uppercase().parse().unwrap(), &concrete(template))
                .send(&app)
                .await;
            assert_eq!(
                (answer.status, answer.code()),
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
                "{method} {template} is served but not documented"
            );
        }
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// API routes are registered only through utoipa-axum's `routes!`, which documents them: no
/// plain axum `route`/`nest` call anywhere in the crate names a path under `/api`, and every
/// such call names its path as a literal, so this check can read it. (The probe above cannot
/// find a route on a path the document does not name; this check can.) Routes outside the API,
/// such as `/healthz`, are not concerned.
#[test]
fn no_api_route_is_registered_around_the_document() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut plain = Vec::new();
    let mut outside = Vec::new();
    for path in files {
        // Comments out, whitespace collapsed: a call split over lines reads as one.
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap().trim())
            .collect::<Vec<_>>()
            .join(" ");
        for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            for (at, _) in text.match_indices(call) {
                let argument = text[at + call.len()..].trim_start();
                let end = argument
                    .char_indices()
                    .nth(60)
                    .map_or(argument.len(), |(i, _)| i);
                let place = format!("{}: {call}{}", path.display(), &argument[..end]);
                match argument.strip_prefix('"') {
                    Some(literal) if !literal.starts_with("/api") => outside.push(place),
                    // The one nest that is allowed: utoipa-axum's, of documented routes.
                    _ if argument.starts_with("API_PREFIX, public.merge(signed_in)") => {}
                    // The event stream (WebSocket and SSE) is the one known exception: streams
                    // that OpenAPI describes poorly, listed in the API description instead.
                    Some(literal) if literal.starts_with("/api/v1\", events::router(") => {}
                    _ => plain.push(place),
                }
            }
        }
    }
    assert!(
        plain.is_empty(),
        "API routes around the document: {plain:#?}"
    );
    assert!(
        outside.iter().any(|p| p.contains("\"/healthz\"")),
        "the scan found the health checks: {outside:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_is_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _db) = sqlite_app(&dir).await;
    let page = call(Method::GET, "/api/v1/docs/").send(&app).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    // Nothing is fetched from elsewhere: every script and style is relative.
    for attribute in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "//cdn",
    ] {
        assert!(
            !page.text.contains(attribute),
            "{attribute} in the docs page"
        );
    }
    let bundle = call(Method::GET, "/api/v1/docs/swagger-ui-bundle.js")
        .send(&app)
        .await;
    assert_eq!(bundle.status, StatusCode::OK);
    assert!(bundle.text.len() > 100_000, "the bundle is served whole");
    let init = call(Method::GET, "/api/v1/docs/swagger-initializer.js")
        .send(&app)
        .await;
    assert!(init.text.contains("/api/v1/openapi.json"), "{}", init.text);
    // No validity badge fetched from validator.swagger.io.
    assert!(
        init.text.contains(r#""validatorUrl": "none""#),
        "{}",
        init.text
    );
}

/// What is sent (what, method, path, content type and body) and what must come back (status,
/// code, field).
type BadInput = (
    &'static str,
    Method,
    String,
    Option<(&'static str, &'static str)>,
    u16,
    &'static str,
    Option<&'static str>,
);

/// Bad input of every kind is 4xx with the error body, naming the field; never a 500.
async fn bad_input(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let app = &world.app;
    let admin = Credential::Bearer(world.admin.token.clone());
    let station = format!("/api/v1/stations/{}", world.a);
    let cases: Vec<BadInput> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/api/v1/stations".into(),
            Some(("application/json", "{\"name\": ")),
            400,
            "malformed_json",
            None,
        ),
        (
            "trailing garbage",
            Method::POST,
            "/api/v1/stations".into(),
            Some((
                "application/json",
                "{\"name\":\"x\",\"timezone\":\"UTC\"} x",
            )),
            400,
            "malformed_json",
            None,
        ),
        (
            "missing field",
            Method::POST,
            "/api/v1/stations".into(),
            Some(("application/json", "{\"name\":\"x\"}")),
            422,
            "invalid_field",
            Some("timezone"),
        ),
        (
            "wrong type",
            Method::POST,
            "/api/v1/stations".into(),
            Some((
                "application/json",
                "{\"name\":\"x\",\"timezone\":\"UTC\",\"active\":\"yes\"}",
            )),
            422,
            "invalid_field",
            Some("active"),
        ),
        (
            "unknown field",
            Method::POST,
            "/api/v1/stations".into(),
            Some((
                "application/json",
                "{\"name\":\"x\",\"timezone\":\"UTC\",\"colour\":1}",
            )),
            422,
            "invalid_field",
            Some("colour"),
        ),
        (
            "refused value",
            Method::POST,
            "/api/v1/stations".into(),
            Some((
                "application/json",
                "{\"name\":\"x\",\"timezone\":\"Mars/Olympus\"}",
            )),
            422,
            "invalid_field",
            Some("timezone"),
        ),
        (
            "empty name",
            Method::PATCH,
            station.clone(),
            Some(("application/json", "{\"name\":\"  \"}")),
            422,
            "invalid_field",
            Some("name"),
        ),
        (
            "not a role",
            Method::PUT,
            format!("{station}/members/{}", world.target.id),
            Some(("application/json", "{\"role\":\"admin\"}")),
            422,
            "invalid_field",
            Some("role"),
        ),
        (
            "no content type",
            Method::POST,
            "/api/v1/stations".into(),
            Some(("text/plain", "{}")),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "bad station id",
            Method::GET,
            "/api/v1/stations/not-a-uuid".into(),
            None,
            400,
            "invalid_path",
            Some("station_id"),
        ),
        (
            "bad user id",
            Method::PUT,
            format!("{station}/members/42"),
            Some(("application/json", "{\"role\":\"dj\"}")),
            400,
            "invalid_path",
            Some("user_id"),
        ),
        (
            "bad limit",
            Method::GET,
            "/api/v1/stations?limit=many".into(),
            None,
            400,
            "invalid_query",
            Some("limit"),
        ),
        (
            "limit too large",
            Method::GET,
            "/api/v1/stations?limit=500".into(),
            None,
            400,
            "invalid_query",
            Some("limit"),
        ),
        (
            "negative offset",
            Method::GET,
            "/api/v1/users?offset=-1".into(),
            None,
            400,
            "invalid_query",
            Some("offset"),
        ),
        (
            "bad station filter",
            Method::GET,
            "/api/v1/audit?station_id=x".into(),
            None,
            400,
            "invalid_query",
            Some("station_id"),
        ),
        (
            "short password",
            Method::POST,
            "/api/v1/users".into(),
            Some((
                "application/json",
                "{\"email\":\"a@example.org\",\"password\":\"short\"}",
            )),
            422,
            "invalid_field",
            Some("password"),
        ),
        (
            "bad email",
            Method::POST,
            "/api/v1/users".into(),
            Some((
                "application/json",
                "{\"email\":\"not-an-email\",\"password\":\"long enough password\"}",
            )),
            422,
            "invalid_field",
            Some("email"),
        ),
        (
            "missing password at login",
            Method::POST,
            "/api/v1/auth/login".into(),
            Some(("application/json", "{\"email\":\"a@example.org\"}")),
            422,
            "invalid_field",
            Some("password"),
        ),
        (
            "past expiry",
            Method::POST,
            format!("{station}/api-keys"),
            Some((
                "application/json",
                "{\"name\":\"k\",\"role\":\"dj\",\"expires_at\":\"2001-01-01T00:00:00Z\"}",
            )),
            422,
            "invalid_field",
            Some("expires_at"),
        ),
        (
            "no such station",
            Method::GET,
            format!("/api/v1/stations/{}", uuid::Uuid::new_v4()),
            None,
            404,
            "not_found",
            None,
        ),
        (
            "no such route",
            Method::GET,
            "/api/v1/nothing-here".into(),
            None,
            404,
            "not_found",
            None,
        ),
        (
            "wrong method",
            Method::PUT,
            "/api/v1/stations".into(),
            None,
            405,
            "method_not_allowed",
            None,
        ),
    ];
    for (what, method, path, body, status, code, field) in cases {
        let mut request = call(method, &path).auth(&admin);
        if let Some((content_type, text)) = body {
            request = request.raw(Some(content_type), text);
        }
        let answer = request.send(app).await;
        assert_eq!(
            (answer.status.as_u16(), answer.code(), answer.field()),
            (status, code, field),
            "{name}: {what}: {}",
            answer.text
        );
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(answer.headers["content-type"], "application/json", "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_4xx_with_the_field_named_on_every_backend() {
    for backend in api::backends() {
        bad_input(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_with_the_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _db) = sqlite_app(&dir).await;
    let huge = format!(
        r#"{{"email":"a@example.org","password":"{}"}}"#,
        "x".repeat(3 << 20)
    );
    let answer = call(Method::POST, "/api/v1/auth/login")
        .raw(Some("application/json"), &huge)
        .send(&app)
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}
