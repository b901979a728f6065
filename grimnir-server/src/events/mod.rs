//! The real-time event stream: the events, their wire format, and the bus that carries them
//! between server instances.
//!
//! - [`model`]: the seven event types of SPEC.md "Real-Time Event Stream", `media_changed`, and
//!   the [`Envelope`].
//! - [`EventBus`]: publish and subscribe, in process (`memory`, the default), or across
//!   instances over NATS or Redis pub/sub, chosen by [`EventBusUrl`].
//! - [`EventFilter`] and [`EventScope`]: which events a subscriber gets, and may get.
//!
//! The HTTP side (WebSocket at `GET /api/v1/events`, SSE at `GET /api/v1/events/stream`) is
//! [`crate::http::events`].
//!
//! # Publishing
//!
//! Any part of the server holding the [`EventBus`] publishes with
//! [`EventBus::publish`]`(station_id, event)`. It never waits: the event reaches this
//! instance's subscribers at once and is queued for the bus; when the bus is down it returns a
//! [`PublishError`] (counted in `grimnir_events_publish_failures_total`) that the caller may
//! ignore — playout never depends on the bus.
//!
//! # Wire format
//!
//! One JSON object per event, the same on NATS, Redis, WebSocket (one text frame each) and SSE
//! (the `data:` of an SSE event named after the type, with the event's id as SSE `id:`):
//!
//! ```json
//! {
//!   "id": "a3bb189e-8bf9-3888-9912-ace4e6543002",
//!   "station_id": "6f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f",
//!   "time": "2026-11-24T18:00:00.123Z",
//!   "origin": "0e7d5b2a-1111-4222-8333-444455556666",
//!   "type": "now_playing",
//!   "data": { "title": "Träumerei", "artist": "Schumann", "started_at": "2026-11-24T18:00:00Z", "duration_ms": 215000 }
//! }
//! ```
//!
//! | field | meaning |
//! | --- | --- |
//! | `id` | the event's UUID, unique |
//! | `station_id` | the station it is about |
//! | `time` | when it happened, RFC 3339 UTC |
//! | `origin` | the UUID of the server instance that published it |
//! | `type` | one of the types below |
//! | `data` | the type's fields |
//!
//! | `type` | `data` |
//! | --- | --- |
//! | `now_playing` | `title`, `artist`, `started_at`; optional `entry_id`, `media_id`, `album`, `duration_ms` |
//! | `source_failure` | `source` (a source: `tier`, `source_type`, optional `source_id`), `reason` |
//! | `buffer_health` | `depth_samples`, `sample_rate`, `dropouts` (since the engine started) |
//! | `loudness_metrics` | `momentary_lufs`, `short_term_lufs`, `integrated_lufs`, `true_peak_dbtp` (each `null` when not finite: silence is −∞ LUFS) |
//! | `silence_detected` | `duration_ms`, `threshold_dbfs` |
//! | `output_health` | `output_id`, `status` (`up`, `degraded`, `down`), `bytes_sent`; optional `message` |
//! | `priority_change` | `from` (a source or `null`), `to` (a source), `reason` |
//! | `media_changed` | `media_id`, `change` (`uploaded`, `analysed`, `analysis_failed`, `updated`, `deleted`) |
//!
//! Tiers are named `emergency`, `live_override`, `live_scheduled`, `automation`, `fallback`.
//! Optional fields are left out when empty. Compatibility: fields and types may be added, so
//! readers ignore fields they do not know; nothing is renamed or removed without a new major
//! version of this crate.
//!
//! The streams add one notice of their own: `{"type":"lagged","missed":N}` when a client fell
//! behind by more than the buffer and `N` events were skipped for it.
//!
//! # Subjects and channels
//!
//! Each event is published to `<prefix>.<station_id>.<type>` (prefix `grimnir.events` by
//! default), as a NATS subject and as a Redis channel, so other services filter on the server:
//! `grimnir.events.<station>.>` (NATS) or `PSUBSCRIBE grimnir.events.<station>.*` (Redis) for
//! one station, `grimnir.events.*.now_playing` (NATS) for one type. On NATS an instance also
//! sends an empty message to `<prefix>._probe.<instance>` after subscribing, to learn when the
//! server has its subscription; readers of `<prefix>.>` skip the `_probe` subjects.

mod bus;
pub mod filter;
pub mod model;
mod nats;
mod redis;

pub use bus::{
    BUFFER_RANGE, BusError, BusUrlError, Delivery, EventBus, EventBusConfig, EventBusUrl,
    PublishError, RecvError, SubjectPrefix, Subscription,
};
pub use filter::{EventFilter, EventScope, FilterError};
pub use model::{
    BufferHealth, Envelope, Event, EventType, LoudnessMetrics, MediaChange, MediaChanged,
    NowPlaying, OutputHealth, OutputStatus, PriorityChange, SilenceDetected, SourceFailure,
    SourceRef, Tier, UnknownEventType,
};
