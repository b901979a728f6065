//! Test signals of EBU Tech 3341 and 3342, synthesized here so that no EBU WAV files are
//! downloaded or committed.
//!
//! Levels are in dBFS of per-channel peak amplitude (`A = 10^(dB/20)`), as in the EBU documents.
//! Durations are in seconds and become exact frame counts: [`frames`] refuses a duration that is
//! not a whole number of frames, so that a segment cannot silently come out a sample short (or a
//! factor of the sample rate wrong, as one public suite had it).
#![allow(dead_code, unreachable_pub)]

use std::f64::consts::TAU;

/// The sample rate of every case unless it says otherwise.
pub const RATE: u32 = 48_000;

/// The tone of Tech 3341 cases 1–14 and Tech 3342.
pub const TONE_HZ: f64 = 1_000.0;

/// Linear peak amplitude of a level in dBFS.
pub fn amplitude(dbfs: f64) -> f64 {
    10f64.powf(dbfs / 20.0)
}

/// Frames in `seconds` at `rate`. Panics unless that is a whole number of frames.
pub fn frames(rate: u32, seconds: f64) -> usize {
    let exact = seconds * f64::from(rate);
    let whole = exact.round();
    assert!(
        (exact - whole).abs() < 1e-6 && whole >= 0.0,
        "{seconds} s at {rate} Hz is not a whole number of frames ({exact})"
    );
    whole as usize
}

/// A phase-continuous sine oscillator: the phase carries over from one call to the next, and
/// across frequency changes.
#[derive(Debug, Clone)]
pub struct Sine {
    rate: f64,
    freq: f64,
    /// Phase in cycles, kept in `[0, 1)`.
    phase: f64,
}

impl Sine {
    /// A sine of `freq` Hz at `rate` Hz, starting at `start_phase_deg` degrees
    /// (`sin(2π·f·t + φ)`).
    pub fn new(rate: u32, freq: f64, start_phase_deg: f64) -> Sine {
        Sine {
            rate: f64::from(rate),
            freq,
            phase: (start_phase_deg / 360.0).rem_euclid(1.0),
        }
    }

    /// Changes the frequency from the next sample on, keeping the phase.
    pub fn set_frequency(&mut self, freq: f64) {
        self.freq = freq;
    }

    /// The current phase in cycles, `[0, 1)`.
    pub fn phase(&self) -> f64 {
        self.phase
    }

    /// The next sample at unit amplitude.
    pub fn next_sample(&mut self) -> f64 {
        let x = (TAU * self.phase).sin();
        self.phase += self.freq / self.rate;
        self.phase -= self.phase.floor();
        x
    }

    /// `frames` interleaved frames, channel `c` at peak level `levels_dbfs[c]` (all channels
    /// in phase).
    pub fn render(&mut self, frames: usize, levels_dbfs: &[f64]) -> Vec<f32> {
        let gains: Vec<f64> = levels_dbfs.iter().map(|&db| amplitude(db)).collect();
        let mut out = Vec::with_capacity(frames * gains.len());
        for _ in 0..frames {
            let x = self.next_sample();
            out.extend(gains.iter().map(|g| (g * x) as f32));
        }
        out
    }
}

/// A signal built from consecutive segments of a 1 kHz-style tone and silence, interleaved.
/// The tone stays phase-continuous from one tone segment to the next (silence does not advance
/// it); every segment is an exact number of frames.
#[derive(Debug, Clone)]
pub struct Program {
    rate: u32,
    channels: usize,
    sine: Sine,
    samples: Vec<f32>,
}

impl Program {
    /// An empty signal of `channels` channels at `rate` Hz whose tone is `freq` Hz, phase 0.
    pub fn new(rate: u32, channels: usize, freq: f64) -> Program {
        Program {
            rate,
            channels,
            sine: Sine::new(rate, freq, 0.0),
            samples: Vec::new(),
        }
    }

    /// A 1 kHz stereo signal at 48 kHz: the usual Tech 3341 format.
    pub fn stereo() -> Program {
        Program::new(RATE, 2, TONE_HZ)
    }

    /// Appends `seconds` of the tone at `dbfs` on every channel.
    pub fn tone(self, dbfs: f64, seconds: f64) -> Program {
        let levels = vec![dbfs; self.channels];
        self.tone_per_channel(&levels, seconds)
    }

    /// Appends `seconds` of the tone, channel `c` at `levels_dbfs[c]`.
    pub fn tone_per_channel(mut self, levels_dbfs: &[f64], seconds: f64) -> Program {
        assert_eq!(levels_dbfs.len(), self.channels, "one level per channel");
        let n = frames(self.rate, seconds);
        let block = self.sine.render(n, levels_dbfs);
        self.samples.extend_from_slice(&block);
        self
    }

    /// Appends `seconds` of digital silence.
    pub fn silence(mut self, seconds: f64) -> Program {
        let n = frames(self.rate, seconds) * self.channels;
        self.samples.resize(self.samples.len() + n, 0.0);
        self
    }

    /// Appends another signal of the same format.
    pub fn then(mut self, other: &[f32]) -> Program {
        assert_eq!(other.len() % self.channels, 0, "whole frames only");
        self.samples.extend_from_slice(other);
        self
    }

    /// Frames so far.
    pub fn len_frames(&self) -> usize {
        self.samples.len() / self.channels
    }

    /// The interleaved samples.
    pub fn samples(self) -> Vec<f32> {
        self.samples
    }
}

/// Concatenates interleaved segments.
pub fn concat(segments: &[Vec<f32>]) -> Vec<f32> {
    segments.concat()
}

/// Linear fade in over the first `fade_frames` frames and out over the last ones, in place
/// (the 10 ms fades of Tech 3341 cases 15–19).
pub fn fade_in_out(samples: &mut [f32], channels: usize, fade_frames: usize) {
    let total = samples.len() / channels;
    assert!(2 * fade_frames <= total, "fades longer than the signal");
    for (i, frame) in samples.chunks_exact_mut(channels).enumerate() {
        let from_edge = i.min(total - 1 - i);
        if from_edge < fade_frames {
            let g = from_edge as f32 / fade_frames as f32;
            frame.iter_mut().for_each(|x| *x *= g);
        }
    }
}

/// Tech 3341 cases 15–19: a sine of `freq` Hz (a fraction of the sample rate) at `peak` FFS
/// (linear) and start phase `phase_deg`, `seconds` long, with 10 ms fades, on `channels`
/// channels at `rate`.
pub fn faded_sine(
    rate: u32,
    channels: usize,
    freq: f64,
    peak: f64,
    phase_deg: f64,
    seconds: f64,
) -> Vec<f32> {
    let mut sine = Sine::new(rate, freq, phase_deg);
    let level = 20.0 * peak.log10();
    let mut out = sine.render(frames(rate, seconds), &vec![level; channels]);
    fade_in_out(&mut out, channels, frames(rate, 0.010));
    out
}

/// A linear-phase low-pass FIR: a windowed sinc with cut-off `cutoff` (in cycles per sample,
/// `0 < cutoff < 0.5`) and `taps` taps (odd, so the delay is a whole `(taps − 1) / 2` samples),
/// Blackman window, normalized to unity gain at DC.
///
/// The Blackman window keeps the stop band below about −74 dB and the pass band flat to a few
/// thousandths of a dB; its transition band is about `5.5 / taps` cycles per sample wide.
pub fn windowed_sinc_lowpass(cutoff: f64, taps: usize) -> Vec<f64> {
    assert!(taps % 2 == 1, "an odd number of taps");
    assert!(
        cutoff > 0.0 && cutoff < 0.5,
        "cut-off in (0, 0.5) cycles/sample"
    );
    let mid = (taps / 2) as f64;
    let last = (taps - 1) as f64;
    let mut h: Vec<f64> = (0..taps)
        .map(|n| {
            let n = n as f64;
            let t = n - mid;
            let sinc = if t == 0.0 {
                2.0 * cutoff
            } else {
                (TAU * cutoff * t).sin() / (std::f64::consts::PI * t)
            };
            let w = 0.42 - 0.5 * (TAU * n / last).cos() + 0.08 * (2.0 * TAU * n / last).cos();
            sinc * w
        })
        .collect();
    let dc: f64 = h.iter().sum();
    h.iter_mut().for_each(|x| *x /= dc);
    h
}

/// Filters `x` with the linear-phase FIR `h` (delay compensated, zeros outside `x`) and keeps
/// every `factor`-th output starting at `offset`.
pub fn lowpass_decimate(x: &[f64], h: &[f64], factor: usize, offset: usize) -> Vec<f64> {
    let delay = h.len() / 2;
    (offset..x.len())
        .step_by(factor)
        .map(|n| {
            // y[n] = Σ h[k]·x[n + delay − k], over the k that index inside x.
            let centre = n + delay;
            let k_lo = centre.saturating_sub(x.len() - 1);
            let k_hi = centre.min(h.len() - 1);
            (k_lo..=k_hi).map(|k| h[k] * x[centre - k]).sum()
        })
        .collect()
}

/// Tech 3341 cases 20–23 at output rate `rate`: a sine at fs/6 and 0.50 FFS containing one
/// period of a sine at fs/4 and 1.00 FFS, phase-continuous, made at 4·fs, low-passed and
/// decimated by 4 keeping the samples at `offset` (0–3) of every 4. Mono; copy it to more
/// channels with [`to_channels`].
///
/// The fs/4 period starts at a zero crossing of the fs/6 sine (and ends at one), so the
/// waveform is continuous in value and phase; only its amplitude steps. It sits in the middle
/// of `seconds` of signal.
///
/// The low-pass cut-off is 0.45·fs (21.6 kHz at 48 kHz): 511 taps at 4·fs give a transition
/// band of about ±0.02·fs around it, so fs/4 and fs/6 pass unchanged and the stop band starts
/// below the output Nyquist frequency (nothing aliases). The burst is only 1/12 ms long and
/// spreads well past fs/2, so band-limiting it at all lowers its peak: to −0.15 dBFS here
/// (−0.13 dBFS even with the cut-off right at fs/2, −0.23 dBFS at 0.42·fs). That is the
/// signal's own true peak, inside the −0.4 dB of the case's tolerance.
pub fn inter_sample_burst(rate: u32, offset: usize, seconds: f64) -> Vec<f32> {
    assert!(offset < 4, "offsets 0–3");
    let fs = f64::from(rate);
    let hi_rate = 4 * rate;
    let total = frames(hi_rate, seconds);
    // At 4·fs, fs/6 has a period of 24 samples and fs/4 one of 16.
    let slow_period = 24;
    let burst_len = 16;
    let burst_start = (total / 2) / slow_period * slow_period;
    let mut sine = Sine::new(hi_rate, fs / 6.0, 0.0);
    let x: Vec<f64> = (0..total)
        .map(|n| {
            if n == burst_start {
                sine.set_frequency(fs / 4.0);
            } else if n == burst_start + burst_len {
                sine.set_frequency(fs / 6.0);
            }
            let in_burst = (burst_start..burst_start + burst_len).contains(&n);
            let peak = if in_burst { 1.0 } else { 0.5 };
            peak * sine.next_sample()
        })
        .collect();
    let h = windowed_sinc_lowpass(0.45 / 4.0, 511);
    lowpass_decimate(&x, &h, 4, offset)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// Copies a mono signal to `channels` identical channels, interleaved.
pub fn to_channels(mono: &[f32], channels: usize) -> Vec<f32> {
    mono.iter()
        .flat_map(|&x| std::iter::repeat_n(x, channels))
        .collect()
}
