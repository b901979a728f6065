//! Scenario files in YAML or JSON.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grimnir_planner::{Millis, StationId, Timeline};

use crate::config::{ExecutorConfig, Timing};
use crate::error::{Error, Result};
use crate::programme::Programme;
use crate::simulate::{Scenario, ScriptedEvent};
use crate::source::MountId;

/// The format of a scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML (feature `yaml`).
    Yaml,
    /// JSON (feature `json`).
    Json,
}

impl Format {
    /// The format a file name's extension names: `.json` is JSON, anything else YAML.
    pub fn of_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    station: StationId,
    mount: MountId,
    #[serde(default = "default_graph")]
    graph: String,
    fallback: String,
    #[serde(default)]
    timing: Timing,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    #[serde(default)]
    tick: Option<Millis>,
    #[serde(default)]
    programme: Option<ProgrammeFile>,
    #[serde(default)]
    timeline: Option<Timeline>,
    #[serde(default)]
    events: Vec<ScriptedEvent>,
}

/// A [`Programme`] in a scenario file: the station is the scenario's.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgrammeFile {
    #[serde(default = "utc")]
    timezone: grimnir_planner::chrono_tz::Tz,
    start: DateTime<Utc>,
    entries: Vec<crate::programme::ProgrammeEntry>,
}

fn utc() -> grimnir_planner::chrono_tz::Tz {
    grimnir_planner::chrono_tz::Tz::UTC
}

fn default_graph() -> String {
    "default".to_owned()
}

impl Scenario {
    /// Reads a scenario file (its layout is in the crate README) and validates it.
    pub fn from_str_as(text: &str, format: Format) -> Result<Scenario> {
        let parse = |message: String| Error::Parse {
            what: "scenario file",
            message,
        };
        let file: ScenarioFile = match format {
            #[cfg(feature = "yaml")]
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| parse(e.to_string()))?,
            #[cfg(feature = "json")]
            Format::Json => serde_json::from_str(text).map_err(|e| parse(e.to_string()))?,
            #[allow(unreachable_patterns)]
            other => {
                return Err(parse(format!(
                    "reading {other:?} needs the crate feature `{}`",
                    if other == Format::Json {
                        "json"
                    } else {
                        "yaml"
                    }
                )));
            }
        };
        let timeline = match (file.programme, file.timeline) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidScenario {
                    field: "programme".into(),
                    reason: "give either `programme` or `timeline`, not both".into(),
                });
            }
            (Some(p), None) => Some(Arc::new(
                Programme {
                    station: file.station.clone(),
                    timezone: p.timezone,
                    start: p.start,
                    entries: p.entries,
                }
                .to_timeline(),
            )),
            (None, t) => t.map(Arc::new),
        };
        let scenario = Scenario {
            config: ExecutorConfig {
                station: file.station,
                mount: file.mount,
                graph: file.graph,
                fallback: file.fallback,
                timing: file.timing,
            },
            timeline,
            from: file.from,
            until: file.until,
            events: file.events,
            tick: file.tick,
        };
        scenario.validate()?;
        Ok(scenario)
    }
}
