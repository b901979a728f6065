//! `/api/v1/migrations`: import jobs from AzuraCast and LibreTime (admins only).
//!
//! An admin copies the other system's backup to the server and records a job naming it
//! (`POST /migrations/azuracast` or `/libretime` with `{"backup_path": "/abs/path"}`). The
//! backup is checked when the job is recorded: an absolute path to a readable, non-empty
//! regular file in a format that system writes (AzuraCast: zip, gzip or zstd archives;
//! LibreTime: a PostgreSQL dump, plain or custom format, or an archive of one). The importers
//! that run jobs come later: until then a job stays `pending`, and `DELETE` cancels it.
//! `GET /migrations/{job_id}/events` streams the job as server-sent events: its state at once,
//! then each change, ending once it is complete or failed.

use std::io::Read as _;
use std::path::Path as FsPath;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::migration_jobs::{self, CancelError, ImportSource, MigrationJob, MigrationJobId};
use crate::http::AppState;

/// How often the event stream looks for changes to its job.
const POLL: Duration = Duration::from_secs(1);
/// Longest backup path accepted, in bytes.
const MAX_PATH_BYTES: usize = 4096;

/// The routes of the import jobs.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_azuracast))
        .routes(routes!(import_libretime))
        .routes(routes!(list_migrations))
        .routes(routes!(get_migration, cancel_migration))
        .routes(routes!(migration_events))
}

/// An import job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MigrationJobDto {
    /// Its id.
    pub id: Uuid,
    /// `azuracast` or `libretime`.
    #[schema(example = "azuracast")]
    pub source: String,
    /// `pending` (waiting for an importer), `running`, `complete` or `failed`.
    #[schema(example = "pending")]
    pub status: String,
    /// Percent done, 0 to 100.
    pub progress: i16,
    /// Items found in the backup.
    pub items_total: i32,
    /// Items imported.
    pub items_done: i32,
    /// Items that could not be imported.
    pub items_failed: i32,
    /// Error messages, oldest first.
    pub errors: Vec<String>,
    /// The backup the job reads.
    pub backup_path: Option<String>,
    /// Who asked for the import.
    pub created_by: Option<Uuid>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<MigrationJob> for MigrationJobDto {
    fn from(j: MigrationJob) -> Self {
        MigrationJobDto {
            id: j.id.as_uuid(),
            source: j.source.as_str().to_owned(),
            status: j.status.as_str().to_owned(),
            progress: j.progress,
            items_total: j.items_total,
            items_done: j.items_done,
            items_failed: j.items_failed,
            errors: j.errors,
            backup_path: j.backup_path,
            created_by: j.created_by.map(|u| u.as_uuid()),
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// A backup to import.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMigration {
    /// The backup file on the server: an absolute path.
    #[schema(example = "/var/backups/azuracast/backup-2026-11-20.zip")]
    pub backup_path: String,
}

/// A job's id in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MigrationPath {
    /// The job.
    pub job_id: Uuid,
}

/// Where a job's event stream is.
enum Follow {
    /// This state is to be sent.
    Send(MigrationJob),
    /// Waiting for a change after the state of `last`.
    Poll { last: DateTime<Utc> },
    /// The job is over or gone.
    Done,
}

/// What a backup file starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackupFormat {
    Zip,
    Gzip,
    Zstd,
    Tar,
    PgCustom,
    Sql,
}

impl BackupFormat {
    fn sniff(head: &[u8]) -> Option<BackupFormat> {
        if head.starts_with(b"PK\x03\x04") {
            Some(BackupFormat::Zip)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(BackupFormat::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(BackupFormat::Zstd)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(BackupFormat::Tar)
        } else if head.starts_with(b"PGDMP") {
            Some(BackupFormat::PgCustom)
        } else if std::str::from_utf8(head).is_ok_and(|t| {
            let t = t.trim_start();
            t.starts_with("--") && t.contains("PostgreSQL database dump")
                || t.starts_with("SET ")
                || t.starts_with("CREATE ")
        }) {
            Some(BackupFormat::Sql)
        } else {
            None
        }
    }

    /// Whether `source` writes backups in this format.
    fn written_by(self, source: ImportSource) -> bool {
        match source {
            ImportSource::AzuraCast => matches!(
                self,
                BackupFormat::Zip | BackupFormat::Gzip | BackupFormat::Zstd | BackupFormat::Tar
            ),
            ImportSource::LibreTime => matches!(
                self,
                BackupFormat::PgCustom
                    | BackupFormat::Sql
                    | BackupFormat::Gzip
                    | BackupFormat::Tar
                    | BackupFormat::Zip
            ),
        }
    }
}

/// Checks the backup a job is to read; the error names what is wrong with it.
fn check_backup(source: ImportSource, path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Err("holds control characters".into());
    }
    let file = FsPath::new(path);
    if !file.is_absolute() {
        return Err(format!("`{path}` is not an absolute path"));
    }
    let meta = std::fs::metadata(file).map_err(|e| format!("`{path}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!("`{path}` is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(format!("`{path}` is empty"));
    }
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(file)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| format!("`{path}` cannot be read: {e}"))?;
    let written_by = match source {
        ImportSource::AzuraCast => "an AzuraCast backup (zip, tar.gz or tar.zst)",
        ImportSource::LibreTime => "a LibreTime backup (a PostgreSQL dump, or an archive of one)",
    };
    match BackupFormat::sniff(&head) {
        Some(format) if format.written_by(source) => Ok(()),
        _ => Err(format!("`{path}` is not {written_by}")),
    }
}

async fn create(
    state: AppState,
    principal: Principal,
    info: RequestInfo,
    source: ImportSource,
    body: CreateMigration,
) -> Result<(StatusCode, Json<MigrationJobDto>), ApiError> {
    authorize(&principal, Action::MigrationAdmin, None)?;
    let path = body.backup_path.clone();
    tokio::task::spawn_blocking(move || check_backup(source, &path))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| ApiError::invalid_field("backup_path", e))?;
    let user = principal.user_id;
    let entry = audit_entry(&principal, &info, "migration.create", "migration_job");
    let job = super::transaction(&state.db, move |conn| {
        let job = migration_jobs::create(conn, source, &body.backup_path, user)?;
        let details = serde_json::json!({
            "source": source.as_str(), "backup_path": body.backup_path,
        });
        audit::record(conn, &entry.target(job.id).details(details))?;
        Ok(job)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(job.into())))
}

/// Record an AzuraCast import job.
///
/// The backup must be a file on the server (zip, tar.gz or tar.zst, as AzuraCast writes
/// them). The job waits as `pending` for the importer.
#[utoipa::path(
    post, path = "/migrations/azuracast", tag = "migrations",
    request_body = CreateMigration,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Recorded, pending", body = MigrationJobDto),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "The backup is missing, unreadable or not an AzuraCast backup (`field`: `backup_path`)", body = ErrorBody),
    )
)]
pub(crate) async fn import_azuracast(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Json(body): Json<CreateMigration>,
) -> Result<(StatusCode, Json<MigrationJobDto>), ApiError> {
    create(state, principal, info, ImportSource::AzuraCast, body).await
}

/// Record a LibreTime import job.
///
/// The backup must be a file on the server: a PostgreSQL dump of LibreTime's database (plain
/// SQL or pg_dump's custom format), or an archive holding one. The job waits as `pending` for
/// the importer.
#[utoipa::path(
    post, path = "/migrations/libretime", tag = "migrations",
    request_body = CreateMigration,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Recorded, pending", body = MigrationJobDto),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "The backup is missing, unreadable or not a LibreTime backup (`field`: `backup_path`)", body = ErrorBody),
    )
)]
pub(crate) async fn import_libretime(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Json(body): Json<CreateMigration>,
) -> Result<(StatusCode, Json<MigrationJobDto>), ApiError> {
    create(state, principal, info, ImportSource::LibreTime, body).await
}

/// List import jobs, newest first.
#[utoipa::path(
    get, path = "/migrations", tag = "migrations",
    params(PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of jobs", body = Paginated<MigrationJobDto>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn list_migrations(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<MigrationJobDto>>, ApiError> {
    authorize(&principal, Action::MigrationAdmin, None)?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| migration_jobs::list_page(conn, page))
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(MigrationJobDto::from),
    ))
}

/// An import job's status.
#[utoipa::path(
    get, path = "/migrations/{job_id}", tag = "migrations",
    params(MigrationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The job", body = MigrationJobDto),
        (status = 400, description = "Bad job id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub(crate) async fn get_migration(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<MigrationPath>,
) -> Result<Json<MigrationJobDto>, ApiError> {
    authorize(&principal, Action::MigrationAdmin, None)?;
    let id = MigrationJobId::from(path.job_id);
    let job = state
        .db
        .run(move |conn| migration_jobs::get(conn, id))
        .await?;
    Ok(Json(job.into()))
}

/// Cancel a pending import job, or forget a finished one.
#[utoipa::path(
    delete, path = "/migrations/{job_id}", tag = "migrations",
    params(MigrationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Cancelled or forgotten"),
        (status = 400, description = "Bad job id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The import is running (`conflict`)", body = ErrorBody),
    )
)]
pub(crate) async fn cancel_migration(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MigrationPath>,
) -> Result<StatusCode, ApiError> {
    authorize(&principal, Action::MigrationAdmin, None)?;
    let id = MigrationJobId::from(path.job_id);
    let entry = audit_entry(&principal, &info, "migration.cancel", "migration_job");
    super::transaction(&state.db, move |conn| {
        migration_jobs::cancel(conn, id).map_err(|e| match e {
            CancelError::Storage(e) => ApiError::from(e),
            CancelError::Running => ApiError::conflict(e.to_string()),
        })?;
        audit::record(conn, &entry.target(id))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Follow an import job as server-sent events.
///
/// Each event is named `job` and carries the job as JSON: one at once, then one at every
/// change; the stream ends after the job is complete or failed, or if it is cancelled.
#[utoipa::path(
    get, path = "/migrations/{job_id}/events", tag = "migrations",
    params(MigrationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "`text/event-stream` of `job` events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad job id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub(crate) async fn migration_events(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<MigrationPath>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>>, ApiError> {
    authorize(&principal, Action::MigrationAdmin, None)?;
    let id = MigrationJobId::from(path.job_id);
    let db = state.db.clone();
    let first = db.run(move |conn| migration_jobs::get(conn, id)).await?;
    let stream = futures_util::stream::unfold(Follow::Send(first), move |mut follow| {
        let db = db.clone();
        async move {
            loop {
                match follow {
                    Follow::Done => return None,
                    Follow::Send(job) => {
                        let next = if job.status.is_final() {
                            Follow::Done
                        } else {
                            Follow::Poll {
                                last: job.updated_at,
                            }
                        };
                        let event = SseEvent::default()
                            .event("job")
                            .json_data(MigrationJobDto::from(job))
                            .unwrap_or_else(|_| SseEvent::default().comment("unserializable job"));
                        return Some((Ok(event), next));
                    }
                    Follow::Poll { last } => {
                        tokio::time::sleep(POLL).await;
                        follow = match db.run(move |conn| migration_jobs::get(conn, id)).await {
                            Ok(job) if job.updated_at != last => Follow::Send(job),
                            Ok(_) => Follow::Poll { last },
                            // Cancelled, or the database is away: the stream ends.
                            Err(_) => Follow::Done,
                        };
                    }
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
