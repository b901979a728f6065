-- Grimnir Radio, initial schema (PostgreSQL and SQLite: SQL both accept as written).
--
-- The same tables are created on MySQL/MariaDB (see `../../mysql`); only the column types
-- differ there. SQLite enforces the foreign keys because every connection turns on
-- PRAGMA foreign_keys. Ids are UUIDs written as text and JSON documents are text, because the
-- server talks to all three databases through one diesel connection type that binds only the
-- SQL types every backend shares. Times are UTC.

CREATE TABLE users (
    id VARCHAR(36) PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    password_hash TEXT NOT NULL,
    role VARCHAR(16) NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE stations (
    id VARCHAR(36) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    description TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX stations_name_idx ON stations (name);

-- A user's role at one station (admin, manager, dj); a user's own role applies everywhere.
CREATE TABLE station_users (
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    user_id VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role VARCHAR(16) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (station_id, user_id)
);
CREATE INDEX station_users_user_idx ON station_users (user_id);

CREATE TABLE encoder_presets (
    id VARCHAR(36) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    format VARCHAR(32) NOT NULL,
    bitrate_kbps INTEGER,
    sample_rate INTEGER NOT NULL,
    channels SMALLINT NOT NULL,
    quality DOUBLE PRECISION,
    options TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT encoder_presets_name_key UNIQUE (name)
);

CREATE TABLE mounts (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    encoder_preset_id VARCHAR(36) REFERENCES encoder_presets (id) ON DELETE SET NULL,
    outputs TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX mounts_station_idx ON mounts (station_id);

CREATE TABLE media_items (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    title VARCHAR(512) NOT NULL,
    artist VARCHAR(512),
    album VARCHAR(512),
    storage_key VARCHAR(1024) NOT NULL,
    content_type VARCHAR(128) NOT NULL,
    size_bytes BIGINT NOT NULL,
    duration_ms BIGINT,
    loudness_lufs DOUBLE PRECISION,
    true_peak_dbtp DOUBLE PRECISION,
    bpm DOUBLE PRECISION,
    cue_in_ms BIGINT,
    cue_out_ms BIGINT,
    intro_end_ms BIGINT,
    outro_start_ms BIGINT,
    analysis_state VARCHAR(32) NOT NULL,
    metadata TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX media_items_station_idx ON media_items (station_id);
CREATE INDEX media_items_artist_idx ON media_items (station_id, artist);

CREATE TABLE tags (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT tags_station_name_key UNIQUE (station_id, name)
);

CREATE TABLE media_tag_links (
    media_id VARCHAR(36) NOT NULL REFERENCES media_items (id) ON DELETE CASCADE,
    tag_id VARCHAR(36) NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (media_id, tag_id)
);
CREATE INDEX media_tag_links_tag_idx ON media_tag_links (tag_id);

CREATE TABLE smart_blocks (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    rules TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX smart_blocks_station_idx ON smart_blocks (station_id);

CREATE TABLE clock_hours (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX clock_hours_station_idx ON clock_hours (station_id);

-- kind: smart_block, hard_item, stopset, webstream; the reference matching the kind is set.
CREATE TABLE clock_slots (
    id VARCHAR(36) PRIMARY KEY,
    clock_hour_id VARCHAR(36) NOT NULL REFERENCES clock_hours (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    kind VARCHAR(32) NOT NULL,
    smart_block_id VARCHAR(36) REFERENCES smart_blocks (id) ON DELETE SET NULL,
    media_id VARCHAR(36) REFERENCES media_items (id) ON DELETE SET NULL,
    webstream_id VARCHAR(36),
    duration_ms BIGINT,
    hard_start BOOLEAN NOT NULL DEFAULT FALSE,
    options TEXT NOT NULL,
    CONSTRAINT clock_slots_position_key UNIQUE (clock_hour_id, position)
);

CREATE TABLE shows (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    definition TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX shows_station_idx ON shows (station_id);

CREATE TABLE schedule_entries (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    mount_id VARCHAR(36) REFERENCES mounts (id) ON DELETE SET NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    tier SMALLINT NOT NULL,
    source_type VARCHAR(32) NOT NULL,
    source_id VARCHAR(36),
    metadata TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX schedule_entries_station_start_idx ON schedule_entries (station_id, starts_at);

CREATE TABLE play_history (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    media_id VARCHAR(36) REFERENCES media_items (id) ON DELETE SET NULL,
    title VARCHAR(512) NOT NULL,
    artist VARCHAR(512),
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    metadata TEXT NOT NULL
);
CREATE INDEX play_history_station_start_idx ON play_history (station_id, started_at);

CREATE TABLE analysis_jobs (
    id VARCHAR(36) PRIMARY KEY,
    media_id VARCHAR(36) NOT NULL REFERENCES media_items (id) ON DELETE CASCADE,
    status VARCHAR(32) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX analysis_jobs_status_idx ON analysis_jobs (status, created_at);

-- One row per station: what its executor is doing (idle, preloading, playing, fading, live,
-- emergency), the tier on air (0-4) and the last heartbeat.
CREATE TABLE executor_states (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    state VARCHAR(32) NOT NULL,
    current_priority SMALLINT NOT NULL,
    current_source_id VARCHAR(36),
    current_source_type VARCHAR(32),
    buffer_depth BIGINT NOT NULL DEFAULT 0,
    last_heartbeat TIMESTAMP NOT NULL,
    metadata TEXT NOT NULL,
    CONSTRAINT executor_states_station_key UNIQUE (station_id)
);

-- priority: 0 emergency, 1 live override, 2 live scheduled, 3 automation, 4 fallback.
CREATE TABLE priority_sources (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    mount_id VARCHAR(36) REFERENCES mounts (id) ON DELETE CASCADE,
    priority SMALLINT NOT NULL,
    source_type VARCHAR(32) NOT NULL,
    source_id VARCHAR(36),
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP,
    active BOOLEAN NOT NULL,
    metadata TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX priority_sources_station_active_idx ON priority_sources (station_id, active);

CREATE TABLE webstreams (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    url VARCHAR(2048) NOT NULL,
    fallback_urls TEXT NOT NULL,
    headers TEXT NOT NULL,
    health_state VARCHAR(32) NOT NULL,
    last_health_check TIMESTAMP,
    metadata TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webstreams_station_name_idx ON webstreams (station_id, name);

CREATE TABLE dsp_graphs (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    nodes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX dsp_graphs_station_name_idx ON dsp_graphs (station_id, name);

-- Imports from other systems (azuracast, libretime): status pending, running, complete, failed.
CREATE TABLE migration_jobs (
    id VARCHAR(36) PRIMARY KEY,
    source VARCHAR(32) NOT NULL,
    status VARCHAR(32) NOT NULL,
    progress SMALLINT NOT NULL DEFAULT 0,
    items_total INTEGER NOT NULL DEFAULT 0,
    items_done INTEGER NOT NULL DEFAULT 0,
    items_failed INTEGER NOT NULL DEFAULT 0,
    errors TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Refresh tokens are stored as hashes. Every refresh issues a new token in the same family and
-- marks the old one used; presenting a used token revokes the whole family.
CREATE TABLE refresh_tokens (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id VARCHAR(36) NOT NULL,
    token_hash VARCHAR(128) NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    CONSTRAINT refresh_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- API keys are found by their public prefix and checked against the hash of the secret.
CREATE TABLE api_keys (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    station_id VARCHAR(36) REFERENCES stations (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    prefix VARCHAR(32) NOT NULL,
    secret_hash VARCHAR(255) NOT NULL,
    role VARCHAR(16) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- Append-only record of schedule changes, priority overrides, user and key changes. Actors and
-- targets are kept as plain ids, without foreign keys, so the record outlives what it names.
CREATE TABLE audit_log (
    id VARCHAR(36) PRIMARY KEY,
    occurred_at TIMESTAMP NOT NULL,
    actor_user_id VARCHAR(36),
    actor_api_key_id VARCHAR(36),
    station_id VARCHAR(36),
    action VARCHAR(64) NOT NULL,
    target_type VARCHAR(64) NOT NULL,
    target_id VARCHAR(36),
    request_id VARCHAR(128),
    remote_addr VARCHAR(64),
    details TEXT NOT NULL
);
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_station_idx ON audit_log (station_id, occurred_at);
