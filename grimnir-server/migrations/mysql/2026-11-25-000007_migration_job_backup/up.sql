-- An import job names the backup it reads (a file on the server) and who asked for it.
ALTER TABLE migration_jobs ADD COLUMN backup_path TEXT;
ALTER TABLE migration_jobs ADD COLUMN created_by VARCHAR(36);
