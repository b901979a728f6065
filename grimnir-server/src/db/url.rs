//! Database URLs: which backend, and what to hand its client library.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The database products the server stores its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, a file on the server's disk: the embedded default.
    Sqlite,
    /// PostgreSQL, the primary production database.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Backend {
    /// Lower-case name, as used in logs and test output.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a database URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL starts with no scheme the server knows.
    #[error(
        "unknown database URL scheme in `{url}`: use sqlite://PATH, sqlite::memory:, \
         postgres://…, postgresql://…, mysql://… or mariadb://…"
    )]
    UnknownScheme {
        /// The URL, with any password hidden.
        url: String,
    },
    /// The scheme is known but nothing useful follows it.
    #[error("database URL `{url}` names no {what}")]
    Incomplete {
        /// The URL, with any password hidden.
        url: String,
        /// What is missing (`file path`, `host`).
        what: &'static str,
    },
}

/// Where an SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SqliteTarget {
    File(PathBuf),
    Memory,
}

/// A parsed database URL: the backend it selects and the connection string for that backend.
///
/// | URL | backend |
/// | --- | --- |
/// | `sqlite://data/grimnir.db`, `sqlite:///var/lib/grimnir/grimnir.db` | SQLite file (relative or absolute path) |
/// | `sqlite::memory:` | SQLite in memory (tests; one connection) |
/// | `postgres://user@host:5432/db`, `postgresql://…` | PostgreSQL |
/// | `mysql://user:pass@host:3306/db`, `mariadb://…` | MySQL or MariaDB |
///
/// `Display` hides the password, so a URL can be logged.
///
/// ```
/// use grimnir_server::db::{Backend, DatabaseUrl};
///
/// let url: DatabaseUrl = "postgres://radio:secret@127.0.0.1/grimnir".parse()?;
/// assert_eq!(url.backend(), Backend::Postgres);
/// assert_eq!(url.to_string(), "postgres://radio:***@127.0.0.1/grimnir");
/// # Ok::<(), grimnir_server::db::UrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    raw: String,
    sqlite: Option<SqliteTarget>,
}

impl DatabaseUrl {
    /// The URL of an SQLite database file at `path`.
    pub fn sqlite_file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        DatabaseUrl {
            backend: Backend::Sqlite,
            raw: format!("sqlite://{}", path.display()),
            sqlite: Some(SqliteTarget::File(path)),
        }
    }

    /// Which backend the URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database file, when the URL names one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.sqlite {
            Some(SqliteTarget::File(path)) => Some(path),
            _ => None,
        }
    }

    /// Whether this is an in-memory SQLite database, which exists once per connection.
    pub fn is_sqlite_memory(&self) -> bool {
        self.sqlite == Some(SqliteTarget::Memory)
    }

    /// The string to hand the backend's client library. It contains the password, if any:
    /// never log it.
    ///
    /// PostgreSQL URLs get `connect_timeout` (whole seconds, at least 1) unless they set one,
    /// so that connecting to an unreachable server is bounded; `mariadb://` becomes `mysql://`.
    pub fn connection_string(&self, connect_timeout: Duration) -> String {
        match self.backend {
            Backend::Sqlite => match &self.sqlite {
                Some(SqliteTarget::File(path)) => path.display().to_string(),
                _ => ":memory:".to_owned(),
            },
            Backend::Postgres => {
                if self.raw.contains("connect_timeout=") {
                    self.raw.clone()
                } else {
                    let separator = if self.raw.contains('?') { '&' } else { '?' };
                    let secs = connect_timeout.as_secs().max(1);
                    format!("{}{separator}connect_timeout={secs}", self.raw)
                }
            }
            Backend::Mysql => match self.raw.strip_prefix("mariadb://") {
                Some(rest) => format!("mysql://{rest}"),
                None => self.raw.clone(),
            },
        }
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }
}

/// Replaces the password of `scheme://user:password@host…` with `***`.
fn redact(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return raw.to_owned();
    };
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // The last `@` ends the user info: a password may itself contain `@`.
    let Some(at) = authority.rfind('@') else {
        return raw.to_owned();
    };
    let user_info = &authority[..at];
    match user_info.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &raw[..scheme_end + 3],
            &user_info[..colon],
            &rest[at..]
        ),
        None => raw.to_owned(),
    }
}

impl FromStr for DatabaseUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = s.trim();
        if raw == "sqlite::memory:" || raw == "sqlite://:memory:" {
            return Ok(DatabaseUrl {
                backend: Backend::Sqlite,
                raw: raw.to_owned(),
                sqlite: Some(SqliteTarget::Memory),
            });
        }
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(UrlError::Incomplete {
                    url: raw.to_owned(),
                    what: "file path",
                });
            }
            return Ok(DatabaseUrl {
                backend: Backend::Sqlite,
                raw: raw.to_owned(),
                sqlite: Some(SqliteTarget::File(PathBuf::from(path))),
            });
        }
        let backend = if let Some(rest) = raw
            .strip_prefix("postgres://")
            .or_else(|| raw.strip_prefix("postgresql://"))
        {
            (Backend::Postgres, rest)
        } else if let Some(rest) = raw
            .strip_prefix("mysql://")
            .or_else(|| raw.strip_prefix("mariadb://"))
        {
            (Backend::Mysql, rest)
        } else {
            return Err(UrlError::UnknownScheme { url: redact(raw) });
        };
        let (backend, rest) = backend;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() {
            return Err(UrlError::Incomplete {
                url: redact(raw),
                what: "host",
            });
        }
        Ok(DatabaseUrl {
            backend,
            raw: raw.to_owned(),
            sqlite: None,
        })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("backend", &self.backend)
            .field("url", &self.redacted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> DatabaseUrl {
        s.parse().unwrap()
    }

    #[test]
    fn schemes_select_backends() {
        assert_eq!(parse("sqlite://data/g.db").backend(), Backend::Sqlite);
        assert_eq!(
            parse("sqlite://data/g.db").sqlite_path(),
            Some(Path::new("data/g.db"))
        );
        assert_eq!(
            parse("sqlite:///var/lib/g.db").sqlite_path(),
            Some(Path::new("/var/lib/g.db"))
        );
        assert!(parse("sqlite::memory:").is_sqlite_memory());
        assert_eq!(parse("postgres://h/db").backend(), Backend::Postgres);
        assert_eq!(parse("postgresql://u@h/db").backend(), Backend::Postgres);
        assert_eq!(parse("mysql://root@h/db").backend(), Backend::Mysql);
        assert_eq!(parse("mariadb://root@h/db").backend(), Backend::Mysql);
    }

    #[test]
    fn refuses_unknown_and_incomplete_urls() {
        assert_eq!(
            "redis://h".parse::<DatabaseUrl>(),
            Err(UrlError::UnknownScheme {
                url: "redis://h".into()
            })
        );
        assert_eq!(
            "data/grimnir.db".parse::<DatabaseUrl>(),
            Err(UrlError::UnknownScheme {
                url: "data/grimnir.db".into()
            })
        );
        assert!(matches!(
            "sqlite://".parse::<DatabaseUrl>(),
            Err(UrlError::Incomplete {
                what: "file path",
                ..
            })
        ));
        assert!(matches!(
            "postgres://user:pw@/db".parse::<DatabaseUrl>(),
            Err(UrlError::Incomplete { what: "host", .. })
        ));
        // The error does not leak the password.
        let err = "pg://u:hunter2@h/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn display_hides_the_password() {
        assert_eq!(
            parse("mysql://root:p@ss@127.0.0.1:3306/x?a=b").to_string(),
            "mysql://root:***@127.0.0.1:3306/x?a=b"
        );
        assert_eq!(parse("postgres://u@h/db").to_string(), "postgres://u@h/db");
        assert!(!format!("{:?}", parse("postgres://u:pw@h/db")).contains("pw@"));
    }

    #[test]
    fn connection_strings() {
        let t = Duration::from_secs(7);
        assert_eq!(
            parse("postgres://u@h/db").connection_string(t),
            "postgres://u@h/db?connect_timeout=7"
        );
        assert_eq!(
            parse("postgres://u@h/db?sslmode=disable").connection_string(t),
            "postgres://u@h/db?sslmode=disable&connect_timeout=7"
        );
        assert_eq!(
            parse("postgres://u@h/db?connect_timeout=2").connection_string(t),
            "postgres://u@h/db?connect_timeout=2"
        );
        assert_eq!(
            parse("mariadb://root@h/db").connection_string(t),
            "mysql://root@h/db"
        );
        assert_eq!(parse("sqlite://a/b.db").connection_string(t), "a/b.db");
        assert_eq!(parse("sqlite::memory:").connection_string(t), ":memory:");
    }
}
