//! A seeded synthetic library and station set, shared by the `plan_48h` benchmark and the
//! `synthetic_plan` example (which includes this file by `#[path]`).
//!
//! The library is shaped like a large multi-format music library: 100,000 tracks by about
//! 5,000 artists (a few prolific, the median one with about 20 tracks), albums of tracks that
//! share a year, genres that follow the artist, years 1960–2026 leaning recent, rotation tags in
//! the proportions a music director keeps (gold ≈ 18 %, recurrent ≈ 4 %, current ≈ 1 %, power a
//! sixth of current, new for current tracks added in the last 30 days), and analysis fields
//! (energy, bpm, loudness, cue points) on most but not all items. Six 30-second adverts and one
//! station ID per station complete it.
//!
//! Every station runs the same format hour: a station ID at the top, four smart blocks (current
//! hits in weighted rotation, gold in least-recently-played order, recurrents at random, fresh
//! adds newest first) and a stopset at 30:00. Stations differ in id, time zone, crossfade and
//! stopset.
//!
//! Everything is derived from a SplitMix64 stream, so the same seed gives the same library on
//! every machine and with every dependency version.

use std::collections::{BTreeMap, BTreeSet};

use grimnir_planner::chrono::{DateTime, TimeDelta, TimeZone, Utc};
use grimnir_planner::chrono_tz::{America, Asia, Australia, Europe, Tz};
use grimnir_planner::{
    Clock, Filter, Library, MediaItem, Millis, NumberOp, Order, PlanRequest, Quota, Separation,
    SeparationWindow, Slot, SlotKind, SmartBlock, Station, StationConfig, TagOp, TargetDuration,
    TextOp, Window,
};

/// Tracks in the benchmark library.
pub(crate) const TRACKS: usize = 100_000;
/// Seed of the benchmark library.
pub(crate) const LIBRARY_SEED: u64 = 0x6772_696d_6e69_7221;
/// Stations planned together.
pub(crate) const STATIONS: usize = 10;
/// Hours planned per station.
pub(crate) const HOURS: u32 = 48;

const ARTISTS: usize = 5_000;
const ALBUMS_PER_ARTIST: u64 = 8;
const ADVERTS: usize = 6;

/// The time zone of each station; station 0 is the New York one the single-station bench plans.
/// Whole-hour offsets only, so a plan starting on a UTC hour starts on a clock hour everywhere.
const ZONES: [Tz; STATIONS] = [
    America::New_York,
    America::Chicago,
    America::Denver,
    America::Los_Angeles,
    America::Sao_Paulo,
    Europe::London,
    Europe::Berlin,
    Europe::Helsinki,
    Asia::Tokyo,
    Australia::Sydney,
];

// Word lists the names are made of, whitespace-separated (one word each), split once per
// library. Artist names are adjective + noun (50 × 100 = 5,000 distinct names).
const ADJECTIVES: &str = "\
    Quiet Golden Broken Electric Paper Static Hollow Velvet Neon Silver Copper Glass \
    Midnight Wild Lonely Burning Frozen Crimson Distant Restless Gentle Savage Northern \
    Southern Faded Bright Blue Black White Scarlet Lucky Holy Secret Sleepless Dusty Rusty \
    Sonic Cosmic Tender Stolen Fallen Rising Little Big Young Old Pale Open Hidden Endless";

const NOUNS: &str = "\
    Society Union Radio Tides Sisters Garden Drive Hearts Engines Machines Foxes Motel \
    Lights Riders Kings Queens Wolves Rivers Shadows Echoes Stars Satellites Horses Ghosts \
    Saints Strangers Brothers Daughters Lovers Dreamers Thieves Sailors Pilots Poets Rebels \
    Angels Cowboys Wires Signals Mirrors Canyons Harbours Islands Mountains Highways Streets \
    Gardens Fires Storms Waves Orchids Roses Ravens Sparrows Tigers Lions Bears Owls Comets \
    Planets Moons Suns Clouds Rain Snow Thunder Summer Winter Autumn Spring Fever Velocity \
    Gravity Harmony Symphony Parade Carnival Circus Theory Method Republic Empire Kingdom \
    Colony Tribe Family Collective Orchestra Ensemble Quartet Trio Club Band Crew Gang Army \
    Choir Factory Hotel Cinema";

const ALBUM_FORMS: [&str; ALBUMS_PER_ARTIST as usize] = [
    "Tapes", "Sessions", "Stories", "Years", "Nights", "Songs", "Letters", "Diaries",
];

const TITLE_WORDS: &str = "\
    Love Night Heart Fire Summer Rain Road River Dance Dream Light Shadow Home Ghost Gold \
    Signal Storm City Island Echo Line Wire Stars Hollow Glass Fever Highway Morning \
    Midnight Sky Ocean Desert Train Window Letter Promise Secret Angel Devil Heaven Paradise \
    Thunder Lightning Silence Voices Mirror Runaway Tonight Forever Yesterday Tomorrow Baby \
    Girl Boy Money Time World Sun Moon Blue Red Wild Free Young Lonely Crazy Sweet Cold Hot \
    Slow Fast Easy Hard Alive Gone Lost Found Falling Running Waiting";

/// Genres with their share of artists, in per mille.
const GENRES: [(&str, u64); 14] = [
    ("pop", 220),
    ("rock", 200),
    ("indie", 110),
    ("soul", 70),
    ("r&b", 60),
    ("hip-hop", 70),
    ("dance", 70),
    ("country", 60),
    ("jazz", 40),
    ("folk", 35),
    ("electronic", 30),
    ("blues", 15),
    ("reggae", 10),
    ("classical", 10),
];

const MOODS: [&str; 6] = [
    "upbeat",
    "mellow",
    "dark",
    "romantic",
    "energetic",
    "dreamy",
];

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast and fixed forever, unlike `rand`'s
/// algorithms, which may change between versions.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A stream for one keyed thing (an artist, an album), independent of draw order.
    fn keyed(seed: u64, key: u64) -> Self {
        let mut s = SplitMix64(seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        s.next_u64();
        s
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An integer in `0..n` (multiply-shift; the bias is far below anything measured here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len() as u64) as usize]
    }
}

/// The instant the benchmark window starts: midnight in New York on a Tuesday with no DST change
/// in the following 48 hours in any of the zones. Also the library's "today".
pub(crate) fn window_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 5, 0, 0)
        .single()
        .expect("a valid UTC time")
}

/// What station `n` plans: 48 hours from [`window_start`] with its own seed.
pub(crate) fn request(n: usize) -> PlanRequest {
    let window = Window::hours(window_start(), HOURS).expect("48 hours is a valid window");
    PlanRequest::new(window, 0x5eed_0000 + n as u64)
}

/// The word lists, split.
struct Words {
    adjectives: Vec<&'static str>,
    nouns: Vec<&'static str>,
    title: Vec<&'static str>,
}

impl Words {
    fn new() -> Self {
        let split = |list: &'static str| list.split_whitespace().collect::<Vec<_>>();
        Words {
            adjectives: split(ADJECTIVES),
            nouns: split(NOUNS),
            title: split(TITLE_WORDS),
        }
    }

    /// A distinct name for each artist number below 5,000.
    fn artist(&self, k: usize) -> String {
        let (adjectives, nouns) = (self.adjectives.len(), self.nouns.len());
        format!(
            "{} {}",
            self.adjectives[k % adjectives],
            self.nouns[k / adjectives % nouns]
        )
    }

    /// A distinct name for each (artist, album number): for one album number, adjective and noun
    /// together are a one-to-one function of the artist, and the form tells the albums apart.
    fn album(&self, artist: usize, album: u64) -> String {
        let (adjectives, nouns) = (self.adjectives.len(), self.nouns.len());
        format!(
            "{} {} {}",
            self.adjectives[(artist + 17 * album as usize) % adjectives],
            self.nouns[artist / adjectives % nouns],
            ALBUM_FORMS[album as usize],
        )
    }
}

fn genre_of(artist: usize, seed: u64) -> &'static str {
    let mut r = SplitMix64::keyed(seed ^ 0x0067_656e_7265, artist as u64);
    let mut at = r.below(1000);
    for (genre, share) in GENRES {
        if at < share {
            return genre;
        }
        at -= share;
    }
    GENRES[0].0
}

/// The station ID of station `n`.
pub(crate) fn station_id_item(n: usize) -> String {
    format!("id-s{n:02}")
}

fn advert(n: usize) -> String {
    format!("ad-{:02}", n + 1)
}

/// `tracks` synthetic tracks, six adverts and one station ID per station, from `seed`.
pub(crate) fn library(tracks: usize, seed: u64) -> Library {
    let today = window_start();
    let words = Words::new();
    let mut rng = SplitMix64::new(seed);
    let mut items = Vec::with_capacity(tracks + ADVERTS + STATIONS);
    for n in 0..STATIONS {
        items.push(
            MediaItem::new(
                station_id_item(n),
                format!("Station ID {n}"),
                Millis::from_secs(8),
            )
            .by(format!("Station {n}"))
            .tagged("id"),
        );
    }
    for n in 0..ADVERTS {
        items.push(
            MediaItem::new(
                advert(n),
                format!("Advert {}", n + 1),
                Millis::from_secs(30),
            )
            .by(format!("Sponsor {}", n + 1))
            .tagged("ad"),
        );
    }
    for i in 0..tracks {
        // Skewed towards low numbers: the busiest artist has ~135 tracks, the median one ~20.
        let artist = ((ARTISTS as f64 * rng.unit().powf(1.3)) as usize).min(ARTISTS - 1);
        let album_no = rng.below(ALBUMS_PER_ARTIST);
        // Tracks of one album share its year; years lean recent.
        let mut album_rng =
            SplitMix64::keyed(seed ^ 0x0061_6c62_756d, artist as u64 * 8 + album_no);
        let year = 1960 + ((67.0 * album_rng.unit().powf(0.6)) as i32).min(66);
        let genre = if rng.chance(0.9) {
            genre_of(artist, seed)
        } else {
            GENRES[rng.below(GENRES.len() as u64) as usize].0
        };

        let title_words = if rng.chance(0.3) { 2 } else { 3 };
        let title = (0..title_words)
            .map(|_| rng.pick(&words.title))
            .collect::<Vec<_>>()
            .join(" ");
        let duration = Millis::from_millis(150_000 + rng.below(180_001));

        // Added when released, or when the catalogue was digitised (from 2012) for older music.
        let first_day = Utc
            .with_ymd_and_hms(year.max(2012), 1, 1, 12, 0, 0)
            .single()
            .expect("a valid UTC time");
        let span = (today - first_day).num_days().max(1) as u64;
        let added_at = first_day + TimeDelta::days(rng.below(span) as i64);
        let days_since_added = (today - added_at).num_days();

        let mut tags = BTreeSet::new();
        let current = year >= 2025 && rng.chance(0.2);
        if current {
            tags.insert("current".to_owned());
            if rng.chance(1.0 / 6.0) {
                tags.insert("power".to_owned());
            }
            if days_since_added <= 30 {
                tags.insert("new".to_owned());
            }
        } else if (2018..=2024).contains(&year) && rng.chance(0.25) {
            tags.insert("recurrent".to_owned());
        } else if year < 2010 && rng.chance(0.3) {
            tags.insert("gold".to_owned());
        }
        if rng.chance(0.05) {
            tags.insert("explicit".to_owned());
        }
        if rng.chance(0.03) {
            tags.insert("live".to_owned());
        }

        let mut artists = vec![words.artist(artist)];
        if rng.chance(0.08) {
            artists.push(words.artist(rng.below(ARTISTS as u64) as usize));
        }
        let cue_in = if rng.chance(0.3) {
            Millis::from_millis(rng.below(2_001))
        } else {
            Millis::ZERO
        };
        let cue_out = rng
            .chance(0.2)
            .then(|| duration.saturating_sub(Millis::from_millis(rng.below(4_001))));
        let last_played = rng
            .chance(0.6)
            .then(|| today - TimeDelta::minutes(rng.below(60 * 24 * 60) as i64 + 1));
        items.push(MediaItem {
            artists,
            album: Some(words.album(artist, album_no)),
            tags,
            genre: Some(genre.to_owned()),
            year: Some(year),
            bpm: rng
                .chance(0.65)
                .then(|| 60.0 + (rng.below(1_201) as f64) / 10.0),
            energy: rng.chance(0.75).then(|| rng.below(101) as f64 / 100.0),
            mood: rng.chance(0.4).then(|| rng.pick(&MOODS).to_owned()),
            lufs: rng
                .chance(0.8)
                .then(|| -16.0 + rng.below(101) as f64 / 10.0),
            cue_in,
            cue_out,
            added_at: Some(added_at),
            last_played,
            ..MediaItem::new(format!("t{i:06}"), title, duration)
        });
    }
    Library {
        items,
        history: Vec::new(),
    }
}

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

fn separation(artist_minutes: u32, title_minutes: u32) -> Separation {
    Separation {
        artist: SeparationWindow::new(artist_minutes, 0),
        title: SeparationWindow::new(title_minutes, 0),
        album: SeparationWindow::default(),
    }
}

/// The four music blocks every station runs.
fn smart_blocks() -> Vec<SmartBlock> {
    let not_imaging = || Filter::Tags(TagOp::Exclude(tags(&["ad", "id"])));

    let mut current = SmartBlock::new(
        "current",
        Some(Filter::All(vec![
            Filter::Tags(TagOp::Include(tags(&["current"]))),
            not_imaging(),
        ])),
    );
    current.name = "Current hits".into();
    current.order = Order::WeightedRotation(BTreeMap::from([
        ("power".to_owned(), 4.0),
        ("new".to_owned(), 2.0),
        ("current".to_owned(), 1.0),
    ]));
    current.separation = separation(45, 180);
    current.quotas = vec![
        Quota::MaxPerArtist(1),
        Quota::TagShare {
            tag: "new".into(),
            at_least: Some(20.0),
            at_most: None,
        },
    ];

    let mut gold = SmartBlock::new(
        "gold",
        Some(Filter::All(vec![
            Filter::Tags(TagOp::Include(tags(&["gold"]))),
            Filter::Year(NumberOp::Lt(2010.0)),
            Filter::Genre(TextOp::IsNot("classical".into())),
            Filter::Tags(TagOp::Exclude(tags(&["explicit", "live"]))),
        ])),
    );
    gold.name = "Gold".into();
    gold.order = Order::LeastRecentlyPlayed;
    gold.separation = Separation {
        album: SeparationWindow::new(60, 0),
        ..separation(60, 180)
    };

    let mut recurrent = SmartBlock::new(
        "recurrent",
        Some(Filter::Any(vec![
            Filter::Tags(TagOp::Include(tags(&["recurrent"]))),
            Filter::All(vec![
                Filter::Year(NumberOp::Between([2015.0, 2024.0])),
                Filter::Energy(NumberOp::Gt(0.6)),
                Filter::Any(vec![
                    Filter::Genre(TextOp::Is("pop".into())),
                    Filter::Genre(TextOp::Is("dance".into())),
                ]),
                not_imaging(),
            ]),
        ])),
    );
    recurrent.name = "Recurrents and upbeat pop".into();
    recurrent.order = Order::Random;
    recurrent.separation = separation(30, 180);
    recurrent.quotas = vec![Quota::MaxPerAlbum(1)];

    let mut fresh = SmartBlock::new(
        "fresh",
        Some(Filter::All(vec![
            Filter::AddedAt(grimnir_planner::DateOp::WithinLast(Millis::from_minutes(
                90 * 24 * 60,
            ))),
            Filter::Duration(NumberOp::Between([150.0, 300.0])),
            Filter::Genre(TextOp::IsNot("classical".into())),
            not_imaging(),
        ])),
    );
    fresh.name = "Fresh adds (last 90 days)".into();
    fresh.order = Order::Newest;
    fresh.separation = separation(30, 180);
    fresh.quotas = vec![Quota::TagShare {
        tag: "explicit".into(),
        at_least: None,
        at_most: Some(10.0),
    }];

    for block in [&mut current, &mut gold, &mut recurrent, &mut fresh] {
        block.duration = TargetDuration {
            target: Millis::from_minutes(13),
            tolerance: Millis::from_secs(45),
            allow_overrun: false,
        };
    }
    vec![current, gold, recurrent, fresh]
}

/// The station file of station `n` (0–9).
pub(crate) fn station(n: usize) -> StationConfig {
    let mut station = Station::new(format!("s{n:02}"), ZONES[n % STATIONS]);
    station.name = format!("Synthetic {n}");
    station.crossfade = Millis::from_secs([0, 2, 3][n % 3]);
    station.filler = Some("gold".into());

    let block = |id: &str, minutes: Option<u64>| SlotKind::SmartBlock {
        block: id.into(),
        duration: minutes.map(Millis::from_minutes),
    };
    let stopset = (0..4).map(|k| advert((n + k) % ADVERTS).into()).collect();
    let hour = Clock {
        id: "format-hour".into(),
        name: "Format hour".into(),
        slots: vec![
            Slot::new(SlotKind::HardItem {
                media: station_id_item(n).into(),
            }),
            Slot::new(block("current", Some(14))),
            // The last block before the stopset fills to its hard start.
            Slot::new(block("gold", None)),
            Slot::hard(
                SlotKind::Stopset { items: stopset },
                Millis::from_minutes(30),
            ),
            Slot::new(block("recurrent", Some(13))),
            // The last block of the hour fills to the top of the next one.
            Slot::new(block("fresh", None)),
        ],
    };

    let mut config = StationConfig::new(station);
    config.smart_blocks = smart_blocks();
    config.clocks.push(hour);
    config.grid.default = Some("format-hour".into());
    config
}
