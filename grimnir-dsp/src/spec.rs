//! The audio format processors are prepared for.

use crate::DspError;

/// Lowest sample rate supported, in Hz.
pub const MIN_RATE: u32 = 8_000;
/// Highest sample rate supported, in Hz.
pub const MAX_RATE: u32 = 192_000;
/// Most channels supported.
pub const MAX_CHANNELS: usize = 8;

/// Sample rate and channel count of interleaved `f32` audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioSpec {
    sample_rate: u32,
    channels: usize,
}

impl AudioSpec {
    /// A format of `sample_rate` Hz (8–192 kHz) and `channels` channels (1–8).
    pub fn new(sample_rate: u32, channels: usize) -> Result<AudioSpec, DspError> {
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            return Err(DspError::UnsupportedFormat(format!(
                "sample rate {sample_rate} Hz (supported: {MIN_RATE}–{MAX_RATE} Hz)"
            )));
        }
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(DspError::UnsupportedFormat(format!(
                "{channels} channels (supported: 1–{MAX_CHANNELS})"
            )));
        }
        Ok(AudioSpec {
            sample_rate,
            channels,
        })
    }

    /// Samples per second per channel.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames in `ms` milliseconds, rounded, at least one.
    pub fn frames_in_ms(&self, ms: f64) -> usize {
        ((ms.max(0.0) * f64::from(self.sample_rate) / 1000.0).round() as usize).max(1)
    }
}
