//! Planning state and the filling of frames: clock hours, shows and hours without a clock.
//!
//! The timeline is built in time order, one *frame* at a time. A frame is a stretch that one
//! clock hour or one show owns; frames end at hard boundaries (the top of the hour, a show's
//! start or end, a DST change), so no entry ever crosses a frame boundary. Within a frame the
//! work is a fixed sequence of *steps* (clock slots, then the filler of each run between hard
//! starts), numbered in playing order. Every entry records its frame, step and pick number, which
//! is all that is needed to resume planning exactly where an earlier plan stopped.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono_tz::Tz;

use super::index::Pool;
use super::select::{Fit, RunState};
use super::{CContent, CSlotKind, CUnder, Planner};
use crate::diagnostic::{Diagnostic, DiagnosticKind, Severity};
use crate::ids::{BlockId, ClockId, ShowId};
use crate::rng::mix;
use crate::show::Overbooked;
use crate::time::{Instant, LocalResolution, Millis, WallHour, resolve_local, wall_hour_at};
use crate::timeline::{
    Entry, Provenance, Rejection, Relaxation, Role, Rule, Source, Tier, Timeline, Transition,
    instant_of, time_of,
};

/// One show occurrence, after conflicts with earlier-starting shows are resolved.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    show: usize,
    start: Instant,
    end: Instant,
}

#[derive(Debug, Clone, Copy)]
enum FrameKind {
    Clock(usize),
    NoClock,
    Show(usize),
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    start: Instant,
    end: Instant,
    wall: WallHour,
    kind: FrameKind,
}

/// Where an earlier plan stopped inside a frame.
#[derive(Debug, Clone, Copy)]
struct Resume {
    step: u32,
    pick: u32,
}

/// What every entry of one step shares.
#[derive(Debug, Clone)]
struct Origin {
    role: Role,
    clock: Option<ClockId>,
    slot: Option<u32>,
    kind: &'static str,
    show: Option<ShowId>,
    frame: Instant,
    step: u32,
}

/// A smart block asked to fill time.
struct BlockJob {
    block: usize,
    origin: Origin,
    /// Target end and tolerance of a soft run; `None` fills exactly to `hard_end`.
    soft: Option<(Instant, Millis, bool)>,
    hard_end: Instant,
    resume: Option<Resume>,
}

/// Details of a media placement beyond the item itself.
struct Pick {
    origin: Origin,
    pick: u32,
    block: Option<BlockId>,
    seed: Option<u64>,
    rejected: Vec<Rejection>,
    relaxed: Vec<Relaxation>,
    /// Block picks crossfade; fixed items (hard items, stopsets, show lists) play whole.
    crossfade: bool,
}

pub(crate) struct Ctx<'p> {
    pub(super) p: &'p Planner,
    pub(super) seed: u64,
    pub(super) now: Instant,
    stop_at: Instant,
    tz: Tz,
    entries: Vec<Entry>,
    diags: Vec<Diagnostic>,
    /// Number of plays so far (history, kept entries and the plan itself).
    pub(super) plays: u64,
    pub(super) artist_last: Vec<Option<(Instant, u64)>>,
    pub(super) title_last: Vec<Option<(Instant, u64)>>,
    pub(super) album_last: Vec<Option<(Instant, u64)>>,
    /// Last play of each item, `i64::MIN` for never.
    pub(super) last_played: Vec<Instant>,
    pub(super) last_item: Option<u32>,
    pub(super) pools: Vec<Option<Arc<Pool>>>,
    pub(super) lrp: Vec<Option<BTreeSet<(Instant, u32)>>>,
    occurrences: Vec<Occurrence>,
    reported: HashSet<(Instant, u32, Relaxation)>,
    history_loaded: bool,
    /// The hard boundaries met while planning: frame starts and clock slots' hard starts.
    hard: BTreeSet<Instant>,
}

impl<'p> Ctx<'p> {
    pub(crate) fn new(p: &'p Planner, seed: u64, now: Instant, stop_at: Instant) -> Self {
        let n = p.catalog.library.items.len();
        let last_played = p.catalog.index.last_played.clone();
        Ctx {
            p,
            seed,
            now,
            stop_at,
            tz: p.config.station.timezone,
            entries: Vec::new(),
            diags: Vec::new(),
            plays: 0,
            artist_last: vec![None; p.catalog.index.artist_keys],
            title_last: vec![None; p.catalog.index.title_keys],
            album_last: vec![None; p.catalog.index.album_keys],
            last_played,
            last_item: None,
            pools: vec![None; p.blocks.len()],
            lrp: vec![None; p.blocks.len()],
            occurrences: Vec::new(),
            hard: BTreeSet::new(),
            reported: HashSet::new(),
            history_loaded: n == 0,
        }
    }

    /// Replays the play history from before `before`, oldest first.
    fn load_history(&mut self, before: Instant) {
        if self.history_loaded {
            return;
        }
        self.history_loaded = true;
        let mut plays: Vec<(Instant, &str)> = self
            .p
            .catalog
            .library
            .history
            .iter()
            .map(|h| (crate::time::to_instant(h.started_at), h.media.as_str()))
            .filter(|(t, _)| *t < before)
            .collect();
        plays.sort_unstable();
        let mut unknown = 0u32;
        for (t, id) in plays {
            match self.p.catalog.index.by_id.get(id) {
                Some(&i) => self.record_play(i, t),
                None => unknown += 1,
            }
        }
        if unknown > 0 {
            self.diags.push(Diagnostic {
                at: time_of(before),
                severity: Severity::Info,
                kind: DiagnosticKind::UnknownHistory { plays: unknown },
            });
        }
    }

    /// Takes over entries of an earlier plan as already on air.
    pub(crate) fn keep(&mut self, entries: &[Entry]) {
        if let Some(first) = entries.first() {
            self.load_history(instant_of(first.start));
        }
        for e in entries {
            self.push_kept(e.clone());
        }
    }

    fn push_kept(&mut self, e: Entry) {
        if let Some(&i) = e
            .source
            .media_id()
            .and_then(|id| self.p.catalog.index.by_id.get(id.as_str()))
        {
            self.record_play(i, instant_of(e.start));
        }
        self.entries.push(e);
    }

    /// Keeps `kept` and, if a hard boundary of the current configuration now falls inside the
    /// last of them, cuts it there. Returns where planning resumes.
    pub(crate) fn keep_and_fit(
        &mut self,
        mut kept: Vec<Entry>,
        timeline_start: Instant,
    ) -> Instant {
        self.load_history(timeline_start);
        let Some(mut last) = kept.pop() else {
            return timeline_start;
        };
        self.keep(&kept);
        let (s, e) = (instant_of(last.start), instant_of(last.end));
        self.load_occurrences(s, false);
        let frame = self.frame_at(s);
        if frame.end < e {
            let cut = frame.end;
            if let Source::Media {
                cue_in, cue_out, ..
            } = &mut last.source
            {
                let length = Millis::from_millis((cut - s).max(0) as u64);
                *cue_out = cue_in.saturating_add(length);
                last.transition.fade_out = self.p.config.station.trim_fade.min(length);
            }
            last.transition.overlap = Millis::ZERO;
            last.provenance.trimmed = true;
            last.end = time_of(cut);
        }
        let resume_at = instant_of(last.end);
        self.push_kept(last);
        resume_at
    }

    /// Plans from `from` until the entry that crosses the stop time has been placed.
    pub(crate) fn run(&mut self, from: Instant) {
        self.load_history(from);
        self.load_occurrences(from, true);
        let mut t = from;
        while t < self.stop_at {
            let frame = self.frame_at(t);
            // Frames begin at hard boundaries: the top of an hour, a show's start or end.
            self.hard.insert(frame.start);
            let resume = self.resume_for(&frame);
            let mut next = match frame.kind {
                FrameKind::Clock(c) => self.fill_clock(&frame, c, t, resume),
                FrameKind::NoClock => self.fill_no_clock(&frame, t, resume),
                FrameKind::Show(s) => self.fill_show(&frame, s, t, resume),
            };
            if next < frame.end && next < self.stop_at {
                // Every fill reaches its frame's end; should one ever fall short, the air is
                // still covered rather than left silent.
                debug_assert!(false, "frame at {t} ended early at {next}");
                let origin = self.hour_origin(&frame, Role::HourFill, 1);
                self.place_fallback(next, frame.end, &origin);
                next = frame.end;
            }
            t = next.max(t + 1);
        }
    }

    pub(crate) fn finish(
        self,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> (Timeline, Vec<Diagnostic>) {
        let mut entries = self.entries;
        for e in &mut entries {
            e.provenance.hard_start |= self.hard.contains(&instant_of(e.start));
        }
        let timeline = Timeline {
            station: self.p.config.station.id.clone(),
            timezone: self.tz,
            seed: self.seed,
            now: time_of(self.now),
            start,
            end,
            entries,
        };
        (timeline, self.diags)
    }

    fn done(&self, t: Instant) -> bool {
        t >= self.stop_at
    }

    pub(super) fn record_play(&mut self, item: u32, t: Instant) {
        let i = item as usize;
        let n = self.plays;
        self.plays += 1;
        for &a in self.p.catalog.index.artists[i].iter() {
            self.artist_last[a as usize] = Some((t, n));
        }
        self.title_last[self.p.catalog.index.title[i] as usize] = Some((t, n));
        if let Some(a) = self.p.catalog.index.album[i] {
            self.album_last[a as usize] = Some((t, n));
        }
        self.last_played[i] = self.last_played[i].max(t);
        self.last_item = Some(item);
    }

    // ----- frames -------------------------------------------------------------------------

    /// Computes show occurrences around `from`; `report` adds diagnostics for those that
    /// start in the plan (only the planning pass reports, so nothing is said twice).
    fn load_occurrences(&mut self, from: Instant, report: bool) {
        let hour = super::hour_ms();
        let (lo, hi) = (from - 48 * hour, self.stop_at.max(from) + 26 * hour);
        let tz = self.tz;
        let first = time_of(lo).with_timezone(&tz).date_naive() - chrono::TimeDelta::days(1);
        let last = time_of(hi).with_timezone(&tz).date_naive() + chrono::TimeDelta::days(1);
        let mut raw = Vec::new();
        for (si, show) in self.p.shows.iter().enumerate() {
            let def = &show.def;
            let mut date = first;
            while date <= last {
                if def.runs_on(date) {
                    let (start, how) = resolve_local(tz, date.and_time(def.start));
                    let end = match (def.duration, def.end) {
                        (Some(d), _) => start + d.signed(),
                        (None, Some(end)) => {
                            let end_date = if end <= def.start {
                                date + chrono::TimeDelta::days(1)
                            } else {
                                date
                            };
                            resolve_local(tz, end_date.and_time(end)).0
                        }
                        (None, None) => start,
                    };
                    if end > start && end > lo && start < hi {
                        raw.push((start, si, end, how));
                    }
                }
                date += chrono::TimeDelta::days(1);
            }
        }
        raw.sort_by_key(|&(start, si, ..)| (start, si));
        let mut occurrences = Vec::with_capacity(raw.len());
        let in_plan = |t: Instant| report && t >= from && t < self.stop_at;
        for (k, &(start, si, end, how)) in raw.iter().enumerate() {
            // Equal priority: first in time wins. A show is pushed back past every show that
            // started before it (or at the same time and is listed earlier) and is still on.
            let blocker = raw[..k].iter().filter(|o| o.2 > start).max_by_key(|o| o.2);
            let effective = blocker.map_or(start, |b| b.2.max(start));
            if let Some(b) = blocker {
                if in_plan(start) {
                    self.diags.push(Diagnostic {
                        at: time_of(start),
                        severity: Severity::Warning,
                        kind: DiagnosticKind::ShowConflict {
                            show: self.p.shows[si].def.id.clone(),
                            with: self.p.shows[b.1].def.id.clone(),
                        },
                    });
                }
            }
            if how != LocalResolution::Exact && in_plan(start) {
                self.diags.push(Diagnostic {
                    at: time_of(start),
                    severity: Severity::Info,
                    kind: DiagnosticKind::ShowTimeAdjusted {
                        show: self.p.shows[si].def.id.clone(),
                        skipped: how == LocalResolution::Skipped,
                    },
                });
            }
            if effective < end {
                occurrences.push(Occurrence {
                    show: si,
                    start: effective,
                    end,
                });
            }
        }
        self.occurrences = occurrences;
    }

    fn frame_at(&self, t: Instant) -> Frame {
        let wall = wall_hour_at(self.tz, t);
        if let Some(o) = self.occurrences.iter().find(|o| o.start <= t && t < o.end) {
            return Frame {
                start: o.start,
                end: o.end,
                wall,
                kind: FrameKind::Show(o.show),
            };
        }
        let start = self
            .occurrences
            .iter()
            .filter(|o| o.end <= t && o.end > wall.start)
            .map(|o| o.end)
            .fold(wall.start, Instant::max);
        let end = self
            .occurrences
            .iter()
            .filter(|o| o.start > t && o.start < wall.end)
            .map(|o| o.start)
            .fold(wall.end, Instant::min);
        let kind = match self.p.clock_for(wall.date, wall.weekday, wall.hour) {
            Some(c) => FrameKind::Clock(c),
            None => FrameKind::NoClock,
        };
        Frame {
            start,
            end,
            wall,
            kind,
        }
    }

    fn resume_for(&self, frame: &Frame) -> Option<Resume> {
        let last = self.entries.last()?;
        let p = &last.provenance;
        if instant_of(p.frame) != frame.start {
            return None;
        }
        let same = match frame.kind {
            FrameKind::Clock(c) => {
                p.clock.as_ref() == Some(&self.p.clocks[c].id)
                    && matches!(p.role, Role::Slot | Role::RunFill)
            }
            FrameKind::NoClock => p.role == Role::HourFill,
            FrameKind::Show(s) => p.show.as_ref() == Some(&self.p.shows[s].def.id),
        };
        same.then_some(Resume {
            step: p.step,
            pick: p.pick,
        })
    }

    /// The resume point for `step`: `Some` when the plan stopped inside it, and whether the step
    /// is already past (`Err`).
    fn step_state(resume: Option<Resume>, step: u32) -> Result<Option<Resume>, ()> {
        match resume {
            Some(r) if step < r.step => Err(()),
            Some(r) if step == r.step => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    fn hour_origin(&self, frame: &Frame, role: Role, step: u32) -> Origin {
        Origin {
            role,
            clock: None,
            slot: None,
            kind: "filler",
            show: None,
            frame: frame.start,
            step,
        }
    }

    // ----- clock hours --------------------------------------------------------------------

    fn fill_clock(
        &mut self,
        frame: &Frame,
        c: usize,
        from: Instant,
        resume: Option<Resume>,
    ) -> Instant {
        let p = self.p;
        let clock = &p.clocks[c];
        // The instant at which the template's 00:00 is (or would be) on the wall.
        let origin = frame.wall.start - frame.wall.offset;
        // Where planning of this frame began: here, or where the kept part of it began.
        let began = match resume {
            Some(_) => self.frame_began(frame.start).unwrap_or(from),
            None => from,
        };
        // Part way into the template: a window or show ending mid-hour, or a DST change that
        // skips the first half hour (Lord Howe Island).
        let part_way = began > origin;
        let mut t = from;
        for (ri, (anchor, range)) in clock.runs.iter().enumerate() {
            let template_end = clock.runs.get(ri + 1).map_or(super::hour_ms(), |r| r.0);
            let run_end = (origin + template_end).min(frame.end);
            if run_end <= t || origin + *anchor >= frame.end {
                continue;
            }
            let cut_by_frame = origin + template_end > frame.end;
            if ri > 0 {
                // A slot's `hard_start`.
                self.hard.insert(origin + *anchor);
            }
            let last_block = range
                .clone()
                .rev()
                .find(|&i| matches!(clock.slots[i].kind, CSlotKind::Block { .. }));
            for i in range.clone() {
                if self.done(t) {
                    return t;
                }
                let step = 2 * i as u32 + 2;
                let Ok(here) = Self::step_state(resume, step) else {
                    continue;
                };
                let slot = &clock.slots[i];
                let slot_origin = Origin {
                    role: Role::Slot,
                    clock: Some(clock.id.clone()),
                    slot: Some(i as u32),
                    kind: slot.kind.name(),
                    show: None,
                    frame: frame.start,
                    step,
                };
                // Starting part way through an hour: skip what nominally began earlier, and
                // shorten what nominally spans the start.
                let mut nominal_end = None;
                if part_way {
                    let (ns, ne) = (
                        origin + slot.nominal_start,
                        origin + slot.nominal_start + slot.nominal_len.signed(),
                    );
                    if ne <= began || (ns < began && matches!(slot.kind, CSlotKind::Fixed { .. })) {
                        continue;
                    }
                    if ns < began {
                        nominal_end = Some(ne);
                    }
                }
                if t >= run_end {
                    if !cut_by_frame && here.is_none() {
                        self.warn(
                            t,
                            DiagnosticKind::SlotDropped {
                                clock: clock.id.clone(),
                                slot: i as u32,
                            },
                        );
                    }
                    continue;
                }
                match &slot.kind {
                    CSlotKind::Block { block, len } => {
                        let start =
                            here.map_or(t, |_| self.step_start(frame.start, step).unwrap_or(t));
                        let (soft, hard_end) = if Some(i) == last_block {
                            let after: i64 = (i + 1..range.end)
                                .map(|k| clock.slots[k].nominal_len.signed())
                                .sum();
                            (None, (run_end - after).max(t))
                        } else {
                            let b = &p.blocks[*block].def.duration;
                            let target = nominal_end.unwrap_or(start + len.signed());
                            (Some((target, b.tolerance, b.allow_overrun)), run_end)
                        };
                        t = self.fill_block(
                            BlockJob {
                                block: *block,
                                origin: slot_origin,
                                soft,
                                hard_end,
                                resume: here,
                            },
                            t,
                        );
                    }
                    CSlotKind::Fixed { items, .. } => {
                        let first = here.map_or(0, |r| r.pick as usize + 1);
                        t = self.place_fixed(items, first, t, run_end, &slot_origin);
                    }
                    CSlotKind::Stream { .. } | CSlotKind::Live { .. } if here.is_none() => {
                        if let Some((source, tier, len)) = slot.kind.span() {
                            let end = nominal_end
                                .unwrap_or(t + len.signed())
                                .min(run_end)
                                .max(t + 1);
                            self.push(
                                t,
                                end,
                                source,
                                tier,
                                Transition::default(),
                                provenance(&slot_origin, 0),
                            );
                            t = end;
                        }
                    }
                    _ => {}
                }
            }
            // Whatever the run's slots left short before its hard end is filled.
            let step = 2 * range.end as u32 + 1;
            let Ok(here) = Self::step_state(resume, step) else {
                continue;
            };
            if t < run_end && !self.done(t) {
                let fill_from = t;
                let origin = Origin {
                    role: Role::RunFill,
                    clock: Some(clock.id.clone()),
                    slot: None,
                    kind: "filler",
                    show: None,
                    frame: frame.start,
                    step,
                };
                t = self.fill_block(
                    BlockJob {
                        block: p.filler,
                        origin,
                        soft: None,
                        hard_end: run_end,
                        resume: here,
                    },
                    t,
                );
                if here.is_none() && t > fill_from {
                    self.warn(
                        fill_from,
                        DiagnosticKind::Underfilled {
                            clock: clock.id.clone(),
                            filled: Millis::from_millis((t - fill_from).max(0) as u64),
                        },
                    );
                }
            }
        }
        t
    }

    /// Start of the first entry already placed in the frame starting at `frame`.
    fn frame_began(&self, frame: Instant) -> Option<Instant> {
        self.entries
            .iter()
            .rev()
            .take_while(|e| instant_of(e.provenance.frame) == frame)
            .last()
            .map(|e| instant_of(e.start))
    }

    /// Start of the first entry already placed by `step` of the frame starting at `frame`.
    fn step_start(&self, frame: Instant, step: u32) -> Option<Instant> {
        self.entries
            .iter()
            .rev()
            .take_while(|e| instant_of(e.provenance.frame) == frame && e.provenance.step == step)
            .last()
            .map(|e| instant_of(e.start))
    }

    fn fill_no_clock(&mut self, frame: &Frame, from: Instant, resume: Option<Resume>) -> Instant {
        let origin = self.hour_origin(frame, Role::HourFill, 1);
        if resume.is_none() {
            self.warn(
                from,
                DiagnosticKind::NoClock {
                    weekday: frame.wall.weekday,
                    hour: frame.wall.hour,
                },
            );
        }
        let job = BlockJob {
            block: self.p.filler,
            origin,
            soft: None,
            hard_end: frame.end,
            resume,
        };
        self.fill_block(job, from)
    }

    // ----- shows --------------------------------------------------------------------------

    fn fill_show(
        &mut self,
        frame: &Frame,
        s: usize,
        from: Instant,
        resume: Option<Resume>,
    ) -> Instant {
        let p = self.p;
        let show = &p.shows[s];
        let end = frame.end;
        let kind = match show.content {
            CContent::Live => "live",
            CContent::Block(_) => "smart_block",
            CContent::List(_) => "list",
            CContent::Stream(_) => "webstream",
        };
        let origin = |role, step| Origin {
            role,
            clock: None,
            slot: None,
            kind,
            show: Some(show.def.id.clone()),
            frame: frame.start,
            step,
        };
        let mut t = from;
        if let Ok(here) = Self::step_state(resume, 2) {
            let content = origin(Role::ShowContent, 2);
            match &show.content {
                CContent::Live | CContent::Stream(_) if here.is_none() => {
                    let (source, tier) = match &show.content {
                        CContent::Stream(id) => {
                            (Source::Webstream { id: id.clone() }, Tier::Automation)
                        }
                        _ => (
                            Source::Live {
                                name: show.def.name.clone(),
                            },
                            Tier::LiveScheduled,
                        ),
                    };
                    self.push(
                        t,
                        end,
                        source,
                        tier,
                        Transition::default(),
                        provenance(&content, 0),
                    );
                    t = end;
                }
                CContent::Block(b) => {
                    let job = BlockJob {
                        block: *b,
                        origin: content,
                        soft: None,
                        hard_end: end,
                        resume: here,
                    };
                    t = self.fill_block(job, t);
                }
                CContent::List(items) => {
                    t = self.place_list(
                        items,
                        show.def.overbooked,
                        matches!(show.underbooked, CUnder::Repeat),
                        frame,
                        from,
                        t,
                        here,
                        &content,
                    );
                }
                _ => {}
            }
        }
        if t < end && !self.done(t) {
            let Ok(here) = Self::step_state(resume, 3) else {
                return t;
            };
            let block = match show.underbooked {
                CUnder::Block(b) => b,
                CUnder::Filler | CUnder::Repeat => p.filler,
            };
            let fill_from = t;
            let job = BlockJob {
                block,
                origin: origin(Role::ShowFill, 3),
                soft: None,
                hard_end: end,
                resume: here,
            };
            t = self.fill_block(job, t);
            if here.is_none() && fill_from > frame.start {
                self.diags.push(Diagnostic {
                    at: time_of(fill_from),
                    severity: Severity::Info,
                    kind: DiagnosticKind::Underbooked {
                        show: show.def.id.clone(),
                        filled: Millis::from_millis((t - fill_from).max(0) as u64),
                    },
                });
            }
        }
        t
    }

    #[allow(clippy::too_many_arguments)]
    fn place_list(
        &mut self,
        items: &[u32],
        overbooked: Overbooked,
        repeat: bool,
        frame: &Frame,
        from: Instant,
        mut t: Instant,
        here: Option<Resume>,
        origin: &Origin,
    ) -> Instant {
        let end = frame.end;
        let n = items.len();
        let mut pick = here.map_or(0, |r| r.pick as usize + 1);
        if here.is_none() && from > frame.start {
            // Starting part way through the show: skip items that nominally began earlier.
            let mut nominal = frame.start;
            while nominal < from && (repeat || pick < n) {
                nominal += self.p.catalog.index.playable[items[pick % n] as usize].signed();
                pick += 1;
            }
        }
        while (repeat || pick < n) && t < end {
            if self.done(t) {
                return t;
            }
            let item = items[pick % n];
            let len = self.p.catalog.index.playable[item as usize].signed();
            if t + len > end && overbooked == Overbooked::DropCrossing {
                break;
            }
            t = self.place_media(t, item, end, Pick::fixed(origin.clone(), pick as u32));
            pick += 1;
        }
        if let (false, true, Some(show)) = (repeat, pick < n, origin.show.clone()) {
            let dropped = (n - pick) as u32;
            self.diags.push(Diagnostic {
                at: time_of(t),
                severity: Severity::Warning,
                kind: DiagnosticKind::Overbooked { show, dropped },
            });
        }
        t
    }

    // ----- placing ------------------------------------------------------------------------

    fn place_fixed(
        &mut self,
        items: &[u32],
        first: usize,
        mut t: Instant,
        hard_end: Instant,
        origin: &Origin,
    ) -> Instant {
        for (k, &item) in items.iter().enumerate().skip(first) {
            if t >= hard_end || self.done(t) {
                break;
            }
            t = self.place_media(t, item, hard_end, Pick::fixed(origin.clone(), k as u32));
        }
        t
    }

    /// Fills from `t` with picks of a smart block, until its soft target is reached or exactly to
    /// its hard end.
    fn fill_block(&mut self, job: BlockJob, mut t: Instant) -> Instant {
        let p = self.p;
        let block = &p.blocks[job.block];
        let mut run = RunState::new(block.shares.len());
        let mut pick = 0u32;
        if let Some(r) = job.resume {
            pick = r.pick + 1;
            let frame = job.origin.frame;
            let placed: Vec<u32> = self
                .entries
                .iter()
                .rev()
                .take_while(|e| {
                    instant_of(e.provenance.frame) == frame && e.provenance.step == job.origin.step
                })
                .filter_map(|e| {
                    e.source
                        .media_id()
                        .and_then(|id| p.catalog.index.by_id.get(id.as_str()).copied())
                })
                .collect();
            for &i in placed.iter().rev() {
                run.add(i, &p.catalog.index, &block.shares);
            }
        }
        loop {
            if t >= job.hard_end || self.done(t) {
                break;
            }
            if let Some((target, tolerance, _)) = job.soft {
                if t >= target - tolerance.signed() {
                    break;
                }
            }
            if job.soft.is_none() && self.absorb(t, job.hard_end) {
                t = job.hard_end;
                break;
            }
            let fit = match job.soft {
                Some((target, tolerance, allow_overrun)) => Fit {
                    want: target - t,
                    tolerance: tolerance.signed(),
                    hard: false,
                    allow_overrun,
                },
                None => Fit {
                    want: job.hard_end - t,
                    tolerance: block.def.duration.tolerance.signed(),
                    hard: true,
                    allow_overrun: false,
                },
            };
            let seed = mix(&[
                &self.seed.to_le_bytes(),
                p.config.station.id.as_str().as_bytes(),
                &job.origin.frame.to_le_bytes(),
                &job.origin.step.to_le_bytes(),
                &pick.to_le_bytes(),
            ]);
            match self.select(job.block, &run, t, fit, seed) {
                Some(choice) => {
                    if let Some(level) = choice.relaxed.last() {
                        let key = (job.origin.frame, job.origin.step, *level);
                        if self.reported.insert(key) {
                            self.warn(
                                t,
                                DiagnosticKind::Relaxed {
                                    block: block.def.id.clone(),
                                    relaxation: *level,
                                },
                            );
                        }
                    }
                    let rejected = Rule::ALL
                        .iter()
                        .zip(choice.rejected)
                        .filter(|(_, n)| *n > 0)
                        .map(|(&rule, count)| Rejection { rule, count })
                        .collect();
                    run.add(choice.item, &p.catalog.index, &block.shares);
                    let details = Pick {
                        origin: job.origin.clone(),
                        pick,
                        block: Some(p.blocks[choice.block].def.id.clone()),
                        seed: Some(seed),
                        rejected,
                        relaxed: choice.relaxed,
                        crossfade: true,
                    };
                    t = self.place_media(t, choice.item, job.hard_end, details);
                }
                None => {
                    self.place_fallback(t, job.hard_end, &job.origin);
                    t = job.hard_end;
                }
            }
            pick += 1;
        }
        t
    }

    /// Closes a small gap before a hard end by letting the previous item play its crossfade
    /// tail alone instead of starting a new item for a moment.
    fn absorb(&mut self, t: Instant, hard_end: Instant) -> bool {
        let gap = hard_end - t;
        match self.entries.last_mut() {
            Some(last)
                if instant_of(last.end) == t
                    && matches!(last.source, Source::Media { .. })
                    && last.transition.overlap.signed() >= gap =>
            {
                last.transition.overlap = last
                    .transition
                    .overlap
                    .saturating_sub(Millis::from_millis(gap as u64));
                last.end = time_of(hard_end);
                true
            }
            _ => false,
        }
    }

    fn place_media(&mut self, t: Instant, item: u32, hard_end: Instant, pick: Pick) -> Instant {
        let p = self.p;
        let station = &p.config.station;
        let media = &p.catalog.library.items[item as usize];
        let len = media.playable();
        let mut overlap = if pick.crossfade {
            media
                .crossfade
                .unwrap_or(station.crossfade)
                .min(Millis::from_millis(len.as_millis() / 2))
        } else {
            Millis::ZERO
        };
        let mut fade_out = Millis::ZERO;
        let mut cue_out = media.effective_cue_out();
        let mut trimmed = false;
        let room = hard_end - t;
        let mut end = t + len.signed() - overlap.signed();
        if end >= hard_end {
            if len.signed() > room {
                let cut = len.signed() - room;
                cue_out = media
                    .cue_in
                    .saturating_add(Millis::from_millis(room as u64));
                fade_out = station.trim_fade.min(Millis::from_millis(room as u64));
                overlap = Millis::ZERO;
                trimmed = true;
                let fixed = !pick.crossfade;
                self.diags.push(Diagnostic {
                    at: time_of(t),
                    severity: if fixed {
                        Severity::Warning
                    } else {
                        Severity::Info
                    },
                    kind: DiagnosticKind::Trimmed {
                        media: media.id.clone(),
                        cut: Millis::from_millis(cut as u64),
                        fixed,
                    },
                });
            } else {
                overlap = Millis::from_millis((len.signed() - room) as u64);
            }
            end = hard_end;
        }
        let source = Source::Media {
            id: media.id.clone(),
            title: media.title.clone(),
            artists: media.artists.clone(),
            cue_in: media.cue_in,
            cue_out,
        };
        let transition = Transition {
            fade_in: media.fade_in.unwrap_or(Millis::ZERO),
            fade_out,
            overlap,
        };
        let mut prov = provenance(&pick.origin, pick.pick);
        prov.block = pick.block;
        prov.seed = pick.seed.map(|s| format!("{s:016x}"));
        prov.rejected = pick.rejected;
        prov.relaxed = pick.relaxed;
        prov.trimmed = trimmed;
        self.push(t, end, source, Tier::Automation, transition, prov);
        self.record_play(item, t);
        end
    }

    fn place_fallback(&mut self, t: Instant, end: Instant, origin: &Origin) {
        self.diags.push(Diagnostic {
            at: time_of(t),
            severity: Severity::Error,
            kind: DiagnosticKind::NoMedia {
                length: Millis::from_millis((end - t).max(0) as u64),
            },
        });
        let pick = self
            .entries
            .iter()
            .rev()
            .take_while(|e| {
                instant_of(e.provenance.frame) == origin.frame && e.provenance.step == origin.step
            })
            .count() as u32;
        self.push(
            t,
            end,
            Source::Fallback,
            Tier::Fallback,
            Transition::default(),
            provenance(origin, pick),
        );
    }

    fn push(
        &mut self,
        start: Instant,
        end: Instant,
        source: Source,
        tier: Tier,
        transition: Transition,
        provenance: Provenance,
    ) {
        self.entries.push(Entry {
            start: time_of(start),
            end: time_of(end),
            source,
            tier,
            transition,
            provenance,
        });
    }

    fn warn(&mut self, t: Instant, kind: DiagnosticKind) {
        self.diags.push(Diagnostic {
            at: time_of(t),
            severity: Severity::Warning,
            kind,
        });
    }
}

impl Pick {
    fn fixed(origin: Origin, pick: u32) -> Pick {
        Pick {
            origin,
            pick,
            block: None,
            seed: None,
            rejected: Vec::new(),
            relaxed: Vec::new(),
            crossfade: false,
        }
    }
}

fn provenance(o: &Origin, pick: u32) -> Provenance {
    Provenance {
        role: o.role,
        clock: o.clock.clone(),
        slot: o.slot,
        kind: o.kind.to_owned(),
        show: o.show.clone(),
        block: None,
        seed: None,
        frame: time_of(o.frame),
        step: o.step,
        pick,
        rejected: Vec::new(),
        relaxed: Vec::new(),
        trimmed: false,
        hard_start: false,
    }
}

impl CSlotKind {
    fn name(&self) -> &'static str {
        match self {
            CSlotKind::Block { .. } => "smart_block",
            CSlotKind::Fixed { kind, .. } => kind,
            CSlotKind::Stream { .. } => "webstream",
            CSlotKind::Live { .. } => "live",
        }
    }

    /// Source, tier and length of a slot that is one entry spanning time (webstream, live).
    fn span(&self) -> Option<(Source, Tier, Millis)> {
        match self {
            CSlotKind::Stream { id, len } => {
                Some((Source::Webstream { id: id.clone() }, Tier::Automation, *len))
            }
            CSlotKind::Live { name, len } => Some((
                Source::Live { name: name.clone() },
                Tier::LiveScheduled,
                *len,
            )),
            CSlotKind::Block { .. } | CSlotKind::Fixed { .. } => None,
        }
    }
}
