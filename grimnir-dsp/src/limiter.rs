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
//!
//! The steps run a chunk of frames at a time, each over the whole chunk, on one contiguous copy
//! of each channel's recent input (the interpolator's windows and the delayed output are slices
//! of it). The sliding minimum takes three comparisons a frame whatever `L` (a prefix and a
//! suffix minimum per block of `L + 1`), and the box sum is kept in fixed point, exact, so it
//! is exactly `L` again once every held gain is 1; a released gain within 10⁻⁶ of 1 is 1. A
//! chunk that needs no gain while the limiter is at rest (every gain it remembers is 1) skips
//! steps 3 to 5, which would change nothing.

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
/// Frames limited at a time (more when the look-ahead is longer): each stage runs over a whole
/// chunk, where the compiler can keep its state in registers and vectorize the plain ones.
const CHUNK: usize = 1024;
/// A released gain this close to 1, with nothing left to limit, is 1.
const UNITY_SNAP: f32 = 1e-6;

/// The limiter. Configure with [`crate::Limiter`] parameters.
#[derive(Debug)]
pub struct TruePeakLimiter {
    params: crate::Limiter,
    channels: usize,
    ceiling: f32,
    /// Look-ahead in frames (L).
    lookahead: usize,
    /// Interpolator taps, per phase (phases 1..PHASES; phase 0 is the sample itself).
    taps: [[f32; TAPS]; PHASES - 1],
    /// Per channel (`stride` apart), the last `carry` input frames followed by room for one
    /// chunk: the input as one contiguous run, so that every interpolator window and the
    /// delayed output are plain slices of it.
    input: Vec<f32>,
    /// Frames kept from one chunk to the next: the interpolator's window before the chunk's
    /// first frame, and the `L + TAPS / 2` frames the output lags the input by.
    carry: usize,
    /// Most frames per chunk.
    chunk: usize,
    /// `carry + chunk`.
    stride: usize,
    /// For each frame of the chunk, the gain it needs, then the gain it gets.
    gains: Vec<f32>,
    /// Steps 3 to 5 and their state.
    ballistics: Ballistics,
    /// Samples at or above this may make an interpolated value reach the ceiling.
    hot: f32,
    /// Frames until the last hot sample leaves the interpolator's window.
    hot_left: usize,
    /// Per frame, the largest magnitude over its channels: the `TAPS - 1` frames before the
    /// chunk, then the chunk's.
    frame_max: Vec<f32>,
    /// Per phase, the magnitudes of the taps on the two frames either side of the
    /// interpolated point, and the sum of the other taps' magnitudes.
    near: [[f32; 2]; PHASES - 1],
    far: [f32; PHASES - 1],
}

impl TruePeakLimiter {
    /// A limiter with these parameters; call [`Processor::prepare`] before use.
    pub fn new(params: crate::Limiter) -> TruePeakLimiter {
        TruePeakLimiter {
            params,
            channels: 0,
            ceiling: 1.0,
            lookahead: 1,
            taps: interpolator(),
            input: Vec::new(),
            carry: 0,
            chunk: 0,
            stride: 0,
            gains: Vec::new(),
            ballistics: Ballistics::default(),
            hot: 0.0,
            hot_left: 0,
            frame_max: Vec::new(),
            near: [[0.0; 2]; PHASES - 1],
            far: [0.0; PHASES - 1],
        }
    }

    /// The gain currently applied (1.0 = none), for metering.
    pub fn gain(&self) -> f32 {
        self.ballistics.gain
    }

    /// The peak of the frame at the centre of the interpolator window that starts at `start`
    /// (an index into each channel's run of `input`), over all channels, 4× oversampled.
    fn peak(&self, start: usize) -> f32 {
        let mut peak = 0f32;
        for c in 0..self.channels {
            let from = c * self.stride + start;
            let Some(w) = self.input.get(from..from + TAPS) else {
                continue;
            };
            // The frame at the interpolator's centre, and values between it and the next.
            peak = peak.max(w[TAPS / 2 - 1].abs());
            for phase in &self.taps {
                peak = peak.max(dot(phase, w).abs());
            }
        }
        peak
    }

    /// An upper bound of [`Self::peak`] from magnitudes alone: `a` and `b` the largest of the
    /// centre frame and of the next, `m` the largest in the window. Each interpolated value is
    /// at most its two near taps times `a` and `b` plus its far taps times `m`; the factor
    /// covers the rounding of the dot products.
    #[inline]
    fn peak_bound(&self, a: f32, b: f32, m: f32) -> f32 {
        let mut bound = a;
        for (near, far) in self.near.iter().zip(&self.far) {
            bound = bound.max(near[0] * a + near[1] * b + far * m);
        }
        bound * (1.0 + 1e-5)
    }

    /// Limits one chunk of at most `self.chunk` whole frames.
    fn run(&mut self, part: &mut [f32]) {
        let ch = self.channels;
        let frames = part.len() / ch;
        let (carry, stride) = (self.carry, self.stride);
        // 1. The input, sanitized, into each channel's run, and each frame's largest magnitude.
        self.take_input(part, frames);
        // 2. The gain each frame at the interpolator's centre needs: exactly 1 while no sample
        //    in its window is hot (see the module docs), and exactly 1 as well where a bound
        //    from the window's magnitudes stays under the ceiling.
        for j in 0..frames {
            // The window's frame maxima: frames `at - TAPS + 1 ..= at`.
            let window = &self.frame_max[j..j + TAPS];
            if window[TAPS - 1] >= self.hot {
                self.hot_left = TAPS;
            }
            self.gains[j] = if self.hot_left > 0 {
                self.hot_left -= 1;
                let bound =
                    self.peak_bound(window[TAPS / 2 - 1], window[TAPS / 2], lanes_max(window));
                let peak = if bound > self.ceiling {
                    self.peak(carry + j + 1 - TAPS)
                } else {
                    0.0
                };
                if peak > self.ceiling {
                    self.ceiling / peak
                } else {
                    1.0
                }
            } else {
                1.0
            };
        }
        // 3–5. The gain each frame gets.
        self.ballistics.run(&mut self.gains[..frames]);
        self.give_output(part, frames);
        // Keep the last `carry` frames for the next chunk.
        for c in 0..ch {
            let base = c * stride;
            self.input
                .copy_within(base + frames..base + frames + carry, base);
        }
        self.frame_max.copy_within(frames..frames + TAPS - 1, 0);
    }

    /// Step 1 for a chunk: `part`'s `frames` frames, sanitized, into each channel's run, and
    /// each frame's largest magnitude into `frame_max`. Mono and stereo have their own loops,
    /// which the compiler vectorizes; the general one strides through `part` once a channel.
    fn take_input(&mut self, part: &[f32], frames: usize) {
        let (carry, stride) = (self.carry, self.stride);
        let frame_max = &mut self.frame_max[TAPS - 1..][..frames];
        match self.channels {
            1 => {
                let run = &mut self.input[carry..][..frames];
                for ((dst, x), m) in run.iter_mut().zip(part).zip(frame_max) {
                    *dst = sanitize(*x);
                    *m = dst.abs();
                }
            }
            2 => {
                let (left, right) = self.input.split_at_mut(stride);
                let (left, right) = (&mut left[carry..][..frames], &mut right[carry..][..frames]);
                let frames_in = part.chunks_exact(2);
                for (((frame, l), r), m) in frames_in.zip(left).zip(right).zip(frame_max) {
                    let (a, b) = (sanitize(frame[0]), sanitize(frame[1]));
                    (*l, *r) = (a, b);
                    *m = if a.abs() > b.abs() { a.abs() } else { b.abs() };
                }
            }
            ch => {
                frame_max.fill(0.0);
                for c in 0..ch {
                    let run = &mut self.input[c * stride + carry..][..frames];
                    let samples = part.iter().skip(c).step_by(ch);
                    for ((dst, x), m) in run.iter_mut().zip(samples).zip(frame_max.iter_mut()) {
                        *dst = sanitize(*x);
                        let a = dst.abs();
                        if a > *m {
                            *m = a;
                        }
                    }
                }
            }
        }
    }

    /// The output of a chunk: each frame L before the interpolator's centre, times its gain.
    /// Rounding in the box sum must not let a sample through above the ceiling, hence the clamp.
    fn give_output(&self, part: &mut [f32], frames: usize) {
        let stride = self.stride;
        let from = self.carry - (self.lookahead + TAPS / 2);
        let ceiling = self.ceiling;
        let gains = &self.gains[..frames];
        let out = |x: f32, g: f32| (x * g).clamp(-ceiling, ceiling);
        match self.channels {
            1 => {
                let delayed = &self.input[from..][..frames];
                for ((y, x), g) in part.iter_mut().zip(delayed).zip(gains) {
                    *y = out(*x, *g);
                }
            }
            2 => {
                let left = &self.input[from..][..frames];
                let right = &self.input[stride + from..][..frames];
                let frames_out = part.chunks_exact_mut(2);
                for (((frame, l), r), g) in frames_out.zip(left).zip(right).zip(gains) {
                    frame[0] = out(*l, *g);
                    frame[1] = out(*r, *g);
                }
            }
            ch => {
                for c in 0..ch {
                    let delayed = &self.input[c * stride + from..][..frames];
                    let ys = part.iter_mut().skip(c).step_by(ch);
                    for ((y, x), g) in ys.zip(delayed).zip(gains) {
                        *y = out(*x, *g);
                    }
                }
            }
        }
    }
}

/// Fixed-point unit of the box sum: gains are summed as integers of 2⁻⁴⁰, so the sum is exact,
/// whatever the order, and comes back to exactly L·ONE when every held gain is 1 again.
const ONE: i64 = 1 << 40;

/// Steps 3 to 5 of the module docs, and their state, a chunk at a time: the sliding minimum of
/// the required gains (van Herk / Gil-Werman: a prefix and a suffix minimum per block of L + 1,
/// three comparisons a frame whatever L), their box average (an exact fixed-point running sum)
/// and the release.
#[derive(Debug, Default)]
struct Ballistics {
    /// L.
    lookahead: usize,
    release_coef: f32,
    /// The L required gains before the chunk, then the chunk's.
    required: Vec<f32>,
    /// The sliding minimum's prefix and suffix minima over `required`.
    prefix: Vec<f32>,
    suffix: Vec<f32>,
    /// The L held gains before the chunk (fixed point, see [`ONE`]), then the chunk's.
    held: Vec<i64>,
    /// The sum of the last L held gains, fixed point.
    sum: i64,
    gain: f32,
}

impl Ballistics {
    /// For a look-ahead of `lookahead` frames and chunks of at most `chunk` frames.
    fn new(lookahead: usize, release_coef: f32, chunk: usize) -> Ballistics {
        let lookahead = lookahead.max(1);
        let len = lookahead + chunk;
        let mut b = Ballistics {
            lookahead,
            release_coef,
            required: vec![1.0; len],
            prefix: vec![1.0; len],
            suffix: vec![1.0; len],
            held: vec![ONE; len],
            ..Ballistics::default()
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        self.required.fill(1.0);
        self.held.fill(ONE);
        self.sum = self.lookahead as i64 * ONE;
        self.gain = 1.0;
    }

    /// Turns the gain each frame of `gains` needs into the gain it gets.
    fn run(&mut self, gains: &mut [f32]) {
        let (l, n) = (self.lookahead, gains.len());
        let len = l + n;
        if n == 0 || self.required.len() < len {
            return;
        }
        self.required[l..len].copy_from_slice(gains);
        let rest = self.gain == 1.0 && self.sum == l as i64 * ONE;
        if rest && self.required[..len].iter().all(|&r| r == 1.0) {
            // At rest and nothing to limit: every gain stays 1 and so does every state.
            self.required.copy_within(n..len, 0);
            return;
        }
        // 3. held[j] = the least required gain of frames j − L ..= j: windows of w = L + 1 over
        //    `required`, each the minimum of a block's suffix and the next block's prefix.
        let w = l + 1;
        let required = &self.required[..len];
        for (block_r, block_p) in required.chunks(w).zip(self.prefix.chunks_mut(w)) {
            let mut m = f32::INFINITY;
            for (r, p) in block_r.iter().zip(block_p) {
                m = m.min(*r);
                *p = m;
            }
        }
        for (block_r, block_s) in required.chunks(w).zip(self.suffix.chunks_mut(w)) {
            let mut m = f32::INFINITY;
            for (r, s) in block_r.iter().zip(block_s).rev() {
                m = m.min(*r);
                *s = m;
            }
        }
        // 4. and 5., frame by frame.
        let scale = 1.0 / (l as f64 * ONE as f64);
        let release = self.release_coef;
        let (mut sum, mut gain) = (self.sum, self.gain);
        let windows = self.suffix[..n].iter().zip(&self.prefix[l..len]);
        for (j, ((s, p), g)) in windows.zip(gains.iter_mut()).enumerate() {
            let held = s.min(*p);
            // Rounded down: the mean can only come out a little low, never let a peak through.
            let fixed = (f64::from(held) * ONE as f64) as i64;
            sum += fixed - self.held[j];
            self.held[l + j] = fixed;
            let mean = (sum as f64 * scale) as f32;
            gain = if mean < gain {
                mean
            } else {
                gain + (mean - gain) * release
            };
            gain = gain.min(mean);
            if mean == 1.0 && gain > 1.0 - UNITY_SNAP {
                // The release's last float steps toward 1 round to nothing: finish it.
                gain = 1.0;
            }
            *g = gain;
        }
        (self.sum, self.gain) = (sum, gain);
        self.required.copy_within(n..len, 0);
        self.held.copy_within(n..len, 0);
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

/// The largest of `TAPS` non-negative values, in eight lanes so that it vectorizes.
#[inline]
fn lanes_max(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    for eight in values.chunks_exact(8) {
        for (lane, &x) in lanes.iter_mut().zip(eight) {
            if x > *lane {
                *lane = x;
            }
        }
    }
    lanes.iter().fold(0f32, |m, &x| if x > m { x } else { m })
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
        for ((phase, near), far) in self.taps.iter().zip(&mut self.near).zip(&mut self.far) {
            *near = [phase[TAPS / 2 - 1].abs(), phase[TAPS / 2].abs()];
            *far = (phase.iter().enumerate())
                .filter(|&(k, _)| k != TAPS / 2 - 1 && k != TAPS / 2)
                .map(|(_, t)| t.abs())
                .sum();
        }
        self.lookahead = spec.frames_in_ms(self.params.lookahead_ms);
        let release_frames = spec.frames_in_ms(self.params.release_ms) as f64;
        self.carry = (TAPS - 1).max(self.lookahead + TAPS / 2);
        // At least as long as what is carried, so moving the carry costs at most a copy per
        // sample.
        self.chunk = CHUNK.max(self.carry);
        self.ballistics = Ballistics::new(
            self.lookahead,
            (1.0 - (-1.0 / release_frames).exp()) as f32,
            self.chunk,
        );
        self.stride = self.carry + self.chunk;
        self.input = vec![0.0; self.stride * ch];
        self.gains = vec![1.0; self.chunk];
        self.frame_max = vec![0.0; TAPS - 1 + self.chunk];
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.input.fill(0.0);
        self.frame_max.fill(0.0);
        self.ballistics.reset();
        self.hot_left = 0;
    }

    fn process(&mut self, block: &mut [f32]) {
        let ch = self.channels;
        if ch == 0 || self.ballistics.required.is_empty() || self.chunk == 0 {
            return;
        }
        let whole = block.len() - block.len() % ch;
        for part in block[..whole].chunks_mut(self.chunk * ch) {
            self.run(part);
        }
    }

    fn latency_frames(&self) -> usize {
        self.lookahead + TAPS / 2
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

    /// The algorithm of the module docs one frame at a time, as plainly as it can be written:
    /// the chunked implementation must give exactly its output.
    struct Reference {
        l: TruePeakLimiter,
        history: Vec<Vec<f32>>,
        delay: Vec<Vec<f32>>,
        required: Vec<f32>,
        /// The last L held gains, in the fixed point of [`ONE`].
        held: Vec<i64>,
        gain: f32,
    }

    impl Reference {
        fn new(params: crate::Limiter, spec: AudioSpec) -> Reference {
            let mut l = TruePeakLimiter::new(params);
            l.prepare(spec).unwrap();
            let lookahead = l.lookahead;
            Reference {
                history: vec![vec![0.0; TAPS]; spec.channels()],
                delay: vec![vec![0.0; lookahead]; spec.channels()],
                required: Vec::new(),
                held: vec![ONE; lookahead],
                gain: 1.0,
                l,
            }
        }

        fn frame(&mut self, frame: &mut [f32]) {
            let big_l = self.l.lookahead;
            let mut peak = 0f32;
            let mut hot = false;
            for (c, x) in frame.iter().enumerate() {
                let h = &mut self.history[c];
                h.remove(0);
                h.push(sanitize(*x));
                hot |= h.iter().any(|s| s.abs() >= self.l.hot);
                peak = peak.max(h[TAPS / 2 - 1].abs());
                for phase in &self.l.taps {
                    peak = peak.max(dot(phase, h).abs());
                }
            }
            let required = if hot && peak > self.l.ceiling {
                self.l.ceiling / peak
            } else {
                1.0
            };
            self.required.push(required);
            let window = &self.required[self.required.len().saturating_sub(big_l + 1)..];
            let held = window.iter().fold(1f32, |m, &r| m.min(r));
            self.held.remove(0);
            self.held.push((f64::from(held) * ONE as f64) as i64);
            let scale = 1.0 / (big_l as f64 * ONE as f64);
            let mean = (self.held.iter().sum::<i64>() as f64 * scale) as f32;
            self.gain = if mean < self.gain {
                mean
            } else {
                self.gain + (mean - self.gain) * self.l.ballistics.release_coef
            };
            self.gain = self.gain.min(mean);
            if mean == 1.0 && self.gain > 1.0 - UNITY_SNAP {
                self.gain = 1.0;
            }
            for (c, x) in frame.iter_mut().enumerate() {
                let centre = self.history[c][TAPS / 2 - 1];
                let out = self.delay[c].remove(0) * self.gain;
                self.delay[c].push(centre);
                *x = out.clamp(-self.l.ceiling, self.l.ceiling);
            }
        }
    }

    /// xorshift64*, uniform in [-1, 1).
    fn noise(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed | 1;
        move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let x = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }
    }

    #[test]
    fn the_peak_bound_holds_even_for_the_worst_windows() {
        let spec = AudioSpec::new(48_000, 1).unwrap();
        let mut l = limiter(-1.0, 5.0, spec);
        let mut next = noise(9);
        let mut windows: Vec<[f32; TAPS]> = Vec::new();
        // The worst window for each phase: every sample at full size with its tap's sign, so
        // the interpolated value meets the bound.
        for phase in l.taps {
            windows.push(phase.map(|t| 0.8f32.copysign(t)));
        }
        windows.extend((0..2_000).map(|_| [(); TAPS].map(|()| next())));
        for (i, w) in windows.into_iter().enumerate() {
            l.input[..TAPS].copy_from_slice(&w);
            let peak = l.peak(0);
            let magnitude = |k: usize| w[k].abs();
            let m = (0..TAPS).map(magnitude).fold(0f32, f32::max);
            let bound = l.peak_bound(magnitude(TAPS / 2 - 1), magnitude(TAPS / 2), m);
            assert!(peak <= bound, "{peak} > {bound} for {w:?}");
            if i < PHASES - 1 {
                // Where it is met, it is met closely: the bound is as tight as it can be.
                assert!(bound <= peak * 1.001, "{bound} well over {peak} for {w:?}");
            }
        }
    }

    #[test]
    fn chunks_give_exactly_what_the_plain_algorithm_gives() {
        // Bursts over the ceiling, stretches under it that let the limiter come to rest, and
        // blocks of every size, some longer than a chunk.
        for (seed, channels, rate, lookahead_ms) in [
            (1, 2, 48_000, 5.0),
            (2, 1, 44_100, 1.0),
            (3, 3, 48_000, 30.0),
            (4, 2, 8_000, 0.5),
        ] {
            let spec = AudioSpec::new(rate, channels).unwrap();
            let params = crate::Limiter {
                threshold_db: -1.0,
                lookahead_ms,
                release_ms: 20.0,
            };
            let mut fast = TruePeakLimiter::new(params);
            fast.prepare(spec).unwrap();
            let mut slow = Reference::new(params, spec);
            let mut next = noise(seed);
            let frames = 3 * rate as usize;
            let input: Vec<f32> = (0..frames * channels)
                .map(|i| {
                    let t = (i / channels) as f32 / rate as f32;
                    // 0.6 s each: over the ceiling, near it (hot, mostly under it), quiet.
                    let level = [1.6, 0.55, 0.2][(t / 0.6) as usize % 3];
                    level * next()
                })
                .collect();
            let mut expected = input.clone();
            for frame in expected.chunks_exact_mut(channels) {
                slow.frame(frame);
            }
            let mut got = input.clone();
            let mut sizes = noise(seed + 100);
            let mut at = 0;
            while at < got.len() {
                let frames = ((sizes() + 1.0) * 1500.0) as usize;
                let end = (at + frames * channels).min(got.len());
                fast.process(&mut got[at..end]);
                at = end;
            }
            let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
            assert_eq!(
                first_difference, None,
                "{channels} ch at {rate} Hz, {lookahead_ms} ms: first differing sample"
            );
            assert!(got.iter().any(|x| x.abs() > 0.5), "something got through");
        }
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
