//! A look-ahead true-peak limiter whose output never exceeds its ceiling.
//!
//! How the guarantee is kept, for a look-ahead of `L` frames:
//!
//! 1. For each input frame `m`, the peak around it is estimated from the samples and from
//!    4×-oversampled values between them (a 4-phase, 16-tap windowed-sinc interpolator, as true
//!    peak meters do), over all channels (the gain is linked, so the image does not move).
//! 2. The gain that frame needs is `r[m] = min(1, ceiling / peak[m])`.
//! 3. `h[k]` is the minimum of `r` over the `L + 1` frames `k - L ..= k` (a sliding minimum).
//! 4. The gain `g[k]` is the mean of `h` over the `L` frames `k - L + 1 ..= k`, and it is applied
//!    to frame `k - L`, which leaves the delay line at that moment. Every `h` in that mean covers
//!    frame `k - L`, so each is at most `r[k - L]`, and so is their mean: the frame is brought
//!    under the ceiling, and the gain got there by a smooth ramp across the look-ahead rather than
//!    a step.
//! 5. When the required gain rises again it follows with the release time constant, never
//!    faster than the mean allows, so step 4 still holds.
//!
//! The interpolator's own delay is added to the look-ahead. A small margin under the ceiling
//! covers what a 4× estimate can miss between its phases.
//!
//! Most programme material sits well under the ceiling, and there the interpolation is skipped
//! without approximation: an interpolated value is a weighted sum of the window's samples, so it
//! can never exceed `Σ|taps| · max|x|`. While no sample in the window reaches
//! `ceiling / Σ|taps|`, the required gain is exactly 1.

use crate::processor::{Processor, sanitize};
use crate::{AudioSpec, DspError, db_to_gain};

/// Interpolation taps per phase.
const TAPS: usize = 16;
/// Oversampling factor of the peak estimate.
const PHASES: usize = 4;
/// Safety margin under the ceiling for peaks between the estimate's phases, dB. An independent
/// meter (ffmpeg's ebur128, its own oversampling filter) read up to 0.15 dB above this
/// estimator on hot material with 0.05 dB.
const MARGIN_DB: f64 = 0.2;

/// The limiter. Configure with [`crate::Limiter`] parameters.
#[derive(Debug)]
pub struct TruePeakLimiter {
    params: crate::Limiter,
    channels: usize,
    ceiling: f32,
    /// Look-ahead in frames (L).
    lookahead: usize,
    release_coef: f32,
    /// Interpolator taps, per phase (phases 1..PHASES; phase 0 is the sample itself).
    taps: [[f32; TAPS]; PHASES - 1],
    /// Last TAPS input samples per channel, for the interpolator: per channel a ring of TAPS
    /// written twice (at `i` and `i + TAPS`), so the last TAPS samples are always one
    /// contiguous slice the dot products can run over.
    history: Vec<f32>,
    history_pos: usize,
    /// Delay line of `lookahead` frames of interpolator-centre frames (ring, frame-major).
    delay: Vec<f32>,
    delay_pos: usize,
    /// Sliding minimum over the last L + 1 required gains: a monotonic queue in a ring of
    /// (frame index, gain).
    minq: Vec<(u64, f32)>,
    minq_head: usize,
    minq_len: usize,
    /// Box average over the last L held gains.
    boxbuf: Vec<f32>,
    box_pos: usize,
    box_sum: f64,
    /// `1 / boxbuf.len()`.
    box_scale: f64,
    gain: f32,
    frame: u64,
    /// Samples at or above this may make an interpolated value reach the ceiling.
    hot: f32,
    /// Frames until the last hot sample leaves the interpolator's window.
    hot_left: usize,
}

impl TruePeakLimiter {
    /// A limiter with these parameters; call [`Processor::prepare`] before use.
    pub fn new(params: crate::Limiter) -> TruePeakLimiter {
        TruePeakLimiter {
            params,
            channels: 0,
            ceiling: 1.0,
            lookahead: 1,
            release_coef: 0.0,
            taps: interpolator(),
            history: Vec::new(),
            history_pos: 0,
            delay: Vec::new(),
            delay_pos: 0,
            minq: Vec::new(),
            minq_head: 0,
            minq_len: 0,
            boxbuf: Vec::new(),
            box_pos: 0,
            box_sum: 0.0,
            box_scale: 1.0,
            gain: 1.0,
            frame: 0,
            hot: 0.0,
            hot_left: 0,
        }
    }

    /// The gain currently applied (1.0 = none), for metering.
    pub fn gain(&self) -> f32 {
        self.gain
    }

    /// The last TAPS samples of channel `c`, oldest first.
    #[inline]
    fn window(&self, c: usize) -> &[f32] {
        let start = c * 2 * TAPS + self.history_pos;
        &self.history[start..start + TAPS]
    }

    /// The peak around the interpolator's centre frame, over all channels, 4× oversampled.
    fn peak(&self) -> f32 {
        let mut peak = 0f32;
        for c in 0..self.channels {
            let w = self.window(c);
            // The frame at the interpolator's centre, and values between it and the next.
            peak = peak.max(w[TAPS / 2 - 1].abs());
            for phase in &self.taps {
                peak = peak.max(dot(phase, w).abs());
            }
        }
        peak
    }

    fn push_min(&mut self, gain: f32) {
        let cap = self.minq.len();
        // Drop gains that can never be the minimum again (not below the new one).
        while self.minq_len > 0 {
            let last = wrap(self.minq_head + self.minq_len - 1, cap);
            if self.minq[last].1 >= gain {
                self.minq_len -= 1;
            } else {
                break;
            }
        }
        let slot = wrap(self.minq_head + self.minq_len, cap);
        self.minq[slot] = (self.frame, gain);
        self.minq_len += 1;
        // Drop what fell out of the window of L + 1 frames.
        let oldest = self.frame.saturating_sub(self.lookahead as u64);
        while self.minq[self.minq_head].0 < oldest {
            self.minq_head = wrap(self.minq_head + 1, cap);
            self.minq_len -= 1;
        }
    }
}

/// The dot product of a phase's taps and a window of `TAPS` samples, summed in eight lanes so
/// that the compiler can use vector instructions (a single running sum fixes the order of the
/// additions and so forbids them).
#[inline]
fn dot(taps: &[f32; TAPS], window: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for (pair_t, pair_w) in taps.chunks_exact(8).zip(window.chunks_exact(8)) {
        for ((lane, t), x) in lanes.iter_mut().zip(pair_t).zip(pair_w) {
            *lane += t * x;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + e) + (b + f)) + ((c + g) + (d + h))
}

/// `i % len` for `i < 2 · len`, without a division: the ring indices here never run further.
#[inline]
fn wrap(i: usize, len: usize) -> usize {
    if i >= len { i - len } else { i }
}

/// Windowed-sinc interpolator for fractional positions 1/4, 2/4, 3/4 between the frames at
/// `TAPS / 2 - 1` and `TAPS / 2` of the history.
fn interpolator() -> [[f32; TAPS]; PHASES - 1] {
    let mut taps = [[0f32; TAPS]; PHASES - 1];
    for (p, phase) in taps.iter_mut().enumerate() {
        let frac = (p + 1) as f64 / PHASES as f64;
        let mut sum = 0.0;
        for (k, tap) in phase.iter_mut().enumerate() {
            // Distance from the interpolated point to history frame k.
            let x = k as f64 - (TAPS / 2 - 1) as f64 - frac;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            // Blackman window over the span of the taps.
            let w = {
                let t = (x + TAPS as f64 / 2.0) / TAPS as f64;
                0.42 - 0.5 * (2.0 * std::f64::consts::PI * t).cos()
                    + 0.08 * (4.0 * std::f64::consts::PI * t).cos()
            };
            *tap = (sinc * w) as f32;
            sum += sinc * w;
        }
        // Unity gain at DC.
        for tap in phase.iter_mut() {
            *tap = (f64::from(*tap) / sum) as f32;
        }
    }
    taps
}

impl Processor for TruePeakLimiter {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        let ch = spec.channels();
        self.channels = ch;
        self.ceiling = db_to_gain(self.params.threshold_db - MARGIN_DB) as f32;
        // The largest factor by which any phase can exceed the window's largest sample.
        let l1 = self
            .taps
            .iter()
            .map(|phase| phase.iter().map(|t| t.abs()).sum::<f32>())
            .fold(1.0f32, f32::max);
        // Rounded down a little so float rounding in the sums cannot slip past it.
        self.hot = self.ceiling / l1 * 0.999;
        self.lookahead = spec.frames_in_ms(self.params.lookahead_ms);
        let release_frames = spec.frames_in_ms(self.params.release_ms) as f64;
        self.release_coef = (1.0 - (-1.0 / release_frames).exp()) as f32;
        self.history = vec![0.0; 2 * TAPS * ch];
        self.delay = vec![0.0; self.lookahead * ch];
        self.minq = vec![(0, 1.0); self.lookahead + 2];
        self.boxbuf = vec![1.0; self.lookahead];
        self.box_scale = 1.0 / self.lookahead.max(1) as f64;
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.history.fill(0.0);
        self.history_pos = 0;
        self.delay.fill(0.0);
        self.delay_pos = 0;
        self.minq_head = 0;
        self.minq_len = 0;
        self.boxbuf.fill(1.0);
        self.box_pos = 0;
        self.box_sum = self.boxbuf.len() as f64;
        self.gain = 1.0;
        self.frame = 0;
        self.hot_left = 0;
    }

    fn process(&mut self, block: &mut [f32]) {
        let ch = self.channels;
        if ch == 0 || self.boxbuf.is_empty() {
            return;
        }
        let delay_frames = self.delay.len() / ch;
        let whole = block.len() - block.len() % ch;
        for frame in block[..whole].chunks_exact_mut(ch) {
            // 1. Into the interpolator's history (twice, see `history`).
            for (c, x) in frame.iter().enumerate() {
                let x = sanitize(*x);
                if x.abs() >= self.hot {
                    self.hot_left = TAPS;
                }
                let base = c * 2 * TAPS + self.history_pos;
                self.history[base] = x;
                self.history[base + TAPS] = x;
            }
            self.history_pos = wrap(self.history_pos + 1, TAPS);
            // 2. Required gain for the frame at the interpolator's centre: exactly 1 while no
            //    sample in the window is hot (see the module docs).
            let required = if self.hot_left > 0 {
                self.hot_left -= 1;
                let peak = self.peak();
                if peak > self.ceiling {
                    self.ceiling / peak
                } else {
                    1.0
                }
            } else {
                1.0
            };
            // 3. Sliding minimum over L + 1 frames.
            self.push_min(required);
            let held = self.minq[self.minq_head].1;
            // 4. Box average over L frames.
            self.box_sum += f64::from(held) - f64::from(self.boxbuf[self.box_pos]);
            self.boxbuf[self.box_pos] = held;
            self.box_pos = wrap(self.box_pos + 1, self.boxbuf.len());
            let mean = (self.box_sum * self.box_scale) as f32;
            // 5. Down at once, up with the release.
            self.gain = if mean < self.gain {
                mean
            } else {
                self.gain + (mean - self.gain) * self.release_coef
            };
            self.gain = self.gain.min(mean);
            // The frame L before the interpolator's centre goes out with this gain: the delay line
            // holds centre frames (already TAPS / 2 old) for L more frames.
            let d = self.delay_pos * ch;
            for (c, x) in frame.iter_mut().enumerate() {
                let centre = self.history[c * 2 * TAPS + self.history_pos + TAPS / 2 - 1];
                let out = self.delay[d + c] * self.gain;
                self.delay[d + c] = centre;
                // Rounding in the box sum must not let a sample through above the ceiling.
                *x = out.clamp(-self.ceiling, self.ceiling);
            }
            self.delay_pos = wrap(self.delay_pos + 1, delay_frames);
            self.frame += 1;
        }
    }

    fn latency_frames(&self) -> usize {
        self.delay.len() / self.channels.max(1) + TAPS / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Meter, gain_to_db};

    fn limiter(ceiling_db: f64, lookahead_ms: f64, spec: AudioSpec) -> TruePeakLimiter {
        let mut l = TruePeakLimiter::new(crate::Limiter {
            threshold_db: ceiling_db,
            lookahead_ms,
            release_ms: 50.0,
        });
        l.prepare(spec).unwrap();
        l
    }

    fn sine(freq: f32, db: f32, seconds: f32, spec: AudioSpec) -> Vec<f32> {
        let rate = spec.sample_rate() as f32;
        let amp = 10f32.powf(db / 20.0);
        (0..(seconds * rate) as usize)
            .flat_map(|i| {
                std::iter::repeat_n(
                    amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate).sin(),
                    spec.channels(),
                )
            })
            .collect()
    }

    #[test]
    fn hot_sine_stays_under_the_ceiling_in_true_peak() {
        let spec = AudioSpec::new(48_000, 2).unwrap();
        for freq in [997.0, 6_000.0, 11_025.0, 19_000.0] {
            let mut l = limiter(-1.0, 5.0, spec);
            let mut audio = sine(freq, 6.0, 2.0, spec);
            for block in audio.chunks_mut(1024) {
                l.process(block);
            }
            let sample_peak = audio.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(
                gain_to_db(f64::from(sample_peak)) <= -1.0 + 1e-6,
                "{freq} Hz sample peak {sample_peak}"
            );
            let mut meter = Meter::new(spec).unwrap();
            meter.add(&audio);
            let tp = meter.reading().true_peak;
            assert!(
                tp <= -1.0 + 0.1,
                "{freq} Hz: true peak {tp:.3} dBTP over a -1 dBTP ceiling"
            );
        }
    }

    #[test]
    fn quiet_audio_passes_unchanged_after_the_latency() {
        let spec = AudioSpec::new(44_100, 2).unwrap();
        let mut l = limiter(-1.0, 5.0, spec);
        let input = sine(440.0, -12.0, 0.5, spec);
        let mut out = input.clone();
        l.process(&mut out);
        let lat = l.latency_frames() * spec.channels();
        for (o, i) in out[lat..].iter().zip(&input) {
            assert!((o - i).abs() < 1e-6, "{o} != {i}");
        }
    }

    #[test]
    fn nan_and_infinity_never_poison_it() {
        let spec = AudioSpec::new(48_000, 1).unwrap();
        let mut l = limiter(-3.0, 2.0, spec);
        let mut block = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e38,
            -1e38,
            0.5,
            f32::MIN_POSITIVE / 4.0,
        ];
        block.extend(std::iter::repeat_n(0.9, 4000));
        l.process(&mut block);
        let ceiling = db_to_gain(-3.0) as f32;
        assert!(
            block.iter().all(|x| x.is_finite() && x.abs() <= ceiling),
            "{block:?}"
        );
        let mut after = sine(1000.0, -20.0, 0.2, spec);
        l.process(&mut after);
        assert!(
            after.iter().any(|x| x.abs() > 0.05),
            "the limiter recovered"
        );
    }
}
