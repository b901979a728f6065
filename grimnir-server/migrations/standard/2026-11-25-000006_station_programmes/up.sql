-- A station's programme settings that have no table of their own, as the planner models them:
-- the weekly grid of clocks, dated overrides, the filler block, crossfade and trim fade (JSON).
CREATE TABLE station_programmes (
    station_id VARCHAR(36) PRIMARY KEY REFERENCES stations (id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
