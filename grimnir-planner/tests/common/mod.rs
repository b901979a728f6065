//! Shared helpers: the invariant checker every planning test runs, and small builders.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use grimnir_planner::*;

pub fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("a UTC timestamp")
}

/// A UTC instant from a local wall time in `tz` (first occurrence).
pub fn local(tz: chrono_tz::Tz, s: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("local time");
    tz.from_local_datetime(&naive)
        .earliest()
        .expect("exists")
        .with_timezone(&Utc)
}

pub fn track(id: &str, artist: &str, secs: u64) -> MediaItem {
    MediaItem::new(id, format!("Title {id}"), Millis::from_secs(secs)).by(artist)
}

/// `n` tracks by `artists` distinct artists, lengths 150–330 s, deterministic.
pub fn tracks(n: usize, artists: usize) -> Vec<MediaItem> {
    (0..n)
        .map(|i| {
            let secs = 150 + (i as u64 * 37) % 181;
            let mut t = track(
                &format!("t{i}"),
                &format!("Artist {}", i % artists.max(1)),
                secs,
            );
            t.album = Some(format!("Album {}", i % (artists.max(1) * 2)));
            t.year = Some(1970 + (i as i32 * 7) % 56);
            if i % 3 == 0 {
                t.tags.insert("new".into());
            }
            t
        })
        .collect()
}

pub fn music_clock(id: &str, block: &str) -> Clock {
    Clock {
        id: id.into(),
        name: String::new(),
        slots: vec![Slot::new(SlotKind::SmartBlock {
            block: block.into(),
            duration: None,
        })],
    }
}

/// Checks everything a timeline promises, and returns a description of the first broken
/// promise. `history` is the play history the plan started from.
pub fn check(planner: &Planner, timeline: &Timeline, window: &Window) -> Result<(), String> {
    check_since(planner, timeline, window, window.start())
}

/// Like [`check`], but block rules are checked only for entries starting at or after `since`
/// (entries before it were kept from a plan made under other rules).
pub fn check_since(
    planner: &Planner,
    timeline: &Timeline,
    window: &Window,
    since: DateTime<Utc>,
) -> Result<(), String> {
    let entries = &timeline.entries;
    let first = entries.first().ok_or("no entries")?;
    if first.start != window.start() {
        return Err(format!(
            "first entry starts at {} not {}",
            first.start,
            window.start()
        ));
    }
    let last = entries.last().ok_or("no entries")?;
    if last.end < window.end() {
        return Err(format!(
            "timeline ends at {} before the window end {}",
            last.end,
            window.end()
        ));
    }
    if last.start >= window.end() {
        return Err(format!(
            "last entry starts at {} past the window end",
            last.start
        ));
    }
    let library: HashMap<&str, &MediaItem> = planner
        .library()
        .items
        .iter()
        .map(|i| (i.id.as_str(), i))
        .collect();
    for (k, e) in entries.iter().enumerate() {
        if e.end <= e.start {
            return Err(format!("entry {k} at {} is empty or reversed", e.start));
        }
        if let Some(next) = entries.get(k + 1) {
            if e.end != next.start {
                let what = if e.end < next.start { "gap" } else { "overlap" };
                return Err(format!(
                    "{what} between entry {k} ending {} and the next starting {}",
                    e.end, next.start
                ));
            }
        }
        if e.start < since {
            continue;
        }
        if let Source::Media {
            id,
            cue_in,
            cue_out,
            ..
        } = &e.source
        {
            let item = library
                .get(id.as_str())
                .ok_or_else(|| format!("entry {k} plays unknown {id}"))?;
            if *cue_in != item.cue_in || *cue_out > item.effective_cue_out() || cue_out <= cue_in {
                return Err(format!(
                    "entry {k} ({id}) has cue points outside the item's"
                ));
            }
            // The audio lasts exactly as long as the entry plus its crossfade tail.
            let audio = cue_out.as_millis() - cue_in.as_millis();
            let air =
                (e.end - e.start).num_milliseconds() as u64 + e.transition.overlap.as_millis();
            if audio != air {
                return Err(format!(
                    "entry {k} ({id}): audio {audio} ms but on air {air} ms"
                ));
            }
            if (*cue_out < item.effective_cue_out()) != e.provenance.trimmed {
                return Err(format!(
                    "entry {k} ({id}) trimmed flag disagrees with its cue-out"
                ));
            }
            if e.provenance.trimmed && e.transition.fade_out == Millis::ZERO {
                return Err(format!("entry {k} ({id}) is cut without a fade"));
            }
        }
        check_block_rules(planner, timeline, k, &library)?;
    }
    check_hard_starts(planner, timeline, window)?;
    Ok(())
}

/// Every block pick satisfies its block's filter, and separation holds unless the entry says
/// it was loosened.
fn check_block_rules(
    planner: &Planner,
    timeline: &Timeline,
    k: usize,
    library: &HashMap<&str, &MediaItem>,
) -> Result<(), String> {
    let e = &timeline.entries[k];
    let (Some(block_id), Some(media)) = (&e.provenance.block, e.source.media_id()) else {
        return Ok(());
    };
    let relaxed = &e.provenance.relaxed;
    let item = library[media.as_str()];
    let config = planner.config();
    let block = match config.smart_blocks.iter().find(|b| &b.id == block_id) {
        Some(b) => b,
        None if block_id.as_str() == "(library)" => return Ok(()),
        None => return Err(format!("entry {k} names unknown block {block_id}")),
    };
    if let Some(filter) = &block.filter {
        if !filter.matches(item, timeline.now) {
            return Err(format!(
                "entry {k}: {media} does not match block {block_id}'s filter"
            ));
        }
    }
    let sep = block.separation;
    let checks = [
        (sep.title, Relaxation::TitleSeparationHalved, "title"),
        (sep.artist, Relaxation::ArtistSeparationHalved, "artist"),
        (sep.album, Relaxation::AlbumSeparation, "album"),
    ];
    for (window, loosened, what) in checks {
        if window.is_off() || relaxed.contains(&loosened) {
            continue;
        }
        let key = |m: &MediaItem| -> Vec<String> {
            match what {
                "title" => vec![m.title.to_lowercase()],
                "artist" => m.artists.iter().map(|a| a.to_lowercase()).collect(),
                _ => m.album.iter().map(|a| a.to_lowercase()).collect(),
            }
        };
        let mine = key(item);
        // Earlier plays: the library history before the timeline, then the timeline itself.
        let mut earlier: Vec<(DateTime<Utc>, &MediaItem)> = planner
            .library()
            .history
            .iter()
            .filter(|p| p.started_at < timeline.start)
            .filter_map(|p| library.get(p.media.as_str()).map(|m| (p.started_at, *m)))
            .collect();
        earlier.sort_by_key(|(t, m)| (*t, m.id.clone()));
        earlier.extend(timeline.entries[..k].iter().filter_map(|x| {
            x.source
                .media_id()
                .map(|id| (x.start, library[id.as_str()]))
        }));
        for (back, (t, m)) in earlier.iter().rev().enumerate() {
            if !key(m).iter().any(|x| mine.contains(x)) {
                continue;
            }
            let minutes = (e.start - *t).num_minutes();
            let too_soon = window.minutes > 0
                && (e.start - *t) < chrono::TimeDelta::minutes(window.minutes.into());
            let too_few = window.items > 0 && (back as u32) < window.items;
            if too_soon || too_few {
                return Err(format!(
                    "entry {k}: {what} separation of block {block_id} broken without a diagnostic: \
                     {media} {minutes} min / {back} items after {}",
                    m.id
                ));
            }
        }
    }
    Ok(())
}

/// Every local top of hour (outside shows) and every hard-start slot begins an entry exactly,
/// marked `hard_start`; and every entry so marked begins at such a boundary or a show's.
fn check_hard_starts(
    planner: &Planner,
    timeline: &Timeline,
    window: &Window,
) -> Result<(), String> {
    let tz = timeline.timezone;
    let starts: std::collections::BTreeSet<DateTime<Utc>> =
        timeline.entries.iter().map(|e| e.start).collect();
    let in_show = |t: DateTime<Utc>| {
        timeline
            .what_plays_at(t)
            .is_some_and(|e| e.provenance.show.is_some())
            || timeline
                .what_plays_at(t - chrono::TimeDelta::milliseconds(1))
                .is_some_and(|e| e.provenance.show.is_some() && e.end > t)
    };
    let mut t = window
        .start()
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .expect("valid");
    while t < timeline.covered_until() {
        // Whole UTC quarter hours cover every zone's local :00 (offsets are multiples of 15 min).
        let wall = t.with_timezone(&tz);
        if t >= window.start()
            && wall.minute() == 0
            && wall.second() == 0
            && !in_show(t)
            && !starts.contains(&t)
        {
            return Err(format!("no entry starts at the top of the hour {wall}"));
        }
        if let Some(e) = timeline.entries.iter().find(|e| e.start == t)
            && t >= window.start()
            && (wall.minute(), wall.second()) == (0, 0)
            && !in_show(t)
            && !e.provenance.hard_start
        {
            return Err(format!(
                "the entry at the top of the hour {wall} is not a hard start"
            ));
        }
        t += chrono::TimeDelta::minutes(15);
    }
    for e in &timeline.entries {
        let p = &e.provenance;
        let (Some(clock), Some(slot)) = (&p.clock, p.slot) else {
            continue;
        };
        let Some(clock) = planner.config().clocks.iter().find(|c| &c.id == clock) else {
            continue;
        };
        let Some(offset) = clock.slots[slot as usize].hard_start else {
            continue;
        };
        let first_of_slot = timeline
            .entries
            .iter()
            .find(|x| x.provenance.frame == p.frame && x.provenance.step == p.step)
            .expect("itself");
        if first_of_slot.start != e.start || p.pick != 0 {
            continue;
        }
        // A slot that opens a plan or a frame starting part way through the hour (after a show,
        // or Lord Howe's 02:30) continues from there by design.
        let frame_local = p.frame.with_timezone(&tz);
        let part_way_frame =
            e.start == p.frame && (frame_local.minute(), frame_local.second()) != (0, 0);
        if e.start == timeline.start || part_way_frame {
            continue;
        }
        let wall = e.start.with_timezone(&tz);
        let into_hour = u64::from(wall.minute()) * 60_000
            + u64::from(wall.second()) * 1000
            + u64::from(wall.nanosecond() / 1_000_000);
        if into_hour != offset.as_millis() {
            return Err(format!(
                "hard start {offset} of clock {} began at {wall}",
                clock.id
            ));
        }
        if !p.hard_start {
            return Err(format!(
                "hard start {offset} of clock {} at {wall} is not marked",
                clock.id
            ));
        }
    }
    for (i, e) in timeline.entries.iter().enumerate() {
        let p = &e.provenance;
        if !p.hard_start {
            continue;
        }
        let wall = e.start.with_timezone(&tz);
        let top_of_hour = (wall.minute(), wall.second(), wall.nanosecond()) == (0, 0, 0);
        let show_boundary =
            i > 0 && timeline.entries[i - 1].provenance.show != p.show || e.start == p.frame;
        // Any slot's: an entry of the slot before may be what begins there.
        let into_hour = u64::from(wall.minute()) * 60_000 + u64::from(wall.second()) * 1000;
        let slot_offset = p
            .clock
            .as_ref()
            .and_then(|c| planner.config().clocks.iter().find(|x| &x.id == c))
            .is_some_and(|clock| {
                (clock.slots.iter())
                    .any(|s| s.hard_start.is_some_and(|h| h.as_millis() == into_hour))
            });
        // A show that plays a clock has hard starts of its own, counted from the show's start;
        // its entries do not name the clock, so those are taken on trust.
        let in_show_clock = p.show.is_some();
        if !(top_of_hour || show_boundary || slot_offset || in_show_clock) {
            return Err(format!(
                "the entry at {wall} is marked a hard start but is none: {p:?}"
            ));
        }
    }
    Ok(())
}

/// Plans and checks, panicking with the broken promise.
pub fn plan_checked(planner: &Planner, window: Window, seed: u64) -> (Timeline, Vec<Diagnostic>) {
    let (timeline, diagnostics) = planner.plan(PlanRequest::new(window, seed));
    if let Err(e) = check(planner, &timeline, &window) {
        panic!("{e}\ndiagnostics: {diagnostics:#?}");
    }
    (timeline, diagnostics)
}
