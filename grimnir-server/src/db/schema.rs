//! The diesel schema: one `table!` per table of the migrations.
//!
//! The same declarations serve SQLite, PostgreSQL and MySQL/MariaDB, so they use only the SQL
//! types every backend binds through [`DbConnection`](super::DbConnection): ids and JSON
//! documents are `Text`, times are `Timestamp` in UTC. A test checks that every column named
//! here exists on every backend after the migrations ran.

diesel::table! {
    /// Accounts that sign in: email, password hash (argon2id, or bcrypt for imported users) and account role.
    users {
        /// Primary key: a UUID as text.
        id -> Text,
        /// Sign-in address, unique.
        email -> Text,
        /// PHC string: argon2id, or bcrypt for users imported from other systems.
        password_hash -> Text,
        /// Account role: `admin` (everything, everywhere) or `user` (what `station_users` gives).
        role -> Text,
        /// A disabled user cannot sign in.
        disabled -> Bool,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Stations: each has its own time zone, schedule and failure domain.
    stations {
        /// Primary key: a UUID as text.
        id -> Text,
        /// Name shown to people.
        name -> Text,
        /// IANA time zone its clocks and shows are planned in.
        timezone -> Text,
        /// Free text for people.
        description -> Nullable<Text>,
        /// Whether it is meant to be on air.
        active -> Bool,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// A user's role (manager or dj) at one station.
    station_users (station_id, user_id) {
        /// The station it belongs to.
        station_id -> Text,
        /// The user it belongs to.
        user_id -> Text,
        /// The user's role at this station: `manager` or `dj`.
        role -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Encoder templates (format, bitrate, sample rate, channels) that mounts refer to.
    encoder_presets {
        /// Primary key: a UUID as text.
        id -> Text,
        /// Name shown to people.
        name -> Text,
        /// Codec or container: `mp3`, `aac`, `opus`, `flac`, …
        format -> Text,
        /// Bitrate in kbit/s; none for lossless or quality-based encoding.
        bitrate_kbps -> Nullable<Integer>,
        /// Sample rate in Hz, pinned so encoders never resample behind our back.
        sample_rate -> Integer,
        /// Channel count.
        channels -> SmallInt,
        /// Encoder quality setting, when the format has one.
        quality -> Nullable<Double>,
        /// JSON object of encoder-specific options.
        options -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// A station's output streams; `outputs` is a JSON list of Icecast, HLS and recording outputs.
    mounts {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Name shown to people.
        name -> Text,
        /// The encoder preset, if the mount uses one.
        encoder_preset_id -> Nullable<Text>,
        /// JSON list of outputs (Icecast, HLS, recording) with their settings.
        outputs -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Audio files with their metadata, analysis results and cue points.
    media_items {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Track title.
        title -> Text,
        /// Artist, when known.
        artist -> Nullable<Text>,
        /// Album, when known.
        album -> Nullable<Text>,
        /// Where the file is kept: a path under the media root or an object-store key.
        storage_key -> Text,
        /// MIME type of the file.
        content_type -> Text,
        /// File size in bytes.
        size_bytes -> BigInt,
        /// Length in milliseconds, once analysed.
        duration_ms -> Nullable<BigInt>,
        /// Integrated loudness (EBU R128), once analysed.
        loudness_lufs -> Nullable<Double>,
        /// True peak in dBTP, once analysed.
        true_peak_dbtp -> Nullable<Double>,
        /// Tempo, when detected.
        bpm -> Nullable<Double>,
        /// Where playback starts, in milliseconds from the file start.
        cue_in_ms -> Nullable<BigInt>,
        /// Where playback ends, in milliseconds from the file start.
        cue_out_ms -> Nullable<BigInt>,
        /// End of the intro (talk-over), in milliseconds.
        intro_end_ms -> Nullable<BigInt>,
        /// Start of the outro (crossfade point), in milliseconds.
        outro_start_ms -> Nullable<BigInt>,
        /// `pending`, `done` or `failed`.
        analysis_state -> Text,
        /// JSON object of further details.
        metadata -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Labels for media, unique by name within a station.
    tags {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// The label, unique within the station.
        name -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Which tags a media item carries.
    media_tag_links (media_id, tag_id) {
        /// The media item.
        media_id -> Text,
        /// The tag.
        tag_id -> Text,
    }
}

diesel::table! {
    /// Rule-based track selection; `rules` is the JSON rule document (filters, quotas, separation).
    smart_blocks {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Name shown to people.
        name -> Text,
        /// Free text for people.
        description -> Nullable<Text>,
        /// JSON rule document: filters, quotas, separation.
        rules -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Hour templates made of clock slots.
    clock_hours {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Name shown to people.
        name -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// The elements of a clock hour, in `position` order: a smart block, a hard item, a stop set or a webstream.
    clock_slots {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The clock hour it is part of.
        clock_hour_id -> Text,
        /// Order within the clock hour, from 0.
        position -> Integer,
        /// `smart_block`, `hard_item`, `stopset` or `webstream`.
        kind -> Text,
        /// The smart block, for `smart_block` slots.
        smart_block_id -> Nullable<Text>,
        /// The media item, for `hard_item` slots.
        media_id -> Nullable<Text>,
        /// The webstream, for `webstream` slots.
        webstream_id -> Nullable<Text>,
        /// Planned length in milliseconds, when fixed.
        duration_ms -> Nullable<BigInt>,
        /// Whether the slot must start exactly on time.
        hard_start -> Bool,
        /// JSON object of further slot settings.
        options -> Text,
    }
}

diesel::table! {
    /// Scheduled programme blocks; `definition` is the JSON show document (repeat, times, content).
    shows {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Name shown to people.
        name -> Text,
        /// Free text for people.
        description -> Nullable<Text>,
        /// JSON show document: repeat rule, start and end, content.
        definition -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// The materialized schedule: what plays when, at which priority tier.
    schedule_entries {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// The mount, when it applies to one.
        mount_id -> Nullable<Text>,
        /// Start on air (UTC).
        starts_at -> Timestamp,
        /// End on air (UTC).
        ends_at -> Timestamp,
        /// Priority tier, 0 (emergency) to 4 (fallback).
        tier -> SmallInt,
        /// Kind of source: `media`, `live`, `webstream`, `fallback`, …
        source_type -> Text,
        /// Id of the source, when it has one.
        source_id -> Nullable<Text>,
        /// JSON object: cue points, fades and the provenance of the entry.
        metadata -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// What was played, for analytics and separation rules.
    play_history {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// The media item, while it still exists.
        media_id -> Nullable<Text>,
        /// Track title.
        title -> Text,
        /// Artist, when known.
        artist -> Nullable<Text>,
        /// When it went on air (UTC).
        started_at -> Timestamp,
        /// When it left the air (UTC); none while playing.
        ended_at -> Nullable<Timestamp>,
        /// JSON object of further details.
        metadata -> Text,
    }
}

diesel::table! {
    /// The media analyser work queue.
    analysis_jobs {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The media item to analyse.
        media_id -> Text,
        /// `pending`, `running`, `done` or `failed`.
        status -> Text,
        /// How many times it has been tried.
        attempts -> Integer,
        /// The last failure, if any.
        error -> Nullable<Text>,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Each station's executor: state, tier on air, current source, buffer depth, last heartbeat.
    executor_states {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// `idle`, `preloading`, `playing`, `fading`, `live` or `emergency`.
        state -> Text,
        /// Tier on air, 0 (emergency) to 4 (fallback).
        current_priority -> SmallInt,
        /// Id of the source on air, when it has one.
        current_source_id -> Nullable<Text>,
        /// Kind of source on air: `media`, `live`, `webstream`, `fallback`.
        current_source_type -> Nullable<Text>,
        /// Engine buffer depth in samples.
        buffer_depth -> BigInt,
        /// Last sign of life from the executor (UTC).
        last_heartbeat -> Timestamp,
        /// JSON object of further details.
        metadata -> Text,
    }
}

diesel::table! {
    /// Sources holding or waiting for the air at tiers 0-4 (emergency, live override, live scheduled, automation, fallback).
    priority_sources {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// The mount, when it applies to one.
        mount_id -> Nullable<Text>,
        /// 0 emergency, 1 live override, 2 live scheduled, 3 automation, 4 fallback.
        priority -> SmallInt,
        /// Kind of source: `media`, `live`, `webstream`, `fallback`, …
        source_type -> Text,
        /// Id of the source, when it has one.
        source_id -> Nullable<Text>,
        /// When it takes or may take the air (UTC).
        starts_at -> Timestamp,
        /// When it ends (UTC); none when indefinite.
        ends_at -> Nullable<Timestamp>,
        /// Whether it currently claims the air.
        active -> Bool,
        /// JSON object of further details.
        metadata -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// External HTTP/ICY streams with fallback URLs and health.
    webstreams {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Name shown to people.
        name -> Text,
        /// Primary stream URL.
        url -> Text,
        /// JSON list of backup URLs, tried in order.
        fallback_urls -> Text,
        /// JSON object of HTTP headers sent with the request.
        headers -> Text,
        /// `healthy`, `degraded` or `down`.
        health_state -> Text,
        /// When health was last checked (UTC).
        last_health_check -> Nullable<Timestamp>,
        /// JSON object of further details.
        metadata -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// Saved DSP configurations; `nodes` is the JSON list of processing nodes.
    dsp_graphs {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The station it belongs to.
        station_id -> Text,
        /// Name shown to people.
        name -> Text,
        /// Free text for people.
        description -> Nullable<Text>,
        /// JSON list of processing nodes (loudness, AGC, compressor, limiter, …) in order.
        nodes -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
        /// When it was applied to the station's engine; set on at most one graph per station.
        applied_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Import jobs from other systems (AzuraCast, LibreTime) and their progress.
    migration_jobs {
        /// Primary key: a UUID as text.
        id -> Text,
        /// System imported from: `azuracast` or `libretime`.
        source -> Text,
        /// `pending`, `running`, `complete` or `failed`.
        status -> Text,
        /// Percent done, 0 to 100.
        progress -> SmallInt,
        /// Items found in the import.
        items_total -> Integer,
        /// Items imported.
        items_done -> Integer,
        /// Items that could not be imported.
        items_failed -> Integer,
        /// JSON list of error messages.
        errors -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
        /// The backup the job reads: an absolute path on the server.
        backup_path -> Nullable<Text>,
        /// The user who asked for the import.
        created_by -> Nullable<Text>,
    }
}

diesel::table! {
    /// Hashed refresh tokens, grouped in rotation families.
    refresh_tokens {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The user it belongs to.
        user_id -> Text,
        /// Rotation family: every token issued from one login shares it.
        family_id -> Text,
        /// Hash of the token; the token itself is never stored.
        token_hash -> Text,
        /// When it was issued (UTC).
        issued_at -> Timestamp,
        /// When it stops being accepted (UTC).
        expires_at -> Timestamp,
        /// When it was exchanged for a new token (UTC); a second use revokes the family.
        used_at -> Nullable<Timestamp>,
        /// When it was revoked (UTC); none while valid.
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Event stream tickets presented, kept until they would have expired: a ticket is good
    /// once across every server sharing the database.
    spent_tickets (jti) {
        /// The ticket's id (its `jti` claim).
        jti -> Text,
        /// When the ticket expires (UTC); the row can go then.
        expires_at -> Timestamp,
    }
}

diesel::table! {
    /// API keys for integrations and webhooks: a public prefix and the hash of the secret.
    api_keys {
        /// Primary key: a UUID as text.
        id -> Text,
        /// The user the key acts for.
        user_id -> Text,
        /// The one station the key is limited to, if any.
        station_id -> Nullable<Text>,
        /// Name shown to people.
        name -> Text,
        /// Public part of the key, used to find it; unique.
        prefix -> Text,
        /// Hash of the secret part.
        secret_hash -> Text,
        /// Role the key acts with at its station: `manager` or `dj`.
        role -> Text,
        /// When the row was created (UTC).
        created_at -> Timestamp,
        /// When it stops being accepted (UTC).
        expires_at -> Nullable<Timestamp>,
        /// When it was last used (UTC).
        last_used_at -> Nullable<Timestamp>,
        /// When it was revoked (UTC); none while valid.
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Who changed what: schedule changes, priority overrides, user and key changes.
    audit_log {
        /// Primary key: a UUID as text.
        id -> Text,
        /// When it happened (UTC).
        occurred_at -> Timestamp,
        /// The user who acted, if a user did.
        actor_user_id -> Nullable<Text>,
        /// The API key that acted, if a key did.
        actor_api_key_id -> Nullable<Text>,
        /// The station concerned, if any.
        station_id -> Nullable<Text>,
        /// What was done, e.g. `schedule.update`, `priority.override`, `user.create`.
        action -> Text,
        /// Kind of thing acted on.
        target_type -> Text,
        /// Id of the thing acted on, if any.
        target_id -> Nullable<Text>,
        /// Request id of the API call, to find its logs.
        request_id -> Nullable<Text>,
        /// Client address.
        remote_addr -> Nullable<Text>,
        /// JSON object describing the change.
        details -> Text,
    }
}

diesel::table! {
    /// A station's programme settings as the planner models them: weekly grid, dated overrides,
    /// filler block, crossfade and trim fade, one JSON document per station.
    station_programmes (station_id) {
        /// The station it belongs to (also the primary key).
        station_id -> Text,
        /// JSON document: `grid`, `overrides`, `filler`, `crossfade`, `trim_fade`.
        settings -> Text,
        /// When the row was last changed (UTC).
        updated_at -> Timestamp,
    }
}

diesel::joinable!(station_users -> stations (station_id));
diesel::joinable!(station_users -> users (user_id));
diesel::joinable!(mounts -> stations (station_id));
diesel::joinable!(mounts -> encoder_presets (encoder_preset_id));
diesel::joinable!(media_items -> stations (station_id));
diesel::joinable!(tags -> stations (station_id));
diesel::joinable!(media_tag_links -> media_items (media_id));
diesel::joinable!(media_tag_links -> tags (tag_id));
diesel::joinable!(smart_blocks -> stations (station_id));
diesel::joinable!(clock_hours -> stations (station_id));
diesel::joinable!(clock_slots -> clock_hours (clock_hour_id));
diesel::joinable!(clock_slots -> smart_blocks (smart_block_id));
diesel::joinable!(clock_slots -> media_items (media_id));
diesel::joinable!(shows -> stations (station_id));
diesel::joinable!(schedule_entries -> stations (station_id));
diesel::joinable!(schedule_entries -> mounts (mount_id));
diesel::joinable!(play_history -> stations (station_id));
diesel::joinable!(play_history -> media_items (media_id));
diesel::joinable!(analysis_jobs -> media_items (media_id));
diesel::joinable!(executor_states -> stations (station_id));
diesel::joinable!(priority_sources -> stations (station_id));
diesel::joinable!(priority_sources -> mounts (mount_id));
diesel::joinable!(webstreams -> stations (station_id));
diesel::joinable!(dsp_graphs -> stations (station_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(api_keys -> stations (station_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    stations,
    station_users,
    encoder_presets,
    mounts,
    media_items,
    tags,
    media_tag_links,
    smart_blocks,
    clock_hours,
    clock_slots,
    shows,
    schedule_entries,
    play_history,
    analysis_jobs,
    executor_states,
    priority_sources,
    webstreams,
    dsp_graphs,
    migration_jobs,
    refresh_tokens,
    spent_tickets,
    api_keys,
    audit_log,
);
