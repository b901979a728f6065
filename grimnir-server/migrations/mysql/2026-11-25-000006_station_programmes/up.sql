-- A station's programme settings that have no table of their own, as the planner models them:
-- the weekly grid of clocks, dated overrides, the filler block, crossfade and trim fade (JSON).
CREATE TABLE station_programmes (
    station_id VARCHAR(36) PRIMARY KEY,
    settings MEDIUMTEXT NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
