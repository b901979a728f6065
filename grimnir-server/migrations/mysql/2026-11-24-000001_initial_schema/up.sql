-- Grimnir Radio, initial schema (MySQL and MariaDB).
--
-- Foreign keys are declared per table: MySQL ignores REFERENCES written on a column.
--
-- The same tables are created on every backend (see the sibling directories); only the column
-- types differ. Ids are UUIDs written as text and JSON documents are text, because the
-- server talks to all three databases through one diesel connection type that binds only the
-- SQL types every backend shares. Times are UTC.

CREATE TABLE users (
    id VARCHAR(36) PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    password_hash MEDIUMTEXT NOT NULL,
    role VARCHAR(16) NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE stations (
    id VARCHAR(36) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    description MEDIUMTEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX stations_name_idx ON stations (name);

-- A user's role at one station (admin, manager, dj); a user's own role applies everywhere.
CREATE TABLE station_users (
    station_id VARCHAR(36) NOT NULL,
    user_id VARCHAR(36) NOT NULL,
    role VARCHAR(16) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (station_id, user_id),
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX station_users_user_idx ON station_users (user_id);

CREATE TABLE encoder_presets (
    id VARCHAR(36) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    format VARCHAR(32) NOT NULL,
    bitrate_kbps INTEGER,
    sample_rate INTEGER NOT NULL,
    channels SMALLINT NOT NULL,
    quality DOUBLE PRECISION,
    options MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT encoder_presets_name_key UNIQUE (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE mounts (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    encoder_preset_id VARCHAR(36),
    outputs MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE,
    FOREIGN KEY (encoder_preset_id) REFERENCES encoder_presets (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX mounts_station_idx ON mounts (station_id);

CREATE TABLE media_items (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
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
    metadata MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX media_items_station_idx ON media_items (station_id);
CREATE INDEX media_items_artist_idx ON media_items (station_id, artist);

CREATE TABLE tags (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    CONSTRAINT tags_station_name_key UNIQUE (station_id, name),
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE media_tag_links (
    media_id VARCHAR(36) NOT NULL,
    tag_id VARCHAR(36) NOT NULL,
    PRIMARY KEY (media_id, tag_id),
    FOREIGN KEY (media_id) REFERENCES media_items (id) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX media_tag_links_tag_idx ON media_tag_links (tag_id);

CREATE TABLE smart_blocks (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    description MEDIUMTEXT,
    rules MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX smart_blocks_station_idx ON smart_blocks (station_id);

CREATE TABLE clock_hours (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX clock_hours_station_idx ON clock_hours (station_id);

-- kind: smart_block, hard_item, stopset, webstream; the reference matching the kind is set.
CREATE TABLE clock_slots (
    id VARCHAR(36) PRIMARY KEY,
    clock_hour_id VARCHAR(36) NOT NULL,
    position INTEGER NOT NULL,
    kind VARCHAR(32) NOT NULL,
    smart_block_id VARCHAR(36),
    media_id VARCHAR(36),
    webstream_id VARCHAR(36),
    duration_ms BIGINT,
    hard_start BOOLEAN NOT NULL DEFAULT FALSE,
    options MEDIUMTEXT NOT NULL,
    CONSTRAINT clock_slots_position_key UNIQUE (clock_hour_id, position),
    FOREIGN KEY (clock_hour_id) REFERENCES clock_hours (id) ON DELETE CASCADE,
    FOREIGN KEY (smart_block_id) REFERENCES smart_blocks (id) ON DELETE SET NULL,
    FOREIGN KEY (media_id) REFERENCES media_items (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE shows (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    description MEDIUMTEXT,
    definition MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX shows_station_idx ON shows (station_id);

CREATE TABLE schedule_entries (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    mount_id VARCHAR(36),
    starts_at DATETIME(6) NOT NULL,
    ends_at DATETIME(6) NOT NULL,
    tier SMALLINT NOT NULL,
    source_type VARCHAR(32) NOT NULL,
    source_id VARCHAR(36),
    metadata MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE,
    FOREIGN KEY (mount_id) REFERENCES mounts (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX schedule_entries_station_start_idx ON schedule_entries (station_id, starts_at);

CREATE TABLE play_history (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    media_id VARCHAR(36),
    title VARCHAR(512) NOT NULL,
    artist VARCHAR(512),
    started_at DATETIME(6) NOT NULL,
    ended_at DATETIME(6),
    metadata MEDIUMTEXT NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE,
    FOREIGN KEY (media_id) REFERENCES media_items (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX play_history_station_start_idx ON play_history (station_id, started_at);

CREATE TABLE analysis_jobs (
    id VARCHAR(36) PRIMARY KEY,
    media_id VARCHAR(36) NOT NULL,
    status VARCHAR(32) NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error MEDIUMTEXT,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (media_id) REFERENCES media_items (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX analysis_jobs_status_idx ON analysis_jobs (status, created_at);

-- One row per station: what its executor is doing (idle, preloading, playing, fading, live,
-- emergency), the tier on air (0-4) and the last heartbeat.
CREATE TABLE executor_states (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    state VARCHAR(32) NOT NULL,
    current_priority SMALLINT NOT NULL,
    current_source_id VARCHAR(36),
    current_source_type VARCHAR(32),
    buffer_depth BIGINT NOT NULL DEFAULT 0,
    last_heartbeat DATETIME(6) NOT NULL,
    metadata MEDIUMTEXT NOT NULL,
    CONSTRAINT executor_states_station_key UNIQUE (station_id),
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- priority: 0 emergency, 1 live override, 2 live scheduled, 3 automation, 4 fallback.
CREATE TABLE priority_sources (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    mount_id VARCHAR(36),
    priority SMALLINT NOT NULL,
    source_type VARCHAR(32) NOT NULL,
    source_id VARCHAR(36),
    starts_at DATETIME(6) NOT NULL,
    ends_at DATETIME(6),
    active BOOLEAN NOT NULL,
    metadata MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE,
    FOREIGN KEY (mount_id) REFERENCES mounts (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX priority_sources_station_active_idx ON priority_sources (station_id, active);

CREATE TABLE webstreams (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    url VARCHAR(2048) NOT NULL,
    fallback_urls MEDIUMTEXT NOT NULL,
    headers MEDIUMTEXT NOT NULL,
    health_state VARCHAR(32) NOT NULL,
    last_health_check DATETIME(6),
    metadata MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX webstreams_station_name_idx ON webstreams (station_id, name);

CREATE TABLE dsp_graphs (
    id VARCHAR(36) PRIMARY KEY,
    station_id VARCHAR(36) NOT NULL,
    name VARCHAR(255) NOT NULL,
    description MEDIUMTEXT,
    nodes MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
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
    errors MEDIUMTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Refresh tokens are stored as hashes. Every refresh issues a new token in the same family and
-- marks the old one used; presenting a used token revokes the whole family.
CREATE TABLE refresh_tokens (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    family_id VARCHAR(36) NOT NULL,
    token_hash VARCHAR(128) NOT NULL,
    issued_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    used_at DATETIME(6),
    revoked_at DATETIME(6),
    CONSTRAINT refresh_tokens_hash_key UNIQUE (token_hash),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- API keys are found by their public prefix and checked against the hash of the secret.
CREATE TABLE api_keys (
    id VARCHAR(36) PRIMARY KEY,
    user_id VARCHAR(36) NOT NULL,
    station_id VARCHAR(36),
    name VARCHAR(255) NOT NULL,
    prefix VARCHAR(32) NOT NULL,
    secret_hash VARCHAR(255) NOT NULL,
    role VARCHAR(16) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6),
    last_used_at DATETIME(6),
    revoked_at DATETIME(6),
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (station_id) REFERENCES stations (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- Append-only record of schedule changes, priority overrides, user and key changes. Actors and
-- targets are kept as plain ids, without foreign keys, so the record outlives what it names.
CREATE TABLE audit_log (
    id VARCHAR(36) PRIMARY KEY,
    occurred_at DATETIME(6) NOT NULL,
    actor_user_id VARCHAR(36),
    actor_api_key_id VARCHAR(36),
    station_id VARCHAR(36),
    action VARCHAR(64) NOT NULL,
    target_type VARCHAR(64) NOT NULL,
    target_id VARCHAR(36),
    request_id VARCHAR(128),
    remote_addr VARCHAR(64),
    details MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_log_occurred_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_station_idx ON audit_log (station_id, occurred_at);
