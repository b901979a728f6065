//! Property tests: for random libraries, blocks, clocks, shows, zones and windows, every plan
//! keeps the timeline's promises, and planning is deterministic.

// Helpers here are test code too: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{NaiveDate, NaiveTime, TimeDelta, Weekday};
use common::*;
use grimnir_planner::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Scenario {
    config: StationConfig,
    library: Library,
    window: Window,
    seed: u64,
}

const ZONES: [chrono_tz::Tz; 6] = [
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Asia::Kathmandu,
];
const GENRES: [&str; 3] = ["rock", "jazz", "pop"];
const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];
const TAGS: [&str; 3] = ["new", "power", "gold"];

fn items() -> impl Strategy<Value = Vec<MediaItem>> {
    (
        1usize..25,
        prop::collection::vec(
            (
                0usize..25,
                20u64..600,
                1960i32..2026,
                0u8..8,
                0usize..3,
                any::<bool>(),
            ),
            0..80,
        ),
    )
        .prop_map(|(artists, raw)| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (artist, secs, year, tags, genre, cued))| {
                    let mut item = track(
                        &format!("m{i}"),
                        &format!("Artist {}", artist % artists),
                        secs,
                    );
                    item.title = format!("Song {}", i % 50);
                    item.album = Some(format!("Album {}", artist % 7));
                    item.year = Some(year);
                    item.genre = Some(GENRES[genre].into());
                    for (bit, tag) in TAGS.iter().enumerate() {
                        if tags & (1 << bit) != 0 {
                            item.tags.insert((*tag).into());
                        }
                    }
                    if cued && secs > 30 {
                        item.cue_in = Millis::from_secs(2);
                        item.cue_out = Some(Millis::from_secs(secs - 5));
                        item.crossfade = Some(Millis::from_secs(4));
                    }
                    item
                })
                .collect()
        })
}

fn filter() -> impl Strategy<Value = Option<Filter>> {
    prop_oneof![
        Just(None),
        (0usize..3).prop_map(|g| Some(Filter::Genre(TextOp::Is(GENRES[g].into())))),
        (1960f64..2026.0).prop_map(|y| Some(Filter::Year(NumberOp::Lt(y)))),
        (0usize..3).prop_map(|t| Some(Filter::Tags(TagOp::Exclude(vec![TAGS[t].into()])))),
        (0usize..3, 0usize..3).prop_map(|(g, t)| Some(Filter::Any(vec![
            Filter::Genre(TextOp::IsNot(GENRES[g].into())),
            Filter::Tags(TagOp::Include(vec![TAGS[t].into()])),
        ]))),
    ]
}

fn block(i: usize) -> impl Strategy<Value = SmartBlock> {
    let order = prop_oneof![
        Just(Order::Random),
        Just(Order::Newest),
        Just(Order::Oldest),
        Just(Order::LeastRecentlyPlayed),
        Just(Order::WeightedRotation(
            [("power".to_owned(), 4.0)].into_iter().collect()
        )),
    ];
    let window = (0u32..120, 0u32..6).prop_map(|(m, n)| SeparationWindow::new(m, n));
    let quotas = prop_oneof![
        Just(vec![]),
        (1u32..3).prop_map(|n| vec![Quota::MaxPerArtist(n)]),
        (0f64..60.0).prop_map(|p| vec![Quota::TagShare {
            tag: "new".into(),
            at_least: Some(p),
            at_most: None
        }]),
    ];
    (
        filter(),
        order,
        window.clone(),
        window.clone(),
        window,
        quotas,
        1u64..30,
        0u64..100,
        any::<bool>(),
    )
        .prop_map(
            move |(
                filter,
                order,
                artist,
                title,
                album,
                quotas,
                minutes,
                tol_pct,
                allow_overrun,
            )| {
                let mut b = SmartBlock::new(format!("b{i}"), filter);
                b.order = order;
                b.separation = Separation {
                    artist,
                    title,
                    album,
                };
                b.quotas = quotas;
                let target = Millis::from_minutes(minutes);
                b.duration = TargetDuration {
                    target,
                    tolerance: Millis::from_millis(target.as_millis() * tol_pct / 200),
                    allow_overrun,
                };
                b
            },
        )
}

fn slot(blocks: usize, items: usize) -> impl Strategy<Value = SlotKind> {
    let stream = (1u64..12).prop_map(|m| SlotKind::Webstream {
        webstream: "ws".into(),
        duration: Millis::from_minutes(m),
    });
    let live = (1u64..20).prop_map(|m| SlotKind::Live {
        name: "DJ".into(),
        duration: Millis::from_minutes(m),
    });
    let block = (0..blocks, prop::option::of(1u64..40)).prop_map(|(b, d)| SlotKind::SmartBlock {
        block: BlockId::new(format!("b{b}")),
        duration: d.map(Millis::from_minutes),
    });
    if items == 0 {
        prop_oneof![4 => block, 1 => stream, 1 => live].boxed()
    } else {
        let hard = (0..items).prop_map(|i| SlotKind::HardItem {
            media: MediaId::new(format!("m{i}")),
        });
        let stopset = prop::collection::vec(0..items, 1..4).prop_map(|v| SlotKind::Stopset {
            items: v
                .into_iter()
                .map(|i| MediaId::new(format!("m{i}")))
                .collect(),
        });
        prop_oneof![4 => block, 1 => stream, 1 => live, 1 => hard, 1 => stopset].boxed()
    }
}

fn clock(i: usize, blocks: usize, items: usize) -> impl Strategy<Value = Clock> {
    prop::collection::vec((slot(blocks, items), prop::option::of(0u64..59)), 1..6).prop_map(
        move |raw| {
            let mut last_hard = None;
            let slots = raw
                .into_iter()
                .map(|(kind, hard)| {
                    // Keep hard starts increasing, as validation requires.
                    let hard = hard.filter(|h| last_hard.is_none_or(|l| *h > l));
                    if hard.is_some() {
                        last_hard = hard;
                    }
                    Slot {
                        kind,
                        hard_start: hard.map(Millis::from_minutes),
                    }
                })
                .collect();
            Clock {
                id: ClockId::new(format!("c{i}")),
                name: String::new(),
                slots,
            }
        },
    )
}

fn show(i: usize, blocks: usize, items: usize) -> impl Strategy<Value = Show> {
    let content = if items == 0 {
        prop_oneof![
            Just(ShowContent::Live),
            (0..blocks).prop_map(|b| ShowContent::SmartBlock(BlockId::new(format!("b{b}"))))
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(ShowContent::Live),
            Just(ShowContent::Webstream("ws".into())),
            (0..blocks).prop_map(|b| ShowContent::SmartBlock(BlockId::new(format!("b{b}")))),
            prop::collection::vec(0..items, 1..8).prop_map(|v| ShowContent::List(
                v.into_iter()
                    .map(|i| MediaId::new(format!("m{i}")))
                    .collect()
            )),
        ]
        .boxed()
    };
    (
        content,
        0u32..24,
        0u32..4,
        10u64..300,
        0usize..7,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(content, hour, quarter, minutes, day, drop, repeat)| Show {
                id: ShowId::new(format!("s{i}")),
                name: format!("Show {i}"),
                repeat: Repeat::Weekly(vec![WEEKDAYS[day]]),
                starts_on: NaiveDate::from_ymd_opt(2025, 12, 1).expect("a real date"),
                ends_on: None,
                start: NaiveTime::from_hms_opt(hour, quarter * 15, 0)
                    .expect("hour < 24, minute < 60"),
                end: None,
                duration: Some(Millis::from_minutes(minutes)),
                underbooked: if repeat && matches!(content, ShowContent::List(_)) {
                    Underbooked::Repeat
                } else {
                    Underbooked::Filler
                },
                content,
                overbooked: if drop {
                    Overbooked::DropCrossing
                } else {
                    Overbooked::Trim
                },
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (items(), 1usize..4, 1usize..3, 0usize..3).prop_flat_map(|(items, nb, nc, ns)| {
        let n = items.len();
        let blocks = (0..nb).map(block).collect::<Vec<_>>();
        let clocks = (0..nc).map(|i| clock(i, nb, n)).collect::<Vec<_>>();
        let shows = (0..ns).map(|i| show(i, nb, n)).collect::<Vec<_>>();
        let grid = prop::collection::vec((0usize..7, 0u32..24, 1u32..6, 0..nc), 0..4);
        (
            Just(items),
            blocks,
            clocks,
            shows,
            prop::option::of(0..nc),
            grid,
            0usize..ZONES.len(),
            (0i64..365 * 24 * 4, 1u32..30, any::<u64>()),
            prop::option::of(0..nb),
        )
            .prop_map(
                |(
                    items,
                    blocks,
                    clocks,
                    shows,
                    default,
                    grid,
                    zone,
                    (start, hours, seed),
                    filler,
                )| {
                    let mut station = Station::new("prop-fm", ZONES[zone]);
                    station.crossfade = Millis::from_millis(1500);
                    station.filler = filler.map(|b| BlockId::new(format!("b{b}")));
                    let mut config = StationConfig::new(station);
                    config.smart_blocks = blocks;
                    config.clocks = clocks;
                    config.shows = shows;
                    config.webstreams.push(Webstream {
                        id: "ws".into(),
                        name: String::new(),
                        url: "http://127.0.0.1/ws".into(),
                        fallback_urls: vec![],
                    });
                    config.grid.default = default.map(|c| ClockId::new(format!("c{c}")));
                    config.grid.rules = grid
                        .into_iter()
                        .map(|(day, from, len, c)| GridRule {
                            days: vec![WEEKDAYS[day]],
                            from,
                            to: (from + len).min(24),
                            clock: ClockId::new(format!("c{c}")),
                        })
                        .collect();
                    let start = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(start * 15);
                    let window = Window::hours(start, hours).expect("at most 30 hours");
                    Scenario {
                        config,
                        library: Library {
                            items,
                            history: vec![],
                        },
                        window,
                        seed,
                    }
                },
            )
    })
}

fn build(s: &Scenario) -> Planner {
    Planner::new(s.config.clone(), s.library.clone()).expect("generated scenarios are valid")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_plan_keeps_its_promises(s in scenario()) {
        let planner = build(&s);
        let (timeline, diagnostics) = planner.plan(PlanRequest::new(s.window, s.seed));
        if let Err(e) = check(&planner, &timeline, &s.window) {
            prop_assert!(false, "{e}\n{diagnostics:#?}");
        }
        let has_media = !s.library.items.is_empty();
        for e in &timeline.entries {
            // Fallback only when nothing at all can be chosen; without media, only live,
            // webstream and fallback entries can exist.
            let is_media = matches!(e.source, Source::Media { .. });
            prop_assert!(has_media || !is_media, "media at {} from an empty library", e.start);
            prop_assert!(!has_media || e.tier != Tier::Fallback, "fallback at {} with media in the library", e.start);
        }
    }

    #[test]
    fn same_inputs_same_bytes(s in scenario()) {
        let planner = build(&s);
        let (a, da) = planner.plan(PlanRequest::new(s.window, s.seed));
        let (b, db) = build(&s).plan(PlanRequest::new(s.window, s.seed));
        prop_assert_eq!(a.to_json(), b.to_json());
        prop_assert_eq!(da, db);
    }

    #[test]
    fn extending_equals_planning_longer(s in scenario(), split in 1u32..29) {
        let planner = build(&s);
        let hours = (s.window.end() - s.window.start()).num_hours() as u32;
        prop_assume!(split < hours);
        let (whole, _) = planner.plan(PlanRequest::new(s.window, s.seed));
        let (part, _) = planner.plan(PlanRequest::new(Window::hours(s.window.start(), split).unwrap(), s.seed));
        let (extended, _) = planner.extend(&part, s.window.end());
        prop_assert_eq!(extended.entries, whole.entries);
    }

    #[test]
    fn replanning_unchanged_inputs_changes_nothing(s in scenario(), at_pct in 0u32..100) {
        let planner = build(&s);
        let (timeline, _) = planner.plan(PlanRequest::new(s.window, s.seed));
        let span = s.window.end() - s.window.start();
        let at = s.window.start() + span * at_pct as i32 / 100;
        let (again, _) = planner.replan(&timeline, at, timeline.now);
        prop_assert!(diff(&timeline, &again).is_empty(), "replan at {} changed the air", at);
    }

    #[test]
    fn timelines_round_trip_through_json(s in scenario()) {
        let (timeline, _) = build(&s).plan(PlanRequest::new(s.window, s.seed));
        prop_assert_eq!(Timeline::from_json(&timeline.to_json()).unwrap(), timeline);
    }
}

#[test]
fn different_seeds_give_different_plans() {
    let mut config = StationConfig::new(Station::new("s", chrono_tz::UTC));
    config.smart_blocks.push(SmartBlock::new("b", None));
    config.clocks.push(music_clock("c", "b"));
    config.grid.default = Some("c".into());
    let planner = Planner::new(
        config,
        Library {
            items: tracks(120, 40),
            history: vec![],
        },
    )
    .unwrap();
    let window = Window::hours(utc("2026-04-01T00:00:00Z"), 3).unwrap();
    let plans: Vec<String> = (0..8)
        .map(|seed| planner.plan(PlanRequest::new(window, seed)).0.to_json())
        .collect();
    for (i, a) in plans.iter().enumerate() {
        for b in &plans[i + 1..] {
            assert_ne!(a, b, "two seeds gave the same plan");
        }
    }
}
