//! Decoding with symphonia: opening a file, reading its tags, and feeding its audio as
//! interleaved `f32` blocks to whoever measures it.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::Hint;

use super::Container;

/// How much of a file [`probe`] decodes to prove that it plays, in seconds.
pub const PROBE_SECONDS: u64 = 10;

/// Decode errors in a row after which a file counts as broken rather than glitched.
const MAX_BAD_PACKETS: u32 = 20;

/// Why a file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The container could not be read.
    #[error("the {container} container cannot be read: {reason}")]
    Container {
        /// What it was sniffed as.
        container: &'static str,
        /// What symphonia said.
        reason: String,
    },
    /// The file holds no audio track.
    #[error("the file holds no audio track")]
    NoAudioTrack,
    /// The audio track's codec cannot be decoded.
    #[error("its audio cannot be decoded: {0}")]
    Codec(String),
    /// The audio is broken.
    #[error("its audio is broken: {0}")]
    Corrupt(String),
    /// Not one frame of audio could be decoded.
    #[error("no audio could be decoded from it")]
    Empty,
    /// The file ends before the length its header declares.
    #[error(
        "the file is truncated: it ends after {decoded_ms} ms of the {declared_ms} ms its header declares"
    )]
    Truncated {
        /// How much audio it holds, ms.
        decoded_ms: u64,
        /// How much its header says it holds, ms.
        declared_ms: u64,
    },
    /// The format cannot be measured (a sample rate or channel count out of range).
    #[error("unsupported audio format: {0}")]
    Format(String),
}

/// Tags read from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackTags {
    /// Track title.
    pub title: Option<String>,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Year of release (from a date tag).
    pub year: Option<i32>,
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Length, ms, when the header declares it or the whole file was decoded.
    pub duration_ms: Option<u64>,
    /// The tags.
    pub tags: TrackTags,
}

/// An open file, ready to decode.
pub(super) struct Opened {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track: u32,
    container: Container,
    /// Frames the header declares, if it does.
    pub(super) declared_frames: Option<u64>,
    /// The sample rate the header declares, if it does.
    pub(super) declared_rate: Option<u32>,
    pub(super) tags: TrackTags,
}

fn container_error(container: Container, e: &SymphoniaError) -> ProbeError {
    match e {
        SymphoniaError::IoError(io) => ProbeError::Container {
            container: container.name(),
            reason: format!("it ends too early ({io})"),
        },
        other => ProbeError::Container {
            container: container.name(),
            reason: other.to_string(),
        },
    }
}

fn text(value: &symphonia::core::meta::Value) -> Option<String> {
    let t = value.to_string();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn read_tags(revision: &MetadataRevision, tags: &mut TrackTags) {
    for tag in revision.tags() {
        let Some(key) = tag.std_key else { continue };
        let slot = match key {
            StandardTagKey::TrackTitle => &mut tags.title,
            StandardTagKey::Artist => &mut tags.artist,
            StandardTagKey::Album => &mut tags.album,
            StandardTagKey::Genre => &mut tags.genre,
            StandardTagKey::Date | StandardTagKey::ReleaseDate | StandardTagKey::OriginalDate => {
                if tags.year.is_none() {
                    tags.year = text(&tag.value).and_then(|d| {
                        d.get(..4)
                            .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
                            .and_then(|y| y.parse().ok())
                    });
                }
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = text(&tag.value);
        }
    }
}

/// Opens `path`, sniffed as `container`, for decoding its first audio track.
pub(super) fn open(path: &Path, container: Container) -> Result<Opened, ProbeError> {
    let file = File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(container.extension());
    let mut probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| container_error(container, &e))?;
    let mut tags = TrackTags::default();
    if let Some(mut meta) = probed.metadata.get()
        && let Some(revision) = meta.skip_to_latest()
    {
        read_tags(revision, &mut tags);
    }
    let mut format = probed.format;
    if let Some(revision) = format.metadata().skip_to_latest() {
        read_tags(revision, &mut tags);
    }
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(ProbeError::NoAudioTrack)?;
    let decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| ProbeError::Codec(e.to_string()))?;
    Ok(Opened {
        track: track.id,
        declared_frames: track
            .codec_params
            .n_frames
            .filter(|n| *n > 0 && !is_streamed_wav_length(container, &track.codec_params, *n)),
        declared_rate: track.codec_params.sample_rate.filter(|r| *r > 0),
        decoder,
        format,
        container,
        tags,
    })
}

/// What a decoding run saw.
pub(super) struct Decoded {
    /// The format of the audio (of its first decoded block).
    pub(super) spec: Option<SignalSpec>,
    /// Frames decoded.
    pub(super) frames: u64,
    /// Whether the end of the file was reached (rather than `limit`).
    pub(super) reached_end: bool,
}

impl Opened {
    /// Decodes up to `limit` frames (all with `None`), handing each block of interleaved
    /// samples to `block` with its format. Isolated bad packets are skipped, as players do; a
    /// run of them is [`ProbeError::Corrupt`].
    pub(super) fn decode(
        &mut self,
        limit: Option<u64>,
        mut block: impl FnMut(&SignalSpec, &[f32]) -> Result<(), ProbeError>,
    ) -> Result<Decoded, ProbeError> {
        let mut samples: Option<SampleBuffer<f32>> = None;
        let mut spec: Option<SignalSpec> = None;
        let mut frames = 0u64;
        let mut bad_in_a_row = 0u32;
        loop {
            if limit.is_some_and(|l| frames >= l) {
                return Ok(Decoded {
                    spec,
                    frames,
                    reached_end: false,
                });
            }
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                // The end of the file, or a stream that changes format: the end for us.
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    break;
                }
                Err(SymphoniaError::ResetRequired) => break,
                Err(SymphoniaError::DecodeError(e)) => {
                    bad_in_a_row += 1;
                    if bad_in_a_row > MAX_BAD_PACKETS {
                        return Err(ProbeError::Corrupt(e.to_owned()));
                    }
                    continue;
                }
                Err(e) => return Err(container_error(self.container, &e)),
            };
            if packet.track_id() != self.track {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => d,
                Err(SymphoniaError::DecodeError(e)) => {
                    bad_in_a_row += 1;
                    if bad_in_a_row > MAX_BAD_PACKETS {
                        return Err(ProbeError::Corrupt(e.to_owned()));
                    }
                    continue;
                }
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    break;
                }
                Err(e) => return Err(ProbeError::Codec(e.to_string())),
            };
            bad_in_a_row = 0;
            let this_spec = *decoded.spec();
            if spec.is_some_and(|s| s != this_spec) {
                // A change of format mid-file (chained Ogg streams): the rest is another
                // programme; what came before is the item.
                break;
            }
            spec = Some(this_spec);
            let capacity = decoded.capacity() as u64;
            if samples.as_ref().is_none_or(|s| {
                (s.capacity() as u64) < capacity * this_spec.channels.count() as u64
            }) {
                samples = Some(SampleBuffer::new(capacity, this_spec));
            }
            let Some(buffer) = samples.as_mut() else {
                continue;
            };
            buffer.copy_interleaved_ref(decoded);
            let channels = this_spec.channels.count().max(1);
            frames += (buffer.samples().len() / channels) as u64;
            block(&this_spec, buffer.samples())?;
        }
        Ok(Decoded {
            spec,
            frames,
            reached_end: true,
        })
    }
}

/// Whether a WAV's declared length is the placeholder a writer that could not seek back leaves
/// (a data chunk of 0xFFFFFFFF bytes, as ffmpeg writes to a pipe): not a claim to check.
fn is_streamed_wav_length(
    container: Container,
    params: &symphonia::core::codecs::CodecParameters,
    frames: u64,
) -> bool {
    let channels = params.channels.map_or(1, |c| c.count() as u64);
    let bytes_per_sample = u64::from(
        params
            .bits_per_coded_sample
            .or(params.bits_per_sample)
            .unwrap_or(8),
    )
    .div_ceil(8);
    container == Container::Wav && frames * channels * bytes_per_sample >= 0xFFFF_0000
}

/// Milliseconds of `frames` at `rate`, rounded down.
pub(super) fn frames_to_ms(frames: u64, rate: u32) -> u64 {
    if rate == 0 {
        return 0;
    }
    frames.saturating_mul(1000) / u64::from(rate)
}

/// Whether `decoded` frames fall short of `declared` by more than encoders' padding and
/// rounding explain (1 % or 100 ms, whichever is more).
pub(super) fn is_truncated(decoded: u64, declared: u64, rate: u32) -> bool {
    let slack = (declared / 100).max(u64::from(rate) / 10);
    decoded + slack < declared
}

/// Opens `path` (sniffed as `container`) and decodes up to its first [`PROBE_SECONDS`]: its
/// format, length and tags, or why it cannot be played. A file shorter than that is decoded
/// whole, and found [`Truncated`](ProbeError::Truncated) when it holds less than its header
/// declares. Blocking.
pub fn probe(path: &Path, container: Container) -> Result<Probed, ProbeError> {
    let mut opened = open(path, container)?;
    let rate = opened.declared_rate.unwrap_or(grimnir_dsp::MAX_RATE);
    let decoded = opened.decode(Some(PROBE_SECONDS * u64::from(rate)), |_, _| Ok(()))?;
    let Some(spec) = decoded.spec.filter(|_| decoded.frames > 0) else {
        return Err(ProbeError::Empty);
    };
    let declared = opened.declared_frames;
    if decoded.reached_end
        && let Some(declared) = declared
        && is_truncated(decoded.frames, declared, spec.rate)
    {
        return Err(ProbeError::Truncated {
            decoded_ms: frames_to_ms(decoded.frames, spec.rate),
            declared_ms: frames_to_ms(declared, spec.rate),
        });
    }
    let duration_ms = match declared {
        Some(frames) => Some(frames_to_ms(frames, spec.rate)),
        None if decoded.reached_end => Some(frames_to_ms(decoded.frames, spec.rate)),
        None => None,
    };
    Ok(Probed {
        sample_rate: spec.rate,
        channels: spec.channels.count() as u32,
        duration_ms,
        tags: opened.tags.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_allows_for_padding() {
        assert!(!is_truncated(48_000, 48_000, 48_000));
        assert!(!is_truncated(47_000, 48_000, 48_000));
        assert!(is_truncated(24_000, 48_000, 48_000));
        assert!(is_truncated(4_700_000, 4_800_000, 48_000));
    }

    #[test]
    fn milliseconds_round_down() {
        assert_eq!(frames_to_ms(48_000, 48_000), 1000);
        assert_eq!(frames_to_ms(47_999, 48_000), 999);
        assert_eq!(frames_to_ms(1, 0), 0);
    }
}
