-- Which declarative station file declared a station, the digest of what was applied, and the
-- file's settings that have no table of their own (failover, priorities) as JSON.
CREATE TABLE station_files (
    station_id VARCHAR(36) PRIMARY KEY REFERENCES stations (id) ON DELETE CASCADE,
    path VARCHAR(1024) NOT NULL,
    digest VARCHAR(64) NOT NULL,
    settings TEXT NOT NULL,
    applied_at TIMESTAMP NOT NULL
);
