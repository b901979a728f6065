//! The library, indexed once: lower-cased text, interned separation keys, and per-block pools.

use std::collections::HashMap;
use std::sync::Arc;

use crate::block::{Order, SmartBlock};
use crate::filter::{Compiled, ItemText};
use crate::media::Library;
use crate::time::{Instant, Millis, to_instant};

/// Separation keys and lengths of every item, by library position.
#[derive(Debug)]
pub(crate) struct Index {
    pub text: Vec<ItemText>,
    pub artists: Vec<Box<[u32]>>,
    pub title: Vec<u32>,
    pub album: Vec<Option<u32>>,
    pub playable: Vec<Millis>,
    /// Each item's own `last_played`, `i64::MIN` for never: where every plan's
    /// least-recently-played state starts.
    pub last_played: Vec<Instant>,
    pub artist_keys: usize,
    pub title_keys: usize,
    pub album_keys: usize,
    pub by_id: HashMap<String, u32>,
}

struct Interner(HashMap<String, u32>);

impl Interner {
    fn key(&mut self, s: &str) -> u32 {
        let s = s.trim();
        if let Some(&k) = self.0.get(s) {
            return k;
        }
        let k = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0.insert(s.to_owned(), k);
        k
    }
}

impl Index {
    pub(crate) fn new(library: &Library) -> Index {
        let n = library.items.len();
        let (mut artists_i, mut titles_i, mut albums_i) = (
            Interner(HashMap::new()),
            Interner(HashMap::new()),
            Interner(HashMap::new()),
        );
        let mut index = Index {
            text: Vec::with_capacity(n),
            artists: Vec::with_capacity(n),
            title: Vec::with_capacity(n),
            album: Vec::with_capacity(n),
            playable: Vec::with_capacity(n),
            last_played: Vec::with_capacity(n),
            artist_keys: 0,
            title_keys: 0,
            album_keys: 0,
            by_id: HashMap::with_capacity(n),
        };
        for (i, item) in library.items.iter().enumerate() {
            let text = ItemText::of(item);
            let mut keys: Vec<u32> = text.artists.iter().map(|a| artists_i.key(a)).collect();
            keys.sort_unstable();
            keys.dedup();
            index.artists.push(keys.into_boxed_slice());
            index.title.push(titles_i.key(&text.title));
            index
                .album
                .push(item.album.as_ref().map(|_| albums_i.key(&text.album)));
            index.playable.push(item.playable());
            index
                .last_played
                .push(item.last_played.map_or(i64::MIN, to_instant));
            index.by_id.insert(item.id.as_str().to_owned(), i as u32);
            index.text.push(text);
        }
        index.artist_keys = artists_i.0.len();
        index.title_keys = titles_i.0.len();
        index.album_keys = albums_i.0.len();
        index
    }
}

/// The items one block may choose from, arranged for its order.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Library positions. Library order for random orders, sorted for newest/oldest.
    pub items: Vec<u32>,
    /// Running sum of integer weights, for weighted rotation.
    pub cumulative: Vec<u64>,
    /// Entry lengths (playable length less crossfade) of the items, ascending, in ms: lets the
    /// fit look one item ahead.
    pub lengths: Vec<i64>,
}

impl Pool {
    /// Whether some item of the pool has an entry length in `lo..=hi`.
    pub(crate) fn has_length_in(&self, lo: i64, hi: i64) -> bool {
        let at = self.lengths.partition_point(|&l| l < lo);
        self.lengths.get(at).is_some_and(|&l| l <= hi)
    }

    /// The longest entry length in the pool.
    pub(crate) fn longest(&self) -> i64 {
        self.lengths.last().copied().unwrap_or(0)
    }
}

/// Entry length of an item that is not cut: playable length less its crossfade into the next.
pub(crate) fn entry_len(item: &crate::media::MediaItem, station_crossfade: Millis) -> i64 {
    let len = item.playable();
    let overlap = item
        .crossfade
        .unwrap_or(station_crossfade)
        .min(Millis::from_millis(len.as_millis() / 2));
    len.signed() - overlap.signed()
}

impl Pool {
    /// The pool of `block`: those of `candidates` that pass `filter`, arranged for the block's
    /// order.
    pub(crate) fn build(
        block: &SmartBlock,
        candidates: impl Iterator<Item = u32>,
        filter: Option<&Compiled>,
        library: &Library,
        index: &Index,
        now: Instant,
        crossfade: Millis,
    ) -> Arc<Pool> {
        let mut items: Vec<u32> = candidates
            .filter(|&i| {
                filter.is_none_or(|f| {
                    f.matches(&index.text[i as usize], &library.items[i as usize], now)
                })
            })
            .collect();
        let added = |i: &u32| library.items[*i as usize].added_at.map(to_instant);
        let mut cumulative = Vec::new();
        match &block.order {
            // Stable sorts keep library order among equals.
            Order::Newest => items.sort_by_key(|i| std::cmp::Reverse(added(i).unwrap_or(i64::MIN))),
            Order::Oldest => items.sort_by_key(|i| added(i).unwrap_or(i64::MAX)),
            Order::WeightedRotation(weights) => {
                let lowered: Vec<(String, u64)> = weights
                    .iter()
                    .map(|(t, w)| (t.to_lowercase(), (w * 1000.0).round().max(1.0) as u64))
                    .collect();
                let mut sum = 0u64;
                for &i in &items {
                    let text = &index.text[i as usize];
                    let w = lowered
                        .iter()
                        .filter(|(t, _)| text.has_tag(t))
                        .map(|(_, w)| *w)
                        .max()
                        .unwrap_or(1000);
                    sum += w;
                    cumulative.push(sum);
                }
            }
            // Sorted by each item's own last play, so that a plan's starting order (which only
            // adds the history on top) is nearly sorted already.
            Order::LeastRecentlyPlayed => {
                items.sort_by_key(|&i| (index.last_played[i as usize], i))
            }
            Order::Random => {}
        }
        let mut lengths: Vec<i64> = items
            .iter()
            .map(|&i| entry_len(&library.items[i as usize], crossfade))
            .collect();
        lengths.sort_unstable();
        Arc::new(Pool {
            items,
            cumulative,
            lengths,
        })
    }
}
