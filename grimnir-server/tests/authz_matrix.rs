//! The authorization matrix: every route × every kind of caller × station scope → allowed or
//! denied, as the table in `grimnir_server::auth::policy` documents.
//!
//! The expectations below are written from that table, not from the code: a route whose policy
//! check is missing or wrong fails here. Each case runs in a fresh world (two stations, an
//! admin, a manager and a DJ of A, a manager of B, API keys of A), so a case that deletes or
//! changes something cannot affect another. Every operation of the OpenAPI document must have a
//! row, so a new route cannot skip the matrix. Runs on SQLite, PostgreSQL and MariaDB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use common::api::{self, Credential, PASSWORD, World};
use serde_json::{Value, json};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    ManagerA,
    DjA,
    ManagerB,
    /// An API key of station A with the manager role.
    KeyA,
    /// An API key of station A with the DJ role.
    KeyADj,
    Anonymous,
}

use Who::*;

const EVERYONE: &[Who] = &[Admin, ManagerA, DjA, ManagerB, KeyA, KeyADj, Anonymous];
const SIGNED_IN: &[Who] = &[Admin, ManagerA, DjA, ManagerB, KeyA, KeyADj];
const SESSIONS: &[Who] = &[Admin, ManagerA, DjA, ManagerB];

/// Which station a case is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Not about a station.
    None,
    A,
    B,
}

struct Case {
    method: Method,
    /// With `{s}` (the scope's station), `{target}`, `{self}` and `{spare_key}`.
    path: &'static str,
    scope: Scope,
    body: Option<fn(&World) -> Value>,
    ok: StatusCode,
    allowed: &'static [Who],
}

fn case(
    method: Method,
    path: &'static str,
    scope: Scope,
    body: Option<fn(&World) -> Value>,
    ok: u16,
    allowed: &'static [Who],
) -> Case {
    Case {
        method,
        path,
        scope,
        body,
        ok: StatusCode::from_u16(ok).unwrap(),
        allowed,
    }
}

/// The matrix, from the policy table.
fn cases() -> Vec<Case> {
    use Scope::{A, B};
    let none = Scope::None;
    let station_update: fn(&World) -> Value = |_| json!({"description": "changed"});
    let member: fn(&World) -> Value = |_| json!({"role": "manager"});
    let new_key: fn(&World) -> Value = |_| json!({"name": "webhook", "role": "dj"});
    vec![
        // Public: credentials in the body, whoever calls.
        case(
            Method::POST,
            "/api/v1/auth/login",
            none,
            Some(|w| json!({"email": w.dj_a.email, "password": PASSWORD})),
            200,
            EVERYONE,
        ),
        case(
            Method::POST,
            "/api/v1/auth/refresh",
            none,
            Some(|w| json!({"refresh_token": w.refresh_dj_a})),
            200,
            EVERYONE,
        ),
        case(
            Method::POST,
            "/api/v1/auth/logout",
            none,
            Some(|w| json!({"refresh_token": w.refresh_dj_a})),
            204,
            EVERYONE,
        ),
        // Oneself.
        case(Method::GET, "/api/v1/auth/me", none, None, 200, SIGNED_IN),
        case(
            Method::PUT,
            "/api/v1/auth/password",
            none,
            Some(
                |_| json!({"current_password": PASSWORD, "new_password": "another long password"}),
            ),
            204,
            SESSIONS,
        ),
        case(
            Method::GET,
            "/api/v1/users/{self}",
            none,
            None,
            200,
            SIGNED_IN,
        ),
        // Users: admins.
        case(Method::GET, "/api/v1/users", none, None, 200, &[Admin]),
        case(
            Method::POST,
            "/api/v1/users",
            none,
            Some(|_| {
                json!({"email": format!("new-{}@example.org", uuid::Uuid::new_v4()),
                            "password": "a brand new password"})
            }),
            201,
            &[Admin],
        ),
        case(
            Method::GET,
            "/api/v1/users/{target}",
            none,
            None,
            200,
            &[Admin],
        ),
        case(
            Method::PATCH,
            "/api/v1/users/{target}",
            none,
            Some(|_| json!({"disabled": true})),
            200,
            &[Admin],
        ),
        case(
            Method::DELETE,
            "/api/v1/users/{target}",
            none,
            None,
            204,
            &[Admin],
        ),
        // Stations.
        case(Method::GET, "/api/v1/stations", none, None, 200, SIGNED_IN),
        case(
            Method::POST,
            "/api/v1/stations",
            none,
            Some(|_| json!({"name": "New FM", "timezone": "Europe/Berlin"})),
            201,
            &[Admin],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
        case(
            Method::PATCH,
            "/api/v1/stations/{s}",
            A,
            Some(station_update),
            200,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::PATCH,
            "/api/v1/stations/{s}",
            B,
            Some(station_update),
            200,
            &[Admin, ManagerB],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}",
            A,
            None,
            204,
            &[Admin],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}",
            B,
            None,
            204,
            &[Admin],
        ),
        // Members.
        case(
            Method::GET,
            "/api/v1/stations/{s}/members",
            A,
            None,
            200,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/members",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
        case(
            Method::PUT,
            "/api/v1/stations/{s}/members/{target}",
            A,
            Some(member),
            200,
            &[Admin, ManagerA],
        ),
        case(
            Method::PUT,
            "/api/v1/stations/{s}/members/{target}",
            B,
            Some(member),
            200,
            &[Admin, ManagerB],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}/members/{target}",
            A,
            None,
            204,
            &[Admin, ManagerA],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}/members/{target}",
            B,
            None,
            204,
            &[Admin, ManagerB],
        ),
        // API keys.
        case(
            Method::GET,
            "/api/v1/stations/{s}/api-keys",
            A,
            None,
            200,
            &[Admin, ManagerA],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/api-keys",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/api-keys",
            A,
            Some(new_key),
            201,
            &[Admin, ManagerA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/api-keys",
            B,
            Some(new_key),
            201,
            &[Admin, ManagerB],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}/api-keys/{spare_key}",
            A,
            None,
            204,
            &[Admin, ManagerA],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}/api-keys/{spare_key}",
            B,
            None,
            204,
            &[Admin, ManagerB],
        ),
        // Audit log.
        case(Method::GET, "/api/v1/audit", none, None, 200, &[Admin]),
        case(
            Method::GET,
            "/api/v1/audit?station_id={s}",
            A,
            None,
            200,
            &[Admin, ManagerA],
        ),
        case(
            Method::GET,
            "/api/v1/audit?station_id={s}",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
    ]
}

fn credential(world: &World, who: Who) -> Credential {
    match who {
        Admin => Credential::Bearer(world.admin.token.clone()),
        ManagerA => Credential::Bearer(world.manager_a.token.clone()),
        DjA => Credential::Bearer(world.dj_a.token.clone()),
        ManagerB => Credential::Bearer(world.manager_b.token.clone()),
        KeyA => Credential::ApiKey(world.key_a.key.clone()),
        KeyADj => Credential::ApiKey(world.key_a_dj.key.clone()),
        Anonymous => Credential::None,
    }
}

fn path(world: &World, case: &Case, who: Who) -> String {
    let (station, spare_key) = match case.scope {
        Scope::B => (world.b, world.spare_key_b.id),
        _ => (world.a, world.spare_key_a.id),
    };
    let me = match who {
        Admin => world.admin.id,
        ManagerA | KeyA | KeyADj => world.manager_a.id,
        DjA => world.dj_a.id,
        ManagerB => world.manager_b.id,
        Anonymous => world.target.id,
    };
    case.path
        .replace("{s}", &station.to_string())
        .replace("{target}", &world.target.id.to_string())
        .replace("{self}", &me.to_string())
        .replace("{spare_key}", &spare_key.to_string())
}

/// The operations the matrix covers, as the OpenAPI document names them.
fn covered() -> BTreeSet<(String, String)> {
    cases()
        .iter()
        .map(|c| {
            let template = c
                .path
                .split('?')
                .next()
                .unwrap()
                .replace("{s}", "{station_id}")
                .replace("{target}", "{user_id}")
                .replace("{self}", "{user_id}")
                .replace("{spare_key}", "{key_id}");
            (c.method.as_str().to_lowercase(), template)
        })
        .collect()
}

async fn run_matrix(name: &'static str, url: grimnir_server::db::DatabaseUrl) -> usize {
    let db = grimnir_server::db::Database::open(url, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    db.migrate().await.unwrap();
    let state = common::state(db);
    let mut failures = Vec::new();
    let mut count = 0;
    for case in cases() {
        for &who in EVERYONE {
            let world = World::new(state.clone()).await;
            let mut call = api::call(case.method.clone(), &path(&world, &case, who))
                .auth(&credential(&world, who));
            if let Some(body) = case.body {
                call = call.json(&body(&world));
            }
            let answer = call.send(&world.app).await;
            let (expected, code) = if case.allowed.contains(&who) {
                (case.ok, None)
            } else if who == Anonymous {
                (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
            } else {
                (StatusCode::FORBIDDEN, Some("forbidden"))
            };
            count += 1;
            if answer.status != expected || code.is_some_and(|c| answer.code() != c) {
                failures.push(format!(
                    "{} {} {:?} as {who:?}: expected {expected} {}, got {} {}",
                    case.method,
                    case.path,
                    case.scope,
                    code.unwrap_or(""),
                    answer.status,
                    answer.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {count} cases differ from the policy table:\n{}",
        name,
        failures.len(),
        failures.join("\n")
    );
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_caller_and_scope() {
    // The backends run side by side: the databases do most of the work.
    let backends = api::backends();
    let runs: Vec<_> = backends
        .iter()
        .map(|backend| {
            let (name, url) = (backend.name, backend.url.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let cases = run_matrix(name, url).await;
                eprintln!(
                    "{name}: {cases} authorization cases in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            })
        })
        .collect();
    // Every run finishes before a failure is reported and the databases are dropped.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_covers_every_documented_operation() {
    let dir = tempfile::tempdir().unwrap();
    let db = grimnir_server::db::Database::open(
        grimnir_server::db::DatabaseUrl::sqlite_file(dir.path().join("g.db")),
        Default::default(),
    )
    .await
    .unwrap();
    let doc = grimnir_server::api::openapi(&common::state(db));
    let documented: BTreeSet<(String, String)> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            let json = serde_json::to_value(item).unwrap();
            json.as_object()
                .unwrap()
                .keys()
                .filter(|k| {
                    ["get", "put", "post", "delete", "patch", "head", "options"]
                        .contains(&k.as_str())
                })
                .map(|m| (m.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        covered(),
        documented,
        "the matrix and the API document list different operations"
    );
}
