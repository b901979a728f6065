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
    /// With `{s}` (the scope's station), `{target}`, `{self}`, `{spare_key}` and the
    /// scope's [`Fixtures`] (`{dsp_graph}`).
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
    let mut all = vec![
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
            Method::POST,
            "/api/v1/auth/ticket",
            none,
            None,
            200,
            SIGNED_IN,
        ),
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
        // Priority sources. No executor runs in these worlds: sources are stored for later.
        case(
            Method::GET,
            "/api/v1/stations/{s}/priority/sources",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/priority/sources",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/priority/sources",
            A,
            Some(|_| json!({"priority": 2, "source_type": "live", "input": "live/show"})),
            201,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/priority/sources",
            B,
            Some(|_| json!({"priority": 0, "source_type": "emergency_audio", "input": "/eas.mp3"})),
            201,
            &[Admin, ManagerB],
        ),
        // The source does not exist: the policy answers first, then 404.
        case(
            Method::DELETE,
            "/api/v1/stations/{s}/priority/sources/{source}",
            A,
            None,
            404,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/priority/emergency",
            A,
            Some(|_| json!({"audio_file": "/alerts/eas.mp3", "duration_seconds": 30})),
            201,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/priority/emergency",
            B,
            Some(|_| json!({"audio_file": "/alerts/eas.mp3"})),
            201,
            &[Admin, ManagerB],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/priority/override",
            A,
            Some(|_| json!({"source_url": "icecast://localhost:8000/live"})),
            201,
            &[Admin, ManagerA, KeyA],
        ),
        // Executor states.
        case(
            Method::GET,
            "/api/v1/executor/states",
            none,
            None,
            200,
            SIGNED_IN,
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/executor/state",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/executor/state",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
        // Playout controls: allowed callers learn that no executor runs (409).
        case(
            Method::POST,
            "/api/v1/stations/{s}/playout/skip",
            A,
            None,
            409,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/playout/stop",
            A,
            None,
            409,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/playout/reload",
            B,
            None,
            409,
            &[Admin, ManagerB],
        ),
        // Analytics.
        case(
            Method::GET,
            "/api/v1/stations/{s}/now-playing",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/analytics/spins",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/analytics/spins",
            B,
            None,
            200,
            &[Admin, ManagerB],
        ),
        // The webhook: API keys of A report for A; others name the station.
        case(
            Method::POST,
            "/api/v1/webhooks/track-start",
            A,
            Some(|w| json!({"title": "Hit", "station_id": w.a.to_string()})),
            201,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        // Live. The world has no mounts: the policy answers first, then 422 (`mount_id`).
        case(
            Method::POST,
            "/api/v1/stations/{s}/live/authorize",
            A,
            Some(|_| json!({"mount_id": uuid::Uuid::new_v4()})),
            422,
            &[Admin, ManagerA, DjA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/live/handover",
            A,
            Some(|_| json!({"input": "icecast://localhost:8000/dj"})),
            201,
            &[Admin, ManagerA, DjA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/live/handover",
            B,
            Some(|_| json!({"input": "icecast://localhost:8000/dj", "priority": 1})),
            201,
            &[Admin, ManagerB],
        ),
        // No such live source: the policy answers first, then 404.
        case(
            Method::POST,
            "/api/v1/stations/{s}/live/release",
            A,
            Some(|_| json!({"source_id": uuid::Uuid::new_v4()})),
            404,
            &[Admin, ManagerA, DjA],
        ),
        // DSP graphs.
        case(
            Method::GET,
            "/api/v1/stations/{s}/dsp-graphs",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/dsp-graphs",
            A,
            Some(|_| json!({"name": "chain", "nodes": [{"type": "limiter"}]})),
            201,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/dsp-graphs",
            B,
            Some(|_| json!({"name": "chain", "nodes": []})),
            201,
            &[Admin, ManagerB],
        ),
        case(
            Method::GET,
            "/api/v1/stations/{s}/dsp-graphs/{dsp_graph}",
            A,
            None,
            200,
            &[Admin, ManagerA, DjA, KeyA, KeyADj],
        ),
        case(
            Method::PATCH,
            "/api/v1/stations/{s}/dsp-graphs/{dsp_graph}",
            A,
            Some(|_| json!({"name": "renamed"})),
            200,
            &[Admin, ManagerA, KeyA],
        ),
        case(
            Method::DELETE,
            "/api/v1/stations/{s}/dsp-graphs/{dsp_graph}",
            B,
            None,
            204,
            &[Admin, ManagerB],
        ),
        case(
            Method::POST,
            "/api/v1/stations/{s}/dsp-graphs/{dsp_graph}/apply",
            A,
            None,
            200,
            &[Admin, ManagerA, KeyA],
        ),
    ];
    // The programme and the schedule: reads for everyone at the station, writes for its
    // managers (and manager keys).
    all.extend(programme_cases());
    all.extend(media_cases());
    all.extend(migration_cases());
    all.extend(output_cases());
    all
}

/// Import jobs: admins only, no API keys.
#[rustfmt::skip]
fn migration_cases() -> Vec<Case> {
    let backup: fn(&World) -> Value = |_| {
        let path =
            std::env::temp_dir().join(format!("grimnir-authz-backup-{}.zip", std::process::id()));
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(64, 0);
        std::fs::write(&path, zip).unwrap();
        json!({"backup_path": path.display().to_string()})
    };
    let none = Scope::None;
    let admin: &'static [Who] = &[Admin];
    vec![
        case(Method::POST, "/api/v1/migrations/azuracast", none, Some(backup), 201, admin),
        // LibreTime backups may be zip archives too.
        case(Method::POST, "/api/v1/migrations/libretime", none, Some(backup), 201, admin),
        case(Method::GET, "/api/v1/migrations", none, None, 200, admin),
        case(Method::GET, "/api/v1/migrations/{job}", none, None, 200, admin),
        case(Method::DELETE, "/api/v1/migrations/{job}", none, None, 204, admin),
        // The fixture job is complete, so its stream ends after its one event.
        case(Method::GET, "/api/v1/migrations/{job}/events", none, None, 200, admin),
    ]
}

/// Who may read and who may write a station's programme and schedule, at A and at B.
const PROGRAMME_READ_A: &[Who] = &[Admin, ManagerA, DjA, KeyA, KeyADj];
const PROGRAMME_WRITE_A: &[Who] = &[Admin, ManagerA, KeyA];
const PROGRAMME_B: &[Who] = &[Admin, ManagerB];

/// The programme routes, each at station A and at station B.
fn programme_cases() -> Vec<Case> {
    type Body = Option<fn(&World) -> Value>;
    /// Who may, at A and at B.
    type Allowed = (&'static [Who], &'static [Who]);
    let block: Body = Some(|_| json!({"name": "Rock", "rules": {}}));
    let rename: Body = Some(|_| json!({"name": "Renamed"}));
    let materialize: Body = Some(|_| json!({"duration": 60, "at": "2026-11-24T10:00:00Z"}));
    let clock: Body =
        Some(|_| json!({"name": "Talk", "slots": [{"live": {"name": "Talk", "duration": 600}}]}));
    let simulate: Body = Some(|_| json!({"start": "2026-11-24T10:00:00Z"}));
    let show: Body = Some(|_| {
        json!({"name": "Late", "definition": {"starts_on": "2026-01-02", "start": "20:00:00",
               "end": "22:00:00", "content": "live"}})
    });
    let refresh: Body =
        Some(|_| json!({"from": "2026-11-24T10:00:00Z", "to": "2026-11-24T11:00:00Z"}));
    let edit: Body = Some(|_| json!({"source": {"type": "live", "name": "Phone-in"}}));
    let read = (PROGRAMME_READ_A, PROGRAMME_B);
    let write = (PROGRAMME_WRITE_A, PROGRAMME_B);
    #[rustfmt::skip]
    let operations: Vec<(Method, &'static str, Body, u16, Allowed)> = vec![
        (Method::GET, "/api/v1/stations/{s}/smart-blocks", None, 200, read),
        (Method::POST, "/api/v1/stations/{s}/smart-blocks", block, 201, write),
        (Method::GET, "/api/v1/stations/{s}/smart-blocks/{block}", None, 200, read),
        (Method::PATCH, "/api/v1/stations/{s}/smart-blocks/{block}", rename, 200, write),
        (Method::DELETE, "/api/v1/stations/{s}/smart-blocks/{spare_block}", None, 204, write),
        (Method::POST, "/api/v1/stations/{s}/smart-blocks/{block}/materialize", materialize, 200, read),
        (Method::GET, "/api/v1/stations/{s}/clocks", None, 200, read),
        (Method::POST, "/api/v1/stations/{s}/clocks", clock, 201, write),
        (Method::GET, "/api/v1/stations/{s}/clocks/{clock}", None, 200, read),
        (Method::PATCH, "/api/v1/stations/{s}/clocks/{clock}", rename, 200, write),
        (Method::DELETE, "/api/v1/stations/{s}/clocks/{clock}", None, 204, write),
        (Method::POST, "/api/v1/stations/{s}/clocks/{clock}/simulate", simulate, 200, read),
        (Method::GET, "/api/v1/stations/{s}/shows", None, 200, read),
        (Method::POST, "/api/v1/stations/{s}/shows", show, 201, write),
        (Method::GET, "/api/v1/stations/{s}/shows/{show}", None, 200, read),
        (Method::PATCH, "/api/v1/stations/{s}/shows/{show}", rename, 200, write),
        (Method::DELETE, "/api/v1/stations/{s}/shows/{show}", None, 204, write),
        (Method::GET, "/api/v1/stations/{s}/programme", None, 200, read),
        (Method::PUT, "/api/v1/stations/{s}/programme", Some(|_| json!({})), 200, write),
        (Method::GET, "/api/v1/stations/{s}/schedule", None, 200, read),
        (Method::POST, "/api/v1/stations/{s}/schedule/refresh", refresh, 200, write),
        (Method::PATCH, "/api/v1/stations/{s}/schedule/{entry}", edit, 200, write),
    ];
    operations
        .into_iter()
        .flat_map(|(method, path, body, ok, (at_a, at_b))| {
            [
                case(method.clone(), path, Scope::A, body, ok, at_a),
                case(method, path, Scope::B, body, ok, at_b),
            ]
        })
        .collect()
}

/// Who may read, write (upload, edit, tag) and manage (delete media, create and delete tags) a
/// station's media library, at A.
const MEDIA_USE_A: &[Who] = &[Admin, ManagerA, DjA, KeyA, KeyADj];
const MEDIA_MANAGE_A: &[Who] = &[Admin, ManagerA, KeyA];

/// The media library's routes, each at station A and at station B. `POST …/media` is sent as a
/// multipart upload of a short WAV (see [`is_upload`]).
fn media_cases() -> Vec<Case> {
    type Body = Option<fn(&World) -> Value>;
    type Allowed = (&'static [Who], &'static [Who]);
    let use_ = (MEDIA_USE_A, PROGRAMME_B);
    let manage = (MEDIA_MANAGE_A, PROGRAMME_B);
    let rename: Body = Some(|_| json!({"title": "Renamed"}));
    let tag: Body = Some(|_| json!({"name": "new tag"}));
    #[rustfmt::skip]
    let operations: Vec<(Method, &'static str, Body, u16, Allowed)> = vec![
        (Method::GET, "/api/v1/stations/{s}/media", None, 200, use_),
        (Method::POST, "/api/v1/stations/{s}/media", None, 201, use_),
        (Method::GET, "/api/v1/stations/{s}/media/{media}", None, 200, use_),
        (Method::PATCH, "/api/v1/stations/{s}/media/{media}", rename, 200, use_),
        (Method::DELETE, "/api/v1/stations/{s}/media/{media}", None, 204, manage),
        (Method::GET, "/api/v1/stations/{s}/media/{media}/file", None, 200, use_),
        (Method::GET, "/api/v1/stations/{s}/tags", None, 200, use_),
        (Method::POST, "/api/v1/stations/{s}/tags", tag, 201, manage),
        (Method::DELETE, "/api/v1/stations/{s}/tags/{tag}", None, 204, manage),
        (Method::PUT, "/api/v1/stations/{s}/media/{media}/tags/{tag}", None, 204, use_),
        (Method::DELETE, "/api/v1/stations/{s}/media/{media}/tags/{tag}", None, 204, use_),
    ];
    operations
        .into_iter()
        .flat_map(|(method, path, body, ok, (at_a, at_b))| {
            [
                case(method.clone(), path, Scope::A, body, ok, at_a),
                case(method, path, Scope::B, body, ok, at_b),
            ]
        })
        .collect()
}

/// Whether a case is an upload, sent as a multipart body rather than JSON.
fn is_upload(case: &Case) -> bool {
    case.method == Method::POST && case.path.ends_with("/media")
}

/// Encoder presets (read by anyone signed in, changed by admins) and mounts (read at the
/// station, changed by its managers), each mount route at station A and at station B.
fn output_cases() -> Vec<Case> {
    type Body = Option<fn(&World) -> Value>;
    type Allowed = (&'static [Who], &'static [Who]);
    let preset: Body = Some(|_| {
        json!({"name": format!("preset {}", uuid::Uuid::new_v4()), "format": "mp3",
               "bitrate_kbps": 128, "sample_rate": 44100})
    });
    let rename_preset: Body =
        Some(|_| json!({"name": format!("renamed {}", uuid::Uuid::new_v4())}));
    let mount: Body = Some(|_| {
        json!({"name": "Main", "outputs": [{"type": "icecast", "host": "localhost", "port": 8000,
               "mount": "/main", "password": "hackme", "encoding": {"format": "mp3",
               "bitrate_kbps": 128, "sample_rate": 44100}}]})
    });
    let rename: Body = Some(|_| json!({"name": "Renamed"}));
    // Nobody listens on the discard port of loopback: a probe is refused at once.
    let stream: Body = Some(|_| json!({"name": "Relay", "url": "http://127.0.0.1:9/relay"}));
    let read = (PROGRAMME_READ_A, PROGRAMME_B);
    let write = (PROGRAMME_WRITE_A, PROGRAMME_B);
    let mut all = vec![
        case(
            Method::GET,
            "/api/v1/encoder-presets",
            Scope::None,
            None,
            200,
            SIGNED_IN,
        ),
        case(
            Method::POST,
            "/api/v1/encoder-presets",
            Scope::None,
            preset,
            201,
            &[Admin],
        ),
        case(
            Method::GET,
            "/api/v1/encoder-presets/{preset}",
            Scope::None,
            None,
            200,
            SIGNED_IN,
        ),
        case(
            Method::PATCH,
            "/api/v1/encoder-presets/{preset}",
            Scope::None,
            rename_preset,
            200,
            &[Admin],
        ),
        case(
            Method::DELETE,
            "/api/v1/encoder-presets/{preset}",
            Scope::None,
            None,
            204,
            &[Admin],
        ),
    ];
    #[rustfmt::skip]
    let operations: Vec<(Method, &'static str, Body, u16, Allowed)> = vec![
        (Method::GET, "/api/v1/stations/{s}/mounts", None, 200, read),
        (Method::POST, "/api/v1/stations/{s}/mounts", mount, 201, write),
        (Method::GET, "/api/v1/stations/{s}/mounts/{mount}", None, 200, read),
        (Method::PATCH, "/api/v1/stations/{s}/mounts/{mount}", rename, 200, write),
        (Method::DELETE, "/api/v1/stations/{s}/mounts/{mount}", None, 204, write),
        (Method::GET, "/api/v1/stations/{s}/webstreams", None, 200, read),
        (Method::POST, "/api/v1/stations/{s}/webstreams", stream, 201, write),
        (Method::GET, "/api/v1/stations/{s}/webstreams/{webstream}", None, 200, read),
        (Method::PATCH, "/api/v1/stations/{s}/webstreams/{webstream}", rename, 200, write),
        (Method::DELETE, "/api/v1/stations/{s}/webstreams/{webstream}", None, 204, write),
        (Method::GET, "/api/v1/stations/{s}/webstreams/{webstream}/health", None, 200, write),
    ];
    all.extend(
        operations
            .into_iter()
            .flat_map(|(method, path, body, ok, (at_a, at_b))| {
                [
                    case(method.clone(), path, Scope::A, body, ok, at_a),
                    case(method, path, Scope::B, body, ok, at_b),
                ]
            }),
    );
    all
}

/// Puts ids of a smart block (used by a clock), a spare smart block, a clock, a show and a
/// schedule entry at the case's station into `path`, creating them first.
async fn with_programme(world: &World, scope: Scope, path: String) -> String {
    use grimnir_planner as planner;
    use grimnir_server::db::{clocks, schedule, shows, smart_blocks};
    if !["{block}", "{spare_block}", "{clock}", "{show}", "{entry}"]
        .iter()
        .any(|p| path.contains(p))
    {
        return path;
    }
    let station = if scope == Scope::B { world.b } else { world.a };
    let ids = world
        .state
        .db
        .run(move |c| {
            let block = |name: &str| smart_blocks::SmartBlockInput {
                name: name.into(),
                description: None,
                block: planner::SmartBlock::new("x", None),
            };
            let used = smart_blocks::create(c, station, &block("Used"))?;
            let spare = smart_blocks::create(c, station, &block("Spare"))?;
            let slot = planner::Slot::new(planner::SlotKind::SmartBlock {
                block: used.id.to_string().into(),
                duration: None,
            });
            let clock = clocks::create(
                c,
                station,
                &clocks::ClockInput {
                    name: "Music".into(),
                    slots: vec![slot],
                },
            )?;
            let mut show: planner::Show = serde_json::from_value(json!({
                "id": "x", "name": "x", "starts_on": "2026-01-02", "start": "20:00:00",
                "end": "22:00:00", "content": "live"
            }))
            .unwrap();
            show.underbooked = planner::Underbooked::Filler;
            let show = shows::create(
                c,
                station,
                &shows::ShowInput {
                    name: "Late".into(),
                    description: None,
                    show,
                },
            )?;
            let start: chrono::DateTime<chrono::Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
            let entry: planner::Entry = serde_json::from_value(json!({
                "start": start, "end": start + chrono::TimeDelta::minutes(30),
                "source": {"type": "live", "name": "Breakfast"}, "tier": "live_scheduled",
                "transition": {"fade_in": 0, "fade_out": 0, "overlap": 0},
                "provenance": {"role": "slot", "kind": "live", "frame": start, "step": 0, "pick": 0}
            }))
            .unwrap();
            schedule::replace_window(c, station, start, entry.end, &[entry])?;
            let (entries, _) = schedule::list(
                c,
                station,
                start,
                start + chrono::TimeDelta::hours(1),
                grimnir_server::db::Page::ALL,
            )?;
            Ok((used.id, spare.id, clock.id, show.id, entries[0].id))
        })
        .await
        .unwrap();
    path.replace("{block}", &ids.0.to_string())
        .replace("{spare_block}", &ids.1.to_string())
        .replace("{clock}", &ids.2.to_string())
        .replace("{show}", &ids.3.to_string())
        .replace("{entry}", &ids.4.to_string())
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

/// Rows the cases act on, one of each at each station: `[at A, at B]`.
struct Fixtures {
    dsp_graph: [uuid::Uuid; 2],
    /// A media item (with its file) and a tag.
    media: [uuid::Uuid; 2],
    tag: [uuid::Uuid; 2],
    /// A complete import job (not about a station).
    job: uuid::Uuid,
    /// An encoder preset no mount uses.
    preset: uuid::Uuid,
    /// A mount with an encoding of its own at each station.
    mount: [String; 2],
    /// A webstream at each station, on a loopback port nobody listens on.
    webstream: [uuid::Uuid; 2],
}

impl Fixtures {
    async fn new(world: &World) -> Fixtures {
        use grimnir_server::db::dsp_graphs::{self, NewDspGraph};
        let (a, b) = (world.a, world.b);
        let dsp_graph = world
            .state
            .db
            .run(move |c| {
                let mut ids = [uuid::Uuid::nil(); 2];
                for (i, station) in [a, b].into_iter().enumerate() {
                    let new = NewDspGraph {
                        name: "fixture".into(),
                        description: None,
                        graph: Default::default(),
                    };
                    ids[i] = dsp_graphs::create(c, station, &new)
                        .map_err(|e| grimnir_server::db::StorageError::Task(e.to_string()))?
                        .id
                        .as_uuid();
                }
                Ok(ids)
            })
            .await
            .unwrap();
        let (media, tag) = media_fixtures(world).await;
        let admin = world.admin.id;
        let job = world
            .state
            .db
            .run(move |c| {
                use diesel::prelude::*;
                use grimnir_server::db::migration_jobs::{self, ImportSource};
                use grimnir_server::db::schema::migration_jobs as jobs;
                let job = migration_jobs::create(c, ImportSource::LibreTime, "/backup.sql", admin)?;
                diesel::update(jobs::table.filter(jobs::id.eq(job.id.to_string())))
                    .set(jobs::status.eq("complete"))
                    .execute(c)?;
                Ok(job.id.as_uuid())
            })
            .await
            .unwrap();
        let (preset, mount) = world
            .state
            .db
            .run(move |c| {
                use grimnir_server::db::encoder_presets::{self, AudioFormat, Encoding};
                use grimnir_server::db::mounts::{self, IcecastTarget, MountOutput, NewMount};
                let encoding = Encoding {
                    format: AudioFormat::Mp3,
                    bitrate_kbps: Some(128),
                    sample_rate: 44_100,
                    channels: 2,
                    quality: None,
                };
                let preset = encoder_presets::create(
                    c,
                    &encoder_presets::NewEncoderPreset {
                        name: format!("fixture {}", uuid::Uuid::new_v4()),
                        encoding,
                        options: Default::default(),
                    },
                )?;
                let mut mount = [String::new(), String::new()];
                for (i, station) in [a, b].into_iter().enumerate() {
                    let new = NewMount {
                        name: "fixture".into(),
                        encoder_preset_id: None,
                        outputs: vec![MountOutput::Icecast(IcecastTarget {
                            host: "localhost".into(),
                            port: 8000,
                            mount: "/fixture".into(),
                            username: "source".into(),
                            password: "hackme".into(),
                            encoding: Some(encoding),
                        })],
                    };
                    mount[i] = mounts::create(c, station, &new)?.id;
                }
                Ok((preset.id.as_uuid(), mount))
            })
            .await
            .unwrap();
        let webstream = world
            .state
            .db
            .run(move |c| {
                use grimnir_server::db::webstreams::{self, NewWebstream};
                let mut ids = [uuid::Uuid::nil(); 2];
                for (i, station) in [a, b].into_iter().enumerate() {
                    let new = NewWebstream {
                        name: "fixture".into(),
                        url: "http://127.0.0.1:9/fixture".into(),
                        fallback_urls: Vec::new(),
                        headers: Default::default(),
                    };
                    ids[i] = webstreams::create(c, station, &new)?.id.as_uuid();
                }
                Ok(ids)
            })
            .await
            .unwrap();
        Fixtures {
            dsp_graph,
            media,
            tag,
            job,
            preset,
            mount,
            webstream,
        }
    }
}

/// A media item with a file in the world's media library, and a tag, at each station.
async fn media_fixtures(world: &World) -> ([uuid::Uuid; 2], [uuid::Uuid; 2]) {
    use grimnir_server::db::media::{self, MediaId, NewMedia};
    let (a, b) = (world.a, world.b);
    let library = world.state.media.clone();
    let (media, tags, keys) = world
        .state
        .db
        .run(move |c| {
            let mut media_ids = [uuid::Uuid::nil(); 2];
            let mut tag_ids = [uuid::Uuid::nil(); 2];
            let mut keys = Vec::new();
            for (i, station) in [a, b].into_iter().enumerate() {
                let id = MediaId::random();
                let key = grimnir_server::media::storage_key(
                    station,
                    id,
                    grimnir_server::media::Container::Wav,
                );
                let new = NewMedia {
                    id,
                    title: "fixture".into(),
                    artist: None,
                    album: None,
                    genre: None,
                    year: None,
                    storage_key: key.clone(),
                    content_type: "audio/wav".into(),
                    size_bytes: 44,
                    duration_ms: Some(1000),
                    sample_rate: 8000,
                    channels: 1,
                    filename: None,
                };
                media_ids[i] = media::create(c, station, &new)?.0.id.as_uuid();
                tag_ids[i] = media::create_tag(c, station, "fixture")?.id.as_uuid();
                keys.push(key);
            }
            Ok((media_ids, tag_ids, keys))
        })
        .await
        .unwrap();
    for key in keys {
        let path = library.path_of(&key).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, common::media::wav(8000, 1, 0.0, 0.1, -20.0)).unwrap();
    }
    (media, tags)
}

fn path(world: &World, fixtures: &Fixtures, case: &Case, who: Who) -> String {
    let (station, spare_key, at) = match case.scope {
        Scope::B => (world.b, world.spare_key_b.id, 1),
        _ => (world.a, world.spare_key_a.id, 0),
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
        .replace("{dsp_graph}", &fixtures.dsp_graph[at].to_string())
        .replace("{media}", &fixtures.media[at].to_string())
        .replace("{tag}", &fixtures.tag[at].to_string())
        .replace("{job}", &fixtures.job.to_string())
        .replace("{preset}", &fixtures.preset.to_string())
        .replace("{mount}", &fixtures.mount[at])
        .replace("{webstream}", &fixtures.webstream[at].to_string())
        .replace("{source}", &uuid::Uuid::new_v4().to_string())
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
                .replace("{spare_key}", "{key_id}")
                .replace("{dsp_graph}", "{graph_id}")
                .replace("{preset}", "{preset_id}")
                .replace("{mount}", "{mount_id}")
                .replace("{webstream}", "{stream_id}")
                .replace("{source}", "{source_id}")
                .replace("{block}", "{block_id}")
                .replace("{spare_block}", "{block_id}")
                .replace("{clock}", "{clock_id}")
                .replace("{show}", "{show_id}")
                .replace("{entry}", "{entry_id}")
                .replace("{media}", "{media_id}")
                .replace("{tag}", "{tag_id}")
                .replace("{job}", "{job_id}");
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
            let fixtures = Fixtures::new(&world).await;
            let target =
                with_programme(&world, case.scope, path(&world, &fixtures, &case, who)).await;
            let mut call = api::call(case.method.clone(), &target).auth(&credential(&world, who));
            if let Some(body) = case.body {
                call = call.json(&body(&world));
            }
            if is_upload(&case) {
                let audio = common::media::wav(8000, 1, 0.0, 0.2, -20.0);
                let (content_type, body) =
                    common::media::multipart(&[common::media::Part::file("a.wav", &audio)]);
                call = call.bytes(&content_type, body);
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
