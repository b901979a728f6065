//! Encodings: what the engine encodes to, and the GStreamer elements that do it.
//!
//! A station encodes once per distinct [`Encoding`], whatever the number of outputs that use
//! it (SPEC.md: no per-output encoders duplicating work). [`Encoding`] is `Eq + Hash` for that.

use std::path::Path;

use gst::prelude::*;

use crate::EngineError;
use crate::output::StreamInfo;

/// An encoding of the station's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// MP3 (LAME) at a constant bitrate, kbit/s, with LAME's `-q` quality (0 best … 9).
    Mp3 {
        /// kbit/s.
        bitrate: u32,
        /// LAME quality, 0–9.
        quality: u32,
    },
    /// AAC-LC (libav's encoder) in ADTS frames, kbit/s.
    Aac {
        /// kbit/s.
        bitrate: u32,
    },
    /// Opus in Ogg, kbit/s; always encoded at 48 kHz.
    Opus {
        /// kbit/s.
        bitrate: u32,
    },
    /// FLAC, lossless (native FLAC stream).
    Flac,
    /// WAV, 32-bit float: render to file only.
    Wav,
}

pub(crate) fn element(name: &str) -> Result<gst::Element, EngineError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|e| EngineError::MissingElement {
            element: name.to_owned(),
            reason: e.to_string(),
        })
}

impl Encoding {
    /// The encoding a file name implies: `.mp3` (128 kbit/s, quality 2), `.aac` (128 kbit/s),
    /// `.opus` (96 kbit/s), `.flac`, `.wav`.
    pub fn for_path(path: &Path) -> Result<Encoding, EngineError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("mp3") => Ok(Encoding::Mp3 {
                bitrate: 128,
                quality: 2,
            }),
            Some("aac") => Ok(Encoding::Aac { bitrate: 128 }),
            Some("opus") | Some("ogg") => Ok(Encoding::Opus { bitrate: 96 }),
            Some("flac") => Ok(Encoding::Flac),
            Some("wav") => Ok(Encoding::Wav),
            _ => Err(EngineError::Pipeline(format!(
                "{}: unknown output format (use .mp3, .aac, .opus, .flac or .wav)",
                path.display()
            ))),
        }
    }

    /// A short name: `mp3-128k-q2`, `aac-96k`, `opus-64k`, `flac`, `wav`.
    pub fn label(self) -> String {
        match self {
            Encoding::Mp3 { bitrate, quality } => format!("mp3-{bitrate}k-q{quality}"),
            Encoding::Aac { bitrate } => format!("aac-{bitrate}k"),
            Encoding::Opus { bitrate } => format!("opus-{bitrate}k"),
            Encoding::Flac => "flac".into(),
            Encoding::Wav => "wav".into(),
        }
    }

    /// The encoded stream as outputs see it, for audio at `rate` Hz with `channels` channels.
    /// The caps are those of the encoder's output before any parser, fixed but not complete
    /// (destinations that need rate and channels parse them from the stream).
    pub fn stream_info(self, rate: u32, channels: u32) -> StreamInfo {
        let (caps, content_type, extension, bitrate, rate) = match self {
            Encoding::Mp3 { bitrate, .. } => (
                gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 1i32)
                    .field("layer", 3i32)
                    .build(),
                "audio/mpeg",
                "mp3",
                Some(bitrate),
                rate,
            ),
            Encoding::Aac { bitrate } => (
                gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4i32)
                    .field("stream-format", "adts")
                    .build(),
                "audio/aac",
                "aac",
                Some(bitrate),
                rate,
            ),
            Encoding::Opus { bitrate } => (
                gst::Caps::new_empty_simple("audio/ogg"),
                "audio/ogg",
                "opus",
                Some(bitrate),
                48_000,
            ),
            Encoding::Flac => (
                gst::Caps::new_empty_simple("audio/x-flac"),
                "audio/flac",
                "flac",
                None,
                rate,
            ),
            Encoding::Wav => (
                gst::Caps::new_empty_simple("audio/x-wav"),
                "audio/wav",
                "wav",
                None,
                rate,
            ),
        };
        StreamInfo {
            caps,
            content_type,
            extension,
            bitrate,
            rate,
            channels,
        }
    }

    /// The elements that encode raw audio into this encoding for streaming (no container
    /// tags): linked in order, raw audio in, encoded packets out. Opus comes out as raw
    /// packets, headers first, for [`crate::output::ogg::OggOpus`] to frame.
    pub fn stream_elements(self) -> Result<Vec<gst::Element>, EngineError> {
        Ok(match self {
            Encoding::Mp3 { bitrate, quality } => {
                vec![to_16_bit()?, lame(bitrate, quality)?]
            }
            Encoding::Aac { bitrate } => {
                let enc = element("avenc_aac")?;
                enc.set_property("bitrate", (bitrate.clamp(8, 512) * 1000) as i32);
                let filter = element("capsfilter")?;
                filter.set_property(
                    "caps",
                    gst::Caps::builder("audio/mpeg")
                        .field("stream-format", "adts")
                        .build(),
                );
                vec![element("audioconvert")?, enc, element("aacparse")?, filter]
            }
            Encoding::Opus { bitrate } => {
                let filter = element("capsfilter")?;
                filter.set_property(
                    "caps",
                    gst::Caps::builder("audio/x-raw")
                        .field("rate", 48_000i32)
                        .build(),
                );
                let enc = element("opusenc")?;
                enc.set_property("bitrate", (bitrate.clamp(6, 510) * 1000) as i32);
                // Raw Opus packets: a station frames them in Ogg itself, a new chain for each
                // title (see `output::ogg`); files get `oggmux` (`file_elements`).
                vec![to_16_bit()?, element("audioresample")?, filter, enc]
            }
            Encoding::Flac => vec![element("audioconvert")?, element("flacenc")?],
            Encoding::Wav => {
                return Err(EngineError::Pipeline(
                    "WAV cannot be streamed; use it for render files only".into(),
                ));
            }
        })
    }

    /// The elements that encode raw audio into a file of this encoding (MP3 gets an ID3v2
    /// tag, WAV its RIFF header).
    pub fn file_elements(self) -> Result<Vec<gst::Element>, EngineError> {
        Ok(match self {
            Encoding::Mp3 { bitrate, quality } => {
                vec![to_16_bit()?, lame(bitrate, quality)?, element("id3v2mux")?]
            }
            Encoding::Wav => vec![element("audioconvert")?, element("wavenc")?],
            Encoding::Opus { .. } => {
                let mut elements = self.stream_elements()?;
                elements.push(element("oggmux")?);
                elements
            }
            other => other.stream_elements()?,
        })
    }
}

/// The conversion in front of a lossy encoder that takes 16-bit samples (LAME, Opus): without
/// dither, which would add noise far below what the encoder itself adds, for a cost of over a
/// CPU-second per hour of audio.
fn to_16_bit() -> Result<gst::Element, EngineError> {
    let convert = element("audioconvert")?;
    convert.set_property_from_str("dithering", "none");
    Ok(convert)
}

fn lame(bitrate: u32, quality: u32) -> Result<gst::Element, EngineError> {
    let lame = element("lamemp3enc")?;
    lame.set_property_from_str("target", "bitrate");
    lame.set_property("bitrate", bitrate.clamp(8, 320) as i32);
    lame.set_property("cbr", true);
    // lamemp3enc's engine quality: high = LAME -q 2, standard = -q 5, fast = -q 7.
    let engine = match quality {
        0..=2 => "high",
        3..=5 => "standard",
        _ => "fast",
    };
    lame.set_property_from_str("encoding-engine-quality", engine);
    Ok(lame)
}
