//! `/api/v1/stations/{station_id}/mounts`: a station's encoded streams and where they go.
//!
//! A mount encodes with an encoder preset (`encoder_preset_id`), or each of its outputs with an
//! `encoding` of its own. `outputs` is a list tagged by `type`:
//!
//! - `icecast`: `host`, `port`, `mount` (starting with `/`), `username` (default `source`) and
//!   `password`. The password is write-only: answers say `password_set: true`. A change that
//!   gives an Icecast output without a password keeps the password of the mount's output to
//!   the same host, port and mount point.
//! - `hls`: `path` (a directory), `segment_duration_sec`, `playlist_size`; mp3 or aac only.
//! - `recording`: `path` (a directory), `file_pattern` (strftime), `rotation_days`,
//!   `max_size_gb`.
//!
//! Refused values are 422 with the JSON path of the field (`outputs[1].port`). Names are
//! unique at a station (409). While a station file declares the station, its mounts are the
//! file's: changes answer 409 `managed_by_file`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::{audit_entry, authorize};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use super::page::{PageParams, Paginated};
use super::stations::StationPath;
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::encoder_presets::{self, EncoderPresetId, Encoding};
use crate::db::mounts::{
    self, HlsTarget, IcecastTarget, MountChanges, MountOutput, MountRecord, NewMount,
    RecordingTarget,
};
use crate::db::stations::{self, StationId};
use crate::db::{DbConnection, StorageError};
use crate::http::AppState;

/// The routes of this module.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_mounts, create_mount))
        .routes(routes!(get_mount, update_mount, delete_mount))
}

/// `type: icecast`, as answered: the password is never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IcecastOutputDto {
    /// The server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The mount point.
    pub mount: String,
    /// The source user.
    pub username: String,
    /// Whether a password is stored (it always is; its value is never answered).
    pub password_set: bool,
    /// The output's own encoding, if it has one.
    pub encoding: Option<Encoding>,
}

/// One output of a mount, as answered.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountOutputDto {
    /// A source connection to an Icecast server.
    Icecast(IcecastOutputDto),
    /// HTTP Live Streaming into a directory.
    Hls(HlsTarget),
    /// Recordings to files.
    Recording(RecordingTarget),
}

impl From<MountOutput> for MountOutputDto {
    fn from(o: MountOutput) -> Self {
        match o {
            MountOutput::Icecast(t) => MountOutputDto::Icecast(IcecastOutputDto {
                host: t.host,
                port: t.port,
                mount: t.mount,
                username: t.username,
                password_set: !t.password.is_empty(),
                encoding: t.encoding,
            }),
            MountOutput::Hls(t) => MountOutputDto::Hls(t),
            MountOutput::Recording(t) => MountOutputDto::Recording(t),
        }
    }
}

/// A mount.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MountDto {
    /// Its id: a UUID for mounts made through the API, the file's id for mounts a station file
    /// declares.
    #[schema(example = "0b9f3f0e-5c7a-4d8e-9a51-7d4f1c2b3a10")]
    pub id: String,
    /// Its station.
    pub station_id: Uuid,
    /// Name shown to people, unique at the station.
    #[schema(example = "Main 128k MP3")]
    pub name: String,
    /// The preset it encodes with, if any.
    pub encoder_preset_id: Option<Uuid>,
    /// Where its stream goes.
    pub outputs: Vec<MountOutputDto>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<MountRecord> for MountDto {
    fn from(m: MountRecord) -> Self {
        MountDto {
            id: m.id,
            station_id: m.station_id.as_uuid(),
            name: m.name,
            encoder_preset_id: m.encoder_preset_id.map(|p| p.as_uuid()),
            outputs: m.outputs.into_iter().map(MountOutputDto::from).collect(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// `type: icecast`, as given.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct IcecastOutputInput {
    /// The server's host name or address.
    #[schema(example = "icecast.example.org")]
    pub host: String,
    /// Its port, 1 to 65535.
    #[schema(example = 8000)]
    pub port: u16,
    /// The mount point: starts with `/`, no spaces, `?` or `#`.
    #[schema(example = "/live")]
    pub mount: String,
    /// The source user (default `source`).
    #[serde(default = "source")]
    pub username: String,
    /// The source password (write-only). Required for a new output; left out in a change, the
    /// mount's output to the same host, port and mount keeps its password.
    pub password: Option<String>,
    /// An encoding of its own, instead of the mount's preset.
    pub encoding: Option<Encoding>,
}

fn source() -> String {
    "source".to_owned()
}

/// One output, as given: tagged by `type`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountOutputInput {
    /// A source connection to an Icecast server.
    Icecast(IcecastOutputInput),
    /// HTTP Live Streaming into a directory.
    Hls(HlsTarget),
    /// Recordings to files.
    Recording(RecordingTarget),
}

/// A new mount.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMount {
    /// Name shown to people: 1 to 255 characters, unique at the station.
    #[schema(example = "Main 128k MP3")]
    pub name: String,
    /// The preset it encodes with; without one, every output needs an `encoding`.
    pub encoder_preset_id: Option<Uuid>,
    /// Where its stream goes: 1 to 16 outputs.
    #[schema(value_type = Vec<MountOutputInput>)]
    pub outputs: Vec<serde_json::Value>,
}

/// Changes to a mount; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMount {
    /// A new name.
    pub name: Option<String>,
    /// A new preset; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<Uuid>)]
    pub encoder_preset_id: Option<Option<Uuid>>,
    /// A new output list, replacing the old whole.
    #[schema(value_type = Option<Vec<MountOutputInput>>)]
    pub outputs: Option<Vec<serde_json::Value>>,
}

/// The `{station_id}` and `{mount_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MountPath {
    /// The station.
    pub station_id: Uuid,
    /// The mount.
    pub mount_id: String,
}

/// Reads `outputs[i]` from JSON, naming the field of a refused value (`outputs[1].port`):
/// serde's tagged enums lose the path below the tag, so the tag is read first.
fn parse_output(i: usize, value: serde_json::Value) -> Result<MountOutputInput, ApiError> {
    let at = format!("outputs[{i}]");
    let serde_json::Value::Object(mut fields) = value else {
        return Err(ApiError::invalid_field(
            at,
            "an output is an object with a `type`",
        ));
    };
    let kind = match fields.remove("type") {
        Some(serde_json::Value::String(kind)) => kind,
        Some(_) | None => {
            return Err(ApiError::invalid_field(
                format!("{at}.type"),
                "one of `icecast`, `hls`, `recording`",
            ));
        }
    };
    // Unknown fields are refused here rather than by serde: the schema of a tagged output
    // would otherwise refuse its own `type`.
    if let Some((_, known)) = mounts::FIELDS.iter().find(|(k, _)| *k == kind)
        && let Some(unknown) = fields.keys().find(|f| !known.contains(&f.as_str()))
    {
        return Err(ApiError::invalid_field(
            format!("{at}.{unknown}"),
            format!(
                "unknown field `{unknown}`, expected one of {}",
                known
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    fn inner<T: serde::de::DeserializeOwned>(
        at: &str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<T, ApiError> {
        serde_path_to_error::deserialize(serde_json::Value::Object(fields)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let message = super::extract::bare(&message);
            let field = super::extract::field_of(&path, message)
                .map_or_else(|| at.to_owned(), |f| format!("{at}.{f}"));
            ApiError::invalid_field(field, message)
        })
    }
    match kind.as_str() {
        "icecast" => inner(&at, fields).map(MountOutputInput::Icecast),
        "hls" => inner(&at, fields).map(MountOutputInput::Hls),
        "recording" => inner(&at, fields).map(MountOutputInput::Recording),
        other => Err(ApiError::invalid_field(
            format!("{at}.type"),
            format!("unknown output type `{other}`: one of `icecast`, `hls`, `recording`"),
        )),
    }
}

/// The outputs to store: each parsed, Icecast passwords kept from `old` where not given.
fn resolve_outputs(
    given: Vec<serde_json::Value>,
    old: &[MountOutput],
) -> Result<Vec<MountOutput>, ApiError> {
    given
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            Ok(match parse_output(i, value)? {
                MountOutputInput::Icecast(o) => {
                    let password = match o.password {
                        Some(password) => password,
                        None => old
                            .iter()
                            .find_map(|old| match old {
                                MountOutput::Icecast(t)
                                    if t.host == o.host
                                        && t.port == o.port
                                        && t.mount == o.mount =>
                                {
                                    Some(t.password.clone())
                                }
                                _ => None,
                            })
                            .ok_or_else(|| {
                                ApiError::invalid_field(
                                    format!("outputs[{i}].password"),
                                    "a password is needed: the mount has no output to this \
                                     host, port and mount whose password could be kept",
                                )
                            })?,
                    };
                    MountOutput::Icecast(IcecastTarget {
                        host: o.host,
                        port: o.port,
                        mount: o.mount,
                        username: o.username,
                        password,
                        encoding: o.encoding,
                    })
                }
                MountOutputInput::Hls(t) => MountOutput::Hls(t),
                MountOutputInput::Recording(t) => MountOutput::Recording(t),
            })
        })
        .collect()
}

/// The encoding of preset `id`, refusing one that does not exist (422 on
/// `encoder_preset_id`).
fn preset_encoding(
    conn: &mut DbConnection,
    id: Option<EncoderPresetId>,
) -> Result<Option<Encoding>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    match encoder_presets::get(conn, id) {
        Ok(preset) => Ok(Some(preset.encoding)),
        Err(StorageError::NotFound { .. }) => Err(ApiError::invalid_field(
            "encoder_preset_id",
            format!("no encoder preset {id}"),
        )),
        Err(e) => Err(e.into()),
    }
}

fn check_outputs(outputs: &[MountOutput], preset: Option<&Encoding>) -> Result<(), ApiError> {
    mounts::validate_outputs(outputs, preset)
        .map_err(|(field, message)| ApiError::invalid_field(field, message))
}

/// Refuses a change to the mounts of a station a station file declares.
fn refuse_if_the_files(conn: &mut DbConnection, station: StationId) -> Result<(), ApiError> {
    match crate::station_files::declared_by(conn, station)? {
        Some(path) => Err(ApiError::managed_by_file(
            format!("the mounts of station {station}"),
            &path,
        )),
        None => Ok(()),
    }
}

/// List a station's mounts.
#[utoipa::path(
    get, path = "/stations/{station_id}/mounts", tag = "mounts",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of mounts, by name", body = Paginated<MountDto>),
        (status = 400, description = "Bad station id or paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_mounts(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<MountDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MountRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            mounts::list_page(conn, station, page)
        })
        .await?;
    Ok(Json(Paginated::new(items, total, page).map(MountDto::from)))
}

/// Create a mount at a station.
#[utoipa::path(
    post, path = "/stations/{station_id}/mounts", tag = "mounts",
    params(StationPath),
    request_body = CreateMount,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = MountDto),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 409, description = "The name is taken at the station (`conflict`), or a station file declares its mounts (`managed_by_file`)", body = ErrorBody),
        (status = 422, description = "A field is missing or refused; `field` is its JSON path", body = ErrorBody),
    )
)]
pub(crate) async fn create_mount(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateMount>,
) -> Result<(StatusCode, Json<MountDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MountWrite, Some(station))?;
    let outputs = resolve_outputs(body.outputs, &[])?;
    let preset = body.encoder_preset_id.map(EncoderPresetId::from);
    let entry = audit_entry(&principal, &info, "mount.create", "mount");
    let mount = super::transaction(&state.db, move |conn| {
        mounts::lock_station(conn, station)?;
        stations::get(conn, station)?;
        refuse_if_the_files(conn, station)?;
        let encoding = preset_encoding(conn, preset)?;
        check_outputs(&outputs, encoding.as_ref())?;
        let new = NewMount {
            name: body.name,
            encoder_preset_id: preset,
            outputs,
        };
        let mount = mounts::create(conn, station, &new)?;
        let details = serde_json::json!({ "name": mount.name, "outputs": mount.outputs.len() });
        audit::record(
            conn,
            &entry.target(&mount.id).station(station).details(details),
        )?;
        Ok(mount)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(mount.into())))
}

/// Get a mount.
#[utoipa::path(
    get, path = "/stations/{station_id}/mounts/{mount_id}", tag = "mounts",
    params(MountPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The mount", body = MountDto),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such mount at the station", body = ErrorBody),
    )
)]
pub(crate) async fn get_mount(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<MountPath>,
) -> Result<Json<MountDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MountRead, Some(station))?;
    let mount = state
        .db
        .run(move |conn| mounts::get(conn, station, &path.mount_id))
        .await?;
    Ok(Json(mount.into()))
}

/// Change a mount. A new `outputs` list replaces the old whole; Icecast outputs given without
/// a password keep the one stored for the same host, port and mount point.
#[utoipa::path(
    patch, path = "/stations/{station_id}/mounts/{mount_id}", tag = "mounts",
    params(MountPath),
    request_body = UpdateMount,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The mount as changed", body = MountDto),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such mount at the station", body = ErrorBody),
        (status = 409, description = "The name is taken at the station (`conflict`), or a station file declares its mounts (`managed_by_file`)", body = ErrorBody),
        (status = 422, description = "A field is refused; `field` is its JSON path", body = ErrorBody),
    )
)]
pub(crate) async fn update_mount(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MountPath>,
    Json(body): Json<UpdateMount>,
) -> Result<Json<MountDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MountWrite, Some(station))?;
    let id = path.mount_id;
    let changed: Vec<&str> = [
        ("name", body.name.is_some()),
        ("encoder_preset_id", body.encoder_preset_id.is_some()),
        ("outputs", body.outputs.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let details = serde_json::json!({ "changed": changed });
    let entry = audit_entry(&principal, &info, "mount.update", "mount");
    let mount = super::transaction(&state.db, move |conn| {
        mounts::lock_station(conn, station)?;
        let old = mounts::get(conn, station, &id)?;
        refuse_if_the_files(conn, station)?;
        let preset = body
            .encoder_preset_id
            .map_or(old.encoder_preset_id, |p| p.map(EncoderPresetId::from));
        let outputs = body
            .outputs
            .map(|given| resolve_outputs(given, &old.outputs))
            .transpose()?;
        let encoding = preset_encoding(conn, preset)?;
        check_outputs(
            outputs.as_deref().unwrap_or(&old.outputs),
            encoding.as_ref(),
        )?;
        let changes = MountChanges {
            name: body.name,
            encoder_preset_id: body.encoder_preset_id.map(|p| p.map(EncoderPresetId::from)),
            outputs,
        };
        let mount = mounts::update(conn, station, &id, &changes)?;
        audit::record(conn, &entry.target(&id).station(station).details(details))?;
        Ok(mount)
    })
    .await?;
    Ok(Json(mount.into()))
}

/// Delete a mount. Priority sources on it go with it.
#[utoipa::path(
    delete, path = "/stations/{station_id}/mounts/{mount_id}", tag = "mounts",
    params(MountPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such mount at the station", body = ErrorBody),
        (status = 409, description = "A station file declares the station's mounts", body = ErrorBody),
    )
)]
pub(crate) async fn delete_mount(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MountPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MountWrite, Some(station))?;
    let id = path.mount_id;
    let entry = audit_entry(&principal, &info, "mount.delete", "mount");
    super::transaction(&state.db, move |conn| {
        let old = mounts::get(conn, station, &id)?;
        refuse_if_the_files(conn, station)?;
        mounts::delete(conn, station, &id)?;
        let details = serde_json::json!({ "name": old.name });
        audit::record(conn, &entry.target(&id).station(station).details(details))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
