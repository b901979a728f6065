//! Choosing the next item for a smart block: order, separation, quotas, fit, and the documented
//! order in which rules are loosened when nothing satisfies them all.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use super::fill::Ctx;
use super::index::{Index, Pool};
use crate::block::{Order, Window};
use crate::rng::{below, chacha};
use crate::time::Instant;
use crate::timeline::{Relaxation, Rule};

/// The loosening steps, in order: level `n` drops the first `n` of these.
const LEVELS: [Relaxation; 7] = [
    Relaxation::AlbumSeparation,
    Relaxation::ArtistSeparationHalved,
    Relaxation::ArtistSeparation,
    Relaxation::Quotas,
    Relaxation::TitleSeparationHalved,
    Relaxation::TitleSeparation,
    Relaxation::RepeatInRun,
];

/// Levels (first and last, inclusive) tried before borrowing from the fillers: everything up to
/// and including ignoring quotas.
const BEFORE_BORROWING: (usize, usize) = (0, 4);
/// Levels tried after borrowing failed: title separation and repeats give way.
const AFTER_BORROWING: (usize, usize) = (5, 7);

/// Random draws tried before a full scan of the pool.
const DRAWS: u32 = 16;
/// Acceptable candidates looked at when choosing the one that best fits the remaining time.
const FIT_CANDIDATES: usize = 24;

/// How much time is left for the block and how strictly it must be met.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fit {
    /// Milliseconds from now to the goal (the target or the hard end).
    pub want: i64,
    pub tolerance: i64,
    /// The goal is a hard end (the item crossing it is cut).
    pub hard: bool,
    /// The last item may run past a soft target.
    pub allow_overrun: bool,
}

/// What one run of a block has chosen so far, for quotas and no-repeat.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunState {
    used: Vec<u32>,
    artists: Vec<(u32, u32)>,
    albums: Vec<(u32, u32)>,
    shares: Vec<u32>,
    count: u32,
}

impl RunState {
    pub(crate) fn new(shares: usize) -> Self {
        RunState {
            shares: vec![0; shares],
            ..RunState::default()
        }
    }

    pub(crate) fn add(
        &mut self,
        item: u32,
        index: &Index,
        shares: &[(String, Option<f64>, Option<f64>)],
    ) {
        let i = item as usize;
        self.used.push(item);
        self.count += 1;
        for &a in index.artists[i].iter() {
            bump(&mut self.artists, a);
        }
        if let Some(a) = index.album[i] {
            bump(&mut self.albums, a);
        }
        for (k, (tag, ..)) in shares.iter().enumerate() {
            if index.text[i].has_tag(tag) {
                self.shares[k] += 1;
            }
        }
    }
}

fn bump(counts: &mut Vec<(u32, u32)>, key: u32) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key, 1)),
    }
}

fn count(counts: &[(u32, u32)], key: u32) -> u32 {
    counts
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(0, |(_, n)| *n)
}

/// The item chosen, which block's pool it came from, and what it took.
pub(crate) struct Choice {
    pub item: u32,
    /// The block whose pool supplied the item (the requested one, or a filler).
    pub block: usize,
    pub relaxed: Vec<Relaxation>,
    /// Candidates turned down under the block's own rules, by [`Rule::ALL`] position.
    pub rejected: [u32; 7],
}

impl Ctx<'_> {
    /// Chooses an item for `block`, loosening rules in the documented order and finally
    /// borrowing from the station filler and the whole library. `None` only when no item can
    /// play at all.
    pub(crate) fn select(
        &mut self,
        block: usize,
        run: &RunState,
        t: Instant,
        fit: Fit,
        seed: u64,
    ) -> Option<Choice> {
        let mut fillers = Vec::with_capacity(2);
        for b in [self.p.filler, self.p.library_filler] {
            if b != block && !fillers.contains(&b) {
                fillers.push(b);
            }
        }
        // Rules give way in order; before a song may come back within its title separation,
        // other music is borrowed from the station filler (then the whole library) under that
        // block's own rules, so a thin block never replays the same few songs while the library
        // could fill.
        let mut stages = vec![(block, BEFORE_BORROWING)];
        stages.extend(fillers.iter().map(|&b| (b, BEFORE_BORROWING)));
        stages.push((block, AFTER_BORROWING));
        stages.extend(fillers.iter().map(|&b| (b, AFTER_BORROWING)));
        let mut rejected = [0u32; 7];
        for (b, levels) in stages {
            let pool = self.pool(b);
            if pool.items.is_empty() {
                continue;
            }
            let mut rng = chacha(seed ^ b as u64);
            for level in levels.0..=levels.1 {
                let counts = (b == block && level == 0).then_some(&mut rejected);
                if let Some(item) =
                    self.search(b, block, &pool, level, run, t, fit, &mut rng, counts)
                {
                    let mut relaxed = Vec::with_capacity(level + 1);
                    if b != block {
                        relaxed.push(Relaxation::Filter);
                    }
                    relaxed.extend_from_slice(&LEVELS[..level]);
                    relaxed.sort();
                    return Some(Choice {
                        item,
                        block: b,
                        relaxed,
                        rejected,
                    });
                }
            }
        }
        None
    }

    fn pool(&mut self, b: usize) -> Arc<Pool> {
        if let Some(pool) = &self.p.blocks[b].pool {
            return Arc::clone(pool);
        }
        if let Some(pool) = &self.pools[b] {
            return Arc::clone(pool);
        }
        let block = &self.p.blocks[b];
        let crossfade = self.p.config.station.crossfade;
        let all = 0..self.p.catalog.library.items.len() as u32;
        let candidates: Box<dyn Iterator<Item = u32>> = match &block.timeless {
            Some(base) => Box::new(base.iter().copied()),
            None => Box::new(all),
        };
        let pool = Pool::build(
            &block.def,
            candidates,
            block.timed.as_ref(),
            &self.p.catalog.library,
            &self.p.catalog.index,
            self.now,
            crossfade,
        );
        self.pools[b] = Some(Arc::clone(&pool));
        pool
    }

    /// Walks the pool of block `b` in its order and returns the first acceptable candidate, or
    /// the best fit among the first few when the pick will close the block.
    #[allow(clippy::too_many_arguments)]
    fn search(
        &mut self,
        b: usize,
        asked: usize,
        pool: &Pool,
        level: usize,
        run: &RunState,
        t: Instant,
        fit: Fit,
        rng: &mut ChaCha8Rng,
        mut rejected: Option<&mut [u32; 7]>,
    ) -> Option<u32> {
        let n = pool.items.len();
        let mut found: Vec<u32> = Vec::new();
        let mut consider = |ctx: &Ctx<'_>, c: u32| -> bool {
            if found.contains(&c) {
                return false;
            }
            match ctx.accept(b, asked, c, level, run, t, n) {
                Ok(()) => {
                    found.push(c);
                    // Without a fit to look for, the first acceptable candidate wins.
                    found.len() >= FIT_CANDIDATES || !ctx.near_end(c, fit, pool)
                }
                Err(rule) => {
                    if let Some(r) = rejected.as_deref_mut() {
                        r[rule as usize] += 1;
                    }
                    false
                }
            }
        };
        let order = &self.p.blocks[b].def.order;
        match order {
            Order::LeastRecentlyPlayed => {
                let mut set = self.lrp[b].take().unwrap_or_else(|| {
                    pool.items
                        .iter()
                        .map(|&i| (self.last_played[i as usize], i))
                        .collect()
                });
                let mut cursor: Option<(Instant, u32)> = None;
                loop {
                    let next = match cursor {
                        None => set.iter().next().copied(),
                        Some(k) => set.range((Excluded(k), Unbounded)).next().copied(),
                    };
                    let Some((key, i)) = next else { break };
                    cursor = Some((key, i));
                    let actual = self.last_played[i as usize];
                    if actual != key {
                        // Played since the set was ordered: move it to where it now belongs;
                        // the walk reaches it again there.
                        set.remove(&(key, i));
                        set.insert((actual, i));
                        continue;
                    }
                    if consider(self, i) {
                        break;
                    }
                }
                self.lrp[b] = Some(set);
            }
            Order::Newest | Order::Oldest => {
                for &c in &pool.items {
                    if consider(self, c) {
                        break;
                    }
                }
            }
            Order::Random | Order::WeightedRotation(_) => {
                let mut done = false;
                for _ in 0..DRAWS {
                    let at = if pool.cumulative.is_empty() {
                        below(rng, n as u64) as usize
                    } else {
                        let total = pool.cumulative[n - 1];
                        let r = below(rng, total);
                        pool.cumulative.partition_point(|&c| c <= r)
                    };
                    if consider(self, pool.items[at]) {
                        done = true;
                        break;
                    }
                }
                if !done {
                    let start = below(rng, n as u64) as usize;
                    for k in 0..n {
                        if consider(self, pool.items[(start + k) % n]) {
                            break;
                        }
                    }
                }
            }
        }
        self.best_fit(&found, fit, pool)
    }

    /// Entry length of item `c` if it is not cut: its playable length less its crossfade.
    fn effective_len(&self, c: u32) -> i64 {
        super::index::entry_len(
            &self.p.catalog.library.items[c as usize],
            self.p.config.station.crossfade,
        )
    }

    /// Whether, after `c`, at most one more item would be needed to reach the goal: from then
    /// on the choice is worth making with the end in view.
    fn near_end(&self, c: u32, fit: Fit, pool: &Pool) -> bool {
        !fit.allow_overrun && self.effective_len(c) + pool.longest() >= fit.want - fit.tolerance
    }

    /// Among acceptable candidates (in preference order), the one that lands best on the goal:
    /// one that closes the run within the tolerance; else one after which some item of the pool
    /// can close it; else the one that needs the least cutting; else the first.
    fn best_fit(&self, found: &[u32], fit: Fit, pool: &Pool) -> Option<u32> {
        let first = *found.first()?;
        if found.len() == 1 || !self.near_end(first, fit, pool) {
            return Some(first);
        }
        let (want, tol) = (fit.want, fit.tolerance);
        let audio = |c: u32| self.p.catalog.index.playable[c as usize].signed();
        let eff = |c: u32| self.effective_len(c);
        // A hard end cuts the audio; a soft target is met by the entry's length.
        let closes = |c: u32| {
            if fit.hard {
                (want..=want + tol).contains(&audio(c))
            } else {
                (eff(c) - want).abs() <= tol
            }
        };
        if let Some(&c) = found.iter().find(|&&c| closes(c)) {
            return Some(c);
        }
        let sets_up_close = |c: u32| {
            let rest = want - eff(c);
            rest > 0
                && if fit.hard {
                    pool.has_length_in(rest, rest + tol)
                } else {
                    pool.has_length_in(rest - tol, rest + tol)
                }
        };
        if let Some(&c) = found.iter().find(|&&c| sets_up_close(c)) {
            return Some(c);
        }
        if fit.hard {
            return found
                .iter()
                .filter(|&&c| audio(c) >= want)
                .min_by_key(|&&c| audio(c))
                .copied()
                .or(Some(first));
        }
        // Nothing lands inside the tolerance: rather end early (the next pick continues) than
        // overrun the target.
        found
            .iter()
            .find(|&&c| eff(c) <= want + tol)
            .copied()
            .or(Some(first))
    }

    /// Checks candidate `c` for block `b` at loosening `level`; quotas and no-repeat are those of
    /// the block that was asked (`asked`), which may differ when a filler supplies the item.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &self,
        b: usize,
        asked: usize,
        c: u32,
        level: usize,
        run: &RunState,
        t: Instant,
        pool_len: usize,
    ) -> Result<(), Rule> {
        let i = c as usize;
        let index = &self.p.catalog.index;
        // Never the item that just played, at any level, while the pool has another.
        if (level < 7 && run.used.contains(&c)) || (pool_len > 1 && self.last_item == Some(c)) {
            return Err(Rule::RepeatInRun);
        }
        let sep = &self.p.blocks[b].def.separation;
        let title = match level {
            0..=4 => Some((sep.title, false)),
            5 => Some((sep.title, true)),
            _ => None,
        };
        if let Some((w, halve)) = title {
            if self.too_close(self.title_last[index.title[i] as usize], w, halve, t) {
                return Err(Rule::TitleSeparation);
            }
        }
        if level < 3 {
            for &a in index.artists[i].iter() {
                if self.too_close(self.artist_last[a as usize], sep.artist, level >= 2, t) {
                    return Err(Rule::ArtistSeparation);
                }
            }
        }
        if level < 1 {
            if let Some(a) = index.album[i] {
                if self.too_close(self.album_last[a as usize], sep.album, false, t) {
                    return Err(Rule::AlbumSeparation);
                }
            }
        }
        if level < 4 {
            let blk = &self.p.blocks[asked];
            if let Some(max) = blk.max_per_artist {
                if index.artists[i]
                    .iter()
                    .any(|&a| count(&run.artists, a) >= max)
                {
                    return Err(Rule::MaxPerArtist);
                }
            }
            if let (Some(max), Some(a)) = (blk.max_per_album, index.album[i]) {
                if count(&run.albums, a) >= max {
                    return Err(Rule::MaxPerAlbum);
                }
            }
            let n = f64::from(run.count + 1);
            for (k, (tag, at_least, at_most)) in blk.shares.iter().enumerate() {
                let tagged = run.shares[k] + u32::from(index.text[i].has_tag(tag));
                // The share holds at every point of the run, to the nearest whole item.
                let low = at_least.map_or(0.0, |p| (p * n / 100.0).floor());
                let high = at_most.map_or(f64::MAX, |p| (p * n / 100.0).ceil());
                let tagged = f64::from(tagged);
                if tagged < low || tagged > high {
                    return Err(Rule::TagShare);
                }
            }
        }
        Ok(())
    }

    fn too_close(&self, last: Option<(Instant, u64)>, w: Window, halve: bool, t: Instant) -> bool {
        let Some((at, play)) = last else { return false };
        let (minutes, items) = if halve {
            (w.minutes / 2, w.items / 2)
        } else {
            (w.minutes, w.items)
        };
        let between = self.plays.saturating_sub(play + 1);
        (minutes > 0 && t - at < i64::from(minutes) * 60_000)
            || (items > 0 && between < u64::from(items))
    }
}
