//! The engine process's configuration: a small YAML file.
//!
//! ```yaml
//! listen: unix:/run/grimnir/wgmr.sock   # or 127.0.0.1:7700; another address needs a token
//! token_file: /etc/grimnir/wgmr.token   # optional on a socket or loopback
//! rate: 48000                           # optional
//! channels: 2                           # optional
//! graph: /etc/grimnir/wgmr-fm.yaml      # optional DSP graph file (YAML or JSON); default:
//!                                       # the broadcast chain
//! fallback: /media/fallback/loop.mp3    # optional: what plays when nothing else is left
//! outputs:
//!   - { name: archive, type: record, encoding: flac, dir: /var/lib/grimnir/archive,
//!       prefix: wgmr, rotate_seconds: 3600 }
//!   - { name: main, type: icecast, encoding: "mp3:128", host: 127.0.0.1, port: 8000,
//!       mount: /live.mp3, password: hackme }
//!   - { name: hls, type: hls, encoding: "aac:128", dir: /var/www/hls/wgmr }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use grimnir_dsp::DspGraph;
use serde::Deserialize;

use crate::encode::Encoding;
use crate::output::hls::{Hls, HlsConfig};
use crate::output::icecast::{Icecast, IcecastConfig};
use crate::output::record::{RecordConfig, Recorder};
use crate::station::StationConfig;

use super::server::Listen;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The YAML is malformed or has an unknown or missing field.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What serde said, with the line.
        reason: String,
    },
    /// A field's value is refused.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, such as `outputs[1].encoding`.
        field: String,
        /// Why.
        reason: String,
    },
}

/// One output as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum OutputFile {
    /// Recording to timestamped files.
    Record {
        /// The output's name.
        name: String,
        /// `mp3:KBPS`, `aac:KBPS`, `opus:KBPS` or `flac`.
        encoding: String,
        /// The directory.
        dir: PathBuf,
        /// Start of every file name (default `recording`).
        #[serde(default)]
        prefix: Option<String>,
        /// A new file every this many seconds (default 3600).
        #[serde(default)]
        rotate_seconds: Option<u64>,
    },
    /// An Icecast mount.
    Icecast {
        /// The output's name.
        name: String,
        /// The encoding.
        encoding: String,
        /// The server's host.
        host: String,
        /// The server's port.
        port: u16,
        /// The mount.
        mount: String,
        /// The source user (default `source`).
        #[serde(default)]
        user: Option<String>,
        /// The source password.
        password: String,
    },
    /// HLS segments and playlist in a directory.
    Hls {
        /// The output's name.
        name: String,
        /// The encoding.
        encoding: String,
        /// The directory.
        dir: PathBuf,
    },
}

impl OutputFile {
    /// A recording output with the default prefix and rotation.
    pub fn record(name: impl Into<String>, encoding: impl Into<String>, dir: PathBuf) -> Self {
        OutputFile::Record {
            name: name.into(),
            encoding: encoding.into(),
            dir,
            prefix: None,
            rotate_seconds: None,
        }
    }
}

/// The configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EngineConfig {
    /// `unix:PATH` or `HOST:PORT`.
    pub listen: String,
    /// A file holding the shared token (surrounding white space ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Sample rate, Hz (48 000).
    #[serde(default)]
    pub rate: Option<u32>,
    /// Channels (2).
    #[serde(default)]
    pub channels: Option<usize>,
    /// A DSP graph file.
    #[serde(default)]
    pub graph: Option<PathBuf>,
    /// The fallback audio.
    #[serde(default)]
    pub fallback: Option<PathBuf>,
    /// The outputs.
    #[serde(default)]
    pub outputs: Vec<OutputFile>,
}

/// Everything the engine process needs to start, read and checked.
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// Where to listen.
    pub listen: Listen,
    /// The shared token, if any.
    pub token: Option<String>,
    /// The station.
    pub station: StationConfig,
    /// The fallback audio, if any.
    pub fallback: Option<PathBuf>,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Parses `mp3:KBPS`, `aac:KBPS`, `opus:KBPS` or `flac`.
pub fn parse_encoding(text: &str) -> Result<Encoding, String> {
    let (kind, rate) = text.split_once(':').unwrap_or((text, ""));
    let kbps = || -> Result<u32, String> {
        rate.parse::<u32>()
            .ok()
            .filter(|k| (8..=640).contains(k))
            .ok_or_else(|| format!("`{text}`: give the bitrate in kbit/s, e.g. mp3:128"))
    };
    Ok(match kind {
        "mp3" => Encoding::Mp3 {
            bitrate: kbps()?,
            quality: 2,
        },
        "aac" => Encoding::Aac { bitrate: kbps()? },
        "opus" => Encoding::Opus { bitrate: kbps()? },
        "flac" => Encoding::Flac,
        _ => {
            return Err(format!(
                "`{text}`: use mp3:KBPS, aac:KBPS, opus:KBPS or flac"
            ));
        }
    })
}

/// Reads a DSP graph file: JSON if it ends in `.json`, YAML otherwise.
pub fn read_graph(path: &Path) -> Result<DspGraph, ConfigError> {
    let text = read(path)?;
    let graph = if path.extension().is_some_and(|e| e == "json") {
        DspGraph::from_json(&text)
    } else {
        DspGraph::from_yaml(&text)
    };
    graph.map_err(|e| ConfigError::Invalid {
        field: format!("graph ({})", path.display()),
        reason: e.to_string(),
    })
}

impl EngineConfig {
    /// Parses the YAML text of a configuration file named `path` (for messages).
    pub fn parse(text: &str, path: &str) -> Result<EngineConfig, ConfigError> {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<EngineConfig, ConfigError> {
        EngineConfig::parse(&read(path)?, &path.display().to_string())
    }

    /// Checks every field and builds the station's configuration.
    pub fn load(self) -> Result<Loaded, ConfigError> {
        let listen = Listen::parse(&self.listen).map_err(|reason| ConfigError::Invalid {
            field: "listen".into(),
            reason,
        })?;
        let token = match &self.token_file {
            Some(path) => {
                let token = read(path)?.trim().to_owned();
                if token.len() < 16 {
                    return Err(ConfigError::Invalid {
                        field: "token_file".into(),
                        reason: format!(
                            "{}: the token must be at least 16 characters",
                            path.display()
                        ),
                    });
                }
                Some(token)
            }
            None => None,
        };
        let graph = match &self.graph {
            Some(path) => read_graph(path)?,
            None => DspGraph::broadcast_default(),
        };
        let mut station = StationConfig::new(graph);
        if let Some(rate) = self.rate {
            if !(8_000..=192_000).contains(&rate) {
                return Err(ConfigError::Invalid {
                    field: "rate".into(),
                    reason: format!("{rate} Hz is not between 8000 and 192000"),
                });
            }
            station.rate = rate;
        }
        if let Some(channels) = self.channels {
            if !(1..=8).contains(&channels) {
                return Err(ConfigError::Invalid {
                    field: "channels".into(),
                    reason: format!("{channels} is not between 1 and 8"),
                });
            }
            station.channels = channels;
        }
        if let Some(fallback) = &self.fallback
            && !fallback.is_file()
        {
            return Err(ConfigError::Invalid {
                field: "fallback".into(),
                reason: format!("{}: no such file", fallback.display()),
            });
        }
        let mut names = std::collections::HashSet::new();
        for (k, output) in self.outputs.into_iter().enumerate() {
            let invalid = |what: &str, reason: String| ConfigError::Invalid {
                field: format!("outputs[{k}].{what}"),
                reason,
            };
            let (name, encoding) = match &output {
                OutputFile::Record { name, encoding, .. }
                | OutputFile::Icecast { name, encoding, .. }
                | OutputFile::Hls { name, encoding, .. } => (name.clone(), encoding.clone()),
            };
            if !names.insert(name.clone()) {
                return Err(invalid("name", format!("`{name}` is used twice")));
            }
            let encoding = parse_encoding(&encoding).map_err(|e| invalid("encoding", e))?;
            station = match output {
                OutputFile::Record {
                    dir,
                    prefix,
                    rotate_seconds,
                    ..
                } => {
                    let mut rec = RecordConfig::new(dir, prefix.unwrap_or("recording".into()));
                    if let Some(s) = rotate_seconds {
                        rec.rotate_every = Some(Duration::from_secs(s.max(1)));
                    }
                    station.output(&name, encoding, Recorder::new(rec))
                }
                OutputFile::Icecast {
                    host,
                    port,
                    mount,
                    user,
                    password,
                    ..
                } => {
                    let mut ice = IcecastConfig::new(host, port, mount, password);
                    if let Some(user) = user {
                        ice.user = user;
                    }
                    station.output(&name, encoding, Icecast::new(ice))
                }
                OutputFile::Hls { dir, .. } => {
                    station.output(&name, encoding, Hls::new(HlsConfig::new(dir)))
                }
            };
        }
        if token.is_none() && !listen.is_local() {
            return Err(ConfigError::Invalid {
                field: "listen".into(),
                reason: format!(
                    "{} is not a loopback address: set token_file (and see the README on TLS)",
                    self.listen
                ),
            });
        }
        Ok(Loaded {
            listen,
            token,
            station,
            fallback: self.fallback,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_public_address_without_a_token_is_refused() {
        let c = EngineConfig::parse("listen: 0.0.0.0:7700\n", "t.yaml").unwrap();
        let e = c.load().unwrap_err().to_string();
        assert!(e.contains("listen") && e.contains("token"), "{e}");
        let c = EngineConfig::parse("listen: 127.0.0.1:7700\n", "t.yaml").unwrap();
        assert!(c.load().is_ok());
    }

    #[test]
    fn bad_fields_are_named() {
        let c = EngineConfig::parse(
            "listen: unix:/tmp/x.sock\noutputs:\n  - { name: a, type: hls, encoding: wav, dir: /tmp/x }\n",
            "t.yaml",
        )
        .unwrap();
        let e = c.load().unwrap_err().to_string();
        assert!(e.starts_with("outputs[0].encoding"), "{e}");
        let e = EngineConfig::parse("listen: x\nrat: 3\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rat"), "{e}");
    }
}
