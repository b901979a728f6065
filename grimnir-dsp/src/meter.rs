//! Loudness metering per EBU R128 / ITU-R BS.1770, on the `ebur128` crate.
//!
//! Momentary (400 ms), short-term (3 s), integrated (gated) loudness, loudness range (EBU Tech
//! 3342) and true peak (4× oversampled or more, per BS.1770-4). The meter runs in histogram mode,
//! so its memory is fixed when it is prepared and adding audio never allocates, however long it
//! runs. Conformance to EBU Tech 3341 and 3342 is tested in `tests/ebu_conformance.rs` with
//! signals synthesized there.

use ebur128::{Channel, EbuR128, Mode};

use crate::{AudioSpec, DspError};

/// A loudness meter for one stream.
pub struct Meter {
    spec: AudioSpec,
    inner: EbuR128,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// What a meter reads, in LUFS, LU and dBTP. Values are `-inf` until there is enough audio
/// (400 ms for momentary, 3 s for short-term) or while it is silent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Momentary loudness (400 ms window), LUFS.
    pub momentary: f64,
    /// Short-term loudness (3 s window), LUFS.
    pub short_term: f64,
    /// Integrated loudness since the last reset, gated, LUFS.
    pub integrated: f64,
    /// Loudness range since the last reset, LU.
    pub range: f64,
    /// Highest true peak of any channel since the last reset, dBTP.
    pub true_peak: f64,
}

impl Meter {
    /// A meter for `spec`. Five channels are taken as L, R, C, Ls, Rs and six as L, R, C, LFE
    /// (not measured), Ls, Rs; other layouts weigh every channel as a front channel.
    pub fn new(spec: AudioSpec) -> Result<Meter, DspError> {
        let mode = Mode::M | Mode::S | Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::HISTOGRAM;
        let channels = u32::try_from(spec.channels()).unwrap_or(u32::MAX);
        let mut inner = EbuR128::new(channels, spec.sample_rate(), mode)
            .map_err(|e| DspError::UnsupportedFormat(format!("loudness meter: {e:?}")))?;
        let map: Option<&[Channel]> = match spec.channels() {
            5 => Some(&[
                Channel::Left,
                Channel::Right,
                Channel::Center,
                Channel::LeftSurround,
                Channel::RightSurround,
            ]),
            6 => Some(&[
                Channel::Left,
                Channel::Right,
                Channel::Center,
                Channel::Unused,
                Channel::LeftSurround,
                Channel::RightSurround,
            ]),
            _ => None,
        };
        if let Some(map) = map {
            inner
                .set_channel_map(map)
                .map_err(|e| DspError::UnsupportedFormat(format!("channel map: {e:?}")))?;
        } else if spec.channels() > 2 {
            for ch in 0..channels {
                inner
                    .set_channel(ch, Channel::Left)
                    .map_err(|e| DspError::UnsupportedFormat(format!("channel map: {e:?}")))?;
            }
        }
        Ok(Meter { spec, inner })
    }

    /// The format measured.
    pub fn spec(&self) -> AudioSpec {
        self.spec
    }

    /// Forgets everything measured.
    pub fn reset(&mut self) {
        self.inner.reset();
    }

    /// Measures a block of interleaved frames (a trailing partial frame is ignored). Never
    /// allocates; NaN and infinite samples are measured as silence.
    pub fn add(&mut self, block: &[f32]) {
        let whole = block.len() - block.len() % self.spec.channels();
        let block = &block[..whole];
        if block.iter().all(|x| x.is_finite()) {
            // The crate only fails for a partial frame, which was cut off above.
            let _ = self.inner.add_frames_f32(block);
            return;
        }
        // Rare path: copy through a small stack buffer with bad samples zeroed.
        let mut buf = [0f32; 512];
        let step = buf.len() - buf.len() % self.spec.channels();
        for chunk in block.chunks(step) {
            let out = &mut buf[..chunk.len()];
            for (o, &x) in out.iter_mut().zip(chunk) {
                *o = if x.is_finite() { x } else { 0.0 };
            }
            let _ = self.inner.add_frames_f32(out);
        }
    }

    /// The current readings.
    pub fn reading(&self) -> Reading {
        let or_silent = |r: Result<f64, ebur128::Error>| r.unwrap_or(f64::NEG_INFINITY);
        let peak = (0..self.spec.channels() as u32)
            .filter_map(|ch| self.inner.true_peak(ch).ok())
            .fold(0.0f64, f64::max);
        Reading {
            momentary: or_silent(self.inner.loudness_momentary()),
            short_term: or_silent(self.inner.loudness_shortterm()),
            integrated: or_silent(self.inner.loudness_global()),
            range: self.inner.loudness_range().unwrap_or(0.0),
            true_peak: crate::gain_to_db(peak),
        }
    }
}
