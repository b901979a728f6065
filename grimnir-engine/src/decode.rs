//! Decoding a media file to the station's format with GStreamer.
//!
//! `uridecodebin → audioconvert → audioresample → appsink` with the sink's caps fixed to
//! interleaved `F32LE` at the station's rate and channel count, so any format GStreamer can
//! decode (MP3, AAC/M4A, FLAC, Ogg Vorbis/Opus, WAV, …) arrives as the mixer wants it.
//!
//! [`Decoder::open`] prerolls the pipeline, so a file that is missing, empty or not audio is
//! refused there, with the reason, before its turn comes: the engine opens each item ahead of
//! time. A file that breaks off later (truncated) simply ends early: the mixer reports it and
//! keeps the next item on time.

use std::path::Path;
use std::time::Duration;

use gst::prelude::*;

use crate::EngineError;
use crate::mix::Source;

/// How long opening (prerolling) a file may take before it is given up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read may wait for the decoder.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A file being decoded, read as interleaved `f32` frames from its cue-in on.
pub struct Decoder {
    path: String,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    channels: usize,
    rate: u32,
    /// Frames before this output frame of the file are dropped (the cue-in, and an MP3's
    /// encoder and decoder delay).
    skip_until: u64,
    /// Frames left to give, when the file says where its audio ends (an MP3's padding, an MP4's edit list).
    left: Option<u64>,
    /// Decoded samples not read yet, from `pending_pos`.
    pending: Vec<f32>,
    pending_pos: usize,
    ended: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn media_error(path: &str, reason: impl Into<String>) -> EngineError {
    EngineError::Media {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn element(name: &str) -> Result<gst::Element, EngineError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|e| EngineError::MissingElement {
            element: name.to_owned(),
            reason: e.to_string(),
        })
}

impl Decoder {
    /// Opens `path` for playback at `rate` Hz and `channels` channels from `cue_in` (seconds
    /// into the file). Fails with the reason when the file is missing, empty, not audio, or
    /// the cue-in cannot be reached.
    pub fn open(
        path: &Path,
        rate: u32,
        channels: usize,
        cue_in: f64,
    ) -> Result<Decoder, EngineError> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| media_error(&shown, e.to_string()))?;
        if meta.len() == 0 {
            return Err(media_error(&shown, "the file is empty"));
        }
        let absolute = std::path::absolute(path).map_err(|e| media_error(&shown, e.to_string()))?;
        let uri = gst::glib::filename_to_uri(&absolute, None)
            .map_err(|e| media_error(&shown, e.to_string()))?;
        let caps = gst_audio::AudioCapsBuilder::new_interleaved()
            .format(gst_audio::AudioFormat::F32le)
            .rate(rate as i32)
            .channels(channels as i32)
            .build();
        let src = gst::ElementFactory::make("uridecodebin")
            .property("uri", uri.as_str())
            .build()
            .map_err(|e| EngineError::MissingElement {
                element: "uridecodebin".into(),
                reason: e.to_string(),
            })?;
        let convert = element("audioconvert")?;
        let resample = element("audioresample")?;
        let sink = gst_app::AppSink::builder()
            .caps(&caps)
            .sync(false)
            .max_buffers(16)
            .build();
        let pipeline = gst::Pipeline::new();
        let fail = |e: gst::glib::BoolError| EngineError::Pipeline(e.to_string());
        pipeline
            .add_many([&src, &convert, &resample, sink.upcast_ref()])
            .map_err(fail)?;
        gst::Element::link_many([&convert, &resample, sink.upcast_ref()]).map_err(fail)?;
        let convert_weak = convert.downgrade();
        src.connect_pad_added(move |_, pad| {
            let Some(convert) = convert_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let audio = caps
                .structure(0)
                .is_some_and(|s| s.name().starts_with("audio/"));
            if let Some(sinkpad) = convert.static_pad("sink")
                && audio
                && !sinkpad.is_linked()
            {
                let _ = pad.link(&sinkpad);
            }
        });
        let cue_in = cue_in.max(0.0);
        let frames_at = |seconds: f64| (seconds * f64::from(rate)).round() as u64;
        // An MP3's priming comes first in the decoded stream, and its padding last.
        let head = read_head(path);
        // An MP3's priming comes first in the decoded stream, and its padding last.
        let gapless = head.as_deref().and_then(crate::mp3_gapless::read);
        let delay = gapless.map_or(0.0, |g| g.skip as f64 / f64::from(g.rate));
        let mut length = gapless.and_then(|g| Some(g.length? as f64 / f64::from(g.rate.max(1))));
        // An MP4's priming is skipped by qtdemux; its end is cut here, by the edit list.
        if head.as_deref().is_some_and(is_mp4)
            && let Some(edit) = crate::mp4_gapless::read(path)
        {
            length = Some(edit.seconds());
            lengthen_movie(&src, edit);
        }
        let left = length.map(|seconds| frames_at(seconds).saturating_sub(frames_at(cue_in)));
        let decoder = Decoder {
            path: shown,
            pipeline,
            sink,
            channels,
            rate,
            skip_until: frames_at(cue_in + delay),
            left,
            pending: Vec::new(),
            pending_pos: 0,
            ended: false,
        };
        decoder.preroll()?;
        if cue_in > 0.0 {
            // An accurate seek near the cue-in; the frames before it that still come are
            // dropped by their timestamps, so the cue-in holds to the frame.
            let at = gst::ClockTime::SECOND.mul_div_floor(decoder.skip_until, u64::from(rate));
            if let Some(at) = at {
                decoder
                    .pipeline
                    .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at)
                    .map_err(|e| {
                        media_error(&decoder.path, format!("cannot seek to the cue-in: {e}"))
                    })?;
            }
        }
        decoder
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| decoder.bus_error("cannot start decoding"))?;
        Ok(decoder)
    }

    /// Brings the pipeline to PAUSED and waits until it has decoded its first buffer.
    fn preroll(&self) -> Result<(), EngineError> {
        self.pipeline
            .set_state(gst::State::Paused)
            .map_err(|_| self.bus_error("cannot open"))?;
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| media_error(&self.path, "no bus"))?;
        let deadline = gst::ClockTime::from_nseconds(OPEN_TIMEOUT.as_nanos() as u64);
        match bus.timed_pop_filtered(
            deadline,
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        ) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(err) => Err(media_error(&self.path, describe(err))),
                _ if self.sink.static_pad("sink").is_some_and(|p| p.is_linked()) => Ok(()),
                _ => Err(media_error(&self.path, "no audio stream in the file")),
            },
            None => Err(media_error(&self.path, "timed out opening the file")),
        }
    }

    /// The first error on the bus, or `fallback`.
    fn bus_error(&self, fallback: &str) -> EngineError {
        let reason = self
            .pipeline
            .bus()
            .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
            .and_then(|msg| match msg.view() {
                gst::MessageView::Error(err) => Some(describe(err)),
                _ => None,
            })
            .unwrap_or_else(|| fallback.to_owned());
        media_error(&self.path, reason)
    }

    /// The file's path as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Pulls the next decoded buffer into `pending`; false at the end of the file.
    fn fill(&mut self) -> Result<bool, String> {
        loop {
            let timeout = gst::ClockTime::from_nseconds(READ_TIMEOUT.as_nanos() as u64);
            let Some(sample) = self.sink.try_pull_sample(timeout) else {
                if self.sink.is_eos() {
                    return Ok(false);
                }
                return Err(match self.bus_error("decoder stalled") {
                    EngineError::Media { reason, .. } => reason,
                    other => other.to_string(),
                });
            };
            let Some(buffer) = sample.buffer() else {
                continue;
            };
            let map = buffer.map_readable().map_err(|e| e.to_string())?;
            let first = buffer
                .pts()
                .map(|t| t.nseconds() as u128 * u128::from(self.rate) / 1_000_000_000)
                .unwrap_or(self.skip_until as u128) as u64;
            let frames = map.len() / (4 * self.channels);
            // Drop what lies before the cue-in.
            let drop = self.skip_until.saturating_sub(first).min(frames as u64) as usize;
            if drop == frames {
                continue;
            }
            self.skip_until = 0;
            self.pending.clear();
            self.pending.extend(
                map.as_slice()[drop * 4 * self.channels..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            self.pending_pos = 0;
            return Ok(true);
        }
    }
}

/// A bus error as one line: what GStreamer says, and its detail.
fn describe(err: &gst::message::Error) -> String {
    let e = err.error();
    if e.matches(gst::ResourceError::NotFound) {
        return "the file does not exist".into();
    }
    if e.matches(gst::StreamError::TypeNotFound) {
        return format!("not a playable audio file ({e})");
    }
    match err.debug() {
        Some(debug) => format!("{e} ({})", debug.lines().last().unwrap_or_default()),
        None => e.to_string(),
    }
}

/// Whether a file's head is an ISO base media file (MP4, M4A): a `ftyp` box first.
fn is_mp4(head: &[u8]) -> bool {
    head.get(4..8) == Some(b"ftyp")
}

/// Shows qtdemux the movie duration of `edit` lengthened by its priming, so that it pushes
/// the file's last frame (see [`crate::mp4_gapless`]): every piece of the file the source
/// element gives passes a probe that rewrites the `mvhd` duration field where it overlaps.
fn lengthen_movie(uridecodebin: &gst::Element, edit: crate::mp4_gapless::Edit) {
    uridecodebin.connect("source-setup", false, move |args| {
        let source = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
        let pad = source.static_pad("src")?;
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::PUSH | gst::PadProbeType::PULL,
            move |_, info| {
                let offset = match info.buffer() {
                    Some(buffer) => buffer.offset(),
                    None => return gst::PadProbeReturn::Ok,
                };
                let width = u64::from(edit.mvhd_duration_width);
                let size = info.buffer().map_or(0, |b| b.size() as u64);
                let overlaps = offset != u64::MAX // GST_BUFFER_OFFSET_NONE: no file offset
                    && offset < edit.mvhd_duration_at + width
                    && edit.mvhd_duration_at < offset + size;
                if overlaps && let Some(buffer) = info.buffer_mut() {
                    let buffer = buffer.make_mut();
                    if let Ok(mut map) = buffer.map_writable() {
                        edit.patch(offset, map.as_mut_slice());
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        None
    });
}

/// The first 16 KiB of a file, where an MP3's LAME tag is.
fn read_head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(16 * 1024);
    std::fs::File::open(path)
        .ok()?
        .take(16 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
}

impl Source for Decoder {
    fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
        let out = match self.left {
            Some(left) => {
                let frames = (out.len() / self.channels).min(left as usize);
                self.left = Some(left - frames as u64);
                &mut out[..frames * self.channels]
            }
            None => out,
        };
        let mut written = 0;
        while written < out.len() {
            if self.pending_pos >= self.pending.len() && (self.ended || !self.fill()?) {
                self.ended = true;
                break;
            }
            let n = (self.pending.len() - self.pending_pos).min(out.len() - written);
            out[written..written + n]
                .copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
            self.pending_pos += n;
            written += n;
        }
        Ok(written / self.channels)
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
