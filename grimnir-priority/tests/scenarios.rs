//! One scenario per rule of the executor, through the public API.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::*;
use grimnir_priority::programme::{ItemKind, Programme, ProgrammeEntry};
use grimnir_priority::{
    Command, Deactivation, Event, Executor, Item, Millis, Reason, Scenario, State, Telemetry, Tier,
    simulate,
};

fn scenario(from: &str, until: &str) -> Scenario {
    Scenario::new(config(), Some(hour()), t(from), t(until))
}

#[test]
fn entries_are_preloaded_at_t_minus_30_and_committed_at_t_minus_5() {
    let log = simulate(&scenario("10:00:00", "10:10:00")).unwrap();
    // Track 2 starts at 10:04:10.
    let preload = log
        .commands()
        .find(|c| matches!(c, Command::Preload { item, .. } if item.label() == "Track 2"))
        .unwrap();
    assert_eq!(preload.at(), t("10:03:40"));
    assert_eq!(
        plays_of(&log, "Track 2"),
        vec![(t("10:04:10"), Millis::ZERO)]
    );
    let states: Vec<_> = log.changes().map(|c| (c.at, c.to)).collect();
    assert!(states.contains(&(t("10:03:40"), State::Preloading)));
    assert!(states.contains(&(t("10:04:10"), State::Playing)));
}

#[test]
fn the_play_for_t_is_sent_at_the_priority_check() {
    let mut ex = Executor::new(config()).unwrap();
    ex.handle(t("10:00:00"), Event::TimelineReplaced { timeline: hour() })
        .unwrap();
    let step = ex.handle(t("10:04:05"), Event::Tick).unwrap();
    assert!(step.commands.iter().any(|c| matches!(c,
        Command::Play { at, item, .. } if *at == t("10:04:10") && item.label() == "Track 2")));
}

#[test]
fn emergency_during_a_track_then_resume_at_the_next_entry_and_resync_at_the_hard_start() {
    // Track 4 plays 10:12:10–10:16:10; the alert runs 10:13:00–10:13:30.
    let alert = source("eas", Tier::Emergency, "10:13:00").until(t("10:13:30"));
    let log = simulate(
        &scenario("10:00:00", "11:01:00")
            .with(t("10:13:00"), Event::SourceActivated { source: alert }),
    )
    .unwrap();
    assert_eq!(label_at(&log, "10:12:59"), Some("Track 4".into()));
    assert!(log.commands().any(|c| matches!(c,
        Command::InsertEmergency { at, .. } if *at == t("10:13:00"))));
    assert!(log.commands().any(|c| matches!(c,
        Command::Stop { at, item } if *at == t("10:13:00") && item.label() == "Track 4")));
    assert_eq!(tier_at(&log, "10:13:00"), Some(Tier::Emergency));
    // Resume at Track 5, from its start, at the alert's end.
    assert_eq!(
        plays_of(&log, "Track 5"),
        vec![(t("10:13:30"), Millis::ZERO)]
    );
    assert_eq!(label_at(&log, "10:13:30"), Some("Track 5".into()));
    // The run is 2:40 early and has nothing stretchable (its soft items are songs): the fallback
    // bridges the gap just before 11:00, and the ID starts at 11:00 exactly.
    assert_eq!(plays_of(&log, "ID 11"), vec![(t("11:00:00"), Millis::ZERO)]);
    assert_eq!(label_at(&log, "11:00:00"), Some("ID 11".into()));
    assert_eq!(tier_at(&log, "10:59:59"), Some(Tier::Fallback));
    let change = log.changes().find(|c| c.at == t("10:13:30")).unwrap();
    assert_eq!(
        (change.from, change.reason),
        (State::Emergency, Reason::SourceEnded)
    );
}

#[test]
fn a_slot_hard_start_the_planner_marked_is_where_the_resync_lands() {
    // Five 4-minute songs from 10:00, then a stopset with a hard start at 10:20 that the songs
    // meet exactly (nothing trimmed, same show and tier), then more songs.
    let mut p = Programme::new("wgmr", t("10:00:00"));
    for i in 1..=5 {
        p.entries.push(ProgrammeEntry::song(
            format!("Song {i}"),
            Millis::from_secs(240),
        ));
    }
    let mut stopset =
        ProgrammeEntry::of(ItemKind::Stopset, "Half-hour ads", Millis::from_secs(120));
    stopset.hard_start = true;
    p.entries.push(stopset);
    for i in 6..=15 {
        p.entries.push(ProgrammeEntry::song(
            format!("Song {i}"),
            Millis::from_secs(240),
        ));
    }
    let timeline = Arc::new(p.to_timeline());
    assert!(grimnir_priority::is_hard_start(&timeline, 5));
    assert!(!grimnir_priority::is_hard_start(&timeline, 4));
    // An alert 10:05:00–10:05:30 in Song 2: Song 3 follows at 10:05:30, 2:30 early; the run of
    // songs cannot stretch, so the fallback bridges and the stopset starts at 10:20 exactly.
    let alert = source("eas", Tier::Emergency, "10:05:00").until(t("10:05:30"));
    let log = simulate(
        &Scenario::new(config(), Some(timeline), t("10:00:00"), t("10:30:00"))
            .with(t("10:05:00"), Event::SourceActivated { source: alert }),
    )
    .unwrap();
    assert_eq!(
        plays_of(&log, "Song 3"),
        vec![(t("10:05:30"), Millis::ZERO)]
    );
    assert_eq!(
        plays_of(&log, "Half-hour ads"),
        vec![(t("10:20:00"), Millis::ZERO)]
    );
    assert_eq!(tier_at(&log, "10:19:59"), Some(Tier::Fallback));
}

/// The `Preload` commands for an item with this label, as (sent at, starts).
fn preloads_of(log: &grimnir_priority::AirLog, label: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    log.commands()
        .filter_map(|c| match c {
            Command::Preload { at, item, starts } if item.label() == label => Some((*at, *starts)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_resume_after_a_known_end_is_preloaded_ahead() {
    // A booked live show 10:05–10:10:30 over Track 2 (10:04:10–10:08:10): automation comes back
    // at 10:10:30 with Track 3, whose planned time has not passed; it is preloaded 30 s before.
    let show = source("show", Tier::LiveScheduled, "10:05:00").until(t("10:10:30"));
    let log = simulate(
        &scenario("10:00:00", "10:20:00")
            .with(t("10:05:00"), Event::SourceActivated { source: show }),
    )
    .unwrap();
    assert_eq!(
        preloads_of(&log, "Track 3"),
        vec![(t("10:10:00"), t("10:10:30"))]
    );
    assert_eq!(
        plays_of(&log, "Track 3"),
        vec![(t("10:10:30"), Millis::ZERO)]
    );
    assert_eq!(label_at(&log, "10:10:30"), Some("Track 3".into()));
}

#[test]
fn a_resume_preload_follows_a_later_end() {
    // The show ends at 10:10:30, but an alert runs 10:10:20–10:11:00: the preload made at 10:10
    // is not used, and the resume at 10:11 is preloaded again, 30 s before.
    let show = source("show", Tier::LiveScheduled, "10:05:00").until(t("10:10:30"));
    let alert = source("eas", Tier::Emergency, "10:10:20").until(t("10:11:00"));
    let log = simulate(
        &scenario("10:00:00", "10:20:00")
            .with(t("10:05:00"), Event::SourceActivated { source: show })
            .with(t("10:10:20"), Event::SourceActivated { source: alert }),
    )
    .unwrap();
    assert_eq!(
        preloads_of(&log, "Track 3"),
        vec![
            (t("10:10:00"), t("10:10:30")),
            (t("10:10:30"), t("10:11:00"))
        ]
    );
    assert_eq!(
        plays_of(&log, "Track 3"),
        vec![(t("10:11:00"), Millis::ZERO)]
    );
}

#[test]
fn a_new_timeline_during_a_resync_run_continues_it_without_joining_mid_entry() {
    // The hour with Track 8 replaced by "New 8".
    let mut p = Programme::new("wgmr", t("10:00:00"));
    p.entries.push(ProgrammeEntry::of(
        ItemKind::Fixed,
        "ID 10",
        Millis::from_secs(10),
    ));
    for i in 1..=10 {
        let title = if i == 8 {
            "New 8".to_owned()
        } else {
            format!("Track {i}")
        };
        p.entries
            .push(ProgrammeEntry::song(title, Millis::from_secs(240)));
    }
    p.entries.push(ProgrammeEntry::song(
        "Filler",
        Millis::from_secs(3600 - 10 - 2400),
    ));
    p.entries.push(ProgrammeEntry::of(
        ItemKind::Fixed,
        "ID 11",
        Millis::from_secs(10),
    ));
    let replan = Arc::new(p.to_timeline());
    // The alert 10:13:00–10:13:30 starts a re-sync run: Track 5 at 10:13:30, Track 6 at 10:17:30
    // (planned 10:20:10). The new timeline comes at 10:20, in Track 6.
    let alert = source("eas", Tier::Emergency, "10:13:00").until(t("10:13:30"));
    let log = simulate(
        &scenario("10:00:00", "11:01:00")
            .with(t("10:13:00"), Event::SourceActivated { source: alert })
            .with(t("10:20:00"), Event::TimelineReplaced { timeline: replan }),
    )
    .unwrap();
    assert_eq!(
        plays_of(&log, "Track 6"),
        vec![(t("10:17:30"), Millis::ZERO)]
    );
    assert_eq!(
        plays_of(&log, "Track 7"),
        vec![(t("10:21:30"), Millis::ZERO)]
    );
    assert_eq!(plays_of(&log, "New 8"), vec![(t("10:25:30"), Millis::ZERO)]);
    assert!(plays_of(&log, "Track 8").is_empty());
    // Nothing joined part way in, and the hour still ends on time.
    assert!(
        log.commands()
            .all(|c| !matches!(c, Command::Play { offset, item, .. }
            if *offset > Millis::ZERO && !matches!(item, Item::Fallback))),
        "a play joined an entry part way"
    );
    assert_eq!(plays_of(&log, "ID 11"), vec![(t("11:00:00"), Millis::ZERO)]);
}

#[test]
fn a_late_resume_trims_soft_items_before_the_hard_start() {
    // A short override over the end of Track 10 (10:36:10–10:40:10): automation resumes late
    // with the filler, which is trimmed to land on 11:00.
    let dj = source("dj", Tier::LiveOverride, "10:39:00");
    let log = simulate(
        &scenario("10:30:00", "11:01:00")
            .with(t("10:39:00"), Event::SourceActivated { source: dj })
            .with(
                t("10:41:00"),
                Event::SourceDeactivated {
                    id: "dj".into(),
                    cause: Deactivation::Ended,
                },
            ),
    )
    .unwrap();
    // The entry after Track 10 is the filler (10:40:10–11:00:00); it starts at 10:41, 50 s late,
    // and is cut 50 s short with the trim fade.
    let filler = log
        .commands()
        .find_map(|c| match c {
            Command::Play {
                at,
                item,
                length,
                fade_out,
                ..
            } if item.label() == "Filler" => Some((*at, *length, *fade_out)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        filler,
        (
            t("10:41:00"),
            Some(Millis::from_secs(19 * 60)),
            Millis::from_secs(2)
        )
    );
    assert_eq!(label_at(&log, "11:00:00"), Some("ID 11".into()));
}

#[test]
fn live_override_fades_automation_out() {
    let dj = source("dj", Tier::LiveOverride, "10:05:00");
    let log = simulate(
        &scenario("10:00:00", "10:10:00")
            .with(t("10:05:00"), Event::SourceActivated { source: dj }),
    )
    .unwrap();
    assert!(log.commands().any(|c| matches!(c,
        Command::Fade { at, item, length } if *at == t("10:05:00") && item.label() == "Track 2"
            && *length == Millis::from_secs(3))));
    assert!(log.commands().any(|c| matches!(c,
        Command::RouteLive { at, source, .. } if *at == t("10:05:00") && source.as_str() == "dj")));
    let air = log.on_air_at(t("10:05:01"));
    assert!(is_source(&air.main.unwrap().item, "dj"));
    assert_eq!(air.tail.map(|a| a.item.label()), Some("Track 2".into()));
    let to: Vec<_> = log
        .changes()
        .filter(|c| c.at >= t("10:05:00"))
        .map(|c| (c.at, c.to))
        .collect();
    assert_eq!(
        to,
        vec![(t("10:05:00"), State::Fading), (t("10:05:03"), State::Live)]
    );
    assert!(log.on_air_at(t("10:05:03")).tail.is_none());
}

#[test]
fn equal_priority_first_in_time_wins() {
    let a = source("dj-a", Tier::LiveOverride, "10:05:00");
    let b = source("dj-b", Tier::LiveOverride, "10:06:00");
    let log = simulate(
        &scenario("10:00:00", "10:20:00")
            .with(t("10:05:00"), Event::SourceActivated { source: a })
            .with(t("10:06:00"), Event::SourceActivated { source: b })
            .with(
                t("10:10:00"),
                Event::SourceDeactivated {
                    id: "dj-a".into(),
                    cause: Deactivation::Ended,
                },
            ),
    )
    .unwrap();
    assert!(is_source(
        &log.on_air_at(t("10:07:00")).main.unwrap().item,
        "dj-a"
    ));
    // B waited; when A ends, B takes the air (A is gone, so it is stopped, not faded).
    assert!(is_source(
        &log.on_air_at(t("10:10:00")).main.unwrap().item,
        "dj-b"
    ));
    assert!(log.commands().any(|c| matches!(c,
        Command::Stop { at, item } if *at == t("10:10:00") && is_source(item, "dj-a"))));
}

#[test]
fn a_higher_live_tier_takes_over_a_scheduled_show_with_a_fade() {
    let show = source("show", Tier::LiveScheduled, "10:05:00");
    let dj = source("dj", Tier::LiveOverride, "10:08:00");
    let log = simulate(
        &scenario("10:00:00", "10:10:00")
            .with(t("10:04:00"), Event::SourceActivated { source: show })
            .with(t("10:08:00"), Event::SourceActivated { source: dj }),
    )
    .unwrap();
    assert!(log.commands().any(|c| matches!(c,
        Command::Fade { at, item, .. } if *at == t("10:08:00") && is_source(item, "show"))));
    assert!(is_source(
        &log.on_air_at(t("10:09:00")).main.unwrap().item,
        "dj"
    ));
}

#[test]
fn scheduled_live_show_begins_and_ends_on_time() {
    // The DJ connects early; the show holds the air 10:30–11:00, then automation goes on in step
    // with the timeline at its 11:00 ID.
    let show = source("show", Tier::LiveScheduled, "10:30:00").until(t("11:00:00"));
    let log = simulate(
        &scenario("10:20:00", "11:05:00")
            .with(t("10:28:00"), Event::SourceActivated { source: show }),
    )
    .unwrap();
    assert_eq!(tier_at(&log, "10:29:59"), Some(Tier::Automation));
    assert!(log.commands().any(|c| matches!(c,
        Command::RouteLive { at, .. } if *at == t("10:30:00"))));
    // Track 8 (10:28:10–10:32:10) is faded out at 10:30, and Track 9 was never committed.
    assert!(log.commands().any(|c| matches!(c,
        Command::Fade { at, item, .. } if *at == t("10:30:00") && item.label() == "Track 8")));
    assert!(plays_of(&log, "Track 9").is_empty());
    assert_eq!(tier_at(&log, "10:45:00"), Some(Tier::LiveScheduled));
    assert_eq!(plays_of(&log, "ID 11"), vec![(t("11:00:00"), Millis::ZERO)]);
    assert_eq!(label_at(&log, "11:00:05"), Some("ID 11".into()));
    assert_eq!(label_at(&log, "11:00:10"), Some("Track 11".into()));
}

#[test]
fn dj_reconnecting_inside_the_timeout_gets_the_air_back() {
    let dj = source("dj", Tier::LiveOverride, "10:05:00");
    let log = simulate(
        &scenario("10:00:00", "10:20:00")
            .with(t("10:05:00"), Event::SourceActivated { source: dj.clone() })
            .with(
                t("10:08:00"),
                Event::SourceDeactivated {
                    id: "dj".into(),
                    cause: Deactivation::Dropped,
                },
            )
            .with(t("10:08:20"), Event::SourceActivated { source: dj }),
    )
    .unwrap();
    // The fallback bridges the drop at once (SPEC.md: live input failover under 3 s): its Play
    // takes effect at the drop itself; automation does not come back.
    assert_eq!(tier_at(&log, "10:08:00"), Some(Tier::Fallback));
    assert!(log.commands().any(|c| matches!(c,
        Command::Play { at, item: Item::Fallback, .. } if *at == t("10:08:00"))));
    assert!(is_source(
        &log.on_air_at(t("10:08:20")).main.unwrap().item,
        "dj"
    ));
    assert!(is_source(
        &log.on_air_at(t("10:15:00")).main.unwrap().item,
        "dj"
    ));
    assert!(
        log.changes()
            .any(|c| c.reason == Reason::LiveReconnected && c.at == t("10:08:20"))
    );
    assert!(plays_of(&log, "Track 3").is_empty());
}

#[test]
fn dj_gone_beyond_the_timeout_hands_over_to_automation() {
    let dj = source("dj", Tier::LiveOverride, "10:05:00");
    let log = simulate(
        &scenario("10:00:00", "10:20:00")
            .with(t("10:05:00"), Event::SourceActivated { source: dj.clone() })
            .with(
                t("10:08:00"),
                Event::SourceDeactivated {
                    id: "dj".into(),
                    cause: Deactivation::Dropped,
                },
            )
            .with(t("10:09:00"), Event::SourceActivated { source: dj }),
    )
    .unwrap();
    assert_eq!(tier_at(&log, "10:08:29"), Some(Tier::Fallback));
    // At 10:08:30 the timeout runs out. Track 3 (10:08:10–10:12:10), the entry after the
    // interrupted Track 2, is still within its planned time: automation resumes with it.
    assert_eq!(label_at(&log, "10:08:30"), Some("Track 3".into()));
    assert!(
        log.changes()
            .any(|c| c.reason == Reason::LiveTimeout && c.at == t("10:08:30"))
    );
    // Coming back after the timeout is a new claim: the DJ takes the air again, with a fade.
    assert!(log.commands().any(|c| matches!(c,
        Command::Fade { at, item, .. } if *at == t("10:09:00") && item.label() == "Track 3")));
    assert!(is_source(
        &log.on_air_at(t("10:10:00")).main.unwrap().item,
        "dj"
    ));
}

#[test]
fn a_silent_dj_hands_over_to_automation_after_the_timeout() {
    let dj = source("dj", Tier::LiveOverride, "10:05:00");
    let silence = |silent| Event::Telemetry {
        report: Telemetry::Silence { silent },
    };
    let log = simulate(
        &scenario("10:00:00", "10:20:00")
            .with(t("10:05:00"), Event::SourceActivated { source: dj })
            .with(t("10:06:00"), silence(true))
            .with(t("10:06:10"), silence(false))
            .with(t("10:07:00"), silence(true)),
    )
    .unwrap();
    // Ten seconds of silence is inside the timeout; the second silence outlasts it.
    assert!(is_source(
        &log.on_air_at(t("10:07:29")).main.unwrap().item,
        "dj"
    ));
    assert_eq!(tier_at(&log, "10:07:30"), Some(Tier::Automation));
    assert!(
        log.changes()
            .any(|c| c.reason == Reason::LiveSilent && c.at == t("10:07:30"))
    );
}

#[test]
fn silence_on_automation_goes_to_fallback_then_back_to_automation_at_the_next_entry() {
    let log = simulate(&scenario("10:00:00", "10:10:00").with(
        t("10:05:00"),
        Event::Telemetry {
            report: Telemetry::Silence { silent: true },
        },
    ))
    .unwrap();
    assert_eq!(label_at(&log, "10:04:59"), Some("Track 2".into()));
    assert_eq!(tier_at(&log, "10:05:00"), Some(Tier::Fallback));
    assert!(log.commands().any(|c| matches!(c,
        Command::Stop { at, item } if *at == t("10:05:00") && item.label() == "Track 2")));
    assert!(log.changes().any(|c| c.reason == Reason::AutomationSilent));
    // Track 3 starts on time, a natural transition for the fallback.
    assert_eq!(
        plays_of(&log, "Track 3"),
        vec![(t("10:08:10"), Millis::ZERO)]
    );
    assert_eq!(label_at(&log, "10:08:10"), Some("Track 3".into()));
}

#[test]
fn engine_crash_mid_track_resumes_at_the_position_reached() {
    let log = simulate(
        &scenario("10:00:00", "10:10:00")
            .with(
                t("10:05:00"),
                Event::EngineFailed {
                    reason: "grpc: unavailable".into(),
                },
            )
            .with(t("10:05:04"), Event::EngineRestarted),
    )
    .unwrap();
    assert!(log.on_air_at(t("10:05:02")).main.is_none());
    let idle = log.changes().find(|c| c.at == t("10:05:00")).unwrap();
    assert_eq!((idle.to, idle.reason), (State::Idle, Reason::EngineFailed));
    let loads: Vec<_> = log
        .commands()
        .filter(|c| matches!(c, Command::LoadGraph { .. }))
        .map(Command::at)
        .collect();
    assert_eq!(loads, vec![t("10:00:00"), t("10:05:04")]);
    // Track 2 began at 10:04:10: at 10:05:04 it is 54 s in.
    assert!(plays_of(&log, "Track 2").contains(&(t("10:05:04"), Millis::from_secs(54))));
    assert_eq!(label_at(&log, "10:05:04"), Some("Track 2".into()));
    // Track 3 is preloaded and committed again after the restart, on time.
    assert_eq!(label_at(&log, "10:08:10"), Some("Track 3".into()));
}

#[test]
fn a_long_override_resumes_with_the_entry_of_that_moment() {
    let dj = source("dj", Tier::LiveOverride, "10:05:00");
    let log = simulate(
        &scenario("10:00:00", "10:30:00")
            .with(t("10:05:00"), Event::SourceActivated { source: dj })
            .with(
                t("10:17:00"),
                Event::SourceDeactivated {
                    id: "dj".into(),
                    cause: Deactivation::Ended,
                },
            ),
    )
    .unwrap();
    // Tracks 3 and 4 were covered; Track 5 (10:16:10–10:20:10) is on at 10:17.
    assert_eq!(
        plays_of(&log, "Track 5"),
        vec![(t("10:17:00"), Millis::ZERO)]
    );
    assert!(plays_of(&log, "Track 3").is_empty());
}

#[test]
fn refused_input_changes_nothing() {
    let mut ex = Executor::new(config()).unwrap();
    ex.handle(t("10:00:00"), Event::TimelineReplaced { timeline: hour() })
        .unwrap();
    let before = ex.status();
    assert!(ex.handle(t("09:00:00"), Event::Tick).is_err());
    let mut foreign = source("x", Tier::LiveOverride, "10:00:00");
    foreign.mount = "other".into();
    let err = ex
        .handle(t("10:00:01"), Event::SourceActivated { source: foreign })
        .unwrap_err();
    assert!(err.to_string().contains("mount `other`"), "{err}");
    let err = ex
        .handle(
            t("10:00:01"),
            Event::SourceDeactivated {
                id: "nope".into(),
                cause: Deactivation::Ended,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("nope"));
    let automation = source("x", Tier::Automation, "10:00:00");
    assert!(
        ex.handle(t("10:00:01"), Event::SourceActivated { source: automation })
            .is_err()
    );
    assert_eq!(ex.status(), before);
    assert_eq!(ex.now(), Some(t("10:00:00")));
}

#[test]
fn an_active_source_keeps_its_tier_until_it_ends() {
    let mut ex = Executor::new(config()).unwrap();
    ex.handle(t("10:00:00"), Event::TimelineReplaced { timeline: hour() })
        .unwrap();
    let alert = source("eas", Tier::Emergency, "10:00:00");
    ex.handle(t("10:00:01"), Event::SourceActivated { source: alert })
        .unwrap();
    let before = ex.status();
    let err = ex
        .handle(
            t("10:00:02"),
            Event::SourceActivated {
                source: source("eas", Tier::LiveOverride, "10:00:00"),
            },
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("already active at tier 0"),
        "{err}"
    );
    assert_eq!(ex.status(), before);
    assert_eq!(ex.on_air().main.map(|a| a.tier), Some(Tier::Emergency));
    // Ended, it can come back at another tier.
    ex.handle(
        t("10:00:03"),
        Event::SourceDeactivated {
            id: "eas".into(),
            cause: Deactivation::Ended,
        },
    )
    .unwrap();
    ex.handle(
        t("10:00:04"),
        Event::SourceActivated {
            source: source("eas", Tier::LiveOverride, "10:00:00"),
        },
    )
    .unwrap();
    assert_eq!(ex.on_air().main.map(|a| a.tier), Some(Tier::LiveOverride));
}

#[test]
fn no_timeline_means_fallback_until_one_arrives() {
    let log = simulate(
        &Scenario::new(config(), None, t("09:59:00"), t("10:10:00"))
            .with(t("09:59:30"), Event::TimelineReplaced { timeline: hour() }),
    )
    .unwrap();
    assert_eq!(tier_at(&log, "09:59:40"), Some(Tier::Fallback));
    // The fallback waits for the timeline's next entry: the 10:00 ID.
    assert_eq!(label_at(&log, "10:00:00"), Some("ID 10".into()));
    assert!(matches!(
        log.on_air_at(t("09:59:59")).main.unwrap().item,
        Item::Fallback
    ));
}

#[test]
fn a_skip_stops_the_entry_on_air_and_plays_the_next_from_its_beginning() {
    let mut ex = Executor::new(config()).unwrap();
    ex.handle(t("10:00:00"), Event::TimelineReplaced { timeline: hour() })
        .unwrap();
    // Track 1 plays 10:00:10–10:04:10; skip it 50 s in.
    let step = ex.handle(t("10:01:00"), Event::Skip).unwrap();
    assert!(step.commands.iter().any(|c| matches!(c,
        Command::Stop { at, item } if *at == t("10:01:00") && item.label() == "Track 1")));
    assert!(step.commands.iter().any(|c| matches!(c,
        Command::Play { at, item, offset, .. }
            if *at == t("10:01:00") && item.label() == "Track 2" && *offset == Millis::ZERO)));
    let on_air = ex.on_air().main.unwrap();
    assert_eq!(on_air.item.label(), "Track 2");
    assert_eq!(on_air.tier, Tier::Automation);
}

#[test]
fn a_skip_changes_nothing_while_a_priority_source_holds_the_air() {
    let mut ex = Executor::new(config()).unwrap();
    ex.handle(t("10:00:00"), Event::TimelineReplaced { timeline: hour() })
        .unwrap();
    let alert = source("eas", Tier::Emergency, "10:01:00");
    ex.handle(t("10:01:00"), Event::SourceActivated { source: alert })
        .unwrap();
    let step = ex.handle(t("10:01:05"), Event::Skip).unwrap();
    assert!(step.commands.is_empty());
    assert!(step.changes.is_empty());
    assert_eq!(ex.state(), State::Emergency);
}

#[test]
fn a_skip_of_the_last_entry_hands_over_to_the_fallback() {
    let mut ex = Executor::new(config()).unwrap();
    let mut programme = Programme::new("wgmr", t("10:00:00"));
    programme
        .entries
        .push(ProgrammeEntry::song("Only", Millis::from_secs(60)));
    ex.handle(
        t("10:00:00"),
        Event::TimelineReplaced {
            timeline: Arc::new(programme.to_timeline()),
        },
    )
    .unwrap();
    let step = ex.handle(t("10:00:20"), Event::Skip).unwrap();
    assert!(step.commands.iter().any(|c| matches!(c,
        Command::Play { at, item: Item::Fallback, .. } if *at == t("10:00:20"))));
    assert_eq!(ex.on_air().main.unwrap().item, Item::Fallback);
}

#[test]
fn a_changed_graph_is_loaded_at_once_and_after_every_engine_restart() {
    let mut ex = Executor::new(config()).unwrap();
    ex.handle(t("10:00:00"), Event::TimelineReplaced { timeline: hour() })
        .unwrap();
    let step = ex
        .handle(
            t("10:02:00"),
            Event::GraphChanged {
                graph: "night".into(),
            },
        )
        .unwrap();
    // (The step also carries what the clock owed since 10:00, the Play of Track 1.)
    let loads: Vec<_> = step
        .commands
        .iter()
        .filter(|c| matches!(c, Command::LoadGraph { .. }))
        .collect();
    assert_eq!(
        loads,
        [&Command::LoadGraph {
            at: t("10:02:00"),
            graph: "night".into()
        }]
    );
    // The same graph again changes nothing.
    let step = ex
        .handle(
            t("10:02:01"),
            Event::GraphChanged {
                graph: "night".into(),
            },
        )
        .unwrap();
    assert!(step.commands.is_empty());
    // While the engine is down nothing is sent; the restart loads the new graph.
    ex.handle(
        t("10:03:00"),
        Event::EngineFailed {
            reason: "crash".into(),
        },
    )
    .unwrap();
    let step = ex
        .handle(
            t("10:03:01"),
            Event::GraphChanged {
                graph: "day".into(),
            },
        )
        .unwrap();
    assert!(step.commands.is_empty());
    let step = ex.handle(t("10:03:02"), Event::EngineRestarted).unwrap();
    assert!(step.commands.iter().any(|c| matches!(c,
        Command::LoadGraph { graph, .. } if graph == "day")));
}
