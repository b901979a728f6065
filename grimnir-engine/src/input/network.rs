//! SRT and RTP inputs: a remote studio or a contribution encoder sending over the network.
//!
//! A [`NetworkInput`] is opened from a URL and decoded into the same jitter buffer as a live
//! source ([`super::LiveConfig`]):
//!
//! - `srt://HOST:PORT?mode=listener` waits for an SRT caller on that address (`mode=caller`
//!   connects to one); `passphrase=…` (10 to 79 characters) requires encryption with it, and
//!   `latency=MS` sets SRT's receive latency (default 125 ms). The stream may carry anything
//!   `decodebin` reads (MPEG-TS with MP2/AAC/Opus, or a bare audio stream).
//! - `rtp://HOST:PORT?encoding=NAME` listens for RTP on UDP. `encoding` is the RTP
//!   encoding name (`OPUS`, `MPA` for MP2/MP3, `L16`, `L24`, `MP4A-LATM`, …); `clock_rate`
//!   (default 48000, 90000 for MPA), `channels` (default 2) and `payload` (default 96) complete
//!   the caps a sender's SDP would give. Packets pass a 200 ms jitter buffer.
//!
//! Neither protocol says when a stream is over, so an input that delivers no audio for
//! [`LiveConfig::idle_timeout`] after it started has ended; what is buffered plays out first.

use std::time::{Duration, Instant};

use gst::prelude::*;

use super::{Decoding, LiveConfig, LiveStats};
use crate::EngineError;
use crate::mix::Source;

/// A network input's address, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkUrl {
    /// An SRT stream.
    Srt {
        /// The URL as given to `srtsrc`.
        uri: String,
        /// The passphrase, if the stream is encrypted.
        passphrase: Option<String>,
        /// Receive latency, ms.
        latency_ms: u32,
    },
    /// An RTP stream on UDP.
    Rtp {
        /// The address to listen on.
        host: String,
        /// The UDP port.
        port: u16,
        /// The RTP encoding name, upper case.
        encoding: String,
        /// The RTP clock rate.
        clock_rate: u32,
        /// Channels.
        channels: u32,
        /// The payload type.
        payload: u8,
    },
}

fn bad(url: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::Media {
        path: url.to_owned(),
        reason: why.to_string(),
    }
}

impl NetworkUrl {
    /// Parses and checks `srt://…` or `rtp://…`.
    pub fn parse(url: &str) -> Result<NetworkUrl, EngineError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(url, "give srt://HOST:PORT or rtp://HOST:PORT"))?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad(url, "the address needs a port, as in 127.0.0.1:9000"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(url, format!("`{port}` is not a port")))?;
        if host.is_empty() && scheme == "rtp" {
            return Err(bad(url, "give the address to listen on, such as 0.0.0.0"));
        }
        let mut params = std::collections::HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if params.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(bad(url, format!("`{k}` is given twice")));
            }
        }
        let number =
            |k: &str, default: u32, range: std::ops::RangeInclusive<u32>| match params.get(k) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| bad(url, format!("{k}={v}: give a number in {range:?}"))),
            };
        match scheme {
            "srt" => {
                let known = ["mode", "passphrase", "latency"];
                if let Some(k) = params.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(bad(url, format!("`{k}` is not an SRT option here")));
                }
                match params.get("mode").map(String::as_str) {
                    None | Some("listener" | "caller") => {}
                    Some(m) => return Err(bad(url, format!("mode={m}: listener or caller"))),
                }
                let passphrase = params.get("passphrase").cloned();
                if passphrase
                    .as_ref()
                    .is_some_and(|p| !(10..=79).contains(&p.len()))
                {
                    return Err(bad(url, "the passphrase must be 10 to 79 characters"));
                }
                let latency_ms = number("latency", 125, 20..=8000)?;
                let mode = params.get("mode").map_or("listener", String::as_str);
                Ok(NetworkUrl::Srt {
                    uri: format!("srt://{host}:{port}?mode={mode}"),
                    passphrase,
                    latency_ms,
                })
            }
            "rtp" => {
                let known = ["encoding", "clock_rate", "channels", "payload"];
                if let Some(k) = params.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(bad(url, format!("`{k}` is not an RTP option here")));
                }
                let encoding = params
                    .get("encoding")
                    .map(|e| e.to_ascii_uppercase())
                    .filter(|e| {
                        !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    })
                    .ok_or_else(|| bad(url, "give the RTP encoding, as in encoding=OPUS"))?;
                let default_rate = if encoding == "MPA" { 90_000 } else { 48_000 };
                let payload = number("payload", 96, 0..=127)?;
                Ok(NetworkUrl::Rtp {
                    host: host.to_owned(),
                    port,
                    clock_rate: number("clock_rate", default_rate, 8_000..=192_000)?,
                    channels: number("channels", 2, 1..=8)?,
                    payload: u8::try_from(payload).unwrap_or(96),
                    encoding,
                })
            }
            other => Err(bad(
                url,
                format!("{other}:// is not an input: use srt:// or rtp://"),
            )),
        }
    }
}

/// An SRT or RTP stream decoded into a jitter buffer, read by the mixer as a [`Source`].
pub struct NetworkInput {
    decoding: Decoding,
    idle: Duration,
    /// When audio last arrived, and how much had by then.
    last_audio: (Instant, u64),
    ended: bool,
}

impl std::fmt::Debug for NetworkInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkInput")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn make(name: &str) -> Result<gst::Element, EngineError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|e| EngineError::MissingElement {
            element: name.to_owned(),
            reason: e.to_string(),
        })
}

impl NetworkInput {
    /// Opens `url` (see the [module docs](self)) and starts receiving.
    pub fn open(url: &str, config: LiveConfig) -> Result<NetworkInput, EngineError> {
        let head: gst::Element = match NetworkUrl::parse(url)? {
            NetworkUrl::Srt {
                uri,
                passphrase,
                latency_ms,
            } => {
                let src = make("srtsrc")?;
                src.set_property("uri", &uri);
                src.set_property("latency", i32::try_from(latency_ms).unwrap_or(125));
                if let Some(p) = passphrase {
                    src.set_property("passphrase", &p);
                }
                src
            }
            NetworkUrl::Rtp {
                host,
                port,
                encoding,
                clock_rate,
                channels,
                payload,
            } => {
                let caps = gst::Caps::builder("application/x-rtp")
                    .field("media", "audio")
                    .field("encoding-name", encoding.as_str())
                    .field("clock-rate", i32::try_from(clock_rate).unwrap_or(48_000))
                    .field("payload", i32::from(payload))
                    .field("encoding-params", channels.to_string())
                    .build();
                let udp = make("udpsrc")?;
                udp.set_property("address", &host);
                udp.set_property("port", i32::from(port));
                udp.set_property("caps", &caps);
                let jitter = make("rtpjitterbuffer")?;
                jitter.set_property("latency", 200u32);
                let bin = gst::Bin::new();
                let fail = |e: gst::glib::BoolError| EngineError::Pipeline(e.to_string());
                bin.add_many([&udp, &jitter]).map_err(fail)?;
                udp.link(&jitter).map_err(fail)?;
                let pad = jitter.static_pad("src").ok_or_else(|| {
                    EngineError::Pipeline("rtpjitterbuffer has no src pad".into())
                })?;
                let ghost = gst::GhostPad::with_target(&pad).map_err(fail)?;
                bin.add_pad(&ghost).map_err(fail)?;
                bin.upcast()
            }
        };
        let decoding = Decoding::start(config, &head)?;
        Ok(NetworkInput {
            decoding,
            idle: config.idle_timeout,
            last_audio: (Instant::now(), 0),
            ended: false,
        })
    }

    /// Counters and the buffer's depth now.
    pub fn stats(&self) -> LiveStats {
        self.decoding.stats()
    }

    /// Whether the buffer holds its target depth (audio is arriving).
    pub fn is_ready(&self) -> bool {
        self.decoding.is_ready()
    }

    /// Why the input failed, if it did.
    pub fn error(&self) -> Option<String> {
        self.decoding.error()
    }
}

impl Source for NetworkInput {
    /// Fills `out` from the buffer, with silence while it refills; once the stream has
    /// failed or has been silent for the idle timeout after it started, what is left and
    /// then fewer frames.
    fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
        if !self.ended {
            let decoded = self.decoding.stats().decoded;
            if decoded != self.last_audio.1 {
                self.last_audio = (Instant::now(), decoded);
            } else if decoded > 0 && self.last_audio.0.elapsed() >= self.idle {
                self.decoding.end();
                self.ended = true;
            }
        }
        self.decoding.read(out)
    }
}

#[cfg(test)]
mod tests {
    use super::NetworkUrl;

    #[test]
    fn urls_are_parsed_and_refused_by_name() {
        let srt = NetworkUrl::parse("srt://0.0.0.0:9000?mode=listener&latency=200").unwrap();
        assert_eq!(
            srt,
            NetworkUrl::Srt {
                uri: "srt://0.0.0.0:9000?mode=listener".into(),
                passphrase: None,
                latency_ms: 200,
            }
        );
        let rtp = NetworkUrl::parse("rtp://0.0.0.0:5004?encoding=opus").unwrap();
        assert!(matches!(
            rtp,
            NetworkUrl::Rtp { ref encoding, clock_rate: 48_000, channels: 2, payload: 96, .. }
                if encoding == "OPUS"
        ));
        let mpa = NetworkUrl::parse("rtp://127.0.0.1:5004?encoding=MPA&payload=14").unwrap();
        assert!(matches!(
            mpa,
            NetworkUrl::Rtp {
                clock_rate: 90_000,
                payload: 14,
                ..
            }
        ));
        for (url, says) in [
            ("http://x:1", "http://"),
            ("srt://0.0.0.0", "port"),
            ("srt://0.0.0.0:0", "port"),
            ("srt://:9000?mode=rendezvous", "mode"),
            ("srt://:9000?passphrase=short", "passphrase"),
            ("srt://:9000?streamid=x", "streamid"),
            ("srt://:9000?mode=listener&latency=100&x=1", "`x`"),
            ("rtp://0.0.0.0:5004", "encoding"),
            ("rtp://:5004?encoding=OPUS", "address"),
            ("rtp://0.0.0.0:5004?encoding=OPUS&payload=300", "payload"),
            ("rtp://0.0.0.0:5004?encoding=OPUS&encoding=L16", "twice"),
        ] {
            let e = NetworkUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
