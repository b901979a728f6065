//! The engine process's configuration: a small YAML file.
//!
//! ```yaml
//! listen: unix:/run/grimnir/wgmr.sock   # or 127.0.0.1:7700; another address needs a token
//! token_file: /etc/grimnir/wgmr.token   # optional on a socket or loopback
//! tls:                                  # optional, TCP only: mutual TLS
//!   cert_file: /etc/grimnir/wgmr-engine.crt
//!   key_file: /etc/grimnir/wgmr-engine.key
//!   client_ca_file: /etc/grimnir/controllers-ca.crt
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
//! live:                                 # optional: the Icecast source endpoint for DJs
//!   listen: 0.0.0.0:8010
//!   mounts: [/live]                     # optional, default [/live]
//!   station: 7f9c…                      # the station id live credentials must name
//!   key_file: /etc/grimnir/live.key     # the key the server signs live credentials with
//! ```
//!
//! A DJ's source client gives a live credential (the JWT `POST /stations/{id}/live/authorize`
//! returns) as its password; the engine checks its signature, expiry, audience and purpose,
//! and that it names this station.

use std::path::{Path, PathBuf};
use std::time::Duration;

use grimnir_dsp::DspGraph;
use serde::Deserialize;

use crate::encode::Encoding;
use crate::input::LiveConfig;
use crate::input::icecast::{Authenticator, Credentials};
use crate::output::hls::{Hls, HlsConfig};
use crate::output::icecast::{Icecast, IcecastConfig};
use crate::output::record::{RecordConfig, Recorder};
use crate::station::StationConfig;

use super::server::{Listen, ServerTls};

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
    /// The live source endpoint.
    #[serde(default)]
    pub live: Option<LiveFile>,
    /// Mutual TLS on a TCP listener.
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

/// The `tls` section: PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsFile {
    /// The engine's certificate chain.
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// The authority controllers' client certificates must come from.
    pub client_ca_file: PathBuf,
}

/// The live source endpoint as written in the file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LiveFile {
    /// `HOST:PORT` the endpoint listens on (port 0: the system chooses).
    pub listen: String,
    /// The mounts offered (default `/live`).
    #[serde(default)]
    pub mounts: Option<Vec<String>>,
    /// The station live credentials must name.
    pub station: String,
    /// A file holding the key live credentials are signed with (HS256, 32 bytes or more).
    pub key_file: PathBuf,
}

/// The audience of a live credential.
pub const LIVE_AUDIENCE: &str = "grimnir-live-source";
/// The purpose of a live credential.
pub const LIVE_PURPOSE: &str = "live_source";
/// The issuer of live credentials.
pub const LIVE_ISSUER: &str = "grimnir";

/// What a live credential says.
#[derive(Debug, Deserialize)]
struct LiveClaims {
    station: String,
    purpose: String,
}

/// Checks source clients' live credentials: HS256 JWTs signed with the station's live key,
/// given as the password.
pub struct LiveCredentials {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    station: String,
    mounts: Vec<String>,
}

impl std::fmt::Debug for LiveCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCredentials")
            .field("station", &self.station)
            .field("mounts", &self.mounts)
            .finish_non_exhaustive()
    }
}

impl LiveCredentials {
    /// Accepts credentials for `station` at `mounts`, signed with `key`.
    pub fn new(key: &[u8], station: impl Into<String>, mounts: Vec<String>) -> LiveCredentials {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[LIVE_AUDIENCE]);
        validation.set_issuer(&[LIVE_ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 5;
        LiveCredentials {
            key: jsonwebtoken::DecodingKey::from_secret(key),
            validation,
            station: station.into(),
            mounts,
        }
    }

    /// Whether `password` is a live credential for this station, still valid.
    pub fn check(&self, password: &str) -> Result<(), String> {
        let data = jsonwebtoken::decode::<LiveClaims>(password, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the live credential has expired".to_owned()
                }
                _ => "not a live credential for this engine".to_owned(),
            })?;
        if data.claims.purpose != LIVE_PURPOSE {
            return Err("not a live credential".into());
        }
        if data.claims.station != self.station {
            return Err("the live credential is for another station".into());
        }
        Ok(())
    }

    /// The mounts offered.
    pub fn mounts(&self) -> &[String] {
        &self.mounts
    }
}

impl Authenticator for LiveCredentials {
    fn allows(&self, credentials: &Credentials) -> bool {
        self.mounts.contains(&credentials.mount) && self.check(&credentials.password).is_ok()
    }
}

/// The live source endpoint, read and checked.
#[derive(Debug)]
#[non_exhaustive]
pub struct LiveLoaded {
    /// Where it listens.
    pub listen: std::net::SocketAddr,
    /// How live input is decoded and buffered.
    pub config: LiveConfig,
    /// Who may stream.
    pub credentials: LiveCredentials,
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
    /// The live source endpoint, if any.
    pub live: Option<LiveLoaded>,
    /// Mutual TLS, if configured.
    pub tls: Option<ServerTls>,
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
        let live = match self.live {
            Some(live) => Some(load_live(live, &station)?),
            None => None,
        };
        let tls = match &self.tls {
            Some(tls) => {
                if matches!(listen, Listen::Unix(_)) {
                    return Err(ConfigError::Invalid {
                        field: "tls".into(),
                        reason: "TLS is for a TCP listen address; a Unix socket is local".into(),
                    });
                }
                let pem = |path: &Path, what: &str| -> Result<String, ConfigError> {
                    let text = read(path)?;
                    if !text.contains("-----BEGIN ") {
                        return Err(ConfigError::Invalid {
                            field: format!("tls.{what}"),
                            reason: format!("{}: not PEM", path.display()),
                        });
                    }
                    Ok(text)
                };
                Some(ServerTls {
                    cert: pem(&tls.cert_file, "cert_file")?,
                    key: pem(&tls.key_file, "key_file")?,
                    client_ca: pem(&tls.client_ca_file, "client_ca_file")?,
                })
            }
            None => None,
        };
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
            live,
            tls,
        })
    }
}

fn load_live(live: LiveFile, station: &StationConfig) -> Result<LiveLoaded, ConfigError> {
    let invalid = |field: &str, reason: String| ConfigError::Invalid {
        field: format!("live.{field}"),
        reason,
    };
    let listen = live
        .listen
        .parse::<std::net::SocketAddr>()
        .map_err(|_| invalid("listen", format!("`{}` is not IP:PORT", live.listen)))?;
    let mounts = live.mounts.unwrap_or_else(|| vec!["/live".to_owned()]);
    if mounts.is_empty() {
        return Err(invalid("mounts", "give at least one mount".into()));
    }
    for (k, mount) in mounts.iter().enumerate() {
        if !mount.starts_with('/') || mount.len() < 2 || mount.chars().any(char::is_whitespace) {
            return Err(invalid(
                &format!("mounts[{k}]"),
                format!("`{mount}` is not a mount such as /live"),
            ));
        }
    }
    if live.station.trim().is_empty() {
        return Err(invalid("station", "empty".into()));
    }
    let key = std::fs::read(&live.key_file).map_err(|e| ConfigError::Read {
        path: live.key_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let key = key.trim_ascii();
    if key.len() < 32 {
        return Err(invalid(
            "key_file",
            format!(
                "{}: the key must be at least 32 bytes",
                live.key_file.display()
            ),
        ));
    }
    Ok(LiveLoaded {
        listen,
        config: LiveConfig::new(station.rate, station.channels),
        credentials: LiveCredentials::new(key, live.station, mounts),
    })
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

    fn credential(key: &[u8], station: &str, purpose: &str, exp: i64) -> String {
        let claims = serde_json::json!({
            "iss": LIVE_ISSUER, "aud": LIVE_AUDIENCE, "sub": "dj-1", "station": station,
            "mount": "m", "purpose": purpose, "iat": 0, "exp": exp, "jti": "j",
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key),
        )
        .unwrap()
    }

    #[test]
    fn live_credentials_are_checked_for_signature_station_purpose_and_expiry() {
        let key = [7u8; 32];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let later = i64::try_from(now).unwrap() + 300;
        let live = LiveCredentials::new(&key, "st-1", vec!["/live".into()]);
        assert!(
            live.check(&credential(&key, "st-1", LIVE_PURPOSE, later))
                .is_ok()
        );
        let e = live.check(&credential(&key, "st-2", LIVE_PURPOSE, later));
        assert!(e.unwrap_err().contains("another station"));
        assert!(
            live.check(&credential(&key, "st-1", "access", later))
                .is_err()
        );
        let e = live.check(&credential(&key, "st-1", LIVE_PURPOSE, later - 600));
        assert!(e.unwrap_err().contains("expired"));
        assert!(
            live.check(&credential(&[8u8; 32], "st-1", LIVE_PURPOSE, later))
                .is_err()
        );
        assert!(live.check("hackme").is_err());
        let ok = Credentials {
            mount: "/live".into(),
            user: "source".into(),
            password: credential(&key, "st-1", LIVE_PURPOSE, later),
        };
        assert!(live.allows(&ok));
        let elsewhere = Credentials {
            mount: "/other".into(),
            ..ok
        };
        assert!(!live.allows(&elsewhere));
    }

    #[test]
    fn the_tls_section_is_checked() {
        let dir = std::env::temp_dir().join(format!("grimnir-tls-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("x.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let text = dir.join("x.txt");
        std::fs::write(&text, "not a certificate").unwrap();
        let load = |listen: &str, key: &Path| {
            EngineConfig::parse(
                &format!(
                    "listen: {listen}\ntls: {{ cert_file: {}, key_file: {}, client_ca_file: {} }}\n",
                    pem.display(),
                    key.display(),
                    pem.display()
                ),
                "t.yaml",
            )
            .unwrap()
            .load()
        };
        let e = load("unix:/tmp/e.sock", &pem).unwrap_err().to_string();
        assert!(e.starts_with("tls") && e.contains("TCP"), "{e}");
        let e = load("127.0.0.1:0", &text).unwrap_err().to_string();
        assert!(e.starts_with("tls.key_file") && e.contains("PEM"), "{e}");
        assert!(load("127.0.0.1:0", &pem).unwrap().tls.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_live_section_is_checked() {
        let dir = std::env::temp_dir().join(format!("grimnir-live-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let short = dir.join("short.key");
        std::fs::write(&short, "too short\n").unwrap();
        let good = dir.join("good.key");
        std::fs::write(&good, "0123456789abcdef0123456789abcdef\n").unwrap();
        let load = |live: String| {
            EngineConfig::parse(&format!("listen: 127.0.0.1:0\nlive: {live}\n"), "t.yaml")
                .unwrap()
                .load()
        };
        let e = load(format!(
            "{{ listen: 127.0.0.1:0, station: s, key_file: {} }}",
            short.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("live.key_file") && e.contains("32 bytes"),
            "{e}"
        );
        let e = load(format!(
            "{{ listen: 127.0.0.1:0, station: s, key_file: {}, mounts: [live] }}",
            good.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("live.mounts[0]"), "{e}");
        let e = load(format!(
            "{{ listen: nowhere, station: s, key_file: {} }}",
            good.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("live.listen"), "{e}");
        let loaded = load(format!(
            "{{ listen: 127.0.0.1:0, station: s, key_file: {} }}",
            good.display()
        ))
        .unwrap();
        let live = loaded.live.unwrap();
        assert_eq!(live.credentials.mounts(), ["/live".to_owned()]);
        assert_eq!(live.config.rate, 48_000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
