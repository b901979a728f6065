//! What every fuzz target checks once it has a [`Planner`]: the planner's promises about the
//! timeline, asserted so that a broken promise is a crash libFuzzer keeps.

use grimnir_planner::chrono::{DateTime, TimeDelta, TimeZone, Utc};
use grimnir_planner::{PlanRequest, Planner, Timeline, Window};

/// Reports why an input stopped before planning, when `GRIMNIR_FUZZ_VERBOSE` is set: useful
/// when writing a seed by hand, silent (and cheap) while fuzzing.
pub fn skipped(stage: &str, why: impl std::fmt::Display) {
    if verbose() {
        eprintln!("skipped at {stage}: {why}");
    }
}

/// Whether `GRIMNIR_FUZZ_VERBOSE` is set.
pub fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("GRIMNIR_FUZZ_VERBOSE").is_some())
}

/// Longest window a target plans: longer windows only make each run slower.
pub const MAX_HOURS: u32 = 6;

/// The shortest playable length the planner accepts; the structured generator writes no item
/// shorter. (This target once found that millisecond items filled an hour with millions of
/// entries; the planner's validation refuses them now.)
pub use grimnir_planner::MIN_PLAYABLE;

/// `2026-01-01T00:00:00Z` plus `offset`, clamped to the year 2026.
pub fn start_in_2026(offset: TimeDelta) -> DateTime<Utc> {
    let new_year = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date");
    let year = TimeDelta::days(365) - TimeDelta::milliseconds(1);
    new_year + offset.clamp(TimeDelta::zero(), year)
}

/// Plans `hours` (1 to [`MAX_HOURS`]) from `start` with `seed` and asserts the timeline's
/// invariants. Returns the timeline for target-specific checks.
pub fn plan_and_check(planner: &Planner, start: DateTime<Utc>, hours: u32, seed: u64) -> Timeline {
    let window =
        Window::hours(start, hours.clamp(1, MAX_HOURS)).expect("1 to 6 hours is a valid window");
    let (timeline, _diagnostics) = planner.plan(PlanRequest::new(window, seed));
    check_timeline(&timeline, window);
    timeline
}

/// The promises of [`Planner::plan`]: the entries tile the window with no gap and no overlap.
pub fn check_timeline(timeline: &Timeline, window: Window) {
    let entries = &timeline.entries;
    assert!(!entries.is_empty(), "empty timeline for {window:?}");
    assert_eq!(
        entries[0].start,
        window.start(),
        "the first entry must start at the window's start"
    );
    for (i, e) in entries.iter().enumerate() {
        assert!(e.end > e.start, "entry {i} is empty or reversed: {e:?}");
    }
    for (i, pair) in entries.windows(2).enumerate() {
        assert_eq!(
            pair[0].end,
            pair[1].start,
            "gap or overlap between entries {i} and {}",
            i + 1
        );
    }
    let last = &entries[entries.len() - 1];
    assert!(
        last.end >= window.end(),
        "the timeline ends at {} before the window's end {}",
        last.end,
        window.end()
    );
    // `Planner::plan` documents the last entry as "the one that crosses the window's end".
    assert!(
        last.start < window.end(),
        "entry {} starts at or after the window's end",
        entries.len() - 1
    );
    assert!(
        timeline.what_plays_at(window.start()).is_some(),
        "nothing on air at the window's start"
    );

    let _ = timeline.explain(&entries[0]);
    assert!(
        grimnir_planner::diff(timeline, timeline).is_empty(),
        "a timeline differs from itself"
    );
    let json = timeline.to_json();
    let back = Timeline::from_json(&json)
        .unwrap_or_else(|e| panic!("to_json output does not read back: {e}"));
    assert!(
        back == *timeline,
        "the timeline changes in a JSON round trip"
    );
}
