//! Loudness normalization to a target in LUFS, with a true-peak ceiling.
//!
//! Two modes, switched per source by [`LoudnessNormalizer::set_track_loudness`]:
//!
//! - **Track**: the item's integrated loudness is known (the media library stores what analysis
//!   measured), so the gain is simply `target - track` for the whole item. It is reached by a
//!   100 ms ramp from the previous gain, never a step.
//! - **Live**: for sources of unknown loudness (a DJ, a webstream) the loudness is measured over a
//!   sliding window (`integrated_window_sec`, 3 s by default) and the gain follows
//!   `target - measured`, rising at no more than [`LIVE_SLEW_DB_PER_SEC`] and falling at no more
//!   than [`LIVE_FALL_DB_PER_SEC`]: fast enough to catch a level change within seconds, slow
//!   enough not to be heard as pumping, and quicker down than up so a loud return is not
//!   overshot. The window is gated the way
//!   BS.1770 gates integrated loudness: every 100 ms the momentary loudness is sampled, and only
//!   samples above [`LIVE_GATE_LUFS`] and within 10 LU of the window's level enter the average.
//!   Pauses and silence add nothing, so the gain holds through them: silence is never pumped up.
//!
//! Gain is bounded by `max_gain_db` upward and [`MAX_CUT_DB`] downward, and moves in straight
//! lines of [`GAIN_SEGMENT`] frames, so no step is audible. Those segments and the 100 ms
//! measuring hops lie on a grid counted from the start of the stream, not from the blocks it
//! arrives in: the output is the same whatever the block sizes (a render and a live station
//! given the same audio agree). After the gain, a [`TruePeakLimiter`] keeps
//! the output at or under `true_peak_limit_dbtp` (a hot track raised toward a quiet target, or a
//! quiet track with hot peaks, would otherwise clip).

use crate::kweight::Momentary;
use crate::limiter::TruePeakLimiter;
use crate::processor::{Processor, sanitize};
use crate::{AudioSpec, DspError, db_to_gain};

/// Fastest rise of the live-mode gain, dB per second.
pub const LIVE_SLEW_DB_PER_SEC: f64 = 3.0;
/// Fastest fall of the live-mode gain, dB per second: faster than the rise, so that a loud
/// return after a quiet passage is caught before it overshoots the target.
pub const LIVE_FALL_DB_PER_SEC: f64 = 12.0;
/// Below this window loudness the live gain holds, LUFS.
pub const LIVE_GATE_LUFS: f64 = -45.0;
/// Most attenuation ever applied, dB.
pub const MAX_CUT_DB: f64 = 40.0;
/// Length of the ramp to a new track's gain, ms.
const TRACK_RAMP_MS: f64 = 100.0;
/// Frames over which the gain moves in one straight line (1.3 ms at 48 kHz).
pub const GAIN_SEGMENT: usize = 64;

/// The normalizer. Configure with [`crate::LoudnessNormalize`] parameters.
pub struct LoudnessNormalizer {
    params: crate::LoudnessNormalize,
    spec: Option<AudioSpec>,
    meter: Option<Momentary>,
    /// Gated momentary energies of the sliding window, one per hop (ring).
    window: Vec<f64>,
    window_pos: usize,
    window_len: usize,
    window_sum: f64,
    /// Frames per 100 ms hop, and frames since the last sample.
    hop: usize,
    since_hop: usize,
    /// Momentary loudness at the end of the last hop, LUFS.
    momentary: f64,
    track_lufs: Option<f64>,
    /// Gain reached at the end of the current segment, and the gain aimed for, dB.
    gain_db: f64,
    target_db: f64,
    /// Largest gain change per frame, dB (depends on the mode).
    slew_db: f64,
    /// Frames into the current gain segment; its linear gain at the start and per frame.
    seg_pos: usize,
    seg_from: f32,
    seg_step: f32,
    ceiling: TruePeakLimiter,
    /// Off when a limiter later in the chain already holds an equal or lower ceiling.
    ceiling_on: bool,
}

impl std::fmt::Debug for LoudnessNormalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoudnessNormalizer")
            .field("params", &self.params)
            .field("track_lufs", &self.track_lufs)
            .field("gain_db", &self.gain_db)
            .finish_non_exhaustive()
    }
}

impl LoudnessNormalizer {
    /// A normalizer with these parameters, in live mode until a track loudness is set.
    pub fn new(params: crate::LoudnessNormalize) -> LoudnessNormalizer {
        LoudnessNormalizer {
            params,
            spec: None,
            meter: None,
            window: Vec::new(),
            window_pos: 0,
            window_len: 0,
            window_sum: 0.0,
            hop: 4800,
            since_hop: 0,
            momentary: f64::NEG_INFINITY,
            track_lufs: None,
            gain_db: 0.0,
            target_db: 0.0,
            slew_db: 0.0,
            seg_pos: 0,
            seg_from: 1.0,
            seg_step: 0.0,
            ceiling: TruePeakLimiter::new(Self::ceiling_params(&params)),
            ceiling_on: true,
        }
    }

    fn ceiling_params(p: &crate::LoudnessNormalize) -> crate::Limiter {
        crate::Limiter {
            threshold_db: p.true_peak_limit_dbtp,
            lookahead_ms: 1.5,
            release_ms: 80.0,
        }
    }

    /// Switches to track mode with the item's integrated loudness (LUFS), or back to live mode
    /// with `None`. Call it when a new item starts.
    pub fn set_track_loudness(&mut self, lufs: Option<f64>) {
        self.track_lufs = lufs.filter(|l| l.is_finite());
        if let Some(lufs) = self.track_lufs {
            self.target_db = self.bounded(self.params.target_lufs - lufs);
        }
        self.set_slew();
        // A new source: its loudness starts from scratch.
        self.clear_window();
    }

    fn clear_window(&mut self) {
        if let Some(meter) = &mut self.meter {
            meter.reset();
        }
        self.momentary = f64::NEG_INFINITY;
        self.window_pos = 0;
        self.window_len = 0;
        self.window_sum = 0.0;
        self.since_hop = 0;
    }

    /// Loudness of the gated window, LUFS (`-inf` when nothing has passed the gate yet).
    fn window_loudness(&self) -> f64 {
        if self.window_len == 0 {
            return f64::NEG_INFINITY;
        }
        -0.691 + 10.0 * (self.window_sum / self.window_len as f64).log10()
    }

    /// Samples the momentary loudness into the window if it passes the gates.
    fn sample(&mut self) {
        let momentary = self.momentary;
        let current = self.window_loudness();
        if !momentary.is_finite() || momentary <= LIVE_GATE_LUFS || momentary < current - 10.0 {
            return;
        }
        let energy = 10f64.powf((momentary + 0.691) / 10.0);
        let cap = self.window.len();
        if cap == 0 {
            return;
        }
        if self.window_len == cap {
            self.window_sum -= self.window[self.window_pos];
        } else {
            self.window_len += 1;
        }
        self.window[self.window_pos] = energy;
        self.window_sum += energy;
        self.window_pos = (self.window_pos + 1) % cap;
        // Re-add from scratch now and then so rounding in the running sum cannot drift.
        if self.window_pos == 0 {
            self.window_sum = self.window[..self.window_len].iter().sum();
        }
    }

    /// Leaves the true-peak ceiling to a limiter later in the chain whose ceiling is at or
    /// below this one's (a second look-ahead limiter would only cost time and latency).
    pub(crate) fn leave_ceiling_to_chain(&mut self) {
        self.ceiling_on = false;
    }

    /// The true-peak ceiling this normalizer promises, dBTP.
    pub(crate) fn ceiling_dbtp(&self) -> f64 {
        self.params.true_peak_limit_dbtp
    }

    /// Starts a gain segment: a straight line from the gain reached so far toward the target,
    /// no steeper than the slew allows.
    fn start_segment(&mut self) {
        let rise = self.slew_db * GAIN_SEGMENT as f64;
        let fall = match self.track_lufs {
            Some(_) => rise,
            None => rise * (LIVE_FALL_DB_PER_SEC / LIVE_SLEW_DB_PER_SEC),
        };
        let next = self.gain_db + (self.target_db - self.gain_db).clamp(-fall, rise);
        let (from, to) = (db_to_gain(self.gain_db) as f32, db_to_gain(next) as f32);
        self.seg_from = from;
        self.seg_step = (to - from) / GAIN_SEGMENT as f32;
        self.gain_db = next;
    }

    /// The gain reached at the end of the current gain segment (before the ceiling), dB.
    pub fn gain_db(&self) -> f64 {
        self.gain_db
    }

    fn bounded(&self, db: f64) -> f64 {
        db.clamp(-MAX_CUT_DB, self.params.max_gain_db)
    }

    fn set_slew(&mut self) {
        let rate = self.spec.map_or(48_000.0, |s| f64::from(s.sample_rate()));
        self.slew_db = match self.track_lufs {
            // Any gain change within the ramp time.
            Some(_) => (MAX_CUT_DB + self.params.max_gain_db) / (TRACK_RAMP_MS / 1000.0 * rate),
            None => LIVE_SLEW_DB_PER_SEC / rate,
        };
    }
}

impl Processor for LoudnessNormalizer {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        self.hop = spec.frames_in_ms(100.0);
        self.meter = Some(Momentary::new(
            spec.channels(),
            spec.sample_rate(),
            self.hop,
        ));
        let hops = (self.params.integrated_window_sec * 10.0)
            .round()
            .clamp(4.0, 6000.0) as usize;
        self.window = vec![0.0; hops];
        self.spec = Some(spec);
        self.ceiling = TruePeakLimiter::new(Self::ceiling_params(&self.params));
        self.ceiling.prepare(spec)?;
        self.set_slew();
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.clear_window();
        self.gain_db = self
            .track_lufs
            .map_or(0.0, |l| self.bounded(self.params.target_lufs - l));
        self.target_db = self.gain_db;
        self.seg_pos = 0;
        self.ceiling.reset();
    }

    fn process(&mut self, block: &mut [f32]) {
        let Some(spec) = self.spec else { return };
        let ch = spec.channels();
        let whole = block.len() - block.len() % ch;
        let block = &mut block[..whole];
        if block.is_empty() {
            return;
        }
        for x in block.iter_mut() {
            *x = sanitize(*x);
        }
        // Pieces that end at the next gain segment or measuring hop, whichever comes first.
        let live = self.track_lufs.is_none();
        let mut at = 0;
        while at < block.len() {
            let mut frames = ((block.len() - at) / ch).min(GAIN_SEGMENT - self.seg_pos);
            if live {
                frames = frames.min(self.hop - self.since_hop);
            }
            let piece = &mut block[at..at + frames * ch];
            at += frames * ch;
            if self.seg_pos == 0 {
                self.start_segment();
            }
            if live {
                if let Some(meter) = &mut self.meter {
                    meter.add(piece);
                }
                self.since_hop += frames;
                if self.since_hop >= self.hop {
                    self.since_hop = 0;
                    if let Some(meter) = &mut self.meter {
                        self.momentary = meter.end_hop();
                    }
                    self.sample();
                    let loudness = self.window_loudness();
                    if loudness.is_finite() {
                        self.target_db = self.bounded(self.params.target_lufs - loudness);
                    }
                }
            }
            if self.seg_step != 0.0 {
                for (i, frame) in piece.chunks_exact_mut(ch).enumerate() {
                    let g = self.seg_from + self.seg_step * (self.seg_pos + i + 1) as f32;
                    for x in frame {
                        *x *= g;
                    }
                }
            } else if self.seg_from != 1.0 {
                for x in piece.iter_mut() {
                    *x *= self.seg_from;
                }
            }
            self.seg_pos = (self.seg_pos + frames) % GAIN_SEGMENT;
        }
        if self.ceiling_on {
            self.ceiling.process(block);
        }
    }

    fn latency_frames(&self) -> usize {
        if self.ceiling_on {
            self.ceiling.latency_frames()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Meter;

    fn tone(db: f32, seconds: f32, spec: AudioSpec) -> Vec<f32> {
        let rate = spec.sample_rate() as f32;
        let amp = 10f32.powf(db / 20.0);
        (0..(seconds * rate) as usize)
            .flat_map(|i| {
                let t = i as f32 / rate;
                // A little movement, so it is not a steady sine: 1 kHz with a 3 Hz tremolo.
                let x = amp
                    * (0.8 + 0.2 * (2.0 * std::f32::consts::PI * 3.0 * t).sin())
                    * (2.0 * std::f32::consts::PI * 1000.0 * t).sin();
                std::iter::repeat_n(x, spec.channels())
            })
            .collect()
    }

    fn measure(audio: &[f32], spec: AudioSpec) -> crate::Reading {
        let mut m = Meter::new(spec).unwrap();
        m.add(audio);
        m.reading()
    }

    fn run(n: &mut LoudnessNormalizer, audio: &mut [f32]) {
        for block in audio.chunks_mut(2048) {
            n.process(block);
        }
    }

    #[test]
    fn track_mode_reaches_the_target_from_quiet_and_hot() {
        let spec = AudioSpec::new(48_000, 2).unwrap();
        for level in [-38.0f32, -10.0] {
            let mut audio = tone(level, 20.0, spec);
            let track = measure(&audio, spec).integrated;
            let mut n = LoudnessNormalizer::new(crate::LoudnessNormalize {
                max_gain_db: 24.0,
                ..Default::default()
            });
            n.prepare(spec).unwrap();
            n.set_track_loudness(Some(track));
            n.reset();
            run(&mut n, &mut audio);
            let out = measure(&audio, spec);
            assert!(
                (out.integrated - -16.0).abs() <= 0.5,
                "from {track:.1} LUFS: {:.2} LUFS",
                out.integrated
            );
            assert!(
                out.true_peak <= -1.0 + 0.1,
                "true peak {:.2} dBTP",
                out.true_peak
            );
        }
    }

    #[test]
    fn live_mode_converges_and_holds_through_silence() {
        let spec = AudioSpec::new(48_000, 2).unwrap();
        let mut n = LoudnessNormalizer::new(crate::LoudnessNormalize::default());
        n.prepare(spec).unwrap();
        // 20 s at about -26 LUFS: the gain climbs at 3 dB/s to about +10 dB.
        let mut audio = tone(-24.0, 20.0, spec);
        run(&mut n, &mut audio);
        let settled = &audio[audio.len() / 2..];
        let out = measure(settled, spec);
        assert!(
            (out.integrated - -16.0).abs() <= 0.5,
            "live: {:.2} LUFS",
            out.integrated
        );
        // Ten seconds of silence must not drive the gain to its maximum.
        let before = n.gain_db();
        let mut silence = vec![0.0; 10 * 48_000 * 2];
        run(&mut n, &mut silence);
        assert!(
            (n.gain_db() - before).abs() < 0.5,
            "gain moved in silence: {before:.2} -> {:.2}",
            n.gain_db()
        );
        // A fresh source that starts with silence is not pumped either.
        n.set_track_loudness(None);
        let start = n.gain_db();
        let mut quiet = vec![0.0; 5 * 48_000 * 2];
        run(&mut n, &mut quiet);
        assert_eq!(n.gain_db(), start);
    }

    #[test]
    fn gain_never_steps() {
        // Switching from a quiet to a loud track must ramp, not jump.
        let spec = AudioSpec::new(48_000, 1).unwrap();
        let mut n = LoudnessNormalizer::new(crate::LoudnessNormalize {
            max_gain_db: 24.0,
            ..Default::default()
        });
        n.prepare(spec).unwrap();
        n.set_track_loudness(Some(-40.0));
        n.reset();
        let mut audio = vec![0.01f32; 48_000];
        run(&mut n, &mut audio);
        n.set_track_loudness(Some(-6.0));
        let mut after = vec![0.01f32; 48_000];
        run(&mut n, &mut after);
        // A DC input makes the gain visible sample by sample: no step larger than the ramp's
        // slew (the whole gain range in 100 ms, in dB) allows at the highest gain.
        let steps = after
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        let ramp_frames = TRACK_RAMP_MS / 1000.0 * 48_000.0;
        let slew = (db_to_gain((MAX_CUT_DB + 24.0) / ramp_frames) - 1.0) as f32;
        assert!(
            steps <= 0.01 * db_to_gain(24.0) as f32 * slew * 1.01,
            "largest step {steps}"
        );
        // And the ramp is one: the gain gets there, in about the ramp's time.
        let settled = db_to_gain(crate::LoudnessNormalize::default().target_lufs + 6.0) as f32;
        assert!(
            (after[47_999] - 0.01 * settled).abs() < 1e-6,
            "{}",
            after[47_999]
        );
    }

    #[test]
    fn the_output_does_not_depend_on_block_sizes() {
        // A level change mid-stream, in both modes: the ramps, the live measuring hops and the
        // ceiling must fall on the same frames however the audio is cut into blocks.
        let spec = AudioSpec::new(44_100, 2).unwrap();
        let mut audio = tone(-30.0, 3.0, spec);
        audio.extend(tone(-8.0, 3.0, spec));
        for track in [Some(-30.0), None] {
            let run_in = |sizes: &[usize]| {
                let mut n = LoudnessNormalizer::new(crate::LoudnessNormalize::default());
                n.prepare(spec).unwrap();
                n.set_track_loudness(track);
                let mut out = audio.clone();
                let mut at = 0;
                for &size in sizes.iter().cycle() {
                    if at >= out.len() {
                        break;
                    }
                    // Blocks are cut at the middle too, where the next track starts.
                    let mid = audio.len() / 2;
                    let end = (at + 2 * size).min(if at < mid { mid } else { out.len() });
                    n.process(&mut out[at..end]);
                    at = end;
                    if at == audio.len() / 2 && track.is_some() {
                        n.set_track_loudness(Some(-8.0));
                    }
                }
                out
            };
            let whole = run_in(&[audio.len() / 4]);
            for sizes in [&[1024][..], &[333, 7, 4410, 1], &[64]] {
                let other = run_in(sizes);
                let first = whole.iter().zip(&other).position(|(a, b)| a != b);
                assert_eq!(first, None, "{track:?}, blocks {sizes:?}: first difference");
            }
        }
    }
}
