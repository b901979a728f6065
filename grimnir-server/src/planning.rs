//! Planning a station from the database: smart-block previews, clock simulations and the
//! schedule, all made by [`grimnir_planner`].
//!
//! The station and its library are read with [`db::programme::load`](crate::db::programme::load)
//! and handed to a [`Planner`]; nothing here chooses media itself. Previews use the same
//! planner on a reduced station configuration:
//!
//! - [`materialize`]: one smart block over a stretch of time. The block is planned as the
//!   content of a one-off show spanning exactly that stretch, so the planner's own selection
//!   (order, separation, quotas, relaxation, the trim at the end) is what the answer shows.
//! - [`simulate_clock`]: one clock for an hour, as if the grid ran it at every hour.
//! - [`plan_window`]: the station as configured, over a window, with the stored schedule before
//!   the window counted as history so separation holds across refreshes.
//!
//! Each function is blocking and takes a [`DbConnection`]; call it through
//! [`Database::run`](crate::db::Database::run).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use grimnir_planner::{
    Diagnostic, DiagnosticKind, Entry, Library, Millis, Overbooked, PlanRequest, Planner,
    Relaxation, Repeat, Show, ShowContent, StationConfig, Timeline, Underbooked, WeeklyGrid,
    Window,
};

use crate::db::clocks::ClockId;
use crate::db::smart_blocks::SmartBlockId;
use crate::db::stations::StationId;
use crate::db::{DbConnection, StorageError, programme, schedule};

/// The longest stretch a smart block is materialized over.
pub const MAX_MATERIALIZE: Millis = Millis::from_minutes(24 * 60);

/// How far back the stored schedule counts as history when a window is planned.
pub const SCHEDULE_HISTORY: TimeDelta = TimeDelta::hours(24);

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanningError {
    /// Reading the station failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The station's programme, as stored, is refused by the planner: a reference to something
    /// deleted since, or a grid rule out of range. The message names the definition.
    #[error("the station's programme cannot be planned: {0}")]
    Programme(String),
    /// The request itself is refused by the planner (a window too long, in the wrong order).
    #[error("{field}: {message}")]
    Request {
        /// The request field (`to`, `duration`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The seed a station's schedule is planned with when none is given: taken from its id, so
/// refreshing the same window with the same programme gives the same schedule.
pub fn default_seed(station: StationId) -> u64 {
    let bytes = station.as_uuid().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first)
}

/// The definition a planner error is about, named for people: `clock "Morning" (id)` for a
/// field under `clocks[2]`, and so on.
fn describe(config: &StationConfig, error: &grimnir_planner::Error) -> String {
    let field = match error {
        grimnir_planner::Error::Invalid { field, .. }
        | grimnir_planner::Error::UnknownId { field, .. }
        | grimnir_planner::Error::DuplicateId { field, .. } => field.as_str(),
        _ => "",
    };
    let index = |prefix: &str| -> Option<usize> {
        field
            .strip_prefix(prefix)?
            .strip_prefix('[')?
            .split(']')
            .next()?
            .parse()
            .ok()
    };
    let what = if let Some(c) = index("clocks").and_then(|i| config.clocks.get(i)) {
        format!("clock {:?} ({})", c.name, c.id)
    } else if let Some(s) = index("shows").and_then(|i| config.shows.get(i)) {
        format!("show {:?} ({})", s.name, s.id)
    } else if let Some(b) = index("smart_blocks").and_then(|i| config.smart_blocks.get(i)) {
        format!("smart block {:?} ({})", b.name, b.id)
    } else if field.starts_with("grid") || field.starts_with("overrides") {
        "the programme settings".to_owned()
    } else {
        return error.to_string();
    };
    format!("{what}: {error}")
}

/// A planner over `config` and `library`, or the error naming the definition it refuses.
pub fn planner(config: StationConfig, library: Library) -> Result<Planner, PlanningError> {
    let copy = config.clone();
    Planner::new(config, library).map_err(|e| PlanningError::Programme(describe(&copy, &e)))
}

/// How many separation rules were loosened to fill the air.
fn separation_violations(diagnostics: &[Diagnostic]) -> u64 {
    diagnostics
        .iter()
        .filter(|d| {
            matches!(
                d.kind,
                DiagnosticKind::Relaxed {
                    relaxation: Relaxation::AlbumSeparation
                        | Relaxation::ArtistSeparationHalved
                        | Relaxation::ArtistSeparation
                        | Relaxation::TitleSeparationHalved
                        | Relaxation::TitleSeparation,
                    ..
                }
            )
        })
        .count() as u64
}

/// A smart block's picks over `length` from `at`, with the planner's diagnostics.
///
/// The entries tile `at`..`at + length` exactly; the last one is cut at the end with the
/// station's trim fade. The same block, library, start, length and seed give the same entries.
pub fn materialize(
    conn: &mut DbConnection,
    station: StationId,
    block: SmartBlockId,
    length: Millis,
    at: DateTime<Utc>,
    seed: u64,
) -> Result<(Vec<Entry>, Vec<Diagnostic>), PlanningError> {
    // Exists at this station, or 404.
    crate::db::smart_blocks::get(conn, station, block)?;
    if length < Millis::from_secs(1) || length > MAX_MATERIALIZE {
        return Err(PlanningError::Request {
            field: "duration",
            message: "must be from 1 s to 24 hours".to_owned(),
        });
    }
    let started = Instant::now();
    let (mut config, library) = programme::load(conn, station)?;
    let at = at.with_nanosecond(0).unwrap_or(at);
    let local = at.with_timezone(&config.station.timezone);
    let preview = Show {
        id: "materialize".into(),
        name: "materialize".to_owned(),
        repeat: Repeat::Once,
        starts_on: local.date_naive(),
        ends_on: None,
        start: local.time(),
        end: None,
        duration: Some(length),
        content: ShowContent::SmartBlock(block.to_string().into()),
        underbooked: Underbooked::Filler,
        overbooked: Overbooked::Trim,
    };
    config.clocks.clear();
    config.grid = WeeklyGrid::default();
    config.overrides.clear();
    config.shows = vec![preview];
    let planner = planner(config, library)?;
    let end = at + TimeDelta::milliseconds(i64::try_from(length.as_millis()).unwrap_or(0));
    let window = Window::new(at, end).map_err(|e| PlanningError::Request {
        field: "duration",
        message: e.to_string(),
    })?;
    let (timeline, diagnostics) = planner.plan(PlanRequest::new(window, seed));
    crate::metrics::planner_smart_block_materialize_duration(block.as_uuid(), started.elapsed());
    Ok((timeline.entries, diagnostics))
}

/// What clock `clock` would put on air in the hour from `start`, with the planner's
/// diagnostics. Nothing is stored.
pub fn simulate_clock(
    conn: &mut DbConnection,
    station: StationId,
    clock: ClockId,
    start: DateTime<Utc>,
    seed: u64,
) -> Result<(Timeline, Vec<Diagnostic>), PlanningError> {
    crate::db::clocks::get(conn, station, clock)?;
    let (mut config, library) = programme::load(conn, station)?;
    config.grid = WeeklyGrid {
        default: Some(clock.to_string().into()),
        rules: Vec::new(),
    };
    config.overrides.clear();
    config.shows.clear();
    let planner = planner(config, library)?;
    let window = Window::hours(start, 1).map_err(|e| PlanningError::Request {
        field: "start",
        message: e.to_string(),
    })?;
    Ok(planner.plan(PlanRequest::new(window, seed)))
}

/// A plan of the station's schedule, ready to be stored.
#[derive(Debug, Clone)]
pub struct WindowPlan {
    /// The timeline. Its first entry starts at `from`, or where the stored entry on air at
    /// `from` ends (that one is kept).
    pub timeline: Timeline,
    /// What the planner worked around.
    pub diagnostics: Vec<Diagnostic>,
    /// How long reading and planning took.
    pub took: Duration,
}

/// Plans the station's schedule from `from` to `to` with `seed`.
///
/// A stored entry on air at `from` is kept: the plan starts where it ends. The stored media
/// entries of the [`SCHEDULE_HISTORY`] before the plan count as plays, with the play history,
/// for separation. Records the planner metrics.
pub fn plan_window(
    conn: &mut DbConnection,
    station: StationId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    seed: u64,
) -> Result<WindowPlan, PlanningError> {
    let started = Instant::now();
    let (config, mut library) = programme::load(conn, station)?;
    let on_air = schedule::timeline(conn, station, from, from + TimeDelta::milliseconds(1))?;
    let start = on_air
        .entries
        .iter()
        .filter(|e| e.start < from && e.end > from)
        .map(|e| e.end)
        .max()
        .unwrap_or(from);
    let window = Window::new(start, to).map_err(|e| PlanningError::Request {
        field: "to",
        message: if start > from {
            format!("{e} (the entry on air at `from` runs until {start})")
        } else {
            e.to_string()
        },
    })?;
    library.history.extend(schedule::scheduled_plays(
        conn,
        station,
        start - SCHEDULE_HISTORY,
        start,
    )?);
    let planner = planner(config, library)?;
    let (timeline, diagnostics) = planner.plan(PlanRequest::new(window, seed));
    let took = started.elapsed();
    let id = station.as_uuid();
    crate::metrics::planner_build_duration(id, took);
    crate::metrics::planner_entries_generated(id, timeline.entries.len() as u64);
    let violations = separation_violations(&diagnostics);
    if violations > 0 {
        crate::metrics::planner_separation_violations(id, violations);
    }
    Ok(WindowPlan {
        timeline,
        diagnostics,
        took,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_definition() {
        let mut config = StationConfig::new(grimnir_planner::Station::new("s", chrono_tz::UTC));
        config.clocks.push(grimnir_planner::Clock {
            id: "c-1".into(),
            name: "Morning".into(),
            slots: vec![],
        });
        let error = grimnir_planner::Error::UnknownId {
            field: "clocks[0].slots[1].hard_item.media".into(),
            kind: "media item",
            id: "gone".into(),
        };
        let text = describe(&config, &error);
        assert!(text.starts_with("clock \"Morning\" (c-1): "), "{text}");
        let elsewhere = grimnir_planner::Error::UnknownId {
            field: "station.filler".into(),
            kind: "smart block",
            id: "x".into(),
        };
        assert_eq!(describe(&config, &elsewhere), elsewhere.to_string());
    }

    #[test]
    fn the_default_seed_is_the_station_s_own() {
        let a = StationId::random();
        assert_eq!(default_seed(a), default_seed(a));
        assert_ne!(default_seed(a), default_seed(StationId::random()));
    }
}
