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

/// One-pole step of `state` toward `target`, snapping to it once within `snap`, so smoothed
/// values settle exactly instead of decaying into denormals.
#[inline]
pub(crate) fn glide(state: &mut f64, target: f64, coef: f64, snap: f64) {
    *state += coef * (target - *state);
    if (target - *state).abs() < snap {
        *state = target;
    }
}

/// The per-frame coefficient of a one-pole filter with time constant `ms` at `rate` frames per
/// second (1, an immediate step, for 0 ms).
pub(crate) fn one_pole(ms: f64, rate: f64) -> f64 {
    if ms > 0.0 {
        1.0 - (-1000.0 / (ms * rate)).exp()
    } else {
        1.0
    }
}

/// Rate at which gain computers run, Hz: once per control period of [`control_period`] frames.
///
/// Levels are detected on every frame, but turning a level into a gain takes a logarithm and an
/// exponential; doing that 3000 times a second instead of at the sample rate costs a sixteenth
/// as much at 48 kHz, and between two control points the gain moves along a straight line, so it
/// never steps. A third of a millisecond is well under the shortest attack that is audible as
/// such, and the true-peak limiter, which must catch every sample, does not use it.
pub(crate) const CONTROL_HZ: f64 = 3000.0;

/// Frames per control period at `rate` (16 at 48 kHz; at least 1, at most 64).
pub(crate) fn control_period(rate: f64) -> usize {
    ((rate / CONTROL_HZ).round() as usize).clamp(1, 64)
}

/// A linear gain moving in a straight line from one control point to the next: each frame
/// [`advance`](GainRamp::advance)s it one step, and at a control point
/// [`head_for`](GainRamp::head_for) lands it exactly where the last ramp was headed (so rounding
/// in the steps never accumulates) and sets the next target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GainRamp {
    gain: f32,
    to: f32,
    step: f32,
}

impl GainRamp {
    /// Standing still at `gain`.
    pub(crate) fn at(gain: f32) -> GainRamp {
        GainRamp {
            gain,
            to: gain,
            step: 0.0,
        }
    }

    /// The gain of the next frame. Standing still at exactly 1 it stays exactly 1, so audio
    /// multiplied by it passes bit-exact.
    #[inline]
    pub(crate) fn advance(&mut self) -> f32 {
        self.gain += self.step;
        self.gain
    }

    /// Starts a ramp reaching `to` after `frames` frames.
    pub(crate) fn head_for(&mut self, to: f32, frames: usize) {
        self.gain = self.to;
        self.to = to;
        self.step = (to - self.gain) / frames.max(1) as f32;
    }
}

/// `v` if finite, else `default`, then into `lo..=hi`: parameters that slipped past validation
/// can never produce NaN.
pub(crate) fn within(v: f64, lo: f64, hi: f64, default: f64) -> f64 {
    if v.is_finite() {
        v.clamp(lo, hi)
    } else {
        default
    }
}
