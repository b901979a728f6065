//! Reading station and library files (YAML or JSON) and writing timelines.

use crate::error::{Error, Result};
use crate::media::Library;
use crate::station::StationConfig;

/// The format of a station, library or timeline document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML (needs the `yaml` feature).
    Yaml,
    /// JSON (needs the `json` feature).
    Json,
}

impl Format {
    /// Guesses the format from a file name: `.json` is JSON, anything else YAML.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
    format: Format,
) -> Result<T> {
    match format {
        #[cfg(feature = "yaml")]
        // Enums are written as one-key maps (`{smart_block: jazz}`) rather than YAML tags.
        Format::Yaml => serde_yaml_ng::with::singleton_map_recursive::deserialize(
            serde_yaml_ng::Deserializer::from_str(text),
        )
        .map_err(|e| Error::Parse {
            what,
            message: e.to_string(),
        }),
        #[cfg(feature = "json")]
        Format::Json => serde_json::from_str(text).map_err(|e| Error::Parse {
            what,
            message: e.to_string(),
        }),
        #[allow(unreachable_patterns)]
        other => Err(Error::Parse {
            what,
            message: format!("{other:?} support is not compiled in (enable the crate feature)"),
        }),
    }
}

impl StationConfig {
    /// Parses and validates a station file.
    pub fn from_str_as(text: &str, format: Format) -> Result<StationConfig> {
        let config: StationConfig = parse("station file", text, format)?;
        config.validate()?;
        Ok(config)
    }
}

impl Library {
    /// Parses and validates a library file.
    pub fn from_str_as(text: &str, format: Format) -> Result<Library> {
        let library: Library = parse("library file", text, format)?;
        library.validate()?;
        Ok(library)
    }
}

#[cfg(feature = "json")]
impl crate::Timeline {
    /// The timeline as one JSON document. Same timeline, same bytes.
    pub fn to_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The timeline as JSON lines, one flat object per entry: `start`, `end`, `media_id`,
    /// `artist`, `title`, `cue_in`, `cue_out` (seconds) for scripts and the engine's render
    /// mode, then `source`, `slot_kind`, `tier`, `transition` and `provenance` in full.
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let (media, artist, title, cue_in, cue_out) = match &e.source {
                crate::Source::Media {
                    id,
                    title,
                    artists,
                    cue_in,
                    cue_out,
                } => (
                    Some(id.as_str()),
                    Some(artists.join(", ")),
                    Some(title.clone()),
                    Some(cue_in.as_secs_f64()),
                    Some(cue_out.as_secs_f64()),
                ),
                _ => (None, None, None, None, None),
            };
            let line = serde_json::json!({
                "start": e.start,
                "end": e.end,
                "media_id": media,
                "artist": artist,
                "title": title,
                "cue_in": cue_in,
                "cue_out": cue_out,
                "source": e.source,
                "slot_kind": e.provenance.kind,
                "tier": e.tier.number(),
                "transition": e.transition,
                "provenance": e.provenance,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }

    /// Reads a timeline written by [`to_json`](Self::to_json).
    pub fn from_json(text: &str) -> Result<crate::Timeline> {
        serde_json::from_str(text).map_err(|e| Error::Parse {
            what: "timeline",
            message: e.to_string(),
        })
    }
}
