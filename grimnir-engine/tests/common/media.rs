//! Media helpers shared by the engine's tests: encoded packets from a GStreamer pipeline, and
//! ffmpeg as the independent decoder.
//!
//! Include it from a test file with `#[path = "common/media.rs"] mod media;`.
#![allow(dead_code)] // each test file uses part of the helper
#![allow(clippy::unwrap_used)] // a test helper: a failed unwrap is a failed test
#![allow(unreachable_pub)] // `pub` is for the test files that include it

use std::path::Path;
use std::process::Command;

use grimnir_engine::output::Packet;
use gst::prelude::*;

/// Runs `description` (a `gst-launch` line ending in `appsink name=sink`) to its end and
/// returns the caps and every packet, header flags kept.
pub fn encode(description: &str) -> (gst::Caps, Vec<Packet>) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut caps = None;
    let mut packets = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(20)) {
        caps = caps.or_else(|| sample.caps_owned());
        let buffer = sample.buffer_owned().unwrap();
        let header = buffer.flags().contains(gst::BufferFlags::HEADER);
        packets.push(Packet { buffer, header });
    }
    assert!(sink.is_eos(), "the encoder did not finish: {description}");
    pipeline.set_state(gst::State::Null).unwrap();
    (caps.unwrap(), packets)
}

/// Decodes `path` with ffmpeg to 48 kHz stereo interleaved `f32` samples.
pub fn decode(path: &Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
