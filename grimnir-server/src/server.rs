//! What `grimnir serve` and `grimnir migrate` do, as library calls.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::audit::{self, Actor, Entry};
use crate::auth::Auth;
use crate::auth::password::{self, PasswordError};
use crate::auth::token::JwtSecret;
use crate::config::{Config, Environment};
use crate::db::users::{self, AccountRole, NewUser, User};
use crate::db::{Database, StorageError};
use crate::events::{BusError, EventBus};
use crate::http::{self, AppState, SHUTDOWN_GRACE};
use crate::station_files;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory (`data_dir`).
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (http.listen): {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A production server needs a JWT secret.
    #[error(
        "no JWT secret: set GRIMNIR_JWT_SECRET (or auth.jwt_secret), at least 32 random bytes; \
         a production server does not start without one"
    )]
    MissingJwtSecret,
    /// A password cannot be used or hashed.
    #[error("password: {0}")]
    Password(#[from] PasswordError),
    /// No random secret could be made.
    #[error("cannot make a JWT secret: {0}")]
    Random(String),
    /// A station file is invalid, or could not be applied.
    #[error(transparent)]
    StationFile(#[from] crate::station_files::StationFileError),
    /// The event bus could not be set up (a bad URL; an unreachable server is not an error).
    #[error(transparent)]
    EventBus(#[from] BusError),
    /// Serving failed.
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The signing keys and rate limiters: with the configured JWT secret, or in development a
/// random one (with a warning: tokens do not survive a restart). Production without a secret is
/// [`ServeError::MissingJwtSecret`].
pub fn auth(config: &Config) -> Result<Auth, ServeError> {
    let secret = match (&config.auth.jwt_secret, config.environment) {
        (Some(secret), _) => secret.clone(),
        (None, Environment::Production) => return Err(ServeError::MissingJwtSecret),
        (None, _) => {
            tracing::warn!(
                "GRIMNIR_JWT_SECRET is not set: access tokens are signed with a random secret \
                 and stop working when the server restarts (production refuses to start so)"
            );
            JwtSecret::generate().map_err(|e| ServeError::Random(e.to_string()))?
        }
    };
    Ok(Auth::behind_proxies(
        &secret,
        config.auth.rate_limits,
        config.http.trusted_proxies.clone(),
    ))
}

/// Creates the data directory and opens the database (creating an SQLite file on first start).
pub async fn open_storage(config: &Config) -> Result<Database, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let db = Database::open(config.database.url.clone(), config.database.pool_options()).await?;
    tracing::info!(backend = %db.backend(), url = %db.url(), "database open");
    Ok(db)
}

/// Opens the database and applies pending migrations; returns the versions applied.
pub async fn migrate(config: &Config) -> Result<Vec<String>, ServeError> {
    let db = open_storage(config).await?;
    let applied = db.migrate().await?;
    if applied.is_empty() {
        tracing::info!("schema is up to date");
    } else {
        tracing::info!(applied = %applied.join(", "), "migrations applied");
    }
    Ok(applied)
}

/// Runs the server until `shutdown` completes: installs the metrics recorder, opens the
/// database, applies pending migrations, sets up the event bus (connecting in the background),
/// listens on `http.listen` and serves, then drains requests in flight for up to
/// [`SHUTDOWN_GRACE`].
pub async fn serve(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let auth = auth(config)?;
    // Metrics are an aid, not a reason to refuse service: an embedding program may have
    // installed a recorder of its own.
    let upkeep = match crate::metrics::install() {
        Ok(handle) => Some(crate::metrics::spawn_upkeep(handle, Duration::from_secs(5))),
        Err(e) => {
            tracing::warn!(error = %e, "serving without /metrics");
            None
        }
    };
    let db = open_storage(config).await?;
    let applied = db.migrate().await?;
    if !applied.is_empty() {
        tracing::info!(applied = %applied.join(", "), "migrations applied");
    }
    let pruning = tokio::spawn(prune(db.clone(), config.audit.retention()));
    // Station files: every one must be valid to start; then changes are applied as they come.
    let (watch_stop, watch_stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = match &config.stations_dir {
        Some(dir) => {
            let states = station_files::load_all(&db, dir).await?;
            let watcher = station_files::Watcher::new(db.clone(), dir.clone(), states);
            Some(tokio::spawn(watcher.run(
                station_files::WATCH_INTERVAL,
                async move {
                    let _ = watch_stopped.await;
                },
            )))
        }
        None => None,
    };
    let events = EventBus::connect(&config.event_bus).await?;
    // The media library: uploads a stopped server left unfinished are removed, and the
    // analyser measures what is queued.
    let media = crate::media::MediaLibrary::new(&config.media);
    match media.remove_stale_parts(crate::media::STALE_PART_AGE) {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "unfinished uploads removed"),
        Err(e) => tracing::warn!(dir = %media.dir().display(), error = %e,
            "cannot look for unfinished uploads"),
    }
    let (analysis_stop, analysis_stopped) = tokio::sync::oneshot::channel::<()>();
    let analysis = tokio::spawn(
        crate::media::analysis::AnalysisWorker::new(db.clone(), media.clone(), events.clone()).run(
            async move {
                let _ = analysis_stopped.await;
            },
        ),
    );
    // The executor pool: one executor per active station; commands are logged and kept until
    // the media engine client is wired in.
    let executors = crate::executor_pool::ExecutorPool::recording(db.clone(), events.clone());
    executors.start();
    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.http.listen,
            source,
        })?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "listening");
    http::serve(
        listener,
        http::router(AppState {
            db,
            auth,
            events,
            executors: executors.clone(),
            media,
        }),
        shutdown,
        SHUTDOWN_GRACE,
    )
    .await?;
    pruning.abort();
    executors.shutdown();
    let _ = analysis_stop.send(());
    let _ = analysis.await;
    let _ = watch_stop.send(());
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often expired refresh tokens, and audit entries past their retention, are deleted.
pub const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Every [`PRUNE_INTERVAL`], from start: deletes refresh tokens and spent event stream tickets
/// that expired (every refresh and every ticket adds a row, and without this the tables grow
/// for as long as the server runs) and, when `audit_retention` is set, audit entries older
/// than that.
async fn prune(db: Database, audit_retention: Option<chrono::Duration>) {
    let mut every = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        every.tick().await;
        let now = chrono::Utc::now();
        let naive = now.naive_utc();
        match db
            .run(move |conn| crate::db::refresh_tokens::prune(conn, naive))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired refresh tokens deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot delete expired refresh tokens"),
        }
        if let Err(e) = db
            .run(move |conn| crate::db::spent_tickets::prune(conn, now))
            .await
        {
            tracing::warn!(error = %e, "cannot delete expired event stream tickets");
        }
        if let Some(keep) = audit_retention {
            let before = now - keep;
            match db.run(move |conn| crate::audit::prune(conn, before)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, %before, "old audit entries deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot delete old audit entries"),
            }
        }
    }
}

/// What `grimnir user create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    /// The user as stored.
    pub user: User,
    /// The password, when it was generated rather than given.
    pub generated_password: Option<String>,
}

/// Creates a user on the configured database (applying pending migrations first), with the
/// given password or a generated one, and records it in the audit log.
pub async fn create_user(
    config: &Config,
    email: &str,
    role: AccountRole,
    password: Option<String>,
) -> Result<CreatedUser, ServeError> {
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (
            password::generate().map_err(|e| ServeError::Random(e.to_string()))?,
            true,
        ),
    };
    password::check_new(&password)?;
    users::normalize_email(email)?;
    let db = open_storage(config).await?;
    db.migrate().await?;
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| StorageError::Task(e.to_string()))??
    };
    let new = NewUser {
        email: email.to_owned(),
        password_hash: hash,
        role,
        disabled: false,
    };
    let user = db
        .run(move |conn| {
            use diesel::Connection as _;
            conn.transaction(|conn| {
                let user = users::create(conn, &new)?;
                let entry = Entry::new(Actor::System, "user.create", "user")
                    .target(user.id)
                    .details(serde_json::json!({
                        "email": user.email, "role": user.role.as_str(), "via": "cli",
                    }));
                audit::record(conn, &entry)?;
                Ok(user)
            })
        })
        .await?;
    Ok(CreatedUser {
        user,
        generated_password: generated.then_some(password),
    })
}

/// Completes on SIGINT or SIGTERM (on non-Unix systems, on Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot watch SIGINT/SIGTERM; waiting for Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received");
    }
}
