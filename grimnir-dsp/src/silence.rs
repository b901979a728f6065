//! Dead-air detection: reports when a stream has been silent too long, and when audio returns.
//!
//! The level is measured per 50 ms window ([`SilenceWatch::WINDOW_MS`]) as RMS, per channel,
//! and the loudest channel's RMS is the window's level (one live channel is enough to be on
//! air). RMS rather than peak so that a noise floor counts by its power, as a meter shows it:
//! hiss at −45 dBFS RMS has peaks ten dB higher, yet it is dead air under a −40 dB threshold.
//! Samples pass through [`sanitize`](crate::sanitize) first, so NaN and infinite samples count
//! as silence, never as audio.
//!
//! A window is *quiet* when its level is below `threshold_db`. The state machine:
//!
//! - **Listening.** A run of quiet windows is silence; it begins just after the last sample at
//!   or above the threshold in the loud window before it (or at frame 0), which places its
//!   start to the sample rather than to the window. When the run has lasted `duration_sec`,
//!   [`SilenceEvent::Started`] is queued at the end of that window, and the watch is silent.
//!   One loud window ends the run: silence must be continuous.
//! - **Silent.** Audio has returned once loud windows have followed each other for 200 ms
//!   ([`SilenceWatch::CONFIRM_MS`]), counted from the first sample at or above the threshold;
//!   a shorter burst (a click, a cough in the studio) does not end the silence, so the watch
//!   does not flap between states. Then [`SilenceEvent::Ended`] is queued, dated from that
//!   first sample.
//!
//! Frames count from [`Processor::prepare`] or [`Processor::reset`]. Events wait in a queue of
//! [`SilenceWatch::EVENT_CAPACITY`] allocated by `prepare`; when nobody takes them and it
//! fills, the oldest is dropped and counted ([`SilenceWatch::dropped_events`]), so `process`
//! never allocates.

use crate::processor::{Processor, sanitize};
use crate::{AudioSpec, DspError, MAX_CHANNELS, db_to_gain};

/// A change of the silence state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SilenceEvent {
    /// Silence has lasted `duration_sec`.
    Started {
        /// The frame at which it was detected: the end of the window in which the silence
        /// reached `duration_sec` (at most one window after that moment).
        at_frame: u64,
    },
    /// Audio has returned (and stayed for [`SilenceWatch::CONFIRM_MS`]).
    Ended {
        /// The first frame of the returning audio. The event is queued
        /// [`SilenceWatch::CONFIRM_MS`] later.
        at_frame: u64,
        /// How long the silence lasted, frames: from its start to `at_frame`.
        silent_frames: u64,
    },
}

/// A silence (dead-air) detector. Configure with [`crate::SilenceDetector`] parameters; what to
/// do about a silence (its `action`) is for the caller, which takes the events.
///
/// Audio passes through [`Processor::process`] unchanged.
///
/// ```
/// use grimnir_dsp::{AudioSpec, Processor, SilenceDetector, SilenceEvent, SilenceWatch};
///
/// let params = SilenceDetector { duration_sec: 5.0, ..SilenceDetector::default() };
/// let mut watch = SilenceWatch::new(params);
/// watch.prepare(AudioSpec::new(48_000, 2)?)?;
/// // Six seconds of dead air, a block of 10 ms at a time.
/// let mut block = [0.0_f32; 2 * 480];
/// for _ in 0..600 {
///     watch.process(&mut block);
/// }
/// assert!(watch.is_silent());
/// assert_eq!(watch.take_event(), Some(SilenceEvent::Started { at_frame: 5 * 48_000 }));
/// assert_eq!(watch.take_event(), None);
/// # Ok::<(), grimnir_dsp::DspError>(())
/// ```
#[derive(Debug)]
pub struct SilenceWatch {
    params: crate::SilenceDetector,
    spec: Option<AudioSpec>,
    /// Linear threshold, and its square for comparing mean squares.
    threshold: f32,
    threshold_sq: f64,
    duration_frames: u64,
    window_frames: usize,
    confirm_frames: u64,
    /// Frames seen since prepare or reset.
    frame: u64,
    /// The window being measured: frames in it so far, and per-channel sums of squares.
    win_len: usize,
    win_sum_sq: [f64; MAX_CHANNELS],
    /// First and last frame in this window with a sample at or above the threshold.
    win_first_loud: Option<u64>,
    win_last_loud: Option<u64>,
    /// The frame after the last loud sample of the last loud window.
    loud_until: u64,
    /// Start of the current run of quiet windows, while listening.
    quiet_since: Option<u64>,
    /// Whether a silence has been reported and audio has not yet returned.
    silent: bool,
    /// Start of the reported silence.
    silence_start: u64,
    /// Start of the current run of loud windows, while silent.
    loud_since: Option<u64>,
    /// Ring of pending events.
    events: Vec<SilenceEvent>,
    events_head: usize,
    events_len: usize,
    dropped: u64,
}

impl SilenceWatch {
    /// Length of a measurement window, ms.
    pub const WINDOW_MS: f64 = 50.0;
    /// How long audio must stay above the threshold to end a silence, ms.
    pub const CONFIRM_MS: f64 = 200.0;
    /// Events the queue holds before the oldest is dropped.
    pub const EVENT_CAPACITY: usize = 16;

    /// A silence watch with these parameters; call [`Processor::prepare`] before use.
    pub fn new(params: crate::SilenceDetector) -> SilenceWatch {
        let mut watch = SilenceWatch {
            params,
            spec: None,
            threshold: 0.0,
            threshold_sq: 0.0,
            duration_frames: 0,
            window_frames: 1,
            confirm_frames: 0,
            frame: 0,
            win_len: 0,
            win_sum_sq: [0.0; MAX_CHANNELS],
            win_first_loud: None,
            win_last_loud: None,
            loud_until: 0,
            quiet_since: None,
            silent: false,
            silence_start: 0,
            loud_since: None,
            events: Vec::new(),
            events_head: 0,
            events_len: 0,
            dropped: 0,
        };
        watch.set_params(params);
        watch
    }

    /// The parameters in use.
    pub fn params(&self) -> crate::SilenceDetector {
        self.params
    }

    /// Takes new parameters without losing the measurement: a silence already under way
    /// counts toward the new `duration_sec` (if it is already longer, `Started` comes at the end
    /// of the current window), and the new threshold applies from the current window on.
    /// Does not allocate.
    ///
    /// Non-finite values fall back to the defaults of [`crate::SilenceDetector`]; a negative
    /// duration is taken as zero.
    pub fn set_params(&mut self, params: crate::SilenceDetector) {
        let defaults = crate::SilenceDetector::default();
        let finite_or = |v: f64, d: f64| if v.is_finite() { v } else { d };
        self.params = crate::SilenceDetector {
            threshold_db: finite_or(params.threshold_db, defaults.threshold_db),
            duration_sec: finite_or(params.duration_sec, defaults.duration_sec).max(0.0),
            action: params.action,
        };
        self.threshold = db_to_gain(self.params.threshold_db) as f32;
        self.threshold_sq = f64::from(self.threshold) * f64::from(self.threshold);
        if let Some(spec) = self.spec {
            let rate = f64::from(spec.sample_rate());
            self.duration_frames = (self.params.duration_sec * rate).round() as u64;
        }
    }

    /// Whether the stream is in a reported silence: after [`SilenceEvent::Started`] and until
    /// [`SilenceEvent::Ended`].
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// The oldest event not yet taken.
    pub fn take_event(&mut self) -> Option<SilenceEvent> {
        if self.events_len == 0 {
            return None;
        }
        let event = self.events[self.events_head];
        self.events_head = (self.events_head + 1) % self.events.len();
        self.events_len -= 1;
        Some(event)
    }

    /// Events dropped, oldest first, because the queue was full (since prepare or reset).
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    fn push(&mut self, event: SilenceEvent) {
        let cap = self.events.len();
        if cap == 0 {
            self.dropped += 1;
            return;
        }
        if self.events_len == cap {
            self.events_head = (self.events_head + 1) % cap;
            self.events_len -= 1;
            self.dropped += 1;
        }
        self.events[(self.events_head + self.events_len) % cap] = event;
        self.events_len += 1;
    }

    /// Judges the window that ends before frame `self.frame`, and starts the next.
    fn end_window(&mut self, channels: usize) {
        let n = self.win_len.max(1) as f64;
        let level_sq = self.win_sum_sq[..channels]
            .iter()
            .fold(0f64, |m, s| m.max(s / n));
        let window_start = self.frame - self.win_len as u64;
        let loud = level_sq >= self.threshold_sq;
        if self.silent {
            if loud {
                let since = *self
                    .loud_since
                    .get_or_insert(self.win_first_loud.unwrap_or(window_start));
                if self.frame - since >= self.confirm_frames {
                    self.silent = false;
                    self.loud_since = None;
                    self.quiet_since = None;
                    self.loud_until = self.win_last_loud.map_or(self.frame, |f| f + 1);
                    self.push(SilenceEvent::Ended {
                        at_frame: since,
                        silent_frames: since.saturating_sub(self.silence_start),
                    });
                }
            } else {
                self.loud_since = None;
            }
        } else if loud {
            self.quiet_since = None;
            self.loud_until = self.win_last_loud.map_or(self.frame, |f| f + 1);
        } else {
            let since = *self.quiet_since.get_or_insert(self.loud_until);
            if self.frame - since >= self.duration_frames {
                self.silent = true;
                self.silence_start = since;
                self.loud_since = None;
                self.push(SilenceEvent::Started {
                    at_frame: self.frame,
                });
            }
        }
        self.win_len = 0;
        self.win_sum_sq = [0.0; MAX_CHANNELS];
        self.win_first_loud = None;
        self.win_last_loud = None;
    }
}

impl Processor for SilenceWatch {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        self.spec = Some(spec);
        self.window_frames = spec.frames_in_ms(Self::WINDOW_MS);
        self.confirm_frames = spec.frames_in_ms(Self::CONFIRM_MS) as u64;
        self.set_params(self.params);
        if self.events.len() != Self::EVENT_CAPACITY {
            self.events = vec![SilenceEvent::Started { at_frame: 0 }; Self::EVENT_CAPACITY];
        }
        self.reset();
        Ok(())
    }

    /// Clears the measurement, the state, the frame count and the pending events (their frames
    /// would be of the old count): take the events first if they matter.
    fn reset(&mut self) {
        self.frame = 0;
        self.win_len = 0;
        self.win_sum_sq = [0.0; MAX_CHANNELS];
        self.win_first_loud = None;
        self.win_last_loud = None;
        self.loud_until = 0;
        self.quiet_since = None;
        self.silent = false;
        self.silence_start = 0;
        self.loud_since = None;
        self.events_head = 0;
        self.events_len = 0;
        self.dropped = 0;
    }

    /// Measures the block; the audio itself is not changed.
    fn process(&mut self, block: &mut [f32]) {
        let Some(spec) = self.spec else { return };
        let ch = spec.channels();
        let whole = block.len() - block.len() % ch;
        let mut rest = &block[..whole];
        while !rest.is_empty() {
            // Up to the end of the current window.
            let frames = (self.window_frames - self.win_len).min(rest.len() / ch);
            let (now, later) = rest.split_at(frames * ch);
            for (i, frame) in now.chunks_exact(ch).enumerate() {
                let mut peak = 0f32;
                for (sum, x) in self.win_sum_sq.iter_mut().zip(frame) {
                    let x = sanitize(*x);
                    *sum += f64::from(x) * f64::from(x);
                    peak = peak.max(x.abs());
                }
                if peak > 0.0 && peak >= self.threshold {
                    let at = self.frame + i as u64;
                    self.win_first_loud.get_or_insert(at);
                    self.win_last_loud = Some(at);
                }
            }
            self.frame += frames as u64;
            self.win_len += frames;
            if self.win_len >= self.window_frames {
                self.end_window(ch);
            }
            rest = later;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(threshold_db: f64, duration_sec: f64, spec: AudioSpec) -> SilenceWatch {
        let mut w = SilenceWatch::new(crate::SilenceDetector {
            threshold_db,
            duration_sec,
            action: crate::SilenceAction::Notify,
        });
        w.prepare(spec).unwrap();
        w
    }

    fn stereo() -> AudioSpec {
        AudioSpec::new(48_000, 2).unwrap()
    }

    fn frames(seconds: f64, spec: AudioSpec) -> usize {
        (seconds * f64::from(spec.sample_rate())).round() as usize
    }

    /// A 1 kHz sine with peaks at `db` dBFS on every channel.
    fn tone(db: f64, seconds: f64, spec: AudioSpec) -> Vec<f32> {
        let amp = db_to_gain(db);
        let rate = f64::from(spec.sample_rate());
        (0..frames(seconds, spec))
            .flat_map(|i| {
                let x = (amp * (std::f64::consts::TAU * 1000.0 * i as f64 / rate).sin()) as f32;
                std::iter::repeat_n(x, spec.channels())
            })
            .collect()
    }

    fn quiet(seconds: f64, spec: AudioSpec) -> Vec<f32> {
        vec![0.0; frames(seconds, spec) * spec.channels()]
    }

    /// Gaussian white noise (xorshift64*, seeded; Box–Muller) with an RMS of `db` dBFS: its
    /// peaks stand some 10 dB above its RMS, so a peak measurement would call it audio.
    fn noise(db: f64, seconds: f64, spec: AudioSpec) -> Vec<f32> {
        let sigma = db_to_gain(db);
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            ((s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..frames(seconds, spec) * spec.channels())
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                (sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    }

    /// Runs `audio` through in blocks of 333 frames (not a multiple of the window), checking
    /// it passes unchanged; all events.
    fn run(w: &mut SilenceWatch, audio: &[f32]) -> Vec<SilenceEvent> {
        let ch = w.spec.unwrap().channels();
        let mut out = audio.to_vec();
        let mut events = Vec::new();
        for block in out.chunks_mut(333 * ch) {
            w.process(block);
            while let Some(e) = w.take_event() {
                events.push(e);
            }
        }
        assert!(
            out.iter()
                .zip(audio)
                .all(|(o, i)| o.to_bits() == i.to_bits())
        );
        events
    }

    fn concat(parts: &[Vec<f32>]) -> Vec<f32> {
        parts.concat()
    }

    #[test]
    fn a_long_silence_starts_and_ends_once() {
        // Aligned with the windows (48 kHz) and not (44.1 kHz, odd lengths).
        for (spec, lead) in [
            (stereo(), 2.0),
            (AudioSpec::new(44_100, 1).unwrap(), 2.013_7),
        ] {
            let mut w = watch(-40.0, 5.0, spec);
            let audio = concat(&[
                tone(-20.0, lead, spec),
                quiet(6.0, spec),
                tone(-20.0, 2.0, spec),
            ]);
            let events = run(&mut w, &audio);
            let rate = f64::from(spec.sample_rate());
            let window = spec.frames_in_ms(SilenceWatch::WINDOW_MS) as i64;
            let silence_at = frames(lead, spec) as i64;
            let reached = silence_at + frames(5.0, spec) as i64;
            let back = silence_at + frames(6.0, spec) as i64;
            let [
                SilenceEvent::Started { at_frame: started },
                SilenceEvent::Ended {
                    at_frame: ended,
                    silent_frames,
                },
            ] = events[..]
            else {
                panic!("{events:?}");
            };
            let (started, ended, silent_frames) =
                (started as i64, ended as i64, silent_frames as i64);
            assert!(
                (started - reached).abs() <= window,
                "{rate} Hz: Started at {started}, silence reached 5 s at {reached}"
            );
            assert!(
                (ended - back).abs() <= window,
                "{rate} Hz: Ended at {ended}, audio back at {back}"
            );
            assert!(
                (silent_frames - (back - silence_at)).abs() <= window,
                "{rate} Hz: {silent_frames} silent frames"
            );
            assert!(!w.is_silent());
        }
    }

    #[test]
    fn is_silent_between_the_events() {
        let spec = stereo();
        let mut w = watch(-40.0, 5.0, spec);
        run(&mut w, &concat(&[tone(-20.0, 1.0, spec), quiet(4.9, spec)]));
        assert!(!w.is_silent(), "4.9 s is not yet 5 s");
        assert_eq!(run(&mut w, &quiet(0.2, spec)).len(), 1);
        assert!(w.is_silent());
        // Audio for less than the confirmation: still silent.
        assert!(run(&mut w, &tone(-20.0, 0.15, spec)).is_empty());
        assert!(w.is_silent());
    }

    #[test]
    fn a_silence_shorter_than_the_duration_gives_no_event() {
        let spec = stereo();
        let mut w = watch(-40.0, 5.0, spec);
        let audio = concat(&[
            tone(-20.0, 2.0, spec),
            quiet(4.8, spec),
            tone(-20.0, 2.0, spec),
            quiet(4.8, spec),
        ]);
        assert_eq!(run(&mut w, &audio), []);
    }

    #[test]
    fn a_noise_floor_is_silence_by_its_rms() {
        let spec = stereo();
        let hiss = noise(-45.0, 7.0, spec);
        let peak = hiss.iter().fold(0f32, |m, x| m.max(x.abs()));
        // Its peaks (about -30 dBFS) are over the threshold: a peak reading would call it audio.
        assert!(peak > 0.02, "peaks of {peak}");
        let mut w = watch(-40.0, 5.0, spec);
        let events = run(&mut w, &hiss);
        assert!(
            matches!(events[..], [SilenceEvent::Started { .. }]),
            "{events:?}"
        );
        let mut w = watch(-40.0, 5.0, spec);
        assert_eq!(run(&mut w, &noise(-35.0, 7.0, spec)), []);
    }

    #[test]
    fn nan_and_infinity_count_as_silence() {
        let spec = stereo();
        let mut w = watch(-40.0, 5.0, spec);
        // 3 s of NaN, then 3 s of infinities (which would be loud if taken as they are).
        let mut bad = quiet(6.0, spec);
        let (nan, inf) = bad.split_at_mut(frames(3.0, spec) * spec.channels());
        nan.fill(f32::NAN);
        for (i, x) in inf.iter_mut().enumerate() {
            *x = if i % 2 == 0 {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            };
        }
        let events = run(&mut w, &concat(&[tone(-20.0, 2.0, spec), bad]));
        assert!(
            matches!(events[..], [SilenceEvent::Started { .. }]),
            "{events:?}"
        );
    }

    #[test]
    fn short_bursts_do_not_end_a_silence() {
        let spec = stereo();
        let mut w = watch(-40.0, 1.0, spec);
        let mut audio = quiet(1.5, spec);
        for _ in 0..10 {
            audio.extend(tone(-20.0, 0.1, spec));
            audio.extend(quiet(0.1, spec));
        }
        let events = run(&mut w, &audio);
        assert!(
            matches!(events[..], [SilenceEvent::Started { .. }]),
            "{events:?}"
        );
        assert!(w.is_silent());
    }

    #[test]
    fn new_parameters_apply_to_the_ongoing_measurement() {
        let spec = stereo();
        let mut w = watch(-40.0, 5.0, spec);
        run(&mut w, &concat(&[tone(-20.0, 1.0, spec), quiet(4.0, spec)]));
        // 4 s of silence so far; a 3 s duration fires at once, counting from 1 s.
        w.set_params(crate::SilenceDetector {
            duration_sec: 3.0,
            ..w.params()
        });
        let events = run(&mut w, &quiet(0.1, spec));
        let window = spec.frames_in_ms(SilenceWatch::WINDOW_MS) as u64;
        assert_eq!(
            events,
            [SilenceEvent::Started {
                at_frame: frames(5.0, spec) as u64 + window
            }]
        );
        // A lower threshold: the -45 dBFS noise now counts as audio, after the confirmation.
        w.set_params(crate::SilenceDetector {
            threshold_db: -50.0,
            ..w.params()
        });
        let events = run(&mut w, &noise(-45.0, 0.5, spec));
        assert!(
            matches!(
                events[..],
                [SilenceEvent::Ended { at_frame, silent_frames }]
                    if (0..10).contains(&(at_frame - frames(5.1, spec) as u64))
                        && silent_frames == at_frame - frames(1.0, spec) as u64
            ),
            "{events:?}"
        );
    }

    #[test]
    fn the_event_queue_is_bounded_and_counts_what_it_drops() {
        let spec = AudioSpec::new(8_000, 1).unwrap();
        let mut w = watch(-40.0, 0.1, spec);
        let (ptr, cap) = (w.events.as_ptr(), w.events.capacity());
        // 20 silences of 0.3 s, each followed by 0.3 s of tone: 40 events, nobody taking them.
        for _ in 0..20 {
            let mut audio = concat(&[quiet(0.3, spec), tone(-20.0, 0.3, spec)]);
            w.process(&mut audio);
        }
        assert_eq!((w.events.as_ptr(), w.events.capacity()), (ptr, cap));
        assert_eq!(w.dropped_events(), 40 - SilenceWatch::EVENT_CAPACITY as u64);
        let events: Vec<_> = std::iter::from_fn(|| w.take_event()).collect();
        assert_eq!(events.len(), SilenceWatch::EVENT_CAPACITY);
        // The newest were kept: the last event is the last return of audio, at 20 × 0.6 - 0.3 s
        // (the tone's first sample is 0, its second the first above the threshold).
        assert!(
            matches!(
                events.last(),
                Some(SilenceEvent::Ended { at_frame, .. })
                    if *at_frame == frames(11.7, spec) as u64 + 1
            ),
            "{events:?}"
        );
        assert!(events.windows(2).all(|p| matches!(
            p,
            [SilenceEvent::Started { .. }, SilenceEvent::Ended { .. }]
        ) || matches!(
            p,
            [SilenceEvent::Ended { .. }, SilenceEvent::Started { .. }]
        )));
        w.reset();
        assert_eq!((w.take_event(), w.dropped_events()), (None, 0));
    }

    #[test]
    fn unprepared_or_empty_blocks_are_harmless() {
        let mut w = SilenceWatch::new(crate::SilenceDetector::default());
        let mut audio = vec![f32::NAN; 4];
        w.process(&mut audio);
        assert!(audio.iter().all(|x| x.is_nan()));
        assert_eq!(w.take_event(), None);
        let mut w = watch(-40.0, 5.0, stereo());
        w.process(&mut []);
        w.process(&mut [0.5]);
        assert_eq!(w.frame, 0);
    }
}
