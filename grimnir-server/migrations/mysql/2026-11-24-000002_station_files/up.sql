-- Which declarative station file declared a station, the digest of what was applied, and the
-- file's settings that have no table of their own (failover, priorities) as JSON.
CREATE TABLE station_files (
    station_id VARCHAR(36) PRIMARY KEY,
    path VARCHAR(1024) NOT NULL,
    digest VARCHAR(64) NOT NULL,
    settings MEDIUMTEXT NOT NULL,
    applied_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
