//! A station and library built from the input bytes as data, not text, so that nearly every run
//! reaches the planner instead of stopping in the YAML parser.
//!
//! The generator only writes references that exist and values that validate, so `Planner::new`
//! must accept what it builds; it is kept small (at most 200 items, 6 blocks, 4 clocks, 3 shows,
//! items that play at least [`MIN_PLAYABLE`]) and the window at most 6 hours, so one run stays
//! well under a second.
//!
//! Beyond the timeline invariants every target checks, this one checks two promises that need a
//! second plan: `extend` continues a plan exactly as one longer plan would, and `replan` with
//! unchanged inputs gives back the original timeline.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use grimnir_fuzz::{
    MAX_HOURS, MIN_PLAYABLE, check_timeline, plan_and_check, start_in_2026, verbose,
};
use grimnir_planner::chrono::{DateTime, NaiveTime, TimeDelta, Utc, Weekday};
use grimnir_planner::chrono_tz::TZ_VARIANTS;
use grimnir_planner::{
    Clock, DateOp, DatedOverride, Filter, GridRule, Library, MediaItem, Millis, MonthDay, NumberOp,
    Order, Overbooked, Planner, Play, Quota, Repeat, Separation, SeparationWindow, Show,
    ShowContent, Slot, SlotKind, SmartBlock, Station, StationConfig, TagOp, TargetDuration, TextOp,
    Underbooked, Webstream, Window,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MAX_ITEMS: usize = 200;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
// Small pools so that separation, quotas and filters actually collide.
const TAGS: &[&str] = &["id", "jingle", "ad", "current", "new", "gold", "Power"];
const ARTISTS: &[&str] = &["Aurora", "Broken Radio", "Copper", "Delta", "Echo", "ÅSA"];
const ALBUMS: &[&str] = &["One", "Two", "Three"];
const GENRES: &[&str] = &["rock", "Jazz", "pop"];
const WEEKDAYS: &[Weekday] = &[
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(case) = Case::build(&mut u) else {
        return;
    };
    if verbose() {
        case.dump();
    }
    let planner = match Planner::new(case.config, case.library) {
        Ok(p) => p,
        // The generator writes only valid input, so a refusal means it and the validation disagree.
        Err(e) => panic!("Planner::new refused generated input: {e}"),
    };
    let t = plan_and_check(&planner, case.start, case.hours, case.seed);

    // `extend` from a shorter plan must put the same things on air as the one longer plan.
    if let Some(split) = case.extend_from {
        let short = Window::hours(case.start, split).expect("a valid window");
        let (s, _) = planner.plan(grimnir_planner::PlanRequest::new(short, case.seed));
        check_timeline(&s, short);
        let (extended, _) = planner.extend(&s, t.end);
        let d = grimnir_planner::diff(&t, &extended);
        assert!(
            d.is_empty(),
            "extend({split}h -> {}h) differs from one plan: {d:#?}",
            case.hours
        );
    }

    // With unchanged inputs, `replan` keeps the timeline as it is.
    if let Some(offset) = case.replan_at {
        let from = case.start + offset;
        let (re, _) = planner.replan(&t, from, t.now);
        let d = grimnir_planner::diff(&t, &re);
        assert!(
            d.is_empty(),
            "replan from {from} with unchanged inputs changed the timeline: {d:#?}"
        );
    }
});

struct Case {
    config: StationConfig,
    library: Library,
    start: DateTime<Utc>,
    hours: u32,
    /// Where the shorter plan for the `extend` check ends, in whole hours (below `hours`).
    /// The two extra checks each cost a plan, so the input decides whether they run.
    extend_from: Option<u32>,
    /// Where the `replan` check re-plans from, after the window's start.
    replan_at: Option<TimeDelta>,
    seed: u64,
}

impl Case {
    fn build(u: &mut Unstructured<'_>) -> Result<Case> {
        let minutes = u.int_in_range(0..=365 * 24 * 60 - 1)?;
        let millis = if maybe(u, 1, 4)? {
            u.int_in_range(0..=59_999)?
        } else {
            0
        };
        let start = start_in_2026(TimeDelta::minutes(minutes) + TimeDelta::milliseconds(millis));
        let hours = u.int_in_range(1..=MAX_HOURS)?;
        let extend_from = if hours > 1 && maybe(u, 1, 2)? {
            Some(u.int_in_range(1..=hours - 1)?)
        } else {
            None
        };
        let replan_at = if maybe(u, 1, 2)? {
            let offset = u.int_in_range(0..=i64::from(hours) * HOUR as i64 - 1)?;
            Some(TimeDelta::milliseconds(offset))
        } else {
            None
        };
        let seed = u.arbitrary()?;

        let library = library(u, start)?;
        let config = station(u, &library, start)?;
        Ok(Case {
            config,
            library,
            start,
            hours,
            extend_from,
            replan_at,
            seed,
        })
    }

    /// Prints the case as a station file and a library file (JSON), to re-run it with the
    /// planner's `plan` example or turn it into a `planner_files` seed.
    fn dump(&self) {
        eprintln!(
            "window: {} + {} h, seed {}, extend from {:?} h, replan at +{:?}",
            self.start, self.hours, self.seed, self.extend_from, self.replan_at
        );
        let error = |e: serde_json::Error| format!("<not serializable: {e}>");
        eprintln!(
            "station: {}",
            serde_json::to_string(&self.config).unwrap_or_else(error)
        );
        eprintln!(
            "library: {}",
            serde_json::to_string(&self.library).unwrap_or_else(error)
        );
    }
}

fn ms(u: &mut Unstructured<'_>, lo: u64, hi: u64) -> Result<Millis> {
    Ok(Millis::from_millis(u.int_in_range(lo..=hi)?))
}

/// An item length: mostly song-sized, sometimes very short or very long, never under
/// [`MIN_PLAYABLE`]. Song-sized comes first because an exhausted input picks the first arm, and
/// a library of one-second items makes each run take seconds (one pick per second planned).
fn length(u: &mut Unstructured<'_>) -> Result<Millis> {
    let min = MIN_PLAYABLE.as_millis();
    match u.int_in_range(0..=19u8)? {
        0..=15 => ms(u, 90_000, 7 * MINUTE),
        16 => ms(u, min, 2 * min),
        17 => ms(u, 2 * min, 60_000),
        _ => ms(u, 10 * MINUTE, 3 * HOUR),
    }
}

/// True with probability `n / d` while input lasts, then false: an exhausted input must not
/// switch every optional feature on (`Unstructured::ratio` answers true once the bytes run out).
fn maybe(u: &mut Unstructured<'_>, n: u8, d: u8) -> Result<bool> {
    Ok(!u.is_empty() && u.ratio(n, d)?)
}

fn pick<'a, T>(u: &mut Unstructured<'_>, from: &'a [T]) -> Result<&'a T> {
    u.choose(from)
}

fn some_of(u: &mut Unstructured<'_>, pool: &[&str], max: usize) -> Result<Vec<String>> {
    let n = u.int_in_range(0..=max)?;
    (0..n)
        .map(|_| pick(u, pool).map(|s| (*s).to_owned()))
        .collect()
}

fn at_least_one(u: &mut Unstructured<'_>, pool: &[&str], max: usize) -> Result<Vec<String>> {
    let mut v = some_of(u, pool, max)?;
    if v.is_empty() {
        v.push(pick(u, pool)?.to_string());
    }
    Ok(v)
}

fn days(u: &mut Unstructured<'_>, at_least_one: bool) -> Result<Vec<Weekday>> {
    let mask = u.int_in_range(0..=127u8)?;
    let mut v: Vec<Weekday> = WEEKDAYS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, d)| *d)
        .collect();
    if v.is_empty() && at_least_one {
        v.push(*pick(u, WEEKDAYS)?);
    }
    Ok(v)
}

/// An instant within about a month of `around`.
fn near(u: &mut Unstructured<'_>, around: DateTime<Utc>) -> Result<DateTime<Utc>> {
    Ok(around + TimeDelta::minutes(u.int_in_range(-31 * 24 * 60..=2 * 24 * 60)?))
}

fn library(u: &mut Unstructured<'_>, start: DateTime<Utc>) -> Result<Library> {
    let n = u.int_in_range(0..=MAX_ITEMS)?;
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let duration = length(u)?;
        let mut item = MediaItem::new(
            format!("m{i}"),
            format!("Song {}", u.int_in_range(0..=40u8)?),
            duration,
        );
        item.artists = some_of(u, ARTISTS, 2)?;
        item.album = if maybe(u, 1, 2)? {
            Some(pick(u, ALBUMS)?.to_string())
        } else {
            None
        };
        item.tags = some_of(u, TAGS, 3)?.into_iter().collect::<BTreeSet<_>>();
        item.genre = if maybe(u, 1, 2)? {
            Some(pick(u, GENRES)?.to_string())
        } else {
            None
        };
        item.year = if maybe(u, 1, 2)? {
            Some(u.int_in_range(1950..=2026)?)
        } else {
            None
        };
        item.bpm = if maybe(u, 1, 3)? {
            Some(f64::from(u.int_in_range(60..=200u8)?))
        } else {
            None
        };
        item.energy = if maybe(u, 1, 2)? {
            Some(f64::from(u.int_in_range(0..=100u8)?) / 100.0)
        } else {
            None
        };
        item.lufs = if maybe(u, 1, 3)? {
            Some(-f64::from(u.int_in_range(0..=30u8)?))
        } else {
            None
        };
        // Cue points keep at least half the file, so they never make an item shorter than
        // MIN_PLAYABLE: the short-length arm covers short items.
        let d = duration.as_millis();
        if d >= 2 * MIN_PLAYABLE.as_millis() && maybe(u, 1, 4)? {
            item.cue_in = ms(u, 0, d / 4)?;
            if maybe(u, 1, 2)? {
                item.cue_out = Some(ms(u, d - d / 4, d)?);
            }
        }
        let playable = item.playable().as_millis();
        if maybe(u, 1, 5)? {
            item.fade_in = Some(ms(u, 0, playable.min(10_000))?);
        }
        if maybe(u, 1, 5)? {
            // Up to the whole playable length: an item that crossfades across all of itself.
            item.crossfade = Some(ms(u, 0, playable.min(30_000))?);
        }
        if maybe(u, 1, 2)? {
            item.added_at = Some(near(u, start)?);
        }
        if maybe(u, 1, 3)? {
            item.last_played = Some(near(u, start)?);
        }
        items.push(item);
    }
    let plays = u.int_in_range(0..=30usize)?;
    let mut history = Vec::with_capacity(plays);
    for _ in 0..plays {
        // Plays of unknown items are allowed and must be ignored.
        let media = if n > 0 && maybe(u, 7, 8)? {
            format!("m{}", u.choose_index(n)?)
        } else {
            "gone".into()
        };
        let started_at = start + TimeDelta::minutes(u.int_in_range(-3 * 24 * 60..=6 * 60)?);
        history.push(Play {
            media: media.into(),
            started_at,
        });
    }
    Ok(Library { items, history })
}

fn filter(u: &mut Unstructured<'_>, start: DateTime<Utc>, depth: u32) -> Result<Filter> {
    let leaf_only = depth >= 3;
    let kind = if leaf_only {
        u.int_in_range(3..=17u8)?
    } else {
        u.int_in_range(0..=17u8)?
    };
    let text = |u: &mut Unstructured<'_>| -> Result<TextOp> {
        let s = pick(u, &["a", "o", "Song 1", "m1", "rock", "ÅSA", "Echo"])?.to_string();
        Ok(match u.int_in_range(0..=4u8)? {
            0 => TextOp::Is(s),
            1 => TextOp::IsNot(s),
            2 => TextOp::Contains(s),
            3 => TextOp::StartsWith(s),
            _ => TextOp::EndsWith(s),
        })
    };
    let number = |u: &mut Unstructured<'_>, lo: i32, hi: i32| -> Result<NumberOp> {
        let a = f64::from(u.int_in_range(lo..=hi)?);
        let b = f64::from(u.int_in_range(lo..=hi)?);
        Ok(match u.int_in_range(0..=3u8)? {
            0 => NumberOp::Eq(a),
            1 => NumberOp::Lt(a),
            2 => NumberOp::Gt(a),
            _ => NumberOp::Between([a.min(b), a.max(b)]),
        })
    };
    let date = |u: &mut Unstructured<'_>| -> Result<DateOp> {
        let a = near(u, start)?;
        let b = near(u, start)?;
        Ok(match u.int_in_range(0..=4u8)? {
            0 => DateOp::Before(a),
            1 => DateOp::After(a),
            2 => DateOp::Between([a.min(b), a.max(b)]),
            3 => DateOp::WithinLast(ms(u, 1, 40 * 24 * HOUR)?),
            _ => DateOp::NotWithin(ms(u, 1, 40 * 24 * HOUR)?),
        })
    };
    Ok(match kind {
        0 | 1 => {
            let n = u.int_in_range(1..=3)?;
            let list = (0..n)
                .map(|_| filter(u, start, depth + 1))
                .collect::<Result<Vec<_>>>()?;
            if kind == 0 {
                Filter::All(list)
            } else {
                Filter::Any(list)
            }
        }
        2 => Filter::Not(Box::new(filter(u, start, depth + 1)?)),
        3 => Filter::Id(text(u)?),
        4 => Filter::Title(text(u)?),
        5 => Filter::Artist(text(u)?),
        6 => Filter::Album(text(u)?),
        7 => Filter::Genre(text(u)?),
        8 => Filter::Mood(text(u)?),
        9 => Filter::Duration(number(u, 0, 600)?),
        10 => Filter::Year(number(u, 1950, 2026)?),
        11 => Filter::Bpm(number(u, 60, 200)?),
        12 => Filter::Energy(number(u, 0, 1)?),
        13 => Filter::Lufs(number(u, -30, 0)?),
        14 => Filter::AddedAt(date(u)?),
        15 => Filter::LastPlayed(date(u)?),
        _ => {
            let tags = at_least_one(u, TAGS, 3)?;
            match u.int_in_range(0..=2u8)? {
                0 => Filter::Tags(TagOp::Include(tags)),
                1 => Filter::Tags(TagOp::IncludeAll(tags)),
                _ => Filter::Tags(TagOp::Exclude(tags)),
            }
        }
    })
}

fn smart_block(u: &mut Unstructured<'_>, k: usize, start: DateTime<Utc>) -> Result<SmartBlock> {
    let f = if maybe(u, 3, 4)? {
        Some(filter(u, start, 0)?)
    } else {
        None
    };
    let mut b = SmartBlock::new(format!("b{k}"), f);
    b.order = match u.int_in_range(0..=4u8)? {
        0 => Order::Random,
        1 => {
            let mut w = BTreeMap::new();
            for tag in at_least_one(u, TAGS, 3)? {
                w.insert(tag, f64::from(u.int_in_range(1..=100u8)?) / 10.0);
            }
            Order::WeightedRotation(w)
        }
        2 => Order::Newest,
        3 => Order::Oldest,
        _ => Order::LeastRecentlyPlayed,
    };
    let window = |u: &mut Unstructured<'_>| -> Result<SeparationWindow> {
        Ok(SeparationWindow::new(
            u.int_in_range(0..=600)?,
            u.int_in_range(0..=20)?,
        ))
    };
    b.separation = if maybe(u, 1, 4)? {
        Separation::NONE
    } else {
        Separation {
            artist: window(u)?,
            title: window(u)?,
            album: window(u)?,
        }
    };
    for _ in 0..u.int_in_range(0..=2u8)? {
        b.quotas.push(match u.int_in_range(0..=2u8)? {
            0 => Quota::MaxPerArtist(u.int_in_range(1..=3)?),
            1 => Quota::MaxPerAlbum(u.int_in_range(1..=3)?),
            _ => {
                let lo = if maybe(u, 1, 2)? {
                    Some(f64::from(u.int_in_range(0..=100u8)?))
                } else {
                    None
                };
                let hi = match lo {
                    Some(lo) if maybe(u, 1, 2)? => {
                        Some(f64::from(u.int_in_range(lo as u8..=100u8)?))
                    }
                    Some(_) => None,
                    None => Some(f64::from(u.int_in_range(0..=100u8)?)),
                };
                Quota::TagShare {
                    tag: pick(u, TAGS)?.to_string(),
                    at_least: lo,
                    at_most: hi,
                }
            }
        });
    }
    let target = match u.int_in_range(0..=5u8)? {
        0..=3 => ms(u, MINUTE, HOUR)?,
        4 => ms(u, 1_000, MINUTE)?,
        _ => ms(u, HOUR, 24 * HOUR)?,
    };
    b.duration = TargetDuration {
        target,
        tolerance: ms(u, 0, target.as_millis().min(5 * MINUTE))?,
        allow_overrun: u.arbitrary()?,
    };
    Ok(b)
}

fn station(
    u: &mut Unstructured<'_>,
    library: &Library,
    start: DateTime<Utc>,
) -> Result<StationConfig> {
    let mut st = Station::new("fuzz", *pick(u, &TZ_VARIANTS)?);
    st.crossfade = if maybe(u, 1, 2)? {
        ms(u, 0, 30_000)?
    } else {
        Millis::ZERO
    };
    st.trim_fade = ms(u, 0, 30_000)?;
    let mut config = StationConfig::new(st);

    for k in 0..u.int_in_range(0..=6)? {
        let b = smart_block(u, k, start)?;
        config.smart_blocks.push(b);
    }
    if !config.smart_blocks.is_empty() && maybe(u, 1, 2)? {
        config.station.filler = Some(pick(u, &config.smart_blocks)?.id.clone());
    }
    for k in 0..u.int_in_range(0..=2)? {
        config.webstreams.push(Webstream {
            id: format!("w{k}").into(),
            name: String::new(),
            url: format!("http://127.0.0.1:8000/w{k}"),
            fallback_urls: vec![],
        });
    }

    let blocks: Vec<_> = config.smart_blocks.iter().map(|b| b.id.clone()).collect();
    let streams: Vec<_> = config.webstreams.iter().map(|w| w.id.clone()).collect();
    let media: Vec<_> = library.items.iter().map(|i| i.id.clone()).collect();
    let media_list = |u: &mut Unstructured<'_>| -> Result<Vec<_>> {
        let n = u.int_in_range(1..=4)?;
        (0..n).map(|_| pick(u, &media).cloned()).collect()
    };

    for k in 0..u.int_in_range(0..=4)? {
        let mut slots = Vec::new();
        let mut next_hard = 0u64;
        for _ in 0..u.int_in_range(1..=6)? {
            let kind = match u.int_in_range(0..=4u8)? {
                0 | 1 if !blocks.is_empty() => SlotKind::SmartBlock {
                    block: pick(u, &blocks)?.clone(),
                    duration: if maybe(u, 1, 2)? {
                        Some(ms(u, 1, HOUR)?)
                    } else {
                        None
                    },
                },
                2 if !media.is_empty() => SlotKind::HardItem {
                    media: pick(u, &media)?.clone(),
                },
                3 if !media.is_empty() => SlotKind::Stopset {
                    items: media_list(u)?,
                },
                4 if !streams.is_empty() => SlotKind::Webstream {
                    webstream: pick(u, &streams)?.clone(),
                    duration: ms(u, 1, HOUR)?,
                },
                _ => SlotKind::Live {
                    name: "Studio".into(),
                    duration: ms(u, 1, HOUR)?,
                },
            };
            // Hard starts must rise strictly within the hour.
            let hard_start = if next_hard < HOUR && maybe(u, 1, 3)? {
                let h = ms(u, next_hard, HOUR - 1)?;
                next_hard = h.as_millis() + 1;
                Some(h)
            } else {
                None
            };
            slots.push(Slot { kind, hard_start });
        }
        config.clocks.push(Clock {
            id: format!("c{k}").into(),
            name: String::new(),
            slots,
        });
    }

    let clocks: Vec<_> = config.clocks.iter().map(|c| c.id.clone()).collect();
    let hours = |u: &mut Unstructured<'_>| -> Result<(u32, u32)> {
        let from = u.int_in_range(0..=23)?;
        Ok((from, u.int_in_range(from + 1..=24)?))
    };
    if !clocks.is_empty() {
        config.grid.default = if maybe(u, 3, 4)? {
            Some(pick(u, &clocks)?.clone())
        } else {
            None
        };
        for _ in 0..u.int_in_range(0..=3u8)? {
            let (from, to) = hours(u)?;
            config.grid.rules.push(GridRule {
                days: days(u, false)?,
                from,
                to,
                clock: pick(u, &clocks)?.clone(),
            });
        }
        for _ in 0..u.int_in_range(0..=2u8)? {
            let date = start.date_naive() + TimeDelta::days(u.int_in_range(-1..=1)?);
            let (from, to) = hours(u)?;
            config.overrides.push(DatedOverride {
                date,
                from,
                to,
                clock: pick(u, &clocks)?.clone(),
            });
        }
    }

    for k in 0..u.int_in_range(0..=3u8)? {
        let starts_on = start.date_naive() - TimeDelta::days(u.int_in_range(0..=30)?);
        let repeat = match u.int_in_range(0..=4u8)? {
            0 => Repeat::Once,
            1 => Repeat::Weekly(days(u, true)?),
            2 => Repeat::EveryNWeeks {
                n: u.int_in_range(1..=4)?,
                days: days(u, true)?,
            },
            3 => Repeat::Monthly(MonthDay::Day(u.int_in_range(1..=31)?)),
            _ => Repeat::Monthly(MonthDay::Nth {
                nth: *pick(u, &[1, 2, 3, 4, -1])?,
                weekday: *pick(u, WEEKDAYS)?,
            }),
        };
        let time =
            |u: &mut Unstructured<'_>| -> Result<NaiveTime> {
                // Mostly on the minute, sometimes anywhere.
                let secs = if maybe(u, 3, 4)? {
                    u.int_in_range(0..=1439)? * 60
                } else {
                    u.int_in_range(0..=86_399)?
                };
                Ok(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)
                    .expect("a second of the day"))
            };
        let start_time = time(u)?;
        let (end, duration) = if maybe(u, 1, 2)? {
            (Some(time(u)?), None)
        } else {
            (None, Some(ms(u, 1, 24 * HOUR)?))
        };
        let content = match u.int_in_range(0..=3u8)? {
            1 if !blocks.is_empty() => ShowContent::SmartBlock(pick(u, &blocks)?.clone()),
            2 if !media.is_empty() => ShowContent::List(media_list(u)?),
            3 if !streams.is_empty() => ShowContent::Webstream(pick(u, &streams)?.clone()),
            _ => ShowContent::Live,
        };
        let underbooked = match u.int_in_range(0..=2u8)? {
            1 if !blocks.is_empty() => Underbooked::SmartBlock(pick(u, &blocks)?.clone()),
            2 if matches!(content, ShowContent::List(_)) => Underbooked::Repeat,
            _ => Underbooked::Filler,
        };
        let ends_on = if maybe(u, 1, 4)? {
            Some(starts_on + TimeDelta::days(u.int_in_range(0..=40)?))
        } else {
            None
        };
        config.shows.push(Show {
            id: format!("s{k}").into(),
            name: format!("Show {k}"),
            repeat,
            starts_on,
            ends_on,
            start: start_time,
            end,
            duration,
            content,
            underbooked,
            overbooked: if u.arbitrary()? {
                Overbooked::Trim
            } else {
                Overbooked::DropCrossing
            },
        });
    }
    Ok(config)
}
