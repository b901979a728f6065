//! Helpers shared by the integration tests: throw-away databases on the local servers, and a
//! minimal HTTP/1.1 client for loopback.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test binary uses a part; tests unwrap

pub mod api;
pub mod media;
pub mod onair;

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection, PgConnection};
use grimnir_server::auth::rate_limit::Quota;
use grimnir_server::auth::{Auth, RateLimits};
use grimnir_server::db::{Database, DatabaseUrl};
use grimnir_server::http::AppState;

/// The JWT secret of test servers.
pub const TEST_SECRET: &str = "grimnir test secret of more than 32 bytes";

/// Limits no test reaches by accident.
pub fn generous_limits() -> RateLimits {
    RateLimits {
        login_per_address: Quota::per_minute(100_000),
        login_per_account: Quota::per_minute(100_000),
        public_per_address: Quota::per_minute(100_000),
        per_user: Quota::per_minute(100_000),
    }
}

/// Token keys with [`TEST_SECRET`] and `limits`.
pub fn auth_with(limits: RateLimits) -> Auth {
    Auth::new(&TEST_SECRET.parse().unwrap(), limits)
}

/// The state of a test server on `db`, with [`generous_limits`].
pub fn state(db: Database) -> AppState {
    with_auth(db, auth_with(generous_limits()))
}

/// The state of a test server on `db` with `auth`, and an in-process event bus.
pub fn with_auth(db: Database, auth: Auth) -> AppState {
    let events = grimnir_server::events::EventBus::memory();
    AppState {
        executors: grimnir_server::executor_pool::ExecutorPool::recording(
            db.clone(),
            events.clone(),
        ),
        db,
        auth,
        events,
        media: test_media_library(),
    }
}

/// A media library in a fresh directory under the system's temporary directory, with a 1 MiB
/// upload limit. Most tests never store a file there.
pub fn test_media_library() -> grimnir_server::media::MediaLibrary {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "grimnir-test-media-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    grimnir_server::media::MediaLibrary::new(&grimnir_server::config::MediaConfig {
        dir,
        max_upload_bytes: 1 << 20,
    })
}

/// How long to wait for a database server before calling it unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// A database created for one test and dropped when this guard drops.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    drop_with: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(drop_with) = self.drop_with.take() {
            drop_with();
        }
    }
}

/// A database name no other run uses: process id, time and a counter.
fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "grimnir_test_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Either the server is required (CI=true) and its absence fails the test, or the test is
/// skipped with a reason on standard error (written past the test harness's capture, so it
/// shows in a normal `cargo test` run).
fn unreachable(backend: &str, url: &str, reason: &str) -> Option<TestDatabase> {
    // Never print a password the URL may carry.
    let url = url
        .parse::<DatabaseUrl>()
        .map_or_else(|_| url.to_owned(), |u| u.to_string());
    let message = format!("{backend} at {url} is unreachable: {}", reason.trim());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true requires it");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {backend} storage test: {message} (set CI=true to make this a failure)"
    );
    None
}

/// Replaces the database name (the URL path) of `url` with `name`, keeping any query.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Host and port of a `scheme://user@host:port/…` URL.
pub fn host_port(url: &str, default_port: u16) -> Option<SocketAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let with_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    with_port.to_socket_addrs().ok()?.next()
}

/// Refuses anything but loopback: these tests create and drop databases.
fn check_loopback(backend: &str, url: &str, addr: SocketAddr) {
    assert!(
        addr.ip().is_loopback(),
        "{backend} test server {url} is not on loopback; refusing to create databases there"
    );
}

/// A fresh PostgreSQL database on the local server (`GRIMNIR_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/postgres`), or `None` when skipped.
pub fn postgres() -> Option<TestDatabase> {
    let admin = std::env::var("GRIMNIR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let Some(addr) = host_port(&admin, 5432) else {
        return unreachable("PostgreSQL", &admin, "cannot resolve the host");
    };
    check_loopback("PostgreSQL", &admin, addr);
    let timeout = format!("connect_timeout={}", REACH_TIMEOUT.as_secs());
    let admin_conn = if admin.contains('?') {
        format!("{admin}&{timeout}")
    } else {
        format!("{admin}?{timeout}")
    };
    let mut conn = match PgConnection::establish(&admin_conn) {
        Ok(conn) => conn,
        Err(e) => return unreachable("PostgreSQL", &admin, &e.to_string()),
    };
    let name = unique_name();
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let url = with_database(&admin, &name)
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    Some(TestDatabase {
        url,
        drop_with: Some(Box::new(move || {
            // WITH (FORCE) ends connections a pool may still hold (PostgreSQL 13 and later).
            if let Err(e) =
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            {
                let _ = writeln!(std::io::stderr(), "could not drop {name}: {e}");
            }
        })),
    })
}

/// A fresh MySQL/MariaDB database on the local server (`GRIMNIR_TEST_MYSQL_URL`, default
/// `mysql://root@127.0.0.1:3306/test`), or `None` when skipped.
pub fn mysql() -> Option<TestDatabase> {
    let admin = std::env::var("GRIMNIR_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let Some(addr) = host_port(&admin, 3306) else {
        return unreachable("MariaDB", &admin, "cannot resolve the host");
    };
    check_loopback("MariaDB", &admin, addr);
    // The MySQL client library has no connect timeout diesel exposes: probe the port first, so
    // an unreachable server costs at most REACH_TIMEOUT.
    if let Err(e) = TcpStream::connect_timeout(&addr, REACH_TIMEOUT) {
        return unreachable("MariaDB", &admin, &e.to_string());
    }
    let mut conn = match MysqlConnection::establish(&admin) {
        Ok(conn) => conn,
        Err(e) => return unreachable("MariaDB", &admin, &e.to_string()),
    };
    let name = unique_name();
    conn.batch_execute(&format!(
        "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let url = with_database(&admin, &name)
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    Some(TestDatabase {
        url,
        drop_with: Some(Box::new(move || {
            if let Err(e) = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")) {
                let _ = writeln!(std::io::stderr(), "could not drop {name}: {e}");
            }
        })),
    })
}

/// A response read by [`get`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`, with extra header lines, bounded in time.
pub async fn get(addr: SocketAddr, path: &str, extra_headers: &[(&str, &str)]) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in extra_headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("HTTP exchange timed out")
        .expect("HTTP exchange failed");
    let text = String::from_utf8(raw).expect("response is not UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of headers");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("no status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The URL of a message server the event bus tests need (`GRIMNIR_TEST_NATS_URL`, default
/// `nats://127.0.0.1:4222`; `GRIMNIR_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`), or
/// `None` when it does not answer and the test is skipped (a failure with CI=true).
pub fn bus_server(kind: &str) -> Option<String> {
    let (var, default, port, name) = match kind {
        "nats" => (
            "GRIMNIR_TEST_NATS_URL",
            "nats://127.0.0.1:4222",
            4222,
            "NATS",
        ),
        "redis" => (
            "GRIMNIR_TEST_REDIS_URL",
            "redis://127.0.0.1:6379",
            6379,
            "Redis",
        ),
        other => panic!("no such bus server kind {other}"),
    };
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let Some(addr) = host_port(&url, port) else {
        return bus_unreachable(name, &url, "cannot resolve the host");
    };
    assert!(
        addr.ip().is_loopback(),
        "{name} test server {url} is not on loopback"
    );
    match TcpStream::connect_timeout(&addr, REACH_TIMEOUT) {
        Ok(_) => Some(url),
        Err(e) => bus_unreachable(name, &url, &e.to_string()),
    }
}

fn bus_unreachable(name: &str, url: &str, reason: &str) -> Option<String> {
    let message = format!("{name} at {url} is unreachable: {reason}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}; CI=true requires it");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED event bus test: {message} (set CI=true to make this a failure)"
    );
    None
}
