//! `/api/v1/encoder-presets`: named encoder settings that mounts refer to.
//!
//! Presets are shared by every station: anyone signed in may read them, only admins change
//! them. The rules a preset keeps (formats, bitrates, sample rates, quality ranges) are those
//! of [`Encoding::validate`](crate::db::encoder_presets::Encoding::validate); a refused value
//! is 422 with the field named. A preset that mounts use cannot be deleted (409, naming them),
//! nor changed into something an HLS output of those mounts cannot carry.

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
use crate::audit;
use crate::auth::policy::{Action, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::encoder_presets::{
    self, AudioFormat, EncoderPresetChanges, EncoderPresetId, EncoderPresetRecord, Encoding,
    NewEncoderPreset,
};
use crate::db::mounts;
use crate::http::AppState;

/// The routes of this module.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_encoder_presets, create_encoder_preset))
        .routes(routes!(
            get_encoder_preset,
            update_encoder_preset,
            delete_encoder_preset
        ))
}

/// An encoder preset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EncoderPresetDto {
    /// Its id.
    pub id: Uuid,
    /// Name shown to people, unique among presets.
    #[schema(example = "MP3 128k")]
    pub name: String,
    /// The format.
    pub format: AudioFormat,
    /// Constant bitrate, kbit/s, if it has one.
    pub bitrate_kbps: Option<u32>,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels: 1 or 2.
    pub channels: u8,
    /// The format's quality setting, if it has one.
    pub quality: Option<f64>,
    /// Encoder-specific options, passed on to the engine.
    #[schema(value_type = Object)]
    pub options: serde_json::Map<String, serde_json::Value>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<EncoderPresetRecord> for EncoderPresetDto {
    fn from(p: EncoderPresetRecord) -> Self {
        EncoderPresetDto {
            id: p.id.as_uuid(),
            name: p.name,
            format: p.encoding.format,
            bitrate_kbps: p.encoding.bitrate_kbps,
            sample_rate: p.encoding.sample_rate,
            channels: p.encoding.channels,
            quality: p.encoding.quality,
            options: p.options,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A new encoder preset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEncoderPreset {
    /// Name shown to people: 1 to 255 characters, unique among presets.
    #[schema(example = "MP3 128k")]
    pub name: String,
    /// `mp3`, `aac`, `opus`, `vorbis` or `flac`.
    pub format: AudioFormat,
    /// Constant bitrate, kbit/s: required for `aac` and `opus`, for `mp3` and `vorbis` unless
    /// a quality is given; not for `flac`.
    #[schema(example = 128)]
    pub bitrate_kbps: Option<u32>,
    /// Sample rate, Hz: one the format takes (`opus`: 48000 only).
    #[schema(example = 44100)]
    pub sample_rate: u32,
    /// Channels: 1 or 2 (default 2).
    #[serde(default = "stereo")]
    pub channels: u8,
    /// `mp3`: LAME VBR level 0–9; `vorbis`: −0.1–1.0; `flac`: compression level 0–8.
    pub quality: Option<f64>,
    /// Encoder-specific options, at most 4 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

fn stereo() -> u8 {
    2
}

/// Changes to a preset; absent fields stay as they are. The encoding that results is
/// validated whole.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEncoderPreset {
    /// A new name.
    pub name: Option<String>,
    /// A new format.
    pub format: Option<AudioFormat>,
    /// A new bitrate; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<u32>)]
    pub bitrate_kbps: Option<Option<u32>>,
    /// A new sample rate.
    pub sample_rate: Option<u32>,
    /// A new channel count.
    pub channels: Option<u8>,
    /// A new quality; `null` removes it.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<f64>)]
    pub quality: Option<Option<f64>>,
    /// New options, replacing the old whole.
    #[schema(value_type = Option<Object>)]
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The `{preset_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EncoderPresetPath {
    /// The preset.
    pub preset_id: Uuid,
}

/// List the encoder presets.
#[utoipa::path(
    get, path = "/encoder-presets", tag = "encoder-presets",
    params(PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of presets, by name", body = Paginated<EncoderPresetDto>),
        (status = 400, description = "Bad paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub(crate) async fn list_encoder_presets(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<EncoderPresetDto>>, ApiError> {
    authorize(&principal, Action::EncoderPresetRead, None)?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| encoder_presets::list_page(conn, page))
        .await?;
    Ok(Json(
        Paginated::new(items, total, page).map(EncoderPresetDto::from),
    ))
}

/// Create an encoder preset (admins).
#[utoipa::path(
    post, path = "/encoder-presets", tag = "encoder-presets",
    request_body = CreateEncoderPreset,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = EncoderPresetDto),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A field is missing or refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_encoder_preset(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Json(body): Json<CreateEncoderPreset>,
) -> Result<(StatusCode, Json<EncoderPresetDto>), ApiError> {
    authorize(&principal, Action::EncoderPresetWrite, None)?;
    let new = NewEncoderPreset {
        name: body.name,
        encoding: Encoding {
            format: body.format,
            bitrate_kbps: body.bitrate_kbps,
            sample_rate: body.sample_rate,
            channels: body.channels,
            quality: body.quality,
        },
        options: body.options,
    };
    let entry = audit_entry(&principal, &info, "encoder_preset.create", "encoder_preset");
    let preset = super::transaction(&state.db, move |conn| {
        let preset = encoder_presets::create(conn, &new)?;
        let details = serde_json::json!({ "name": preset.name, "format": preset.encoding.format });
        audit::record(conn, &entry.target(preset.id).details(details))?;
        Ok(preset)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(preset.into())))
}

/// Get an encoder preset.
#[utoipa::path(
    get, path = "/encoder-presets/{preset_id}", tag = "encoder-presets",
    params(EncoderPresetPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The preset", body = EncoderPresetDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such preset", body = ErrorBody),
    )
)]
pub(crate) async fn get_encoder_preset(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<EncoderPresetPath>,
) -> Result<Json<EncoderPresetDto>, ApiError> {
    authorize(&principal, Action::EncoderPresetRead, None)?;
    let id = EncoderPresetId::from(path.preset_id);
    let preset = state
        .db
        .run(move |conn| encoder_presets::get(conn, id))
        .await?;
    Ok(Json(preset.into()))
}

/// Change an encoder preset (admins). Mounts that use it encode the new way from the next
/// time their engine loads them.
#[utoipa::path(
    patch, path = "/encoder-presets/{preset_id}", tag = "encoder-presets",
    params(EncoderPresetPath),
    request_body = UpdateEncoderPreset,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The preset as changed", body = EncoderPresetDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such preset", body = ErrorBody),
        (status = 409, description = "The name is taken, or an HLS output of a mount using the preset cannot carry the new format", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    )
)]
pub(crate) async fn update_encoder_preset(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<EncoderPresetPath>,
    Json(body): Json<UpdateEncoderPreset>,
) -> Result<Json<EncoderPresetDto>, ApiError> {
    authorize(&principal, Action::EncoderPresetWrite, None)?;
    let id = EncoderPresetId::from(path.preset_id);
    let changed: Vec<&str> = [
        ("name", body.name.is_some()),
        ("format", body.format.is_some()),
        ("bitrate_kbps", body.bitrate_kbps.is_some()),
        ("sample_rate", body.sample_rate.is_some()),
        ("channels", body.channels.is_some()),
        ("quality", body.quality.is_some()),
        ("options", body.options.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let details = serde_json::json!({ "changed": changed });
    let changes = EncoderPresetChanges {
        name: body.name,
        format: body.format,
        bitrate_kbps: body.bitrate_kbps,
        sample_rate: body.sample_rate,
        channels: body.channels,
        quality: body.quality,
        options: body.options,
    };
    let entry = audit_entry(&principal, &info, "encoder_preset.update", "encoder_preset");
    let preset = super::transaction(&state.db, move |conn| {
        let preset = encoder_presets::update(conn, id, &changes)?;
        if !mounts::HLS_FORMATS.contains(&preset.encoding.format) {
            let stuck = mounts::hls_relying_on_preset(conn, id)?;
            if !stuck.is_empty() {
                return Err(ApiError::conflict(format!(
                    "HLS carries mp3 or aac, and these mounts have an HLS output that takes \
                     its encoding from this preset: {}",
                    stuck.join(", ")
                ))
                .with_field("format"));
            }
        }
        audit::record(conn, &entry.target(id).details(details))?;
        Ok(preset)
    })
    .await?;
    Ok(Json(preset.into()))
}

/// Delete an encoder preset (admins). A preset that mounts use is not deleted: 409 names
/// them.
#[utoipa::path(
    delete, path = "/encoder-presets/{preset_id}", tag = "encoder-presets",
    params(EncoderPresetPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such preset", body = ErrorBody),
        (status = 409, description = "Mounts use it; the message names them", body = ErrorBody),
    )
)]
pub(crate) async fn delete_encoder_preset(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<EncoderPresetPath>,
) -> Result<StatusCode, ApiError> {
    authorize(&principal, Action::EncoderPresetWrite, None)?;
    let id = EncoderPresetId::from(path.preset_id);
    let entry = audit_entry(&principal, &info, "encoder_preset.delete", "encoder_preset");
    super::transaction(&state.db, move |conn| {
        let users = encoder_presets::users(conn, id)?;
        if !users.is_empty() {
            let named: Vec<String> = users
                .iter()
                .map(|(station, mount, name)| {
                    format!("mount {name:?} ({mount}) of station {station}")
                })
                .collect();
            return Err(ApiError::conflict(format!(
                "encoder preset {id} is used by {}; give those mounts another preset first",
                named.join(", ")
            )));
        }
        encoder_presets::delete(conn, id)?;
        audit::record(conn, &entry.target(id))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
