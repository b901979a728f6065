//! A feed-forward compressor: RMS detector, soft-knee static curve, attack and release in dB,
//! makeup gain, linked or per-channel, with parameter changes that never click.
//!
//! For each frame:
//!
//! 1. **Detector.** Each channel's square is averaged by a one-pole filter with a fixed time
//!    constant of [`DETECTOR_MS`] (2 ms), giving its level `L = 10·log10(mean square)` in dBFS
//!    RMS (a full-scale sine reads −3 dB). RMS rather than peak because a peak detector feeds
//!    every half-cycle of the waveform into the gain, and with a release much longer than the
//!    attack that ripple settles into a level-dependent error of a dB or more; 2 ms is short
//!    enough to add little to the attack and long enough that a 1 kHz tone reads with under
//!    ±0.2 dB of ripple (low bass ripples more, as in any fast compressor). With
//!    `stereo_link` the loudest channel's level drives every channel, so the image does not
//!    move; without it each channel has its own.
//! 2. **Static curve.** With threshold `T`, slope `S = 1 − 1/ratio` and knee width `W`, the
//!    wanted gain reduction is the quadratic soft knee of Giannoulis, Massberg and Reiss
//!    ("Digital Dynamic Range Compressor Design — A Tutorial and Analysis", JAES 60(6), 2012):
//!
//!    ```text
//!    r(L) = 0                          if L − T ≤ −W/2
//!         = S · (L − T + W/2)² / (2W)  if |L − T| < W/2
//!         = S · (L − T)                if L − T ≥ W/2
//!    ```
//!
//!    The output level `L − r(L)` is `L` below the knee, `T + (L − T)/ratio` above it, and in
//!    between a parabola that meets both with the same value and slope; `W = 0` is a hard knee.
//! 3. **Ballistics.** Once per control period (16 frames at 48 kHz, see
//!    [`crate::processor::CONTROL_HZ`]) the loudest detector level of the period gives `r`, and
//!    the applied reduction `g` follows it in dB through a one-pole filter,
//!    `g += a·(r − g)` with `a = 1 − exp(−period / (time · rate))`: the attack time while the
//!    reduction grows (`r > g`), the release time while it shrinks. Working in dB makes the
//!    times the same at every level (the paper's "smooth branching" detector); after a step,
//!    `g` covers 63 % of the way in one time constant.
//! 4. **Output.** The gain `10^((makeup − g) / 20)` is reached by the end of the next control
//!    period along a straight line from the previous one, and `y = x · gain` on every frame.
//!    The gain thus trails the detector by one period (a third of a millisecond), and never
//!    steps.
//!
//! **Parameter changes** ([`DynamicsCompressor::set_params`]): threshold, slope, knee width and
//! makeup gain each glide to their new value through a one-pole smoother with a 10 ms time
//! constant, stepped once per control period. The static curve is continuous in all three of its parameters, so its output moves
//! continuously too, and the applied gain never steps, whatever the attack time. New attack and
//! release times apply at once: they change how fast the gain moves, never where it is.
//! Switching `stereo_link` is smooth for the same reason: every channel keeps its own
//! reduction, which, linked, simply follows the common target.
//!
//! **Real-time safety.** All state sits in fixed arrays of [`MAX_CHANNELS`] detectors and
//! reductions: nothing is allocated, even in `prepare`. Each sample is sanitized (NaN, ±∞ and
//! denormals become 0) and clamped to ±10⁶ (+120 dBFS), so squares, logs and gains
//! stay finite and a burst of garbage can only push the reduction up, from where it releases.
//! Nothing decays into denormals: the mean square has a floor of −120 dBFS, and the reduction
//! and the gliding parameters snap to their target once within 10⁻⁶ dB of it.
//! Parameters are clamped to the ranges [`crate::DspGraph::validate`] accepts (a non-finite
//! one takes its default), so even an unvalidated configuration cannot produce NaN.

use crate::processor::{GainRamp, Processor, control_period, glide, one_pole, sanitize, within};
use crate::{AudioSpec, DspError, MAX_CHANNELS};

/// Time constant of the RMS detector, ms.
const DETECTOR_MS: f64 = 2.0;
/// Time constant with which threshold, ratio, knee and makeup glide to new values, ms.
const GLIDE_MS: f64 = 10.0;
/// Largest sample magnitude processed (+120 dBFS); beyond it samples are clipped, so that the
/// arithmetic stays finite.
const MAX_SAMPLE: f32 = 1.0e6;
/// Floor of the detector's mean square (−120 dBFS): silence never reaches denormals or −∞.
const MEAN_SQUARE_FLOOR: f64 = 1.0e-12;
/// Distance in dB under which a smoothed value snaps to its target (keeps denormals out).
const SNAP_DB: f64 = 1.0e-6;

/// The compressor. Configure with [`crate::Compressor`] parameters.
#[derive(Debug, Clone)]
pub struct DynamicsCompressor {
    /// Parameters in force (clamped), the targets of the glide.
    params: crate::Compressor,
    channels: usize,
    /// Sample rate, Hz; 0 before `prepare`.
    rate: f64,
    detector_coef: f64,
    /// Frames per control period (see [`crate::processor::CONTROL_HZ`]).
    period: usize,
    /// Frames of the current control period already processed.
    phase: usize,
    /// Attack, release and glide coefficients per control period.
    attack_coef: f64,
    release_coef: f64,
    glide_coef: f64,
    /// The static curve and makeup as currently applied, gliding toward `params`.
    curve: Curve,
    makeup_db: f64,
    /// Per-channel mean square of the detector.
    mean_square: [f64; MAX_CHANNELS],
    /// Per-channel largest mean square of the current control period.
    period_peak: [f64; MAX_CHANNELS],
    /// Per-channel applied reduction, dB (≥ 0), as of the last control point.
    reduction: [f64; MAX_CHANNELS],
    /// Per-channel linear gain, ramping to each control point's gain.
    ramp: [GainRamp; MAX_CHANNELS],
    /// `curve.quiet_below()`, kept current as the curve glides.
    quiet: f64,
}

/// The static curve's parameters, as glided.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Curve {
    threshold_db: f64,
    /// `1 − 1/ratio`: 0 for no compression, → 1 for limiting.
    slope: f64,
    knee_db: f64,
}

impl Curve {
    fn of(p: &crate::Compressor) -> Curve {
        Curve {
            threshold_db: p.threshold_db,
            slope: 1.0 - 1.0 / p.ratio,
            knee_db: p.knee_db,
        }
    }

    /// Gain reduction wanted at input level `level_db`, dB (≥ 0).
    #[inline]
    /// The mean square below which the curve gives no reduction at all (the knee's foot), so
    /// the level's logarithm need not be taken there.
    fn quiet_below(&self) -> f64 {
        10f64.powf((self.threshold_db - self.knee_db / 2.0) / 10.0)
    }

    fn reduction(&self, level_db: f64) -> f64 {
        let over = level_db - self.threshold_db;
        let half = self.knee_db / 2.0;
        let r = if over <= -half {
            0.0
        } else if over >= half {
            self.slope * over
        } else {
            // Only reached with a knee wider than zero, so the division is safe.
            self.slope * (over + half) * (over + half) / (2.0 * self.knee_db)
        };
        // The parabola's foot can underflow toward denormals; 1e-20 dB is no step.
        if r < 1e-20 { 0.0 } else { r }
    }
}

impl DynamicsCompressor {
    /// A compressor with these parameters; call [`Processor::prepare`] before use.
    pub fn new(params: crate::Compressor) -> DynamicsCompressor {
        let params = clamped(params);
        DynamicsCompressor {
            params,
            channels: 0,
            rate: 0.0,
            detector_coef: 1.0,
            period: 1,
            phase: 0,
            attack_coef: 1.0,
            release_coef: 1.0,
            glide_coef: 1.0,
            curve: Curve::of(&params),
            makeup_db: params.makeup_gain_db,
            mean_square: [MEAN_SQUARE_FLOOR; MAX_CHANNELS],
            period_peak: [MEAN_SQUARE_FLOOR; MAX_CHANNELS],
            reduction: [0.0; MAX_CHANNELS],
            ramp: [GainRamp::at(1.0); MAX_CHANNELS],
            quiet: 0.0,
        }
    }

    /// Changes the parameters while running, without clicks: threshold, ratio, knee and makeup
    /// glide to their new values with a 10 ms time constant; attack, release and linking apply
    /// at once. Out-of-range values are clamped to what [`crate::DspGraph::validate`] accepts.
    /// Never allocates.
    pub fn set_params(&mut self, params: crate::Compressor) {
        self.params = clamped(params);
        if self.rate > 0.0 {
            let control_rate = self.rate / self.period as f64;
            self.attack_coef = one_pole(self.params.attack_ms, control_rate);
            self.release_coef = one_pole(self.params.release_ms, control_rate);
        } else {
            // Not prepared: nothing is playing, so nothing to glide from.
            self.curve = Curve::of(&self.params);
            self.makeup_db = self.params.makeup_gain_db;
        }
    }

    /// The parameters in force, after clamping.
    pub fn params(&self) -> crate::Compressor {
        self.params
    }

    /// The largest gain reduction currently applied to any channel, dB (0 = none), for
    /// metering. Makeup gain is not included.
    pub fn gain_reduction_db(&self) -> f64 {
        self.reduction[..self.channels]
            .iter()
            .fold(0.0, |m, &r| m.max(r))
    }

    /// Moves the static curve and makeup one control period toward the parameters.
    #[inline]
    fn glide(&mut self) {
        let c = self.glide_coef;
        let target = Curve::of(&self.params);
        if self.curve == target && self.makeup_db == self.params.makeup_gain_db {
            // Settled: nothing to glide, and the knee's foot is already known.
            return;
        }
        glide(
            &mut self.curve.threshold_db,
            target.threshold_db,
            c,
            SNAP_DB,
        );
        glide(&mut self.curve.slope, target.slope, c, SNAP_DB);
        glide(&mut self.curve.knee_db, target.knee_db, c, SNAP_DB);
        glide(&mut self.makeup_db, self.params.makeup_gain_db, c, SNAP_DB);
        self.quiet = self.curve.quiet_below();
    }
}

/// The parameters clamped to the ranges the graph validation accepts.
fn clamped(p: crate::Compressor) -> crate::Compressor {
    let d = crate::Compressor::default();
    crate::Compressor {
        threshold_db: within(p.threshold_db, -80.0, 0.0, d.threshold_db),
        ratio: within(p.ratio, 1.0, 100.0, d.ratio),
        knee_db: within(p.knee_db, 0.0, 48.0, d.knee_db),
        attack_ms: within(p.attack_ms, 0.0, 1000.0, d.attack_ms),
        release_ms: within(p.release_ms, 0.0, 10_000.0, d.release_ms),
        makeup_gain_db: within(p.makeup_gain_db, -24.0, 40.0, d.makeup_gain_db),
        stereo_link: p.stereo_link,
    }
}

/// dB to linear gain in the processing loop.
#[inline]
fn gain_of(db: f64) -> f32 {
    (db * (std::f64::consts::LN_10 / 20.0)).exp() as f32
}

impl DynamicsCompressor {
    /// Detects and applies the gain ramp on frames that all lie in the current control period.
    #[inline]
    fn run(&mut self, frames: &mut [f32]) {
        match self.channels {
            1 => self.run_fixed::<1>(frames),
            2 => self.run_fixed::<2>(frames),
            _ => self.run_any(frames),
        }
    }

    /// [`Self::run`] for exactly `N` channels, the usual one or two: the same arithmetic in the
    /// same order, with the state in locals and the channel loop unrolled.
    #[inline]
    fn run_fixed<const N: usize>(&mut self, frames: &mut [f32]) {
        let dc = self.detector_coef;
        let mut mean_square = [MEAN_SQUARE_FLOOR; N];
        let mut period_peak = [MEAN_SQUARE_FLOOR; N];
        let mut ramp = [GainRamp::at(1.0); N];
        mean_square.copy_from_slice(&self.mean_square[..N]);
        period_peak.copy_from_slice(&self.period_peak[..N]);
        ramp.copy_from_slice(&self.ramp[..N]);
        for frame in frames.chunks_exact_mut(N) {
            for c in 0..N {
                let s = sanitize(frame[c]).clamp(-MAX_SAMPLE, MAX_SAMPLE);
                let sq = f64::from(s) * f64::from(s);
                let ms = &mut mean_square[c];
                *ms = (*ms + dc * (sq - *ms)).max(MEAN_SQUARE_FLOOR);
                period_peak[c] = period_peak[c].max(*ms);
                frame[c] = s * ramp[c].advance();
            }
        }
        self.mean_square[..N].copy_from_slice(&mean_square);
        self.period_peak[..N].copy_from_slice(&period_peak);
        self.ramp[..N].copy_from_slice(&ramp);
    }

    /// [`Self::run`] for any number of channels.
    fn run_any(&mut self, frames: &mut [f32]) {
        let ch = self.channels;
        let dc = self.detector_coef;
        for frame in frames.chunks_exact_mut(ch) {
            for (c, x) in frame.iter_mut().enumerate() {
                let s = sanitize(*x).clamp(-MAX_SAMPLE, MAX_SAMPLE);
                let sq = f64::from(s) * f64::from(s);
                let ms = &mut self.mean_square[c];
                *ms = (*ms + dc * (sq - *ms)).max(MEAN_SQUARE_FLOOR);
                self.period_peak[c] = self.period_peak[c].max(*ms);
                *x = s * self.ramp[c].advance();
            }
        }
    }

    /// The end of a control period: glide the parameters, turn the period's levels into
    /// reductions, and set each channel's gain ramp for the next period.
    fn control(&mut self) {
        self.glide();
        let curve = self.curve;
        let quiet = self.quiet;
        let target_of = |ms: f64| {
            if ms < quiet {
                0.0
            } else {
                curve.reduction(10.0 * ms.log10())
            }
        };
        let ch = self.channels;
        let linked = self.params.stereo_link;
        let linked_target = if linked {
            target_of(
                self.period_peak[..ch]
                    .iter()
                    .fold(MEAN_SQUARE_FLOOR, |m, &x| m.max(x)),
            )
        } else {
            0.0
        };
        // Linked channels usually share one reduction: compute its gain once.
        let mut shared = (f64::NAN, 1.0f32);
        for c in 0..ch {
            let target = if linked {
                linked_target
            } else {
                target_of(self.period_peak[c])
            };
            let red = &mut self.reduction[c];
            let coef = if target > *red {
                self.attack_coef
            } else {
                self.release_coef
            };
            glide(red, target, coef, SNAP_DB);
            let db = self.makeup_db - *red;
            if db != shared.0 {
                shared = (db, gain_of(db));
            }
            self.ramp[c].head_for(shared.1, self.period);
            self.period_peak[c] = MEAN_SQUARE_FLOOR;
        }
    }
}

impl Processor for DynamicsCompressor {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        self.channels = spec.channels();
        self.rate = f64::from(spec.sample_rate());
        self.period = control_period(self.rate);
        let control_rate = self.rate / self.period as f64;
        self.detector_coef = one_pole(DETECTOR_MS, self.rate);
        self.attack_coef = one_pole(self.params.attack_ms, control_rate);
        self.release_coef = one_pole(self.params.release_ms, control_rate);
        self.glide_coef = one_pole(GLIDE_MS, control_rate);
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.mean_square = [MEAN_SQUARE_FLOOR; MAX_CHANNELS];
        self.period_peak = [MEAN_SQUARE_FLOOR; MAX_CHANNELS];
        self.reduction = [0.0; MAX_CHANNELS];
        self.phase = 0;
        // No audio is playing across a reset, so the parameters may land at once.
        self.curve = Curve::of(&self.params);
        self.makeup_db = self.params.makeup_gain_db;
        self.quiet = self.curve.quiet_below();
        let g = gain_of(self.makeup_db);
        self.ramp = [GainRamp::at(g); MAX_CHANNELS];
    }

    fn process(&mut self, block: &mut [f32]) {
        let ch = self.channels;
        if ch == 0 {
            return;
        }
        let whole = block.len() - block.len() % ch;
        let mut rest = &mut block[..whole];
        while !rest.is_empty() {
            let take = ((self.period - self.phase) * ch).min(rest.len());
            let (now, later) = rest.split_at_mut(take);
            self.run(now);
            self.phase += take / ch;
            if self.phase == self.period {
                self.phase = 0;
                self.control();
            }
            rest = later;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gain_to_db;

    const RATE: u32 = 48_000;

    fn params(threshold_db: f64, ratio: f64, knee_db: f64) -> crate::Compressor {
        crate::Compressor {
            threshold_db,
            ratio,
            knee_db,
            attack_ms: 5.0,
            release_ms: 50.0,
            makeup_gain_db: 0.0,
            stereo_link: true,
        }
    }

    fn compressor(p: crate::Compressor, channels: usize) -> DynamicsCompressor {
        let mut c = DynamicsCompressor::new(p);
        c.prepare(AudioSpec::new(RATE, channels).unwrap()).unwrap();
        c
    }

    /// Amplitude of a sine whose RMS level is `rms_db` dBFS.
    fn amp(rms_db: f64) -> f32 {
        (crate::db_to_gain(rms_db) * std::f64::consts::SQRT_2) as f32
    }

    /// `frames` frames of a 1 kHz sine at amplitude `a`, on each channel with its own amplitude,
    /// starting at frame `start`.
    fn sine(amps: &[f32], start: usize, frames: usize) -> Vec<f32> {
        (start..start + frames)
            .flat_map(|i| {
                let s = (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(RATE)).sin();
                amps.iter().map(move |a| a * s as f32)
            })
            .collect()
    }

    /// RMS level in dBFS of channel `c` of interleaved `audio` with `ch` channels.
    fn rms_db(audio: &[f32], ch: usize, c: usize) -> f64 {
        let n = audio.len() / ch;
        let sum: f64 = audio
            .iter()
            .skip(c)
            .step_by(ch)
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        10.0 * (sum / n as f64).log10()
    }

    /// Output RMS of a settled 1 kHz sine at `in_db` RMS through `p` (mono): 1 s to settle,
    /// the last 100 ms measured.
    fn settled_out_db(p: crate::Compressor, in_db: f64) -> f64 {
        let mut c = compressor(p, 1);
        let mut audio = sine(&[amp(in_db)], 0, RATE as usize);
        for b in audio.chunks_mut(512) {
            c.process(b);
        }
        rms_db(&audio[audio.len() - 4800..], 1, 0)
    }

    fn hard_knee(t: f64, ratio: f64, l: f64) -> f64 {
        if l <= t { l } else { t + (l - t) / ratio }
    }

    /// [`Processor::process`], but every run through the any-channel-count path.
    fn process_any(c: &mut DynamicsCompressor, block: &mut [f32]) {
        let ch = c.channels;
        let mut rest = block;
        while !rest.is_empty() {
            let take = ((c.period - c.phase) * ch).min(rest.len());
            let (now, later) = rest.split_at_mut(take);
            c.run_any(now);
            c.phase += take / ch;
            if c.phase == c.period {
                c.phase = 0;
                c.control();
            }
            rest = later;
        }
    }

    #[test]
    fn the_mono_and_stereo_paths_give_exactly_what_the_general_one_gives() {
        for (channels, link) in [(1, true), (2, true), (2, false)] {
            let p = crate::Compressor {
                stereo_link: link,
                ..params(-30.0, 4.0, 6.0)
            };
            let mut fast = compressor(p, channels);
            let mut general = compressor(p, channels);
            // A level that steps up and down so the gain moves, one channel louder.
            let amps: Vec<f32> = (0..channels).map(|c| amp(-12.0 - 6.0 * c as f64)).collect();
            let mut a = sine(&amps, 0, RATE as usize / 2);
            for (i, x) in a.iter_mut().enumerate() {
                if (i / (channels * 2_400)) % 3 == 1 {
                    *x *= 0.05;
                }
            }
            let mut b = a.clone();
            for (x, y) in a.chunks_mut(700).zip(b.chunks_mut(700)) {
                fast.process(x);
                process_any(&mut general, y);
            }
            assert!(a == b, "{channels} channels, linked {link}");
            assert!(fast.reduction[0] > 1.0, "the compressor worked");
        }
    }

    #[test]
    fn hard_knee_static_curve_matches_the_formula() {
        // 4:1 over -20 dB, hard knee: -8 dB in is 12 over, comes out 3 over = -17 (+ makeup).
        for makeup in [0.0, 6.0] {
            let p = crate::Compressor {
                makeup_gain_db: makeup,
                ..params(-20.0, 4.0, 0.0)
            };
            for l in [-40.0, -30.0, -22.0, -20.0, -18.0, -14.0, -8.0, -2.0] {
                let want = hard_knee(-20.0, 4.0, l) + makeup;
                let got = settled_out_db(p, l);
                println!(
                    "hard knee, makeup {makeup:+}: in {l:6.1} -> out {got:7.2} (formula {want:6.1}, error {:+.3})",
                    got - want
                );
                assert!(
                    (got - want).abs() <= 0.3,
                    "in {l}: out {got:.2}, want {want:.2}"
                );
            }
        }
    }

    /// The quadratic knee is tangent to the identity at `T − W/2` and to the compressed line at
    /// `T + W/2`; being concave, it runs under both, so it never lies between the hard-knee
    /// curve and the identity. What lies between them is its slope: from 1 (no compression)
    /// down to `1/ratio`. Its depth under the hard knee is greatest at the threshold, `S·W/8`.
    #[test]
    fn soft_knee_is_continuous_with_a_slope_between_the_curves() {
        let (t, ratio, w) = (-20.0, 4.0, 12.0);
        let s = 1.0 - 1.0 / ratio;
        let curve = Curve::of(&params(t, ratio, w));
        let out = |l: f64| l - curve.reduction(l);
        let step = 0.001;
        let mut l = -40.0;
        let mut prev = out(l);
        let mut prev_slope = 1.0;
        while l < 0.0 {
            l += step;
            let o = out(l);
            let slope = (o - prev) / step;
            // Slope between the identity's and the compressed line's, never rising: no step,
            // no kink.
            assert!(
                slope <= 1.0 + 1e-6 && slope >= 1.0 / ratio - 1e-6,
                "slope {slope} at {l}"
            );
            assert!(slope <= prev_slope + 1e-6 && prev_slope - slope < 0.75 * step / w * 1.01);
            // Under the hard knee by at most S·W/8.
            let hard = hard_knee(t, ratio, l);
            assert!(
                o <= hard + 1e-9 && o >= hard - s * w / 8.0 - 1e-9,
                "{l} -> {o}"
            );
            prev = o;
            prev_slope = slope;
        }
        for edge in [t - w / 2.0, t + w / 2.0] {
            assert!((out(edge - 1e-9) - out(edge + 1e-9)).abs() < 1e-6);
            assert_eq!(out(edge), hard_knee(t, ratio, edge));
        }
        assert!((out(t) - (t - s * w / 8.0)).abs() < 1e-12);
        // Measured through the processor.
        let p = params(t, ratio, w);
        let mut last = f64::NEG_INFINITY;
        for l in [
            -30.0, -26.0, -24.0, -22.0, -20.0, -18.0, -16.0, -14.0, -10.0,
        ] {
            let got = settled_out_db(p, l);
            let want = out(l);
            println!(
                "soft knee 12 dB: in {l:6.1} -> out {got:7.2} (formula {want:7.2}, error {:+.3}; hard knee {:6.2})",
                got - want,
                hard_knee(t, ratio, l)
            );
            assert!(
                (got - want).abs() <= 0.3,
                "in {l}: out {got:.2}, want {want:.2}"
            );
            assert!(got > last);
            last = got;
        }
    }

    /// Frames after a level step until the reduction has covered `fraction` of the way from
    /// `from` to `to`.
    fn frames_to(c: &mut DynamicsCompressor, a: f32, start: usize, from: f64, to: f64) -> usize {
        let goal = from + 0.632 * (to - from);
        for i in 0..RATE as usize {
            let mut frame = sine(&[a], start + i, 1);
            c.process(&mut frame);
            let r = c.gain_reduction_db();
            if (to > from && r >= goal) || (to < from && r <= goal) {
                return i + 1;
            }
        }
        usize::MAX
    }

    #[test]
    fn attack_and_release_take_their_time_constants() {
        for (attack, release) in [(5.0, 50.0), (20.0, 200.0), (50.0, 500.0)] {
            let p = crate::Compressor {
                attack_ms: attack,
                release_ms: release,
                ..params(-20.0, 4.0, 0.0)
            };
            let mut c = compressor(p, 1);
            // Settle below threshold, then step to -8 dB: 9 dB of reduction wanted.
            let mut quiet = sine(&[amp(-40.0)], 0, 24_000);
            c.process(&mut quiet);
            assert_eq!(c.gain_reduction_db(), 0.0);
            let up = frames_to(&mut c, amp(-8.0), 24_000, 0.0, 9.0);
            // Settle loud, then step back down: the reduction releases to 0.
            let mut loud = sine(&[amp(-8.0)], 24_000 + up, 20 * (attack as usize) * 48);
            c.process(&mut loud);
            let settled = c.gain_reduction_db();
            assert!((settled - 9.0).abs() < 0.15, "settled at {settled}");
            let down = frames_to(&mut c, amp(-40.0), 0, settled, 0.0);
            let (up_ms, down_ms) = (up as f64 / 48.0, down as f64 / 48.0);
            println!(
                "attack {attack} ms: 63 % after {up_ms:.2} ms; release {release} ms: 63 % after {down_ms:.2} ms"
            );
            // The 2 ms detector adds a little to both.
            assert!(up_ms >= attack && up_ms <= attack * 1.1 + 1.5, "{up_ms}");
            assert!(
                down_ms >= release && down_ms <= release * 1.1 + 1.5,
                "{down_ms}"
            );
        }
    }

    #[test]
    fn stereo_link_reduces_the_quiet_channel_with_the_loud_one() {
        for linked in [true, false] {
            let p = crate::Compressor {
                stereo_link: linked,
                ..params(-20.0, 4.0, 0.0)
            };
            let mut c = compressor(p, 2);
            // Left at -8 dB wants 9 dB of reduction; right at -30 dB wants none.
            let mut audio = sine(&[amp(-8.0), amp(-30.0)], 0, RATE as usize);
            for b in audio.chunks_mut(1024) {
                c.process(b);
            }
            let tail = &audio[audio.len() - 9600..];
            let (left, right) = (rms_db(tail, 2, 0), rms_db(tail, 2, 1));
            println!("linked {linked}: left -8 -> {left:.2}, right -30 -> {right:.2}");
            assert!((left - -17.0).abs() < 0.3, "{left}");
            let want_right = if linked { -39.0 } else { -30.0 };
            assert!((right - want_right).abs() < 0.3, "{right}");
        }
    }

    /// The click bound. With `y = g·x`,
    /// `y[n+1] − y[n] = g[n+1]·(x[n+1] − x[n]) + (g[n+1] − g[n])·x[n]`, so
    /// `|Δy| ≤ g_max·max|Δx| + g_max·(10^(d/20) − 1)·max|x|`, where `d` is the most the gain
    /// moves in one frame, in dB. The makeup glide moves at most `c_glide · Δmakeup` per frame;
    /// the reduction at most `c_attack` (or the smaller `c_release`) times its distance to the
    /// target, which is under the input's excess over the threshold (here 8 dB). A gain that
    /// stepped would add `Δg · |x|`: 0.63 for the makeup step at this sine's crest (measured
    /// with the glide taken out).
    #[test]
    fn abrupt_parameter_changes_do_not_click() {
        let before = crate::Compressor {
            makeup_gain_db: 0.0,
            ..params(-20.0, 2.0, 0.0)
        };
        let after = crate::Compressor {
            makeup_gain_db: 12.0,
            ratio: 10.0,
            ..before
        };
        let a = crate::db_to_gain(-10.0) as f32;
        let mut c = compressor(before, 1);
        // Change at frame 24_012, a crest of the 1 kHz sine (48 frames a period).
        let split = 24_012;
        let mut first = sine(&[a], 0, split);
        c.process(&mut first);
        c.set_params(after);
        let mut second = sine(&[a], split, 24_000);
        c.process(&mut second);
        let input = sine(&[a], 0, split + 24_000);
        let dx = input
            .windows(2)
            .fold(0f32, |m, w| m.max((w[1] - w[0]).abs()));
        let g_max = crate::db_to_gain(12.0) as f32;
        let d_db = one_pole(GLIDE_MS, 48_000.0) * 12.0 + one_pole(5.0, 48_000.0) * 8.0;
        let bound = g_max * dx + g_max * (crate::db_to_gain(d_db) as f32 - 1.0) * a;
        let out: Vec<f32> = first.into_iter().chain(second).collect();
        let dy = out.windows(2).fold(0f32, |m, w| m.max((w[1] - w[0]).abs()));
        println!("largest output jump {dy:.4}, bound {bound:.4} (input jump {dx:.4})");
        assert!(dy <= bound, "jump {dy} over {bound}");
        // And the change did happen: -10 dBFS peak is -13 RMS, 7 over: 10:1 gives -19.3 + 12.
        let tail = rms_db(&out[out.len() - 4800..], 1, 0);
        assert!((tail - (-20.0 + 7.0 / 10.0 + 12.0)).abs() < 0.3, "{tail}");
    }

    #[test]
    fn garbage_input_gives_finite_output_and_it_recovers() {
        let p = crate::Compressor {
            makeup_gain_db: 20.0,
            ..params(-20.0, 3.0, 6.0)
        };
        let mut c = compressor(p, 2);
        let mut block = vec![
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e38,
            -1e38,
            f32::MAX,
            f32::MIN_POSITIVE / 4.0,
            -f32::MIN_POSITIVE / 3.0,
        ];
        block.extend(std::iter::repeat_n(1e30, 200));
        c.process(&mut block);
        assert!(block.iter().all(|x| x.is_finite()), "{block:?}");
        let mut silence = vec![f32::MIN_POSITIVE / 2.0; 96_000];
        c.process(&mut silence);
        assert!(silence.iter().all(|&x| x == 0.0));
        // After garbage and silence, a sine comes out as from a fresh compressor.
        let mut after = sine(&[amp(-30.0), amp(-30.0)], 0, 48_000);
        let mut fresh = after.clone();
        c.process(&mut after);
        let mut f = compressor(p, 2);
        f.process(&mut fresh);
        let (got, want) = (rms_db(&after, 2, 0), rms_db(&fresh, 2, 0));
        assert!((got - want).abs() < 0.01, "{got} vs {want}");
        assert!((got - (-30.0 + 20.0)).abs() < 0.1, "{got}");
    }

    #[test]
    fn odd_parameters_are_clamped_not_propagated() {
        let mut c = compressor(
            crate::Compressor {
                threshold_db: f64::NAN,
                ratio: 0.0,
                knee_db: -3.0,
                attack_ms: -1.0,
                release_ms: f64::INFINITY,
                makeup_gain_db: 1e9,
                stereo_link: false,
            },
            1,
        );
        let p = c.params();
        assert_eq!(p.threshold_db, crate::Compressor::default().threshold_db);
        assert_eq!((p.ratio, p.knee_db, p.attack_ms), (1.0, 0.0, 0.0));
        assert_eq!(p.makeup_gain_db, 40.0);
        let mut audio = sine(&[0.5], 0, 4800);
        c.process(&mut audio);
        assert!(audio.iter().all(|x| x.is_finite()));
        assert!(gain_to_db(f64::from(audio[12].abs() / 0.5)) > 39.9);
    }
}
