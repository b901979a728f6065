//! The planner: compiles a station and library once, then plans windows from them.

mod fill;
mod index;
mod select;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::block::SmartBlock;
use crate::clock::SlotKind;
use crate::diagnostic::Diagnostic;
use crate::error::{Error, Result};
use crate::filter::{Compiled, Filter};
use crate::ids::{BlockId, ClockId, MediaId, WebstreamId};
use crate::media::Library;
use crate::show::{ShowContent, Underbooked};
use crate::station::StationConfig;
use crate::time::{Instant, Millis, to_instant};
use crate::timeline::Timeline;

use index::{Index, Pool};

/// The longest window one call plans. Longer horizons are planned by [`Planner::extend`].
pub const MAX_WINDOW: Millis = Millis::from_minutes(62 * 24 * 60);

/// A span of time to plan, `start` included and `end` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Window {
    /// A window from `start` to `end`; refused when empty, reversed or longer than
    /// [`MAX_WINDOW`].
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Window> {
        if end <= start {
            return Err(Error::invalid(
                "window.end",
                end,
                format!("must come after the start ({start})"),
            ));
        }
        if (end - start).num_milliseconds() > MAX_WINDOW.signed() {
            return Err(Error::invalid(
                "window.end",
                end,
                "a window may span at most 62 days",
            ));
        }
        Ok(Window { start, end })
    }

    /// A window of `hours` hours from `start`.
    pub fn hours(start: DateTime<Utc>, hours: u32) -> Result<Window> {
        Window::new(start, start + chrono::TimeDelta::hours(i64::from(hours)))
    }

    /// First instant planned.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// First instant not planned.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
}

/// What to plan: a window, a seed and the `now` relative filters count from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanRequest {
    /// The window.
    pub window: Window,
    /// The plan seed: same seed and inputs give the same timeline, byte for byte.
    pub seed: u64,
    /// The reference time for relative date filters; the window's start when absent.
    pub now: Option<DateTime<Utc>>,
}

impl PlanRequest {
    /// A request for `window` with `seed`.
    pub fn new(window: Window, seed: u64) -> Self {
        PlanRequest {
            window,
            seed,
            now: None,
        }
    }
}

/// A station and library, checked and indexed, ready to plan from.
///
/// Building a planner validates everything (ids, references, values) and indexes the library;
/// planning itself never fails and never leaves a gap.
///
/// ```
/// use grimnir_planner::*;
///
/// let mut config = StationConfig::new(Station::new("demo", chrono_tz::Europe::London));
/// config.smart_blocks.push(SmartBlock::new("all", None));
/// config.clocks.push(Clock {
///     id: "music".into(),
///     name: "Music".into(),
///     slots: vec![Slot::new(SlotKind::SmartBlock { block: "all".into(), duration: None })],
/// });
/// config.grid.default = Some("music".into());
/// let library = Library {
///     items: (0..50)
///         .map(|i| MediaItem::new(format!("m{i}"), format!("Song {i}"), Millis::from_secs(180 + i))
///             .by(format!("Artist {}", i % 20)))
///         .collect(),
///     history: vec![],
/// };
/// let planner = Planner::new(config, library)?;
/// let start = "2026-03-01T00:00:00Z".parse().unwrap();
/// let (timeline, diagnostics) = planner.plan(PlanRequest::new(Window::hours(start, 2)?, 7));
/// assert_eq!(timeline.entries[0].start, start);
/// assert!(timeline.entries.windows(2).all(|w| w[0].end == w[1].start));
/// # let _ = diagnostics;
/// # Ok::<(), grimnir_planner::Error>(())
/// ```
#[derive(Debug)]
pub struct Planner {
    config: StationConfig,
    pub(crate) catalog: Arc<Catalog>,
    blocks: Vec<CBlock>,
    /// Index into `blocks` of the station filler, and of the whole-library filler.
    filler: usize,
    library_filler: usize,
    clocks: Vec<CClock>,
    grid: Vec<Option<usize>>,
    overrides: Vec<(NaiveDate, u32, u32, usize)>,
    shows: Vec<CShow>,
}

#[derive(Debug)]
pub(crate) struct CBlock {
    pub def: SmartBlock,
    /// Built once when the filter does not depend on `now`.
    pub pool: Option<Arc<Pool>>,
    /// For a filter that depends on `now`: the items that pass its other conditions (built
    /// once), and the conditions that need `now` (applied to those items in each plan).
    pub timeless: Option<Vec<u32>>,
    pub timed: Option<Compiled>,
    /// Per tag-share quota: (lower-cased tag, at least %, at most %).
    pub shares: Vec<(String, Option<f64>, Option<f64>)>,
    pub max_per_artist: Option<u32>,
    pub max_per_album: Option<u32>,
}

#[derive(Debug)]
pub(crate) struct CClock {
    pub id: ClockId,
    pub slots: Vec<CSlot>,
    /// Each run: template offset of its anchor, and the range of slots it holds.
    pub runs: Vec<(i64, std::ops::Range<usize>)>,
}

#[derive(Debug)]
pub(crate) struct CSlot {
    pub kind: CSlotKind,
    /// Nominal start, as an offset into the hour, for starting part way through an hour.
    pub nominal_start: i64,
    pub nominal_len: Millis,
}

#[derive(Debug)]
pub(crate) enum CSlotKind {
    Block { block: usize, len: Millis },
    Fixed { items: Vec<u32>, kind: &'static str },
    Stream { id: WebstreamId, len: Millis },
    Live { name: String, len: Millis },
}

#[derive(Debug)]
pub(crate) struct CShow {
    pub def: crate::show::Show,
    pub content: CContent,
    pub underbooked: CUnder,
}

#[derive(Debug)]
pub(crate) enum CContent {
    Live,
    Block(usize),
    List(Vec<u32>),
    Stream(WebstreamId),
}

#[derive(Debug)]
pub(crate) enum CUnder {
    Filler,
    Block(usize),
    Repeat,
}

const HOUR_MS: i64 = 3_600_000;

/// A validated, indexed library that any number of planners can share.
///
/// Indexing a large library is most of the cost of building a planner and most of its memory;
/// stations that play from one library build one catalog and hand each planner an [`Arc`] of it.
///
/// ```
/// use std::sync::Arc;
/// use grimnir_planner::*;
///
/// let library = Library { items: vec![MediaItem::new("a", "A", Millis::from_secs(200))], history: vec![] };
/// let catalog = Arc::new(Catalog::new(library)?);
/// let mut stations = Vec::new();
/// for id in ["north", "south"] {
///     let mut config = StationConfig::new(Station::new(id, chrono_tz::UTC));
///     config.smart_blocks.push(SmartBlock::new("all", None));
///     stations.push(Planner::with_catalog(config, Arc::clone(&catalog))?);
/// }
/// assert!(Arc::ptr_eq(stations[0].catalog(), stations[1].catalog()));
/// # Ok::<(), grimnir_planner::Error>(())
/// ```
#[derive(Debug)]
pub struct Catalog {
    pub(crate) library: Library,
    pub(crate) index: Index,
}

impl Catalog {
    /// Validates `library` and indexes it.
    pub fn new(library: Library) -> Result<Catalog> {
        library.validate()?;
        let index = Index::new(&library);
        Ok(Catalog { library, index })
    }

    /// The library.
    pub fn library(&self) -> &Library {
        &self.library
    }
}

impl Planner {
    /// Validates `config` and `library` and indexes them.
    ///
    /// Fails with an [`Error`] naming the first bad field or reference. To plan several
    /// stations from one library, build a [`Catalog`] once and use [`Planner::with_catalog`].
    pub fn new(config: StationConfig, library: Library) -> Result<Planner> {
        config.validate()?;
        Planner::with_catalog(config, Arc::new(Catalog::new(library)?))
    }

    /// Validates `config` against a shared, already indexed library.
    pub fn with_catalog(config: StationConfig, catalog: Arc<Catalog>) -> Result<Planner> {
        config.validate()?;
        let (library, index) = (&catalog.library, &catalog.index);
        let crossfade = config.station.crossfade;
        let block_at = |field: &str, id: &BlockId| -> Result<usize> {
            config
                .smart_blocks
                .iter()
                .position(|b| &b.id == id)
                .ok_or_else(|| Error::unknown(field, BlockId::KIND, id.as_str()))
        };
        let media_at = |field: &str, id: &MediaId| -> Result<u32> {
            index
                .by_id
                .get(id.as_str())
                .copied()
                .ok_or_else(|| Error::unknown(field, MediaId::KIND, id.as_str()))
        };
        let stream_at = |field: &str, id: &WebstreamId| -> Result<()> {
            if config.webstreams.iter().any(|w| &w.id == id) {
                Ok(())
            } else {
                Err(Error::unknown(field, WebstreamId::KIND, id.as_str()))
            }
        };

        let mut blocks: Vec<CBlock> = config
            .smart_blocks
            .iter()
            .map(|b| CBlock::new(b.clone(), library, index, crossfade))
            .collect();
        let library_filler = blocks.len();
        let mut whole = SmartBlock::new("(library)", None);
        whole.name = "Whole library".into();
        whole.order = crate::block::Order::LeastRecentlyPlayed;
        blocks.push(CBlock::new(whole, library, index, crossfade));
        let filler = match &config.station.filler {
            Some(id) => block_at("station.filler", id)?,
            None => library_filler,
        };

        let mut clocks = Vec::with_capacity(config.clocks.len());
        for (ci, clock) in config.clocks.iter().enumerate() {
            let mut slots = Vec::with_capacity(clock.slots.len());
            let mut runs: Vec<(i64, std::ops::Range<usize>)> = vec![(0, 0..0)];
            let mut offset = 0i64;
            for (si, slot) in clock.slots.iter().enumerate() {
                let at = format!("clocks[{ci}].slots[{si}]");
                let kind = match &slot.kind {
                    SlotKind::SmartBlock { block, duration } => {
                        let b = block_at(&format!("{at}.smart_block.block"), block)?;
                        CSlotKind::Block {
                            block: b,
                            len: duration.unwrap_or(config.smart_blocks[b].duration.target),
                        }
                    }
                    SlotKind::HardItem { media } => CSlotKind::Fixed {
                        items: vec![media_at(&format!("{at}.hard_item.media"), media)?],
                        kind: "hard_item",
                    },
                    SlotKind::Stopset { items } => CSlotKind::Fixed {
                        items: items
                            .iter()
                            .enumerate()
                            .map(|(k, m)| media_at(&format!("{at}.stopset.items[{k}]"), m))
                            .collect::<Result<_>>()?,
                        kind: "stopset",
                    },
                    SlotKind::Webstream {
                        webstream,
                        duration,
                    } => {
                        stream_at(&format!("{at}.webstream.webstream"), webstream)?;
                        CSlotKind::Stream {
                            id: webstream.clone(),
                            len: *duration,
                        }
                    }
                    SlotKind::Live { name, duration } => CSlotKind::Live {
                        name: name.clone(),
                        len: *duration,
                    },
                };
                let nominal_len = match &kind {
                    CSlotKind::Block { len, .. }
                    | CSlotKind::Stream { len, .. }
                    | CSlotKind::Live { len, .. } => *len,
                    CSlotKind::Fixed { items, .. } => items.iter().fold(Millis::ZERO, |sum, &i| {
                        sum.saturating_add(index.playable[i as usize])
                    }),
                };
                if let Some(hard) = slot.hard_start {
                    offset = hard.signed();
                    if si > 0 || hard > Millis::ZERO {
                        runs.push((offset, si..si));
                    }
                }
                if let Some(run) = runs.last_mut() {
                    run.1.end = si + 1;
                }
                slots.push(CSlot {
                    kind,
                    nominal_start: offset,
                    nominal_len,
                });
                offset += nominal_len.signed();
            }
            // The last smart block of a run stretches to whatever the slots after it leave
            // before the run's hard end; lay the nominal template out the same way, so that an
            // hour entered part way finds each slot where it really plays.
            for (ri, (_, range)) in runs.iter().enumerate() {
                let run_end = runs.get(ri + 1).map_or(HOUR_MS, |r| r.0);
                let Some(last) = range
                    .clone()
                    .rev()
                    .find(|&i| matches!(slots[i].kind, CSlotKind::Block { .. }))
                else {
                    continue;
                };
                let mut at = run_end;
                for i in (last + 1..range.end).rev() {
                    at -= slots[i].nominal_len.signed();
                    slots[i].nominal_start = at;
                }
                let start = slots[last].nominal_start;
                slots[last].nominal_len = Millis::from_millis((at - start).max(0) as u64);
            }
            clocks.push(CClock {
                id: clock.id.clone(),
                slots,
                runs,
            });
        }
        let clock_at = |field: &str, id: &ClockId| -> Result<usize> {
            config
                .clocks
                .iter()
                .position(|c| &c.id == id)
                .ok_or_else(|| Error::unknown(field, ClockId::KIND, id.as_str()))
        };
        let grid = config.grid.compile("grid", clock_at)?;
        let overrides = config
            .overrides
            .iter()
            .enumerate()
            .map(|(i, o)| {
                Ok((
                    o.date,
                    o.from,
                    o.to,
                    clock_at(&format!("overrides[{i}].clock"), &o.clock)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;

        let mut shows = Vec::with_capacity(config.shows.len());
        for (i, show) in config.shows.iter().enumerate() {
            let at = format!("shows[{i}]");
            let content = match &show.content {
                ShowContent::Live => CContent::Live,
                ShowContent::SmartBlock(b) => {
                    CContent::Block(block_at(&format!("{at}.content.smart_block"), b)?)
                }
                ShowContent::List(items) => CContent::List(
                    items
                        .iter()
                        .enumerate()
                        .map(|(k, m)| media_at(&format!("{at}.content.list[{k}]"), m))
                        .collect::<Result<_>>()?,
                ),
                ShowContent::Webstream(w) => {
                    stream_at(&format!("{at}.content.webstream"), w)?;
                    CContent::Stream(w.clone())
                }
            };
            let underbooked = match &show.underbooked {
                Underbooked::Filler => CUnder::Filler,
                Underbooked::SmartBlock(b) => {
                    CUnder::Block(block_at(&format!("{at}.underbooked.smart_block"), b)?)
                }
                Underbooked::Repeat => CUnder::Repeat,
            };
            shows.push(CShow {
                def: show.clone(),
                content,
                underbooked,
            });
        }
        blocks.shrink_to_fit();
        Ok(Planner {
            config,
            catalog,
            blocks,
            filler,
            library_filler,
            clocks,
            grid,
            overrides,
            shows,
        })
    }

    /// The station configuration this planner was built from.
    pub fn config(&self) -> &StationConfig {
        &self.config
    }

    /// The library this planner was built from.
    pub fn library(&self) -> &Library {
        &self.catalog.library
    }

    /// The shared, indexed library.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Plans a window.
    ///
    /// The result covers the window without gap or overlap: the first entry starts at the
    /// window's start, each entry starts where the previous ended, and the last one is the one
    /// that crosses the window's end. Everything the planner had to work around is in the
    /// diagnostics.
    pub fn plan(&self, request: PlanRequest) -> (Timeline, Vec<Diagnostic>) {
        let now = request.now.unwrap_or(request.window.start);
        let mut ctx = fill::Ctx::new(
            self,
            request.seed,
            to_instant(now),
            to_instant(request.window.end),
        );
        ctx.run(to_instant(request.window.start));
        ctx.finish(request.window.start, request.window.end)
    }

    /// Extends `timeline` so that it covers up to `until`, exactly as if the longer window had
    /// been planned in one go (same seed, same `now`).
    pub fn extend(&self, timeline: &Timeline, until: DateTime<Utc>) -> (Timeline, Vec<Diagnostic>) {
        let mut ctx = fill::Ctx::new(
            self,
            timeline.seed,
            to_instant(timeline.now),
            to_instant(until),
        );
        ctx.keep(&timeline.entries);
        ctx.run(to_instant(timeline.covered_until()));
        let end = until.max(timeline.end);
        let (mut t, d) = ctx.finish(timeline.start, end);
        t.now = timeline.now;
        (t, d)
    }

    /// Re-plans `timeline` from `from` on with this planner's (changed) station and library.
    ///
    /// Entries that start before `from` stay as they are (the one on air at `from` plays out,
    /// cut with a fade only if a new hard boundary now falls inside it); everything after is
    /// planned anew, with separation counting the kept entries. With unchanged inputs the result
    /// equals the original timeline.
    pub fn replan(
        &self,
        timeline: &Timeline,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (Timeline, Vec<Diagnostic>) {
        let from_i = to_instant(from);
        let kept: Vec<_> = timeline
            .entries
            .iter()
            .filter(|e| to_instant(e.start) < from_i)
            .cloned()
            .collect();
        let mut ctx = fill::Ctx::new(
            self,
            timeline.seed,
            to_instant(now),
            to_instant(timeline.end),
        );
        let resume_at = ctx.keep_and_fit(kept, to_instant(timeline.start));
        ctx.run(resume_at);
        let (mut t, d) = ctx.finish(timeline.start, timeline.end);
        t.now = now;
        (t, d)
    }

    /// The clock for a wall hour: a dated override, else the weekly grid.
    fn clock_for(&self, date: NaiveDate, weekday: u32, hour: u32) -> Option<usize> {
        self.overrides
            .iter()
            .rev()
            .find(|(d, from, to, _)| *d == date && (*from..*to).contains(&hour))
            .map(|o| o.3)
            .or_else(|| {
                self.grid
                    .get((weekday * 24 + hour) as usize)
                    .copied()
                    .flatten()
            })
    }
}

impl CBlock {
    fn new(def: SmartBlock, library: &Library, index: &Index, crossfade: Millis) -> CBlock {
        let filter = def.filter.as_ref().map(crate::filter::Filter::compile);
        let uses_now = def
            .filter
            .as_ref()
            .is_some_and(crate::filter::Filter::uses_now);
        let all = 0..library.items.len() as u32;
        let pool = (!uses_now).then(|| {
            Pool::build(
                &def,
                all.clone(),
                filter.as_ref(),
                library,
                index,
                0,
                crossfade,
            )
        });
        // A conjunction splits into conditions that need `now` and conditions that do not;
        // only the former are evaluated per plan, and only over items that pass the latter.
        let (mut timeless, mut timed) = (None, None);
        if uses_now {
            let (later, now_free): (Vec<_>, Vec<_>) = match &def.filter {
                Some(Filter::All(parts)) => parts.iter().cloned().partition(Filter::uses_now),
                Some(other) => (vec![other.clone()], Vec::new()),
                None => (Vec::new(), Vec::new()),
            };
            let now_free = (!now_free.is_empty()).then(|| Filter::All(now_free).compile());
            timeless = Some(
                all.filter(|&i| {
                    now_free.as_ref().is_none_or(|f| {
                        f.matches(&index.text[i as usize], &library.items[i as usize], 0)
                    })
                })
                .collect(),
            );
            timed = Some(Filter::All(later).compile());
        }
        let mut shares = Vec::new();
        let (mut max_per_artist, mut max_per_album) = (None, None);
        for q in &def.quotas {
            match q {
                crate::block::Quota::MaxPerArtist(n) => max_per_artist = Some(*n),
                crate::block::Quota::MaxPerAlbum(n) => max_per_album = Some(*n),
                crate::block::Quota::TagShare {
                    tag,
                    at_least,
                    at_most,
                } => {
                    shares.push((tag.to_lowercase(), *at_least, *at_most));
                }
            }
        }
        CBlock {
            def,
            pool,
            timeless,
            timed,
            shares,
            max_per_artist,
            max_per_album,
        }
    }
}

pub(crate) fn hour_ms() -> Instant {
    HOUR_MS
}
