//! Momentary loudness for a control loop: the K-weighting of ITU-R BS.1770 and the 400 ms
//! window, and nothing else.
//!
//! [`crate::Meter`] measures with the `ebur128` crate, which is the reference here. The live
//! normalizer, though, needs only the momentary loudness every 100 ms, on every block of a
//! station's audio, and the crate's K-weighting filter runs one channel at a time through a
//! single fourth-order recursion, whose dependency chain costs more than the rest of the DSP
//! chain together. This runs the same filter as two cascaded biquads, all channels in one
//! pass, so the channels' recursions overlap in the processor. Its readings are checked against
//! `ebur128`'s in the tests below (within 0.01 LU).
//!
//! The filter coefficients for any sample rate follow the analog prototypes of the two
//! BS.1770 stages (a high shelf of about +4 dB above 1.7 kHz, the "pre-filter", and the RLB
//! high-pass at 38 Hz) with the constants that libebur128 and the `ebur128` crate publish;
//! channel weights follow the crate's default layouts (L, R, C at 1; LFE not counted;
//! surrounds at 1.41).

use crate::MAX_CHANNELS;

/// Stage 1, the high shelf: centre frequency (Hz), gain (dB) and Q.
const SHELF_HZ: f64 = 1681.974450955533;
const SHELF_DB: f64 = 3.999843853973347;
const SHELF_Q: f64 = 0.7071752369554196;
/// Exponent giving the shelf's band-edge gain from its high-frequency gain.
const SHELF_VB_EXP: f64 = 0.4996667741545416;
/// Stage 2, the RLB high-pass: corner frequency (Hz) and Q.
const HIGHPASS_HZ: f64 = 38.13547087602444;
const HIGHPASS_Q: f64 = 0.5003270373238773;
/// Hops of 100 ms in the momentary window.
const HOPS: usize = 4;
/// Filter states smaller than this are flushed to zero after each call, far from the
/// denormals that silence would otherwise decay into.
const FLUSH: f64 = 1e-30;

/// A biquad's coefficients, normalized so `a0 = 1`.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

/// The K-weighting filter's two stages at `rate` Hz.
fn k_weighting(rate: f64) -> [Biquad; 2] {
    let k = (std::f64::consts::PI * SHELF_HZ / rate).tan();
    let vh = 10f64.powf(SHELF_DB / 20.0);
    let vb = vh.powf(SHELF_VB_EXP);
    let a0 = 1.0 + k / SHELF_Q + k * k;
    let shelf = Biquad {
        b: [
            (vh + vb * k / SHELF_Q + k * k) / a0,
            2.0 * (k * k - vh) / a0,
            (vh - vb * k / SHELF_Q + k * k) / a0,
        ],
        a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / SHELF_Q + k * k) / a0],
    };
    let k = (std::f64::consts::PI * HIGHPASS_HZ / rate).tan();
    let a0 = 1.0 + k / HIGHPASS_Q + k * k;
    let highpass = Biquad {
        b: [1.0, -2.0, 1.0],
        a: [
            2.0 * (k * k - 1.0) / a0,
            (1.0 - k / HIGHPASS_Q + k * k) / a0,
        ],
    };
    [shelf, highpass]
}

/// The weight of channel `c` of `channels` in the loudness sum (the `ebur128` crate's default
/// layouts: 4 = L R Ls Rs; 5 = L R C Ls Rs; otherwise L R C LFE Ls Rs, and further channels
/// are not counted).
fn channel_weight(c: usize, channels: usize) -> f64 {
    let layout: &[f64] = match channels {
        4 => &[1.0, 1.0, 1.41, 1.41],
        5 => &[1.0, 1.0, 1.0, 1.41, 1.41],
        _ => &[1.0, 1.0, 1.0, 0.0, 1.41, 1.41],
    };
    layout.get(c).copied().unwrap_or(0.0)
}

/// Momentary loudness (the last 400 ms), updated once per 100 ms hop by the caller.
#[derive(Debug, Clone)]
pub(crate) struct Momentary {
    channels: usize,
    stages: [Biquad; 2],
    /// Per channel, the two transposed direct-form II states of each stage.
    state: [[[f64; 2]; 2]; MAX_CHANNELS],
    weight: [f64; MAX_CHANNELS],
    /// Weighted sum of squares of the current hop.
    hop_sum: f64,
    /// Weighted sums of squares of the last hops (ring), and the next slot.
    hops: [f64; HOPS],
    next: usize,
    /// Frames in the momentary window (four hops).
    window_frames: f64,
}

impl Momentary {
    /// A meter for `channels` channels at `rate` Hz with hops of `hop_frames` frames.
    pub(crate) fn new(channels: usize, rate: u32, hop_frames: usize) -> Momentary {
        let channels = channels.min(MAX_CHANNELS);
        let mut weight = [0.0; MAX_CHANNELS];
        for (c, w) in weight.iter_mut().enumerate().take(channels) {
            *w = channel_weight(c, channels);
        }
        Momentary {
            channels,
            stages: k_weighting(f64::from(rate)),
            state: [[[0.0; 2]; 2]; MAX_CHANNELS],
            weight,
            hop_sum: 0.0,
            hops: [0.0; HOPS],
            next: 0,
            window_frames: (HOPS * hop_frames.max(1)) as f64,
        }
    }

    /// Forgets all audio: filter states and window.
    pub(crate) fn reset(&mut self) {
        self.state = [[[0.0; 2]; 2]; MAX_CHANNELS];
        self.hop_sum = 0.0;
        self.hops = [0.0; HOPS];
        self.next = 0;
    }

    /// Adds interleaved frames (already sanitized) to the current hop.
    pub(crate) fn add(&mut self, frames: &[f32]) {
        let ch = self.channels;
        if ch == 0 {
            return;
        }
        let [s1, s2] = self.stages;
        let mut squares = [0.0f64; MAX_CHANNELS];
        for frame in frames.chunks_exact(ch) {
            // Channels in the inner loop: their recursions are independent and overlap.
            for ((x, st), sq) in frame.iter().zip(&mut self.state).zip(&mut squares) {
                let x = f64::from(*x);
                let [p, h] = st;
                // The terms that do not wait for this sample's output are added first, so
                // that each recursion's critical path is one add, one multiply, one subtract.
                let y = s1.b[0] * x + p[0];
                p[0] = (s1.b[1] * x + p[1]) - s1.a[0] * y;
                p[1] = s1.b[2] * x - s1.a[1] * y;
                let z = y + h[0];
                h[0] = (h[1] - 2.0 * y) - s2.a[0] * z;
                h[1] = y - s2.a[1] * z;
                *sq += z * z;
            }
        }
        for ((sq, w), st) in squares.iter().zip(&self.weight).zip(&mut self.state) {
            self.hop_sum += sq * w;
            for v in st.as_flattened_mut() {
                if v.abs() < FLUSH {
                    *v = 0.0;
                }
            }
        }
    }

    /// Closes the current hop and returns the momentary loudness of the last four, LUFS
    /// (`-inf` for silence). Before four hops have passed, the missing ones count as silence,
    /// as in `ebur128`.
    pub(crate) fn end_hop(&mut self) -> f64 {
        self.hops[self.next] = self.hop_sum;
        self.next = (self.next + 1) % HOPS;
        self.hop_sum = 0.0;
        let energy = self.hops.iter().sum::<f64>() / self.window_frames;
        if energy > 0.0 {
            -0.691 + 10.0 * energy.log10()
        } else {
            f64::NEG_INFINITY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebur128::{EbuR128, Mode};

    /// Deterministic white-ish noise in [-1, 1).
    fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
            })
            .collect()
    }

    /// Every 100 ms, our momentary reading and `ebur128`'s on the same audio.
    fn compare(audio: &[f32], channels: usize, rate: u32) -> f64 {
        let hop = (rate / 10) as usize;
        let mut ours = Momentary::new(channels, rate, hop);
        let mut reference = EbuR128::new(channels as u32, rate, Mode::M).unwrap();
        let mut worst = 0f64;
        for block in audio.chunks_exact(hop * channels) {
            ours.add(block);
            reference.add_frames_f32(block).unwrap();
            let (a, b) = (ours.end_hop(), reference.loudness_momentary().unwrap());
            if b.is_finite() && b > -70.0 {
                worst = worst.max((a - b).abs());
            } else {
                assert!(a < -70.0, "ours {a}, reference {b}");
            }
        }
        worst
    }

    #[test]
    fn matches_ebur128_momentary_loudness() {
        for rate in [8_000, 44_100, 48_000, 96_000, 192_000] {
            for channels in [1, 2, 5, 6, 8] {
                let seconds = 2;
                let n = rate as usize * seconds * channels;
                // Noise at -20 dBFS, a sweep of sines, and a quiet passage in between.
                let mut audio: Vec<f32> = noise(u64::from(rate) + channels as u64, n)
                    .iter()
                    .map(|x| x * 0.1)
                    .collect();
                for (i, x) in audio.iter_mut().enumerate() {
                    let t = (i / channels) as f64 / f64::from(rate);
                    let f = 40.0 + 3000.0 * t;
                    let ch = i % channels;
                    *x += (0.3 * (2.0 * std::f64::consts::PI * f * t + ch as f64).sin()) as f32;
                    if (0.8..1.1).contains(&t) {
                        *x *= 1e-3;
                    }
                }
                let worst = compare(&audio, channels, rate);
                assert!(worst < 0.01, "{rate} Hz, {channels} ch: off by {worst} LU");
            }
        }
    }

    #[test]
    fn silence_reads_minus_infinity_and_state_stays_normal() {
        let mut m = Momentary::new(2, 48_000, 4800);
        m.add(&noise(1, 9600));
        m.end_hop();
        for _ in 0..100 {
            m.add(&[0.0; 9600]);
            m.end_hop();
        }
        assert_eq!(m.end_hop(), f64::NEG_INFINITY);
        assert!(
            m.state
                .as_flattened()
                .as_flattened()
                .iter()
                .all(|v| *v == 0.0 || v.is_normal())
        );
    }
}
