//! Helpers for the API tests: the databases to run on, a world of stations, users, roles and
//! keys, and requests through `tower::ServiceExt::oneshot`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::Utc;
use grimnir_server::auth::api_key;
use grimnir_server::auth::token::{REFRESH_TTL, new_refresh_token};
use grimnir_server::db::api_keys::{self, ApiKeyId, NewApiKey};
use grimnir_server::db::members::{self, StationRole};
use grimnir_server::db::refresh_tokens::{self, FamilyId};
use grimnir_server::db::stations::{self, NewStation, StationId};
use grimnir_server::db::users::{self, AccountRole, NewUser, UserId};
use grimnir_server::db::{Database, DatabaseUrl, PoolOptions};
use grimnir_server::http::{self, AppState};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use super::TestDatabase;

/// The password of every account of a [`World`].
pub const PASSWORD: &str = "a good long password";

/// A database to run a test on, kept alive as long as this is.
pub struct Backend {
    /// `sqlite`, `postgres` or `mysql`.
    pub name: &'static str,
    /// Its URL.
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

/// SQLite (always) and PostgreSQL and MariaDB (when reachable, or failing with CI=true).
pub fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Backend {
        name: "sqlite",
        url: DatabaseUrl::sqlite_file(dir.path().join("grimnir.db")),
        _dir: Some(dir),
        _db: None,
    }];
    if let Some(db) = super::postgres() {
        out.push(Backend {
            name: "postgres",
            url: db.url.clone(),
            _dir: None,
            _db: Some(db),
        });
    }
    if let Some(db) = super::mysql() {
        out.push(Backend {
            name: "mysql",
            url: db.url.clone(),
            _dir: None,
            _db: Some(db),
        });
    }
    out
}

/// Opens and migrates a backend's database.
pub async fn open(backend: &Backend) -> Database {
    let db = Database::open(backend.url.clone(), PoolOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", backend.name));
    db.migrate().await.unwrap();
    db
}

/// An argon2id hash of [`PASSWORD`], made once: hashing is deliberately slow.
pub fn password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| grimnir_server::auth::password::hash(PASSWORD).unwrap())
        .clone()
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: UserId,
    pub email: String,
    /// An access token of a live session.
    pub token: String,
    pub session: FamilyId,
}

/// An API key and its row id.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: ApiKeyId,
    pub key: String,
}

/// Two stations and everyone the authorization matrix asks about.
pub struct World {
    pub state: AppState,
    pub app: Router,
    pub a: StationId,
    pub b: StationId,
    pub admin: Account,
    pub manager_a: Account,
    pub dj_a: Account,
    pub manager_b: Account,
    /// A DJ at both stations, to be acted on (role changes, removal, deletion).
    pub target: Account,
    /// A manager-role key of station A, created by `manager_a`.
    pub key_a: Key,
    /// A DJ-role key of station A, created by `manager_a`.
    pub key_a_dj: Key,
    /// Keys to revoke, one per station.
    pub spare_key_a: Key,
    pub spare_key_b: Key,
    /// A refresh token of `dj_a`'s session.
    pub refresh_dj_a: String,
}

/// A session for `user`: a refresh-token family with one token, and an access token for it.
pub async fn session(state: &AppState, user: UserId) -> (FamilyId, String, String) {
    let family = FamilyId::random();
    let (refresh, hash) = new_refresh_token().unwrap();
    state
        .db
        .run(move |c| {
            let at = Utc::now().naive_utc();
            refresh_tokens::insert(
                c,
                user,
                family,
                &hash,
                at,
                at + chrono::Duration::from_std(REFRESH_TTL).unwrap(),
            )
            .map(drop)
        })
        .await
        .unwrap();
    let token = state
        .auth
        .keys()
        .issue(user, family, Utc::now().timestamp())
        .unwrap();
    (family, token, refresh)
}

static WORLD_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

async fn account(state: &AppState, tag: &str, n: u32, role: AccountRole) -> (Account, String) {
    let new = NewUser {
        email: format!("{tag}.{n}@example.org"),
        password_hash: password_hash(),
        role,
        disabled: false,
    };
    let user = state.db.run(move |c| users::create(c, &new)).await.unwrap();
    let (session, token, refresh) = self::session(state, user.id).await;
    (
        Account {
            id: user.id,
            email: user.email,
            token,
            session,
        },
        refresh,
    )
}

async fn grant(state: &AppState, station: StationId, user: UserId, role: StationRole) {
    state
        .db
        .run(move |c| members::set(c, station, user, role).map(drop))
        .await
        .unwrap();
}

/// Creates an API key row directly (as the API would), returning the full key.
pub async fn key(
    state: &AppState,
    user: UserId,
    station: StationId,
    role: StationRole,
    expires_at: Option<chrono::NaiveDateTime>,
) -> Key {
    let generated = api_key::generate().unwrap();
    let new = NewApiKey {
        user_id: user,
        station_id: station,
        name: "test key".into(),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        role,
        expires_at,
    };
    let stored = state
        .db
        .run(move |c| api_keys::create(c, &new))
        .await
        .unwrap();
    Key {
        id: stored.id,
        key: generated.key,
    }
}

impl World {
    /// A fresh world in `state`'s database (unique emails, so many worlds can share one).
    pub async fn new(state: AppState) -> World {
        let n = WORLD_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (a, b) = state
            .db
            .run(move |c| {
                let a = stations::create(c, &NewStation::new(format!("A {n}"), "Europe/Oslo"))?;
                let b = stations::create(c, &NewStation::new(format!("B {n}"), "UTC"))?;
                Ok((a.id, b.id))
            })
            .await
            .unwrap();
        let (admin, _) = account(&state, "admin", n, AccountRole::Admin).await;
        let (manager_a, _) = account(&state, "manager-a", n, AccountRole::User).await;
        let (dj_a, refresh_dj_a) = account(&state, "dj-a", n, AccountRole::User).await;
        let (manager_b, _) = account(&state, "manager-b", n, AccountRole::User).await;
        let (target, _) = account(&state, "target", n, AccountRole::User).await;
        grant(&state, a, manager_a.id, StationRole::Manager).await;
        grant(&state, a, dj_a.id, StationRole::Dj).await;
        grant(&state, b, manager_b.id, StationRole::Manager).await;
        grant(&state, a, target.id, StationRole::Dj).await;
        grant(&state, b, target.id, StationRole::Dj).await;
        let key_a = key(&state, manager_a.id, a, StationRole::Manager, None).await;
        let key_a_dj = key(&state, manager_a.id, a, StationRole::Dj, None).await;
        let spare_key_a = key(&state, manager_a.id, a, StationRole::Dj, None).await;
        let spare_key_b = key(&state, manager_b.id, b, StationRole::Dj, None).await;
        World {
            app: http::router(state.clone()),
            state,
            a,
            b,
            admin,
            manager_a,
            dj_a,
            manager_b,
            target,
            key_a,
            key_a_dj,
            spare_key_a,
            spare_key_b,
            refresh_dj_a,
        }
    }
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Credential {
    None,
    Bearer(String),
    ApiKey(String),
    /// A raw `Authorization` header value.
    Authorization(String),
}

/// An answer: status, headers and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The body as sent.
    pub raw: Vec<u8>,
}

impl Answer {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The field of an error body.
    pub fn field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }
}

/// A request built piece by piece and sent through the router.
pub struct Call {
    request: axum::http::request::Builder,
    body: Body,
}

pub fn call(method: Method, path: &str) -> Call {
    Call {
        request: Request::builder().method(method).uri(path),
        body: Body::empty(),
    }
}

impl Call {
    pub fn auth(mut self, credential: &Credential) -> Self {
        self.request = match credential {
            Credential::None => self.request,
            Credential::Bearer(token) => self
                .request
                .header("authorization", format!("Bearer {token}")),
            Credential::ApiKey(key) => self.request.header("x-api-key", key.as_str()),
            Credential::Authorization(raw) => self.request.header("authorization", raw.as_str()),
        };
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.request = self.request.header("content-type", "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub fn raw(mut self, content_type: Option<&str>, body: &str) -> Self {
        if let Some(ct) = content_type {
            self.request = self.request.header("content-type", ct);
        }
        self.body = Body::from(body.to_owned());
        self
    }

    /// A body of raw bytes (or a stream) with this content type.
    pub fn bytes(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        self.request = self.request.header("content-type", content_type);
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    pub fn peer(mut self, addr: SocketAddr) -> Self {
        self.request = self.request.extension(ConnectInfo(addr));
        self
    }

    /// Sends and reads the body only when the answer is not a success: for endless streams.
    pub async fn send_for_status(self, app: &Router) -> Answer {
        let request = self.request.body(self.body).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            return Answer {
                status,
                headers,
                body: Value::Null,
                text: String::new(),
                raw: Vec::new(),
            };
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            raw: bytes.to_vec(),
        }
    }

    pub async fn send(self, app: &Router) -> Answer {
        let request = self.request.body(self.body).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
            raw: bytes.to_vec(),
        }
    }
}
