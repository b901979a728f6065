//! Mounts: a station's encoded streams, each with the outputs it goes to (an Icecast server, an
//! HLS directory, recordings).
//!
//! A mount encodes with its encoder preset ([`super::encoder_presets`]); an output may carry
//! an encoding of its own instead (station files give each output its format and bitrate).
//! The outputs are stored as the JSON list of [`MountOutput`], tagged by `type`, whether the
//! API or a station file wrote them ([`crate::station_files::apply`] converts the file's
//! outputs into this shape). Rows written by earlier versions of the station files, with an
//! `icecast://user:password@host:port/mount` URL, are read through the station file's own
//! types and converted.
//!
//! Icecast source passwords are stored as given (the engine needs them to connect); the API
//! never shows them.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::encoder_presets::{AudioFormat, EncoderPresetId, Encoding};
use super::programme::check_name;
use super::schema::mounts;
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id};

/// The formats an HLS output carries.
pub const HLS_FORMATS: [AudioFormat; 2] = [AudioFormat::Mp3, AudioFormat::Aac];

/// One output of a mount, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountOutput {
    /// A source connection to an Icecast server.
    Icecast(IcecastTarget),
    /// HTTP Live Streaming: segments and a playlist in a directory.
    Hls(HlsTarget),
    /// Recordings to timestamped files, kept by age and total size.
    Recording(RecordingTarget),
}

/// `type: icecast`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcecastTarget {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The mount point, starting with `/`.
    pub mount: String,
    /// The source user.
    pub username: String,
    /// The source password.
    pub password: String,
    /// An encoding of its own, instead of the mount's preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

/// `type: hls`.
// No `deny_unknown_fields`: the schema of a `type`-tagged output would then refuse its own
// `type`. The API refuses unknown fields itself (`FIELDS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HlsTarget {
    /// The directory the playlist and segments are written to: an absolute path.
    #[schema(example = "/var/www/hls/wgmr")]
    pub path: String,
    /// Seconds per segment, 1 to 60 (default 4).
    #[serde(default = "four")]
    pub segment_duration_sec: f64,
    /// Segments in the live playlist, 2 to 100 (default 6).
    #[serde(default = "six")]
    pub playlist_size: u32,
    /// An encoding of its own, instead of the mount's preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

/// `type: recording`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingTarget {
    /// The directory recordings are written to: an absolute path.
    #[schema(example = "/var/recordings/wgmr")]
    pub path: String,
    /// The file name of a recording, with strftime fields for its start (UTC); at least one
    /// field, no `/`. The extension follows the format.
    #[serde(default = "default_file_pattern")]
    #[schema(example = "%Y-%m-%d_%H-%M-%S")]
    pub file_pattern: String,
    /// Recordings older than this many days are deleted (1 to 3650).
    #[serde(default)]
    pub rotation_days: Option<u32>,
    /// The recordings' total size is kept under this, GB (above 0).
    #[serde(default)]
    pub max_size_gb: Option<f64>,
    /// An encoding of its own, instead of the mount's preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

fn four() -> f64 {
    4.0
}

fn six() -> u32 {
    6
}

/// The file name recordings get when none is given.
pub fn default_file_pattern() -> String {
    "%Y-%m-%d_%H-%M-%S".to_owned()
}

impl MountOutput {
    /// The output's own encoding, if it has one.
    pub fn encoding(&self) -> Option<&Encoding> {
        match self {
            MountOutput::Icecast(t) => t.encoding.as_ref(),
            MountOutput::Hls(t) => t.encoding.as_ref(),
            MountOutput::Recording(t) => t.encoding.as_ref(),
        }
    }
}

/// A field path below an output list (`outputs[1].port`) and what is wrong with its value.
pub type OutputProblem = (String, String);

/// Longest path or file pattern, bytes.
const MAX_PATH_BYTES: usize = 1024;
/// Most outputs a mount may have.
pub const MAX_OUTPUTS: usize = 16;

/// Checks `outputs` for a mount whose preset encodes as `preset` (if it has one): every field
/// in range, every output with an encoding (its own or the preset's), and HLS outputs in
/// mp3 or aac. The problem names the field below the list (`outputs[0].mount`).
pub fn validate_outputs(
    outputs: &[MountOutput],
    preset: Option<&Encoding>,
) -> Result<(), OutputProblem> {
    if outputs.is_empty() {
        return Err(("outputs".into(), "a mount needs at least one output".into()));
    }
    if outputs.len() > MAX_OUTPUTS {
        return Err((
            "outputs".into(),
            format!(
                "{} outputs; a mount may have at most {MAX_OUTPUTS}",
                outputs.len()
            ),
        ));
    }
    for (i, output) in outputs.iter().enumerate() {
        let at = |field: &str| format!("outputs[{i}].{field}");
        check_output(output).map_err(|(field, message)| (at(&field), message))?;
        let effective = match (output.encoding(), preset) {
            (Some(own), _) => {
                own.validate().map_err(|e| {
                    (
                        at(&format!("encoding.{}", e.field)),
                        format!("{}: {}", e.value, e.reason),
                    )
                })?;
                own
            }
            (None, Some(preset)) => preset,
            (None, None) => {
                return Err((
                    at("encoding"),
                    "the mount has no encoder_preset_id, so each output needs an encoding of \
                     its own"
                        .into(),
                ));
            }
        };
        if matches!(output, MountOutput::Hls(_)) && !HLS_FORMATS.contains(&effective.format) {
            let field = if output.encoding().is_some() {
                at("encoding.format")
            } else {
                "encoder_preset_id".to_owned()
            };
            return Err((
                field,
                format!(
                    "outputs[{i}] is HLS, which carries mp3 or aac, not {}",
                    effective.format
                ),
            ));
        }
    }
    Ok(())
}

fn check_output(output: &MountOutput) -> Result<(), OutputProblem> {
    let problem = |field: &str, message: String| Err((field.to_owned(), message));
    match output {
        MountOutput::Icecast(t) => {
            if t.host.is_empty() || t.host.len() > 253 || url::Host::parse(&t.host).is_err() {
                return problem(
                    "host",
                    format!("{:?}: a host name or an IP address", t.host),
                );
            }
            if t.port == 0 {
                return problem("port", "0: a port is 1 to 65535".into());
            }
            let mount_ok = t.mount.starts_with('/')
                && t.mount.len() >= 2
                && t.mount.len() <= 255
                && !t
                    .mount
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#');
            if !mount_ok {
                return problem(
                    "mount",
                    format!(
                        "{:?}: a mount point starts with `/`, is 2 to 255 characters, and has \
                         no spaces, `?` or `#`",
                        t.mount
                    ),
                );
            }
            if t.username.is_empty()
                || t.username.len() > 64
                || t.username.chars().any(|c| c == ':' || c.is_control())
            {
                return problem(
                    "username",
                    format!(
                        "{:?}: 1 to 64 characters, without `:` or control characters",
                        t.username
                    ),
                );
            }
            if t.password.is_empty()
                || t.password.len() > 255
                || t.password.chars().any(char::is_control)
            {
                // Never echo a password.
                return problem(
                    "password",
                    "1 to 255 characters, without control characters".into(),
                );
            }
        }
        MountOutput::Hls(t) => {
            check_dir(&t.path)?;
            if !(t.segment_duration_sec.is_finite()
                && (1.0..=60.0).contains(&t.segment_duration_sec))
            {
                return problem(
                    "segment_duration_sec",
                    format!("{}: 1 to 60 seconds", t.segment_duration_sec),
                );
            }
            if !(2..=100).contains(&t.playlist_size) {
                return problem(
                    "playlist_size",
                    format!("{}: 2 to 100 segments", t.playlist_size),
                );
            }
        }
        MountOutput::Recording(t) => {
            check_dir(&t.path)?;
            check_file_pattern(&t.file_pattern).map_err(|m| ("file_pattern".to_owned(), m))?;
            if t.rotation_days.is_some_and(|d| !(1..=3650).contains(&d)) {
                return problem(
                    "rotation_days",
                    format!("{}: 1 to 3650 days", t.rotation_days.unwrap_or_default()),
                );
            }
            if t.max_size_gb.is_some_and(|g| !(g.is_finite() && g > 0.0)) {
                return problem(
                    "max_size_gb",
                    format!("{}: must be above 0", t.max_size_gb.unwrap_or_default()),
                );
            }
        }
    }
    Ok(())
}

fn check_dir(path: &str) -> Result<(), OutputProblem> {
    if !path.starts_with('/') || path.len() > MAX_PATH_BYTES || path.contains('\0') {
        return Err((
            "path".into(),
            format!("{path:?}: an absolute directory path of at most {MAX_PATH_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A file name (no `/`) with strftime fields chrono understands, at least one of them, so that
/// recordings do not overwrite each other.
fn check_file_pattern(pattern: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if pattern.is_empty() || pattern.len() > 255 || pattern.contains(['/', '\0']) {
        return Err(format!(
            "{pattern:?}: a file name of 1 to 255 bytes, without `/`"
        ));
    }
    let mut fields = 0;
    for item in StrftimeItems::new(pattern) {
        match item {
            Item::Error => {
                return Err(format!(
                    "{pattern:?}: not a strftime pattern (`%` starts a field such as %Y or %H; \
                     write %% for a percent sign)"
                ));
            }
            Item::Numeric(..) | Item::Fixed(..) => fields += 1,
            _ => {}
        }
    }
    if fields == 0 {
        return Err(format!(
            "{pattern:?}: needs a time field such as %Y-%m-%d_%H-%M-%S, or every recording \
             would get the same name"
        ));
    }
    Ok(())
}

/// A mount as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MountRecord {
    /// Its id: a UUID for mounts made through the API, the file's id for mounts a station file
    /// declares.
    pub id: String,
    /// Its station.
    pub station_id: StationId,
    /// Name shown to people, unique at the station.
    pub name: String,
    /// The preset it encodes with, if it has one.
    pub encoder_preset_id: Option<EncoderPresetId>,
    /// Where its stream goes.
    pub outputs: Vec<MountOutput>,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// What a new mount is made of. The caller validates the outputs with [`validate_outputs`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewMount {
    /// Name shown to people: 1 to 255 characters, unique at the station.
    pub name: String,
    /// The preset it encodes with.
    pub encoder_preset_id: Option<EncoderPresetId>,
    /// Its outputs.
    pub outputs: Vec<MountOutput>,
}

/// Changes to a mount; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new preset; `Some(None)` removes it.
    pub encoder_preset_id: Option<Option<EncoderPresetId>>,
    /// A new output list, replacing the old whole.
    pub outputs: Option<Vec<MountOutput>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = mounts)]
struct MountRow {
    id: String,
    station_id: String,
    name: String,
    encoder_preset_id: Option<String>,
    outputs: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// The fields each type of output has besides `type`, for refusing unknown ones.
pub const FIELDS: [(&str, &[&str]); 3] = [
    (
        "icecast",
        &["host", "port", "mount", "username", "password", "encoding"],
    ),
    (
        "hls",
        &["path", "segment_duration_sec", "playlist_size", "encoding"],
    ),
    (
        "recording",
        &[
            "path",
            "file_pattern",
            "rotation_days",
            "max_size_gb",
            "encoding",
        ],
    ),
];

/// The stored output list: this module's shape, or the station files' earlier one (outputs
/// with a `url` or a `format` of their own).
pub(crate) fn parse_outputs(text: &str) -> Option<Vec<MountOutput>> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let legacy = value
        .as_array()?
        .iter()
        .any(|o| o.get("url").is_some() || o.get("format").is_some());
    if !legacy {
        return serde_json::from_value(value).ok();
    }
    let legacy: Vec<crate::station_files::OutputSpec> = serde_json::from_value(value).ok()?;
    legacy
        .iter()
        .map(MountOutput::try_from)
        .collect::<Result<_, _>>()
        .ok()
}

impl TryFrom<MountRow> for MountRecord {
    type Error = StorageError;

    fn try_from(row: MountRow) -> Result<Self, StorageError> {
        let outputs = parse_outputs(&row.outputs).ok_or_else(|| StorageError::Corrupt {
            table: "mounts",
            column: "outputs",
            // The text may hold passwords: say how long it is, not what it says.
            value: format!("{} bytes of text", row.outputs.len()),
            expected: "a JSON list of mount outputs",
        })?;
        Ok(MountRecord {
            id: row.id,
            station_id: stored_id("mounts", "station_id", &row.station_id)?,
            name: row.name,
            encoder_preset_id: row
                .encoder_preset_id
                .map(|p| stored_id("mounts", "encoder_preset_id", &p))
                .transpose()?,
            outputs,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn outputs_json(outputs: &[MountOutput]) -> Result<String, StorageError> {
    serde_json::to_string(outputs).map_err(|e| StorageError::Task(format!("outputs as JSON: {e}")))
}

fn load(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
) -> Result<MountRecord, StorageError> {
    mounts::table
        .filter(mounts::id.eq(id))
        .filter(mounts::station_id.eq(station.to_string()))
        .select(MountRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "mount",
            id: id.to_owned(),
        })?
        .try_into()
}

/// Takes the write lock of `station`'s row until the transaction ends, so that two
/// transactions checking a mount name of the same station run one after the other. Call it
/// first in the transaction that calls [`create`] or renames with [`update`]: MySQL's
/// repeatable-read snapshot is taken at the transaction's first read, and a snapshot taken
/// before the lock would not see the name the other transaction took. (SQLite's write
/// transactions hold the database's lock already; PostgreSQL and MySQL, at their default
/// isolation, would otherwise let both see the name free.)
pub fn lock_station(conn: &mut DbConnection, station: StationId) -> Result<(), StorageError> {
    use super::schema::stations;
    diesel::update(stations::table.find(station.to_string()))
        .set(stations::updated_at.eq(stations::updated_at))
        .execute(conn)?;
    Ok(())
}

/// Refuses `name` when another mount of `station` (not `except`) has it.
fn check_unique_name(
    conn: &mut DbConnection,
    station: StationId,
    name: &str,
    except: Option<&str>,
) -> Result<(), StorageError> {
    let mut query = mounts::table
        .filter(mounts::station_id.eq(station.to_string()))
        .filter(mounts::name.eq(name))
        .into_boxed();
    if let Some(except) = except {
        query = query.filter(mounts::id.ne(except));
    }
    let taken: i64 = query.count().get_result(conn)?;
    if taken > 0 {
        return Err(StorageError::Conflict {
            entity: "mount",
            field: "name",
            value: name.to_owned(),
        });
    }
    Ok(())
}

/// Stores a new mount of `station` under a random UUID and returns it as stored. A name
/// another mount of the station has is [`StorageError::Conflict`]. Call it in a write
/// transaction that began with [`lock_station`].
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    new: &NewMount,
) -> Result<MountRecord, StorageError> {
    let name = check_name(&new.name)?;
    let outputs = outputs_json(&new.outputs)?;
    check_unique_name(conn, station, name, None)?;
    let id = uuid::Uuid::new_v4().to_string();
    let at = now();
    diesel::insert_into(mounts::table)
        .values((
            mounts::id.eq(&id),
            mounts::station_id.eq(station.to_string()),
            mounts::name.eq(name),
            mounts::encoder_preset_id.eq(new.encoder_preset_id.map(|p| p.to_string())),
            mounts::outputs.eq(&outputs),
            mounts::created_at.eq(at),
            mounts::updated_at.eq(at),
        ))
        .execute(conn)?;
    load(conn, station, &id)
}

/// The mount `id` of `station`.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
) -> Result<MountRecord, StorageError> {
    load(conn, station, id)
}

/// One page of `station`'s mounts by name, then id, and how many it has in all.
pub fn list_page(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<MountRecord>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = mounts::table
        .filter(mounts::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = mounts::table
        .filter(mounts::station_id.eq(&station))
        .order((mounts::name, mounts::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(MountRow::as_select())
        .load(conn)?
        .into_iter()
        .map(MountRecord::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Applies `changes` and returns the mount as stored afterwards. Call it in a write
/// transaction that began with [`lock_station`].
pub fn update(
    conn: &mut DbConnection,
    station: StationId,
    id: &str,
    changes: &MountChanges,
) -> Result<MountRecord, StorageError> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    let outputs = changes.outputs.as_deref().map(outputs_json).transpose()?;
    load(conn, station, id)?;
    if let Some(name) = name {
        check_unique_name(conn, station, name, Some(id))?;
    }
    diesel::update(
        mounts::table
            .filter(mounts::id.eq(id))
            .filter(mounts::station_id.eq(station.to_string())),
    )
    .set((
        name.map(|n| mounts::name.eq(n)),
        changes
            .encoder_preset_id
            .map(|p| mounts::encoder_preset_id.eq(p.map(|p| p.to_string()))),
        outputs.map(|o| mounts::outputs.eq(o)),
        mounts::updated_at.eq(now()),
    ))
    .execute(conn)?;
    load(conn, station, id)
}

/// Deletes mount `id` of `station`. Priority sources on it go with it; schedule entries keep
/// playing without a mount named.
pub fn delete(conn: &mut DbConnection, station: StationId, id: &str) -> Result<(), StorageError> {
    let deleted = diesel::delete(
        mounts::table
            .filter(mounts::id.eq(id))
            .filter(mounts::station_id.eq(station.to_string())),
    )
    .execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "mount",
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// The mounts with an HLS output that takes its encoding from preset `preset`, described for
/// people (`mount "Main" (id) of station …`).
pub fn hls_relying_on_preset(
    conn: &mut DbConnection,
    preset: EncoderPresetId,
) -> Result<Vec<String>, StorageError> {
    let rows: Vec<MountRow> = mounts::table
        .filter(mounts::encoder_preset_id.eq(preset.to_string()))
        .order((mounts::station_id, mounts::name))
        .select(MountRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            parse_outputs(&row.outputs).is_some_and(|outputs| {
                outputs
                    .iter()
                    .any(|o| matches!(o, MountOutput::Hls(h) if h.encoding.is_none()))
            })
        })
        .map(|row| {
            format!(
                "mount {:?} ({}) of station {}",
                row.name, row.id, row.station_id
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icecast() -> MountOutput {
        MountOutput::Icecast(IcecastTarget {
            host: "localhost".into(),
            port: 8000,
            mount: "/live".into(),
            username: "source".into(),
            password: "hackme".into(),
            encoding: None,
        })
    }

    fn mp3() -> Encoding {
        Encoding {
            format: AudioFormat::Mp3,
            bitrate_kbps: Some(128),
            sample_rate: 44_100,
            channels: 2,
            quality: None,
        }
    }

    #[test]
    fn outputs_need_an_encoding_from_somewhere() {
        let err = validate_outputs(&[icecast()], None).unwrap_err();
        assert_eq!(err.0, "outputs[0].encoding");
        assert!(validate_outputs(&[icecast()], Some(&mp3())).is_ok());
    }

    #[test]
    fn fields_are_named_below_the_list() {
        let MountOutput::Icecast(mut t) = icecast() else {
            unreachable!()
        };
        t.mount = "live".into();
        let err =
            validate_outputs(&[icecast(), MountOutput::Icecast(t)], Some(&mp3())).unwrap_err();
        assert_eq!(err.0, "outputs[1].mount");
        let hls = MountOutput::Hls(HlsTarget {
            path: "/srv/hls".into(),
            segment_duration_sec: 4.0,
            playlist_size: 6,
            encoding: None,
        });
        let opus = Encoding {
            format: AudioFormat::Opus,
            bitrate_kbps: Some(96),
            sample_rate: 48_000,
            channels: 2,
            quality: None,
        };
        assert_eq!(
            validate_outputs(&[hls], Some(&opus)).unwrap_err().0,
            "encoder_preset_id"
        );
    }

    #[test]
    fn the_field_lists_match_the_types() {
        let mut with_encoding = icecast();
        if let MountOutput::Icecast(t) = &mut with_encoding {
            t.encoding = Some(mp3());
        }
        let full = [
            with_encoding,
            MountOutput::Hls(HlsTarget {
                path: "/h".into(),
                segment_duration_sec: 4.0,
                playlist_size: 6,
                encoding: Some(mp3()),
            }),
            MountOutput::Recording(RecordingTarget {
                path: "/r".into(),
                file_pattern: default_file_pattern(),
                rotation_days: Some(1),
                max_size_gb: Some(1.0),
                encoding: Some(mp3()),
            }),
        ];
        for output in full {
            let json = serde_json::to_value(&output).unwrap();
            let kind = json["type"].as_str().unwrap();
            let mut keys: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "type")
                .collect();
            let (_, listed) = FIELDS.iter().find(|(k, _)| *k == kind).unwrap();
            let mut listed = listed.to_vec();
            keys.sort_unstable();
            listed.sort_unstable();
            assert_eq!(keys, listed, "{kind}");
        }
    }

    #[test]
    fn file_patterns_need_a_time_field() {
        assert!(check_file_pattern("%Y-%m-%d_%H-%M-%S.mp3").is_ok());
        assert!(check_file_pattern("recording.mp3").is_err());
        assert!(check_file_pattern("a/%H").is_err());
        assert!(check_file_pattern("%Q").is_err());
    }

    #[test]
    fn the_station_files_earlier_shape_is_read() {
        let legacy = r#"[{"type":"icecast","url":"icecast://source:hackme@localhost:8000/stream","format":"mp3","bitrate_kbps":128,"channels":2,"sample_rate":44100}]"#;
        let outputs = parse_outputs(legacy).unwrap();
        let MountOutput::Icecast(t) = &outputs[0] else {
            panic!("{outputs:?}")
        };
        assert_eq!(
            (t.host.as_str(), t.port, t.mount.as_str()),
            ("localhost", 8000, "/stream")
        );
        assert_eq!(
            (t.username.as_str(), t.password.as_str()),
            ("source", "hackme")
        );
        assert_eq!(t.encoding.unwrap().bitrate_kbps, Some(128));
    }
}
