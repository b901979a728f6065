//! Automatic gain control: rides the level of a source toward a target, slowly, within a
//! bounded range, and leaves quiet passages alone.
//!
//! 1. **Level.** The RMS level over the last 300 ms, in dBFS (a full-scale sine reads −3 dB),
//!    averaged over all channels (one gain for all, so the image does not move). The squares
//!    are summed per 10 ms chunk, and the window is a ring of the last 30 chunk sums, added up
//!    afresh at the end of each chunk: no running sum, so no rounding drift however long the
//!    station runs. The level, and so the gain aimed for, updates every 10 ms.
//! 2. **Gain aimed for.** `wanted = target_level_db − level`, within
//!    `[−max_gain_db, +max_gain_db]`. The cut is bounded as the boost is: an AGC rides levels
//!    inside a window whose width the operator sets with one knob. Sources off by more are the
//!    loudness normalizer's job (earlier in the chain, with its own range), and peaks are the
//!    limiter's.
//! 3. **Ballistics.** The gain moves in dB through a one-pole filter toward `wanted`: with the
//!    attack time while it falls (the source got louder), the release time while it rises.
//! 4. **Quiet hold.** While the window's level, or the level of the latest 10 ms chunk, is
//!    under −60 dBFS the gain is frozen where it is: a quiet intro, a pause or dead air must
//!    not be pumped up to full gain and blasted when the music comes back. The latest chunk
//!    matters because the 300 ms window takes that long to empty: without it the gain would
//!    creep up while a stop drains out of the window.
//! 5. **De-click.** What is applied is the gain above, or 0 dB while `enabled` is false,
//!    passed through a last one-pole smoother with a 10 ms time constant. Steps 2.–5. run once
//!    per control period (a third of a millisecond, see [`crate::processor::CONTROL_HZ`]), and
//!    the linear gain moves along a straight line from one control point to the next. Any change of
//!    parameters, the 10 ms steps of the level with zero attack or release, and switching
//!    on or off are therefore glides, never steps. Switching off fades the gain to exactly
//!    0 dB (the smoother snaps to its target within 10⁻⁶ dB) and from then on audio passes
//!    bit-exact; switching on starts from unity and moves with the attack and release times.
//!
//! **Real-time safety.** The ring is a fixed array; nothing is allocated, even in `prepare`.
//! Each sample is sanitized (NaN, ±∞ and denormals become 0) and clamped to ±10⁶ (+120 dBFS)
//! so the sums stay finite; squares are summed in `f64`, where those of the smallest normal
//! `f32` samples are still normal. The gain states snap to their targets within 10⁻⁶ dB, so
//! they never decay into denormals. Parameters are clamped to the ranges
//! [`crate::DspGraph::validate`] accepts (a non-finite one takes its default).

use crate::processor::{GainRamp, Processor, control_period, glide, one_pole, sanitize, within};
use crate::{AudioSpec, DspError};

/// Length of a chunk of the level window, ms.
const CHUNK_MS: f64 = 10.0;
/// Chunks in the level window (300 ms).
const WINDOW_CHUNKS: usize = 30;
/// Below this level the gain is held, dBFS RMS.
const QUIET_DB: f64 = -60.0;
/// Time constant of the last smoother, ms.
const DECLICK_MS: f64 = 10.0;
/// Largest sample magnitude processed (+120 dBFS).
const MAX_SAMPLE: f32 = 1.0e6;
/// Lowest level reported, dBFS (digital silence).
const FLOOR_DB: f64 = -200.0;
/// Distance in dB under which a gain snaps to its target (keeps denormals out).
const SNAP_DB: f64 = 1.0e-6;

/// The AGC. Configure with [`crate::Agc`] parameters.
#[derive(Debug, Clone)]
pub struct AutoGain {
    /// Parameters in force (clamped).
    params: crate::Agc,
    channels: usize,
    /// Sample rate, Hz; 0 before `prepare`.
    rate: f64,
    /// Frames per control period (see [`crate::processor::CONTROL_HZ`]) and frames of the
    /// current one already processed.
    period: usize,
    phase: usize,
    /// Attack, release and de-click coefficients per control period.
    attack_coef: f64,
    release_coef: f64,
    declick_coef: f64,
    /// Linear gain, ramping to the AGC's gain by the end of each control period.
    ramp: GainRamp,
    /// Frames per chunk, frames into the current chunk and its sum of squares.
    chunk_frames: usize,
    chunk_pos: usize,
    chunk_sum: f64,
    /// Sums of squares of the last chunks (ring) and how many have been filled since a reset.
    window: [f64; WINDOW_CHUNKS],
    window_pos: usize,
    window_filled: usize,
    level_db: f64,
    /// Whether the input is too quiet to follow (the gain holds).
    holding: bool,
    /// The AGC's gain, and the gain applied after the de-click smoother, dB.
    agc_db: f64,
    applied_db: f64,
}

impl AutoGain {
    /// An AGC with these parameters; call [`Processor::prepare`] before use.
    pub fn new(params: crate::Agc) -> AutoGain {
        AutoGain {
            params: clamped(params),
            channels: 0,
            rate: 0.0,
            period: 1,
            phase: 0,
            attack_coef: 1.0,
            release_coef: 1.0,
            declick_coef: 1.0,
            ramp: GainRamp::at(1.0),
            chunk_frames: 1,
            chunk_pos: 0,
            chunk_sum: 0.0,
            window: [0.0; WINDOW_CHUNKS],
            window_pos: 0,
            window_filled: 0,
            level_db: FLOOR_DB,
            holding: true,
            agc_db: 0.0,
            applied_db: 0.0,
        }
    }

    /// Changes the parameters while running, without clicks: the gain glides to what the new
    /// ones ask for (see the module documentation). Out-of-range values are clamped to what
    /// [`crate::DspGraph::validate`] accepts. Never allocates.
    pub fn set_params(&mut self, params: crate::Agc) {
        self.params = clamped(params);
        if self.rate > 0.0 {
            let control_rate = self.rate / self.period as f64;
            self.attack_coef = one_pole(self.params.attack_ms, control_rate);
            self.release_coef = one_pole(self.params.release_ms, control_rate);
        }
    }

    /// The parameters in force, after clamping.
    pub fn params(&self) -> crate::Agc {
        self.params
    }

    /// The gain currently applied, dB (0 = none), for metering.
    pub fn gain_db(&self) -> f64 {
        self.applied_db
    }

    /// The input's RMS level over the last 300 ms, dBFS (−200 for digital silence).
    pub fn level_db(&self) -> f64 {
        self.level_db
    }

    /// Whether the gain is held because the input is under −60 dBFS.
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// Closes the current chunk: into the window, and a new level.
    fn end_chunk(&mut self) {
        let per_chunk = (self.chunk_frames * self.channels) as f64;
        self.window[self.window_pos] = self.chunk_sum;
        self.window_pos = (self.window_pos + 1) % WINDOW_CHUNKS;
        self.window_filled = (self.window_filled + 1).min(WINDOW_CHUNKS);
        let mean = self.window.iter().sum::<f64>() / (self.window_filled as f64 * per_chunk);
        self.level_db = level_db(mean);
        self.holding = self.level_db < QUIET_DB || level_db(self.chunk_sum / per_chunk) < QUIET_DB;
        self.chunk_sum = 0.0;
        self.chunk_pos = 0;
    }

    /// The end of a control period: steps 2.–5., and the gain ramp for the next period.
    fn control(&mut self) {
        let crate::Agc {
            enabled,
            target_level_db,
            max_gain_db,
            ..
        } = self.params;
        if enabled {
            if !self.holding {
                let wanted = (target_level_db - self.level_db).clamp(-max_gain_db, max_gain_db);
                let coef = if wanted < self.agc_db {
                    self.attack_coef
                } else {
                    self.release_coef
                };
                glide(&mut self.agc_db, wanted, coef, SNAP_DB);
            }
            // A lowered max_gain_db also bounds a held gain (the de-click smooths it).
            self.agc_db = self.agc_db.clamp(-max_gain_db, max_gain_db);
        } else {
            self.agc_db = 0.0;
        }
        glide(
            &mut self.applied_db,
            self.agc_db,
            self.declick_coef,
            SNAP_DB,
        );
        // Exactly 0 dB is exactly 1: audio then passes bit-exact.
        let to = if self.applied_db == 0.0 {
            1.0
        } else {
            (self.applied_db * (std::f64::consts::LN_10 / 20.0)).exp() as f32
        };
        self.ramp.head_for(to, self.period);
    }
}

/// Mean square to dBFS, floored.
fn level_db(mean_square: f64) -> f64 {
    if mean_square > 0.0 {
        (10.0 * mean_square.log10()).max(FLOOR_DB)
    } else {
        FLOOR_DB
    }
}

/// The parameters clamped to the ranges the graph validation accepts.
fn clamped(p: crate::Agc) -> crate::Agc {
    let d = crate::Agc::default();
    crate::Agc {
        enabled: p.enabled,
        target_level_db: within(p.target_level_db, -60.0, 0.0, d.target_level_db),
        max_gain_db: within(p.max_gain_db, 0.0, 40.0, d.max_gain_db),
        attack_ms: within(p.attack_ms, 0.0, 10_000.0, d.attack_ms),
        release_ms: within(p.release_ms, 0.0, 60_000.0, d.release_ms),
    }
}

impl Processor for AutoGain {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        self.channels = spec.channels();
        self.rate = f64::from(spec.sample_rate());
        self.period = control_period(self.rate);
        let control_rate = self.rate / self.period as f64;
        self.attack_coef = one_pole(self.params.attack_ms, control_rate);
        self.release_coef = one_pole(self.params.release_ms, control_rate);
        self.declick_coef = one_pole(DECLICK_MS, control_rate);
        self.chunk_frames = spec.frames_in_ms(CHUNK_MS);
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.phase = 0;
        self.chunk_pos = 0;
        self.chunk_sum = 0.0;
        self.window = [0.0; WINDOW_CHUNKS];
        self.window_pos = 0;
        self.window_filled = 0;
        self.level_db = FLOOR_DB;
        self.holding = true;
        self.agc_db = 0.0;
        self.applied_db = 0.0;
        self.ramp = GainRamp::at(1.0);
    }

    fn process(&mut self, block: &mut [f32]) {
        let ch = self.channels;
        if ch == 0 {
            return;
        }
        let whole = block.len() - block.len() % ch;
        let mut rest = &mut block[..whole];
        while !rest.is_empty() {
            // Up to the end of the chunk or of the control period, whichever comes first.
            let frames = (self.chunk_frames - self.chunk_pos)
                .min(self.period - self.phase)
                .min(rest.len() / ch);
            let (now, later) = rest.split_at_mut(frames * ch);
            // 1. Level, and the gain ramp (multiplying by exactly 1 changes nothing).
            let mut squares = 0.0;
            for frame in now.chunks_exact_mut(ch) {
                let gain = self.ramp.advance();
                for x in frame {
                    let s = sanitize(*x).clamp(-MAX_SAMPLE, MAX_SAMPLE);
                    squares += f64::from(s) * f64::from(s);
                    *x = s * gain;
                }
            }
            self.chunk_sum += squares;
            self.chunk_pos += frames;
            if self.chunk_pos >= self.chunk_frames {
                self.end_chunk();
            }
            self.phase += frames;
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

    const RATE: u32 = 48_000;

    fn agc(p: crate::Agc, channels: usize) -> AutoGain {
        let mut a = AutoGain::new(p);
        a.prepare(AudioSpec::new(RATE, channels).unwrap()).unwrap();
        a
    }

    fn params(target_level_db: f64, max_gain_db: f64) -> crate::Agc {
        crate::Agc {
            enabled: true,
            target_level_db,
            max_gain_db,
            attack_ms: 10.0,
            release_ms: 100.0,
        }
    }

    /// Amplitude of a sine whose RMS level is `rms_db` dBFS.
    fn amp(rms_db: f64) -> f32 {
        (crate::db_to_gain(rms_db) * std::f64::consts::SQRT_2) as f32
    }

    /// `frames` stereo frames of a 1 kHz sine of amplitude `a` from frame `start`.
    fn sine(a: f32, start: usize, frames: usize) -> Vec<f32> {
        (start..start + frames)
            .flat_map(|i| {
                let s = (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(RATE)).sin();
                [a * s as f32; 2]
            })
            .collect()
    }

    fn rms_db(audio: &[f32]) -> f64 {
        let sum: f64 = audio.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        10.0 * (sum / audio.len() as f64).log10()
    }

    /// Runs `audio` through in blocks of 480 frames; returns the largest gain seen.
    fn run(a: &mut AutoGain, audio: &mut [f32]) -> f64 {
        let mut most = f64::NEG_INFINITY;
        for b in audio.chunks_mut(960) {
            a.process(b);
            most = most.max(a.gain_db());
        }
        most
    }

    #[test]
    fn brings_a_quiet_source_to_the_target() {
        let mut a = agc(params(-14.0, 20.0), 2);
        let mut audio = sine(amp(-30.0), 0, 4 * RATE as usize);
        // When the output is first within 1 dB of the target.
        let mut reached = None;
        for (i, b) in audio.chunks_mut(96).enumerate() {
            a.process(b);
            if reached.is_none() && a.gain_db() >= 15.0 {
                reached = Some(i as f64);
            }
        }
        let out = rms_db(&audio[audio.len() - 28_800..]);
        println!(
            "-30 dBFS RMS in: within 1 dB of -14 after {:?} ms, after 4 s out {out:.3} dBFS, gain {:.3} dB",
            reached,
            a.gain_db()
        );
        assert!(reached.is_some_and(|ms| ms < 2000.0), "{reached:?}");
        assert!((out - -14.0).abs() < 0.1, "{out}");
    }

    #[test]
    fn gain_never_exceeds_max_gain() {
        let mut a = agc(params(-14.0, 12.0), 2);
        // -50 dBFS would need +36 dB.
        let mut audio = sine(amp(-50.0), 0, 5 * RATE as usize);
        let most = run(&mut a, &mut audio);
        let out = rms_db(&audio[audio.len() - 28_800..]);
        println!("-50 dBFS RMS in, max 12 dB: largest gain {most:.6} dB, out {out:.3} dBFS");
        assert!(most <= 12.0, "{most}");
        assert!((most - 12.0).abs() < 1e-3);
        assert!((out - -38.0).abs() < 0.1, "{out}");
        // And it cuts no deeper than max_gain_db either: 0 dBFS RMS would need -14 dB.
        let mut hot = sine(amp(-0.5), 0, 2 * RATE as usize);
        let mut a = agc(params(-14.0, 6.0), 2);
        run(&mut a, &mut hot);
        assert!((a.gain_db() - -6.0).abs() < 1e-6, "{}", a.gain_db());
    }

    #[test]
    fn silence_and_very_quiet_input_do_not_raise_the_gain() {
        let mut a = agc(params(-14.0, 30.0), 2);
        let mut silence = vec![0.0; 2 * 10 * RATE as usize];
        let most = run(&mut a, &mut silence);
        assert_eq!((most, a.gain_db(), a.holding()), (0.0, 0.0, true));
        let mut whisper = sine(amp(-65.0), 0, 10 * RATE as usize);
        let most = run(&mut a, &mut whisper);
        println!(
            "-65 dBFS for 10 s: largest gain {most} dB, level {:.2}",
            a.level_db()
        );
        assert_eq!(most, 0.0);
        // Music at -20 wants +6 dB; when it stops dead the gain holds there.
        let mut music = sine(amp(-20.0), 0, 3 * RATE as usize);
        run(&mut a, &mut music);
        let before = a.gain_db();
        let mut stop = vec![0.0; 2 * 10 * RATE as usize];
        let most = run(&mut a, &mut stop);
        println!("after music at +{before:.3} dB, 10 s of silence: largest gain {most:.3} dB");
        assert!((before - 6.0).abs() < 0.05, "{before}");
        assert!(most - before < 0.05, "{before} -> {most}");
        assert!((a.gain_db() - before).abs() < 0.05);
    }

    #[test]
    fn disabled_passes_audio_bit_exact() {
        let off = crate::Agc {
            enabled: false,
            ..params(-14.0, 12.0)
        };
        let input: Vec<f32> = sine(0.3, 0, RATE as usize)
            .iter()
            .enumerate()
            .map(|(i, x)| x + (i % 7) as f32 * 1e-3)
            .collect();
        let mut a = agc(off, 2);
        let mut out = input.clone();
        run(&mut a, &mut out);
        assert!(
            out.iter()
                .zip(&input)
                .all(|(o, i)| o.to_bits() == i.to_bits())
        );
        // Switched off while working: after the 10 ms fade, bit-exact again.
        let mut a = agc(params(-14.0, 12.0), 2);
        let mut quiet = sine(amp(-30.0), 0, 2 * RATE as usize);
        run(&mut a, &mut quiet);
        assert!(a.gain_db() > 11.0);
        a.set_params(off);
        let mut fade = sine(amp(-30.0), 0, RATE as usize / 5);
        run(&mut a, &mut fade);
        assert_eq!(a.gain_db(), 0.0);
        let mut out = input.clone();
        run(&mut a, &mut out);
        assert!(
            out.iter()
                .zip(&input)
                .all(|(o, i)| o.to_bits() == i.to_bits())
        );
    }

    /// The click bound. With `y = g·x`,
    /// `y[n+1] − y[n] = g[n+1]·(x[n+1] − x[n]) + (g[n+1] − g[n])·x[n]`, so
    /// `|Δy| ≤ g_max·max|Δx| + g_max·(10^(d/20) − 1)·max|x|`, where `d` is the most the applied
    /// gain moves in one frame, in dB. The de-click smoother moves at most `c · |gap|` per frame,
    /// and the gap between the AGC's gain and the applied one is at most the whole range,
    /// `2·max_gain_db`. A gain that stepped would add `Δg·|x|`, 0.42 for this test's −7 → +5 dB
    /// at the sine's crest (measured with the smoother taken out).
    fn largest_jump_and_bound(out: &[f32], input: &[f32], a: f32, max_gain_db: f64) -> (f32, f32) {
        let jump = |v: &[f32]| {
            v.chunks_exact(2)
                .map(|f| f[0])
                .collect::<Vec<_>>()
                .windows(2)
                .fold(0f32, |m, w| m.max((w[1] - w[0]).abs()))
        };
        let g_max = crate::db_to_gain(max_gain_db) as f32;
        let d = one_pole(DECLICK_MS, f64::from(RATE)) * 2.0 * max_gain_db;
        let bound = g_max * jump(input) + g_max * (crate::db_to_gain(d) as f32 - 1.0) * a;
        (jump(out), bound)
    }

    #[test]
    fn abrupt_parameter_changes_do_not_click() {
        let a = crate::db_to_gain(-10.0) as f32;
        // Zero attack and release: only the de-click smoother stands between a change and a step.
        let before = crate::Agc {
            attack_ms: 0.0,
            release_ms: 0.0,
            ..params(-20.0, 12.0)
        };
        let changes = [
            crate::Agc {
                target_level_db: -8.0,
                ..before
            },
            crate::Agc {
                enabled: false,
                ..before
            },
        ];
        for after in changes {
            let mut g = agc(before, 2);
            // Change at a crest of the sine (48 frames a period).
            let split = 48_012;
            let mut out = sine(a, 0, split);
            run(&mut g, &mut out);
            let gain_before = g.gain_db();
            g.set_params(after);
            let mut second = sine(a, split, RATE as usize);
            run(&mut g, &mut second);
            out.extend(second);
            let input = sine(a, 0, split + RATE as usize);
            let (dy, bound) = largest_jump_and_bound(&out, &input, a, 12.0);
            println!(
                "{after:?}: gain {gain_before:.2} -> {:.2} dB, largest jump {dy:.4}, bound {bound:.4}",
                g.gain_db()
            );
            assert!(dy <= bound, "jump {dy} over {bound}");
            assert!((g.gain_db() - gain_before).abs() > 6.0);
        }
    }

    #[test]
    fn garbage_input_gives_finite_output_and_it_recovers() {
        let mut a = agc(params(-14.0, 20.0), 2);
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
        block.extend(std::iter::repeat_n(1e30, 20_000));
        run(&mut a, &mut block);
        assert!(block.iter().all(|x| x.is_finite()), "{block:?}");
        let mut denormals = vec![f32::MIN_POSITIVE / 2.0; 96_000];
        run(&mut a, &mut denormals);
        assert!(denormals.iter().all(|&x| x == 0.0));
        assert!(a.gain_db().is_finite() && a.level_db().is_finite());
        let mut after = sine(amp(-30.0), 0, 4 * RATE as usize);
        run(&mut a, &mut after);
        let out = rms_db(&after[after.len() - 28_800..]);
        println!("after garbage, -30 dBFS RMS in: out {out:.3} dBFS");
        assert!((out - -14.0).abs() < 0.1, "{out}");
    }

    #[test]
    fn odd_parameters_are_clamped_not_propagated() {
        let a = AutoGain::new(crate::Agc {
            enabled: true,
            target_level_db: f64::NAN,
            max_gain_db: 1e9,
            attack_ms: -5.0,
            release_ms: f64::NEG_INFINITY,
        });
        let p = a.params();
        assert_eq!(p.target_level_db, crate::Agc::default().target_level_db);
        assert_eq!((p.max_gain_db, p.attack_ms), (40.0, 0.0));
        assert_eq!(p.release_ms, crate::Agc::default().release_ms);
    }
}
