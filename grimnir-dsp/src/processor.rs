//! The real-time contract every processor keeps.

use crate::{AudioSpec, DspError};

/// A block-based audio processor working in place on interleaved `f32` frames.
///
/// The contract, which the chain and the media engine rely on:
///
/// - [`prepare`](Processor::prepare) is called before audio flows and whenever the format
///   changes. It may allocate, and it is the only method that may.
/// - [`reset`](Processor::reset) clears state (envelopes, delay lines, meters) without
///   allocating, e.g. when playback seeks.
/// - [`process`](Processor::process) never allocates, locks or panics, for any input: NaN and
///   infinite samples are treated as silence and never poison the processor's state, and
///   denormals are flushed so they cannot slow it down. A block may hold any number of whole
///   frames, including none.
pub trait Processor: Send {
    /// Prepares for audio of `spec`; may allocate.
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError>;

    /// Clears all state, keeping the preparation.
    fn reset(&mut self);

    /// Processes one block of interleaved frames in place.
    fn process(&mut self, block: &mut [f32]);

    /// Frames of delay the processor adds (look-ahead), for the engine's timing.
    fn latency_frames(&self) -> usize {
        0
    }
}

/// Replaces NaN, infinities and denormals by zero: the first thing every processor does to a
/// sample, so that bad input cannot reach its state.
#[inline]
pub fn sanitize(x: f32) -> f32 {
    if x.is_normal() { x } else { 0.0 }
}

/// dB to linear gain.
#[inline]
pub fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Linear gain to dB (`-inf` for zero).
#[inline]
pub fn gain_to_db(gain: f64) -> f64 {
    20.0 * gain.log10()
}
