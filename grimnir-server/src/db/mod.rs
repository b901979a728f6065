//! Storage: SQLite, PostgreSQL or MySQL/MariaDB through diesel, chosen by the database URL.
//!
//! - [`DatabaseUrl`] parses the URL and picks the [`Backend`].
//! - [`DbConnection`] is one diesel connection type over the three backends; queries are written
//!   once against [`schema`].
//! - [`Database`] is a pool of those connections. diesel is blocking, so [`Database::run`]
//!   takes a connection and runs the closure on tokio's blocking thread pool, never on the async
//!   executor.
//! - [`migrations`] embeds the schema migrations of each backend; [`Database::migrate`] applies
//!   them.
//! - Repositories, each a set of blocking functions on a [`DbConnection`]: [`stations`],
//!   [`users`], [`members`] (a user's role at a station), [`refresh_tokens`],
//!   [`spent_tickets`] (event stream tickets already presented), [`api_keys`] and
//!   [`dsp_graphs`].
//! - The media library: [`media`] (items, tags and the analysis queue).
//! - Outputs and external streams: [`encoder_presets`], [`mounts`] and [`webstreams`].
//!   The audit log is written through [`crate::audit`].
//! - The programme, as the planner models it: [`smart_blocks`], [`clocks`], [`shows`],
//!   [`programme`] (the grid and other settings, and [`programme::load`], a station read as the
//!   planner's input) and [`schedule`] (the planned timeline, entry by entry).
//! - The executor pool's tables: [`executor_states`], [`priority_sources`] and
//!   [`play_history`].
//!
//! ```no_run
//! use grimnir_server::db::{Database, DatabaseUrl, PoolOptions, stations};
//!
//! # async fn example() -> Result<(), grimnir_server::db::StorageError> {
//! let url: DatabaseUrl = "sqlite://data/grimnir.db".parse()?;
//! let db = Database::open(url, PoolOptions::default()).await?;
//! db.migrate().await?;
//! let station = db
//!     .run(|conn| stations::create(conn, &stations::NewStation::new("WGMR FM", "America/New_York")))
//!     .await?;
//! println!("created {}", station.id);
//! # Ok(())
//! # }
//! ```

pub mod api_keys;
pub mod clocks;
mod connection;
pub mod dsp_graphs;
pub mod encoder_presets;
pub mod executor_states;
pub mod media;
pub mod members;
pub mod migration_jobs;
pub mod migrations;
pub mod mounts;
pub mod play_history;
pub mod priority_sources;
pub mod programme;
pub mod refresh_tokens;
pub mod schedule;
pub mod schema;
pub mod shows;
pub mod smart_blocks;
pub mod spent_tickets;
pub mod stations;
mod url;
pub mod users;
pub mod webstreams;

use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::r2d2::Pool;
use diesel::{QueryDsl, RunQueryDsl};

pub use connection::{ConnectionManager, DbConnection};
pub use url::{Backend, DatabaseUrl, UrlError};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database URL could not be used.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The directory for an SQLite file could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// No connection could be had from the pool in time: the database is unreachable, refuses
    /// the credentials, or every connection is busy.
    #[error("no connection to the {backend} database {url}: {message}")]
    Connect {
        /// Which database product.
        backend: Backend,
        /// The URL, password hidden.
        url: String,
        /// The pool's or the client library's message.
        message: String,
    },
    /// Applying or listing the schema migrations failed.
    #[error("{backend} migrations failed: {message}")]
    Migration {
        /// Which database product.
        backend: Backend,
        /// The migration harness's message, naming the migration.
        message: String,
    },
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A row that was asked for by id does not exist.
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// What kind of row (`station`).
        entity: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A row with the same unique value exists already.
    #[error("{entity} with {field} {value:?} exists already")]
    Conflict {
        /// What kind of row (`user`).
        entity: &'static str,
        /// The unique field (`email`).
        field: &'static str,
        /// The value that is taken.
        value: String,
    },
    /// A value given to a repository cannot be stored.
    #[error("{field} = {value:?}: {reason}")]
    Invalid {
        /// The field (`name`, `timezone`).
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored value cannot be read back as its type: the row was written by something else.
    #[error("{table}.{column} holds {value:?}, which is not {expected}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The stored value.
        value: String,
        /// What was expected (`a UUID`).
        expected: &'static str,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task did not finish: {0}")]
    Task(String),
    /// The database did not answer within the time allowed.
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
}

/// One page of a list: at most `limit` rows, after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows at most.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

impl Page {
    /// Every row (for tools and tests; the API always pages).
    pub const ALL: Page = Page {
        limit: i64::MAX,
        offset: 0,
    };
}

/// Now, cut to the microseconds that PostgreSQL and MySQL keep, so that what is stored is what
/// is returned on every backend.
pub(crate) fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

/// Whether a query failed on a unique constraint.
pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Whether a transaction failed only because a concurrent one won (a deadlock victim on MySQL,
/// a serialization failure on PostgreSQL, an SQLite transaction that read first and then could
/// not take the write lock another writer held): running it again is safe and will likely
/// succeed.
pub fn is_retryable(e: &StorageError) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        StorageError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
            true
        }
        // SQLITE_BUSY and SQLITE_LOCKED reach diesel as errors of unknown kind.
        StorageError::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database table is locked")
        }
        _ => false,
    }
}

/// Defines a row id: a random UUID stored as its 36-character text form.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                $name(uuid::Uuid::new_v4())
            }

            /// The UUID.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                $name(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map($name)
            }
        }
    };
}
pub(crate) use uuid_id;

/// Parses a stored id, naming the column when the text is not one.
pub(crate) fn stored_id<T: std::str::FromStr>(
    table: &'static str,
    column: &'static str,
    value: &str,
) -> Result<T, StorageError> {
    value.parse().map_err(|_| StorageError::Corrupt {
        table,
        column,
        value: value.to_owned(),
        expected: "a UUID",
    })
}

/// Sizes and timeouts of the connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Connections kept open at most. In-memory SQLite always uses one.
    pub max_connections: u32,
    /// How long to wait for a connection before giving up; also bounds a PostgreSQL connection
    /// attempt and is SQLite's busy timeout.
    pub connect_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether the database can serve requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// A connection answered and every embedded migration has been applied.
    Ready,
    /// Not ready, and why.
    NotReady(String),
}

/// A pool of [`DbConnection`]s to one database.
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager>,
    url: DatabaseUrl,
    timeout: Duration,
    /// Counts writes noted with [`Database::note_write`], shared by the clones: what a cache
    /// of stored state compares to know it may be stale.
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .field("state", &self.pool.state())
            .finish()
    }
}

impl Database {
    /// Notes that something was written through this handle (or a clone of it), so caches of
    /// stored state ([`Database::write_generation`]) start again from the database.
    pub fn note_write(&self) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many writes have been noted so far: a cache entry made at an earlier generation
    /// may be stale.
    pub fn write_generation(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Opens a pool to `url` and checks that one connection can be made.
    ///
    /// For an SQLite file, the file's directory is created first (the file itself is created by
    /// SQLite). Fails with [`StorageError::Connect`] when no connection can be made within
    /// `options.connect_timeout`.
    pub async fn open(url: DatabaseUrl, options: PoolOptions) -> Result<Self, StorageError> {
        if let Some(dir) = url.sqlite_path().and_then(|p| p.parent())
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let max = if url.is_sqlite_memory() {
            1
        } else {
            options.max_connections.max(1)
        };
        let manager = ConnectionManager::new(url.clone(), options.connect_timeout);
        let builder = Pool::builder()
            .max_size(max)
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            .test_on_check_out(true);
        let pool = if url.is_sqlite_memory() {
            // An in-memory database lives as long as its connection: keep the one for good.
            builder
                .min_idle(Some(1))
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            builder
        }
        .build_unchecked(manager);
        let db = Database {
            pool,
            url,
            timeout: options.connect_timeout,
            writes: Default::default(),
        };
        db.run(|conn| {
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .execute(conn)
                .map(drop)
                .map_err(StorageError::from)
        })
        .await?;
        Ok(db)
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The URL the pool connects to (`Display` hides the password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Takes a connection from the pool and runs `f` with it on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.connection()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
    }

    /// Takes a connection from the pool, waiting at most the pool's timeout. Blocking: call it
    /// from a blocking context (see [`Database::run`]).
    pub fn connection(
        &self,
    ) -> Result<diesel::r2d2::PooledConnection<ConnectionManager>, StorageError> {
        self.pool.get().map_err(|e| StorageError::Connect {
            backend: self.url.backend(),
            url: self.url.redacted(),
            message: e.to_string(),
        })
    }

    /// Applies the pending schema migrations; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StorageError> {
        self.run(migrations::run_pending).await
    }

    /// The versions of embedded migrations not applied yet.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StorageError> {
        self.run(migrations::pending).await
    }

    /// Whether the database answers and its schema is current, decided within the pool timeout.
    pub async fn readiness(&self) -> Readiness {
        let check = self.run(|conn| {
            let pending = migrations::pending(conn)?;
            if pending.is_empty() {
                // The migrations table answered; query a real table too, so that a schema
                // dropped behind the server's back is noticed.
                let _stations: i64 = schema::stations::table.count().get_result(conn)?;
            }
            Ok(pending)
        });
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), check).await {
            Ok(Ok(pending)) if pending.is_empty() => Readiness::Ready,
            Ok(Ok(pending)) => Readiness::NotReady(format!(
                "{} migration(s) not applied: {}",
                pending.len(),
                pending.join(", ")
            )),
            Ok(Err(e)) => Readiness::NotReady(e.to_string()),
            Err(_) => Readiness::NotReady(StorageError::Timeout(self.timeout).to_string()),
        }
    }
}
