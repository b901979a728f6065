ALTER TABLE migration_jobs DROP COLUMN created_by;
ALTER TABLE migration_jobs DROP COLUMN backup_path;
