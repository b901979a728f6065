//! `/api/v1/stations/{station_id}/programme`: the station's weekly grid of clocks, dated
//! overrides, filler block, crossfade and trim fade; and the pieces the programme resources
//! share (planned entries and diagnostics as DTOs, planner errors as API errors).
//!
//! Definitions are written as `grimnir-planner` writes them in a station file, in JSON: a
//! length is a number of seconds or a string (`"3:35"`, `"90s"`, `"2h"`), enums are one-key
//! objects (`{"weekly": ["fri"]}`), and ids are the UUIDs of the station's smart blocks, clocks,
//! media items and webstreams. Errors name the field with its path in the request body
//! (`slots[2].smart_block.block`, `rules.separation.artist.minutes`).

use axum::extract::State;
use chrono::{DateTime, Utc};
use grimnir_planner::{Diagnostic, Entry, Millis, Source};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, from_json};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::DbConnection;
use crate::db::programme::{self, ProgrammeSettings, Reference};
use crate::db::stations::{self, StationId};
use crate::http::AppState;
use crate::planning::PlanningError;

/// `prefix.field`, or `prefix` when the error names no field.
fn under(prefix: &str, field: Option<&str>) -> String {
    match field {
        Some(f) if prefix.is_empty() => f.to_owned(),
        Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
        Some(f) => format!("{prefix}.{f}"),
        None => prefix.to_owned(),
    }
}

/// Reads a part of a request body as a planner type, naming the offending field below
/// `prefix` (422 `invalid_field`).
pub(crate) fn planner_value<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|_| ApiError::internal())?;
    from_json(&bytes).map_err(|e| {
        let field = under(prefix, e.field.as_deref());
        ApiError::invalid_field(field, e.message)
    })
}

/// A planner validation error as 422 `invalid_field`. The planner names fields under `at`, the
/// path it was given; that path is replaced by `prefix`, the field's path in the request body.
pub(crate) fn planner_error(error: &grimnir_planner::Error, at: &str, prefix: &str) -> ApiError {
    let (field, reason) = match error {
        grimnir_planner::Error::Invalid { field, reason, .. } => (field.clone(), reason.clone()),
        grimnir_planner::Error::UnknownId { field, .. }
        | grimnir_planner::Error::DuplicateId { field, .. } => (field.clone(), error.to_string()),
        other => (String::new(), other.to_string()),
    };
    let rest = field.strip_prefix(at).unwrap_or(&field);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let field = if rest.is_empty() {
        prefix.to_owned()
    } else {
        under(prefix, Some(rest))
    };
    ApiError::invalid_field(field, reason)
}

/// Refuses references to things that do not exist at the station, naming the first such field
/// (422 `invalid_field`).
pub(crate) fn check_references(
    conn: &mut DbConnection,
    station: StationId,
    references: &[(String, Reference<'_>)],
) -> Result<(), ApiError> {
    for (field, reference) in references {
        if !reference.exists(conn, station)? {
            return Err(ApiError::invalid_field(
                field.clone(),
                format!(
                    "no {} `{}` at this station",
                    reference.kind(),
                    reference.id()
                ),
            ));
        }
    }
    Ok(())
}

impl From<PlanningError> for ApiError {
    fn from(e: PlanningError) -> Self {
        match e {
            PlanningError::Storage(e) => e.into(),
            PlanningError::Programme(message) => ApiError::conflict(message),
            PlanningError::Request { field, message } => ApiError::invalid_field(field, message),
        }
    }
}

/// Milliseconds of a length, for JSON.
pub(crate) fn ms(length: Millis) -> u64 {
    length.as_millis()
}

/// The planner's name of a serializable enum value (`automation`, `no_clock`).
fn variant_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// One planned stretch of air, as the planner made it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlannedEntryDto {
    /// When it starts on air.
    pub starts_at: DateTime<Utc>,
    /// When the next entry starts.
    pub ends_at: DateTime<Utc>,
    /// `ends_at - starts_at`, in milliseconds.
    #[schema(example = 215000)]
    pub duration_ms: u64,
    /// Priority tier: `emergency`, `live_override`, `live_scheduled`, `automation` or
    /// `fallback`.
    #[schema(example = "automation")]
    pub tier: String,
    /// The tier's number, 0 (emergency) to 4 (fallback).
    #[schema(example = 3)]
    pub tier_level: u8,
    /// `media`, `webstream`, `live` or `fallback`.
    #[schema(example = "media")]
    pub source_type: String,
    /// The media item or webstream, when the source has one.
    pub source_id: Option<String>,
    /// The title of a media item, or the name of a live programme.
    pub title: Option<String>,
    /// The artists of a media item.
    pub artists: Vec<String>,
    /// Where playback starts in the file, in milliseconds (media).
    pub cue_in_ms: Option<u64>,
    /// Where playback stops in the file, in milliseconds (media; earlier than the item's own
    /// cue-out when it was cut).
    pub cue_out_ms: Option<u64>,
    /// What made it: the clock slot's kind (`smart_block`, `stopset`, …) or the show content's.
    #[schema(example = "smart_block")]
    pub kind: String,
    /// The clock, for clock entries.
    pub clock_id: Option<String>,
    /// The clock slot's index, for slot entries.
    pub slot: Option<u32>,
    /// The show, for show entries.
    pub show_id: Option<String>,
    /// The smart block that chose the item.
    pub block_id: Option<String>,
    /// Whether the item was cut at a hard boundary.
    pub trimmed: bool,
    /// Rules the planner loosened to choose the item.
    pub relaxed: Vec<String>,
    /// The whole planner entry (source, tier, transition, provenance) as the planner
    /// serializes it: what a schedule row's `metadata` holds.
    #[schema(value_type = Object)]
    pub entry: serde_json::Value,
}

impl From<&Entry> for PlannedEntryDto {
    fn from(e: &Entry) -> Self {
        let (source_type, source_id) = crate::db::schedule::source_columns(&e.source);
        let (title, artists, cue_in_ms, cue_out_ms) = match &e.source {
            Source::Media {
                title,
                artists,
                cue_in,
                cue_out,
                ..
            } => (
                Some(title.clone()),
                artists.clone(),
                Some(ms(*cue_in)),
                Some(ms(*cue_out)),
            ),
            Source::Live { name } => (Some(name.clone()), Vec::new(), None, None),
            _ => (None, Vec::new(), None, None),
        };
        let p = &e.provenance;
        PlannedEntryDto {
            starts_at: e.start,
            ends_at: e.end,
            duration_ms: ms(e.length()),
            tier: variant_name(&e.tier),
            tier_level: e.tier.number(),
            source_type: source_type.to_owned(),
            source_id: source_id.map(str::to_owned),
            title,
            artists,
            cue_in_ms,
            cue_out_ms,
            kind: p.kind.clone(),
            clock_id: p.clock.as_ref().map(ToString::to_string),
            slot: p.slot,
            show_id: p.show.as_ref().map(ToString::to_string),
            block_id: p.block.as_ref().map(ToString::to_string),
            trimmed: p.trimmed,
            relaxed: p.relaxed.iter().map(variant_name).collect(),
            entry: serde_json::to_value(e).unwrap_or_default(),
        }
    }
}

/// Something the planner noticed or worked around.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiagnosticDto {
    /// Where on the timeline.
    pub at: DateTime<Utc>,
    /// `info`, `warning` or `error`.
    #[schema(example = "warning")]
    pub severity: String,
    /// What happened: `no_clock`, `relaxed`, `no_media`, `trimmed`, `slot_dropped`,
    /// `underfilled`, `show_conflict`, `show_time_adjusted`, `underbooked`, `overbooked`,
    /// `unknown_history`.
    #[schema(example = "relaxed")]
    pub kind: String,
    /// The same for people.
    pub message: String,
}

impl From<&Diagnostic> for DiagnosticDto {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticDto {
            at: d.at,
            severity: variant_name(&d.severity),
            kind: variant_name(&d.kind),
            message: d.to_string(),
        }
    }
}

/// The station's programme settings, as `grimnir-planner` models them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgrammeDto {
    /// Which clock runs in each local hour of the week: `{"default": clock_id, "rules":
    /// [{"days": ["mon"], "from": 6, "to": 10, "clock": clock_id}]}`; later rules win.
    #[schema(value_type = Object)]
    pub grid: serde_json::Value,
    /// Dated replacements of the grid: `[{"date": "2026-12-25", "from": 0, "to": 24, "clock":
    /// clock_id}]`.
    #[schema(value_type = Vec<Object>)]
    pub overrides: serde_json::Value,
    /// The smart block that fills the air wherever nothing else can (the whole library, least
    /// recently played first, when none).
    pub filler: Option<String>,
    /// How long consecutive smart-block items overlap, in seconds.
    #[schema(example = 2.0)]
    pub crossfade: f64,
    /// Fade applied where an item is cut at a hard start or a show's end, in seconds.
    #[schema(example = 2.0)]
    pub trim_fade: f64,
}

impl From<ProgrammeSettings> for ProgrammeDto {
    fn from(s: ProgrammeSettings) -> Self {
        ProgrammeDto {
            grid: serde_json::to_value(&s.grid).unwrap_or_default(),
            overrides: serde_json::to_value(&s.overrides).unwrap_or_default(),
            filler: s.filler.map(|f| f.to_string()),
            crossfade: s.crossfade.as_secs_f64(),
            trim_fade: s.trim_fade.as_secs_f64(),
        }
    }
}

/// New programme settings; each absent field takes its default (no grid, no overrides, no
/// filler, no crossfade, a 2 s trim fade).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutProgramme {
    /// The weekly grid.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub grid: Option<serde_json::Value>,
    /// Dated overrides.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub overrides: Option<serde_json::Value>,
    /// The filler smart block's id.
    #[serde(default)]
    pub filler: Option<Uuid>,
    /// Crossfade: seconds, or a length such as `"1.5s"` (at most 30 s).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub crossfade: Option<serde_json::Value>,
    /// Trim fade: seconds, or a length such as `"2s"` (at most 30 s).
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub trim_fade: Option<serde_json::Value>,
}

/// Checks `from`..`to` of a grid rule or override: 0–23, then after it and at most 24.
fn check_hours(field: &str, from: u32, to: u32) -> Result<(), ApiError> {
    if from > 23 {
        return Err(ApiError::invalid_field(
            format!("{field}.from"),
            "an hour from 0 to 23",
        ));
    }
    if to > 24 || to <= from {
        return Err(ApiError::invalid_field(
            format!("{field}.to"),
            format!("an hour after `from` ({from}) and at most 24"),
        ));
    }
    Ok(())
}

impl PutProgramme {
    /// The settings, checked on their own (references are checked against the station later).
    fn settings(&self) -> Result<ProgrammeSettings, ApiError> {
        let mut settings = ProgrammeSettings::default();
        if let Some(grid) = &self.grid {
            settings.grid = planner_value(grid, "grid")?;
        }
        if let Some(overrides) = &self.overrides {
            settings.overrides = planner_value(overrides, "overrides")?;
        }
        settings.filler = self.filler.map(|f| f.to_string().into());
        for (name, value, slot) in [
            ("crossfade", &self.crossfade, &mut settings.crossfade),
            ("trim_fade", &self.trim_fade, &mut settings.trim_fade),
        ] {
            if let Some(value) = value {
                *slot = planner_value(value, name)?;
                if *slot > Millis::from_secs(30) {
                    return Err(ApiError::invalid_field(name, "at most 30 s"));
                }
            }
        }
        for (i, rule) in settings.grid.rules.iter().enumerate() {
            check_hours(&format!("grid.rules[{i}]"), rule.from, rule.to)?;
        }
        for (i, o) in settings.overrides.iter().enumerate() {
            check_hours(&format!("overrides[{i}]"), o.from, o.to)?;
        }
        Ok(settings)
    }
}

/// Get a station's programme settings: grid, overrides, filler, crossfade, trim fade.
#[utoipa::path(
    get, path = "/stations/{station_id}/programme", tag = "programme",
    params(StationPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The settings (defaults until set)", body = ProgrammeDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn get_programme(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
) -> Result<Json<ProgrammeDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeRead, Some(station))?;
    let settings = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            programme::settings(conn, station)
        })
        .await?;
    Ok(Json(settings.into()))
}

/// Set a station's programme settings (admins, its managers). Every clock and block named must
/// exist at the station.
#[utoipa::path(
    put, path = "/stations/{station_id}/programme", tag = "programme",
    params(StationPath),
    request_body = PutProgramme,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The settings as stored", body = ProgrammeDto),
        (status = 400, description = "Not a station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of this station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 422, description = "A field is refused, or names a clock or block the station does not have", body = ErrorBody),
    )
)]
pub(crate) async fn put_programme(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<PutProgramme>,
) -> Result<Json<ProgrammeDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::ProgrammeWrite, Some(station))?;
    let settings = body.settings()?;
    let entry = audit_entry(&principal, &info, "programme.update", "station")
        .target(station)
        .station(station)
        .details(serde_json::to_value(&settings).unwrap_or_default());
    let stored = super::transaction(&state.db, move |conn| {
        stations::get(conn, station)?;
        check_references(conn, station, &programme::settings_references(&settings))?;
        let stored = programme::set_settings(conn, station, &settings)?;
        audit::record(conn, &entry)?;
        Ok::<_, ApiError>(stored)
    })
    .await?;
    Ok(Json(stored.into()))
}
