//! Encoder presets: named encoder settings (format, bitrate or quality, sample rate, channels)
//! that mounts refer to, so that an operator picks "MP3 128k" once and every output of the
//! mount encodes the same way.
//!
//! [`Encoding`] is the setting itself and [`Encoding::validate`] the rules it must keep, which
//! are also those of an output's own encoding (see [`super::mounts`]):
//!
//! | format | bitrate, kbit/s | quality | sample rates, Hz |
//! | --- | --- | --- | --- |
//! | `mp3` | a MPEG Layer III rate for the sample rate (CBR) | LAME VBR `V0`–`V9` as 0–9 | 8000–48000 (MPEG-1, 2 and 2.5 rates) |
//! | `aac` | 8–320 (required: AAC is encoded at a constant bitrate) | — | 8000–96000 |
//! | `opus` | 6–510 (required) | — | 48000 only (Ogg Opus decodes at 48 kHz) |
//! | `vorbis` | 32–500 (managed bitrate) | −0.1–1.0 (libvorbis VBR) | 8000–96000 |
//! | `flac` | none: lossless | compression level 0–8 | 8000–192000 |
//!
//! A lossy format needs a bitrate unless it takes a quality and one is given; `mp3` and
//! `vorbis` take one or the other, never both. Channels are 1 or 2.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::programme::check_name;
use super::schema::{encoder_presets, mounts};
use super::{DbConnection, Page, StorageError, is_unique_violation, now, stored_id, uuid_id};

uuid_id! {
    /// The id of an encoder preset.
    EncoderPresetId
}

/// An encoded audio format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    /// MPEG-1/2 Layer III (LAME).
    Mp3,
    /// AAC-LC.
    Aac,
    /// Opus in Ogg.
    Opus,
    /// Vorbis in Ogg.
    Vorbis,
    /// FLAC (lossless).
    Flac,
}

impl AudioFormat {
    /// The name in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Aac => "aac",
            AudioFormat::Opus => "opus",
            AudioFormat::Vorbis => "vorbis",
            AudioFormat::Flac => "flac",
        }
    }

    fn parse(name: &str) -> Option<AudioFormat> {
        [
            AudioFormat::Mp3,
            AudioFormat::Aac,
            AudioFormat::Opus,
            AudioFormat::Vorbis,
            AudioFormat::Flac,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }

    /// The sample rates an encoder of this format takes, Hz.
    pub fn sample_rates(self) -> &'static [u32] {
        match self {
            AudioFormat::Mp3 => &[
                8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
            ],
            AudioFormat::Aac | AudioFormat::Vorbis => &[
                8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200,
                96_000,
            ],
            AudioFormat::Opus => &[48_000],
            AudioFormat::Flac => &[
                8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400,
                192_000,
            ],
        }
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How audio is encoded: what a preset holds, and what an output may set for itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    /// The format.
    pub format: AudioFormat,
    /// Constant bitrate, kbit/s; none for FLAC, or when a quality is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 128)]
    pub bitrate_kbps: Option<u32>,
    /// Sample rate, Hz, pinned so the encoder never resamples behind the operator's back.
    #[schema(example = 44100)]
    pub sample_rate: u32,
    /// Channels: 1 or 2.
    #[serde(default = "stereo")]
    #[schema(example = 2)]
    pub channels: u8,
    /// The format's quality setting: LAME VBR level for MP3 (0 best – 9), libvorbis quality
    /// for Vorbis (−0.1 – 1.0), compression level for FLAC (0–8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<f64>,
}

fn stereo() -> u8 {
    2
}

/// A field of an [`Encoding`] that breaks the rules, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} = {value}: {reason}")]
pub struct EncodingError {
    /// The field (`bitrate_kbps`).
    pub field: &'static str,
    /// Its value as given.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

impl From<EncodingError> for StorageError {
    fn from(e: EncodingError) -> Self {
        StorageError::Invalid {
            field: e.field,
            value: e.value,
            reason: e.reason,
        }
    }
}

/// The Layer III bitrates of MPEG-1 (32 kHz and up), kbit/s.
const MP3_MPEG1_KBPS: [u32; 14] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
/// The Layer III bitrates of MPEG-2 (16–24 kHz), kbit/s.
const MP3_MPEG2_KBPS: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
/// The Layer III bitrates of MPEG-2.5 (8–12 kHz), kbit/s.
const MP3_MPEG25_KBPS: [u32; 8] = [8, 16, 24, 32, 40, 48, 56, 64];

impl Encoding {
    /// Checks the rules in the [module docs](self); the error names the first field that
    /// breaks one.
    pub fn validate(&self) -> Result<(), EncodingError> {
        let bad = |field: &'static str, value: String, reason: String| {
            Err(EncodingError {
                field,
                value,
                reason,
            })
        };
        let format = self.format;
        if !(1..=2).contains(&self.channels) {
            return bad(
                "channels",
                self.channels.to_string(),
                "1 (mono) or 2 (stereo)".into(),
            );
        }
        let rates = format.sample_rates();
        if !rates.contains(&self.sample_rate) {
            return bad(
                "sample_rate",
                self.sample_rate.to_string(),
                format!("{format} takes {}", list(rates, "Hz")),
            );
        }
        // (lowest, highest) quality, when the format has one.
        let quality_range = match format {
            AudioFormat::Mp3 => Some((0.0, 9.0)),
            AudioFormat::Vorbis => Some((-0.1, 1.0)),
            AudioFormat::Flac => Some((0.0, 8.0)),
            AudioFormat::Aac | AudioFormat::Opus => None,
        };
        if let Some(q) = self.quality {
            match quality_range {
                None => {
                    return bad(
                        "quality",
                        q.to_string(),
                        format!("{format} has no quality setting; give bitrate_kbps"),
                    );
                }
                Some((low, high)) if !(q.is_finite() && q >= low && q <= high) => {
                    let what = match format {
                        AudioFormat::Mp3 => "the LAME VBR level, 0 (V0, best) to 9 (V9)",
                        AudioFormat::Vorbis => "the Vorbis quality, -0.1 to 1.0",
                        _ => "the FLAC compression level, 0 to 8",
                    };
                    return bad("quality", q.to_string(), format!("{format} takes {what}"));
                }
                Some(_) => {}
            }
        }
        match (format, self.bitrate_kbps, self.quality) {
            (AudioFormat::Flac, Some(b), _) => bad(
                "bitrate_kbps",
                b.to_string(),
                "flac is lossless: it has no bitrate; leave bitrate_kbps out".into(),
            ),
            (AudioFormat::Flac, None, _) => Ok(()),
            (AudioFormat::Mp3 | AudioFormat::Vorbis, Some(b), Some(_)) => bad(
                "bitrate_kbps",
                b.to_string(),
                format!(
                    "give either bitrate_kbps (constant bitrate) or quality (variable \
                     bitrate) for {format}, not both"
                ),
            ),
            (AudioFormat::Mp3 | AudioFormat::Vorbis, None, Some(_)) => Ok(()),
            (_, None, _) => bad(
                "bitrate_kbps",
                "null".into(),
                match format {
                    AudioFormat::Mp3 | AudioFormat::Vorbis => {
                        format!("{format} needs bitrate_kbps or quality")
                    }
                    _ => format!("{format} needs bitrate_kbps"),
                },
            ),
            (AudioFormat::Mp3, Some(b), None) => {
                let allowed: &[u32] = match self.sample_rate {
                    32_000.. => &MP3_MPEG1_KBPS,
                    16_000..=24_000 => &MP3_MPEG2_KBPS,
                    _ => &MP3_MPEG25_KBPS,
                };
                if allowed.contains(&b) {
                    Ok(())
                } else {
                    bad(
                        "bitrate_kbps",
                        b.to_string(),
                        format!(
                            "mp3 at {} Hz takes {}",
                            self.sample_rate,
                            list(allowed, "kbit/s")
                        ),
                    )
                }
            }
            // Aac and opus with a quality were refused above.
            (_, Some(b), _) => {
                let (low, high) = match format {
                    AudioFormat::Aac => (8, 320),
                    AudioFormat::Opus => (6, 510),
                    _ => (32, 500),
                };
                if (low..=high).contains(&b) {
                    Ok(())
                } else {
                    bad(
                        "bitrate_kbps",
                        b.to_string(),
                        format!("{format} takes {low} to {high} kbit/s"),
                    )
                }
            }
        }
    }
}

fn list(values: &[u32], unit: &str) -> String {
    let shown: Vec<String> = values.iter().map(u32::to_string).collect();
    format!("{} {unit}", shown.join(", "))
}

/// Longest JSON text of a preset's `options`, bytes.
pub const MAX_OPTIONS_BYTES: usize = 4096;

/// An encoder preset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderPresetRecord {
    /// Its id.
    pub id: EncoderPresetId,
    /// Name shown to people, unique among presets.
    pub name: String,
    /// The encoding.
    pub encoding: Encoding,
    /// Encoder-specific options (a JSON object), passed on to the engine as they are.
    pub options: serde_json::Map<String, serde_json::Value>,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// What a new preset is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEncoderPreset {
    /// Name shown to people: 1 to 255 characters, unique.
    pub name: String,
    /// The encoding; it must pass [`Encoding::validate`].
    pub encoding: Encoding,
    /// Encoder-specific options: at most [`MAX_OPTIONS_BYTES`] of JSON.
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// Changes to a preset; `None` leaves a field as it is. The encoding after the change is
/// validated whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncoderPresetChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new format.
    pub format: Option<AudioFormat>,
    /// A new bitrate; `Some(None)` removes it.
    pub bitrate_kbps: Option<Option<u32>>,
    /// A new sample rate.
    pub sample_rate: Option<u32>,
    /// A new channel count.
    pub channels: Option<u8>,
    /// A new quality; `Some(None)` removes it.
    pub quality: Option<Option<f64>>,
    /// New options, replacing the old whole.
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = encoder_presets)]
struct PresetRow {
    id: String,
    name: String,
    format: String,
    bitrate_kbps: Option<i32>,
    sample_rate: i32,
    channels: i16,
    quality: Option<f64>,
    options: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn corrupt(column: &'static str, value: String, expected: &'static str) -> StorageError {
    StorageError::Corrupt {
        table: "encoder_presets",
        column,
        value,
        expected,
    }
}

impl TryFrom<PresetRow> for EncoderPresetRecord {
    type Error = StorageError;

    fn try_from(row: PresetRow) -> Result<Self, StorageError> {
        let format = AudioFormat::parse(&row.format)
            .ok_or_else(|| corrupt("format", row.format.clone(), "an audio format"))?;
        let bitrate_kbps = row
            .bitrate_kbps
            .map(|b| {
                u32::try_from(b).map_err(|_| corrupt("bitrate_kbps", b.to_string(), "a bitrate"))
            })
            .transpose()?;
        let sample_rate = u32::try_from(row.sample_rate)
            .map_err(|_| corrupt("sample_rate", row.sample_rate.to_string(), "a rate"))?;
        let channels = u8::try_from(row.channels)
            .map_err(|_| corrupt("channels", row.channels.to_string(), "a channel count"))?;
        let options = serde_json::from_str(&row.options)
            .map_err(|_| corrupt("options", row.options.clone(), "a JSON object"))?;
        Ok(EncoderPresetRecord {
            id: stored_id("encoder_presets", "id", &row.id)?,
            name: row.name,
            encoding: Encoding {
                format,
                bitrate_kbps,
                sample_rate,
                channels,
                quality: row.quality,
            },
            options,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn options_json(
    options: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, StorageError> {
    let text = serde_json::Value::Object(options.clone()).to_string();
    if text.len() > MAX_OPTIONS_BYTES {
        return Err(StorageError::Invalid {
            field: "options",
            value: format!("{} bytes of JSON", text.len()),
            reason: format!("at most {MAX_OPTIONS_BYTES} bytes"),
        });
    }
    Ok(text)
}

fn name_taken(e: diesel::result::Error, name: &str) -> StorageError {
    if is_unique_violation(&e) {
        StorageError::Conflict {
            entity: "encoder preset",
            field: "name",
            value: name.to_owned(),
        }
    } else {
        e.into()
    }
}

fn load(conn: &mut DbConnection, id: EncoderPresetId) -> Result<EncoderPresetRecord, StorageError> {
    encoder_presets::table
        .find(id.to_string())
        .select(PresetRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "encoder preset",
            id: id.to_string(),
        })?
        .try_into()
}

/// Stores a new preset and returns it as stored. A name already taken is
/// [`StorageError::Conflict`].
pub fn create(
    conn: &mut DbConnection,
    new: &NewEncoderPreset,
) -> Result<EncoderPresetRecord, StorageError> {
    let name = check_name(&new.name)?;
    new.encoding.validate()?;
    let options = options_json(&new.options)?;
    let id = EncoderPresetId::random();
    let at = now();
    let e = &new.encoding;
    diesel::insert_into(encoder_presets::table)
        .values((
            encoder_presets::id.eq(id.to_string()),
            encoder_presets::name.eq(name),
            encoder_presets::format.eq(e.format.as_str()),
            encoder_presets::bitrate_kbps.eq(e.bitrate_kbps.map(to_i32)),
            encoder_presets::sample_rate.eq(to_i32(e.sample_rate)),
            encoder_presets::channels.eq(i16::from(e.channels)),
            encoder_presets::quality.eq(e.quality),
            encoder_presets::options.eq(&options),
            encoder_presets::created_at.eq(at),
            encoder_presets::updated_at.eq(at),
        ))
        .execute(conn)
        .map_err(|e| name_taken(e, name))?;
    load(conn, id)
}

/// Validated rates and bitrates are far below `i32::MAX`.
fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// The preset `id`.
pub fn get(
    conn: &mut DbConnection,
    id: EncoderPresetId,
) -> Result<EncoderPresetRecord, StorageError> {
    load(conn, id)
}

/// Whether preset `id` exists.
pub fn exists(conn: &mut DbConnection, id: EncoderPresetId) -> Result<bool, StorageError> {
    Ok(diesel::select(diesel::dsl::exists(
        encoder_presets::table.find(id.to_string()),
    ))
    .get_result(conn)?)
}

/// One page of presets by name, and how many there are in all.
pub fn list_page(
    conn: &mut DbConnection,
    page: Page,
) -> Result<(Vec<EncoderPresetRecord>, i64), StorageError> {
    let total: i64 = encoder_presets::table.count().get_result(conn)?;
    let items = encoder_presets::table
        .order((encoder_presets::name, encoder_presets::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(PresetRow::as_select())
        .load(conn)?
        .into_iter()
        .map(EncoderPresetRecord::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Applies `changes`, validating the encoding that results, and returns the preset as stored.
pub fn update(
    conn: &mut DbConnection,
    id: EncoderPresetId,
    changes: &EncoderPresetChanges,
) -> Result<EncoderPresetRecord, StorageError> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    let options = changes.options.as_ref().map(options_json).transpose()?;
    let old = load(conn, id)?;
    let e = Encoding {
        format: changes.format.unwrap_or(old.encoding.format),
        bitrate_kbps: changes.bitrate_kbps.unwrap_or(old.encoding.bitrate_kbps),
        sample_rate: changes.sample_rate.unwrap_or(old.encoding.sample_rate),
        channels: changes.channels.unwrap_or(old.encoding.channels),
        quality: changes.quality.unwrap_or(old.encoding.quality),
    };
    e.validate()?;
    diesel::update(encoder_presets::table.find(id.to_string()))
        .set((
            name.map(|n| encoder_presets::name.eq(n)),
            encoder_presets::format.eq(e.format.as_str()),
            encoder_presets::bitrate_kbps.eq(e.bitrate_kbps.map(to_i32)),
            encoder_presets::sample_rate.eq(to_i32(e.sample_rate)),
            encoder_presets::channels.eq(i16::from(e.channels)),
            encoder_presets::quality.eq(e.quality),
            options.map(|o| encoder_presets::options.eq(o)),
            encoder_presets::updated_at.eq(now()),
        ))
        .execute(conn)
        .map_err(|e| name_taken(e, name.unwrap_or_default()))?;
    load(conn, id)
}

/// The mounts that use preset `id`: (station, mount id, mount name), by station and name.
pub fn users(
    conn: &mut DbConnection,
    id: EncoderPresetId,
) -> Result<Vec<(String, String, String)>, StorageError> {
    Ok(mounts::table
        .filter(mounts::encoder_preset_id.eq(id.to_string()))
        .order((mounts::station_id, mounts::name))
        .select((mounts::station_id, mounts::id, mounts::name))
        .load(conn)?)
}

/// Deletes preset `id`. The caller checks [`users`] first: the schema would quietly unset the
/// preset of the mounts that use it.
pub fn delete(conn: &mut DbConnection, id: EncoderPresetId) -> Result<(), StorageError> {
    let deleted = diesel::delete(encoder_presets::table.find(id.to_string())).execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "encoder preset",
            id: id.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(format: AudioFormat, bitrate: Option<u32>, rate: u32, quality: Option<f64>) -> Encoding {
        Encoding {
            format,
            bitrate_kbps: bitrate,
            sample_rate: rate,
            channels: 2,
            quality,
        }
    }

    fn field(e: Encoding) -> &'static str {
        e.validate().map_or_else(|e| e.field, |()| "ok")
    }

    #[test]
    fn the_documented_rules_hold() {
        use AudioFormat::*;
        let cases = [
            (enc(Mp3, Some(128), 44_100, None), "ok"),
            (enc(Mp3, None, 44_100, Some(2.0)), "ok"),
            (enc(Mp3, None, 44_100, None), "bitrate_kbps"),
            (enc(Mp3, Some(128), 44_100, Some(2.0)), "bitrate_kbps"),
            (enc(Mp3, Some(130), 44_100, None), "bitrate_kbps"),
            // 144 kbit/s exists for MPEG-2 only; 320 for MPEG-1 only.
            (enc(Mp3, Some(144), 22_050, None), "ok"),
            (enc(Mp3, Some(320), 22_050, None), "bitrate_kbps"),
            (enc(Mp3, Some(64), 11_025, None), "ok"),
            (enc(Mp3, None, 44_100, Some(9.5)), "quality"),
            (enc(Mp3, Some(128), 96_000, None), "sample_rate"),
            (enc(Aac, Some(96), 48_000, None), "ok"),
            (enc(Aac, None, 48_000, Some(3.0)), "quality"),
            (enc(Aac, Some(400), 48_000, None), "bitrate_kbps"),
            (enc(Opus, Some(96), 48_000, None), "ok"),
            (enc(Opus, Some(96), 44_100, None), "sample_rate"),
            (enc(Opus, Some(5), 48_000, None), "bitrate_kbps"),
            (enc(Vorbis, None, 44_100, Some(-0.1)), "ok"),
            (enc(Vorbis, None, 44_100, Some(1.5)), "quality"),
            (enc(Vorbis, Some(160), 44_100, None), "ok"),
            (enc(Flac, None, 48_000, Some(5.0)), "ok"),
            (enc(Flac, None, 48_000, None), "ok"),
            (enc(Flac, Some(900), 48_000, None), "bitrate_kbps"),
            (enc(Flac, None, 48_000, Some(9.0)), "quality"),
            (enc(Mp3, None, 44_100, Some(f64::NAN)), "quality"),
        ];
        for (encoding, expected) in cases {
            assert_eq!(field(encoding), expected, "{encoding:?}");
        }
        let mut mono = enc(AudioFormat::Aac, Some(64), 48_000, None);
        mono.channels = 1;
        assert_eq!(field(mono), "ok");
        mono.channels = 3;
        assert_eq!(field(mono), "channels");
    }

    #[test]
    fn errors_say_what_is_allowed() {
        let e = enc(AudioFormat::Opus, Some(96), 44_100, None)
            .validate()
            .unwrap_err();
        assert_eq!(e.value, "44100");
        assert!(e.reason.contains("48000"), "{}", e.reason);
    }
}
