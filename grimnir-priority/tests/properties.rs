//! Invariants over random timelines and random event sequences.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use grimnir_priority::programme::{ItemKind, Programme, ProgrammeEntry};
use grimnir_priority::{
    Deactivation, Event, Executor, Item, Millis, PrioritySource, Scenario, State, Telemetry, Tier,
    simulate,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Tick(u32),
    Activate {
        id: u8,
        tier: u8,
        delay: u16,
        length: Option<u16>,
    },
    End(u8),
    Drop(u8),
    Silence(bool),
    Fail,
    Restart,
    Skip,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..400_000).prop_map(Op::Tick),
        2 => (0u8..4, 0u8..3, 0u16..120, proptest::option::of(1u16..900))
            .prop_map(|(id, tier, delay, length)| Op::Activate { id, tier, delay, length }),
        1 => (0u8..4).prop_map(Op::End),
        1 => (0u8..4).prop_map(Op::Drop),
        1 => any::<bool>().prop_map(Op::Silence),
        1 => Just(Op::Fail),
        1 => Just(Op::Restart),
        1 => Just(Op::Skip),
    ]
}

fn programme() -> impl Strategy<Value = Arc<grimnir_priority::grimnir_planner::Timeline>> {
    proptest::collection::vec((0u8..6, 5u32..400, 0u32..4), 1..40).prop_map(|items| {
        let mut p = Programme::new("wgmr", t("10:00:00"));
        for (i, (kind, secs, crossfade)) in items.into_iter().enumerate() {
            let kind = match kind {
                0 | 1 => ItemKind::Song,
                2 => ItemKind::Fixed,
                3 => ItemKind::Webstream,
                4 => ItemKind::Live,
                _ => ItemKind::Filler,
            };
            let mut e =
                ProgrammeEntry::of(kind, format!("item {i}"), Millis::from_secs(secs.into()));
            e.crossfade = Millis::from_secs(crossfade.into()).min(e.length);
            p.entries.push(e);
        }
        Arc::new(p.to_timeline())
    })
}

fn to_event(op: &Op, now: DateTime<Utc>) -> Event {
    match op {
        Op::Tick(_) => Event::Tick,
        Op::Activate {
            id,
            tier,
            delay,
            length,
        } => {
            let tier =
                [Tier::Emergency, Tier::LiveOverride, Tier::LiveScheduled][usize::from(*tier)];
            let start = now + TimeDelta::seconds((*delay).into());
            let mut s = PrioritySource::new(format!("s{id}"), tier, "in", "wgmr", "main", start);
            s.end = length.map(|l| start + TimeDelta::seconds(l.into()));
            Event::SourceActivated { source: s }
        }
        Op::End(id) => Event::SourceDeactivated {
            id: format!("s{id}").into(),
            cause: Deactivation::Ended,
        },
        Op::Drop(id) => Event::SourceDeactivated {
            id: format!("s{id}").into(),
            cause: Deactivation::Dropped,
        },
        Op::Silence(s) => Event::Telemetry {
            report: Telemetry::Silence { silent: *s },
        },
        Op::Fail => Event::EngineFailed {
            reason: "test".into(),
        },
        Op::Restart => Event::EngineRestarted,
        Op::Skip => Event::Skip,
    }
}

/// What the test itself knows about a source, independently of the executor.
#[derive(Clone)]
struct Known {
    source: PrioritySource,
    dropped_at: Option<DateTime<Utc>>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_air_obeys_the_ladder(timeline in programme(), ops in proptest::collection::vec(op(), 1..80)) {
        let mut ex = Executor::new(config()).unwrap();
        let mut now = t("10:00:00");
        ex.handle(now, Event::TimelineReplaced { timeline }).unwrap();
        let mut known: Vec<Known> = Vec::new();
        let mut engine_up = true;
        let mut any_silence = false;
        let timeout = TimeDelta::seconds(30);
        for op in &ops {
            if let Op::Tick(ms) = op {
                now += TimeDelta::milliseconds((*ms).into());
            }
            let event = to_event(op, now);
            let result = ex.handle(now, event.clone());
            // Keep the independent model in step with what was accepted.
            known.retain(|k| k.source.end.is_none_or(|e| e > now) && k.dropped_at.is_none_or(|d| d + timeout > now));
            let step = match result {
                Ok(step) => step,
                Err(_) => continue,
            };
            for c in step.changes {
                prop_assert!(c.from.can_change_to(c.to) || c.from == c.to, "edge {:?} -> {:?}", c.from, c.to);
            }
            match &event {
                Event::SourceActivated { source } => {
                    match known.iter_mut().find(|k| k.source.id == source.id) {
                        Some(k) => { k.source = source.clone(); k.dropped_at = None; }
                        None => known.push(Known { source: source.clone(), dropped_at: None }),
                    }
                }
                Event::SourceDeactivated { id, cause } => {
                    let tier0 = known.iter().any(|k| &k.source.id == id && k.source.tier == Tier::Emergency);
                    if *cause == Deactivation::Ended || tier0 {
                        known.retain(|k| &k.source.id != id);
                    } else if let Some(k) = known.iter_mut().find(|k| &k.source.id == id) {
                        k.dropped_at.get_or_insert(now);
                    }
                }
                Event::Telemetry { .. } => any_silence = true,
                Event::EngineFailed { .. } => engine_up = false,
                Event::EngineRestarted => engine_up = true,
                _ => {}
            }
            let air = ex.on_air();
            if !engine_up {
                prop_assert!(air.main.is_none());
                prop_assert_eq!(ex.state(), State::Idle);
                continue;
            }
            // Something is always on air, fallback at worst.
            let main = air.main.clone();
            prop_assert!(main.is_some(), "nothing on air at {}", now);
            let main = main.unwrap();
            // Two sources only inside a fade or an automation crossfade.
            if let Some(tail) = &air.tail {
                let crossfade = main.tier >= Tier::Automation && tail.tier >= Tier::Automation;
                prop_assert!(ex.state() == State::Fading || crossfade, "{:?} under {:?} in {:?}", tail, main, ex.state());
            }
            // An active emergency is on air by this tick.
            let claims = |k: &Known| k.dropped_at.is_none() && k.source.is_on_at(now);
            if known.iter().any(|k| claims(k) && k.source.tier == Tier::Emergency) {
                prop_assert_eq!(main.tier, Tier::Emergency);
            }
            // The highest-priority active source holds the air (tiers 0–2 take it at once; the
            // fade is on what they replace). Silence can retire a live source early, which this
            // model does not follow.
            if !any_silence {
                let best = known.iter().filter(|k| claims(k)).min_by_key(|k| (k.source.tier, k.source.start));
                match best {
                    Some(b) => {
                        prop_assert_eq!(main.tier, b.source.tier);
                    }
                    None => prop_assert!(main.tier >= Tier::Automation, "{:?} on air with no source", main),
                }
            }
            if let Item::Source { id } = &main.item {
                prop_assert!(known.iter().any(|k| &k.source.id == id && claims(k)) || any_silence);
            }
        }
    }

    #[test]
    fn same_inputs_same_air_log(timeline in programme(), ops in proptest::collection::vec(op(), 1..40)) {
        let mut scenario = Scenario::new(config(), Some(timeline), t("10:00:00"), t("14:00:00"));
        let mut now = t("10:00:00");
        for op in &ops {
            if let Op::Tick(ms) = op {
                now = (now + TimeDelta::milliseconds((*ms).into())).min(t("14:00:00"));
            }
            scenario.events.push(grimnir_priority::ScriptedEvent { at: now, event: to_event(op, now) });
        }
        let a = simulate(&scenario).unwrap();
        let b = simulate(&scenario).unwrap();
        prop_assert_eq!(&a, &b);
        // Every recorded change takes an allowed edge, and the log never shows nothing on air
        // while the engine runs.
        for c in a.changes() {
            prop_assert!(c.from.can_change_to(c.to) || c.from == c.to);
        }
    }
}
