//! The executor: a sans-IO state machine that decides what is on air.
//!
//! It owns no clock, thread or socket. [`Executor::handle`] takes an instant and an [`Event`],
//! brings the executor's model up to that instant (every deadline on the way is handled at its
//! own time, so commands carry exact instants even when ticks are coarse), applies the event, and
//! returns the [`Command`]s for the engine and the [`StateChange`]s to record.
//!
//! Three layers decide the air, highest first:
//! 1. priority sources (tiers 0–2), arbitrated by [`arbitrate`](crate::arbitrate)'s rules;
//! 2. the bridge: the fallback audio while a dropped live source may still come back;
//! 3. automation: the timeline as a queue of cues, or the fallback audio where the timeline has
//!    nothing to play.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use grimnir_planner::{Entry, Millis, Role, Source, Tier, Timeline};

use crate::command::{AirItem, Command, Item};
use crate::config::ExecutorConfig;
use crate::error::{Error, Result};
use crate::event::{Deactivation, Event, Telemetry};
use crate::source::{PrioritySource, SourceId, outranks};
use crate::state::{Reason, State, StateChange};
use crate::time::{OPEN, minus, plus, span};

/// How many entries past the resume point the executor looks for a hard start to re-sync at.
/// Planner timelines have one at the top of every hour, far inside this.
pub const MAX_RESYNC_RUN: usize = 500;

/// What one call to [`Executor::handle`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<'a> {
    /// Commands for the engine, in the order they were decided.
    pub commands: &'a [Command],
    /// Changes of state or of the tier on air, in order.
    pub changes: &'a [StateChange],
}

/// What is on air: at most two items, and two only while one fades or crossfades out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OnAir {
    /// What holds the air.
    pub main: Option<AirItem>,
    /// What is still sounding under it: a fade out (state [`State::Fading`]) or the crossfade
    /// tail of the previous entry.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub tail: Option<AirItem>,
}

/// A snapshot for `executor_states` and health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Status {
    /// The state.
    pub state: State,
    /// The tier on air.
    pub tier: Option<Tier>,
    /// What is on air.
    pub on_air: OnAir,
    /// Whether the engine is running.
    pub engine_up: bool,
    /// The last reported position in the item on air.
    pub position: Option<Millis>,
    /// The last reported buffer depth, in samples.
    pub buffer_depth: Option<u64>,
    /// Whether the engine last reported silence.
    pub silent: bool,
    /// The last reported health of each output.
    pub outputs: BTreeMap<String, bool>,
    /// When telemetry last arrived.
    pub last_telemetry: Option<DateTime<Utc>>,
    /// The priority sources that are active (connected or waiting for a reconnection).
    pub sources: Vec<SourceId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Cue(u64),
    Source(u64),
    Bridge,
}

/// A stretch of automation: one timeline entry (or the fallback audio) from `start` to `end`.
#[derive(Debug, Clone)]
struct Cue {
    id: u64,
    timeline: Option<Arc<Timeline>>,
    entry: Option<usize>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// Position in the entry's audio at `start`.
    offset: Millis,
    /// How long the audio sounds from `start`, crossfade tail included; `None` for fallback.
    length: Option<Millis>,
    fade_in: Millis,
    fade_out: Millis,
    fallback: bool,
    preloaded: bool,
    committed: bool,
}

impl Cue {
    fn planned(&self) -> Option<&Entry> {
        self.timeline.as_ref()?.entries.get(self.entry?)
    }

    fn item(&self) -> Item {
        match (self.fallback, self.planned(), self.entry) {
            (false, Some(e), Some(index)) => Item::Entry {
                index,
                planned_start: e.start,
                source: e.source.clone(),
            },
            _ => Item::Fallback,
        }
    }

    fn tier(&self) -> Tier {
        match (self.fallback, self.planned()) {
            (false, Some(e)) => e.tier,
            _ => Tier::Fallback,
        }
    }

    fn air(&self) -> AirItem {
        AirItem {
            item: self.item(),
            tier: self.tier(),
        }
    }

    /// When its audio stops sounding.
    fn audio_end(&self) -> DateTime<Utc> {
        self.length.map_or(self.end, |l| plus(self.start, l))
    }
}

#[derive(Debug, Clone)]
struct Active {
    source: PrioritySource,
    seq: u64,
    connected: bool,
    dropped_at: Option<DateTime<Utc>>,
    silent_since: Option<DateTime<Utc>>,
}

impl Active {
    fn claims(&self, t: DateTime<Utc>) -> bool {
        self.connected && self.source.is_on_at(t)
    }
}

#[derive(Debug, Clone)]
struct Tail {
    air: AirItem,
    until: DateTime<Utc>,
    /// A fade out forced by a live source (state `Fading`), not an entry's own crossfade.
    fade: bool,
}

enum Want {
    Source(usize),
    Bridge,
    Auto,
}

/// The executor of one station's programme on one mount.
///
/// Three layers decide the air, highest first: the priority sources (tiers 0–2, by
/// [`arbitrate`](crate::arbitrate)'s rules); the bridge (the fallback audio while a dropped live
/// source may still come back); automation (the timeline as a queue of cues, or the fallback
/// audio where the timeline has nothing to play).
///
/// ```
/// use grimnir_priority::{Command, Event, Executor, ExecutorConfig, PrioritySource, State, Tier};
///
/// let mut executor = Executor::new(ExecutorConfig::new("wgmr", "main", "fm", "/fallback.mp3"))?;
/// let t0 = "2026-11-24T10:00:00Z".parse().unwrap();
/// // No timeline yet: the fallback loop goes on air.
/// let step = executor.handle(t0, Event::Tick)?;
/// assert!(matches!(step.commands[0], Command::LoadGraph { .. }));
/// assert_eq!(executor.state(), State::Playing);
///
/// // An alert cuts in at once.
/// let t1 = "2026-11-24T10:00:07Z".parse().unwrap();
/// let alert = PrioritySource::new("eas", Tier::Emergency, "/alerts/eas.mp3", "wgmr", "main", t1);
/// let step = executor.handle(t1, Event::SourceActivated { source: alert })?;
/// assert!(step.commands.iter().any(|c| matches!(c, Command::InsertEmergency { at, .. } if *at == t1)));
/// assert_eq!(executor.state(), State::Emergency);
/// # Ok::<(), grimnir_priority::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Executor {
    config: ExecutorConfig,
    now: Option<DateTime<Utc>>,
    state: State,
    tier: Option<Tier>,
    engine_up: bool,
    timeline: Option<Arc<Timeline>>,
    sources: Vec<Active>,
    next_seq: u64,
    current: Option<Cue>,
    queue: VecDeque<Cue>,
    /// Automation is off air under a priority source or the bridge.
    frozen: bool,
    /// The planned end of the entry that was on air when automation lost the air.
    interrupted: Option<Option<DateTime<Utc>>>,
    /// The dropped live source the bridge is holding the air for.
    hold: Option<u64>,
    main: Option<(Slot, AirItem)>,
    tail: Option<Tail>,
    /// Set when a cue ended and the next took over: the old cue's id and its crossfade tail.
    handover: Option<(u64, Option<Tail>)>,
    next_cue_id: u64,
    /// The hard start a re-sync run is heading for, while one is.
    resync_to: Option<DateTime<Utc>>,
    /// The known end of a priority source whose resume has been preloaded.
    resume_preload: Option<DateTime<Utc>>,
    cause: Option<Reason>,
    position: Option<Millis>,
    buffer_depth: Option<u64>,
    silent: bool,
    outputs: BTreeMap<String, bool>,
    last_telemetry: Option<DateTime<Utc>>,
    commands: Vec<Command>,
    changes: Vec<StateChange>,
}

impl Executor {
    /// An idle executor. It starts on its first event, assuming the engine is running.
    pub fn new(config: ExecutorConfig) -> Result<Self> {
        config.validate()?;
        Ok(Executor {
            config,
            now: None,
            state: State::Idle,
            tier: None,
            engine_up: false,
            timeline: None,
            sources: Vec::new(),
            next_seq: 0,
            current: None,
            queue: VecDeque::new(),
            frozen: false,
            interrupted: None,
            hold: None,
            main: None,
            tail: None,
            handover: None,
            next_cue_id: 0,
            resume_preload: None,
            resync_to: None,
            cause: None,
            position: None,
            buffer_depth: None,
            silent: false,
            outputs: BTreeMap::new(),
            last_telemetry: None,
            commands: Vec::new(),
            changes: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The instant of the latest event handled.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        self.now
    }

    /// The timeline in use.
    pub fn timeline(&self) -> Option<&Arc<Timeline>> {
        self.timeline.as_ref()
    }

    /// What is on air (nothing while the engine is down).
    pub fn on_air(&self) -> OnAir {
        if !self.engine_up {
            return OnAir::default();
        }
        OnAir {
            main: self.main.as_ref().map(|(_, a)| a.clone()),
            tail: self.tail.as_ref().map(|t| t.air.clone()),
        }
    }

    /// A cheap fingerprint of what is on air, to notice changes without building items.
    pub(crate) fn on_air_key(&self) -> (bool, Option<Slot>, Option<DateTime<Utc>>) {
        (
            self.engine_up,
            self.main.as_ref().map(|(s, _)| *s),
            self.tail.as_ref().map(|t| t.until),
        )
    }

    /// A snapshot for `executor_states`.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            tier: self.tier,
            on_air: self.on_air(),
            engine_up: self.engine_up,
            position: self.position,
            buffer_depth: self.buffer_depth,
            silent: self.silent,
            outputs: self.outputs.clone(),
            last_telemetry: self.last_telemetry,
            sources: self.sources.iter().map(|a| a.source.id.clone()).collect(),
        }
    }

    /// The active priority sources, in activation order (disconnected ones included while they
    /// may still come back).
    pub fn sources(&self) -> impl Iterator<Item = &PrioritySource> {
        self.sources.iter().map(|a| &a.source)
    }

    /// The priority source that holds the air by the ladder's rules at the executor's current
    /// time, if any (connected and within its start and end).
    pub fn winning_source(&self) -> Option<&PrioritySource> {
        let now = self.now?;
        self.best_source(now)
            .and_then(|i| self.sources.get(i))
            .map(|a| &a.source)
    }

    /// The next instant at which the executor has something to do (a preload, a priority check,
    /// an entry start, a fade end, a source start, end or timeout). A driver ticks at this
    /// instant; ticking later still yields commands stamped with their exact instants.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let now = self.now?;
        let mut best: Option<DateTime<Utc>> = None;
        let mut consider = |t: DateTime<Utc>| {
            if t > now && t != OPEN && best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        };
        let timeout = self.config.timing.live_timeout;
        for a in &self.sources {
            consider(a.source.start);
            if let Some(e) = a.source.end {
                consider(e);
            }
            if let Some(d) = a.dropped_at {
                consider(plus(d, timeout));
            }
            if let Some(s) = a.silent_since {
                consider(plus(s, timeout));
            }
        }
        if let Some(t) = &self.tail {
            consider(t.until);
        }
        if let Some(end) = self.known_handback() {
            if self.resume_preload != Some(end) {
                consider(minus(end, self.config.timing.preload_lead));
            }
        }
        if !self.frozen {
            let timing = &self.config.timing;
            if let Some(c) = &self.current {
                consider(c.end);
            }
            if let Some(last) = self.queue.back().or(self.current.as_ref()) {
                consider(minus(last.end, timing.look_ahead));
            }
            for c in &self.queue {
                consider(c.start);
                if self.engine_up {
                    if !c.preloaded {
                        consider(minus(c.start, timing.preload_lead));
                    }
                    if !c.committed {
                        consider(minus(c.start, timing.check_lead));
                    }
                }
            }
        }
        best
    }

    /// Handles `event` at instant `at`: first every deadline before `at` at its own instant, then
    /// the event. Refused input (a time before the last event, an invalid timeline or source, an
    /// unknown source) returns an error and changes nothing.
    pub fn handle(&mut self, at: DateTime<Utc>, event: Event) -> Result<Step<'_>> {
        self.commands.clear();
        self.changes.clear();
        if let Some(now) = self.now {
            if at < now {
                return Err(Error::TimeWentBackwards { at, now });
            }
        }
        self.check(&event)?;
        if self.now.is_none() {
            self.start(at);
        }
        while let Some(d) = self.next_deadline() {
            if d >= at {
                break;
            }
            self.step(d);
        }
        self.now = Some(at);
        self.apply(at, event);
        self.step(at);
        Ok(Step {
            commands: &self.commands,
            changes: &self.changes,
        })
    }

    fn check(&self, event: &Event) -> Result<()> {
        match event {
            Event::TimelineReplaced { timeline } => check_timeline(&self.config, timeline),
            Event::SourceActivated { source } => {
                source.validate()?;
                let foreign = |field, expected: &str, found: &str| Error::ForeignSource {
                    id: source.id.to_string(),
                    field,
                    expected: expected.to_owned(),
                    found: found.to_owned(),
                };
                if source.station != self.config.station {
                    return Err(foreign(
                        "station",
                        self.config.station.as_str(),
                        source.station.as_str(),
                    ));
                }
                if source.mount != self.config.mount {
                    return Err(foreign(
                        "mount",
                        self.config.mount.as_str(),
                        source.mount.as_str(),
                    ));
                }
                if let Some(a) = self.sources.iter().find(|a| a.source.id == source.id)
                    && a.source.tier != source.tier
                {
                    return Err(Error::TierChange {
                        id: source.id.to_string(),
                        active: a.source.tier.number(),
                        requested: source.tier.number(),
                    });
                }
                Ok(())
            }
            Event::SourceDeactivated { id, .. } => {
                if self.sources.iter().any(|a| &a.source.id == id) {
                    Ok(())
                } else {
                    Err(Error::UnknownSource { id: id.to_string() })
                }
            }
            _ => Ok(()),
        }
    }

    fn start(&mut self, t: DateTime<Utc>) {
        self.now = Some(t);
        self.engine_up = true;
        self.because(Reason::Startup);
        self.emit(Command::LoadGraph {
            at: t,
            graph: self.config.graph.clone(),
        });
        self.sync_at(t);
    }

    /// Everything due at `t`, in a fixed order: expiries, fades, automation, the air, preloads.
    fn step(&mut self, t: DateTime<Utc>) {
        self.now = Some(t);
        self.expire(t);
        if let Some(tail) = &self.tail {
            if tail.until <= t {
                if tail.fade {
                    self.because(Reason::FadeComplete);
                }
                self.tail = None;
            }
        }
        self.advance_automation(t);
        self.reconcile(t);
        self.handover = None;
        self.schedule_automation(t);
        self.preload_resume(t);
        self.record(t);
    }

    fn because(&mut self, reason: Reason) {
        self.cause.get_or_insert(reason);
    }

    fn emit(&mut self, command: Command) {
        if self.engine_up {
            self.commands.push(command);
        }
    }

    fn expire(&mut self, t: DateTime<Utc>) {
        let timeout = self.config.timing.live_timeout;
        let mut i = 0;
        while let Some(a) = self.sources.get(i) {
            let gone = if a.source.end.is_some_and(|e| e <= t) {
                Some(Reason::SourceEnded)
            } else if a.dropped_at.is_some_and(|d| plus(d, timeout) <= t) {
                Some(Reason::LiveTimeout)
            } else if a.silent_since.is_some_and(|s| plus(s, timeout) <= t) {
                Some(Reason::LiveSilent)
            } else {
                None
            };
            match gone {
                Some(reason) => {
                    if self.hold == Some(a.seq) {
                        self.hold = None;
                    }
                    self.sources.remove(i);
                    self.because(reason);
                }
                None => i += 1,
            }
        }
    }

    fn apply(&mut self, t: DateTime<Utc>, event: Event) {
        match event {
            Event::Tick => {}
            Event::TimelineReplaced { timeline } => self.replace_timeline(t, timeline),
            Event::SourceActivated { source } => {
                if let Some(a) = self.sources.iter_mut().find(|a| a.source.id == source.id) {
                    let reconnected = !a.connected;
                    a.source = source;
                    a.connected = true;
                    a.dropped_at = None;
                    a.silent_since = None;
                    let seq = a.seq;
                    if reconnected {
                        if self.hold == Some(seq) {
                            self.hold = None;
                        }
                        self.because(Reason::LiveReconnected);
                    }
                } else {
                    self.sources.push(Active {
                        source,
                        seq: self.next_seq,
                        connected: true,
                        dropped_at: None,
                        silent_since: None,
                    });
                    self.next_seq += 1;
                }
            }
            Event::SourceDeactivated { id, cause } => {
                let Some(i) = self.sources.iter().position(|a| a.source.id == id) else {
                    return;
                };
                let Some(a) = self.sources.get_mut(i) else {
                    return;
                };
                // An alert that drops has nothing to come back to: it ends.
                if cause == Deactivation::Ended || a.source.tier == Tier::Emergency {
                    let seq = a.seq;
                    self.sources.remove(i);
                    if self.hold == Some(seq) {
                        self.hold = None;
                    }
                    self.because(Reason::SourceEnded);
                } else {
                    a.connected = false;
                    a.silent_since = None;
                    a.dropped_at.get_or_insert(t);
                    let seq = a.seq;
                    if matches!(self.main, Some((Slot::Source(s), _)) if s == seq) {
                        self.hold = Some(seq);
                    }
                    self.because(Reason::LiveDropped);
                }
            }
            Event::Telemetry { report } => self.telemetry(t, report),
            Event::Skip => self.skip(t),
            Event::GraphChanged { graph } => {
                if graph != self.config.graph {
                    self.config.graph = graph;
                    if self.engine_up {
                        self.emit(Command::LoadGraph {
                            at: t,
                            graph: self.config.graph.clone(),
                        });
                    }
                }
            }
            Event::EngineFailed { .. } => {
                if self.engine_up {
                    self.engine_up = false;
                    self.resume_preload = None;
                    self.main = None;
                    self.tail = None;
                    for c in &mut self.queue {
                        c.preloaded = false;
                        c.committed = false;
                    }
                    self.because(Reason::EngineFailed);
                }
            }
            Event::EngineRestarted => {
                if !self.engine_up {
                    self.engine_up = true;
                    // The logical air is put back by `reconcile`, at the position reached by now.
                    self.main = None;
                    self.tail = None;
                    self.because(Reason::EngineRestarted);
                    self.emit(Command::LoadGraph {
                        at: t,
                        graph: self.config.graph.clone(),
                    });
                }
            }
        }
    }

    /// Ends the timeline entry on air at `t` (see [`Event::Skip`]): the entry after it plays
    /// from its beginning in a re-sync run towards the next hard start, or the fallback audio
    /// until the timeline has something when there is no entry after it. `reconcile` then
    /// stops the skipped entry and plays its successor.
    fn skip(&mut self, t: DateTime<Utc>) {
        if !self.engine_up || self.frozen {
            return;
        }
        let Some((Slot::Cue(on_air), _)) = self.main else {
            return;
        };
        let Some(cur) = self.current.as_ref().filter(|c| c.id == on_air) else {
            return;
        };
        let (Some(tl), Some(index), false) = (cur.timeline.clone(), cur.entry, cur.fallback) else {
            // The fallback has nothing to skip to before the timeline's next entry.
            return;
        };
        self.because(Reason::Skipped);
        let next = index + 1;
        if next < tl.entries.len() {
            if let Some(cues) = self.resync_cues(t, &tl, next) {
                self.cancel_queue(t);
                let mut cues = cues.into_iter();
                self.current = cues.next();
                self.queue.extend(cues);
                self.extend(t);
                return;
            }
        }
        self.resync_to = None;
        self.cancel_queue(t);
        let until = tl.entries.get(next).map_or(OPEN, |e| e.start.max(t));
        let cue = self.new_cue(None, t, until, Millis::ZERO);
        self.current = Some(cue);
        self.extend(t);
    }

    fn telemetry(&mut self, t: DateTime<Utc>, report: Telemetry) {
        self.last_telemetry = Some(t);
        match report {
            Telemetry::Position { position } => self.position = Some(position),
            Telemetry::BufferDepth { samples } => self.buffer_depth = Some(samples),
            Telemetry::OutputHealth { output, up } => {
                self.outputs.insert(output, up);
            }
            Telemetry::Silence { silent } => {
                self.silent = silent;
                if !silent {
                    for a in &mut self.sources {
                        a.silent_since = None;
                    }
                    return;
                }
                if !self.engine_up {
                    return;
                }
                match self.main.as_ref().map(|(s, a)| (*s, a.tier)) {
                    Some((Slot::Cue(id), _)) => {
                        let Some(cur) = self.current.as_ref().filter(|c| c.id == id) else {
                            return;
                        };
                        if cur.fallback {
                            return;
                        }
                        // Dead air on automation: the fallback plays until the next entry.
                        let cue = Cue {
                            id: self.next_cue_id,
                            start: t,
                            offset: Millis::ZERO,
                            length: None,
                            fade_in: Millis::ZERO,
                            fade_out: Millis::ZERO,
                            fallback: true,
                            preloaded: true,
                            committed: false,
                            ..cur.clone()
                        };
                        self.next_cue_id += 1;
                        self.current = Some(cue);
                        self.because(Reason::AutomationSilent);
                    }
                    Some((Slot::Source(seq), Tier::LiveOverride | Tier::LiveScheduled)) => {
                        if let Some(a) = self.sources.iter_mut().find(|a| a.seq == seq) {
                            a.silent_since.get_or_insert(t);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn replace_timeline(&mut self, t: DateTime<Utc>, timeline: Arc<Timeline>) {
        self.because(Reason::TimelineReplaced);
        self.timeline = Some(Arc::clone(&timeline));
        if self.frozen {
            return;
        }
        if self.resync_to.is_some_and(|h| h > t) {
            self.replace_mid_resync(t, &timeline);
            return;
        }
        // A fallback stretch that stood for "no timeline here" now ends where the new timeline
        // has its next entry: fallback waits for a natural transition, and that is the first.
        // A fallback that only just went on air (the first timeline arrives with the first
        // event) gives way at once, in step with the timeline.
        if let Some(cur) = self.current.as_mut() {
            if cur.fallback && cur.entry.is_none() {
                if cur.start == t {
                    self.sync_at(t);
                    return;
                }
                let next = timeline.entries.iter().find(|e| e.start >= t);
                cur.end = next.map_or(OPEN, |e| e.start);
            }
        }
        // Keep the queued cues the new timeline still has, unchanged; drop the rest.
        let mut keep = 0;
        for c in &self.queue {
            let same = c.planned().and_then(|old| {
                let i = timeline.entries.partition_point(|e| e.start < old.start);
                timeline
                    .entries
                    .get(i)
                    .filter(|new| {
                        same_on_air(old, new) && c.start == old.start && c.offset == Millis::ZERO
                    })
                    .map(|_| i)
            });
            match same {
                Some(_) => keep += 1,
                None => break,
            }
        }
        let dropped: Vec<Cue> = self.queue.drain(keep..).collect();
        for c in dropped {
            if c.committed {
                let item = c.item();
                self.emit(Command::Stop { at: t, item });
            }
        }
        for c in &mut self.queue {
            if let Some(old) = c.planned() {
                let i = timeline.entries.partition_point(|e| e.start < old.start);
                c.entry = Some(i);
                c.timeline = Some(Arc::clone(&timeline));
            }
        }
        self.extend(t);
    }

    /// A new timeline while a re-sync run is under way: its cues are off the old timeline's
    /// times, so the new one cannot be joined where they end (that would be part way into an
    /// entry). What is on air and what is committed stay; after them a new re-sync run starts
    /// with the entry the new timeline has after the last of them (or, if it no longer has
    /// that entry, with its first entry from there on), landing on its next hard start.
    fn replace_mid_resync(&mut self, t: DateTime<Utc>, timeline: &Arc<Timeline>) {
        self.resync_to = None;
        let keep = self.queue.iter().take_while(|c| c.committed).count();
        self.queue.truncate(keep);
        let Some(last) = self.queue.back().or(self.current.as_ref()) else {
            self.extend(t);
            return;
        };
        let from = last.end;
        let entries = &timeline.entries;
        let after_last = last.planned().and_then(|old| {
            let i = entries.partition_point(|e| e.start < old.start);
            entries
                .get(i)
                .filter(|new| same_on_air(old, new))
                .map(|_| i + 1)
        });
        let j = after_last.unwrap_or_else(|| entries.partition_point(|e| e.start < from));
        if from != OPEN && j < entries.len() {
            if let Some(cues) = self.resync_cues(from, timeline, j) {
                self.queue.extend(cues);
            }
        }
        self.extend(t);
    }

    // ---- automation -------------------------------------------------------------------------

    fn new_cue(
        &mut self,
        entry: Option<usize>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        offset: Millis,
    ) -> Cue {
        let id = self.next_cue_id;
        self.next_cue_id += 1;
        let timeline = self.timeline.clone();
        let planned = entry.and_then(|i| timeline.as_ref()?.entries.get(i));
        let found = planned.is_some();
        let (fallback, length, fade_in, fade_out) = match planned {
            Some(e) if plays_itself(&e.source) => {
                let audio = span(e.start, e.end).saturating_add(e.transition.overlap);
                (
                    false,
                    Some(audio.saturating_sub(offset)),
                    if offset == Millis::ZERO {
                        e.transition.fade_in
                    } else {
                        Millis::ZERO
                    },
                    e.transition.fade_out,
                )
            }
            _ => (true, None, Millis::ZERO, Millis::ZERO),
        };
        Cue {
            id,
            timeline: if found { timeline } else { None },
            entry: if found { entry } else { None },
            start,
            end,
            offset,
            length,
            fade_in,
            fade_out,
            fallback,
            // The fallback loop is always loaded.
            preloaded: fallback,
            committed: false,
        }
    }

    /// The cue that follows automation ending at `from`, in step with the timeline.
    fn cue_at(&mut self, from: DateTime<Utc>) -> Cue {
        let next = self.timeline.as_ref().and_then(|tl| {
            let i = tl.entries.partition_point(|e| e.end <= from);
            tl.entries.get(i).map(|e| (i, e.start, e.end))
        });
        match next {
            None => self.new_cue(None, from, OPEN, Millis::ZERO),
            Some((_, start, _)) if start > from => self.new_cue(None, from, start, Millis::ZERO),
            Some((i, start, end)) => self.new_cue(Some(i), from, end, span(start, from)),
        }
    }

    /// Puts automation in step with the timeline at `t`: the entry on at `t` from the position
    /// it has reached, or the fallback where the timeline has nothing.
    fn sync_at(&mut self, t: DateTime<Utc>) {
        self.resync_to = None;
        self.cancel_queue(t);
        let cue = self.cue_at(t);
        self.current = Some(cue);
        self.frozen = false;
        self.extend(t);
    }

    fn cancel_queue(&mut self, t: DateTime<Utc>) {
        while let Some(c) = self.queue.pop_front() {
            if c.committed {
                let item = c.item();
                self.emit(Command::Stop { at: t, item });
            }
        }
    }

    /// Queues cues until the look-ahead horizon is covered.
    fn extend(&mut self, t: DateTime<Utc>) {
        let horizon = plus(t, self.config.timing.look_ahead);
        loop {
            let Some(last_end) = self.queue.back().or(self.current.as_ref()).map(|c| c.end) else {
                return;
            };
            if last_end > horizon || last_end == OPEN {
                return;
            }
            let cue = self.cue_at(last_end);
            self.queue.push_back(cue);
        }
    }

    fn advance_automation(&mut self, t: DateTime<Utc>) {
        if self.resync_to.is_some_and(|h| h <= t) {
            self.resync_to = None;
        }
        if self.frozen || self.current.is_none() {
            return;
        }
        self.extend(t);
        while self.queue.front().is_some_and(|c| c.start <= t) {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            if let Some(old) = self.current.replace(next) {
                let until = old.audio_end();
                let tail = (until > t).then(|| Tail {
                    air: old.air(),
                    until,
                    fade: false,
                });
                self.handover = Some((old.id, tail));
            }
            self.because(Reason::EntryStart);
        }
        self.extend(t);
    }

    /// Takes automation off air: remembers the entry it was playing and cancels what it had
    /// committed.
    fn freeze(&mut self, t: DateTime<Utc>, was_on_air: bool) {
        if self.frozen {
            return;
        }
        self.frozen = true;
        self.resync_to = None;
        let entry_end = self
            .current
            .as_ref()
            .filter(|_| was_on_air)
            .and_then(|c| c.planned().map(|e| e.end));
        self.interrupted = Some(entry_end);
        self.cancel_queue(t);
        self.current = None;
    }

    /// Brings automation back at `t` after an interruption (SPEC.md "Resume: Automation at
    /// Track 5"): with the entry after the interrupted one while that entry's planned time has not
    /// passed, else with the entry the timeline has at `t`, from its beginning; then re-synced
    /// with the timeline at the next hard start.
    fn resume(&mut self, t: DateTime<Utc>) {
        self.frozen = false;
        self.resume_preload = None;
        let interrupted = self.interrupted.take().flatten();
        let Some(tl) = self.timeline.clone() else {
            self.sync_at(t);
            return;
        };
        let entries = &tl.entries;
        let covering = entries.partition_point(|e| e.end <= t);
        let after = interrupted.and_then(|end| {
            let n = entries.partition_point(|e| e.start < end);
            entries.get(n).filter(|e| t < e.end).map(|_| n)
        });
        let j = after.unwrap_or(covering);
        match entries.get(j) {
            Some(e) if j == covering && e.start >= t => self.sync_at(t),
            Some(_) => self.resync(t, &tl, j),
            None => self.sync_at(t),
        }
    }

    /// Plays entries from `j` starting at `t` and lands on the next hard start exactly: soft
    /// items are dropped or trimmed (from the last one back) when the run is late, stretched when
    /// it is early and one can be (a webstream or fallback entry), and any remaining gap is
    /// bridged with the fallback audio.
    fn resync(&mut self, t: DateTime<Utc>, tl: &Arc<Timeline>, j: usize) {
        let Some(cues) = self.resync_cues(t, tl, j) else {
            self.sync_at(t);
            return;
        };
        self.cancel_queue(t);
        let mut cues = cues.into_iter();
        self.current = cues.next();
        self.queue.extend(cues);
        self.extend(t);
    }

    /// The cues of a re-sync run: entries from `j` played from `t`, landing on the next hard
    /// start (see [`Self::resync`]); `None` when that hard start is not after `t`. Records the
    /// hard start in `resync_to`.
    fn resync_cues(&mut self, t: DateTime<Utc>, tl: &Arc<Timeline>, j: usize) -> Option<Vec<Cue>> {
        let entries = &tl.entries;
        let limit = entries.len().min(j.saturating_add(1 + MAX_RESYNC_RUN));
        let h = (j + 1..limit)
            .find(|&i| is_hard_start(tl, i))
            .unwrap_or(limit);
        let hard_at = match entries.get(h) {
            Some(e) => e.start,
            None => tl.covered_until(),
        };
        if hard_at <= t {
            return None;
        }
        struct Run {
            index: usize,
            length: Millis,
            soft: bool,
            stretchable: bool,
            cut: bool,
            dropped: bool,
        }
        let mut run: Vec<Run> = entries
            .get(j..h)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(k, e)| Run {
                index: j + k,
                length: span(e.start, e.end),
                soft: is_soft(e),
                stretchable: is_soft(e)
                    && matches!(e.source, Source::Webstream { .. } | Source::Fallback),
                cut: false,
                dropped: false,
            })
            .collect();
        let avail = span(t, hard_at);
        let total = run
            .iter()
            .fold(Millis::ZERO, |acc, r| acc.saturating_add(r.length));
        if total > avail {
            let mut excess = total.saturating_sub(avail);
            for r in run.iter_mut().rev().filter(|r| r.soft) {
                if excess == Millis::ZERO {
                    break;
                }
                if r.index != j && r.length <= excess {
                    r.dropped = true;
                    excess = excess.saturating_sub(r.length);
                } else {
                    let cut = excess.min(r.length.saturating_sub(Millis::from_millis(1)));
                    r.length = r.length.saturating_sub(cut);
                    r.cut = true;
                    excess = excess.saturating_sub(cut);
                }
            }
        } else if total < avail {
            if let Some(r) = run.iter_mut().rev().find(|r| r.stretchable) {
                r.length = r.length.saturating_add(avail.saturating_sub(total));
                r.cut = true;
            }
        }
        self.cancel_queue(t);
        let trim_fade = self.config.timing.trim_fade;
        let mut cues = Vec::with_capacity(run.len() + 1);
        let mut at = t;
        for r in run.iter().filter(|r| !r.dropped) {
            if at >= hard_at {
                break;
            }
            let natural_end = plus(at, r.length);
            let end = natural_end.min(hard_at);
            let mut cue = self.new_cue(Some(r.index), at, end, Millis::ZERO);
            if (r.cut || end < natural_end) && !cue.fallback {
                cue.length = Some(span(at, end));
                cue.fade_out = trim_fade;
            }
            cues.push(cue);
            at = end;
        }
        if at < hard_at {
            let gap = self.new_cue(None, at, hard_at, Millis::ZERO);
            cues.push(gap);
        }
        self.resync_to = Some(hard_at);
        Some(cues)
    }

    /// When the priority source on air has a known end and automation will take the air back
    /// then (no other source claims it, no dropped source is being held for): that end.
    fn known_handback(&self) -> Option<DateTime<Utc>> {
        if !self.engine_up || !self.frozen || self.hold.is_some() {
            return None;
        }
        let Some((Slot::Source(seq), _)) = self.main else {
            return None;
        };
        let end = self.sources.iter().find(|a| a.seq == seq)?.source.end?;
        let taken = self.sources.iter().any(|a| a.seq != seq && a.claims(end));
        (!taken && self.now.is_some_and(|now| end > now)).then_some(end)
    }

    /// `preload_lead` before a known hand-back, preloads the entry automation will resume with,
    /// so the resume after an alert or a booked show starts on time rather than waiting for its
    /// file to open. What it resumes with is worked out on a copy of the executor, by the same
    /// rules as the resume itself; should things change before then, the preload is simply not
    /// used.
    fn preload_resume(&mut self, t: DateTime<Utc>) {
        let Some(end) = self.known_handback() else {
            return;
        };
        if minus(end, self.config.timing.preload_lead) > t || self.resume_preload == Some(end) {
            return;
        }
        let mut ahead = self.clone();
        ahead.commands.clear();
        ahead.changes.clear();
        ahead.expire(end);
        if !matches!(ahead.want(end), Want::Auto) {
            return;
        }
        ahead.resume(end);
        let Some(cue) = ahead.current.filter(|c| !c.fallback) else {
            // The fallback loop is always loaded.
            self.resume_preload = Some(end);
            return;
        };
        self.emit(Command::Preload {
            at: t,
            item: cue.item(),
            starts: end,
        });
        self.because(Reason::Preload);
        self.resume_preload = Some(end);
    }

    /// Preloads cues `preload_lead` ahead and, `check_lead` ahead, commits them with a `Play` for
    /// their exact start unless a priority source will hold the air then.
    fn schedule_automation(&mut self, t: DateTime<Utc>) {
        if !self.engine_up || self.frozen {
            return;
        }
        let timing = self.config.timing;
        for i in 0..self.queue.len() {
            let Some(c) = self.queue.get(i) else {
                break;
            };
            let (start, preload, commit) = (
                c.start,
                !c.preloaded && minus(c.start, timing.preload_lead) <= t,
                !c.committed && minus(c.start, timing.check_lead) <= t,
            );
            if preload {
                let item = c.item();
                self.emit(Command::Preload {
                    at: t,
                    item,
                    starts: start,
                });
                self.because(Reason::Preload);
                if let Some(c) = self.queue.get_mut(i) {
                    c.preloaded = true;
                }
            }
            if commit && !self.sources.iter().any(|a| a.claims(start)) {
                let Some(c) = self.queue.get_mut(i) else {
                    break;
                };
                c.committed = true;
                let play = Command::Play {
                    at: c.start,
                    item: c.item(),
                    offset: c.offset,
                    length: c.length,
                    fade_in: c.fade_in,
                    fade_out: c.fade_out,
                };
                self.emit(play);
            }
        }
    }

    // ---- the air ----------------------------------------------------------------------------

    fn best_source(&self, t: DateTime<Utc>) -> Option<usize> {
        let mut best: Option<(usize, &Active)> = None;
        for (i, a) in self.sources.iter().enumerate() {
            if a.claims(t)
                && best.is_none_or(|(_, b)| {
                    outranks(a.source.tier, a.source.start, b.source.tier, b.source.start)
                })
            {
                best = Some((i, a));
            }
        }
        best.map(|(i, _)| i)
    }

    fn want(&self, t: DateTime<Utc>) -> Want {
        match self.best_source(t) {
            Some(i) => Want::Source(i),
            None if self.hold.is_some() => Want::Bridge,
            None => Want::Auto,
        }
    }

    fn reconcile(&mut self, t: DateTime<Utc>) {
        let (slot, air) = match self.want(t) {
            Want::Source(i) => {
                let Some(a) = self.sources.get(i) else {
                    return;
                };
                (
                    Slot::Source(a.seq),
                    AirItem {
                        item: Item::Source {
                            id: a.source.id.clone(),
                        },
                        tier: a.source.tier,
                    },
                )
            }
            Want::Bridge => (
                Slot::Bridge,
                AirItem {
                    item: Item::Fallback,
                    tier: Tier::Fallback,
                },
            ),
            Want::Auto => {
                if self.frozen || self.current.is_none() {
                    self.resume(t);
                }
                let Some(c) = self.current.as_ref() else {
                    return;
                };
                (Slot::Cue(c.id), c.air())
            }
        };
        if self.main.as_ref().is_some_and(|(s, _)| *s == slot) {
            return;
        }
        self.switch(t, slot, air);
    }

    fn switch(&mut self, t: DateTime<Utc>, slot: Slot, air: AirItem) {
        let old = self.main.take();
        let old_was_cue = matches!(old, Some((Slot::Cue(_), _)));
        if !matches!(slot, Slot::Cue(_)) {
            self.freeze(t, old_was_cue);
        }
        match slot {
            Slot::Source(seq) => {
                let Some(a) = self.sources.iter().find(|a| a.seq == seq).cloned() else {
                    return;
                };
                self.because(match a.source.tier {
                    Tier::Emergency => Reason::Emergency,
                    Tier::LiveOverride => Reason::LiveOverride,
                    _ => Reason::LiveScheduled,
                });
                self.stop_tail(t);
                if a.source.tier == Tier::Emergency {
                    if let Some((_, old)) = old {
                        self.emit(Command::Stop {
                            at: t,
                            item: old.item,
                        });
                    }
                    self.emit(Command::InsertEmergency {
                        at: t,
                        source: a.source.id.clone(),
                        audio: a.source.input.clone(),
                        offset: span(a.source.start, t),
                    });
                } else {
                    let fade = self.config.timing.fade;
                    if let Some((old_slot, old)) = old {
                        if fade > Millis::ZERO
                            && old.tier != Tier::Emergency
                            && self.sounding(old_slot, t)
                        {
                            self.emit(Command::Fade {
                                at: t,
                                item: old.item.clone(),
                                length: fade,
                            });
                            self.tail = Some(Tail {
                                air: old,
                                until: plus(t, fade),
                                fade: true,
                            });
                        } else {
                            self.emit(Command::Stop {
                                at: t,
                                item: old.item,
                            });
                        }
                    }
                    self.emit(Command::RouteLive {
                        at: t,
                        source: a.source.id.clone(),
                        input: a.source.input.clone(),
                    });
                }
            }
            Slot::Bridge => {
                self.stop_tail(t);
                if let Some((_, old)) = old {
                    self.emit(Command::Stop {
                        at: t,
                        item: old.item,
                    });
                }
                self.emit(Command::Play {
                    at: t,
                    item: Item::Fallback,
                    offset: Millis::ZERO,
                    length: None,
                    fade_in: Millis::ZERO,
                    fade_out: Millis::ZERO,
                });
            }
            Slot::Cue(_) => {
                let natural = match (&old, &self.handover) {
                    (Some((Slot::Cue(o), _)), Some((h, _))) => o == h,
                    _ => false,
                };
                if natural {
                    if let Some((_, tail)) = self.handover.take() {
                        if tail.is_some() {
                            self.stop_tail(t);
                            self.tail = tail;
                        }
                    }
                } else {
                    self.stop_tail(t);
                    if let Some((_, old)) = old {
                        self.emit(Command::Stop {
                            at: t,
                            item: old.item,
                        });
                    }
                }
                if let Some(c) = self.current.as_ref() {
                    if !(c.committed && c.start == t) {
                        let into = span(c.start, t);
                        let play = Command::Play {
                            at: t,
                            item: c.item(),
                            offset: c.offset.saturating_add(into),
                            length: c.length.map(|l| l.saturating_sub(into)),
                            fade_in: if into == Millis::ZERO {
                                c.fade_in
                            } else {
                                Millis::ZERO
                            },
                            fade_out: c.fade_out,
                        };
                        self.emit(play);
                    }
                }
            }
        }
        self.main = Some((slot, air));
    }

    /// Whether what `slot` plays is still sounding at `t` (and so has something to fade).
    fn sounding(&self, slot: Slot, t: DateTime<Utc>) -> bool {
        match slot {
            Slot::Cue(_) | Slot::Bridge => true,
            Slot::Source(seq) => self.sources.iter().any(|a| a.seq == seq && a.claims(t)),
        }
    }

    fn stop_tail(&mut self, t: DateTime<Utc>) {
        if let Some(tail) = self.tail.take() {
            self.emit(Command::Stop {
                at: t,
                item: tail.air.item,
            });
        }
    }

    fn derive_state(&self) -> State {
        let Some((_, main)) = self.main.as_ref().filter(|_| self.engine_up) else {
            return State::Idle;
        };
        match main.tier {
            Tier::Emergency => State::Emergency,
            Tier::LiveOverride | Tier::LiveScheduled
                if matches!(self.main, Some((Slot::Source(_), _))) =>
            {
                if self.tail.as_ref().is_some_and(|t| t.fade) {
                    State::Fading
                } else {
                    State::Live
                }
            }
            _ if !self.frozen && self.queue.iter().any(|c| c.preloaded && !c.fallback) => {
                State::Preloading
            }
            _ => State::Playing,
        }
    }

    fn record(&mut self, t: DateTime<Utc>) {
        let state = self.derive_state();
        let tier = self
            .main
            .as_ref()
            .filter(|_| self.engine_up)
            .map(|(_, a)| a.tier);
        let cause = self.cause.take();
        if state != self.state || tier != self.tier {
            self.changes.push(StateChange {
                at: t,
                from: self.state,
                to: state,
                from_tier: self.tier,
                to_tier: tier,
                reason: cause.unwrap_or(Reason::EntryStart),
            });
            self.state = state;
            self.tier = tier;
        }
    }
}

/// Whether the engine plays an entry's source itself. A live entry needs a live source to be
/// activated, and a fallback entry is the fallback audio: both are played as the fallback loop
/// by automation.
fn plays_itself(source: &Source) -> bool {
    matches!(source, Source::Media { .. } | Source::Webstream { .. })
}

fn same_on_air(a: &Entry, b: &Entry) -> bool {
    a.start == b.start
        && a.end == b.end
        && a.source == b.source
        && a.tier == b.tier
        && a.transition == b.transition
}

/// Whether entry `i` of `timeline` begins at a hard start, one the executor re-syncs at.
///
/// The planner marks them (`provenance.hard_start`: the top of a clock hour, a clock slot's
/// `hard_start`, a show's start and end). Timelines written by other means are read by what
/// those boundaries look like as well: the top of every local hour; the start of an entry after
/// one cut short at a hard boundary; a change of show; a change of tier; the end of a gap.
pub fn is_hard_start(timeline: &Timeline, i: usize) -> bool {
    let Some(e) = timeline.entries.get(i) else {
        return false;
    };
    let Some(prev) = i.checked_sub(1).and_then(|p| timeline.entries.get(p)) else {
        return true;
    };
    if e.provenance.hard_start {
        return true;
    }
    let local = e.start.with_timezone(&timeline.timezone);
    (local.minute() == 0 && local.second() == 0 && local.nanosecond() == 0)
        || prev.provenance.trimmed
        || prev.provenance.show != e.provenance.show
        || prev.tier != e.tier
        || prev.end != e.start
}

/// Whether an entry is soft: one re-syncing may trim, drop or stretch. Smart block picks and
/// filler are soft; fixed items (hard items, stopsets, show lists, timed webstreams, live) are
/// not.
pub fn is_soft(entry: &Entry) -> bool {
    matches!(entry.source, Source::Fallback)
        || matches!(
            entry.provenance.role,
            Role::RunFill | Role::ShowFill | Role::HourFill
        )
        || entry.provenance.kind == "smart_block"
        || entry.provenance.kind == "filler"
}

fn check_timeline(config: &ExecutorConfig, timeline: &Timeline) -> Result<()> {
    if timeline.station != config.station {
        return Err(Error::ForeignTimeline {
            expected: config.station.to_string(),
            found: timeline.station.to_string(),
        });
    }
    let mut prev_end: Option<DateTime<Utc>> = None;
    for (index, e) in timeline.entries.iter().enumerate() {
        if e.end <= e.start {
            return Err(Error::InvalidTimeline {
                index,
                reason: format!("ends at {} before or at its start {}", e.end, e.start),
            });
        }
        if let Some(p) = prev_end {
            if e.start < p {
                return Err(Error::InvalidTimeline {
                    index,
                    reason: format!(
                        "starts at {}, before the previous entry ends ({p})",
                        e.start
                    ),
                });
            }
        }
        prev_end = Some(e.end);
    }
    Ok(())
}
