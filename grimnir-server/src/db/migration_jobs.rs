//! Import jobs from other systems (AzuraCast, LibreTime): which backup, how far, what failed.
//!
//! A job is recorded `pending` with the backup it is to read, a file on the server. The
//! importers that take pending jobs and move them through `running` to `complete` or
//! `failed` are not written yet; until they are, a job waits as `pending` and can be
//! cancelled ([`cancel`]). Progress fields are kept as the importers will write them:
//! percent, items found, done and failed, and the error messages.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::migration_jobs;
use super::users::UserId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};

uuid_id! {
    /// The id of an import job.
    MigrationJobId
}

/// The system a backup comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportSource {
    /// An AzuraCast backup (`.zip`, `.tar.gz`, `.tzst`).
    AzuraCast,
    /// A LibreTime backup (a PostgreSQL dump, or an archive of one).
    LibreTime,
}

impl ImportSource {
    /// `azuracast` or `libretime`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportSource::AzuraCast => "azuracast",
            ImportSource::LibreTime => "libretime",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "azuracast" => Some(ImportSource::AzuraCast),
            "libretime" => Some(ImportSource::LibreTime),
            _ => None,
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Recorded, waiting for an importer.
    Pending,
    /// An importer is reading the backup.
    Running,
    /// Done: everything that could be imported was.
    Complete,
    /// Stopped by an error that affects the whole import.
    Failed,
}

impl JobStatus {
    /// `pending`, `running`, `complete` or `failed`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(JobStatus::Pending),
            "running" => Some(JobStatus::Running),
            "complete" => Some(JobStatus::Complete),
            "failed" => Some(JobStatus::Failed),
            _ => None,
        }
    }

    /// Whether the job is over (complete or failed).
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Complete | JobStatus::Failed)
    }
}

/// An import job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationJob {
    /// Its id.
    pub id: MigrationJobId,
    /// The system the backup comes from.
    pub source: ImportSource,
    /// Where it is.
    pub status: JobStatus,
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
    /// The backup: an absolute path on the server.
    pub backup_path: Option<String>,
    /// Who asked for the import.
    pub created_by: Option<UserId>,
    /// When it was recorded (UTC).
    pub created_at: DateTime<Utc>,
    /// When it last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = migration_jobs)]
struct JobRow {
    id: String,
    source: String,
    status: String,
    progress: i16,
    items_total: i32,
    items_done: i32,
    items_failed: i32,
    errors: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    backup_path: Option<String>,
    created_by: Option<String>,
}

fn corrupt(column: &'static str, value: &str, expected: &'static str) -> StorageError {
    StorageError::Corrupt {
        table: "migration_jobs",
        column,
        value: value.to_owned(),
        expected,
    }
}

impl TryFrom<JobRow> for MigrationJob {
    type Error = StorageError;

    fn try_from(row: JobRow) -> Result<Self, StorageError> {
        Ok(MigrationJob {
            id: stored_id("migration_jobs", "id", &row.id)?,
            source: ImportSource::parse(&row.source)
                .ok_or_else(|| corrupt("source", &row.source, "azuracast or libretime"))?,
            status: JobStatus::parse(&row.status)
                .ok_or_else(|| corrupt("status", &row.status, "a job status"))?,
            progress: row.progress,
            items_total: row.items_total,
            items_done: row.items_done,
            items_failed: row.items_failed,
            errors: serde_json::from_str(&row.errors)
                .map_err(|_| corrupt("errors", &row.errors, "a JSON list of messages"))?,
            backup_path: row.backup_path,
            created_by: row
                .created_by
                .as_deref()
                .map(|u| stored_id("migration_jobs", "created_by", u))
                .transpose()?,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

/// Records a pending job reading `backup_path`, asked for by `user`.
pub fn create(
    conn: &mut DbConnection,
    source: ImportSource,
    backup_path: &str,
    user: UserId,
) -> Result<MigrationJob, StorageError> {
    let id = MigrationJobId::random();
    let at = now();
    diesel::insert_into(migration_jobs::table)
        .values((
            migration_jobs::id.eq(id.to_string()),
            migration_jobs::source.eq(source.as_str()),
            migration_jobs::status.eq(JobStatus::Pending.as_str()),
            migration_jobs::progress.eq(0i16),
            migration_jobs::items_total.eq(0),
            migration_jobs::items_done.eq(0),
            migration_jobs::items_failed.eq(0),
            migration_jobs::errors.eq("[]"),
            migration_jobs::backup_path.eq(backup_path),
            migration_jobs::created_by.eq(user.to_string()),
            migration_jobs::created_at.eq(at),
            migration_jobs::updated_at.eq(at),
        ))
        .execute(conn)?;
    get(conn, id)
}

/// The job `id`.
pub fn get(conn: &mut DbConnection, id: MigrationJobId) -> Result<MigrationJob, StorageError> {
    migration_jobs::table
        .filter(migration_jobs::id.eq(id.to_string()))
        .select(JobRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "migration job",
            id: id.to_string(),
        })?
        .try_into()
}

/// One page of jobs, newest first, and how many there are in all.
pub fn list_page(
    conn: &mut DbConnection,
    page: Page,
) -> Result<(Vec<MigrationJob>, i64), StorageError> {
    let total: i64 = migration_jobs::table.count().get_result(conn)?;
    let items = migration_jobs::table
        .order((migration_jobs::created_at.desc(), migration_jobs::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(JobRow::as_select())
        .load(conn)?
        .into_iter()
        .map(MigrationJob::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Why a job cannot be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// The storage failed, or there is no such job.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An importer is reading its backup.
    #[error("the import is running; it cannot be cancelled now")]
    Running,
}

impl From<diesel::result::Error> for CancelError {
    fn from(e: diesel::result::Error) -> Self {
        CancelError::Storage(e.into())
    }
}

/// Removes a job that is not running: a pending one is cancelled, a finished one forgotten.
pub fn cancel(conn: &mut DbConnection, id: MigrationJobId) -> Result<(), CancelError> {
    // The write comes first (see db::dsp_graphs::update): only a job that is not running goes.
    let deleted = diesel::delete(
        migration_jobs::table
            .filter(migration_jobs::id.eq(id.to_string()))
            .filter(migration_jobs::status.ne(JobStatus::Running.as_str())),
    )
    .execute(conn)?;
    if deleted == 0 {
        get(conn, id)?;
        return Err(CancelError::Running);
    }
    Ok(())
}
