//! Placing items on the output's sample timeline, with fades and crossfades: plain Rust, no
//! GStreamer, no clock.
//!
//! Every item is a [`Placement`]: the output frame where its audio begins, how many frames of
//! it play, and its fades. The [`Mixer`] sums every voice that sounds in the block it renders,
//! so a crossfade is simply two placements that overlap, one fading out while the other fades
//! in, and a gapless join is one that starts on the frame where the previous one ends, with no
//! fade: the output is then the two sources' samples end to end, unchanged.
//!
//! Gains over a fade of `n` frames: the `k`-th frame of a fade-in (from 0) gets
//! `curve(k / n)`, so the first frame is silent and the fade reaches full level on frame `n`;
//! a fade-out mirrors it, its last frame silent. With [`Curve::EqualPower`],
//! `sin² + cos² = 1`: two uncorrelated items crossfaded that way keep their summed power.

use std::collections::VecDeque;

/// The shape of a fade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Curve {
    /// `sin(t·π/2)`: constant power across a crossfade of unrelated material (the default).
    #[default]
    EqualPower,
    /// `t`: constant amplitude; right for a crossfade between correlated audio.
    Linear,
    /// `(1 − cos(t·π)) / 2`: gentle at both ends.
    SCurve,
}

impl Curve {
    /// The gain at `t` in `0..=1` of a fade-in.
    pub fn gain(self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Curve::EqualPower => (t * std::f64::consts::FRAC_PI_2).sin(),
            Curve::Linear => t,
            Curve::SCurve => (1.0 - (t * std::f64::consts::PI).cos()) / 2.0,
        }
    }
}

/// Where and how one item sounds, in frames of the output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Output frame of the item's first frame (its cue-in).
    pub start: u64,
    /// Frames of the item that play (from cue-in to cue-out, at the output rate).
    pub frames: u64,
    /// Fade-in length, frames (0: starts at full level).
    pub fade_in: u64,
    /// Fade-out length, frames, ending with the item's last frame (0: ends at full level).
    pub fade_out: u64,
    /// The fades' shape.
    pub curve: Curve,
    /// A constant linear gain for the whole item (per-track normalization, a jingle's trim).
    pub gain: f32,
}

impl Placement {
    /// An item at `start` playing `frames` frames at full level, with no fades.
    pub fn new(start: u64, frames: u64) -> Placement {
        Placement {
            start,
            frames,
            fade_in: 0,
            fade_out: 0,
            curve: Curve::EqualPower,
            gain: 1.0,
        }
    }

    /// The output frame just after the item's last.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.frames)
    }

    /// The gain of the item's `k`-th frame (0 = its first), fades and trim included.
    pub fn gain_at(&self, k: u64) -> f32 {
        let mut g = f64::from(self.gain);
        if k < self.fade_in {
            g *= self.curve.gain(k as f64 / self.fade_in as f64);
        }
        let left = self.frames.saturating_sub(k + 1);
        if left < self.fade_out {
            g *= self.curve.gain(left as f64 / self.fade_out as f64);
        }
        g as f32
    }
}

/// Successive values of a fade curve at evenly spaced points: the sines come from rotating a
/// unit vector by the step, exact to some 10⁻¹³ over a block, rather than from a sine call per
/// frame.
struct Walk {
    curve: Curve,
    /// Linear: the current `t`, and its step.
    t: f64,
    dt: f64,
    /// The curve's angle as (sine, cosine), and its step.
    sin: f64,
    cos: f64,
    step_sin: f64,
    step_cos: f64,
}

impl Walk {
    /// Starting at `t`, moving by `dt` a frame.
    fn new(curve: Curve, t: f64, dt: f64) -> Walk {
        // The angle whose sine (EqualPower) or cosine (SCurve) the curve is made of.
        let per_t = match curve {
            Curve::SCurve => std::f64::consts::PI,
            _ => std::f64::consts::FRAC_PI_2,
        };
        let (sin, cos) = (t * per_t).sin_cos();
        let (step_sin, step_cos) = (dt * per_t).sin_cos();
        Walk {
            curve,
            t,
            dt,
            sin,
            cos,
            step_sin,
            step_cos,
        }
    }

    /// The value at the current point, then one step on.
    fn next(&mut self) -> f64 {
        let value = match self.curve {
            Curve::EqualPower => self.sin,
            Curve::Linear => self.t,
            Curve::SCurve => (1.0 - self.cos) / 2.0,
        };
        self.t += self.dt;
        (self.sin, self.cos) = (
            self.sin * self.step_cos + self.cos * self.step_sin,
            self.cos * self.step_cos - self.sin * self.step_sin,
        );
        value.clamp(0.0, 1.0)
    }
}

/// The gains of a placement's frames `first..first + out.len()`: [`Placement::gain_at`] for
/// each, computed a run at a time.
fn fade_gains(p: &Placement, first: u64, out: &mut [f32]) {
    let mut fade_in = (first < p.fade_in).then(|| {
        Walk::new(
            p.curve,
            first as f64 / p.fade_in as f64,
            1.0 / p.fade_in as f64,
        )
    });
    let mut fade_out: Option<Walk> = None;
    for (k, g) in (first..).zip(out.iter_mut()) {
        let mut v = f64::from(p.gain);
        if k < p.fade_in
            && let Some(w) = &mut fade_in
        {
            v *= w.next();
        }
        let left = p.frames.saturating_sub(k + 1);
        if left == 0 && p.fade_out > 0 {
            // The fade's last frame is silent, exactly.
            v = 0.0;
        } else if left < p.fade_out {
            let w = fade_out.get_or_insert_with(|| {
                let n = p.fade_out as f64;
                Walk::new(p.curve, left as f64 / n, -1.0 / n)
            });
            v *= w.next();
        }
        *g = v as f32;
    }
}

/// Where an item's audio comes from: a decoder, a generator, a test signal.
pub trait Source: Send {
    /// Fills `out` (interleaved, the mixer's channel count) from the start with the next
    /// frames, and returns how many frames it wrote; fewer than asked means the source has
    /// ended (a short or truncated file). An error ends the item too.
    fn read(&mut self, out: &mut [f32]) -> Result<usize, String>;
}

/// What happened to an item while rendering.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MixEvent {
    /// The item's first frame was rendered at `frame`.
    Started {
        /// The item's id.
        id: u64,
        /// Output frame.
        frame: u64,
    },
    /// The item's last frame was rendered (it is gone from the mixer).
    Ended {
        /// The item's id.
        id: u64,
        /// Output frame just after its last.
        frame: u64,
    },
    /// The source ran out before the placement's end: the item ends there (the rest of its
    /// placement is silent).
    Short {
        /// The item's id.
        id: u64,
        /// Output frame where its audio stopped.
        frame: u64,
        /// Frames of the placement left without audio.
        missing: u64,
    },
    /// The source failed; the item is dropped.
    Failed {
        /// The item's id.
        id: u64,
        /// Output frame where it failed.
        frame: u64,
        /// What the source said.
        reason: String,
    },
}

struct Voice {
    id: u64,
    placement: Placement,
    source: Box<dyn Source>,
    /// Frames of the item rendered so far.
    done: u64,
    /// Whether the source has ended (the rest is silence).
    dry: bool,
    /// Output frame where the source ended or failed, if it did.
    stopped: Option<u64>,
}

/// Sums the voices that sound in each block of the output.
pub struct Mixer {
    channels: usize,
    position: u64,
    voices: VecDeque<Voice>,
    events: Vec<MixEvent>,
    /// One block of one voice's samples (grown to the largest block asked for).
    scratch: Vec<f32>,
    /// One block of one voice's gains, in its fades.
    gains: Vec<f32>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("channels", &self.channels)
            .field("position", &self.position)
            .field("voices", &self.voices.len())
            .finish_non_exhaustive()
    }
}

impl Mixer {
    /// A mixer for `channels` interleaved channels, at output frame 0.
    pub fn new(channels: usize) -> Mixer {
        Mixer {
            channels: channels.max(1),
            position: 0,
            voices: VecDeque::new(),
            events: Vec::new(),
            scratch: Vec::new(),
            gains: Vec::new(),
        }
    }

    /// The output frame the next block starts at.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Items placed and not yet ended.
    pub fn pending(&self) -> usize {
        self.voices.len()
    }

    /// Output frame at which the last placed item ends (the current position when none is).
    pub fn covered_until(&self) -> u64 {
        self.voices
            .iter()
            .map(|v| v.placement.end())
            .fold(self.position, u64::max)
    }

    /// Adds an item. A placement that starts before the current position loses its frames
    /// that are already past (they are skipped in its source, so what remains stays in time).
    pub fn place(&mut self, id: u64, placement: Placement, source: Box<dyn Source>) {
        let mut voice = Voice {
            id,
            placement,
            source,
            done: 0,
            dry: false,
            stopped: None,
        };
        let late = self
            .position
            .saturating_sub(placement.start)
            .min(placement.frames);
        if late > 0 {
            let mut left = late;
            if self.scratch.len() < 4096 * self.channels {
                self.scratch.resize(4096 * self.channels, 0.0);
            }
            while left > 0 && !voice.dry {
                let n = (left as usize).min(4096);
                match voice.source.read(&mut self.scratch[..n * self.channels]) {
                    Ok(got) if got == n => {}
                    Ok(_) => voice.dry = true,
                    Err(_) => voice.dry = true,
                }
                left -= n as u64;
            }
            voice.done = late;
        }
        self.voices.push_back(voice);
    }

    /// Moves an empty mixer's position forward to `frame` without rendering, as if it had
    /// rendered silence up to there. Returns `false` (and does nothing) when items are placed
    /// or `frame` is behind the position.
    pub fn advance_to(&mut self, frame: u64) -> bool {
        if !self.voices.is_empty() || frame < self.position {
            return false;
        }
        self.position = frame;
        true
    }

    /// The ids of the items placed and not yet over.
    pub fn ids(&self) -> Vec<u64> {
        self.voices.iter().map(|v| v.id).collect()
    }

    /// Whether an item with this id is placed and not yet over.
    pub fn contains(&self, id: u64) -> bool {
        self.voices.iter().any(|v| v.id == id)
    }

    /// Fades item `id` out over `frames` frames from output frame `at` (or from the current
    /// position, if `at` is past), ending it there; `frames == 0` cuts it. An item not started
    /// by then is dropped. An item already due to end sooner, or already inside its own
    /// fade-out at `at`, keeps its own ending (a second fade would jump in level). Returns
    /// whether the item was found.
    pub fn fade_out(&mut self, id: u64, at: u64, frames: u64) -> bool {
        let at = at.max(self.position);
        let Some(voice) = self.voices.iter_mut().find(|v| v.id == id) else {
            return false;
        };
        let p = &mut voice.placement;
        let end = at.saturating_add(frames);
        let fading_from = p.end().saturating_sub(p.fade_out);
        if end >= p.end() || (p.fade_out > 0 && at >= fading_from) {
            return true;
        }
        if end <= p.start {
            p.frames = 0;
            voice.done = 0;
            return true;
        }
        p.frames = end - p.start;
        p.fade_out = frames.min(p.frames);
        true
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<MixEvent> {
        std::mem::take(&mut self.events)
    }

    /// Renders the next `out.len() / channels` frames: every voice that sounds in them, summed.
    pub fn render(&mut self, out: &mut [f32]) {
        let ch = self.channels;
        let frames = (out.len() / ch) as u64;
        out.fill(0.0);
        let block_start = self.position;
        let block_end = block_start + frames;
        if self.scratch.len() < out.len() {
            self.scratch.resize(out.len(), 0.0);
        }
        for voice in &mut self.voices {
            let p = voice.placement;
            let from = p.start.saturating_add(voice.done).max(block_start);
            let to = p.end().min(block_end);
            if from >= to {
                continue;
            }
            if voice.done == 0 {
                self.events.push(MixEvent::Started {
                    id: voice.id,
                    frame: from,
                });
            }
            let n = (to - from) as usize;
            let offset = (from - block_start) as usize;
            let buf = &mut self.scratch[..n * ch];
            let got = if voice.dry {
                0
            } else {
                match voice.source.read(buf) {
                    Ok(got) => got.min(n),
                    Err(reason) => {
                        self.events.push(MixEvent::Failed {
                            id: voice.id,
                            frame: from,
                            reason,
                        });
                        voice.dry = true;
                        voice.done = p.frames;
                        voice.stopped = Some(from);
                        continue;
                    }
                }
            };
            if got < n && !voice.dry {
                voice.dry = true;
                self.events.push(MixEvent::Short {
                    id: voice.id,
                    frame: from + got as u64,
                    missing: p.frames - (voice.done + got as u64),
                });
            }
            let dst = &mut out[offset * ch..(offset + got) * ch];
            let src = &buf[..got * ch];
            // Outside its fades an item's gain is constant: one multiply per sample, or none.
            let steady = voice.done >= p.fade_in
                && p.frames.saturating_sub(voice.done + got as u64) >= p.fade_out;
            if steady && p.gain == 1.0 {
                for (o, x) in dst.iter_mut().zip(src) {
                    *o += x;
                }
            } else if steady {
                for (o, x) in dst.iter_mut().zip(src) {
                    *o += p.gain * x;
                }
            } else {
                if self.gains.len() < got {
                    self.gains.resize(got, 0.0);
                }
                let gains = &mut self.gains[..got];
                fade_gains(&p, voice.done, gains);
                for ((o, x), g) in dst
                    .chunks_exact_mut(ch)
                    .zip(src.chunks_exact(ch))
                    .zip(gains)
                {
                    for (o, x) in o.iter_mut().zip(x) {
                        *o += *g * x;
                    }
                }
            }
            voice.done += n as u64;
            if voice.dry {
                // Nothing more will sound: the item is over (an open-ended placement, one of
                // unknown length, ends here).
                voice.stopped.get_or_insert(from + got as u64);
                voice.done = p.frames;
            }
        }
        let events = &mut self.events;
        self.voices.retain(|v| {
            let over = v.done >= v.placement.frames;
            if over {
                events.push(MixEvent::Ended {
                    id: v.id,
                    frame: v.stopped.unwrap_or(v.placement.end()),
                });
            }
            !over
        });
        self.position = block_end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source of a constant value per channel, `len` frames long.
    struct Constant {
        value: f32,
        left: usize,
    }

    impl Source for Constant {
        fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
            let n = (out.len() / 2).min(self.left);
            out[..n * 2].fill(self.value);
            self.left -= n;
            Ok(n)
        }
    }

    /// A source counting frames: frame k reads k (both channels).
    struct Ramp {
        next: usize,
        len: usize,
    }

    impl Source for Ramp {
        fn read(&mut self, out: &mut [f32]) -> Result<usize, String> {
            let n = (out.len() / 2).min(self.len - self.next);
            for (i, f) in out[..n * 2].chunks_exact_mut(2).enumerate() {
                f.fill((self.next + i) as f32);
            }
            self.next += n;
            Ok(n)
        }
    }

    fn render_all(m: &mut Mixer, frames: usize, block: usize) -> Vec<f32> {
        let mut out = vec![0.0; frames * 2];
        for b in out.chunks_mut(block * 2) {
            m.render(b);
        }
        out
    }

    #[test]
    fn run_gains_match_the_gain_of_each_frame() {
        for curve in [Curve::EqualPower, Curve::Linear, Curve::SCurve] {
            for (frames, fade_in, fade_out) in
                [(10_000, 3_000, 4_000), (5_000, 4_000, 4_000), (900, 0, 899)]
            {
                let p = Placement {
                    fade_in,
                    fade_out,
                    curve,
                    gain: 0.7,
                    ..Placement::new(0, frames)
                };
                let runs = [(0, 4096), (1_234, 4_000), (2_999, 3), (frames - 700, 700)];
                for (first, len) in runs.into_iter().filter(|&(first, _)| first < frames) {
                    let mut run = vec![0f32; len.min(frames - first) as usize];
                    fade_gains(&p, first, &mut run);
                    for (k, g) in (first..).zip(&run) {
                        let want = p.gain_at(k);
                        assert!(
                            (g - want).abs() <= 1e-6,
                            "{curve:?} {frames}/{fade_in}/{fade_out}, frame {k}: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_item_starts_on_its_frame_whatever_the_block_size() {
        for block in [1, 7, 64, 1000, 1024] {
            let mut m = Mixer::new(2);
            m.place(
                1,
                Placement::new(1234, 500),
                Box::new(Constant {
                    value: 0.5,
                    left: 500,
                }),
            );
            let out = render_all(&mut m, 3000, block);
            let first = out.iter().position(|&x| x != 0.0).unwrap() / 2;
            let last = out.iter().rposition(|&x| x != 0.0).unwrap() / 2;
            assert_eq!((first, last), (1234, 1733), "block {block}");
            let events = m.take_events();
            assert_eq!(events[0], MixEvent::Started { id: 1, frame: 1234 });
            assert_eq!(
                *events.last().unwrap(),
                MixEvent::Ended { id: 1, frame: 1734 }
            );
        }
    }

    #[test]
    fn back_to_back_items_join_without_a_seam() {
        let mut m = Mixer::new(2);
        m.place(
            1,
            Placement::new(0, 1000),
            Box::new(Ramp { next: 0, len: 1000 }),
        );
        m.place(
            2,
            Placement::new(1000, 1000),
            Box::new(Ramp {
                next: 1000,
                len: 2000,
            }),
        );
        let out = render_all(&mut m, 2000, 333);
        for (k, f) in out.chunks_exact(2).enumerate() {
            assert_eq!(f, [k as f32, k as f32], "frame {k}");
        }
    }

    #[test]
    fn an_equal_power_crossfade_keeps_the_power_and_does_not_step() {
        let mut m = Mixer::new(2);
        let fade = 4800;
        let a = Placement {
            fade_out: fade,
            ..Placement::new(0, 10_000)
        };
        let b = Placement {
            fade_in: fade,
            ..Placement::new(10_000 - fade, 10_000)
        };
        m.place(
            1,
            a,
            Box::new(Constant {
                value: 1.0,
                left: 10_000,
            }),
        );
        m.place(
            2,
            b,
            Box::new(Constant {
                value: 1.0,
                left: 10_000,
            }),
        );
        let out = render_all(&mut m, 15_200, 1024);
        for k in (10_000 - fade as usize)..10_000 {
            let (ga, gb) = (a.gain_at(k as u64), b.gain_at(k as u64 - (10_000 - fade)));
            assert!(
                (ga * ga + gb * gb - 1.0).abs() < 1e-3,
                "frame {k}: {ga} {gb}"
            );
            assert!((out[2 * k] - (ga + gb)).abs() < 1e-6);
        }
        // The largest step anywhere is a fade's, not a jump.
        let step = out
            .chunks_exact(2)
            .map(|f| f[0])
            .collect::<Vec<_>>()
            .windows(2)
            .fold(0f32, |m, w| m.max((w[1] - w[0]).abs()));
        assert!(
            step < 2.0 * std::f32::consts::FRAC_PI_2 / fade as f32,
            "{step}"
        );
    }

    #[test]
    fn fades_reach_silence_and_full_level_on_their_frames() {
        for curve in [Curve::EqualPower, Curve::Linear, Curve::SCurve] {
            let p = Placement {
                fade_in: 100,
                fade_out: 50,
                curve,
                ..Placement::new(0, 1000)
            };
            assert_eq!(p.gain_at(0), 0.0);
            assert_eq!(p.gain_at(100), 1.0);
            assert_eq!(p.gain_at(949), 1.0);
            assert_eq!(p.gain_at(999), 0.0);
            assert!((1..100).all(|k| p.gain_at(k) > p.gain_at(k - 1)));
            assert!((951..1000).all(|k| p.gain_at(k) < p.gain_at(k - 1)));
        }
    }

    #[test]
    fn a_short_source_leaves_silence_and_says_so_and_the_next_item_is_on_time() {
        let mut m = Mixer::new(2);
        m.place(
            1,
            Placement::new(0, 1000),
            Box::new(Constant {
                value: 0.5,
                left: 600,
            }),
        );
        m.place(
            2,
            Placement::new(1000, 100),
            Box::new(Constant {
                value: 0.25,
                left: 100,
            }),
        );
        let out = render_all(&mut m, 1100, 256);
        assert!(out[..1200].iter().all(|&x| x == 0.5));
        assert!(out[1200..2000].iter().all(|&x| x == 0.0));
        assert!(out[2000..].iter().all(|&x| x == 0.25));
        let events = m.take_events();
        assert!(
            events.contains(&MixEvent::Short {
                id: 1,
                frame: 600,
                missing: 400
            }),
            "{events:?}"
        );
        assert!(events.contains(&MixEvent::Started { id: 2, frame: 1000 }));
    }

    #[test]
    fn a_failing_source_is_dropped_and_reported() {
        struct Broken;
        impl Source for Broken {
            fn read(&mut self, _: &mut [f32]) -> Result<usize, String> {
                Err("corrupt frame".into())
            }
        }
        let mut m = Mixer::new(2);
        m.place(7, Placement::new(10, 100), Box::new(Broken));
        m.place(
            8,
            Placement::new(110, 10),
            Box::new(Constant {
                value: 1.0,
                left: 10,
            }),
        );
        let out = render_all(&mut m, 200, 64);
        assert!(out[..220].iter().all(|&x| x == 0.0));
        assert!(out[220..240].iter().all(|&x| x == 1.0));
        let events = m.take_events();
        assert!(events.iter().any(|e| matches!(e, MixEvent::Failed { id: 7, frame: 10, reason } if reason == "corrupt frame")));
    }

    #[test]
    fn a_late_placement_skips_what_is_past_and_stays_in_time() {
        let mut m = Mixer::new(2);
        let mut out = vec![0.0; 2 * 500];
        m.render(&mut out);
        m.place(
            1,
            Placement::new(300, 1000),
            Box::new(Ramp { next: 0, len: 1000 }),
        );
        let mut out = vec![0.0; 2 * 10];
        m.render(&mut out);
        assert_eq!(out[0], 200.0, "frame 500 plays the item's frame 200");
    }

    #[test]
    fn fade_out_ends_an_item_smoothly_where_asked() {
        let mut m = Mixer::new(2);
        m.place(
            1,
            Placement::new(0, 10_000),
            Box::new(Constant {
                value: 1.0,
                left: 10_000,
            }),
        );
        m.place(
            2,
            Placement::new(5_000, 100),
            Box::new(Constant {
                value: 1.0,
                left: 100,
            }),
        );
        let mut out = vec![0.0; 2 * 1000];
        m.render(&mut out);
        assert!(m.fade_out(1, 1_500, 400));
        // Item 2 has not started: a cut drops it.
        assert!(m.fade_out(2, 0, 0));
        assert!(!m.fade_out(99, 0, 10));
        let out: Vec<f32> = render_all(&mut m, 9_000, 256)
            .into_iter()
            .step_by(2)
            .collect();
        assert!(
            out[..500].iter().all(|&x| x == 1.0),
            "full level until the fade"
        );
        let steps = out.windows(2).map(|w| (w[1] - w[0]).abs());
        assert!(steps.fold(0.0f32, f32::max) < 0.01, "no step in level");
        assert!(
            out[898] < 0.01 && out[898] > 0.0 && out[899] == 0.0,
            "the fade reaches silence on its last frame"
        );
        assert!(
            out[900..].iter().all(|&x| x == 0.0),
            "over at frame 1900, item 2 dropped"
        );
        let ended: Vec<_> = m
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                MixEvent::Ended { id, frame } => Some((id, frame)),
                _ => None,
            })
            .collect();
        assert!(ended.contains(&(1, 1_900)), "{ended:?}");
        assert!(!m.contains(1) && !m.contains(2));
    }

    #[test]
    fn a_second_fade_inside_a_fade_out_keeps_the_first() {
        let mut m = Mixer::new(2);
        let p = Placement {
            fade_out: 1000,
            ..Placement::new(0, 2000)
        };
        m.place(
            1,
            p,
            Box::new(Constant {
                value: 1.0,
                left: 2000,
            }),
        );
        let mut out = vec![0.0; 2 * 1500];
        m.render(&mut out);
        assert!(m.fade_out(1, 1500, 10));
        let out: Vec<f32> = render_all(&mut m, 600, 100)
            .into_iter()
            .step_by(2)
            .collect();
        let steps = out.windows(2).map(|w| (w[1] - w[0]).abs());
        assert!(steps.fold(0.0f32, f32::max) < 0.01);
        assert!(out[499] < 0.01 && out[500] == 0.0);
    }

    #[test]
    fn a_trimmed_item_has_its_gain_in_and_out_of_its_fades() {
        for block in [3, 64, 1024] {
            let mut m = Mixer::new(2);
            let p = Placement {
                fade_in: 100,
                fade_out: 50,
                gain: 0.5,
                ..Placement::new(10, 1000)
            };
            m.place(
                1,
                p,
                Box::new(Constant {
                    value: 1.0,
                    left: 1000,
                }),
            );
            let out: Vec<f32> = render_all(&mut m, 1100, block)
                .into_iter()
                .step_by(2)
                .collect();
            for (k, x) in out[10..1010].iter().enumerate() {
                assert_eq!(*x, p.gain_at(k as u64), "block {block}, frame {k}");
            }
            assert!(out[200..900].iter().all(|&x| x == 0.5));
        }
    }
}
