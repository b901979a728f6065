//! Grimnir Radio's media engine: audio on air.
//!
//! The engine turns a run of planned items into a continuous, processed, encoded stream:
//! files are decoded and resampled to the station's format by GStreamer, placed and
//! crossfaded to the sample by [`mix`] (plain Rust, no GStreamer), processed by the
//! [`grimnir_dsp`] chain inside the `grimnirdsp` element ([`DspElement`]), encoded once per
//! format and sent to the outputs.
//!
//! Call [`init`] once before anything else.
//!
//! With the `process` feature (on by default), [`process`] holds the engine as its own
//! process: the `grimnir-engine` binary's gRPC server and the [`process::EngineClient`] a
//! controller drives it with.

pub mod decode;
mod dsp_element;
pub mod encode;
mod error;
pub mod input;
pub mod mix;
mod mp3_gapless;
mod mp4_gapless;
pub mod output;
#[cfg(feature = "process")]
pub mod process;
pub mod render;
pub mod station;

pub use dsp_element::{
    DspElement, METER_MESSAGE, SILENCE_MESSAGE, TRACK_EVENT, track_loudness_event,
};
pub use error::EngineError;

/// Initializes GStreamer and registers the engine's own elements (`grimnirdsp`) in this
/// process. Safe to call more than once.
pub fn init() -> Result<(), EngineError> {
    gst::init().map_err(|e| EngineError::Init(e.to_string()))?;
    dsp_element::register().map_err(|e| EngineError::Init(e.to_string()))?;
    Ok(())
}
