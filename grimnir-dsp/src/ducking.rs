//! Sidechain ducking: music goes down while the microphone is live.
//!
//! Per frame:
//!
//! 1. **Detector.** The key is the largest absolute microphone sample over the channels. A peak
//!    follower tracks it: it jumps up to a louder key at once and otherwise falls at a constant
//!    rate in dB (a one-pole decay in linear terms with a 20 ms time constant, about 434 dB/s),
//!    so it sits on the peaks of a tone instead of following each cycle. It is compared with
//!    `threshold_db` (converted to linear once per parameter change, the same comparison).
//! 2. **Hold.** While the follower is at or above the threshold the duck is keyed, and it stays
//!    keyed for 300 ms ([`Ducker::HOLD_MS`]) after the follower last was: the gaps between
//!    words and breaths are shorter than that, so speech does not let the music swell up
//!    between phrases.
//! 3. **Gain.** The target is `amount_db` while keyed and 0 dB otherwise. The gain follows it
//!    with a one-pole smoother *in dB*: `attack_ms` is the time constant on the way down,
//!    `release_ms` on the way up (so the gain covers 63 % of the distance in one time constant
//!    and 99 % in five). Working in dB makes the fade sound even, as a hand on a fader does.
//!    Time constants shorter than 1 ms ([`Ducker::MIN_RAMP_MS`]) are raised to it, so the gain
//!    never steps, even with `attack_ms: 0` or when [`Ducker::set_params`] moves the target
//!    abruptly.
//!
//! Why the output has no clicks: with `y[n] = g[n]·x[n]` and `g ≤ 1` (the amount is never above
//! 0 dB), `y[n] − y[n−1] = g[n]·(x[n] − x[n−1]) + x[n−1]·(g[n] − g[n−1])`, so a step of the
//! output is at most the input's own step plus `|x| · |Δg|`. The smoother moves the gain by at
//! most `c · |target − gain|` dB per frame, `c` being the faster of the two coefficients, and
//! `|d(10^(d/20))/dd| = g·ln 10/20 ≤ ln 10/20`, so `|Δg| ≤ (ln 10/20) · c · |amount|` (or the
//! snap of [`Ducker::SNAP_DB`] at the very end of a glide, whichever is larger). The tests
//! check the output against exactly that bound.
//!
//! The gain is linked across channels, so the stereo image does not move.

use crate::processor::{Processor, sanitize};
use crate::{AudioSpec, DspError, db_to_gain};

/// Time constant of the detector's fall, ms.
const DETECTOR_RELEASE_MS: f64 = 20.0;
/// Deepest duck, dB; deeper amounts are taken as this.
const MAX_DEPTH_DB: f64 = 60.0;

/// Music ducked under a microphone. Configure with [`crate::Ducking`] parameters.
///
/// [`process_with_sidechain`](Ducker::process_with_sidechain) takes the music and the
/// microphone; [`Processor::process`] is the same with a silent microphone, so it only lets a
/// duck in progress release and otherwise leaves the music unchanged.
///
/// ```
/// use grimnir_dsp::{AudioSpec, Ducker, Ducking, Processor};
///
/// let mut ducker = Ducker::new(Ducking { amount_db: -12.0, ..Ducking::default() });
/// ducker.prepare(AudioSpec::new(48_000, 2)?)?;
/// // One second of music at -10 dBFS under a microphone speaking at -20 dBFS.
/// let mut music = vec![0.316_f32; 2 * 48_000];
/// let mic: Vec<f32> = (0..2 * 48_000).map(|i| 0.1 * (i as f32 * 0.07).sin()).collect();
/// for (m, k) in music.chunks_mut(960).zip(mic.chunks(960)) {
///     ducker.process_with_sidechain(m, k);
/// }
/// assert!((ducker.gain_db() + 12.0).abs() < 0.1);
/// # Ok::<(), grimnir_dsp::DspError>(())
/// ```
#[derive(Debug)]
pub struct Ducker {
    params: crate::Ducking,
    spec: Option<AudioSpec>,
    /// Linear threshold of the detector.
    threshold: f32,
    /// Per-frame decay factor of the detector.
    detector_decay: f32,
    hold_frames: u64,
    attack_coef: f64,
    release_coef: f64,
    /// The detector's peak follower, linear.
    envelope: f32,
    /// Frames the duck stays keyed for.
    hold_left: u64,
    /// The gain applied, dB (0 or negative).
    gain_db: f64,
    /// `gain_db` as a linear factor, recomputed only when `gain_db` moves.
    gain: f32,
    gain_of: f64,
}

impl Ducker {
    /// How long the duck stays keyed after the microphone last reached the threshold, ms.
    pub const HOLD_MS: f64 = 300.0;
    /// Shortest time constant of the gain smoother, ms: attack and release times below it are
    /// raised to it so that the gain is always a ramp, never a step.
    pub const MIN_RAMP_MS: f64 = 1.0;
    /// Once the gain is this close to its target, in dB, it is set to the target: the glide ends
    /// exactly (0 dB is then an exact pass-through) instead of creeping for ever.
    pub const SNAP_DB: f64 = 1e-6;

    /// A ducker with these parameters; call [`Processor::prepare`] before use.
    pub fn new(params: crate::Ducking) -> Ducker {
        let mut ducker = Ducker {
            params,
            spec: None,
            threshold: 0.0,
            detector_decay: 0.0,
            hold_frames: 0,
            attack_coef: 1.0,
            release_coef: 1.0,
            envelope: 0.0,
            hold_left: 0,
            gain_db: 0.0,
            gain: 1.0,
            gain_of: 0.0,
        };
        ducker.set_params(params);
        ducker
    }

    /// The parameters in use.
    pub fn params(&self) -> crate::Ducking {
        self.params
    }

    /// Takes new parameters for the next frame on. The gain glides from where it is to the new
    /// target with the (new) attack or release time, so an abrupt change of `amount_db` does not
    /// click. Does not allocate.
    ///
    /// Non-finite values fall back to the defaults of [`crate::Ducking`]; an amount above 0 dB is
    /// taken as 0 dB (ducking never boosts) and one below −60 dB as −60 dB, the range
    /// [`DspGraph::validate`](crate::DspGraph::validate) accepts.
    pub fn set_params(&mut self, params: crate::Ducking) {
        let defaults = crate::Ducking::default();
        let finite_or = |v: f64, d: f64| if v.is_finite() { v } else { d };
        self.params = crate::Ducking {
            amount_db: finite_or(params.amount_db, defaults.amount_db).clamp(-MAX_DEPTH_DB, 0.0),
            threshold_db: finite_or(params.threshold_db, defaults.threshold_db),
            attack_ms: finite_or(params.attack_ms, defaults.attack_ms),
            release_ms: finite_or(params.release_ms, defaults.release_ms),
        };
        self.threshold = db_to_gain(self.params.threshold_db) as f32;
        if let Some(spec) = self.spec {
            let coef = |ms: f64| {
                let frames = spec.frames_in_ms(ms.max(Self::MIN_RAMP_MS)) as f64;
                1.0 - (-1.0 / frames).exp()
            };
            self.attack_coef = coef(self.params.attack_ms);
            self.release_coef = coef(self.params.release_ms);
            let detector_frames = spec.frames_in_ms(DETECTOR_RELEASE_MS) as f64;
            self.detector_decay = (-1.0 / detector_frames).exp() as f32;
            self.hold_frames = spec.frames_in_ms(Self::HOLD_MS) as u64;
        }
    }

    /// The gain applied to the music now, dB (0 = none, `amount_db` when fully ducked), for
    /// metering.
    pub fn gain_db(&self) -> f32 {
        self.gain_db as f32
    }

    /// Ducks `music` under `mic`, in place. Both are interleaved with the channel count of the
    /// prepared format, frame `i` of `mic` keying frame `i` of `music`.
    ///
    /// Every whole frame of `music` is processed; where `mic` is shorter, the missing frames
    /// count as silence, and where it is longer the rest is ignored. A trailing partial frame
    /// of `music` is left as it is. Never allocates or panics.
    pub fn process_with_sidechain(&mut self, music: &mut [f32], mic: &[f32]) {
        let Some(spec) = self.spec else { return };
        let ch = spec.channels();
        let whole = music.len() - music.len() % ch;
        let mut mic_frames = mic.chunks_exact(ch);
        for frame in music[..whole].chunks_exact_mut(ch) {
            let key = mic_frames.next().map_or(0.0, |m| {
                m.iter().fold(0f32, |k, x| k.max(sanitize(*x).abs()))
            });
            self.step(key);
            for x in frame {
                *x = sanitize(*x) * self.gain;
            }
        }
    }

    /// Advances the detector and the gain by one frame whose key level is `key`.
    #[inline]
    fn step(&mut self, key: f32) {
        self.envelope = if key > self.envelope {
            key
        } else {
            let e = self.envelope * self.detector_decay;
            // The decay must not sink into denormals.
            if e < 1e-20 { 0.0 } else { e }
        };
        if self.envelope > 0.0 && self.envelope >= self.threshold {
            self.hold_left = self.hold_frames;
        } else {
            self.hold_left = self.hold_left.saturating_sub(1);
        }
        let target = if self.hold_left > 0 {
            self.params.amount_db
        } else {
            0.0
        };
        let diff = target - self.gain_db;
        if diff.abs() <= Self::SNAP_DB {
            self.gain_db = target;
        } else if diff < 0.0 {
            self.gain_db += diff * self.attack_coef;
        } else {
            self.gain_db += diff * self.release_coef;
        }
        if self.gain_db != self.gain_of {
            self.gain_of = self.gain_db;
            self.gain = db_to_gain(self.gain_db) as f32;
        }
    }
}

impl Processor for Ducker {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        self.spec = Some(spec);
        self.set_params(self.params);
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.envelope = 0.0;
        self.hold_left = 0;
        self.gain_db = 0.0;
        self.gain = 1.0;
        self.gain_of = 0.0;
    }

    /// Processes the music with a silent microphone: a duck in progress holds and releases,
    /// and at 0 dB the music passes unchanged.
    fn process(&mut self, block: &mut [f32]) {
        self.process_with_sidechain(block, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gain_to_db;

    const RATE: u32 = 48_000;

    fn ducker(amount_db: f64, attack_ms: f64, release_ms: f64) -> Ducker {
        let mut d = Ducker::new(crate::Ducking {
            amount_db,
            threshold_db: -40.0,
            attack_ms,
            release_ms,
        });
        d.prepare(AudioSpec::new(RATE, 2).unwrap()).unwrap();
        d
    }

    fn frames(seconds: f64) -> usize {
        (seconds * f64::from(RATE)).round() as usize
    }

    /// A stereo sine with peaks at `db` dBFS, `seconds` long, starting at phase 0.
    fn sine(freq: f64, db: f64, seconds: f64) -> Vec<f32> {
        let amp = db_to_gain(db);
        (0..frames(seconds))
            .flat_map(|i| {
                let x = (amp * (std::f64::consts::TAU * freq * i as f64 / f64::from(RATE)).sin())
                    as f32;
                [x, x]
            })
            .collect()
    }

    fn silence(seconds: f64) -> Vec<f32> {
        vec![0.0; 2 * frames(seconds)]
    }

    /// Music and mic through the ducker in blocks of 480 frames; the output.
    fn run(d: &mut Ducker, music: &[f32], mic: &[f32]) -> Vec<f32> {
        let mut out = music.to_vec();
        for (m, k) in out.chunks_mut(960).zip(mic.chunks(960)) {
            d.process_with_sidechain(m, k);
        }
        out
    }

    /// The gain applied at each frame, dB, read from output / input where the input is loud
    /// enough for the ratio to be exact; `None` elsewhere.
    fn gains(input: &[f32], output: &[f32]) -> Vec<Option<f64>> {
        input
            .chunks(2)
            .zip(output.chunks(2))
            .map(|(i, o)| (i[0].abs() > 0.05).then(|| gain_to_db(f64::from(o[0] / i[0]))))
            .collect()
    }

    /// Lowest and highest gain over frames `from..to`, dB.
    fn range(g: &[Option<f64>], from: f64, to: f64) -> (f64, f64) {
        g[frames(from)..frames(to)]
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            })
    }

    #[test]
    fn a_mic_burst_ducks_by_the_amount_and_releases() {
        let mut d = ducker(-12.0, 50.0, 500.0);
        let music = sine(220.0, -10.0, 12.0);
        let mut mic = silence(1.0);
        mic.extend(sine(1000.0, -20.0, 2.0));
        mic.extend(silence(9.0));
        let out = run(&mut d, &music, &mic);
        let g = gains(&music, &out);

        // Before the mic: untouched.
        assert_eq!(range(&g, 0.0, 1.0), (0.0, 0.0));
        // Settled under the mic (attack 50 ms: 0.5 s is 10 time constants).
        let (lo, hi) = range(&g, 1.5, 3.0);
        assert!(lo >= -12.5 && hi <= -11.5, "ducked {lo:.3}..{hi:.3} dB");
        // The hold keeps it down for 300 ms after the mic stops.
        let (lo, hi) = range(&g, 3.0, 3.25);
        assert!(lo >= -12.5 && hi <= -11.5, "held {lo:.3}..{hi:.3} dB");
        // Released: hold + detector fall (~0.35 s) + 7 release time constants.
        let (lo, hi) = range(&g, 6.9, 12.0);
        assert!(lo >= -0.05 && hi <= 1e-9, "released {lo:.4}..{hi:.4} dB");
        // The glide ends exactly at 0 dB (within `SNAP_DB` after ~16 time constants).
        assert_eq!(d.gain_db(), 0.0);
    }

    #[test]
    fn a_mic_under_the_threshold_does_not_duck() {
        let mut d = ducker(-12.0, 50.0, 500.0);
        let music = sine(220.0, -10.0, 3.0);
        let mic = sine(1000.0, -43.0, 3.0);
        let out = run(&mut d, &music, &mic);
        assert_eq!(out, music, "bit-exact pass-through");
        assert_eq!(d.gain_db(), 0.0);
    }

    #[test]
    fn speech_gaps_shorter_than_the_hold_keep_the_music_down() {
        let music = sine(220.0, -10.0, 6.0);
        let speech = |on: f64, off: f64| {
            let mut mic = Vec::new();
            while mic.len() < music.len() {
                mic.extend(sine(300.0, -20.0, on));
                mic.extend(silence(off));
            }
            mic.truncate(music.len());
            mic
        };
        // 200 ms words, 150 ms gaps: stays ducked.
        let mut d = ducker(-12.0, 50.0, 500.0);
        let out = run(&mut d, &music, &speech(0.2, 0.15));
        let (lo, hi) = range(&gains(&music, &out), 0.5, 6.0);
        assert!(lo >= -12.5 && hi <= -11.5, "ducked {lo:.3}..{hi:.3} dB");
        // The same words with 700 ms pauses: the music comes up in each pause.
        let mut d = ducker(-12.0, 50.0, 500.0);
        let out = run(&mut d, &music, &speech(0.2, 0.7));
        let (_, hi) = range(&gains(&music, &out), 0.5, 6.0);
        assert!(hi > -11.0, "the hold is not endless: rose to {hi:.3} dB");
    }

    /// The largest sample-to-sample change within any channel.
    fn largest_step(x: &[f32]) -> f32 {
        x.chunks(2)
            .zip(x.chunks(2).skip(1))
            .flat_map(|(a, b)| [(b[0] - a[0]).abs(), (b[1] - a[1]).abs()])
            .fold(0.0, f32::max)
    }

    /// The bound of the module documentation: input step plus peak · (ln 10 / 20) · c · A.
    fn click_bound(input: &[f32], coef: f64, amount: f64) -> f32 {
        let peak = input.iter().fold(0f32, |m, x| m.max(x.abs()));
        let dg = (10f64.ln() / 20.0) * (coef * amount.abs()).max(Ducker::SNAP_DB);
        // A little room for f32 rounding of the products.
        largest_step(input) + (f64::from(peak) * dg) as f32 * 1.001 + 1e-6
    }

    #[test]
    fn gain_changes_are_ramps_within_the_slope_bound() {
        for (name, music) in [
            ("steady -10 dBFS", vec![0.316_f32; 2 * frames(4.0)]),
            ("220 Hz at -10 dBFS", sine(220.0, -10.0, 4.0)),
        ] {
            // A fast attack, where a step would show most.
            let mut d = ducker(-6.0, 2.0, 20.0);
            let coef = d.attack_coef.max(d.release_coef);
            let mut mic = silence(0.5);
            mic.extend(sine(1000.0, -20.0, 3.0));
            mic.extend(silence(0.5));
            let mut out = music.clone();
            let half = 2 * frames(2.0);
            // Ducked to -6 dB by 2 s; then the amount jumps to -24 dB.
            d.process_with_sidechain(&mut out[..half], &mic[..half]);
            assert!((d.gain_db() + 6.0).abs() < 1e-3, "{}", d.gain_db());
            d.set_params(crate::Ducking {
                amount_db: -24.0,
                ..d.params()
            });
            d.process_with_sidechain(&mut out[half..], &mic[half..]);
            let step = largest_step(&out);
            let bound = click_bound(&music, coef, 24.0);
            assert!(step <= bound, "{name}: step {step:.6} > bound {bound:.6}");
            // The same jump applied as a step would have broken the bound.
            let naive = 0.316 * (db_to_gain(-6.0) - db_to_gain(-24.0)) as f32;
            assert!(naive > 4.0 * bound, "{name}: the test can fail");
        }
    }

    #[test]
    fn nan_and_infinity_on_either_input_give_finite_output() {
        let mut d = ducker(-12.0, 10.0, 100.0);
        let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-42, -1e-42];
        let mut music = sine(220.0, -10.0, 0.5);
        let mut mic = sine(1000.0, -20.0, 0.5);
        for (i, x) in music.iter_mut().enumerate().step_by(7) {
            *x = bad[i % bad.len()];
        }
        for (i, x) in mic.iter_mut().enumerate().step_by(5) {
            *x = bad[i % bad.len()];
        }
        let out = run(&mut d, &music, &mic);
        assert!(out.iter().all(|x| x.is_finite()));
        assert!(d.gain_db().is_finite());
        // It still works: the good mic samples ducked it.
        assert!((d.gain_db() + 12.0).abs() < 0.5, "{}", d.gain_db());
        let mut all_bad = vec![f32::NAN; 2 * 4800];
        d.process_with_sidechain(&mut all_bad, &[f32::INFINITY; 2 * 4800]);
        assert!(all_bad.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn process_alone_releases_and_then_passes_music_unchanged() {
        let mut d = ducker(-12.0, 10.0, 100.0);
        let mut music = sine(220.0, -10.0, 0.5);
        d.process_with_sidechain(&mut music, &sine(1000.0, -20.0, 0.5));
        assert!(d.gain_db() < -11.5);
        // 3 s without a mic: hold, then release to within `SNAP_DB` (~16 time constants).
        let mut music = sine(220.0, -10.0, 3.0);
        for block in music.chunks_mut(960) {
            d.process(block);
        }
        assert_eq!(d.gain_db(), 0.0);
        let input = sine(220.0, -10.0, 0.5);
        let mut out = input.clone();
        d.process(&mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn mismatched_lengths_never_panic() {
        let mut d = ducker(-12.0, 1.0, 100.0);
        // A mic shorter than the music, with a partial frame; music with a partial frame.
        let mut music = vec![0.5f32; 2 * 1000 + 1];
        let mic = vec![0.5f32; 2 * 100 + 1];
        d.process_with_sidechain(&mut music, &mic);
        assert!(
            music[..2 * 1000].iter().all(|x| *x < 0.5),
            "all frames ducked"
        );
        assert_eq!(music[2 * 1000], 0.5, "the partial frame is left alone");
        // A mic longer than the music; empty blocks.
        let mut music = vec![0.5f32; 20];
        d.process_with_sidechain(&mut music, &[0.5; 2000]);
        d.process_with_sidechain(&mut [], &[0.5; 2000]);
        d.process_with_sidechain(&mut [], &[]);
        d.process(&mut []);
        // Unprepared: leaves the music alone.
        let mut fresh = Ducker::new(crate::Ducking::default());
        let mut music = vec![0.5f32; 20];
        fresh.process_with_sidechain(&mut music, &[0.5; 20]);
        assert_eq!(music, vec![0.5f32; 20]);
    }

    #[test]
    fn hostile_parameters_are_tamed() {
        let mut d = Ducker::new(crate::Ducking {
            amount_db: f64::NAN,
            threshold_db: f64::INFINITY,
            attack_ms: -5.0,
            release_ms: f64::NEG_INFINITY,
        });
        d.prepare(AudioSpec::new(RATE, 2).unwrap()).unwrap();
        assert_eq!(d.params().amount_db, crate::Ducking::default().amount_db);
        d.set_params(crate::Ducking {
            amount_db: 6.0,
            ..crate::Ducking::default()
        });
        assert_eq!(d.params().amount_db, 0.0, "never a boost");
        let out = run(&mut d, &sine(220.0, -10.0, 0.5), &sine(1000.0, -20.0, 0.5));
        assert!(out.iter().all(|x| x.is_finite()));
    }
}
