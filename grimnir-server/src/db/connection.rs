//! One connection type for three databases, and the pool manager that opens it.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ManageConnection, R2D2Connection};
use diesel::{Connection, ConnectionError, MysqlConnection, PgConnection, SqliteConnection};

use super::url::{Backend, DatabaseUrl};

/// A connection to SQLite, PostgreSQL or MySQL/MariaDB.
///
/// diesel's `MultiConnection` derive makes the enum a diesel connection in its own right: queries
/// written once against [`schema`](super::schema) run on whichever database the URL chose.
/// Backend-specific work (the migrations) matches on the variant.
///
/// The derive's own `establish` tries each backend in turn, and SQLite accepts any string as a
/// file name, so a PostgreSQL URL whose server is down would quietly create a file. The server
/// therefore never calls it: [`ConnectionManager`] picks the variant from the URL's scheme.
#[derive(diesel::MultiConnection)]
#[allow(missing_docs, unreachable_pub)] // the derive generates undocumented public items
pub enum DbConnection {
    /// A PostgreSQL connection.
    Postgres(PgConnection),
    /// A MySQL or MariaDB connection.
    Mysql(MysqlConnection),
    /// An SQLite connection; last, as the derive's documentation asks.
    Sqlite(SqliteConnection),
}

impl DbConnection {
    /// Which database this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Postgres(_) => Backend::Postgres,
            DbConnection::Mysql(_) => Backend::Mysql,
            DbConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Settings applied to every SQLite connection: foreign keys on (SQLite leaves them off), wait up
/// to the busy timeout for a lock instead of failing at once, and write-ahead logging so readers
/// do not block the writer. `journal_mode` is ignored for in-memory databases.
impl DbConnection {
    /// Runs `f` in a transaction meant to write: committed when it returns `Ok`, rolled back
    /// when it returns an error.
    ///
    /// On SQLite the transaction begins with `BEGIN IMMEDIATE`, taking the write lock at once
    /// (waiting out the busy timeout for a concurrent writer) rather than at its first write. A
    /// deferred transaction that reads first and then writes cannot wait: SQLite refuses the
    /// upgrade with "database is locked" as soon as another writer holds the lock. On
    /// PostgreSQL and MySQL this is [`Connection::transaction`].
    pub fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};

        let DbConnection::Sqlite(inner) = self else {
            return self.transaction(f);
        };
        // Inside a transaction already, a savepoint does; SQLite has the write lock or will
        // wait for it the ordinary way.
        if AnsiTransactionManager::transaction_manager_status_mut(inner)
            .transaction_depth()?
            .is_some()
        {
            return self.transaction(f);
        }
        AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
        // The multi-connection's transaction manager hands commit and rollback to the SQLite
        // connection's own, which now counts this transaction.
        type Manager = <DbConnection as Connection>::TransactionManager;
        match f(self) {
            Ok(value) => {
                Manager::commit_transaction(self)?;
                Ok(value)
            }
            Err(error) => match Manager::rollback_transaction(self) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                Err(rollback) => Err(rollback.into()),
            },
        }
    }
}

fn sqlite_session(busy_timeout: Duration) -> String {
    format!(
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {}; \
         PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;",
        busy_timeout.as_millis()
    )
}

/// Opens [`DbConnection`]s for an r2d2 pool, choosing the backend by the URL's scheme.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    connect_timeout: Duration,
}

impl ConnectionManager {
    /// A manager for `url`. `connect_timeout` bounds a PostgreSQL connection attempt and is the
    /// SQLite busy timeout; the pool's own timeout bounds every backend.
    pub fn new(url: DatabaseUrl, connect_timeout: Duration) -> Self {
        ConnectionManager {
            url,
            connect_timeout,
        }
    }

    /// The URL connections are opened to.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Opens one connection.
    pub fn establish(&self) -> Result<DbConnection, ConnectionError> {
        let target = self.url.connection_string(self.connect_timeout);
        match self.url.backend() {
            Backend::Postgres => PgConnection::establish(&target).map(DbConnection::Postgres),
            Backend::Mysql => MysqlConnection::establish(&target).map(DbConnection::Mysql),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&target)?;
                conn.batch_execute(&sqlite_session(self.connect_timeout))
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                // SQLite's LOWER folds ASCII only; searches fold case as PostgreSQL's and
                // MariaDB's do.
                crate::db::media::lower_utils::register_impl(&mut conn, |text: Option<String>| {
                    text.map(|t| t.to_lowercase())
                })
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.establish()
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}
