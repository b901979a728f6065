//! Live inputs: encoded audio arriving over the network, decoded and buffered for the mixer.
//!
//! - [`icecast::SourceListener`] is an Icecast/Shoutcast *source* endpoint: what BUTT, Mixxx
//!   and `ffmpeg … -f mp3 icecast://dj:pw@host:port/live` connect to. It checks each DJ's
//!   credentials through a callback and hands every accepted connection over as a
//!   [`LiveSource`].
//! - [`LiveSource`] decodes the stream (MP3, Ogg Vorbis/Opus, AAC, FLAC: whatever GStreamer's
//!   `decodebin` recognizes) to the station's format and keeps it in a jitter buffer that the
//!   mixer reads as a [`Source`].
//!
//! # The jitter buffer
//!
//! Audio from the network arrives in bursts and sometimes stops for a moment. The buffer
//! starts playing once it holds its *target* depth ([`LiveConfig::target`], 500 ms by
//! default). When it runs dry it plays silence, and it resumes only when the target depth is
//! back: every gap costs its own length in silence once, and the buffer is as deep after ten
//! gaps as after none (the failure of AzuraCast #7433 was a buffer that shrank with every
//! gap until the stream stuttered). Audio beyond [`LiveConfig::max`] (a client sending
//! faster than real time) is dropped from the oldest end and counted.
//!
//! The source ends (the mixer's item ends) when the connection closes or stays silent past
//! [`LiveConfig::idle_timeout`], once what is buffered has played.

pub mod icecast;
pub mod network;
pub mod webstream;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::EngineError;
use crate::mix::Source;

/// How a live input is decoded and buffered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveConfig {
    /// The station's sample rate, Hz.
    pub rate: u32,
    /// The station's channel count.
    pub channels: usize,
    /// Audio held before playing starts, and again after the buffer ran dry.
    pub target: Duration,
    /// The most audio held; older audio is dropped beyond it.
    pub max: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl LiveConfig {
    /// A 500 ms target, 5 s at most, 10 s idle timeout.
    pub fn new(rate: u32, channels: usize) -> LiveConfig {
        LiveConfig {
            rate,
            channels,
            target: Duration::from_millis(500),
            max: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
        }
    }

    fn frames(&self, d: Duration) -> usize {
        (d.as_secs_f64() * f64::from(self.rate)).round() as usize
    }
}

/// What a live input has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveStats {
    /// Frames decoded into the buffer.
    pub decoded: u64,
    /// Frames given to the mixer, silence included.
    pub played: u64,
    /// Times the buffer ran dry while connected.
    pub underruns: u64,
    /// Frames of silence played while refilling after running dry.
    pub silence: u64,
    /// Frames dropped because the buffer was full.
    pub dropped: u64,
    /// Frames buffered now.
    pub depth: u64,
}

#[derive(Debug, Default)]
struct Buffer {
    samples: VecDeque<f32>,
    /// Playing (true) or filling up to the target (false).
    playing: bool,
    /// The input has ended: no more audio will come.
    ended: bool,
    /// Why it ended, when not by a clean close.
    error: Option<String>,
    stats: LiveStats,
}

#[derive(Debug, Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    filled: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Buffer> {
    shared.buffer.lock().unwrap_or_else(|p| p.into_inner())
}

/// An encoded stream decoded into a jitter buffer: the part a [`LiveSource`] (fed bytes) and
/// a [`webstream::Webstream`] (reading a URL) share. The pipeline is `HEAD → decodebin →
/// audioconvert → audioresample → appsink`.
pub(crate) struct Decoding {
    config: LiveConfig,
    shared: Arc<Shared>,
    pipeline: gst::Pipeline,
}

/// A live stream being decoded into a jitter buffer, read by the mixer as a [`Source`].
///
/// Feed it the encoded bytes with [`LiveSource::feeder`]; read it from the playout thread.
pub struct LiveSource {
    decoding: Decoding,
    appsrc: gst_app::AppSrc,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("config", &self.decoding.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl LiveSource {
    /// A decoder for an encoded stream (its own bytes tell its format), started and waiting
    /// for bytes.
    pub fn start(config: LiveConfig) -> Result<LiveSource, EngineError> {
        let appsrc = gst_app::AppSrc::builder()
            .is_live(true)
            .stream_type(gst_app::AppStreamType::Stream)
            .format(gst::Format::Bytes)
            // A bounded queue toward the decoder: the network reader blocks, not memory.
            .max_bytes(256 * 1024)
            .block(true)
            .build();
        let decoding = Decoding::start(config, appsrc.upcast_ref())?;
        Ok(LiveSource {
            decoding,
            appsrc,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The writing side: hand it the encoded bytes as they arrive.
    pub fn feeder(&self) -> Feeder {
        Feeder {
            appsrc: self.appsrc.clone(),
            closed: Arc::clone(&self.closed),
        }
    }

    /// Counters and the buffer's depth now.
    pub fn stats(&self) -> LiveStats {
        self.decoding.stats()
    }

    /// Whether the input has ended (closed, or failed) and its buffer has played out.
    pub fn is_finished(&self) -> bool {
        self.decoding.is_finished()
    }

    /// Why the input failed, if it did (a stream that cannot be decoded).
    pub fn error(&self) -> Option<String> {
        self.decoding.error()
    }

    /// Waits up to `timeout` for the buffer to reach its target depth (or the input to end);
    /// true when it did.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        self.decoding.wait_ready(timeout)
    }
}

impl Source for LiveSource {
    /// Fills `out` from the buffer. While connected it always fills all of `out`, with
    /// silence where the buffer is refilling; once the input has ended it gives what is left
    /// and then fewer frames, which ends the item.
    fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
        self.decoding.read(out)
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        let _ = self.appsrc.end_of_stream();
    }
}

impl Decoding {
    /// The pipeline after `head`, which gives the encoded stream, started.
    pub(crate) fn start(config: LiveConfig, head: &gst::Element) -> Result<Decoding, EngineError> {
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| EngineError::MissingElement {
                    element: name.to_owned(),
                    reason: e.to_string(),
                })
        };
        let decodebin = make("decodebin")?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let caps = gst_audio::AudioCapsBuilder::new_interleaved()
            .format(gst_audio::AudioFormat::F32le)
            .rate(config.rate as i32)
            .channels(config.channels as i32)
            .build();
        let sink = gst_app::AppSink::builder()
            .caps(&caps)
            .sync(false)
            .max_buffers(8)
            .build();
        let pipeline = gst::Pipeline::new();
        let fail = |e: gst::glib::BoolError| EngineError::Pipeline(e.to_string());
        pipeline
            .add_many([head, &decodebin, &convert, &resample, sink.upcast_ref()])
            .map_err(fail)?;
        head.link(&decodebin).map_err(fail)?;
        gst::Element::link_many([&convert, &resample, sink.upcast_ref()]).map_err(fail)?;
        let convert_weak = convert.downgrade();
        decodebin.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let audio = pad
                .current_caps()
                .unwrap_or_else(|| pad.query_caps(None))
                .structure(0)
                .is_some_and(|s| s.name().starts_with("audio/"));
            if let Some(sinkpad) = convert.static_pad("sink")
                && audio
                && !sinkpad.is_linked()
            {
                let _ = pad.link(&sinkpad);
            }
        });

        let shared = Arc::new(Shared::default());
        let max = config.frames(config.max) * config.channels;
        let target = config.frames(config.target) * config.channels;
        let channels = config.channels;
        let on_sample = Arc::clone(&shared);
        let on_eos = Arc::clone(&shared);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut b = lock(&on_sample);
                    if b.ended {
                        // Ended by its owner ([`Decoding::end`]): late audio is not played.
                        return Ok(gst::FlowSuccess::Ok);
                    }
                    b.samples.extend(
                        map.as_slice()
                            .chunks_exact(4)
                            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]])),
                    );
                    b.stats.decoded += (map.len() / 4 / channels) as u64;
                    if b.samples.len() > max {
                        let over = b.samples.len() - max;
                        let over = over - over % channels;
                        b.samples.drain(..over);
                        b.stats.dropped += (over / channels) as u64;
                    }
                    if b.samples.len() >= target {
                        on_sample.filled.notify_all();
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| {
                    lock(&on_eos).ended = true;
                    on_eos.filled.notify_all();
                })
                .build(),
        );
        if let Some(bus) = pipeline.bus() {
            let on_error = Arc::clone(&shared);
            bus.set_sync_handler(move |_, msg| {
                if let gst::MessageView::Error(err) = msg.view() {
                    let mut b = lock(&on_error);
                    b.ended = true;
                    b.error = Some(err.error().to_string());
                    on_error.filled.notify_all();
                }
                gst::BusSyncReply::Drop
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| EngineError::Pipeline(format!("live input: {e}")))?;
        Ok(Decoding {
            config,
            shared,
            pipeline,
        })
    }

    pub(crate) fn stats(&self) -> LiveStats {
        let b = lock(&self.shared);
        LiveStats {
            depth: (b.samples.len() / self.config.channels) as u64,
            ..b.stats
        }
    }

    /// Ends the input: what is buffered plays, and nothing more is taken.
    pub(crate) fn end(&self) {
        lock(&self.shared).ended = true;
        self.shared.filled.notify_all();
    }

    /// Whether no more audio will come (closed, or failed); some may still be buffered.
    pub(crate) fn has_ended(&self) -> bool {
        lock(&self.shared).ended
    }

    /// Whether the buffer holds its target depth.
    pub(crate) fn is_ready(&self) -> bool {
        let target = self.config.frames(self.config.target) * self.config.channels;
        lock(&self.shared).samples.len() >= target
    }

    pub(crate) fn is_finished(&self) -> bool {
        let b = lock(&self.shared);
        b.ended && b.samples.is_empty()
    }

    pub(crate) fn error(&self) -> Option<String> {
        lock(&self.shared).error.clone()
    }

    pub(crate) fn wait_ready(&self, timeout: Duration) -> bool {
        let target = self.config.frames(self.config.target) * self.config.channels;
        let deadline = Instant::now() + timeout;
        let mut b = lock(&self.shared);
        while b.samples.len() < target && !b.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            b = self
                .shared
                .filled
                .wait_timeout(b, left)
                .map(|(b, _)| b)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        b.samples.len() >= target
    }

    /// Fills `out` from the buffer, with silence while it refills; once the input has ended,
    /// what is left and then fewer frames.
    pub(crate) fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
        let ch = self.config.channels;
        let target = self.config.frames(self.config.target) * ch;
        let wanted = out.len() - out.len() % ch;
        let mut b = lock(&self.shared);
        if !b.playing && (b.samples.len() >= target || b.ended) {
            b.playing = true;
        }
        let mut written = 0;
        if b.playing {
            let n = b.samples.len().min(wanted);
            for (slot, x) in out[..n].iter_mut().zip(b.samples.drain(..n)) {
                *slot = x;
            }
            written = n;
        }
        if b.ended {
            b.stats.played += (written / ch) as u64;
            return match (&b.error, written) {
                (Some(e), 0) => Err(e.clone()),
                _ => Ok(written / ch),
            };
        }
        if written < wanted {
            // Dry: silence until the target depth is back.
            if b.playing {
                b.playing = false;
                b.stats.underruns += 1;
            }
            out[written..wanted].fill(0.0);
            b.stats.silence += ((wanted - written) / ch) as u64;
        }
        b.stats.played += (wanted / ch) as u64;
        Ok(wanted / ch)
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The writing side of a [`LiveSource`]: encoded bytes in.
#[derive(Debug, Clone)]
pub struct Feeder {
    appsrc: gst_app::AppSrc,
    closed: Arc<AtomicBool>,
}

impl Feeder {
    /// Passes encoded bytes to the decoder; blocks while its queue is full. Fails once the
    /// source was dropped or its decoder stopped.
    pub fn push(&self, bytes: &[u8]) -> Result<(), EngineError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(EngineError::Pipeline("the live input is closed".into()));
        }
        self.appsrc
            .push_buffer(gst::Buffer::from_slice(bytes.to_vec()))
            .map(|_| ())
            .map_err(|e| EngineError::Pipeline(format!("live input: {e}")))
    }

    /// The stream has ended: what is buffered plays out, then the source ends.
    pub fn finish(&self) {
        let _ = self.appsrc.end_of_stream();
    }
}
