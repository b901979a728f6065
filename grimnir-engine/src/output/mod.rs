//! Outputs: where the encoded stream goes (Icecast, HLS, recording), each on its own thread.
//!
//! Every output is a worker thread fed through a bounded queue. The encoder side only ever
//! `try_send`s into that queue, so an output that stalls or fails can fill its own queue and
//! lose its own packets, but never holds up the encoders, the other outputs or the playout:
//! that is the engine's output isolation.
//!
//! The worker owns a [`Destination`] (an Icecast connection, a recording file, an HLS sink)
//! and keeps it open: when opening or writing fails it reports the output `Down`, discards
//! what arrives meanwhile, and tries again after a backoff that doubles from
//! [`Backoff::initial`] up to [`Backoff::max`]. Packets a format marks as stream headers (Ogg
//! and FLAC have them) are remembered and written first on every (re)open, so each new
//! connection or file starts with a decodable stream.

pub mod hls;

pub mod icecast;
pub mod ogg;
pub mod record;

pub use icecast::{Icecast, IcecastConfig};
pub use record::{RecordConfig, Recorder};

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long stopping an output waits for its worker to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long an output stays [`OutputState::Degraded`] after it last lost packets.
const DEGRADED_HOLD: Duration = Duration::from_secs(5);

/// One encoded packet of a format's stream.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The encoded bytes, with their timestamps.
    pub buffer: gst::Buffer,
    /// A stream header (Ogg's identification and comment pages, FLAC's `fLaC` and metadata
    /// blocks): written again at the start of every new connection or file.
    pub header: bool,
}

impl Packet {
    /// A packet holding a copy of `bytes`.
    pub fn from_slice(bytes: &[u8], header: bool) -> Packet {
        Packet {
            buffer: gst::Buffer::from_slice(bytes.to_vec()),
            header,
        }
    }
}

/// What is on air, for the outputs that carry metadata (Icecast's stream title).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NowPlaying {
    /// The artist, if known.
    pub artist: Option<String>,
    /// The title.
    pub title: String,
}

impl NowPlaying {
    /// `Artist - Title`, or the title alone.
    pub fn stream_title(&self) -> String {
        match &self.artist {
            Some(a) if !a.is_empty() => format!("{a} - {}", self.title),
            _ => self.title.clone(),
        }
    }
}

/// What an output's format is, as its destination needs to know it when it opens.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The encoded stream's caps (`audio/mpeg`, `audio/ogg`, …).
    pub caps: gst::Caps,
    /// Its MIME type for HTTP (`audio/mpeg`, `audio/aac`, `audio/ogg`, `audio/flac`).
    pub content_type: &'static str,
    /// The usual file extension, without the dot.
    pub extension: &'static str,
    /// Nominal bitrate, kbit/s, if the format has one.
    pub bitrate: Option<u32>,
    /// Sample rate of the encoded audio, Hz.
    pub rate: u32,
    /// Channel count.
    pub channels: u32,
}

/// Where an output's packets go. Implementations do blocking I/O: they run on the output's
/// own thread and nowhere else.
pub trait Destination: Send + 'static {
    /// Connects or creates the file. `headers` are the stream's header packets seen so far,
    /// to be written before anything else (empty for MP3 and AAC, and on the first open,
    /// which comes before the stream has begun: then the headers arrive through
    /// [`Destination::write`] as packets with `header: true`).
    fn open(&mut self, stream: &StreamInfo, headers: &[Packet]) -> Result<(), String>;
    /// Writes one packet. An error closes the destination; the worker opens it again later.
    fn write(&mut self, packet: &Packet) -> Result<(), String>;
    /// Announces what is now on air. Destinations without metadata ignore it.
    fn now_playing(&mut self, _meta: &NowPlaying) -> Result<(), String> {
        Ok(())
    }
    /// Closes the connection or file (the worker may open it again).
    fn close(&mut self);
    /// The next problem the destination met that did not stop it (an old recording it could
    /// not delete, a final flush that failed on close), oldest first. The worker asks after
    /// every open, write and close, and reports each one in the output's health.
    fn take_warning(&mut self) -> Option<String> {
        None
    }
}

/// How long to wait before opening a failed output again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait; each failure doubles the wait up to this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// An output's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OutputState {
    /// Connected (or writing) and keeping up.
    Up,
    /// Connected, but it lost packets in the last few seconds: it is not keeping up.
    Degraded,
    /// Not connected: waiting to try again.
    #[default]
    Down,
}

impl OutputState {
    /// `up`, `degraded` or `down`, as the event stream names them.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputState::Up => "up",
            OutputState::Degraded => "degraded",
            OutputState::Down => "down",
        }
    }
}

/// An output's health and counters, as telemetry reports them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputHealth {
    /// The output's name.
    pub name: String,
    /// Up, degraded or down.
    pub state: OutputState,
    /// Bytes written to the destination.
    pub bytes: u64,
    /// Packets lost: dropped because the queue was full, or discarded while down.
    pub dropped: u64,
    /// Times the destination was opened after the first.
    pub reconnects: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Problems that did not stop the output (see [`Destination::take_warning`]).
    pub warnings: u64,
    /// The last of them, if any.
    pub last_warning: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    health: OutputHealth,
    /// When packets were last lost while connected.
    last_loss: Option<Instant>,
    connected: bool,
    /// The latest title, not yet taken by the worker.
    title: Option<NowPlaying>,
    /// The output is stopping: the worker ends after its current write.
    stopping: bool,
}

enum Message {
    Packet(Packet),
    /// A new title is waiting in [`Shared::title`].
    Title,
    Stop,
}

/// A running output: its queue and its worker thread. Dropping it stops the worker.
#[derive(Debug)]
pub struct Output {
    name: String,
    queue: SyncSender<Message>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the worker ends (in a mutex so that an output is `Sync`).
    exited: Mutex<Receiver<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A worker that panicked left plain counters behind: still worth reading.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Output {
    /// Starts an output named `name` writing `stream` into `destination`, with room for
    /// `capacity` packets in its queue.
    pub fn start(
        name: &str,
        stream: StreamInfo,
        destination: Box<dyn Destination>,
        capacity: usize,
        backoff: Backoff,
    ) -> Result<Output, crate::EngineError> {
        let (queue, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        let shared = Arc::new(Mutex::new(Shared {
            health: OutputHealth {
                name: name.to_owned(),
                ..OutputHealth::default()
            },
            ..Shared::default()
        }));
        let (exit_guard, exited) = std::sync::mpsc::channel();
        let worker = Worker {
            _exit_guard: exit_guard,
            stream,
            destination,
            backoff,
            shared: Arc::clone(&shared),
            headers: Vec::new(),
            headers_done: false,
            now_playing: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("output {name}"))
            .spawn(move || worker.run(rx))
            .map_err(|e| crate::EngineError::Pipeline(format!("output {name}: {e}")))?;
        Ok(Output {
            name: name.to_owned(),
            queue,
            shared,
            thread: Some(thread),
            exited: Mutex::new(exited),
        })
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands a packet to the output without waiting: when its queue is full the packet is
    /// dropped and counted, and the output reports itself degraded.
    pub fn send(&self, packet: Packet) {
        let header = packet.header;
        let message = Message::Packet(packet);
        let result = if header {
            // Headers come once, at the start of the stream, into an empty queue; losing one
            // would leave every later connection undecodable, so they are worth a wait.
            self.queue.send(message).map_err(|_| ())
        } else {
            self.queue.try_send(message).map_err(|e| match e {
                TrySendError::Full(_) => {
                    let mut s = lock(&self.shared);
                    s.health.dropped += 1;
                    s.last_loss = Some(Instant::now());
                }
                TrySendError::Disconnected(_) => {}
            })
        };
        let _ = result;
    }

    /// Announces what is now on air (Icecast's stream title). Never waits: a newer title
    /// replaces one the worker has not taken yet.
    pub fn now_playing(&self, meta: NowPlaying) {
        lock(&self.shared).title = Some(meta);
        let _ = self.queue.try_send(Message::Title);
    }

    /// The output's health now.
    pub fn health(&self) -> OutputHealth {
        let mut s = lock(&self.shared);
        if s.connected {
            let degraded = s.last_loss.is_some_and(|t| t.elapsed() < DEGRADED_HOLD);
            s.health.state = if degraded {
                OutputState::Degraded
            } else {
                OutputState::Up
            };
        } else {
            s.health.state = OutputState::Down;
        }
        s.health.clone()
    }

    /// Stops the worker after it has written what is queued.
    pub fn stop(mut self) {
        self.shut_down();
    }

    /// Asks the worker to finish what is queued and waits for it, a few seconds at most: a
    /// destination stuck in a write is left behind rather than holding up the caller.
    fn shut_down(&mut self) {
        if self.queue.try_send(Message::Stop).is_err() {
            lock(&self.shared).stopping = true;
        }
        if let Some(thread) = self.thread.take() {
            let exited = self.exited.lock().unwrap_or_else(|p| p.into_inner());
            match exited.recv_timeout(STOP_GRACE) {
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = thread.join();
                }
                _ => lock(&self.shared).stopping = true,
            }
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.shut_down();
    }
}

struct Worker {
    /// Dropped when the worker ends, which tells [`Output::shut_down`].
    _exit_guard: std::sync::mpsc::Sender<()>,
    stream: StreamInfo,
    destination: Box<dyn Destination>,
    backoff: Backoff,
    shared: Arc<Mutex<Shared>>,
    headers: Vec<Packet>,
    /// A non-header packet came after the headers: the next header starts a new set.
    headers_done: bool,
    now_playing: Option<NowPlaying>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Message>) {
        let mut wait = self.backoff.initial;
        let mut opened_before = false;
        'outer: loop {
            // Open (or reopen) the destination.
            match self.destination.open(&self.stream, &self.headers) {
                Ok(()) => {
                    let mut s = lock(&self.shared);
                    if opened_before {
                        s.health.reconnects += 1;
                    }
                    s.connected = true;
                    drop(s);
                    opened_before = true;
                    wait = self.backoff.initial;
                    self.collect_warnings();
                    self.take_title();
                    self.announce();
                }
                Err(e) => {
                    self.note_error(e);
                    // Down: discard what arrives until it is time to try again.
                    let until = Instant::now() + wait;
                    wait = (wait * 2).min(self.backoff.max);
                    loop {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            continue 'outer;
                        }
                        match rx.recv_timeout(left) {
                            Ok(Message::Packet(p)) => {
                                self.remember(&p);
                                if !p.header {
                                    lock(&self.shared).health.dropped += 1;
                                }
                            }
                            Ok(Message::Title) => self.take_title(),
                            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => {
                                return;
                            }
                            Err(RecvTimeoutError::Timeout) => continue 'outer,
                        }
                    }
                }
            }
            // Up: write what arrives until it fails or the output stops.
            loop {
                let message = match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break 'outer,
                };
                let result = match message {
                    Message::Packet(p) => {
                        self.remember(&p);
                        let r = self.destination.write(&p);
                        self.collect_warnings();
                        let mut s = lock(&self.shared);
                        if r.is_ok() {
                            s.health.bytes += p.buffer.size() as u64;
                        }
                        if s.stopping {
                            break 'outer;
                        }
                        // A title whose message found the queue full rides on a packet.
                        if let Some(m) = s.title.take() {
                            drop(s);
                            self.now_playing = Some(m);
                            self.announce();
                        }
                        r
                    }
                    Message::Title => {
                        self.take_title();
                        self.announce();
                        Ok(())
                    }
                    Message::Stop => break 'outer,
                };
                if let Err(e) = result {
                    self.destination.close();
                    self.collect_warnings();
                    lock(&self.shared).connected = false;
                    self.note_error(e);
                    continue 'outer;
                }
            }
        }
        self.destination.close();
        self.collect_warnings();
        lock(&self.shared).connected = false;
    }

    /// Moves the destination's warnings into the output's health.
    fn collect_warnings(&mut self) {
        while let Some(w) = self.destination.take_warning() {
            let mut s = lock(&self.shared);
            s.health.warnings += 1;
            s.health.last_warning = Some(w);
        }
    }

    /// Takes the latest title the station announced, if there is a new one.
    fn take_title(&mut self) {
        if let Some(m) = lock(&self.shared).title.take() {
            self.now_playing = Some(m);
        }
    }

    /// Sends the current title; a refused title is worth reporting, not a reconnect.
    fn announce(&mut self) {
        if let Some(m) = &self.now_playing
            && let Err(e) = self.destination.now_playing(m)
        {
            lock(&self.shared).health.last_error = Some(e);
        }
    }

    fn remember(&mut self, p: &Packet) {
        if p.header {
            if self.headers_done {
                self.headers.clear();
                self.headers_done = false;
            }
            self.headers.push(p.clone());
        } else if !self.headers.is_empty() {
            self.headers_done = true;
        }
    }

    fn note_error(&self, e: String) {
        let mut s = lock(&self.shared);
        s.connected = false;
        s.health.last_error = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is given; fails to open as long as `refuse` says so.
    #[derive(Clone, Default)]
    struct Probe {
        log: Arc<Mutex<Vec<String>>>,
        refuse: Arc<Mutex<u32>>,
        stall: Arc<Mutex<Option<Duration>>>,
        /// Warnings it will report, one after each write of 7 bytes and one on close.
        warnings: Arc<Mutex<std::collections::VecDeque<String>>>,
    }

    impl Destination for Probe {
        fn open(&mut self, _stream: &StreamInfo, headers: &[Packet]) -> Result<(), String> {
            let mut refuse = self.refuse.lock().unwrap_or_else(|p| p.into_inner());
            if *refuse > 0 {
                *refuse -= 1;
                return Err("refused".into());
            }
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.push("open".into());
            for h in headers {
                log.push(format!("header {}", h.buffer.size()));
            }
            Ok(())
        }

        fn write(&mut self, packet: &Packet) -> Result<(), String> {
            let stall = *self.stall.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = stall {
                // Stuck until the test ends (the worker thread is left behind).
                std::thread::sleep(d);
            }
            let size = packet.buffer.size();
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("write {size}"));
            if size == 99 {
                return Err("broken pipe".into());
            }
            if size == 7 {
                self.warnings
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back("old file kept".into());
            }
            Ok(())
        }

        fn take_warning(&mut self) -> Option<String> {
            self.warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
        }

        fn now_playing(&mut self, meta: &NowPlaying) -> Result<(), String> {
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("title {}", meta.stream_title()));
            Ok(())
        }

        fn close(&mut self) {
            self.log
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push("close".into());
            self.warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back("final flush failed".into());
        }
    }

    fn stream() -> StreamInfo {
        crate::encode::Encoding::Flac.stream_info(48_000, 2)
    }

    fn fast() -> Backoff {
        Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        }
    }

    fn wait_for(output: &Output, what: impl Fn(&OutputHealth) -> bool) -> OutputHealth {
        for _ in 0..400 {
            let h = output.health();
            if what(&h) {
                return h;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        output.health()
    }

    #[test]
    fn a_reopened_destination_gets_the_headers_and_the_title_again() {
        gst::init().ok();
        let probe = Probe::default();
        *probe.refuse.lock().unwrap_or_else(|p| p.into_inner()) = 2;
        let output = Output::start("probe", stream(), Box::new(probe.clone()), 64, fast())
            .unwrap_or_else(|e| panic!("{e}"));
        output.send(Packet::from_slice(&[0; 4], true));
        output.send(Packet::from_slice(&[0; 5], true));
        output.now_playing(NowPlaying {
            artist: None,
            title: "One".into(),
        });
        let h = wait_for(&output, |h| h.state == OutputState::Up);
        assert_eq!(h.state, OutputState::Up, "{h:?}");
        assert_eq!(h.last_error.as_deref(), Some("refused"));
        output.send(Packet::from_slice(&[0; 10], false));
        // A write that fails: the worker closes, reopens, replays headers and title.
        output.send(Packet::from_slice(&[0; 99], false));
        output.send(Packet::from_slice(&[0; 11], false));
        let h = wait_for(&output, |h| h.reconnects == 1 && h.state == OutputState::Up);
        output.stop();
        assert_eq!(h.reconnects, 1, "{h:?}");
        let log = probe.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let expected = [
            "open",
            "header 4",
            "header 5",
            "title One",
            "write 10",
            "write 99",
            "close",
            "open",
            "header 4",
            "header 5",
            "title One",
            "write 11",
            "close",
        ];
        // The first open may come before or after the headers were queued.
        let tail = &log[log.len() - expected.len() + 3..];
        assert_eq!(tail, &expected[3..], "{log:?}");
    }

    #[test]
    fn warnings_are_counted_without_taking_the_output_down() {
        gst::init().ok();
        let probe = Probe::default();
        let output = Output::start("probe", stream(), Box::new(probe.clone()), 64, fast())
            .unwrap_or_else(|e| panic!("{e}"));
        output.send(Packet::from_slice(&[0; 7], false));
        output.send(Packet::from_slice(&[0; 7], false));
        let h = wait_for(&output, |h| h.warnings == 2);
        assert_eq!((h.state, h.warnings), (OutputState::Up, 2), "{h:?}");
        assert_eq!(h.last_warning.as_deref(), Some("old file kept"));
        assert_eq!(h.last_error, None);
        // A write that fails closes the destination: what its close reports is counted too.
        output.send(Packet::from_slice(&[0; 99], false));
        let h = wait_for(&output, |h| h.warnings == 3);
        assert_eq!(h.warnings, 3, "{h:?}");
        assert_eq!(h.last_warning.as_deref(), Some("final flush failed"));
        output.stop();
    }

    #[test]
    fn a_stalled_destination_loses_its_own_packets_and_reports_degraded() {
        gst::init().ok();
        let probe = Probe::default();
        let output = Output::start("slow", stream(), Box::new(probe.clone()), 4, fast())
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = wait_for(&output, |h| h.state == OutputState::Up);
        // The destination hangs on its first write until released.
        *probe.stall.lock().unwrap_or_else(|p| p.into_inner()) = Some(Duration::from_secs(3600));
        let output = Arc::new(output);
        let (done, finished) = std::sync::mpsc::channel();
        let sender = Arc::clone(&output);
        std::thread::spawn(move || {
            for _ in 0..40 {
                sender.send(Packet::from_slice(&[0; 8], false));
            }
            let _ = done.send(());
        });
        // The sender finishes while the destination is still stuck: it never waits.
        assert!(
            finished.recv_timeout(Duration::from_secs(30)).is_ok(),
            "send() waited for a stalled destination"
        );
        let h = output.health();
        assert_eq!(h.state, OutputState::Degraded, "{h:?}");
        assert!(h.dropped >= 35, "{h:?}");
    }
}
