//! The schema migrations, embedded in the binary.
//!
//! `migrations/standard` serves PostgreSQL and SQLite, which accept the same DDL;
//! `migrations/mysql` holds the same migrations under the same version names in MySQL's types
//! (DATETIME(6) and MEDIUMTEXT, table-level foreign keys). A unit test keeps the two lists of
//! versions equal. A migration that needs SQL of its own on one backend splits the standard set.

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConnection, StorageError};

/// PostgreSQL and SQLite.
const STANDARD: EmbeddedMigrations = embed_migrations!("migrations/standard");
const MYSQL: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Applies every migration the database has not seen yet, oldest first, and returns the versions
/// applied (none when the schema is current).
pub fn run_pending(conn: &mut DbConnection) -> Result<Vec<String>, StorageError> {
    let backend = conn.backend();
    let applied = match conn {
        DbConnection::Postgres(c) => c.run_pending_migrations(STANDARD).map(versions),
        DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL).map(versions),
        DbConnection::Sqlite(c) => c.run_pending_migrations(STANDARD).map(versions),
    };
    applied.map_err(|e| StorageError::Migration {
        backend,
        message: e.to_string(),
    })
}

/// The versions of the embedded migrations the database has not applied yet.
pub fn pending(conn: &mut DbConnection) -> Result<Vec<String>, StorageError> {
    let backend = conn.backend();
    let pending = match conn {
        DbConnection::Postgres(c) => c
            .pending_migrations(STANDARD)
            .map(|m| m.iter().map(|m| m.name().version().to_string()).collect()),
        DbConnection::Mysql(c) => c
            .pending_migrations(MYSQL)
            .map(|m| m.iter().map(|m| m.name().version().to_string()).collect()),
        DbConnection::Sqlite(c) => c
            .pending_migrations(STANDARD)
            .map(|m| m.iter().map(|m| m.name().version().to_string()).collect()),
    };
    pending.map_err(|e| StorageError::Migration {
        backend,
        message: e.to_string(),
    })
}

fn versions(applied: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    applied.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Migration directory names per backend, read from the source tree.
    fn names(backend: &str) -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_backend_has_the_same_migrations() {
        let standard = names("standard");
        assert!(!standard.is_empty());
        assert_eq!(names("mysql"), standard);
    }

    #[test]
    fn every_migration_can_be_reverted() {
        for backend in ["standard", "mysql"] {
            for name in names(backend) {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("migrations")
                    .join(backend)
                    .join(&name);
                for file in ["up.sql", "down.sql"] {
                    let sql = std::fs::read_to_string(dir.join(file)).unwrap();
                    assert!(!sql.trim().is_empty(), "{backend}/{name}/{file} is empty");
                }
            }
        }
    }
}
