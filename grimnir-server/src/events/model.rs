//! The events themselves and the envelope every event travels in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which kind of event: the `type` tag on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventType {
    /// An item went on air.
    NowPlaying,
    /// A source failed: a live input disconnected, a webstream went down.
    SourceFailure,
    /// The engine's buffer depth and dropout count.
    BufferHealth,
    /// Loudness of what goes on air.
    LoudnessMetrics,
    /// Dead air.
    SilenceDetected,
    /// The state of one output (a mount, an HLS or recording sink).
    OutputHealth,
    /// Another source took the air.
    PriorityChange,
    /// A media item was uploaded, analysed, changed or deleted.
    MediaChanged,
}

impl EventType {
    /// Every type, in declaration order.
    pub const ALL: [EventType; 8] = [
        EventType::NowPlaying,
        EventType::SourceFailure,
        EventType::BufferHealth,
        EventType::LoudnessMetrics,
        EventType::SilenceDetected,
        EventType::OutputHealth,
        EventType::PriorityChange,
        EventType::MediaChanged,
    ];

    /// The name on the wire, in subjects and channels, and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NowPlaying => "now_playing",
            EventType::SourceFailure => "source_failure",
            EventType::BufferHealth => "buffer_health",
            EventType::LoudnessMetrics => "loudness_metrics",
            EventType::SilenceDetected => "silence_detected",
            EventType::OutputHealth => "output_health",
            EventType::PriorityChange => "priority_change",
            EventType::MediaChanged => "media_changed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event type {name:?}; expected one of now_playing, source_failure, buffer_health, loudness_metrics, silence_detected, output_health, priority_change, media_changed"
)]
pub struct UnknownEventType {
    /// The name given.
    pub name: String,
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType { name: s.to_owned() })
    }
}

/// A tier of the priority ladder, by the names `grimnir-planner` and `grimnir-priority` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 0: emergency alerts.
    Emergency,
    /// 1: a DJ taking over.
    LiveOverride,
    /// 2: a booked live show.
    LiveScheduled,
    /// 3: the planned timeline.
    Automation,
    /// 4: the station's fallback audio.
    Fallback,
}

impl Tier {
    /// The tier's number: 0 (emergency) to 4 (fallback); lower wins.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// A source on the priority ladder, as far as a listener of events needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Its tier.
    pub tier: Tier,
    /// What kind of input: `media`, `webstream`, `live_icecast`, `emergency_audio`, …
    pub source_type: String,
    /// The priority source's or webstream's id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

/// `now_playing`: an item went on air.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NowPlaying {
    /// The schedule entry that put it on air, if it came from the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<Uuid>,
    /// The media item, if it is one (a webstream or live source has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<Uuid>,
    /// Title as announced.
    pub title: String,
    /// Artist as announced; empty for station IDs and the like.
    #[serde(default)]
    pub artist: String,
    /// Album, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<String>,
    /// When it went on air.
    pub started_at: DateTime<Utc>,
    /// How long it plays (cue in to cue out), in milliseconds; `None` for a live source or a
    /// webstream with no end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `source_failure`: a source stopped delivering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFailure {
    /// The source that failed.
    pub source: SourceRef,
    /// What went wrong, for people.
    pub reason: String,
}

/// `buffer_health`: the engine's playout buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferHealth {
    /// Audio queued ahead of the output, in samples per channel.
    pub depth_samples: u64,
    /// The sample rate the depth is counted at.
    pub sample_rate: u32,
    /// Dropouts since the engine started.
    pub dropouts: u64,
}

/// `loudness_metrics`: EBU R128 loudness of what goes on air.
///
/// A value is `None` (`null` on the wire) where there is no finite measurement: before the
/// first 400 ms, and for silence, which measures −∞ LUFS. JSON has no infinity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoudnessMetrics {
    /// Momentary loudness (400 ms window), LUFS.
    pub momentary_lufs: Option<f64>,
    /// Short-term loudness (3 s window), LUFS.
    pub short_term_lufs: Option<f64>,
    /// Integrated loudness since the engine started measuring, LUFS.
    pub integrated_lufs: Option<f64>,
    /// Maximum true peak of the last measuring period, dBTP.
    pub true_peak_dbtp: Option<f64>,
}

impl LoudnessMetrics {
    /// From a meter's readings, mapping anything not finite (−∞ for silence, NaN) to `None`.
    pub fn from_readings(momentary: f64, short_term: f64, integrated: f64, true_peak: f64) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        LoudnessMetrics {
            momentary_lufs: finite(momentary),
            short_term_lufs: finite(short_term),
            integrated_lufs: finite(integrated),
            true_peak_dbtp: finite(true_peak),
        }
    }
}

/// `silence_detected`: dead air on the station's programme output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SilenceDetected {
    /// How long the output has been silent, in milliseconds.
    pub duration_ms: u64,
    /// The level below which audio counts as silence, dBFS.
    pub threshold_dbfs: f64,
}

/// The state of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStatus {
    /// Delivering.
    Up,
    /// Delivering with trouble (reconnecting, falling behind).
    Degraded,
    /// Not delivering.
    Down,
}

/// `output_health`: one output of a station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputHealth {
    /// The output: a mount's id, or the engine's name for an HLS or recording sink.
    pub output_id: String,
    /// Its state.
    pub status: OutputStatus,
    /// Bytes delivered since the output started.
    pub bytes_sent: u64,
    /// Why it is degraded or down, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `priority_change`: another source took the air.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityChange {
    /// What was on air; `None` when nothing was (the executor was idle).
    pub from: Option<SourceRef>,
    /// What is on air now.
    pub to: SourceRef,
    /// Why, for people: `emergency activated`, `live override ended`, …
    pub reason: String,
}

/// What happened to a media item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaChange {
    /// Uploaded; its analysis is queued.
    Uploaded,
    /// Analysed: length, loudness and cue points are known.
    Analysed,
    /// The analyser gave up on it.
    AnalysisFailed,
    /// Its metadata, cue points or tags were changed.
    Updated,
    /// Deleted.
    Deleted,
}

/// `media_changed`: a station's media library changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaChanged {
    /// The media item.
    pub media_id: Uuid,
    /// What happened to it.
    pub change: MediaChange,
}

/// An event with its data, tagged by its type (`"type"` and `"data"` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// See [`NowPlaying`].
    NowPlaying(NowPlaying),
    /// See [`SourceFailure`].
    SourceFailure(SourceFailure),
    /// See [`BufferHealth`].
    BufferHealth(BufferHealth),
    /// See [`LoudnessMetrics`].
    LoudnessMetrics(LoudnessMetrics),
    /// See [`SilenceDetected`].
    SilenceDetected(SilenceDetected),
    /// See [`OutputHealth`].
    OutputHealth(OutputHealth),
    /// See [`PriorityChange`].
    PriorityChange(PriorityChange),
    /// See [`MediaChanged`].
    MediaChanged(MediaChanged),
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Event::NowPlaying(_) => EventType::NowPlaying,
            Event::SourceFailure(_) => EventType::SourceFailure,
            Event::BufferHealth(_) => EventType::BufferHealth,
            Event::LoudnessMetrics(_) => EventType::LoudnessMetrics,
            Event::SilenceDetected(_) => EventType::SilenceDetected,
            Event::OutputHealth(_) => EventType::OutputHealth,
            Event::PriorityChange(_) => EventType::PriorityChange,
            Event::MediaChanged(_) => EventType::MediaChanged,
        }
    }
}

/// One event as it travels: on the bus, over WebSocket and SSE.
///
/// ```json
/// {"id":"…","station_id":"…","time":"2026-11-24T18:00:00.123Z","origin":"…",
///  "type":"now_playing","data":{"title":"…","artist":"…","started_at":"…","duration_ms":215000}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The event's own id; unique, so a client can tell a repeat.
    pub id: Uuid,
    /// The station it is about.
    pub station_id: Uuid,
    /// When it happened (UTC, RFC 3339 with milliseconds or finer).
    pub time: DateTime<Utc>,
    /// The server instance that published it.
    pub origin: Uuid,
    /// The event, which adds `type` and `data`.
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    /// A new envelope with a fresh id, stamped now.
    pub fn new(station_id: Uuid, origin: Uuid, event: Event) -> Self {
        Envelope {
            id: Uuid::new_v4(),
            station_id,
            time: Utc::now(),
            origin,
            event,
        }
    }

    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.event.event_type()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn station() -> Uuid {
        Uuid::parse_str("6f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f").unwrap()
    }

    fn origin() -> Uuid {
        Uuid::parse_str("0e7d5b2a-1111-4222-8333-444455556666").unwrap()
    }

    fn at(envelope_event: Event) -> Envelope {
        Envelope {
            id: Uuid::parse_str("a3bb189e-8bf9-3888-9912-ace4e6543002").unwrap(),
            station_id: station(),
            time: Utc.with_ymd_and_hms(2026, 11, 24, 18, 0, 0).unwrap(),
            origin: origin(),
            event: envelope_event,
        }
    }

    fn sources() -> (SourceRef, SourceRef) {
        (
            SourceRef {
                tier: Tier::Automation,
                source_type: "media".to_owned(),
                source_id: None,
            },
            SourceRef {
                tier: Tier::Emergency,
                source_type: "emergency_audio".to_owned(),
                source_id: Some("eas-1".to_owned()),
            },
        )
    }

    fn every_event() -> Vec<Event> {
        let (automation, emergency) = sources();
        vec![
            Event::NowPlaying(NowPlaying {
                entry_id: Some(Uuid::nil()),
                media_id: Some(station()),
                title: "Träumerei".to_owned(),
                artist: "Schumann".to_owned(),
                album: None,
                started_at: Utc.with_ymd_and_hms(2026, 11, 24, 17, 59, 58).unwrap(),
                duration_ms: Some(215_000),
            }),
            Event::SourceFailure(SourceFailure {
                source: emergency.clone(),
                reason: "connection reset".to_owned(),
            }),
            Event::BufferHealth(BufferHealth {
                depth_samples: 96_000,
                sample_rate: 48_000,
                dropouts: 2,
            }),
            Event::LoudnessMetrics(LoudnessMetrics::from_readings(
                -23.5,
                -22.0,
                f64::NEG_INFINITY,
                -1.25,
            )),
            Event::SilenceDetected(SilenceDetected {
                duration_ms: 5_000,
                threshold_dbfs: -60.0,
            }),
            Event::OutputHealth(OutputHealth {
                output_id: "main-mp3".to_owned(),
                status: OutputStatus::Degraded,
                bytes_sent: 1 << 33,
                message: Some("reconnecting".to_owned()),
            }),
            Event::PriorityChange(PriorityChange {
                from: Some(automation),
                to: emergency,
                reason: "emergency activated".to_owned(),
            }),
            Event::MediaChanged(MediaChanged {
                media_id: Uuid::from_u128(7),
                change: MediaChange::Analysed,
            }),
        ]
    }

    #[test]
    fn every_event_round_trips_and_carries_its_type_tag() {
        let events = every_event();
        assert_eq!(events.len(), EventType::ALL.len());
        for (event, expected) in events.into_iter().zip(EventType::ALL) {
            assert_eq!(event.event_type(), expected);
            let envelope = at(event);
            let text = serde_json::to_string(&envelope).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["type"], expected.as_str(), "{text}");
            assert!(value["data"].is_object(), "{text}");
            let back: Envelope = serde_json::from_str(&text).unwrap();
            assert_eq!(back, envelope);
        }
    }

    #[test]
    fn the_wire_format_is_pinned() {
        let (automation, emergency) = sources();
        let envelope = at(Event::PriorityChange(PriorityChange {
            from: Some(automation),
            to: emergency,
            reason: "emergency activated".to_owned(),
        }));
        assert_eq!(
            serde_json::to_value(&envelope).unwrap(),
            json!({
                "id": "a3bb189e-8bf9-3888-9912-ace4e6543002",
                "station_id": "6f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f",
                "time": "2026-11-24T18:00:00Z",
                "origin": "0e7d5b2a-1111-4222-8333-444455556666",
                "type": "priority_change",
                "data": {
                    "from": {"tier": "automation", "source_type": "media"},
                    "to": {"tier": "emergency", "source_type": "emergency_audio", "source_id": "eas-1"},
                    "reason": "emergency activated"
                }
            })
        );
        let now_playing = at(Event::NowPlaying(NowPlaying {
            entry_id: None,
            media_id: None,
            title: "Live from Studio B".to_owned(),
            artist: String::new(),
            album: None,
            started_at: Utc.with_ymd_and_hms(2026, 11, 24, 18, 0, 0).unwrap(),
            duration_ms: None,
        }));
        assert_eq!(
            serde_json::to_value(&now_playing).unwrap()["data"],
            json!({"title": "Live from Studio B", "artist": "", "started_at": "2026-11-24T18:00:00Z"})
        );
    }

    #[test]
    fn silence_measures_as_null_not_as_a_number_json_lacks() {
        let metrics = LoudnessMetrics::from_readings(f64::NEG_INFINITY, f64::NAN, -23.0, -0.5);
        let value = serde_json::to_value(metrics).unwrap();
        assert_eq!(
            value,
            json!({"momentary_lufs": null, "short_term_lufs": null, "integrated_lufs": -23.0, "true_peak_dbtp": -0.5})
        );
        let back: LoudnessMetrics = serde_json::from_value(value).unwrap();
        assert_eq!(back, metrics);
    }

    #[test]
    fn unknown_fields_are_tolerated_and_unknown_types_refused() {
        let mut value = serde_json::to_value(at(every_event().remove(2))).unwrap();
        value["future_field"] = json!(1);
        value["data"]["future_field"] = json!("x");
        let back: Envelope = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back.event_type(), EventType::BufferHealth);
        value["type"] = json!("weather");
        assert!(serde_json::from_value::<Envelope>(value).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_now_playing_round_trips(
            title in ".*",
            artist in ".*",
            album in proptest::option::of(".*"),
            duration_ms in proptest::option::of(proptest::num::u64::ANY),
            secs in 0i64..8_000_000_000,
            nanos in 0u32..1_000_000_000,
        ) {
            let started_at = DateTime::from_timestamp(secs, nanos).unwrap();
            let envelope = at(Event::NowPlaying(NowPlaying {
                entry_id: None,
                media_id: Some(Uuid::from_u128(u128::from(nanos))),
                title,
                artist,
                album,
                started_at,
                duration_ms,
            }));
            let text = serde_json::to_string(&envelope).unwrap();
            let back: Envelope = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back, envelope);
        }

        #[test]
        fn finite_loudness_round_trips(
            m in proptest::num::f64::ANY,
            s in proptest::num::f64::ANY,
            i in proptest::num::f64::ANY,
            tp in proptest::num::f64::ANY,
        ) {
            let metrics = LoudnessMetrics::from_readings(m, s, i, tp);
            let text = serde_json::to_string(&metrics).unwrap();
            let back: LoudnessMetrics = serde_json::from_str(&text).unwrap();
            // serde_json writes the shortest exact form but, without its `float_roundtrip`
            // feature, may read the last bit back differently (subnormals included); the
            // forwarded text is exact.
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= a.abs() * 1e-15 + f64::MIN_POSITIVE,
                (None, None) => true,
                _ => false,
            };
            proptest::prop_assert!(close(back.momentary_lufs, metrics.momentary_lufs));
            proptest::prop_assert!(close(back.short_term_lufs, metrics.short_term_lufs));
            proptest::prop_assert!(close(back.integrated_lufs, metrics.integrated_lufs));
            proptest::prop_assert!(close(back.true_peak_dbtp, metrics.true_peak_dbtp));
        }
    }

    #[test]
    fn type_names_parse_back() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        let err = "Now_Playing".parse::<EventType>().unwrap_err();
        assert_eq!(err.name, "Now_Playing");
        assert_eq!(Tier::Emergency.level(), 0);
        assert_eq!(Tier::Fallback.level(), 4);
    }
}
