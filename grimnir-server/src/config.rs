//! Server configuration: embedded defaults, an optional YAML file, environment variables on top.
//!
//! Every setting has a default, so `grimnir serve` runs with no file and no variables: an SQLite
//! database under `./data`, HTTP on `127.0.0.1:8080`, readable development logs.
//!
//! | file key | variable | alias | default |
//! | --- | --- | --- | --- |
//! | (the file itself) | `GRIMNIR_CONFIG` | `RLM_CONFIG` | none; `--config` wins |
//! | `environment` | `GRIMNIR_ENV` | `RLM_ENV` | `development` |
//! | `data_dir` | `GRIMNIR_DATA_DIR` | `RLM_DATA_DIR` | `./data` |
//! | `stations_dir` | `GRIMNIR_STATIONS_DIR` | `RLM_STATIONS_DIR` | none: no station files |
//! | `http.listen` | `GRIMNIR_HTTP_LISTEN` | `RLM_HTTP_LISTEN` | `127.0.0.1:8080` |
//! | `http.trusted_proxies` | `GRIMNIR_HTTP_TRUSTED_PROXIES` | `RLM_HTTP_TRUSTED_PROXIES` | none (addresses or networks such as `10.0.0.0/8`: a list in the file, comma-separated in the variable) |
//! | `database.url` | `GRIMNIR_DATABASE_URL` | `RLM_DATABASE_URL` | `sqlite://<data_dir>/grimnir.db` |
//! | `database.pool_size` | `GRIMNIR_DATABASE_POOL_SIZE` | `RLM_DATABASE_POOL_SIZE` | `8` |
//! | `database.connect_timeout_secs` | `GRIMNIR_DATABASE_CONNECT_TIMEOUT_SECS` | `RLM_DATABASE_CONNECT_TIMEOUT_SECS` | `5` |
//! | `log.format` | `GRIMNIR_LOG_FORMAT` | `RLM_LOG_FORMAT` | `pretty` in development, `json` in production |
//! | `log.level` | `GRIMNIR_LOG_LEVEL` | `RLM_LOG_LEVEL` | `info` |
//! | `auth.jwt_secret` | `GRIMNIR_JWT_SECRET` | `RLM_JWT_SECRET` | none: a random one in development, refused in production |
//! | `auth.login_per_minute` | `GRIMNIR_AUTH_LOGIN_PER_MINUTE` | `RLM_AUTH_LOGIN_PER_MINUTE` | `10` sign-ins per client address |
//! | `auth.login_per_account_per_minute` | `GRIMNIR_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE` | `RLM_AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE` | `5` sign-ins per account |
//! | `auth.public_per_minute` | `GRIMNIR_AUTH_PUBLIC_PER_MINUTE` | `RLM_AUTH_PUBLIC_PER_MINUTE` | `60` public requests per client address |
//! | `auth.user_per_minute` | `GRIMNIR_AUTH_USER_PER_MINUTE` | `RLM_AUTH_USER_PER_MINUTE` | `600` authenticated requests per user |
//!
//! The JWT secret signs access tokens (HS256) and must be at least 32 bytes. Without one, a
//! development server makes a random secret at start (tokens do not survive a restart) and a
//! production server refuses to start. Errors about it never show its value.
//! | `event_bus.url` | `GRIMNIR_EVENT_BUS` | `RLM_EVENT_BUS` | `memory`; or `nats://host:4222`, `redis://host:6379` |
//! | `event_bus.prefix` | `GRIMNIR_EVENT_BUS_PREFIX` | `RLM_EVENT_BUS_PREFIX` | `grimnir.events` |
//! | `event_bus.buffer` | `GRIMNIR_EVENT_BUS_BUFFER` | `RLM_EVENT_BUS_BUFFER` | `1024` (16–65536) |
//! | `media.dir` | `GRIMNIR_MEDIA_DIR` | `RLM_MEDIA_DIR` | `<data_dir>/media` |
//! | `media.max_upload_bytes` | `GRIMNIR_MEDIA_MAX_UPLOAD_BYTES` | `RLM_MEDIA_MAX_UPLOAD_BYTES` | `1073741824` (1 GiB; 1 KiB–1 TiB) |
//! | `audit.retention_days` | `GRIMNIR_AUDIT_RETENTION_DAYS` | `RLM_AUDIT_RETENTION_DAYS` | none: kept for ever (1–36500 days) |
//!
//! Uploaded media is kept under `media.dir` as `stations/<station_id>/media/<media_id>.<ext>`
//! (see [`crate::media`]); an upload whose file is larger than `media.max_upload_bytes` is
//! refused with 413 while it streams, before it fills the disk.
//!
//! With `audit.retention_days` set, audit entries older than that many days are deleted every
//! hour, and the deletion is itself recorded (see [`crate::audit::prune`]).
//!
//! A variable overrides the file. When both a `GRIMNIR_*` variable and its `RLM_*` alias are
//! set, the `GRIMNIR_*` one wins and [`Config::load`] returns a [`ConfigWarning`] saying so.
//!
//! Errors name what is wrong: for the file, its path, the line and column and the field
//! (`http.listen`); for a variable, its name and value. Unknown keys in the file are errors, so
//! a typo never silently falls back to a default.
//!
//! ```
//! use grimnir_server::config::{Config, EnvVars, Environment};
//!
//! let env = EnvVars::from_pairs([("RLM_ENV", "production"), ("GRIMNIR_HTTP_LISTEN", "127.0.0.1:9000")]);
//! let (config, warnings) = Config::load(None, &env)?;
//! assert_eq!(config.environment, Environment::Production);
//! assert_eq!(config.http.listen.port(), 9000);
//! assert!(warnings.is_empty());
//! # Ok::<(), grimnir_server::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::auth::RateLimits;
use crate::auth::rate_limit::Quota;
use crate::auth::token::JwtSecret;
use crate::db::{DatabaseUrl, PoolOptions};
use crate::events::{BUFFER_RANGE, EventBusConfig, EventBusUrl, SubjectPrefix};

/// Whether the server runs for development or production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Environment {
    /// Readable logs by default.
    #[default]
    Development,
    /// JSON logs by default.
    Production,
}

impl FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Environment::Development),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err("expected `development` or `production`".to_owned()),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// One line per event for people, coloured on a terminal.
    Pretty,
    /// One JSON object per line for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `pretty` or `json`".to_owned()),
        }
    }
}

/// A `tracing` filter such as `info` or `info,grimnir_server=debug`, checked when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl LogLevel {
    /// The filter directives.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        tracing_subscriber::EnvFilter::builder()
            .parse(s)
            .map(|_| LogLevel(s.to_owned()))
            .map_err(|e| format!("not a log filter (e.g. `info,grimnir_server=debug`): {e}"))
    }
}

/// A number of connections, 1 to 128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
struct PoolSize(u32);

impl TryFrom<u64> for PoolSize {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match u32::try_from(n) {
            Ok(n @ 1..=128) => Ok(PoolSize(n)),
            _ => Err(format!("{n} is not between 1 and 128")),
        }
    }
}

/// A timeout in whole seconds, 1 to 300.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
struct TimeoutSecs(u64);

impl TryFrom<u64> for TimeoutSecs {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match n {
            1..=300 => Ok(TimeoutSecs(n)),
            _ => Err(format!("{n} is not between 1 and 300 seconds")),
        }
    }
}

/// A subscriber's buffer of events, within [`BUFFER_RANGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
struct BusBuffer(usize);

impl TryFrom<u64> for BusBuffer {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match usize::try_from(n) {
            Ok(n) if BUFFER_RANGE.contains(&n) => Ok(BusBuffer(n)),
            _ => Err(format!(
                "{n} is not between {} and {}",
                BUFFER_RANGE.start(),
                BUFFER_RANGE.end()
            )),
        }
    }
}

/// Deserializes through `FromStr`, so the file and the environment share one parser.
fn from_str_field<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(deserializer)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

/// The config file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default, deserialize_with = "from_str_field")]
    environment: Option<Environment>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    stations_dir: Option<PathBuf>,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    event_bus: FileEventBus,
    #[serde(default)]
    media: FileMedia,
    #[serde(default)]
    audit: FileAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    #[serde(default)]
    retention_days: Option<RetentionDays>,
}

/// How long audit entries are kept, in days: 1 to 36 500 (a hundred years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
struct RetentionDays(u32);

impl TryFrom<u64> for RetentionDays {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match u32::try_from(n) {
            Ok(n @ 1..=36_500) => Ok(RetentionDays(n)),
            _ => Err(format!("{n} is not between 1 and 36500 days")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMedia {
    #[serde(default)]
    dir: Option<PathBuf>,
    #[serde(default)]
    max_upload_bytes: Option<UploadBytes>,
}

/// The largest upload taken, in bytes: 1 KiB to 1 TiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
struct UploadBytes(u64);

impl TryFrom<u64> for UploadBytes {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match n {
            1024..=MAX_UPLOAD_LIMIT => Ok(UploadBytes(n)),
            _ => Err(format!(
                "{n} is not between 1024 and {MAX_UPLOAD_LIMIT} bytes"
            )),
        }
    }
}

/// The highest `media.max_upload_bytes` allowed: 1 TiB.
const MAX_UPLOAD_LIMIT: u64 = 1 << 40;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    #[serde(default, deserialize_with = "from_str_field")]
    jwt_secret: Option<JwtSecret>,
    #[serde(default)]
    login_per_minute: Option<PerMinute>,
    #[serde(default)]
    login_per_account_per_minute: Option<PerMinute>,
    #[serde(default)]
    public_per_minute: Option<PerMinute>,
    #[serde(default)]
    user_per_minute: Option<PerMinute>,
}

/// A rate limit in requests per minute, 1 to 1 000 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
struct PerMinute(u32);

impl TryFrom<u64> for PerMinute {
    type Error = String;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match u32::try_from(n) {
            Ok(n @ 1..=1_000_000) => Ok(PerMinute(n)),
            _ => Err(format!(
                "{n} is not between 1 and 1000000 requests a minute"
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    #[serde(default, deserialize_with = "from_str_field")]
    listen: Option<SocketAddr>,
    #[serde(default)]
    trusted_proxies: Option<Vec<ProxyNet>>,
}

/// A trusted proxy as written: an address (`10.0.0.1`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
struct ProxyNet(IpNet);

impl TryFrom<String> for ProxyNet {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_proxy(&s).map(ProxyNet)
    }
}

/// An address is a network of one; a network's host bits are dropped (`10.1.2.3/8` is
/// `10.0.0.0/8`).
fn parse_proxy(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("`{s}` is not an IP address or network such as 10.0.0.1 or 10.0.0.0/8")
        })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    #[serde(default, deserialize_with = "from_str_field")]
    url: Option<DatabaseUrl>,
    #[serde(default)]
    pool_size: Option<PoolSize>,
    #[serde(default)]
    connect_timeout_secs: Option<TimeoutSecs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    #[serde(default, deserialize_with = "from_str_field")]
    format: Option<LogFormat>,
    #[serde(default, deserialize_with = "from_str_field")]
    level: Option<LogLevel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEventBus {
    #[serde(default, deserialize_with = "from_str_field")]
    url: Option<EventBusUrl>,
    #[serde(default, deserialize_with = "from_str_field")]
    prefix: Option<SubjectPrefix>,
    #[serde(default)]
    buffer: Option<BusBuffer>,
}

/// The HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Address and port to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Reverse proxies whose `X-Forwarded-For` is believed, as addresses or networks: behind
    /// them, the client address (for rate limits and the audit log) is the last address in
    /// that header that is not one of them. Empty: the peer of the connection is the client.
    pub trusted_proxies: Vec<IpNet>,
}

/// The database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// Which database, and where.
    pub url: DatabaseUrl,
    /// Connections kept open at most.
    pub pool_size: u32,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

impl DatabaseConfig {
    /// The pool settings.
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            max_connections: self.pool_size,
            connect_timeout: self.connect_timeout,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// How lines are written.
    pub format: LogFormat,
    /// Which events are written.
    pub level: LogLevel,
}

/// The media library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Where uploaded files are kept.
    pub dir: PathBuf,
    /// The largest file an upload may carry, in bytes.
    pub max_upload_bytes: u64,
}

/// The audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// Entries older than this many days are deleted; `None` keeps them for ever.
    pub retention_days: Option<u32>,
}

impl AuditConfig {
    /// How long entries are kept, when not for ever.
    pub fn retention(&self) -> Option<chrono::Duration> {
        self.retention_days
            .map(|days| chrono::Duration::days(i64::from(days)))
    }
}

/// The default of [`MediaConfig::max_upload_bytes`]: 1 GiB, a long DJ mix in lossless FLAC.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;

/// Name of the media directory in the data directory when none is configured.
pub const DEFAULT_MEDIA_DIR: &str = "media";

/// Authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The secret access tokens are signed with; `None` when not configured.
    pub jwt_secret: Option<JwtSecret>,
    /// The request rates allowed.
    pub rate_limits: RateLimits,
}

/// The server's configuration, resolved from defaults, file and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Development or production.
    pub environment: Environment,
    /// Where the server keeps its files (the SQLite database by default).
    pub data_dir: PathBuf,
    /// The directory of declarative station files (see [`crate::station_files`]), if any.
    pub stations_dir: Option<PathBuf>,
    /// The HTTP listener.
    pub http: HttpConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Logging.
    pub log: LogConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// The event bus.
    pub event_bus: EventBusConfig,
    /// The media library.
    pub media: MediaConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
}

impl Default for Config {
    /// The embedded defaults: development, `./data`, `127.0.0.1:8080`, SQLite in `./data`,
    /// media in `./data/media`.
    fn default() -> Self {
        let data_dir = PathBuf::from("data");
        let media_dir = data_dir.join(DEFAULT_MEDIA_DIR);
        Config {
            environment: Environment::Development,
            database: DatabaseConfig {
                url: DatabaseUrl::sqlite_file(data_dir.join(DEFAULT_DATABASE_FILE)),
                pool_size: 8,
                connect_timeout: Duration::from_secs(5),
            },
            data_dir,
            stations_dir: None,
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                trusted_proxies: Vec::new(),
            },
            log: LogConfig {
                format: LogFormat::Pretty,
                level: LogLevel("info".to_owned()),
            },
            auth: AuthConfig::default(),
            event_bus: EventBusConfig::default(),
            media: MediaConfig {
                dir: media_dir,
                max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            },
            audit: AuditConfig::default(),
            file: None,
        }
    }
}

/// Name of the SQLite file in the data directory when no database URL is configured.
pub const DEFAULT_DATABASE_FILE: &str = "grimnir.db";

/// Something in the configuration worth telling, that did not stop loading.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// Both names of a setting were set to different values; the `GRIMNIR_*` one was used.
    AliasIgnored {
        /// The variable used.
        used: &'static str,
        /// The alias that was ignored.
        ignored: &'static str,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::AliasIgnored { used, ignored } => {
                write!(
                    f,
                    "{used} and {ignored} are both set and differ; using {used}"
                )
            }
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("{}{}: {}{message}", path.display(), location(*line, *column), field_prefix(field))]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the parser knows it.
        column: Option<usize>,
        /// Dotted path of the offending field (`database.pool_size`); empty for the document
        /// itself.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An environment variable holds a value that cannot be used.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An environment variable of ours is not valid Unicode.
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable.
        var: String,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// The `GRIMNIR_*` and `RLM_*` environment variables, read once.
///
/// Only variables with those prefixes are kept. Tests build one from pairs instead of changing
/// the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvVars {
    vars: BTreeMap<String, String>,
}

/// Prefixes of the variables the server reads.
const PREFIXES: [&str; 2] = ["GRIMNIR_", "RLM_"];

impl EnvVars {
    /// The server's variables from the process environment. A variable of ours whose name or
    /// value is not valid UTF-8 is an error; other variables are ignored.
    pub fn from_process() -> Result<Self, ConfigError> {
        Self::from_os_pairs(std::env::vars_os())
    }

    /// Like [`EnvVars::from_process`], from any list of pairs.
    pub fn from_os_pairs(
        pairs: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, ConfigError> {
        let mut vars = BTreeMap::new();
        for (key, value) in pairs {
            let key_lossy = key.to_string_lossy();
            if !PREFIXES.iter().any(|p| key_lossy.starts_with(p)) {
                continue;
            }
            let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
                return Err(ConfigError::EnvNotUnicode {
                    var: key_lossy.into_owned(),
                });
            };
            vars.insert(key.to_owned(), value.to_owned());
        }
        Ok(EnvVars { vars })
    }

    /// From name–value pairs; names without a `GRIMNIR_` or `RLM_` prefix are dropped.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| PREFIXES.iter().any(|p| k.starts_with(p)))
            .collect();
        EnvVars { vars }
    }

    /// Looks a setting up under its `GRIMNIR_*` name, then its `RLM_*` alias. Empty values count
    /// as unset.
    fn get(
        &self,
        setting: &Setting,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Option<(&'static str, &str)> {
        let primary = self.vars.get(setting.var).filter(|v| !v.is_empty());
        let alias = self.vars.get(setting.alias).filter(|v| !v.is_empty());
        match (primary, alias) {
            (Some(p), Some(a)) => {
                if p != a {
                    warnings.push(ConfigWarning::AliasIgnored {
                        used: setting.var,
                        ignored: setting.alias,
                    });
                }
                Some((setting.var, p))
            }
            (Some(p), None) => Some((setting.var, p)),
            (None, Some(a)) => Some((setting.alias, a)),
            (None, None) => None,
        }
    }
}

/// One environment setting: its name and its alias.
struct Setting {
    var: &'static str,
    alias: &'static str,
}

/// A setting named `GRIMNIR_<name>`, with the alias `RLM_<name>`.
macro_rules! setting {
    ($name:literal) => {
        Setting {
            var: concat!("GRIMNIR_", $name),
            alias: concat!("RLM_", $name),
        }
    };
}

const CONFIG: Setting = setting!("CONFIG");
const ENV: Setting = setting!("ENV");
const DATA_DIR: Setting = setting!("DATA_DIR");
const STATIONS_DIR: Setting = setting!("STATIONS_DIR");
const HTTP_LISTEN: Setting = setting!("HTTP_LISTEN");
const HTTP_TRUSTED_PROXIES: Setting = setting!("HTTP_TRUSTED_PROXIES");
const DATABASE_URL: Setting = setting!("DATABASE_URL");
const DATABASE_POOL_SIZE: Setting = setting!("DATABASE_POOL_SIZE");
const DATABASE_CONNECT_TIMEOUT: Setting = setting!("DATABASE_CONNECT_TIMEOUT_SECS");
const LOG_FORMAT: Setting = setting!("LOG_FORMAT");
const LOG_LEVEL: Setting = setting!("LOG_LEVEL");
const JWT_SECRET: Setting = setting!("JWT_SECRET");
const AUTH_LOGIN_PER_MINUTE: Setting = setting!("AUTH_LOGIN_PER_MINUTE");
const AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE: Setting = setting!("AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE");
const AUTH_PUBLIC_PER_MINUTE: Setting = setting!("AUTH_PUBLIC_PER_MINUTE");
const AUTH_USER_PER_MINUTE: Setting = setting!("AUTH_USER_PER_MINUTE");
const EVENT_BUS: Setting = setting!("EVENT_BUS");
const EVENT_BUS_PREFIX: Setting = setting!("EVENT_BUS_PREFIX");
const EVENT_BUS_BUFFER: Setting = setting!("EVENT_BUS_BUFFER");
const MEDIA_DIR: Setting = setting!("MEDIA_DIR");
const MEDIA_MAX_UPLOAD_BYTES: Setting = setting!("MEDIA_MAX_UPLOAD_BYTES");
const AUDIT_RETENTION_DAYS: Setting = setting!("AUDIT_RETENTION_DAYS");

/// Reads a setting from the environment and parses it, naming the variable on failure.
fn env_value<T, E: fmt::Display>(
    env: &EnvVars,
    setting: &Setting,
    warnings: &mut Vec<ConfigWarning>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, ConfigError> {
    let Some((var, value)) = env.get(setting, warnings) else {
        return Ok(None);
    };
    parse(value.trim()).map(Some).map_err(|e| ConfigError::Env {
        var,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_u64<T: TryFrom<u64, Error = String>>(s: &str) -> Result<T, String> {
    let n: u64 = s.parse().map_err(|_| "not a whole number".to_owned())?;
    T::try_from(n)
}

impl Config {
    /// Loads the configuration: the embedded defaults, then the config file, then the
    /// environment.
    ///
    /// The file is `file` when given (the `--config` option), else the one `GRIMNIR_CONFIG` or
    /// `RLM_CONFIG` names, else none. Returns the configuration and anything worth a warning.
    pub fn load(
        file: Option<&Path>,
        env: &EnvVars,
    ) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let file = match file {
            Some(path) => Some(path.to_path_buf()),
            None => env
                .get(&CONFIG, &mut warnings)
                .map(|(_, p)| PathBuf::from(p)),
        };
        let parsed = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                parse_file(path, &text)?
            }
            None => FileConfig::default(),
        };

        let defaults = Config::default();
        let environment = env_value(env, &ENV, &mut warnings, str::parse)?
            .or(parsed.environment)
            .unwrap_or(defaults.environment);
        let data_dir = env_value(env, &DATA_DIR, &mut warnings, |s| {
            Ok::<_, String>(PathBuf::from(s))
        })?
        .or(parsed.data_dir)
        .unwrap_or(defaults.data_dir);
        let stations_dir = env_value(env, &STATIONS_DIR, &mut warnings, |s| {
            Ok::<_, String>(PathBuf::from(s))
        })?
        .or(parsed.stations_dir);
        let listen = env_value(env, &HTTP_LISTEN, &mut warnings, |s| {
            s.parse::<SocketAddr>()
                .map_err(|_| "not an address and port such as 127.0.0.1:8080".to_owned())
        })?
        .or(parsed.http.listen)
        .unwrap_or(defaults.http.listen);
        let trusted_proxies = env_value(env, &HTTP_TRUSTED_PROXIES, &mut warnings, |s| {
            s.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(parse_proxy)
                .collect::<Result<Vec<_>, _>>()
        })?
        .or_else(|| {
            parsed
                .http
                .trusted_proxies
                .map(|nets| nets.into_iter().map(|ProxyNet(net)| net).collect())
        })
        .unwrap_or_default();
        let url = env_value(env, &DATABASE_URL, &mut warnings, str::parse::<DatabaseUrl>)?
            .or(parsed.database.url)
            .unwrap_or_else(|| DatabaseUrl::sqlite_file(data_dir.join(DEFAULT_DATABASE_FILE)));
        let pool_size = env_value(env, &DATABASE_POOL_SIZE, &mut warnings, parse_u64)?
            .or(parsed.database.pool_size)
            .map_or(defaults.database.pool_size, |PoolSize(n)| n);
        let connect_timeout = env_value(env, &DATABASE_CONNECT_TIMEOUT, &mut warnings, parse_u64)?
            .or(parsed.database.connect_timeout_secs)
            .map_or(defaults.database.connect_timeout, |TimeoutSecs(s)| {
                Duration::from_secs(s)
            });
        let format = env_value(env, &LOG_FORMAT, &mut warnings, str::parse)?
            .or(parsed.log.format)
            .unwrap_or(match environment {
                Environment::Production => LogFormat::Json,
                Environment::Development => LogFormat::Pretty,
            });
        let level = env_value(env, &LOG_LEVEL, &mut warnings, str::parse)?
            .or(parsed.log.level)
            .unwrap_or(defaults.log.level);
        let bus_url = env_value(env, &EVENT_BUS, &mut warnings, str::parse::<EventBusUrl>)?
            .or(parsed.event_bus.url)
            .unwrap_or(defaults.event_bus.url);
        let bus_prefix = env_value(env, &EVENT_BUS_PREFIX, &mut warnings, str::parse)?
            .or(parsed.event_bus.prefix)
            .unwrap_or(defaults.event_bus.prefix);
        let bus_buffer = env_value(env, &EVENT_BUS_BUFFER, &mut warnings, parse_u64)?
            .or(parsed.event_bus.buffer)
            .map_or(defaults.event_bus.buffer, |BusBuffer(n)| n);
        let media_dir = env_value(env, &MEDIA_DIR, &mut warnings, |s| {
            Ok::<_, String>(PathBuf::from(s))
        })?
        .or(parsed.media.dir)
        .unwrap_or_else(|| data_dir.join(DEFAULT_MEDIA_DIR));
        let max_upload_bytes = env_value(env, &MEDIA_MAX_UPLOAD_BYTES, &mut warnings, parse_u64)?
            .or(parsed.media.max_upload_bytes)
            .map_or(DEFAULT_MAX_UPLOAD_BYTES, |UploadBytes(n)| n);
        let retention_days = env_value(env, &AUDIT_RETENTION_DAYS, &mut warnings, parse_u64)?
            .or(parsed.audit.retention_days)
            .map(|RetentionDays(n)| n);

        // Not through `env_value`: its errors quote the value, and this one is a secret.
        let jwt_secret = match env.get(&JWT_SECRET, &mut warnings) {
            Some((var, value)) => {
                Some(value.parse::<JwtSecret>().map_err(|e| ConfigError::Env {
                    var,
                    value: "***".to_owned(),
                    reason: e.to_string(),
                })?)
            }
            None => parsed.auth.jwt_secret,
        };

        let defaults = RateLimits::default();
        let mut per_minute = |setting: &Setting, file: Option<PerMinute>, default: Quota| {
            env_value(env, setting, &mut warnings, parse_u64).map(|v| {
                v.or(file)
                    .map_or(default, |PerMinute(n)| Quota::per_minute(n))
            })
        };
        let rate_limits = RateLimits {
            login_per_address: per_minute(
                &AUTH_LOGIN_PER_MINUTE,
                parsed.auth.login_per_minute,
                defaults.login_per_address,
            )?,
            login_per_account: per_minute(
                &AUTH_LOGIN_PER_ACCOUNT_PER_MINUTE,
                parsed.auth.login_per_account_per_minute,
                defaults.login_per_account,
            )?,
            public_per_address: per_minute(
                &AUTH_PUBLIC_PER_MINUTE,
                parsed.auth.public_per_minute,
                defaults.public_per_address,
            )?,
            per_user: per_minute(
                &AUTH_USER_PER_MINUTE,
                parsed.auth.user_per_minute,
                defaults.per_user,
            )?,
        };

        let config = Config {
            environment,
            data_dir,
            stations_dir,
            http: HttpConfig {
                listen,
                trusted_proxies,
            },
            database: DatabaseConfig {
                url,
                pool_size,
                connect_timeout,
            },
            log: LogConfig { format, level },
            auth: AuthConfig {
                jwt_secret,
                rate_limits,
            },
            event_bus: EventBusConfig {
                url: bus_url,
                prefix: bus_prefix,
                buffer: bus_buffer,
            },
            media: MediaConfig {
                dir: media_dir,
                max_upload_bytes,
            },
            audit: AuditConfig { retention_days },
            file,
        };
        Ok((config, warnings))
    }
}

/// Parses the YAML text of a config file, naming file, line, column and field on failure.
fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    // An empty file (or one of comments only) is a valid file that sets nothing.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(FileConfig::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner();
        // The parser's own mark is not always on the offending entry (for a value refused after
        // it was read, it can point at the entry before), so find the field's key in the text
        // and fall back to the mark for what cannot be found that way (syntax errors, an
        // unknown key).
        let (line, column) = match locate(text, &field) {
            Some((line, column)) => (Some(line), Some(column)),
            None => {
                let location = inner.location();
                (
                    location.as_ref().map(|l| l.line()),
                    location.as_ref().map(|l| l.column()),
                )
            }
        };
        ConfigError::File {
            path: path.to_path_buf(),
            line,
            column,
            message: bare_message(&inner.to_string(), &field),
            field,
        }
    })
}

/// 1-based line and column of the key of `field` (`http.listen`) in YAML `text`.
fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    if field.is_empty() {
        return None;
    }
    crate::yaml_paths::index(text).get(field).copied()
}

/// The YAML parser's message without the location and field path it adds, which
/// [`ConfigError::File`] carries in fields of their own (station files use it too).
pub(crate) fn bare_message(message: &str, field: &str) -> String {
    let mut message = message;
    if let Some(at) = message.rfind(" at line ")
        && message[at + 9..]
            .split(" column ")
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        message = &message[..at];
    }
    // serde_yaml_ng starts with the path of the field, or of its parent for an unknown key.
    if let Some((head, rest)) = message.split_once(": ")
        && (head == field
            || field.starts_with(&format!("{head}."))
            || field.starts_with(&format!("{head}[")))
    {
        return rest.to_owned();
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_error(text: &str) -> ConfigError {
        parse_file(Path::new("grimnir.yaml"), text).unwrap_err()
    }

    #[test]
    fn a_bad_value_names_line_column_and_field() {
        let err = file_error("environment: production\nhttp:\n  listen: not-an-address\n");
        let ConfigError::File {
            line,
            column,
            field,
            message,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(*line, Some(3));
        // The parser points at the key of the offending entry.
        assert_eq!(*column, Some(3));
        assert_eq!(field, "http.listen");
        assert_eq!(message, "invalid socket address syntax");
        assert_eq!(
            err.to_string(),
            "grimnir.yaml:3:3: http.listen: invalid socket address syntax"
        );
    }

    #[test]
    fn an_out_of_range_number_names_its_field() {
        let err = file_error("database:\n  pool_size: 0\n");
        let ConfigError::File {
            field,
            message,
            line,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(field, "database.pool_size");
        assert_eq!(message, "0 is not between 1 and 128");
        assert_eq!(*line, Some(2));
    }

    #[test]
    fn an_unknown_key_is_an_error() {
        let err = file_error("http:\n  lisen: 127.0.0.1:1\n");
        let ConfigError::File {
            field,
            message,
            line,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(field, "http.lisen");
        assert!(message.starts_with("unknown field `lisen`"), "{message}");
        assert_eq!(*line, Some(2));
    }

    #[test]
    fn a_bad_enum_value_lists_the_choices() {
        let err = file_error("log:\n  format: xml\n");
        let ConfigError::File { field, message, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(field, "log.format");
        assert!(
            message.contains("pretty") && message.contains("json"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        let parsed = parse_file(Path::new("x.yaml"), "# nothing yet\n\n").unwrap();
        assert!(parsed.environment.is_none());
    }

    #[test]
    fn defaults_without_file_or_environment() {
        let (config, warnings) = Config::load(None, &EnvVars::default()).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(config, Config::default());
        assert_eq!(
            config.database.url.sqlite_path(),
            Some(Path::new("data/grimnir.db"))
        );
        assert!(config.http.listen.ip().is_loopback());
        assert_eq!(config.log.format, LogFormat::Pretty);
    }

    #[test]
    fn production_defaults_to_json_logs() {
        let env = EnvVars::from_pairs([("GRIMNIR_ENV", "production")]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        let env =
            EnvVars::from_pairs([("GRIMNIR_ENV", "production"), ("RLM_LOG_FORMAT", "pretty")]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.log.format, LogFormat::Pretty);
    }

    #[test]
    fn the_database_follows_the_data_dir() {
        let env = EnvVars::from_pairs([("GRIMNIR_DATA_DIR", "/srv/radio")]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(
            config.database.url.sqlite_path(),
            Some(Path::new("/srv/radio/grimnir.db"))
        );
    }

    #[test]
    fn grimnir_wins_over_rlm_with_a_warning() {
        let env = EnvVars::from_pairs([
            ("GRIMNIR_HTTP_LISTEN", "127.0.0.1:1001"),
            ("RLM_HTTP_LISTEN", "127.0.0.1:1002"),
            ("GRIMNIR_LOG_LEVEL", "debug"),
            ("RLM_LOG_LEVEL", "debug"),
        ]);
        let (config, warnings) = Config::load(None, &env).unwrap();
        assert_eq!(config.http.listen.port(), 1001);
        assert_eq!(
            warnings,
            vec![ConfigWarning::AliasIgnored {
                used: "GRIMNIR_HTTP_LISTEN",
                ignored: "RLM_HTTP_LISTEN"
            }]
        );
    }

    #[test]
    fn bad_variables_are_named() {
        let cases = [
            ("RLM_DATABASE_POOL_SIZE", "many", "not a whole number"),
            (
                "GRIMNIR_DATABASE_POOL_SIZE",
                "500",
                "500 is not between 1 and 128",
            ),
            (
                "GRIMNIR_DATABASE_CONNECT_TIMEOUT_SECS",
                "0",
                "0 is not between 1 and 300 seconds",
            ),
            (
                "GRIMNIR_ENV",
                "staging",
                "expected `development` or `production`",
            ),
            (
                "GRIMNIR_DATABASE_URL",
                "oracle://x",
                "unknown database URL scheme",
            ),
            ("GRIMNIR_HTTP_LISTEN", "8080", "not an address and port"),
            ("GRIMNIR_LOG_LEVEL", "info,=,[", "not a log filter"),
            (
                "GRIMNIR_EVENT_BUS",
                "kafka://x:1",
                "unknown event bus URL scheme",
            ),
            (
                "RLM_EVENT_BUS_PREFIX",
                "a.*",
                "expected dot-separated tokens",
            ),
            (
                "GRIMNIR_EVENT_BUS_BUFFER",
                "8",
                "8 is not between 16 and 65536",
            ),
        ];
        for (var, value, reason) in cases {
            let env = EnvVars::from_pairs([(var, value)]);
            match Config::load(None, &env) {
                Err(ConfigError::Env {
                    var: v,
                    value: val,
                    reason: r,
                }) => {
                    assert_eq!((v, val.as_str()), (var, value));
                    assert!(r.starts_with(reason), "{var}: {r}");
                }
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_jwt_secret_is_read_checked_and_never_shown() {
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
        let env = EnvVars::from_pairs([("RLM_JWT_SECRET", secret)]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.auth.jwt_secret, Some(secret.parse().unwrap()));
        assert!(!format!("{config:?}").contains(secret));
        let env = EnvVars::from_pairs([("GRIMNIR_JWT_SECRET", "short-secret")]);
        let err = Config::load(None, &env).unwrap_err();
        assert!(!err.to_string().contains("short-secret"), "{err}");
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let err = file_error("auth:\n  jwt_secret: tiny\n");
        assert!(!err.to_string().contains("tiny"), "{err}");
        assert!(
            Config::load(None, &EnvVars::default())
                .unwrap()
                .0
                .auth
                .jwt_secret
                .is_none()
        );
    }

    #[test]
    fn trusted_proxies_come_from_the_file_or_a_list_in_a_variable() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let env = EnvVars::from_pairs([(
            "GRIMNIR_HTTP_TRUSTED_PROXIES",
            "10.0.0.1, ::1, 172.18.3.4/16",
        )]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(
            config.http.trusted_proxies,
            [net("10.0.0.1/32"), net("::1/128"), net("172.18.0.0/16")]
        );
        for bad in ["10.0.0.0/33", "proxy.local"] {
            let env = EnvVars::from_pairs([("RLM_HTTP_TRUSTED_PROXIES", bad)]);
            let err = Config::load(None, &env).unwrap_err();
            assert!(
                err.to_string()
                    .contains("is not an IP address or network such as 10.0.0.1 or 10.0.0.0/8"),
                "{bad}: {err}"
            );
        }
        let parsed = parse_file(
            Path::new("x.yaml"),
            "http:\n  trusted_proxies: [10.0.0.1, fd00::/8]\n",
        )
        .unwrap();
        assert_eq!(
            parsed.http.trusted_proxies,
            Some(vec![
                ProxyNet(net("10.0.0.1/32")),
                ProxyNet(net("fd00::/8"))
            ])
        );
        let err = file_error("http:\n  trusted_proxies: [10.0.0.1, nope]\n");
        let ConfigError::File { field, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(field, "http.trusted_proxies[1]");
    }

    #[test]
    fn rate_limits_come_from_file_and_environment() {
        let (config, _) = Config::load(None, &EnvVars::default()).unwrap();
        assert_eq!(config.auth.rate_limits, RateLimits::default());
        let env = EnvVars::from_pairs([("RLM_AUTH_USER_PER_MINUTE", "1200")]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.auth.rate_limits.per_user, Quota::per_minute(1200));
        assert_eq!(
            config.auth.rate_limits.login_per_address,
            RateLimits::default().login_per_address
        );
        let err = file_error("auth:\n  login_per_minute: 0\n");
        let ConfigError::File { field, message, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(field, "auth.login_per_minute");
        assert_eq!(message, "0 is not between 1 and 1000000 requests a minute");
        let env = EnvVars::from_pairs([("GRIMNIR_AUTH_PUBLIC_PER_MINUTE", "lots")]);
        assert!(Config::load(None, &env).is_err());
    }

    #[test]
    fn the_event_bus_comes_from_file_or_environment() {
        let (config, _) = Config::load(None, &EnvVars::default()).unwrap();
        assert_eq!(config.event_bus, EventBusConfig::default());
        assert_eq!(config.event_bus.url, EventBusUrl::Memory);
        let parsed = parse_file(
            Path::new("x.yaml"),
            "event_bus:\n  url: nats://127.0.0.1:4222\n  prefix: radio.events\n  buffer: 64\n",
        )
        .unwrap();
        assert_eq!(
            parsed.event_bus.url,
            Some(EventBusUrl::Nats("nats://127.0.0.1:4222".to_owned()))
        );
        assert_eq!(parsed.event_bus.buffer, Some(BusBuffer(64)));
        let env = EnvVars::from_pairs([
            ("RLM_EVENT_BUS", "redis://127.0.0.1:6379"),
            ("GRIMNIR_EVENT_BUS_BUFFER", "4096"),
        ]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(
            config.event_bus.url,
            EventBusUrl::Redis("redis://127.0.0.1:6379".to_owned())
        );
        assert_eq!(config.event_bus.buffer, 4096);
        let err = file_error("event_bus:\n  url: udp://x\n");
        let ConfigError::File { field, line, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!((field.as_str(), *line), ("event_bus.url", Some(2)));
    }

    #[test]
    fn media_follows_the_data_dir_unless_set() {
        let (config, _) = Config::load(None, &EnvVars::default()).unwrap();
        assert_eq!(config.media.dir, Path::new("data/media"));
        assert_eq!(config.media.max_upload_bytes, 1 << 30);
        let env = EnvVars::from_pairs([("GRIMNIR_DATA_DIR", "/srv/radio")]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.media.dir, Path::new("/srv/radio/media"));
        let env = EnvVars::from_pairs([
            ("GRIMNIR_DATA_DIR", "/srv/radio"),
            ("RLM_MEDIA_DIR", "/mnt/library"),
            ("GRIMNIR_MEDIA_MAX_UPLOAD_BYTES", "5000000"),
        ]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.media.dir, Path::new("/mnt/library"));
        assert_eq!(config.media.max_upload_bytes, 5_000_000);
        let parsed = parse_file(
            Path::new("x.yaml"),
            "media:\n  dir: /var/lib/grimnir/media\n  max_upload_bytes: 2048\n",
        )
        .unwrap();
        assert_eq!(
            parsed.media.dir.as_deref(),
            Some(Path::new("/var/lib/grimnir/media"))
        );
        assert_eq!(parsed.media.max_upload_bytes, Some(UploadBytes(2048)));
    }

    #[test]
    fn bad_media_settings_are_named() {
        let err = file_error("media:\n  max_upload_bytes: 10\n");
        let ConfigError::File {
            field,
            message,
            line,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(field, "media.max_upload_bytes");
        assert_eq!(message, "10 is not between 1024 and 1099511627776 bytes");
        assert_eq!(*line, Some(2));
        let err = file_error("media:\n  folder: /x\n");
        let ConfigError::File { field, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(field, "media.folder");
        for (value, reason) in [
            ("lots", "not a whole number"),
            ("1099511627777", "1099511627777 is not between 1024"),
        ] {
            let env = EnvVars::from_pairs([("GRIMNIR_MEDIA_MAX_UPLOAD_BYTES", value)]);
            match Config::load(None, &env) {
                Err(ConfigError::Env { var, reason: r, .. }) => {
                    assert_eq!(var, "GRIMNIR_MEDIA_MAX_UPLOAD_BYTES");
                    assert!(r.starts_with(reason), "{r}");
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn audit_entries_are_kept_for_ever_unless_a_retention_is_set() {
        let (config, _) = Config::load(None, &EnvVars::default()).unwrap();
        assert_eq!(config.audit.retention(), None);
        let env = EnvVars::from_pairs([("RLM_AUDIT_RETENTION_DAYS", "90")]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.audit.retention(), Some(chrono::Duration::days(90)));
        let parsed = parse_file(Path::new("x.yaml"), "audit:\n  retention_days: 365\n").unwrap();
        assert_eq!(parsed.audit.retention_days, Some(RetentionDays(365)));
        let err = file_error("audit:\n  retention_days: 0\n");
        let ConfigError::File {
            field,
            message,
            line,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(
            (field.as_str(), message.as_str(), *line),
            (
                "audit.retention_days",
                "0 is not between 1 and 36500 days",
                Some(2)
            )
        );
        let env = EnvVars::from_pairs([("GRIMNIR_AUDIT_RETENTION_DAYS", "forever")]);
        match Config::load(None, &env) {
            Err(ConfigError::Env { var, reason, .. }) => {
                assert_eq!(
                    (var, reason.as_str()),
                    ("GRIMNIR_AUDIT_RETENTION_DAYS", "not a whole number")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let env = EnvVars::from_pairs([
            ("GRIMNIR_HTTP_LISTEN", ""),
            ("RLM_HTTP_LISTEN", "127.0.0.1:7"),
        ]);
        let (config, _) = Config::load(None, &env).unwrap();
        assert_eq!(config.http.listen.port(), 7);
    }

    #[test]
    fn foreign_variables_are_ignored() {
        let env = EnvVars::from_os_pairs([
            (OsString::from("PATH"), OsString::from("/bin")),
            (OsString::from("GRIMNIR_ENV"), OsString::from("prod")),
        ])
        .unwrap();
        assert_eq!(env.vars.len(), 1);
    }

    #[test]
    fn bare_message_strips_what_has_fields_of_its_own() {
        assert_eq!(
            bare_message("http.listen: bad thing at line 3 column 11", "http.listen"),
            "bad thing"
        );
        assert_eq!(
            bare_message("http: unknown field `x`", "http.x"),
            "unknown field `x`"
        );
        assert_eq!(
            bare_message("error: something", "log.level"),
            "error: something"
        );
    }

    #[test]
    fn fields_are_found_by_indentation() {
        let text = "\
# comment
http:
  listen: x
database:
  # url: commented out
  pool_size: 3
  url: y
log:
  level: info
";
        assert_eq!(locate(text, "http"), Some((2, 1)));
        assert_eq!(locate(text, "http.listen"), Some((3, 3)));
        assert_eq!(locate(text, "database.url"), Some((7, 3)));
        assert_eq!(locate(text, "log.level"), Some((9, 3)));
        // Not under `http`: the search stops at the end of its block.
        assert_eq!(locate(text, "http.url"), None);
        assert_eq!(locate(text, "nope"), None);
        assert_eq!(locate(text, ""), None);
        // Flow style is found too.
        assert_eq!(locate("http: {listen: x}\n", "http.listen"), Some((1, 8)));
    }
}
