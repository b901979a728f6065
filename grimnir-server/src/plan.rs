//! `grimnir plan`: the planner over a station and its library, as `grimnir-planner` files
//! ([`plan_files`]) or as stored in the database ([`plan_station`], `--source database`).
//!
//! ```no_run
//! use grimnir_server::plan::{PlanOptions, Output, plan_files};
//!
//! let options = PlanOptions {
//!     from: Some("2026-11-24 06:00".parse().unwrap()),
//!     ..PlanOptions::default()
//! };
//! let plan = plan_files("station.yaml".as_ref(), "library.yaml".as_ref(), &options)?;
//! print!("{}", plan.output);
//! # Ok::<(), grimnir_server::plan::PlanError>(())
//! ```

use std::path::Path;

use chrono::{NaiveDateTime, TimeZone, Timelike, Utc};
use grimnir_planner::{Format, Library, PlanRequest, Planner, StationConfig, Window};

/// What to plan and how to show it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// The first hour, in the station's local time (default: the start of the current hour).
    pub from: Option<NaiveDateTime>,
    /// How many hours.
    pub hours: u32,
    /// The seed: the same files, window and seed give the same timeline.
    pub seed: u64,
    /// The form of the output.
    pub output: Output,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            from: None,
            hours: 48,
            seed: 1,
            output: Output::Table,
        }
    }
}

/// The form of `grimnir plan`'s output.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A table for people.
    Table,
    /// JSON lines, one entry each (what the engine's render mode reads).
    JsonLines,
    /// Why the entry on air at this local time is there.
    Explain(NaiveDateTime),
}

/// A plan: what to print, and the planner's diagnostics (warnings and errors) for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The table, JSON lines or explanation.
    pub output: String,
    /// How many entries the timeline has.
    pub entries: usize,
    /// The planner's warnings and errors, one line each.
    pub diagnostics: Vec<String>,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file, or the station and library together, are not valid.
    #[error("{path}: {source}")]
    Planner {
        /// The file (or both, joined by `+`).
        path: String,
        /// What the planner said.
        source: grimnir_planner::Error,
    },
    /// A local time that does not exist in the station's time zone, or lies outside the plan.
    #[error("{0}")]
    Time(String),
    /// The station could not be read from the database, or its programme there does not plan.
    #[error("station {station}: {source}")]
    Database {
        /// The station's id.
        station: String,
        /// What went wrong.
        source: crate::planning::PlanningError,
    },
}

/// Plans the station of `station` (a `grimnir-planner` station file, YAML or JSON by
/// extension) with the library of `library`.
pub fn plan_files(
    station: &Path,
    library: &Path,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let planner_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| PlanError::Planner { path, source }
    };
    let config = StationConfig::from_str_as(&read(station)?, Format::from_path(station))
        .map_err(planner_error(station))?;
    let pair = format!("{} + {}", station.display(), library.display());
    let library = Library::from_str_as(&read(library)?, Format::from_path(library))
        .map_err(planner_error(library))?;
    let planner = Planner::new(config, library)
        .map_err(|source| PlanError::Planner { path: pair, source })?;
    render(&planner, options, |source| PlanError::Planner {
        path: station.display().to_string(),
        source,
    })
}

/// Plans station `station` as stored in `db`: its smart blocks, clocks, shows and grid, with
/// its media and play history, as the schedule refresh of the API plans it.
pub async fn plan_station(
    db: &crate::db::Database,
    station: crate::db::stations::StationId,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let database = |source| PlanError::Database {
        station: station.to_string(),
        source,
    };
    let (config, library) = db
        .run(move |conn| crate::db::programme::load(conn, station))
        .await
        .map_err(|e| database(e.into()))?;
    let planner = crate::planning::planner(config, library).map_err(database)?;
    render(&planner, options, |source| PlanError::Planner {
        path: format!("station {station}"),
        source,
    })
}

/// Plans the window `options` asks for and renders it.
fn render(
    planner: &Planner,
    options: &PlanOptions,
    window_error: impl Fn(grimnir_planner::Error) -> PlanError,
) -> Result<Plan, PlanError> {
    let tz = planner.config().station.timezone;
    let name = planner.config().station.name.clone();
    let from = options.from.unwrap_or_else(|| {
        let now = Utc::now().with_timezone(&tz).naive_local();
        now.with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now)
    });
    let utc = |local: NaiveDateTime| {
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                PlanError::Time(format!(
                    "{local} does not exist in {tz} (skipped by a DST change)"
                ))
            })
    };
    let window = Window::hours(utc(from)?, options.hours).map_err(window_error)?;
    let (timeline, diagnostics) = planner.plan(PlanRequest::new(window, options.seed));
    let output = match &options.output {
        Output::Table => timeline.table(tz, &name, options.hours),
        Output::JsonLines => timeline.to_json_lines(),
        Output::Explain(at) => match timeline.what_plays_at(utc(*at)?) {
            Some(entry) => timeline.explain(entry),
            None => {
                return Err(PlanError::Time(format!(
                    "{at} is outside the planned window"
                )));
            }
        },
    };
    Ok(Plan {
        output,
        entries: timeline.entries.len(),
        diagnostics: diagnostics
            .iter()
            .filter(|d| d.severity >= grimnir_planner::Severity::Warning)
            .map(ToString::to_string)
            .collect(),
    })
}
