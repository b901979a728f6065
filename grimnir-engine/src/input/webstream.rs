//! Webstreams: an HTTP or ICY stream (another station, a network feed) relayed on air, with a
//! chain of fallback URLs.
//!
//! A [`Webstream`] plays its first URL for as long as it works. When that stream fails (the
//! server refuses, answers an error, stops sending for [`WebstreamConfig::timeout`], closes
//! the connection, or sends something that does not decode), the next URL is opened while
//! what is buffered plays out, and so on down the chain. While it plays a fallback, the
//! first URL is tried again every [`WebstreamConfig::retry_primary`]; once it has filled its
//! buffer it takes over again. When every URL has failed in a row, the webstream ends with
//! the reasons, so the station's own fallback (or the next item) takes the air rather than
//! silence.
//!
//! Its health, reported through the callback given to [`Webstream::start`] at every change:
//! [`WebstreamHealth::Healthy`] on the first URL, [`WebstreamHealth::Degraded`] on a
//! fallback, [`WebstreamHealth::Down`] while no URL plays.
//!
//! Each URL is read by GStreamer's `souphttpsrc` (HTTP and HTTPS, redirects, ICY metadata)
//! into the same decoder and jitter buffer a live source uses ([`super::LiveConfig`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Decoding, LiveConfig};
use crate::EngineError;
use crate::mix::Source;

/// How often the watcher looks at the streams.
const TICK: Duration = Duration::from_millis(50);

/// How a webstream is read.
#[derive(Debug, Clone, PartialEq)]
pub struct WebstreamConfig {
    /// The URLs, `http://` or `https://`, the primary first.
    pub urls: Vec<String>,
    /// The decoder's format and the jitter buffer.
    pub live: LiveConfig,
    /// A stream that takes longer than this to connect or stops sending this long has
    /// failed (whole seconds, at least 1; 5 s by default).
    pub timeout: Duration,
    /// While a fallback plays, how often the primary is tried again (30 s).
    pub retry_primary: Duration,
}

impl WebstreamConfig {
    /// `urls` decoded with `live`, with the default timeout and retry.
    pub fn new(urls: Vec<String>, live: LiveConfig) -> WebstreamConfig {
        WebstreamConfig {
            urls,
            live,
            timeout: Duration::from_secs(5),
            retry_primary: Duration::from_secs(30),
        }
    }
}

/// How well a webstream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebstreamHealth {
    /// The first URL plays.
    Healthy,
    /// A fallback URL plays.
    Degraded,
    /// No URL plays: opening the next one, or every one has failed.
    Down,
}

impl WebstreamHealth {
    /// `healthy`, `degraded` or `down`, as the server's webstream table stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            WebstreamHealth::Healthy => "healthy",
            WebstreamHealth::Degraded => "degraded",
            WebstreamHealth::Down => "down",
        }
    }
}

/// A webstream's state, as reported at every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebstreamStatus {
    /// How it is doing.
    pub health: WebstreamHealth,
    /// The index in [`WebstreamConfig::urls`] of the URL playing (or being opened).
    pub url: usize,
    /// How many times it moved to another URL.
    pub switches: u64,
    /// The last failure: the URL and what happened.
    pub last_error: Option<String>,
}

/// Called with the status at every change, from the webstream's own thread.
pub type StatusCallback = Box<dyn Fn(&WebstreamStatus) + Send>;

struct State {
    /// The stream on air.
    current: Option<Decoding>,
    /// Index of `current`'s URL.
    index: usize,
    /// The next URL's stream, opening while `current` plays out what it has.
    next: Option<(usize, Decoding)>,
    /// The primary, tried again while a fallback plays.
    probe: Option<(Decoding, Instant)>,
    /// URLs failed in a row, without audio from any.
    failures: usize,
    /// Every URL failed: why.
    exhausted: Option<String>,
    status: WebstreamStatus,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A webstream, read by the mixer as a [`Source`]. Dropping it closes every connection.
pub struct Webstream {
    shared: Arc<Shared>,
    channels: usize,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Webstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webstream")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Checks a webstream URL: `http://` or `https://` with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}`: a webstream URL starts with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` is not a URL with a host"));
    }
    Ok(())
}

fn open(config: &WebstreamConfig, index: usize) -> Result<Decoding, EngineError> {
    let url = &config.urls[index];
    let src = gst::ElementFactory::make("souphttpsrc")
        .property("location", url)
        .property("is-live", true)
        .property("iradio-mode", true)
        .property(
            "timeout",
            u32::try_from(config.timeout.as_secs().max(1)).unwrap_or(u32::MAX),
        )
        .property("retries", 0i32)
        .property(
            "user-agent",
            concat!("grimnir-engine/", env!("CARGO_PKG_VERSION")),
        )
        .build()
        .map_err(|e| EngineError::MissingElement {
            element: "souphttpsrc".into(),
            reason: e.to_string(),
        })?;
    Decoding::start(config.live, &src)
}

impl Webstream {
    /// Opens the first URL and starts watching. Every URL is checked first: a bad one is an
    /// error and nothing is opened.
    pub fn start(
        config: WebstreamConfig,
        on_status: StatusCallback,
    ) -> Result<Webstream, EngineError> {
        if config.urls.is_empty() {
            return Err(EngineError::Media {
                path: "webstream".into(),
                reason: "it needs at least one URL".into(),
            });
        }
        for url in &config.urls {
            check_url(url).map_err(|reason| EngineError::Media {
                path: "webstream".into(),
                reason,
            })?;
        }
        let first = open(&config, 0)?;
        let status = WebstreamStatus {
            health: WebstreamHealth::Down,
            url: 0,
            switches: 0,
            last_error: None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current: Some(first),
                index: 0,
                next: None,
                probe: None,
                failures: 0,
                exhausted: None,
                status,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let channels = config.live.channels;
        let watched = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("webstream".into())
            .spawn(move || watch(&watched, &config, &on_status))
            .map_err(|e| EngineError::Pipeline(format!("cannot start a webstream thread: {e}")))?;
        Ok(Webstream {
            shared,
            channels,
            thread: Some(thread),
        })
    }

    /// Its state now.
    pub fn status(&self) -> WebstreamStatus {
        lock(&self.shared).status.clone()
    }
}

/// The watcher: moves down the chain when a stream fails, back to the primary when it
/// recovers, and reports every change.
fn watch(shared: &Shared, config: &WebstreamConfig, on_status: &StatusCallback) {
    let mut reported: Option<WebstreamStatus> = None;
    let mut last_probe = Instant::now();
    loop {
        // Streams to drop outside the lock: taking a pipeline down can take a moment.
        let mut dropped: Vec<Decoding> = Vec::new();
        let status = {
            let mut s = lock(shared);
            if s.stop {
                break;
            }
            step(&mut s, config, &mut dropped, &mut last_probe);
            s.status.clone()
        };
        drop(dropped);
        if reported.as_ref() != Some(&status) {
            on_status(&status);
            reported = Some(status);
        }
        let s = lock(shared);
        if s.stop {
            break;
        }
        let _ = shared.wake.wait_timeout(s, TICK);
    }
}

fn step(
    s: &mut State,
    config: &WebstreamConfig,
    dropped: &mut Vec<Decoding>,
    last_probe: &mut Instant,
) {
    if s.exhausted.is_some() {
        return;
    }
    let n = config.urls.len();
    // The stream on air: playing, failing, or done.
    let (ended, finished, error, heard) = match &s.current {
        Some(c) => (
            c.has_ended(),
            c.is_finished(),
            c.error(),
            c.stats().decoded > 0,
        ),
        None => (true, true, None, false),
    };
    if heard && !ended {
        s.failures = 0;
        s.status.health = if s.index == 0 {
            WebstreamHealth::Healthy
        } else {
            WebstreamHealth::Degraded
        };
    }
    if ended && s.next.is_none() {
        let url = &config.urls[s.index];
        let reason = error.unwrap_or_else(|| "the server closed the stream".into());
        s.status.last_error = Some(format!("{url}: {reason}"));
        // A stream that played starts a new round: each URL gets one more try, the one
        // that just failed last. One that never played counts against the round.
        if heard {
            s.failures = 0;
        } else {
            s.failures += 1;
        }
        if s.failures >= n {
            s.exhausted = Some(format!(
                "every URL of the webstream failed; last: {}",
                s.status.last_error.as_deref().unwrap_or("")
            ));
            s.status.health = WebstreamHealth::Down;
            return;
        }
        let index = (s.index + 1) % n;
        match open(config, index) {
            Ok(d) => s.next = Some((index, d)),
            Err(e) => {
                s.status.last_error = Some(format!("{}: {e}", config.urls[index]));
                s.failures = n;
                s.exhausted = Some(format!("cannot open the next URL: {e}"));
                s.status.health = WebstreamHealth::Down;
                return;
            }
        }
    }
    // Move on once what the failed stream had is played.
    if finished && let Some((index, next)) = s.next.take() {
        if let Some(old) = s.current.replace(next) {
            dropped.push(old);
        }
        s.index = index;
        s.status.url = index;
        s.status.switches += 1;
        s.status.health = WebstreamHealth::Down;
    }
    // Back to the primary once it works again.
    if s.index != 0 && s.next.is_none() {
        let probe_state = s
            .probe
            .as_ref()
            .map(|(p, t)| (p.is_ready(), p.has_ended(), t.elapsed()));
        match probe_state {
            Some((true, false, _)) => {
                if let Some((probe, _)) = s.probe.take()
                    && let Some(old) = s.current.replace(probe)
                {
                    dropped.push(old);
                }
                s.index = 0;
                s.status.url = 0;
                s.status.switches += 1;
                s.status.health = WebstreamHealth::Healthy;
                s.failures = 0;
            }
            Some((_, true, _)) => {
                if let Some((probe, _)) = s.probe.take() {
                    dropped.push(probe);
                }
                *last_probe = Instant::now();
            }
            Some((false, false, age)) if age > config.timeout * 2 => {
                if let Some((probe, _)) = s.probe.take() {
                    dropped.push(probe);
                }
                *last_probe = Instant::now();
            }
            Some(_) => {}
            None if last_probe.elapsed() >= config.retry_primary => {
                *last_probe = Instant::now();
                if let Ok(p) = open(config, 0) {
                    s.probe = Some((p, Instant::now()));
                }
            }
            None => {}
        }
    }
}

impl Source for Webstream {
    /// Always fills `out` (silence while a stream opens or refills) until every URL has
    /// failed; then the reasons, which end the item.
    fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
        let ch = self.channels.max(1);
        let wanted = out.len() - out.len() % ch;
        let mut s = lock(&self.shared);
        if let Some(reason) = &s.exhausted {
            return Err(reason.clone());
        }
        let written = match s.current.as_mut() {
            Some(c) => c.read(&mut out[..wanted]).map_or(0, |frames| frames * ch),
            None => 0,
        };
        out[written..wanted].fill(0.0);
        Ok(wanted / ch)
    }
}

impl Drop for Webstream {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8000/stream").is_ok());
        assert!(check_url("https://radio.example/live.mp3?x=1").is_ok());
        assert!(check_url("ftp://radio.example/x").is_err());
        assert!(check_url("http:///nohost").is_err());
        assert!(check_url("http://a b/").is_err());
        assert!(check_url("/media/x.mp3").is_err());
    }
}
