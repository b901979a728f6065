//! Declarative station files: one YAML file per station, read from the stations directory.
//!
//! A station file is data, not code (SPEC.md, "Configuration"): the station, its mounts and
//! their outputs, its DSP graph, its failover policy and the priority ladder.
//!
//! ```yaml
//! station:
//!   id: "0b9f3f0e-5c7a-4d8e-9a51-7d4f1c2b3a10"
//!   name: "WGMR FM"
//!   timezone: "America/New_York"
//! mounts:
//!   - id: "main"
//!     name: "Main Stream 128k MP3"
//!     outputs:
//!       - type: icecast
//!         url: "icecast://source:hackme@localhost:8000/stream"
//!         format: mp3
//!         bitrate_kbps: 128
//! dsp_graph:
//!   nodes:
//!     - type: limiter
//!       config: { threshold_db: -1.0 }
//! failover:
//!   live_timeout_sec: 30
//! ```
//!
//! Every file is validated when it is read: [`parse`] refuses unknown keys, impossible values
//! (a time zone that does not exist, a bitrate of 0, a DSP parameter out of range, a priority
//! ladder in another order) and duplicate ids, with a [`StationFileError`] that names the
//! file, the line and column, and the field (`mounts[0].outputs[1].bitrate_kbps`).
//!
//! [`apply`] writes a valid file into the database: the station (created or updated under the
//! file's id), its mounts (the file's set replaces the station's), its DSP graph and the
//! file's settings. [`Watcher`] checks the directory every few seconds and applies each file
//! that changed while the server runs; a file that no longer validates is reported and the
//! station keeps what was applied before. A file that disappears leaves its station in the
//! database: removing configuration never deletes a station's data.
//!
//! While a file declares a station, what the file declares is the file's: the API answers 409
//! `managed_by_file` to changes of the station's settings, its deletion, its mounts, the
//! file's DSP graph and the choice of applied graph ([`declared_by`]). When the file is
//! removed, the station becomes the API's to change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::bare_message;
use crate::db::schema::{dsp_graphs, mounts, stations};
use crate::db::{Database, DbConnection, StorageError};
use crate::yaml_paths;

/// The bitrate of a lossy output whose file gives none, kbit/s.
pub const DEFAULT_BITRATE_KBPS: u32 = 128;

/// The largest station file read, bytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A station file, as read and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationFile {
    /// The station itself.
    pub station: StationSpec,
    /// Its mounts: each a stream with the outputs it goes to.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Its processing chain; `None` keeps the audio as it is.
    #[serde(default)]
    pub dsp_graph: Option<grimnir_dsp::DspGraph>,
    /// What happens when a source fails.
    #[serde(default)]
    pub failover: Failover,
    /// The priority ladder. It is fixed; the file may state it, but not reorder it.
    #[serde(default)]
    pub priorities: Priorities,
}

/// The `station` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationSpec {
    /// The station's id: a UUID, the same in every file revision.
    pub id: uuid::Uuid,
    /// The name shown to people.
    pub name: String,
    /// IANA time zone name (`Europe/Oslo`).
    pub timezone: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// One mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// The mount's id, unique in the database: 1–36 letters, digits, `-` or `_`.
    pub id: String,
    /// The name shown to people.
    pub name: String,
    /// Where the mount's stream goes; at least one.
    pub outputs: Vec<OutputSpec>,
}

/// An encoded stream format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// MPEG-1 Layer III.
    Mp3,
    /// AAC-LC.
    Aac,
    /// Opus in Ogg.
    Opus,
    /// FLAC (lossless).
    Flac,
}

/// One output of a mount, tagged by `type` in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputSpec {
    /// A source connection to an Icecast server.
    Icecast(IcecastOutput),
    /// HTTP Live Streaming: segments and a playlist in a directory.
    Hls(HlsOutput),
    /// Recordings to timestamped files, rotated and kept by age and size.
    Recording(RecordingOutput),
}

/// `type: icecast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcecastOutput {
    /// `icecast://user:password@host:port/mount`.
    pub url: String,
    /// The stream's format.
    pub format: Format,
    /// Its bitrate, kbit/s (not for FLAC; lossy formats default to [`DEFAULT_BITRATE_KBPS`]).
    #[serde(default)]
    pub bitrate_kbps: Option<u32>,
    /// Channels: 1 or 2.
    #[serde(default = "two")]
    pub channels: u8,
    /// Sample rate, Hz.
    #[serde(default = "rate_48k")]
    pub sample_rate: u32,
}

/// `type: hls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsOutput {
    /// The directory.
    pub path: PathBuf,
    /// The stream's format (MP3 or AAC).
    #[serde(default = "aac")]
    pub format: Format,
    /// Its bitrate, kbit/s ([`DEFAULT_BITRATE_KBPS`] when not given).
    #[serde(default)]
    pub bitrate_kbps: Option<u32>,
    /// Seconds per segment.
    #[serde(default = "four")]
    pub segment_duration_sec: f64,
    /// Segments in the live playlist.
    #[serde(default = "six")]
    pub playlist_size: u32,
}

/// `type: recording`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingOutput {
    /// The directory.
    pub path: PathBuf,
    /// The recording's format.
    pub format: Format,
    /// Its bitrate, kbit/s (not for FLAC; lossy formats default to [`DEFAULT_BITRATE_KBPS`]).
    #[serde(default)]
    pub bitrate_kbps: Option<u32>,
    /// Recordings older than this many days are deleted.
    #[serde(default)]
    pub rotation_days: Option<u32>,
    /// The recordings' total size is kept under this, GB.
    #[serde(default)]
    pub max_size_gb: Option<f64>,
}

impl<'de> Deserialize<'de> for OutputSpec {
    /// Reads the `type`, then the rest as that type's fields, so that a mistake inside an
    /// output is reported with the field's own name (serde's internally tagged enums lose it).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OutputSpec, D::Error> {
        use serde::de::Error;
        use serde_yaml_ng::Value;
        let Value::Mapping(mut fields) = Value::deserialize(d)? else {
            return Err(D::Error::custom("an output is a mapping with a `type`"));
        };
        let kind = match fields.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(D::Error::custom("type: must be a name")),
            None => return Err(D::Error::missing_field("type")),
        };
        let fields = Value::Mapping(fields);
        fn inner<T: serde::de::DeserializeOwned, E: Error>(fields: Value) -> Result<T, E> {
            serde_path_to_error::deserialize(fields).map_err(|e| {
                let field = e.path().to_string();
                let message = e.into_inner().to_string();
                E::custom(format!("{field}: {}", bare_message(&message, &field)))
            })
        }
        match kind.as_str() {
            "icecast" => inner(fields).map(OutputSpec::Icecast),
            "hls" => inner(fields).map(OutputSpec::Hls),
            "recording" => inner(fields).map(OutputSpec::Recording),
            other => Err(D::Error::custom(format!(
                "type: unknown variant `{other}`, expected one of `icecast`, `hls`, `recording`"
            ))),
        }
    }
}

fn two() -> u8 {
    2
}
fn rate_48k() -> u32 {
    48_000
}
fn aac() -> Format {
    Format::Aac
}
fn four() -> f64 {
    4.0
}
fn six() -> u32 {
    6
}

/// The `failover` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Failover {
    /// How long a dropped live source keeps its claim on the air, seconds.
    pub live_timeout_sec: f64,
    /// Whether automation takes over when live sources end.
    pub automation_fallback_enabled: bool,
    /// What plays when nothing else can: a file.
    pub fallback_audio_path: Option<PathBuf>,
    /// Whether that file loops.
    pub fallback_audio_loop: bool,
}

impl Default for Failover {
    fn default() -> Failover {
        Failover {
            live_timeout_sec: 30.0,
            automation_fallback_enabled: true,
            fallback_audio_path: None,
            fallback_audio_loop: true,
        }
    }
}

/// The `priorities` section: the five tiers of the ladder, which cannot be reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Priorities {
    /// Emergency alerts: 0.
    pub emergency: u8,
    /// Live overrides: 1.
    pub live_override: u8,
    /// Scheduled live shows: 2.
    pub live_scheduled: u8,
    /// Automation: 3.
    pub automation: u8,
    /// Fallback: 4.
    pub fallback: u8,
}

impl Default for Priorities {
    fn default() -> Priorities {
        Priorities {
            emergency: 0,
            live_override: 1,
            live_scheduled: 2,
            automation: 3,
            fallback: 4,
        }
    }
}

/// Why a station file, or the stations directory, could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StationFileError {
    /// A file or the directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file is not a valid station file.
    #[error("{}{}: {}{message}", path.display(), location(*line, *column), prefix(field))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column of the problem, when known.
        column: Option<usize>,
        /// Path of the offending field (`mounts[0].outputs[1].bitrate_kbps`); empty for the
        /// document itself.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The database refused the station.
    #[error("{}: {source}", path.display())]
    Storage {
        /// The file.
        path: PathBuf,
        /// What the database said.
        source: StorageError,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

fn prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// A field path and what is wrong with its value.
type Problem = (String, String);

/// Reads and validates the station file at `path`.
pub fn read(path: &Path) -> Result<StationFile, StationFileError> {
    let text = read_text(path)?;
    parse(path, &text)
}

fn read_text(path: &Path) -> Result<String, StationFileError> {
    let read_error = |source| StationFileError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(invalid(
            path,
            None,
            String::new(),
            format!("the file is {size} bytes; a station file may hold at most {MAX_FILE_BYTES}"),
        ));
    }
    std::fs::read_to_string(path).map_err(read_error)
}

fn invalid(
    path: &Path,
    at: Option<yaml_paths::Position>,
    field: String,
    message: String,
) -> StationFileError {
    StationFileError::Invalid {
        path: path.to_owned(),
        line: at.map(|(line, _)| line),
        column: at.map(|(_, column)| column),
        field,
        message,
    }
}

/// Parses and validates the YAML `text` of the station file at `path` (the path only names
/// the file in errors).
pub fn parse(path: &Path, text: &str) -> Result<StationFile, StationFileError> {
    let positions = yaml_paths::index(text);
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let file: StationFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = e.into_inner();
        let mut message = bare_message(&inner.to_string(), &field);
        // An output's own field comes inside the message (see `OutputSpec`'s Deserialize).
        let mut field = field;
        let inside = message.split_once(": ").and_then(|(head, rest)| {
            let is_path = !head.is_empty()
                && head
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.[]".contains(&b));
            is_path.then(|| (head.to_owned(), rest.to_owned()))
        });
        if let Some((head, rest)) = inside {
            field = format!("{field}.{head}");
            message = rest;
        }
        let at = yaml_paths::locate(&positions, &field).or_else(|| {
            inner
                .location()
                .map(|l| (l.line(), l.column()))
                .filter(|_| field.is_empty())
        });
        invalid(path, at, field, message)
    })?;
    file.validate().map_err(|(field, message)| {
        invalid(path, yaml_paths::locate(&positions, &field), field, message)
    })?;
    Ok(file)
}

impl StationFile {
    /// Checks what the types alone cannot: names, ranges, ids, the ladder, the DSP graph.
    fn validate(&self) -> Result<(), Problem> {
        let problem = |field: &str, message: &str| Err((field.to_owned(), message.to_owned()));
        if self.station.id.is_nil() {
            return problem("station.id", "the nil UUID is not a station id");
        }
        if self.station.name.trim().is_empty() || self.station.name.len() > 255 {
            return problem("station.name", "must be 1 to 255 characters, not blank");
        }
        if self.station.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err((
                "station.timezone".into(),
                format!(
                    "{:?} is not an IANA time zone name such as Europe/Oslo",
                    self.station.timezone
                ),
            ));
        }
        let mut ids = HashSet::new();
        for (m, mount) in self.mounts.iter().enumerate() {
            let at = |field: &str| format!("mounts[{m}].{field}");
            let good_id = !mount.id.is_empty()
                && mount.id.len() <= 36
                && mount
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !good_id {
                return Err((
                    at("id"),
                    format!(
                        "{:?}: a mount id is 1 to 36 letters, digits, `-` or `_`",
                        mount.id
                    ),
                ));
            }
            if !ids.insert(mount.id.as_str()) {
                return Err((
                    at("id"),
                    format!("{:?} is already the id of another mount", mount.id),
                ));
            }
            if mount.name.trim().is_empty() || mount.name.len() > 255 {
                return Err((at("name"), "must be 1 to 255 characters, not blank".into()));
            }
            if mount.outputs.is_empty() {
                return Err((at("outputs"), "a mount needs at least one output".into()));
            }
            for (o, output) in mount.outputs.iter().enumerate() {
                output
                    .validate()
                    .map_err(|(field, message)| (at(&format!("outputs[{o}].{field}")), message))?;
            }
        }
        if let Some(graph) = &self.dsp_graph {
            graph.validate().map_err(|e| match e {
                grimnir_dsp::DspError::InvalidParameter {
                    node,
                    field,
                    value,
                    reason,
                    ..
                } => (
                    format!("dsp_graph.nodes[{node}].config.{field}"),
                    format!("{value}: {reason}"),
                ),
                other => ("dsp_graph".to_owned(), other.to_string()),
            })?;
        }
        let f = &self.failover;
        if !(f.live_timeout_sec > 0.0 && f.live_timeout_sec <= 3600.0) {
            return Err((
                "failover.live_timeout_sec".into(),
                format!(
                    "{}: must be above 0 and at most 3600 seconds",
                    f.live_timeout_sec
                ),
            ));
        }
        if f.fallback_audio_path
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return problem("failover.fallback_audio_path", "an empty path");
        }
        let ladder = Priorities::default();
        let p = &self.priorities;
        for (field, got, want) in [
            ("emergency", p.emergency, ladder.emergency),
            ("live_override", p.live_override, ladder.live_override),
            ("live_scheduled", p.live_scheduled, ladder.live_scheduled),
            ("automation", p.automation, ladder.automation),
            ("fallback", p.fallback, ladder.fallback),
        ] {
            if got != want {
                return Err((
                    format!("priorities.{field}"),
                    format!(
                        "{got}: the ladder is fixed (emergency 0, live_override 1, \
                         live_scheduled 2, automation 3, fallback 4); {field} is {want}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl OutputSpec {
    fn validate(&self) -> Result<(), Problem> {
        let (format, bitrate) = match self {
            OutputSpec::Icecast(IcecastOutput {
                url,
                format,
                bitrate_kbps,
                channels,
                sample_rate,
            }) => {
                check_icecast_url(url).map_err(|m| ("url".to_owned(), m))?;
                if !(1..=2).contains(channels) {
                    return Err(("channels".into(), format!("{channels}: 1 or 2")));
                }
                const RATES: [u32; 6] = [22_050, 24_000, 32_000, 44_100, 48_000, 96_000];
                if !RATES.contains(sample_rate) {
                    return Err((
                        "sample_rate".into(),
                        format!("{sample_rate}: one of {RATES:?} Hz"),
                    ));
                }
                (*format, *bitrate_kbps)
            }
            OutputSpec::Hls(HlsOutput {
                path,
                format,
                bitrate_kbps,
                segment_duration_sec,
                playlist_size,
            }) => {
                check_dir(path)?;
                if !matches!(format, Format::Mp3 | Format::Aac) {
                    return Err(("format".into(), "HLS carries mp3 or aac".into()));
                }
                if !(1.0..=60.0).contains(segment_duration_sec) {
                    return Err((
                        "segment_duration_sec".into(),
                        format!("{segment_duration_sec}: 1 to 60 seconds"),
                    ));
                }
                if !(2..=100).contains(playlist_size) {
                    return Err((
                        "playlist_size".into(),
                        format!("{playlist_size}: 2 to 100 segments"),
                    ));
                }
                (*format, *bitrate_kbps)
            }
            OutputSpec::Recording(RecordingOutput {
                path,
                format,
                bitrate_kbps,
                rotation_days,
                max_size_gb,
            }) => {
                check_dir(path)?;
                if *rotation_days == Some(0) {
                    return Err(("rotation_days".into(), "0: at least 1 day".into()));
                }
                if max_size_gb.is_some_and(|g| !(g > 0.0 && g.is_finite())) {
                    return Err(("max_size_gb".into(), "must be above 0".into()));
                }
                (*format, *bitrate_kbps)
            }
        };
        match (format, bitrate) {
            (Format::Flac, Some(_)) => Err((
                "bitrate_kbps".into(),
                "FLAC is lossless: it has no bitrate".into(),
            )),
            (_, None) => Ok(()),
            (_, Some(b)) if !(8..=512).contains(&b) => {
                Err(("bitrate_kbps".into(), format!("{b}: 8 to 512 kbit/s")))
            }
            _ => Ok(()),
        }
    }
}

impl From<Format> for crate::db::encoder_presets::AudioFormat {
    fn from(f: Format) -> Self {
        use crate::db::encoder_presets::AudioFormat;
        match f {
            Format::Mp3 => AudioFormat::Mp3,
            Format::Aac => AudioFormat::Aac,
            Format::Opus => AudioFormat::Opus,
            Format::Flac => AudioFormat::Flac,
        }
    }
}

/// An output's encoding as the file gives it: lossy formats at [`DEFAULT_BITRATE_KBPS`]
/// unless the file says otherwise.
fn file_encoding(
    format: Format,
    bitrate_kbps: Option<u32>,
    channels: u8,
    sample_rate: u32,
) -> crate::db::encoder_presets::Encoding {
    let bitrate_kbps = match format {
        Format::Flac => None,
        _ => Some(bitrate_kbps.unwrap_or(DEFAULT_BITRATE_KBPS)),
    };
    crate::db::encoder_presets::Encoding {
        format: format.into(),
        bitrate_kbps,
        sample_rate,
        channels,
        quality: None,
    }
}

impl TryFrom<&OutputSpec> for crate::db::mounts::MountOutput {
    type Error = String;

    /// The output as the mounts table stores it: the Icecast URL taken apart, the format and
    /// bitrate as the output's own encoding.
    fn try_from(spec: &OutputSpec) -> Result<Self, String> {
        use crate::db::mounts::{HlsTarget, IcecastTarget, MountOutput, RecordingTarget};
        let path = |p: &Path| p.display().to_string();
        Ok(match spec {
            OutputSpec::Icecast(o) => {
                check_icecast_url(&o.url)?;
                // The checks above make every step below succeed.
                let rest = o.url.strip_prefix("icecast://").unwrap_or_default();
                let (credentials, rest) = rest.rsplit_once('@').unwrap_or_default();
                let (username, password) = credentials.split_once(':').unwrap_or_default();
                let (host_port, mount) = rest.split_once('/').unwrap_or_default();
                let (host, port) = host_port.rsplit_once(':').unwrap_or_default();
                MountOutput::Icecast(IcecastTarget {
                    host: host.to_owned(),
                    port: port
                        .parse()
                        .map_err(|_| format!("{port:?} is not a port"))?,
                    mount: format!("/{mount}"),
                    username: username.to_owned(),
                    password: password.to_owned(),
                    encoding: Some(file_encoding(
                        o.format,
                        o.bitrate_kbps,
                        o.channels,
                        o.sample_rate,
                    )),
                })
            }
            OutputSpec::Hls(o) => MountOutput::Hls(HlsTarget {
                path: path(&o.path),
                segment_duration_sec: o.segment_duration_sec,
                playlist_size: o.playlist_size,
                encoding: Some(file_encoding(o.format, o.bitrate_kbps, 2, 48_000)),
            }),
            OutputSpec::Recording(o) => MountOutput::Recording(RecordingTarget {
                path: path(&o.path),
                file_pattern: crate::db::mounts::default_file_pattern(),
                rotation_days: o.rotation_days,
                max_size_gb: o.max_size_gb,
                encoding: Some(file_encoding(o.format, o.bitrate_kbps, 2, 48_000)),
            }),
        })
    }
}

fn check_dir(path: &Path) -> Result<(), Problem> {
    if path.as_os_str().is_empty() {
        return Err(("path".into(), "an empty path".into()));
    }
    Ok(())
}

/// `icecast://user:password@host:port/mount`, with every part present.
fn check_icecast_url(url: &str) -> Result<(), String> {
    let shape = "expected icecast://user:password@host:port/mount";
    let rest = url
        .strip_prefix("icecast://")
        .ok_or_else(|| format!("{shape}: the scheme must be icecast://"))?;
    let (credentials, rest) = rest
        .rsplit_once('@')
        .ok_or_else(|| format!("{shape}: no user and password"))?;
    if !credentials.contains(':') || credentials.starts_with(':') {
        return Err(format!("{shape}: no user and password"));
    }
    let (host_port, mount) = rest
        .split_once('/')
        .ok_or_else(|| format!("{shape}: no mount"))?;
    if mount.is_empty() {
        return Err(format!("{shape}: no mount"));
    }
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| format!("{shape}: no port"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{shape}: {host_port:?} is not host:port"));
    }
    Ok(())
}

/// The station files of `dir` (`*.yaml` and `*.yml`, by name), each read and validated; two
/// files that declare the same station, or the same mount id, are an error.
pub fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, StationFile)>, StationFileError> {
    Ok(read_all(dir)?
        .into_iter()
        .map(|(path, _, file)| (path, file))
        .collect())
}

/// [`read_dir`], keeping each file's digest.
fn read_all(dir: &Path) -> Result<Vec<(PathBuf, String, StationFile)>, StationFileError> {
    let mut files = Vec::new();
    for path in station_paths(dir)? {
        let text = read_text(&path)?;
        let file = parse(&path, &text)?;
        files.push((path, digest(&text), file));
    }
    let pairs: Vec<(&Path, &StationFile)> = files
        .iter()
        .map(|(path, _, file)| (path.as_path(), file))
        .collect();
    check_unique(&pairs)?;
    Ok(files)
}

fn station_paths(dir: &Path) -> Result<Vec<PathBuf>, StationFileError> {
    let entries = std::fs::read_dir(dir).map_err(|source| StationFileError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    Ok(paths)
}

fn check_unique(files: &[(&Path, &StationFile)]) -> Result<(), StationFileError> {
    let mut stations: HashMap<uuid::Uuid, &Path> = HashMap::new();
    let mut mounts: HashMap<&str, &Path> = HashMap::new();
    for &(path, file) in files {
        if let Some(first) = stations.insert(file.station.id, path) {
            return Err(invalid(
                path,
                yaml_paths::locate(&yaml_paths::index(&read_text(path)?), "station.id"),
                "station.id".into(),
                format!(
                    "station {} is already declared in {}",
                    file.station.id,
                    first.display()
                ),
            ));
        }
        for (m, mount) in file.mounts.iter().enumerate() {
            if let Some(first) = mounts.insert(&mount.id, path) {
                let field = format!("mounts[{m}].id");
                return Err(invalid(
                    path,
                    yaml_paths::locate(&yaml_paths::index(&read_text(path)?), &field),
                    field,
                    format!(
                        "mount {:?} is already declared in {}",
                        mount.id,
                        first.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

diesel::table! {
    /// Which file declared a station, what it held when it was applied, and its settings
    /// that have no table of their own (failover, priorities).
    station_files (station_id) {
        /// The station.
        station_id -> Text,
        /// The file's path as the server read it.
        path -> Text,
        /// A digest of the file's text as applied (FNV-1a 64, hex).
        digest -> Text,
        /// JSON: the `failover` and `priorities` sections.
        settings -> Text,
        /// When it was applied (UTC).
        applied_at -> Timestamp,
    }
}

/// The station file that declares `station`, as the server read it, if a file does.
///
/// What a file declares (the station's settings, its mounts, its DSP graph and which graph is
/// applied) is the file's to change: the API refuses to change it, because the next revision
/// of the file would silently undo the change.
pub fn declared_by(
    conn: &mut DbConnection,
    station: crate::db::stations::StationId,
) -> Result<Option<String>, StorageError> {
    Ok(station_files::table
        .find(station.to_string())
        .select(station_files::path)
        .first(conn)
        .optional()?)
}

/// Forgets the files at `paths` (as the server shows them): their stations stay, and become
/// the API's to change.
fn release(conn: &mut DbConnection, paths: &[String]) -> Result<usize, StorageError> {
    if paths.is_empty() {
        return Ok(0);
    }
    Ok(
        diesel::delete(station_files::table.filter(station_files::path.eq_any(paths)))
            .execute(conn)?,
    )
}

/// The id of the DSP graph a station file declares: derived from the station's id, so that
/// each revision of the file updates the same graph.
pub fn dsp_graph_id(station: uuid::Uuid) -> uuid::Uuid {
    let mut bytes = *station.as_bytes();
    // Flip bits of the clock-sequence field: another valid UUID, distinct from the station's.
    bytes[8] ^= 0x35;
    bytes[9] ^= 0xd5;
    uuid::Uuid::from_bytes(bytes)
}

/// FNV-1a, 64 bits: a stable digest of a file's text, to tell changed files from unchanged.
fn digest(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn now() -> NaiveDateTime {
    Utc::now().trunc_subsecs(6).naive_utc()
}

/// Writes a validated station file into the database, in one transaction: the station under
/// the file's id (created, or updated and made active), its mounts (those of the file, created
/// or updated; the station's other mounts removed), its DSP graph (created, updated, or
/// removed when the file has none) and the file's settings.
pub fn apply(
    conn: &mut DbConnection,
    path: &Path,
    text_digest: &str,
    file: &StationFile,
) -> Result<(), StorageError> {
    let id = file.station.id.to_string();
    let at = now();
    let settings = serde_json::json!({
        "failover": file.failover,
        "priorities": file.priorities,
    })
    .to_string();
    conn.transaction(|conn| {
        let exists = stations::table
            .find(&id)
            .select(stations::id)
            .first::<String>(conn)
            .optional()?
            .is_some();
        if exists {
            diesel::update(stations::table.find(&id))
                .set((
                    stations::name.eq(&file.station.name),
                    stations::timezone.eq(&file.station.timezone),
                    stations::description.eq(file.station.description.as_deref()),
                    stations::active.eq(true),
                    stations::updated_at.eq(at),
                ))
                .execute(conn)?;
        } else {
            diesel::insert_into(stations::table)
                .values((
                    stations::id.eq(&id),
                    stations::name.eq(&file.station.name),
                    stations::timezone.eq(&file.station.timezone),
                    stations::description.eq(file.station.description.as_deref()),
                    stations::active.eq(true),
                    stations::created_at.eq(at),
                    stations::updated_at.eq(at),
                ))
                .execute(conn)?;
        }

        let declared: Vec<&str> = file.mounts.iter().map(|m| m.id.as_str()).collect();
        diesel::delete(
            mounts::table
                .filter(mounts::station_id.eq(&id))
                .filter(mounts::id.ne_all(&declared)),
        )
        .execute(conn)?;
        for mount in &file.mounts {
            // Stored in the shape the mounts API reads and writes.
            let stored = mount
                .outputs
                .iter()
                .map(crate::db::mounts::MountOutput::try_from)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| StorageError::Invalid {
                    field: "mounts.outputs",
                    value: mount.id.clone(),
                    reason,
                })?;
            let outputs = serde_json::to_string(&stored)
                .map_err(|e| StorageError::Task(format!("mount outputs as JSON: {e}")))?;
            let owner = mounts::table
                .find(&mount.id)
                .select(mounts::station_id)
                .first::<String>(conn)
                .optional()?;
            match owner {
                Some(owner) if owner != id => {
                    return Err(StorageError::Invalid {
                        field: "mounts.id",
                        value: mount.id.clone(),
                        reason: format!("the id of a mount of station {owner}"),
                    });
                }
                Some(_) => {
                    diesel::update(mounts::table.find(&mount.id))
                        .set((
                            mounts::name.eq(&mount.name),
                            mounts::outputs.eq(&outputs),
                            mounts::updated_at.eq(at),
                        ))
                        .execute(conn)?;
                }
                None => {
                    diesel::insert_into(mounts::table)
                        .values((
                            mounts::id.eq(&mount.id),
                            mounts::station_id.eq(&id),
                            mounts::name.eq(&mount.name),
                            mounts::outputs.eq(&outputs),
                            mounts::created_at.eq(at),
                            mounts::updated_at.eq(at),
                        ))
                        .execute(conn)?;
                }
            }
        }

        let graph_id = dsp_graph_id(file.station.id).to_string();
        match &file.dsp_graph {
            Some(graph) => {
                let nodes = serde_json::to_string(&graph.nodes)
                    .map_err(|e| StorageError::Task(format!("DSP graph as JSON: {e}")))?;
                let updated = diesel::update(dsp_graphs::table.find(&graph_id))
                    .set((dsp_graphs::nodes.eq(&nodes), dsp_graphs::updated_at.eq(at)))
                    .execute(conn)?;
                let stored = updated > 0
                    || dsp_graphs::table
                        .find(&graph_id)
                        .select(dsp_graphs::id)
                        .first::<String>(conn)
                        .optional()?
                        .is_some();
                if !stored {
                    diesel::insert_into(dsp_graphs::table)
                        .values((
                            dsp_graphs::id.eq(&graph_id),
                            dsp_graphs::station_id.eq(&id),
                            dsp_graphs::name.eq("station file"),
                            dsp_graphs::description
                                .eq(Some(format!("declared in {}", path.display()))),
                            dsp_graphs::nodes.eq(&nodes),
                            dsp_graphs::created_at.eq(at),
                            dsp_graphs::updated_at.eq(at),
                        ))
                        .execute(conn)?;
                }
                // The file's graph is the one the station runs.
                crate::db::dsp_graphs::mark_applied(conn, file.station.id.into(), &graph_id, at)?;
            }
            None => {
                diesel::delete(dsp_graphs::table.find(&graph_id)).execute(conn)?;
            }
        }

        let shown = path.display().to_string();
        let updated = diesel::update(station_files::table.find(&id))
            .set((
                station_files::path.eq(&shown),
                station_files::digest.eq(text_digest),
                station_files::settings.eq(&settings),
                station_files::applied_at.eq(at),
            ))
            .execute(conn)?;
        let recorded = updated > 0
            || station_files::table
                .find(&id)
                .select(station_files::station_id)
                .first::<String>(conn)
                .optional()?
                .is_some();
        if !recorded {
            diesel::insert_into(station_files::table)
                .values((
                    station_files::station_id.eq(&id),
                    station_files::path.eq(&shown),
                    station_files::digest.eq(text_digest),
                    station_files::settings.eq(&settings),
                    station_files::applied_at.eq(at),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// What the server knows of one station file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileState {
    /// Applied; the digest of the text applied.
    Applied(String),
    /// The last version read could not be used; the station keeps what was applied before.
    Refused {
        /// The digest of the refused text.
        digest: String,
        /// Why, with file, line and field.
        error: String,
    },
}

/// Reads every station file of `dir` and applies each to the database. Any invalid file, or
/// two files declaring the same station, fails the whole load before anything is written:
/// this is the start-up check that stops a server with a broken configuration.
pub async fn load_all(
    db: &Database,
    dir: &Path,
) -> Result<BTreeMap<PathBuf, FileState>, StationFileError> {
    let files = read_all(dir)?;
    let mut states = BTreeMap::new();
    for (path, text_digest, file) in files {
        let (p, d, f) = (path.clone(), text_digest.clone(), file.clone());
        db.run(move |conn| apply(conn, &p, &d, &f))
            .await
            .map_err(|source| StationFileError::Storage {
                path: path.clone(),
                source,
            })?;
        tracing::info!(file = %path.display(), station = %file.station.id, "station file applied");
        states.insert(path, FileState::Applied(text_digest));
    }
    // Files of this directory removed while the server was stopped: their stations stay and
    // are the API's from now on.
    let present: HashSet<String> = states.keys().map(|p| p.display().to_string()).collect();
    let prefix = dir.display().to_string();
    let released = db
        .run(move |conn| {
            let known: Vec<String> = station_files::table
                .select(station_files::path)
                .load(conn)?;
            let gone: Vec<String> = known
                .into_iter()
                .filter(|p| Path::new(p).starts_with(&prefix) && !present.contains(p))
                .collect();
            release(conn, &gone).map(|n| (n, gone))
        })
        .await;
    match released {
        Ok((0, _)) => {}
        Ok((_, gone)) => {
            for path in gone {
                tracing::warn!(file = %path, "station file removed; its station stays in the database");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot forget removed station files"),
    }
    Ok(states)
}

/// Applies station files that change while the server runs.
#[derive(Debug)]
pub struct Watcher {
    db: Database,
    dir: PathBuf,
    states: BTreeMap<PathBuf, FileState>,
}

/// How often [`Watcher::run`] looks at the directory.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

impl Watcher {
    /// A watcher of `dir` that starts from `states` (what [`load_all`] returned).
    pub fn new(db: Database, dir: PathBuf, states: BTreeMap<PathBuf, FileState>) -> Watcher {
        Watcher { db, dir, states }
    }

    /// What the watcher knows of each file.
    pub fn states(&self) -> &BTreeMap<PathBuf, FileState> {
        &self.states
    }

    /// Looks at the directory once: applies every new or changed file that validates, and
    /// records every one that does not. Returns the files applied in this pass.
    pub async fn check(&mut self) -> Vec<PathBuf> {
        let paths = match station_paths(&self.dir) {
            Ok(paths) => paths,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the stations directory");
                return Vec::new();
            }
        };
        let present: HashSet<&PathBuf> = paths.iter().collect();
        let gone: Vec<PathBuf> = self
            .states
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            tracing::warn!(
                file = %path.display(),
                "station file removed; its station stays in the database"
            );
            let shown = vec![path.display().to_string()];
            if let Err(e) = self.db.run(move |conn| release(conn, &shown)).await {
                tracing::warn!(error = %e, file = %path.display(), "cannot forget the removed file");
                continue;
            }
            self.states.remove(&path);
        }
        let mut applied = Vec::new();
        for path in paths {
            let text = match read_text(&path) {
                Ok(text) => text,
                Err(e) => {
                    tracing::warn!(error = %e, "station file not read");
                    continue;
                }
            };
            let text_digest = digest(&text);
            let known = match self.states.get(&path) {
                Some(FileState::Applied(d)) => Some(d),
                Some(FileState::Refused { digest, .. }) => Some(digest),
                None => None,
            };
            if known == Some(&text_digest) {
                continue;
            }
            let outcome = match parse(&path, &text) {
                Ok(file) => self.conflict(&path, &file).map_or(Ok(file), Err),
                Err(e) => Err(e.to_string()),
            };
            let outcome = match outcome {
                Ok(file) => {
                    let (p, d, f) = (path.clone(), text_digest.clone(), file);
                    self.db
                        .run(move |conn| apply(conn, &p, &d, &f))
                        .await
                        .map_err(|e| format!("{}: {e}", path.display()))
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "station file applied");
                    self.states
                        .insert(path.clone(), FileState::Applied(text_digest));
                    applied.push(path);
                }
                Err(error) => {
                    tracing::error!(
                        %error,
                        "station file refused; the station keeps its last applied version"
                    );
                    self.states.insert(
                        path,
                        FileState::Refused {
                            digest: text_digest,
                            error,
                        },
                    );
                }
            }
        }
        applied
    }

    /// Another file of the directory that declares the same station, if one does.
    fn conflict(&self, path: &Path, file: &StationFile) -> Option<String> {
        self.states
            .keys()
            .filter(|other| other.as_path() != path)
            .filter_map(|other| read(other).ok().map(|f| (other, f)))
            .find(|(_, other)| other.station.id == file.station.id)
            .map(|(other, _)| {
                format!(
                    "{}: station.id: station {} is already declared in {}",
                    path.display(),
                    file.station.id,
                    other.display()
                )
            })
    }

    /// Checks the directory every `interval` until `stop` completes.
    pub async fn run(mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(interval) => {
                    self.check().await;
                }
            }
        }
    }
}
