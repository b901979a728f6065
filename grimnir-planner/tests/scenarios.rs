//! Planning scenarios through the public API: clocks, hard starts, shows, DST, starvation,
//! rolling horizons and validation.

// Helpers here are test code too: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{TimeDelta, Timelike};
use chrono_tz::Tz;
use common::*;
use grimnir_planner::*;

fn station(tz: Tz) -> StationConfig {
    let mut s = Station::new("test-fm", tz);
    s.crossfade = Millis::from_secs(2);
    StationConfig::new(s)
}

/// A station with an ID at the top, two blocks and a stopset hard at :30.
fn hourly_station(tz: Tz) -> (StationConfig, Library) {
    let mut config = station(tz);
    let mut music = SmartBlock::new(
        "music",
        Some(Filter::Tags(TagOp::Exclude(vec!["id".into(), "ad".into()]))),
    );
    music.duration.tolerance = Millis::from_secs(45);
    music.quotas = vec![Quota::MaxPerArtist(1)];
    config.smart_blocks.push(music);
    config.clocks.push(Clock {
        id: "hour".into(),
        name: String::new(),
        slots: vec![
            Slot::new(SlotKind::HardItem {
                media: "station-id".into(),
            }),
            Slot::new(SlotKind::SmartBlock {
                block: "music".into(),
                duration: Some(Millis::from_minutes(12)),
            }),
            Slot::new(SlotKind::SmartBlock {
                block: "music".into(),
                duration: None,
            }),
            Slot::hard(
                SlotKind::Stopset {
                    items: vec!["ad-1".into(), "ad-2".into()],
                },
                Millis::from_minutes(30),
            ),
            Slot::new(SlotKind::SmartBlock {
                block: "music".into(),
                duration: None,
            }),
        ],
    });
    config.grid.default = Some("hour".into());
    let mut items = tracks(300, 60);
    items.push(MediaItem::new("station-id", "ID", Millis::from_secs(7)).tagged("id"));
    items.push(MediaItem::new("ad-1", "Ad 1", Millis::from_secs(30)).tagged("ad"));
    items.push(MediaItem::new("ad-2", "Ad 2", Millis::from_secs(30)).tagged("ad"));
    (
        config,
        Library {
            items,
            history: vec![],
        },
    )
}

#[test]
fn hard_starts_are_exact_and_stopsets_play_whole() {
    let (config, library) = hourly_station(chrono_tz::Europe::London);
    let planner = Planner::new(config, library).unwrap();
    let window = Window::hours(utc("2026-06-01T00:00:00Z"), 24).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 11);
    let tz = timeline.timezone;
    let ads: Vec<&Entry> = timeline
        .entries
        .iter()
        .filter(|e| {
            e.source
                .media_id()
                .is_some_and(|m| m.as_str().starts_with("ad-"))
        })
        .collect();
    assert_eq!(ads.len(), 48, "two adverts in each of 24 hours");
    for pair in ads.chunks(2) {
        let local = pair[0].start.with_timezone(&tz);
        assert_eq!(
            (
                local.minute(),
                local.second(),
                pair[0].start.timestamp_subsec_millis()
            ),
            (30, 0, 0)
        );
        assert!(
            pair.iter().all(|e| !e.provenance.trimmed),
            "adverts are never cut"
        );
        assert_eq!(pair[1].start, pair[0].end);
    }
    let ids = timeline.entries.iter().filter(|e| {
        e.source
            .media_id()
            .is_some_and(|m| m.as_str() == "station-id")
    });
    assert!(
        ids.map(|e| e.start.with_timezone(&tz))
            .all(|t| t.minute() == 0 && t.second() == 0)
    );
}

#[test]
fn explain_names_clock_slot_block_and_rules() {
    let (config, library) = hourly_station(chrono_tz::Europe::London);
    let planner = Planner::new(config, library).unwrap();
    let window = Window::hours(utc("2026-06-01T00:00:00Z"), 2).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 3);
    let pick = timeline
        .entries
        .iter()
        .find(|e| e.provenance.block.is_some())
        .unwrap();
    let text = timeline.explain(pick);
    assert!(text.contains("clock `hour` slot 2 (smart_block)"), "{text}");
    assert!(text.contains("smart block `music`, pick 1"), "{text}");
    assert!(text.contains("random stream"), "{text}");
    assert_eq!(timeline.what_plays_at(pick.start), Some(pick));
    let mid = pick.start + (pick.end - pick.start) / 2;
    assert_eq!(timeline.what_plays_at(mid), Some(pick));
    assert_eq!(
        timeline.what_plays_at(window.start() - TimeDelta::seconds(1)),
        None
    );
}

/// The number of entries that start at a local top of the hour (the station ID).
fn top_of_hour_ids(timeline: &Timeline) -> usize {
    timeline
        .entries
        .iter()
        .filter(|e| {
            e.source
                .media_id()
                .is_some_and(|m| m.as_str() == "station-id")
        })
        .filter(|e| {
            let l = e.start.with_timezone(&timeline.timezone);
            l.minute() == 0 && l.second() == 0
        })
        .count()
}

fn dst_day(tz: Tz, day: &str, expect_minutes: i64, expect_ids: usize, expect_stopsets: usize) {
    let (config, library) = hourly_station(tz);
    let planner = Planner::new(config, library).unwrap();
    let start = local(tz, &format!("{day} 00:00"));
    let next = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap() + TimeDelta::days(1);
    let end = local(tz, &format!("{next} 00:00"));
    assert_eq!(
        (end - start).num_minutes(),
        expect_minutes,
        "{tz} {day} is not the day expected"
    );
    let window = Window::new(start, end).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 5);
    assert_eq!(top_of_hour_ids(&timeline), expect_ids, "{tz} {day}");
    assert_eq!(
        timeline
            .entries
            .iter()
            .filter(|e| e.source.media_id().is_some_and(|m| m.as_str() == "ad-1"))
            .count(),
        expect_stopsets
    );
}

#[test]
fn new_york_23_and_25_hour_days() {
    dst_day(chrono_tz::America::New_York, "2026-03-08", 23 * 60, 23, 23);
    dst_day(chrono_tz::America::New_York, "2026-11-01", 25 * 60, 25, 25);
}

#[test]
fn london_23_and_25_hour_days() {
    dst_day(chrono_tz::Europe::London, "2026-03-29", 23 * 60, 23, 23);
    dst_day(chrono_tz::Europe::London, "2026-10-25", 25 * 60, 25, 25);
}

#[test]
fn lord_howe_half_hour_days() {
    // Spring (23.5 h): 02:00–02:30 does not exist; hour 02 starts at 02:30 and, being half an
    // hour into its template, plays the stopset hard at :30 but no top-of-hour ID.
    dst_day(
        chrono_tz::Australia::Lord_Howe,
        "2026-10-04",
        23 * 60 + 30,
        23,
        24,
    );
    // Autumn (24.5 h): 01:30–02:00 happens twice; the repeat plays the second half of hour 01.
    let tz = chrono_tz::Australia::Lord_Howe;
    let (config, library) = hourly_station(tz);
    let planner = Planner::new(config, library).unwrap();
    let window = Window::new(local(tz, "2026-04-05 00:00"), local(tz, "2026-04-06 00:00")).unwrap();
    assert_eq!((window.end() - window.start()).num_minutes(), 24 * 60 + 30);
    let (timeline, _) = plan_checked(&planner, window, 5);
    assert_eq!(top_of_hour_ids(&timeline), 24);
    let stopsets = timeline
        .entries
        .iter()
        .filter(|e| e.source.media_id().is_some_and(|m| m.as_str() == "ad-1"));
    assert_eq!(
        stopsets.count(),
        25,
        "hour 01's :30 stopset airs in both of its halves"
    );
}

#[test]
fn a_tiny_library_is_stretched_not_looped() {
    // Three songs by one artist against an hour of strict separation: rules must give way in
    // the documented order, the air stays full, and no song plays twice in a row.
    let mut config = station(chrono_tz::UTC);
    let mut block = SmartBlock::new("strict", None);
    block.separation = Separation {
        artist: SeparationWindow::new(60, 5),
        title: SeparationWindow::new(240, 10),
        album: SeparationWindow::new(60, 0),
    };
    config.smart_blocks.push(block);
    config.clocks.push(music_clock("c", "strict"));
    config.grid.default = Some("c".into());
    let items = vec![
        track("a", "Solo", 200),
        track("b", "Solo", 210),
        track("c", "Solo", 190),
    ];
    let planner = Planner::new(
        config,
        Library {
            items,
            history: vec![],
        },
    )
    .unwrap();
    let window = Window::hours(utc("2026-02-01T00:00:00Z"), 6).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 9);
    let relaxed: Vec<&Relaxation> = diagnostics
        .iter()
        .filter_map(|d| match &d.kind {
            DiagnosticKind::Relaxed { relaxation, .. } => Some(relaxation),
            _ => None,
        })
        .collect();
    assert!(
        relaxed.contains(&&Relaxation::TitleSeparation),
        "{diagnostics:#?}"
    );
    let ids: Vec<&str> = timeline
        .entries
        .iter()
        .filter_map(|e| e.source.media_id())
        .map(|m| m.as_str())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] != w[1]),
        "a song repeated back to back: {ids:?}"
    );
    for id in ["a", "b", "c"] {
        let n = ids.iter().filter(|x| **x == id).count();
        assert!(
            n >= ids.len() / 4,
            "{id} played {n} of {} times: rotation is uneven",
            ids.len()
        );
    }
    assert!(timeline.entries.iter().all(|e| e.tier == Tier::Automation));
}

#[test]
fn a_block_with_nothing_eligible_borrows_from_the_filler() {
    let mut config = station(chrono_tz::UTC);
    config.smart_blocks.push(SmartBlock::new(
        "jazz",
        Some(Filter::Genre(TextOp::Is("jazz".into()))),
    ));
    config.clocks.push(music_clock("c", "jazz"));
    config.grid.default = Some("c".into());
    let planner = Planner::new(
        config,
        Library {
            items: tracks(40, 10),
            history: vec![],
        },
    )
    .unwrap();
    let window = Window::hours(utc("2026-02-01T00:00:00Z"), 2).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 1);
    assert!(
        timeline
            .entries
            .iter()
            .all(|e| e.provenance.relaxed.contains(&Relaxation::Filter))
    );
    assert!(
        timeline
            .entries
            .iter()
            .all(|e| e.provenance.block.as_ref().map(|b| b.as_str()) == Some("(library)"))
    );
    assert!(diagnostics.iter().any(|d| matches!(
        &d.kind,
        DiagnosticKind::Relaxed {
            relaxation: Relaxation::Filter,
            ..
        }
    )));
}

#[test]
fn an_empty_library_falls_back_and_says_so() {
    let mut config = station(chrono_tz::UTC);
    config.smart_blocks.push(SmartBlock::new("all", None));
    config.clocks.push(music_clock("c", "all"));
    config.grid.default = Some("c".into());
    let planner = Planner::new(config, Library::default()).unwrap();
    let window = Window::hours(utc("2026-02-01T00:00:00Z"), 3).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 1);
    assert!(
        timeline
            .entries
            .iter()
            .all(|e| e.tier == Tier::Fallback && e.source == Source::Fallback)
    );
    assert!(diagnostics.iter().any(|d| d.severity == Severity::Error));
}

#[test]
fn hours_without_a_clock_are_filled_and_reported() {
    let mut config = station(chrono_tz::UTC);
    config.smart_blocks.push(SmartBlock::new("all", None));
    config.clocks.push(music_clock("c", "all"));
    config.grid.rules.push(GridRule {
        days: vec![],
        from: 6,
        to: 18,
        clock: "c".into(),
    });
    let planner = Planner::new(
        config,
        Library {
            items: tracks(100, 30),
            history: vec![],
        },
    )
    .unwrap();
    let window = Window::hours(utc("2026-02-01T04:00:00Z"), 4).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 1);
    let no_clock = diagnostics
        .iter()
        .filter(|d| matches!(d.kind, DiagnosticKind::NoClock { .. }))
        .count();
    assert_eq!(no_clock, 2, "04:00 and 05:00 have no clock");
    assert!(
        timeline
            .what_plays_at(utc("2026-02-01T04:30:00Z"))
            .unwrap()
            .provenance
            .role
            == Role::HourFill
    );
    assert!(
        timeline
            .what_plays_at(utc("2026-02-01T06:30:00Z"))
            .unwrap()
            .provenance
            .role
            == Role::Slot
    );
}

#[test]
fn dated_overrides_replace_the_grid() {
    let mut config = station(chrono_tz::Europe::Berlin);
    config.smart_blocks.push(SmartBlock::new("all", None));
    config.smart_blocks.push(SmartBlock::new(
        "old",
        Some(Filter::Year(NumberOp::Lt(1990.0))),
    ));
    config.clocks.push(music_clock("normal", "all"));
    config.clocks.push(music_clock("holiday", "old"));
    config.grid.default = Some("normal".into());
    config.overrides.push(DatedOverride {
        date: chrono::NaiveDate::from_ymd_opt(2026, 12, 25).unwrap(),
        from: 10,
        to: 12,
        clock: "holiday".into(),
    });
    let planner = Planner::new(
        config,
        Library {
            items: tracks(200, 40),
            history: vec![],
        },
    )
    .unwrap();
    let tz = chrono_tz::Europe::Berlin;
    let window = Window::new(local(tz, "2026-12-25 09:00"), local(tz, "2026-12-25 13:00")).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 2);
    for e in &timeline.entries {
        let h = e.start.with_timezone(&tz).hour();
        let clock = e.provenance.clock.as_ref().unwrap().as_str();
        assert_eq!(
            clock,
            if (10..12).contains(&h) {
                "holiday"
            } else {
                "normal"
            },
            "{}",
            e.start
        );
    }
}

fn show(id: &str, start: &str, end: &str, content: ShowContent) -> Show {
    Show {
        id: id.into(),
        name: format!("Show {id}"),
        repeat: Repeat::Weekly(vec![chrono::Weekday::Fri]),
        starts_on: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        ends_on: None,
        start: chrono::NaiveTime::parse_from_str(start, "%H:%M").unwrap(),
        end: Some(chrono::NaiveTime::parse_from_str(end, "%H:%M").unwrap()),
        duration: None,
        content,
        underbooked: Underbooked::Filler,
        overbooked: Overbooked::Trim,
    }
}

#[test]
fn live_show_takes_the_air_at_exact_times() {
    let (mut config, library) = hourly_station(chrono_tz::America::New_York);
    config
        .shows
        .push(show("dj", "20:15", "21:45", ShowContent::Live));
    let planner = Planner::new(config, library).unwrap();
    let tz = chrono_tz::America::New_York;
    let window = Window::new(local(tz, "2026-11-27 19:00"), local(tz, "2026-11-27 23:00")).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 4);
    let live: Vec<&Entry> = timeline
        .entries
        .iter()
        .filter(|e| e.tier == Tier::LiveScheduled)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].start, live[0].end),
        (local(tz, "2026-11-27 20:15"), local(tz, "2026-11-27 21:45"))
    );
    assert_eq!(
        live[0].source,
        Source::Live {
            name: "Show dj".into()
        }
    );
    // The clock resumes mid-hour at 21:45 with its template as of :45 — no top-of-hour ID.
    let after = timeline
        .what_plays_at(local(tz, "2026-11-27 21:45"))
        .unwrap();
    assert_eq!(
        after.provenance.clock.as_ref().map(ClockId::as_str),
        Some("hour")
    );
    assert_ne!(
        after.source.media_id().map(MediaId::as_str),
        Some("station-id")
    );
}

#[test]
fn overbooked_list_is_trimmed_at_the_end_librettime_style() {
    let (mut config, library) = hourly_station(chrono_tz::UTC);
    let list: Vec<MediaId> = (0..12).map(|i| MediaId::new(format!("t{i}"))).collect();
    config
        .shows
        .push(show("list", "20:00", "20:30", ShowContent::List(list)));
    let planner = Planner::new(config, library).unwrap();
    let window = Window::hours(utc("2026-11-27T19:30:00Z"), 2).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 4);
    let in_show: Vec<&Entry> = timeline
        .entries
        .iter()
        .filter(|e| e.provenance.show.is_some())
        .collect();
    let last = in_show.last().unwrap();
    assert_eq!(last.end, utc("2026-11-27T20:30:00Z"));
    assert!(last.provenance.trimmed && last.transition.fade_out > Millis::ZERO);
    assert!(
        in_show
            .iter()
            .all(|e| e.provenance.role == Role::ShowContent),
        "nothing but the list plays"
    );
    let ids: Vec<&str> = in_show
        .iter()
        .filter_map(|e| e.source.media_id())
        .map(MediaId::as_str)
        .collect();
    assert_eq!(
        ids,
        (0..ids.len()).map(|i| format!("t{i}")).collect::<Vec<_>>(),
        "in running order"
    );
    assert!(diagnostics.iter().any(|d| matches!(&d.kind, DiagnosticKind::Overbooked { dropped, .. } if *dropped as usize == 12 - ids.len())));
}

#[test]
fn overbooked_list_can_drop_instead_of_cutting() {
    let (mut config, library) = hourly_station(chrono_tz::UTC);
    let list: Vec<MediaId> = (0..12).map(|i| MediaId::new(format!("t{i}"))).collect();
    let mut s = show("list", "20:00", "20:30", ShowContent::List(list));
    s.overbooked = Overbooked::DropCrossing;
    config.shows.push(s);
    let planner = Planner::new(config, library).unwrap();
    let window = Window::hours(utc("2026-11-27T19:30:00Z"), 2).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 4);
    let content: Vec<&Entry> = timeline
        .entries
        .iter()
        .filter(|e| e.provenance.role == Role::ShowContent)
        .collect();
    assert!(
        content.iter().all(|e| !e.provenance.trimmed),
        "no list item is cut"
    );
    let fill: Vec<&Entry> = timeline
        .entries
        .iter()
        .filter(|e| e.provenance.role == Role::ShowFill)
        .collect();
    assert!(!fill.is_empty(), "the filler closes the show");
    assert_eq!(fill.last().unwrap().end, utc("2026-11-27T20:30:00Z"));
}

#[test]
fn underbooked_list_repeats_when_asked() {
    let (mut config, library) = hourly_station(chrono_tz::UTC);
    let mut s = show(
        "loop",
        "20:00",
        "21:00",
        ShowContent::List(vec!["t1".into(), "t2".into()]),
    );
    s.underbooked = Underbooked::Repeat;
    config.shows.push(s);
    let planner = Planner::new(config, library).unwrap();
    let window = Window::hours(utc("2026-11-27T20:00:00Z"), 1).unwrap();
    let (timeline, _) = plan_checked(&planner, window, 4);
    let ids: Vec<&str> = timeline
        .entries
        .iter()
        .filter_map(|e| e.source.media_id())
        .map(MediaId::as_str)
        .collect();
    assert!(
        ids.len() > 4
            && ids
                .iter()
                .enumerate()
                .all(|(i, id)| *id == ["t1", "t2"][i % 2]),
        "{ids:?}"
    );
}

#[test]
fn overlapping_shows_first_in_time_wins() {
    let (mut config, library) = hourly_station(chrono_tz::UTC);
    config
        .shows
        .push(show("late", "20:30", "22:00", ShowContent::Live));
    config
        .shows
        .push(show("early", "20:00", "21:00", ShowContent::Live));
    let planner = Planner::new(config, library).unwrap();
    let window = Window::hours(utc("2026-11-27T19:00:00Z"), 4).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 4);
    let early = timeline.what_plays_at(utc("2026-11-27T20:45:00Z")).unwrap();
    assert_eq!(
        early.provenance.show.as_ref().map(ShowId::as_str),
        Some("early")
    );
    let late = timeline.what_plays_at(utc("2026-11-27T21:00:00Z")).unwrap();
    assert_eq!(
        (
            late.provenance.show.as_ref().map(ShowId::as_str),
            late.start
        ),
        (Some("late"), utc("2026-11-27T21:00:00Z"))
    );
    assert!(
        diagnostics
            .iter()
            .any(|d| matches!(d.kind, DiagnosticKind::ShowConflict { .. }))
    );
}

#[test]
fn extend_equals_one_longer_plan() {
    let (config, library) = hourly_station(chrono_tz::America::New_York);
    let planner = Planner::new(config, library).unwrap();
    let start = utc("2026-11-24T05:00:00Z");
    let (whole, _) = planner.plan(PlanRequest::new(Window::hours(start, 48).unwrap(), 77));
    let (first, _) = planner.plan(PlanRequest::new(Window::hours(start, 17).unwrap(), 77));
    let (extended, _) = planner.extend(&first, start + TimeDelta::hours(48));
    assert_eq!(extended.entries, whole.entries);
    check(&planner, &extended, &Window::hours(start, 48).unwrap()).unwrap();
}

#[test]
fn extend_resumes_inside_an_hour_the_plan_began_part_way() {
    // The window starts at :05, inside the first (soft) block; extending from inside that same
    // block must give what one plan gives.
    let (config, library) = hourly_station(chrono_tz::UTC);
    let planner = Planner::new(config, library).unwrap();
    let start = utc("2026-05-05T10:05:00Z");
    let (whole, _) = planner.plan(PlanRequest::new(Window::hours(start, 3).unwrap(), 21));
    for minutes in [2, 4, 6, 9, 25, 50] {
        let short = Window::new(start, start + TimeDelta::minutes(minutes)).unwrap();
        let (part, _) = planner.plan(PlanRequest::new(short, 21));
        let (extended, _) = planner.extend(&part, start + TimeDelta::hours(3));
        assert_eq!(extended.entries, whole.entries, "split after {minutes} min");
    }
}

#[test]
fn replan_with_unchanged_inputs_changes_nothing() {
    let (config, library) = hourly_station(chrono_tz::Europe::London);
    let planner = Planner::new(config, library).unwrap();
    let start = utc("2026-06-01T00:00:00Z");
    let window = Window::hours(start, 48).unwrap();
    let (timeline, _) = planner.plan(PlanRequest::new(window, 5));
    for cut in [1, 7, 13, 30, 47] {
        let at = start + TimeDelta::minutes(cut * 60 + 17);
        let (again, _) = planner.replan(&timeline, at, start);
        assert!(
            diff(&timeline, &again).is_empty(),
            "re-plan at {at} changed the air"
        );
    }
}

#[test]
fn replan_after_a_library_change_keeps_the_past_and_obeys_the_change() {
    let (config, library) = hourly_station(chrono_tz::Europe::London);
    let planner = Planner::new(config.clone(), library.clone()).unwrap();
    let start = utc("2026-06-01T00:00:00Z");
    let window = Window::hours(start, 48).unwrap();
    let (timeline, _) = planner.plan(PlanRequest::new(window, 5));
    // An artist is withdrawn from rotation at T (a rule change the operator makes live).
    let at = start + TimeDelta::minutes(10 * 60 + 5);
    let mut withdrawn = config.clone();
    let music = &mut withdrawn.smart_blocks[0];
    let old = music.filter.take().unwrap();
    music.filter = Some(Filter::All(vec![
        old,
        Filter::Artist(TextOp::IsNot("Artist 7".into())),
    ]));
    let changed = Planner::new(withdrawn, library).unwrap();
    let (again, _) = changed.replan(&timeline, at, at);
    check_since(&changed, &again, &window, at).unwrap();
    let before = |t: &Timeline| {
        t.entries
            .iter()
            .filter(|e| e.start < at)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        before(&again),
        before(&timeline),
        "entries before T are kept"
    );
    let after_artist7 = again.entries.iter().filter(|e| e.start >= at).filter(|e| {
        matches!(&e.source, Source::Media { artists, .. } if artists.iter().any(|a| a == "Artist 7"))
    });
    assert_eq!(after_artist7.count(), 0);
    let d = diff(&timeline, &again);
    assert!(
        d.first_change.is_some_and(|t| t >= at),
        "{:?}",
        d.first_change
    );
}

#[test]
fn replan_cuts_the_kept_entry_at_a_new_show() {
    let (config, library) = hourly_station(chrono_tz::UTC);
    let planner = Planner::new(config.clone(), library.clone()).unwrap();
    let window = Window::hours(utc("2026-11-27T18:00:00Z"), 6).unwrap();
    let (timeline, _) = planner.plan(PlanRequest::new(window, 8));
    // A show is booked to start inside the item on air at 20:10.
    let on_air = timeline
        .what_plays_at(utc("2026-11-27T20:10:00Z"))
        .unwrap()
        .clone();
    let show_start = on_air.start + (on_air.end - on_air.start) / 2;
    let mut booked = config.clone();
    let mut s = show("news", "00:00", "00:30", ShowContent::Live);
    s.start = show_start.time();
    s.end = None;
    s.duration = Some(Millis::from_minutes(30));
    booked.shows.push(s);
    let changed = Planner::new(booked, library).unwrap();
    let (again, _) = changed.replan(
        &timeline,
        utc("2026-11-27T20:10:00Z"),
        utc("2026-11-27T20:10:00Z"),
    );
    check(&changed, &again, &window).unwrap();
    let cut = again
        .entries
        .iter()
        .find(|e| e.start == on_air.start)
        .unwrap();
    assert_eq!((cut.end, cut.provenance.trimmed), (show_start, true));
    assert_eq!(
        again.what_plays_at(show_start).unwrap().tier,
        Tier::LiveScheduled
    );
}

#[test]
fn history_separates_across_the_window_boundary() {
    let mut config = station(chrono_tz::UTC);
    let mut block = SmartBlock::new("music", None);
    block.separation = Separation {
        artist: SeparationWindow::new(90, 0),
        ..Separation::NONE
    };
    config.smart_blocks.push(block);
    config.clocks.push(music_clock("c", "music"));
    config.grid.default = Some("c".into());
    let items = tracks(200, 40);
    let start = utc("2026-03-01T00:00:00Z");
    let history: Vec<Play> = (0..20)
        .map(|i| Play {
            media: MediaId::new(format!("t{i}")),
            started_at: start - TimeDelta::minutes(60 - i * 3),
        })
        .collect();
    let planner = Planner::new(config, Library { items, history }).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, Window::hours(start, 3).unwrap(), 3);
    assert!(
        diagnostics
            .iter()
            .all(|d| !matches!(d.kind, DiagnosticKind::Relaxed { .. }))
    );
    // Artists 0..19 played in the last hour: none of them may open the plan.
    let first = &timeline.entries[0];
    let Source::Media { artists, .. } = &first.source else {
        panic!()
    };
    let n: usize = artists[0].trim_start_matches("Artist ").parse().unwrap();
    assert!(n >= 20, "{} played within 90 minutes", artists[0]);
}

#[test]
fn relative_date_filters_count_from_now() {
    let mut config = station(chrono_tz::UTC);
    config.smart_blocks.push(SmartBlock::new(
        "fresh",
        Some(Filter::AddedAt(DateOp::WithinLast(Millis::from_minutes(
            7 * 24 * 60,
        )))),
    ));
    config.clocks.push(music_clock("c", "fresh"));
    config.grid.default = Some("c".into());
    let now = utc("2026-05-10T00:00:00Z");
    let mut items = tracks(60, 30);
    for (i, item) in items.iter_mut().enumerate() {
        item.added_at = Some(now - TimeDelta::days(i as i64));
    }
    let planner = Planner::new(
        config,
        Library {
            items,
            history: vec![],
        },
    )
    .unwrap();
    let mut request = PlanRequest::new(Window::hours(utc("2026-05-11T00:00:00Z"), 2).unwrap(), 1);
    request.now = Some(now);
    let (timeline, _) = planner.plan(request);
    check(&planner, &timeline, &request.window).unwrap();
    for e in timeline
        .entries
        .iter()
        .filter(|e| !e.provenance.relaxed.contains(&Relaxation::Filter))
    {
        let n: i64 = e.source.media_id().unwrap().as_str()[1..].parse().unwrap();
        assert!(n <= 7, "t{n} was added {n} days before now");
    }
}

#[test]
fn bad_input_names_the_field() {
    let mut config = station(chrono_tz::UTC);
    config.clocks.push(music_clock("c", "missing"));
    let err = Planner::new(config, Library::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "clocks[0].slots[0].smart_block.block refers to unknown smart block `missing`"
    );

    let mut config = station(chrono_tz::UTC);
    config.smart_blocks.push(SmartBlock::new("b", None));
    config.smart_blocks[0].duration.tolerance = Millis::from_minutes(30);
    let err = Planner::new(config, Library::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("smart_blocks[0].duration.tolerance = 30:00"),
        "{err}"
    );

    let mut config = station(chrono_tz::UTC);
    config.clocks.push(Clock {
        id: "c".into(),
        name: String::new(),
        slots: vec![
            Slot::hard(
                SlotKind::Live {
                    name: "x".into(),
                    duration: Millis::from_minutes(5),
                },
                Millis::from_minutes(40),
            ),
            Slot::hard(
                SlotKind::Live {
                    name: "y".into(),
                    duration: Millis::from_minutes(5),
                },
                Millis::from_minutes(20),
            ),
        ],
    });
    let err = Planner::new(config, Library::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("clocks[0].slots[1].hard_start = 20:00"),
        "{err}"
    );

    assert!(Window::new(utc("2026-01-02T00:00:00Z"), utc("2026-01-01T00:00:00Z")).is_err());
    assert!(Window::hours(utc("2026-01-01T00:00:00Z"), 24 * 63).is_err());
}

#[test]
fn yaml_errors_point_at_the_line() {
    let text = "station:\n  id: x\n  timezone: Mars/Olympus_Mons\n";
    let err = StationConfig::from_str_as(text, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3"), "{err}");
    let text = "station: { id: x, timezone: UTC }\nsmart_blocks:\n  - id: b\n    order: sideways\n";
    let err = StationConfig::from_str_as(text, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sideways") && err.contains("line 4"), "{err}");
    let clock = |slot: &str| {
        format!(
            "station: {{ id: x, timezone: UTC }}\nclocks:\n  - id: c\n    slots:\n      - {slot}\n"
        )
    };
    let refused = |slot: &str| {
        StationConfig::from_str_as(&clock(slot), Format::Yaml)
            .unwrap_err()
            .to_string()
    };
    let err = refused("{ stopset: { items: [a] }, hard_strat: \"30:00\" }");
    assert!(
        err.contains("hard_strat"),
        "a misspelt hard_start must not pass: {err}"
    );
    let err = refused("{ smart_block: { block: b, duraton: 5m } }");
    assert!(err.contains("duraton"), "{err}");
    let err = refused("{ hard_item: { media: a }, live: { name: x, duration: 5m } }");
    assert!(err.contains("exactly one"), "{err}");
    let ok = StationConfig::from_str_as(
        &clock("{ stopset: { items: [a] }, hard_start: \"30:00\" }"),
        Format::Yaml,
    )
    .unwrap();
    assert_eq!(
        ok.clocks[0].slots[0].hard_start,
        Some(Millis::from_minutes(30))
    );
    let text = "items:\n  - { id: a, title: A, duration: \"3:75\" }\n";
    let err = Library::from_str_as(text, Format::Yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("seconds in `3:75` must be below 60"), "{err}");
}

#[test]
fn demo_files_load_and_plan() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/");
    let station = std::fs::read_to_string(format!("{dir}station.yaml")).unwrap();
    let library = std::fs::read_to_string(format!("{dir}library.yaml")).unwrap();
    let config = StationConfig::from_str_as(&station, Format::Yaml).unwrap();
    let library = Library::from_str_as(&library, Format::Yaml).unwrap();
    let planner = Planner::new(config, library).unwrap();
    let tz = chrono_tz::America::New_York;
    // A Friday to Sunday span: jazz show, live show and the fortnightly countdown all appear.
    let window = Window::new(local(tz, "2026-11-27 00:00"), local(tz, "2026-11-30 00:00")).unwrap();
    let (timeline, diagnostics) = plan_checked(&planner, window, 1);
    for show in ["friday-jazz", "saturday-live", "countdown"] {
        assert!(
            timeline.entries.iter().any(|e| e
                .provenance
                .show
                .as_ref()
                .is_some_and(|s| s.as_str() == show)),
            "{show}"
        );
    }
    assert!(
        diagnostics.iter().all(|d| d.severity < Severity::Error),
        "{diagnostics:#?}"
    );
}

#[test]
fn after_a_show_ends_mid_hour_the_clock_block_fills_to_the_top() {
    let mut config = station(chrono_tz::UTC);
    config.smart_blocks.push(SmartBlock::new("music", None));
    config.clocks.push(Clock {
        id: "c".into(),
        name: String::new(),
        slots: vec![
            Slot::new(SlotKind::HardItem { media: "t0".into() }),
            Slot::new(SlotKind::SmartBlock {
                block: "music".into(),
                duration: None,
            }),
        ],
    });
    config.grid.default = Some("c".into());
    let mut s = show("talk", "10:00", "10:40", ShowContent::Live);
    s.repeat = Repeat::Once;
    s.starts_on = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
    config.shows.push(s);
    let planner = Planner::new(
        config,
        Library {
            items: tracks(120, 40),
            history: vec![],
        },
    )
    .unwrap();
    // Also a window that starts part way through an hour.
    for start in [
        "2026-03-03T09:00:00Z",
        "2026-03-03T10:17:00Z",
        "2026-03-03T11:17:00Z",
    ] {
        let window = Window::hours(utc(start), 3).unwrap();
        let (timeline, diagnostics) = plan_checked(&planner, window, 2);
        assert!(
            timeline
                .entries
                .iter()
                .all(|e| e.provenance.role != Role::RunFill),
            "the clock's own block should fill part-way hours: {diagnostics:#?}"
        );
        assert!(
            !diagnostics
                .iter()
                .any(|d| matches!(d.kind, DiagnosticKind::Underfilled { .. }))
        );
    }
}
