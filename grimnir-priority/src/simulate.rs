//! The offline simulator: a timeline and scripted events over a span, played through an
//! [`Executor`] as fast as the CPU allows, into an air log.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grimnir_planner::{Millis, Timeline};

use crate::command::{AirItem, Command};
use crate::config::ExecutorConfig;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::executor::{Executor, OnAir};
use crate::state::StateChange;
use crate::time::plus;

/// One event of a scenario, at its instant.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScriptedEvent {
    /// When it happens.
    pub at: DateTime<Utc>,
    /// What happens.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub event: Event,
}

/// What to simulate: an executor configuration, a timeline, and events over `[from, until]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The executor's configuration.
    pub config: ExecutorConfig,
    /// The timeline in force at `from` (`None`: fallback until one is scripted).
    pub timeline: Option<Arc<Timeline>>,
    /// Start of the simulated span.
    pub from: DateTime<Utc>,
    /// End of the simulated span.
    pub until: DateTime<Utc>,
    /// The scripted events. Events at one instant are handled in the order given.
    pub events: Vec<ScriptedEvent>,
    /// Also tick at this interval, as a live driver would; `None` ticks only at the executor's
    /// deadlines, which gives the same air with far fewer events.
    pub tick: Option<Millis>,
}

/// One record of the air log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "record", rename_all = "snake_case"))]
pub enum AirRecord {
    /// What is on air from `at`.
    OnAir {
        /// From when.
        at: DateTime<Utc>,
        /// What holds the air (`None`: nothing, the engine is down).
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        main: Option<AirItem>,
        /// What is fading or crossfading out under it.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        tail: Option<AirItem>,
    },
    /// A command the executor issued.
    Command {
        /// The command.
        #[cfg_attr(feature = "serde", serde(flatten))]
        command: Command,
    },
    /// A change of state or tier.
    Change {
        /// The change.
        #[cfg_attr(feature = "serde", serde(flatten))]
        change: StateChange,
    },
    /// A scripted event the executor refused.
    Rejected {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        error: String,
    },
}

/// What was on air when, from which tier, and every command and state change, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AirLog {
    /// The records, in the order they happened.
    pub records: Vec<AirRecord>,
}

impl AirLog {
    /// Every command issued.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.records.iter().filter_map(|r| match r {
            AirRecord::Command { command } => Some(command),
            _ => None,
        })
    }

    /// Every state change.
    pub fn changes(&self) -> impl Iterator<Item = &StateChange> {
        self.records.iter().filter_map(|r| match r {
            AirRecord::Change { change } => Some(change),
            _ => None,
        })
    }

    /// What was on air at `t`: the last on-air record at or before `t`.
    pub fn on_air_at(&self, t: DateTime<Utc>) -> OnAir {
        let mut found = OnAir::default();
        for r in &self.records {
            if let AirRecord::OnAir { at, main, tail } = r {
                if *at > t {
                    break;
                }
                found = OnAir {
                    main: main.clone(),
                    tail: tail.clone(),
                };
            }
        }
        found
    }

    /// The log as JSON, one object per line.
    #[cfg(feature = "json")]
    pub fn to_json_lines(&self) -> Result<String> {
        let mut out = String::new();
        for r in &self.records {
            let line = serde_json::to_string(r).map_err(|e| Error::Parse {
                what: "air log record",
                message: e.to_string(),
            })?;
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }
}

impl Scenario {
    /// A scenario with no events, ticking only at deadlines.
    pub fn new(
        config: ExecutorConfig,
        timeline: Option<Arc<Timeline>>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Self {
        Scenario {
            config,
            timeline,
            from,
            until,
            events: Vec::new(),
            tick: None,
        }
    }

    /// The same scenario with one more event.
    pub fn with(mut self, at: DateTime<Utc>, event: Event) -> Self {
        self.events.push(ScriptedEvent { at, event });
        self
    }

    /// Checks the span and that every event lies inside it.
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        if self.until < self.from {
            return Err(Error::InvalidScenario {
                field: "until".into(),
                reason: format!("{} is before from ({})", self.until, self.from),
            });
        }
        if self.tick == Some(Millis::ZERO) {
            return Err(Error::InvalidScenario {
                field: "tick".into(),
                reason: "must be longer than zero".into(),
            });
        }
        for (i, e) in self.events.iter().enumerate() {
            if e.at < self.from || e.at > self.until {
                return Err(Error::InvalidScenario {
                    field: format!("events[{i}].at"),
                    reason: format!("{} lies outside from–until", e.at),
                });
            }
        }
        Ok(())
    }
}

/// Plays `scenario` and returns its air log. Events are handled in time order (stable, so
/// events at one instant keep their order); refused events are logged as
/// [`AirRecord::Rejected`] and the run goes on. Same scenario, same log.
///
/// ```
/// use grimnir_priority::{ExecutorConfig, Scenario, simulate};
///
/// let from = "2026-11-24T10:00:00Z".parse().unwrap();
/// let until = "2026-11-24T11:00:00Z".parse().unwrap();
/// let config = ExecutorConfig::new("wgmr", "main", "fm", "/fallback.mp3");
/// let log = simulate(&Scenario::new(config, None, from, until))?;
/// // No timeline: the fallback holds the air all hour.
/// assert!(log.on_air_at(until).main.is_some());
/// # Ok::<(), grimnir_priority::Error>(())
/// ```
pub fn simulate(scenario: &Scenario) -> Result<AirLog> {
    scenario.validate()?;
    let mut events: Vec<&ScriptedEvent> = scenario.events.iter().collect();
    events.sort_by_key(|e| e.at);
    let mut executor = Executor::new(scenario.config.clone())?;
    let mut sim = Recorder::default();
    let first = match &scenario.timeline {
        Some(tl) => Event::TimelineReplaced {
            timeline: Arc::clone(tl),
        },
        None => Event::Tick,
    };
    sim.handle(&mut executor, scenario.from, first);
    let mut next_tick = scenario.tick.map(|t| plus(scenario.from, t));
    let mut pending = events.into_iter().peekable();
    loop {
        let deadline = executor.next_deadline();
        let scripted = pending.peek().map(|e| e.at);
        let at = [deadline, scripted, next_tick]
            .into_iter()
            .flatten()
            .min()
            .filter(|t| *t <= scenario.until);
        let Some(at) = at else {
            break;
        };
        if scripted == Some(at) {
            if let Some(e) = pending.next() {
                sim.handle(&mut executor, at, e.event.clone());
            }
            continue;
        }
        if next_tick == Some(at) {
            next_tick = scenario.tick.map(|t| plus(at, t));
        }
        sim.handle(&mut executor, at, Event::Tick);
    }
    if executor.now().is_some_and(|n| n < scenario.until) {
        sim.handle(&mut executor, scenario.until, Event::Tick);
    }
    Ok(sim.log)
}

#[derive(Default)]
struct Recorder {
    log: AirLog,
    last: Option<(bool, Option<crate::executor::Slot>, Option<DateTime<Utc>>)>,
}

impl Recorder {
    fn handle(&mut self, executor: &mut Executor, at: DateTime<Utc>, event: Event) {
        match executor.handle(at, event) {
            Ok(step) => {
                for c in step.commands {
                    self.log
                        .records
                        .push(AirRecord::Command { command: c.clone() });
                }
                for c in step.changes {
                    self.log
                        .records
                        .push(AirRecord::Change { change: c.clone() });
                }
            }
            Err(e) => self.log.records.push(AirRecord::Rejected {
                at,
                error: e.to_string(),
            }),
        }
        let key = executor.on_air_key();
        if self.last != Some(key) {
            self.last = Some(key);
            let air = executor.on_air();
            self.log.records.push(AirRecord::OnAir {
                at,
                main: air.main,
                tail: air.tail,
            });
        }
    }
}
