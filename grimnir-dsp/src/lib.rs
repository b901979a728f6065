//! Broadcast loudness and dynamics in pure Rust.
//!
//! `grimnir-dsp` holds the DSP graph model of a Grimnir Radio station (an ordered chain of
//! [`Node`]s: loudness normalization, AGC, compressor, limiter, ducking, silence detection) and
//! the processors that run it. It has no GStreamer dependency: the media engine wraps these
//! processors in its own element, and everything here is tested and benchmarked in plain Rust.
//!
//! Audio is interleaved `f32`, 1–8 channels, 8–192 kHz ([`AudioSpec`]). Every processor keeps
//! the [`Processor`] contract: `prepare` may allocate; `reset` and `process` never allocate,
//! lock or panic, whatever the input.
//!
//! Loudness is measured per EBU R128 / ITU-R BS.1770 by the [`Meter`], a thin layer over the
//! [`ebur128`] crate; its conformance to EBU Tech 3341 and 3342 is tested with synthesized
//! signals.
//!
//! ```
//! use grimnir_dsp::{AudioSpec, Meter};
//!
//! let spec = AudioSpec::new(48_000, 2)?;
//! let mut meter = Meter::new(spec)?;
//! // 5 s of a 1 kHz sine at -23 dBFS on both channels.
//! let amp = 10f32.powf(-23.0 / 20.0);
//! let frames: Vec<f32> = (0..5 * 48_000)
//!     .flat_map(|i| {
//!         let x = amp * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48_000.0).sin();
//!         [x, x]
//!     })
//!     .collect();
//! meter.add(&frames);
//! assert!((meter.reading().integrated - -23.0).abs() < 0.1);
//! # Ok::<(), grimnir_dsp::DspError>(())
//! ```

mod agc;
mod chain;
mod compressor;
mod ducking;
mod error;
mod graph;
mod kweight;
mod limiter;
mod meter;
mod normalize;
mod processor;
mod silence;
mod spec;

pub use agc::AutoGain;
pub use chain::Chain;
pub use compressor::DynamicsCompressor;
pub use ducking::Ducker;
pub use error::DspError;
pub use graph::{
    Agc, Compressor, DspGraph, Ducking, Limiter, LoudnessNormalize, Node, SilenceAction,
    SilenceDetector,
};
pub use limiter::TruePeakLimiter;
pub use meter::{Meter, Reading};
pub use normalize::{
    GAIN_SEGMENT, LIVE_FALL_DB_PER_SEC, LIVE_GATE_LUFS, LIVE_SLEW_DB_PER_SEC, LoudnessNormalizer,
    MAX_CUT_DB,
};
pub use processor::{Processor, db_to_gain, gain_to_db, sanitize};
pub use silence::{SilenceEvent, SilenceWatch};
pub use spec::{AudioSpec, MAX_CHANNELS, MAX_RATE, MIN_RATE};
