//! HLS: MPEG-TS segments and a sliding live playlist, written by GStreamer's `hlssink2`.
//!
//! `appsrc → mpegaudioparse | aacparse → hlssink2`, a small pipeline of its own fed by the
//! output's worker thread, so a full disk or a failing muxer never reaches the station's
//! pipeline. HLS carries MP3 or AAC here (the MPEG-TS audio that every HLS player decodes).

use std::path::PathBuf;
use std::time::Duration;

use gst::prelude::*;

use super::{Destination, Packet, StreamInfo};
use crate::encode::element;

/// Where and how an HLS output writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsConfig {
    /// The directory for the playlist and its segments (created when missing).
    pub dir: PathBuf,
    /// The playlist's file name (`live.m3u8`).
    pub playlist: String,
    /// Target segment length (6 s).
    pub segment: Duration,
    /// Segments listed in the playlist (5).
    pub playlist_length: u32,
    /// Segments kept on disk; older ones are deleted (playlist length + 5).
    pub keep_segments: u32,
}

impl HlsConfig {
    /// 6-second segments, 5 in the playlist `live.m3u8`, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> HlsConfig {
        HlsConfig {
            dir: dir.into(),
            playlist: "live.m3u8".into(),
            segment: Duration::from_secs(6),
            playlist_length: 5,
            keep_segments: 10,
        }
    }
}

/// An HLS output.
#[derive(Debug)]
pub struct Hls {
    config: HlsConfig,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// The first packet's timestamp: the segments' timeline starts there.
    offset: Option<gst::ClockTime>,
}

impl Hls {
    /// An HLS output writing as `config` says.
    pub fn new(config: HlsConfig) -> Hls {
        Hls {
            config,
            running: None,
        }
    }

    fn build(&self, stream: &StreamInfo) -> Result<Running, String> {
        let parser = match stream.content_type {
            "audio/mpeg" => "mpegaudioparse",
            "audio/aac" => "aacparse",
            other => {
                return Err(format!(
                    "HLS carries MP3 or AAC, not {other}: give this output one of those"
                ));
            }
        };
        std::fs::create_dir_all(&self.config.dir)
            .map_err(|e| format!("{}: {e}", self.config.dir.display()))?;
        let src = gst_app::AppSrc::builder()
            .caps(&stream.caps)
            .format(gst::Format::Time)
            .block(false)
            .build();
        let parser = element(parser).map_err(|e| e.to_string())?;
        let sink = element("hlssink2").map_err(|e| e.to_string())?;
        let segments = self.config.dir.join("segment%05d.ts");
        let playlist = self.config.dir.join(&self.config.playlist);
        sink.set_property("location", segments.to_string_lossy().as_ref());
        sink.set_property("playlist-location", playlist.to_string_lossy().as_ref());
        let seconds = self.config.segment.as_secs().clamp(1, 3600) as u32;
        sink.set_property("target-duration", seconds);
        sink.set_property("playlist-length", self.config.playlist_length);
        sink.set_property(
            "max-files",
            self.config.keep_segments.max(self.config.playlist_length),
        );
        let pipeline = gst::Pipeline::new();
        pipeline
            .add_many([src.upcast_ref(), &parser, &sink])
            .map_err(|e| e.to_string())?;
        src.link(&parser).map_err(|e| e.to_string())?;
        let pad = sink
            .request_pad_simple("audio")
            .ok_or_else(|| "hlssink2 has no audio pad".to_owned())?;
        parser
            .static_pad("src")
            .ok_or_else(|| "the parser has no src pad".to_owned())?
            .link(&pad)
            .map_err(|e| format!("cannot link to hlssink2: {e}"))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start HLS output: {e}"))?;
        Ok(Running {
            pipeline,
            src,
            offset: None,
        })
    }
}

impl Running {
    /// The pipeline's first error, if it has one.
    fn error(&self) -> Option<String> {
        let bus = self.pipeline.bus()?;
        let message = bus.pop_filtered(&[gst::MessageType::Error])?;
        match message.view() {
            gst::MessageView::Error(e) => Some(format!("HLS: {}", e.error())),
            _ => None,
        }
    }
}

impl Destination for Hls {
    fn open(&mut self, stream: &StreamInfo, _headers: &[Packet]) -> Result<(), String> {
        self.close();
        self.running = Some(self.build(stream)?);
        Ok(())
    }

    fn write(&mut self, packet: &Packet) -> Result<(), String> {
        let running = self
            .running
            .as_mut()
            .ok_or_else(|| "HLS output is not open".to_owned())?;
        if let Some(e) = running.error() {
            return Err(e);
        }
        // A reopened output starts its segments' timeline at zero again.
        let mut buffer = packet.buffer.copy();
        if let Some(pts) = packet.buffer.pts() {
            let offset = *running.offset.get_or_insert(pts);
            buffer.make_mut().set_pts(pts.saturating_sub(offset));
        }
        buffer.make_mut().set_dts(gst::ClockTime::NONE);
        running
            .src
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| format!("HLS output stopped: {e:?}"))
    }

    fn close(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.src.end_of_stream();
            if let Some(bus) = running.pipeline.bus() {
                let _ = bus.timed_pop_filtered(
                    gst::ClockTime::from_seconds(2),
                    &[gst::MessageType::Eos, gst::MessageType::Error],
                );
            }
            let _ = running.pipeline.set_state(gst::State::Null);
        }
    }
}

impl Drop for Hls {
    fn drop(&mut self) {
        self.close();
    }
}
