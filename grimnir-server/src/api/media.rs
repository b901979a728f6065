//! `/api/v1/stations/{station_id}/media` and `/tags`: a station's media library.
//!
//! - Upload: `POST …/media` with a `multipart/form-data` body: a `file` part (MP3, FLAC, Ogg
//!   Vorbis, WAV or MP4/M4A) and optional `title`, `artist` and `album` parts. The file streams
//!   to a `.part` file beside its final place, never into memory; it is refused with 413
//!   `payload_too_large` as soon as it passes `media.max_upload_bytes`, with 415
//!   `unsupported_media_type` when its first bytes are not one of those containers (the message
//!   says what they are instead), and with 422 `invalid_field` (`file`) when it does not decode
//!   (the message says why: truncated, no audio track, unknown codec). In each case nothing is
//!   left on disk and no row is written. A file that passes is renamed into place, and its row
//!   and a pending analysis job are stored in one transaction; the analyser measures loudness,
//!   true peak, length and cue points in the background.
//! - Titles, artists and albums given as parts win over the file's tags; a file without a title
//!   tag is named after the uploaded file.
//! - `GET …/media/{media_id}/file` serves the file with its content type and byte ranges
//!   (`Range: bytes=…`, 206, 416).
//! - Deleting an item is refused with 409 while a clock or show of the station names it; planned
//!   schedule entries that would play it are removed with it (the schedule has a gap there
//!   until it is refreshed), past ones stay as history.

use std::io::SeekFrom;
use std::path::{Path as FsPath, PathBuf};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
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
use crate::db::media::{
    self, MediaChanges, MediaFilter, MediaId, MediaRecord, NewMedia, Tag, TagId,
};
use crate::db::stations::{self, StationId};
use crate::events::{Event, MediaChange, MediaChanged};
use crate::http::AppState;
use crate::media::{
    Container, MediaLibrary, PART_SUFFIX, ProbeError, Probed, SNIFF_BYTES, sniff, storage_key,
};

/// Bytes a multipart body may carry beyond its file: boundaries, part headers, text parts.
pub const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;
/// Bytes a text part (`title`, `artist`, `album`) may have.
pub const TEXT_PART_BYTES: u64 = 4096;

/// The routes of the media library.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_media, upload_media))
        // Uploads are limited by `media.max_upload_bytes` while they stream, not by axum's
        // default body limit; the routes below keep that default.
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(get_media, update_media, delete_media))
        .routes(routes!(media_file))
        .routes(routes!(list_tags, create_tag))
        .routes(routes!(delete_tag))
        .routes(routes!(tag_media, untag_media))
}

/// A tag.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagDto {
    /// Its id.
    pub id: Uuid,
    /// The label, unique within the station.
    #[schema(example = "jingles")]
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Tag> for TagDto {
    fn from(t: Tag) -> Self {
        TagDto {
            id: t.id.as_uuid(),
            name: t.name,
            created_at: t.created_at,
        }
    }
}

/// Where an item's analysis stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisStateDto {
    /// Queued or running.
    Pending,
    /// Length, loudness, true peak and cue points are measured.
    Done,
    /// The analyser gave up; `analysis_error` says why.
    Failed,
}

/// A media item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaDto {
    /// Its id.
    pub id: Uuid,
    /// Its station.
    pub station_id: Uuid,
    /// Track title.
    #[schema(example = "Träumerei")]
    pub title: String,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Genre.
    pub genre: Option<String>,
    /// Year of release.
    pub year: Option<i32>,
    /// Tempo, beats per minute.
    pub bpm: Option<f64>,
    /// MIME type of the file.
    #[schema(example = "audio/flac")]
    pub content_type: String,
    /// File size in bytes.
    pub size_bytes: i64,
    /// Name of the uploaded file.
    pub filename: Option<String>,
    /// Length in milliseconds, once known.
    pub duration_ms: Option<i64>,
    /// Sample rate, Hz.
    pub sample_rate: Option<u32>,
    /// Channels.
    pub channels: Option<u32>,
    /// Integrated loudness (EBU R128), LUFS, once analysed; none for silence.
    pub loudness_lufs: Option<f64>,
    /// True peak, dBTP, once analysed; none for silence.
    pub true_peak_dbtp: Option<f64>,
    /// Where playback starts, ms from the start of the file.
    pub cue_in_ms: Option<i64>,
    /// Where playback ends, ms from the start of the file.
    pub cue_out_ms: Option<i64>,
    /// Where analysis stands.
    pub analysis_state: AnalysisStateDto,
    /// Why the last analysis attempt failed, if one did.
    pub analysis_error: Option<String>,
    /// Its tags, by name.
    pub tags: Vec<TagDto>,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<MediaRecord> for MediaDto {
    fn from(m: MediaRecord) -> Self {
        MediaDto {
            id: m.id.as_uuid(),
            station_id: m.station_id.as_uuid(),
            title: m.title,
            artist: m.artist,
            album: m.album,
            genre: m.genre,
            year: m.year,
            bpm: m.bpm,
            content_type: m.content_type,
            size_bytes: m.size_bytes,
            filename: m.filename,
            duration_ms: m.duration_ms,
            sample_rate: m.sample_rate,
            channels: m.channels,
            loudness_lufs: m.loudness_lufs,
            true_peak_dbtp: m.true_peak_dbtp,
            cue_in_ms: m.cue_in_ms,
            cue_out_ms: m.cue_out_ms,
            analysis_state: match m.analysis_state {
                media::AnalysisState::Done => AnalysisStateDto::Done,
                media::AnalysisState::Failed => AnalysisStateDto::Failed,
                _ => AnalysisStateDto::Pending,
            },
            analysis_error: m.analysis_error,
            tags: m.tags.into_iter().map(TagDto::from).collect(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The bytes of an audio file.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the download; the handler streams the file
pub struct AudioFile(Vec<u8>);

/// The parts of an upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form; the handler streams the parts itself
pub struct UploadForm {
    /// The audio file: MP3, FLAC, Ogg Vorbis, WAV or MP4/M4A.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// Track title; the file's title tag, else the file's name, when left out.
    pub title: Option<String>,
    /// Artist; the file's artist tag when left out.
    pub artist: Option<String>,
    /// Album; the file's album tag when left out.
    pub album: Option<String>,
}

/// Changes to a media item; absent fields stay as they are, `null` clears a field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMedia {
    /// A new title (1 to 512 characters).
    pub title: Option<String>,
    /// A new artist.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub artist: Option<Option<String>>,
    /// A new album.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub album: Option<Option<String>>,
    /// A new genre.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<String>)]
    pub genre: Option<Option<String>>,
    /// A new year of release, 0 to 9999.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<i32>)]
    pub year: Option<Option<i32>>,
    /// A new tempo, above 0 and at most 1000 BPM.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<f64>)]
    pub bpm: Option<Option<f64>>,
    /// A new cue-in point, ms: at least 0 and before the end of the item.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<i64>)]
    pub cue_in_ms: Option<Option<i64>>,
    /// A new cue-out point, ms: after the cue-in point and within the item's length.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<i64>)]
    pub cue_out_ms: Option<Option<i64>>,
}

/// A new tag.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTag {
    /// The label: 1 to 255 characters, unique within the station.
    #[schema(example = "jingles")]
    pub name: String,
}

/// Which media, and which page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MediaListParams {
    /// Only items whose title, artist or album contains this text (any case).
    pub q: Option<String>,
    /// Only items with the tag of this name.
    pub tag: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<u32>,
    /// Items to skip (default 0).
    #[param(minimum = 0, default = 0)]
    pub offset: Option<u64>,
}

/// The `{station_id}` and `{media_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MediaPath {
    /// The station.
    pub station_id: Uuid,
    /// The media item.
    pub media_id: Uuid,
}

/// The `{station_id}` and `{tag_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TagPath {
    /// The station.
    pub station_id: Uuid,
    /// The tag.
    pub tag_id: Uuid,
}

/// The `{station_id}`, `{media_id}` and `{tag_id}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MediaTagPath {
    /// The station.
    pub station_id: Uuid,
    /// The media item.
    pub media_id: Uuid,
    /// The tag.
    pub tag_id: Uuid,
}

fn publish(state: &AppState, station: StationId, media: MediaId, change: MediaChange) {
    // Playout never depends on the bus; a failure is counted by the bus.
    let _ = state.events.publish(
        station.as_uuid(),
        Event::MediaChanged(MediaChanged {
            media_id: media.as_uuid(),
            change,
        }),
    );
}

/// List a station's media, by title.
#[utoipa::path(
    get, path = "/stations/{station_id}/media", tag = "media",
    params(StationPath, MediaListParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of media items, by title, artist, id", body = Paginated<MediaDto>),
        (status = 400, description = "Bad station id, paging or filter", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_media(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<MediaListParams>,
) -> Result<Json<Paginated<MediaDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaRead, Some(station))?;
    let page = PageParams {
        limit: params.limit,
        offset: params.offset,
    }
    .page()?;
    let filter = MediaFilter {
        text: params.q,
        tag: params.tag,
    };
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            media::list_page(conn, station, &filter, page)
        })
        .await?;
    Ok(Json(Paginated::new(items, total, page).map(MediaDto::from)))
}

/// A file that is removed when this drops, unless [`Removal::keep`] was called: every way out
/// of an upload but success leaves nothing behind.
struct Removal(Option<PathBuf>);

impl Removal {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a refused upload");
        }
    }
}

fn too_large(library: &MediaLibrary) -> ApiError {
    let limit = library.max_upload_bytes();
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the file is larger than {limit} bytes ({}), the most this server takes \
             (media.max_upload_bytes)",
            human_bytes(limit)
        ),
    )
    .with_field("file")
}

fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            let value = n as f64 / size as f64;
            return if value.fract() == 0.0 {
                format!("{value:.0} {unit}")
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

fn multipart_error(e: multer::Error, library: &MediaLibrary) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => too_large(library),
        multer::Error::FieldSizeExceeded { field_name, limit } => match field_name.as_deref() {
            Some("file") | None => too_large(library),
            Some(name) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("part `{name}` is larger than {limit} bytes"),
            )
            .with_field(name.to_owned()),
        },
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_multipart",
            format!("the multipart body cannot be read: {other}"),
        ),
    }
}

fn io_error(what: &str, path: &FsPath, e: &std::io::Error) -> ApiError {
    tracing::error!(path = %path.display(), error = %e, "{what}");
    ApiError::internal()
}

/// Text from a tag: control characters dropped, cut to what a column holds, `None` if blank.
fn tag_text(text: Option<String>) -> Option<String> {
    let cleaned: String = text?
        .chars()
        .filter(|c| !c.is_control())
        .take(media::MAX_TEXT_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// A text part as given: blank counts as absent.
fn given_text(field: &'static str, text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        Some(t) if !t.trim().is_empty() => Ok(Some(media::check_text(field, &t)?)),
        _ => Ok(None),
    }
}

/// The stored file of an upload, not yet probed.
struct Received {
    container: Container,
    part: PathBuf,
    size: u64,
    filename: Option<String>,
}

/// Streams the `file` part to `<final>.part`, sniffing its first bytes first.
async fn receive_file(
    field: &mut multer::Field<'static>,
    library: &MediaLibrary,
    station: StationId,
    id: MediaId,
    removal: &mut Removal,
) -> Result<Received, ApiError> {
    let filename = field.file_name().map(str::to_owned);
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut pending: Vec<bytes::Bytes> = Vec::new();
    let mut ended = false;
    while head.len() < SNIFF_BYTES {
        match field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, library))?
        {
            Some(chunk) => {
                let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                pending.push(chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let container = sniff(&head).map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the file is {e}"),
        )
        .with_field("file")
    })?;
    let key = storage_key(station, id, container);
    let Some(path) = library.path_of(&key) else {
        return Err(ApiError::internal());
    };
    let part = PathBuf::from(format!("{}{PART_SUFFIX}", path.display()));
    if let Some(dir) = part.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error("cannot create the media directory", dir, &e))?;
    }
    let mut file = tokio::fs::File::create(&part)
        .await
        .map_err(|e| io_error("cannot create an upload file", &part, &e))?;
    removal.0 = Some(part.clone());
    let mut size = 0u64;
    let max = library.max_upload_bytes();
    let mut write = async |chunk: &[u8], file: &mut tokio::fs::File| {
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(library));
        }
        file.write_all(chunk)
            .await
            .map_err(|e| io_error("cannot write an upload", &part, &e))
    };
    for chunk in &pending {
        write(chunk, &mut file).await?;
    }
    if !ended {
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(e, library))?
        {
            write(&chunk, &mut file).await?;
        }
    }
    // On disk before the row that points at it is committed.
    file.sync_all()
        .await
        .map_err(|e| io_error("cannot write an upload", &part, &e))?;
    Ok(Received {
        container,
        part,
        size,
        filename,
    })
}

/// Upload a media file to a station.
///
/// The body is `multipart/form-data` with a `file` part and optional `title`, `artist` and
/// `album` parts. The file is checked (container, decodability) before it is kept; its
/// loudness, true peak and cue points are measured in the background (`analysis_state`).
#[utoipa::path(
    post, path = "/stations/{station_id}/media", tag = "media",
    params(StationPath),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Stored; analysis queued", body = MediaDto),
        (status = 400, description = "Bad station id, or a multipart body that cannot be read (`malformed_multipart`)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 413, description = "The file is larger than `media.max_upload_bytes` (`payload_too_large`, the message names the limit)", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data, or the file is not MP3, FLAC, Ogg, WAV or MP4/M4A (the message says what it is)", body = ErrorBody),
        (status = 422, description = "No `file` part, an unknown part, a refused title, or a file that does not decode (the message says why)", body = ErrorBody),
    )
)]
pub(crate) async fn upload_media(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    request: Request,
) -> Result<(StatusCode, Json<MediaDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaWrite, Some(station))?;
    state
        .db
        .run(move |conn| stations::get(conn, station))
        .await?;
    let library = state.media.clone();
    let (parts, body) = request.into_parts();
    let boundary = content_type(&parts.headers)
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the upload as multipart/form-data with a `file` part",
            )
        })?;
    let max = library.max_upload_bytes();
    let whole = max.saturating_add(FORM_OVERHEAD_BYTES);
    if content_length(&parts.headers).is_some_and(|n| n > whole) {
        return Err(too_large(&library));
    }
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(whole)
            .per_field(TEXT_PART_BYTES)
            .for_field("file", max),
    );
    let mut form =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let id = MediaId::random();
    let mut removal = Removal(None);
    let mut received: Option<Received> = None;
    let (mut title, mut artist, mut album) = (None, None, None);
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e, &library))?
    {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" if received.is_some() => {
                return Err(ApiError::invalid_field("file", "send one file per upload"));
            }
            "file" => {
                received =
                    Some(receive_file(&mut field, &library, station, id, &mut removal).await?);
            }
            "title" | "artist" | "album" => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| multipart_error(e, &library))?;
                match name.as_str() {
                    "title" => title = given_text("title", Some(text))?,
                    "artist" => artist = given_text("artist", Some(text))?,
                    _ => album = given_text("album", Some(text))?,
                }
            }
            other => {
                return Err(ApiError::invalid_field(
                    other.to_owned(),
                    "unknown part; expected `file`, `title`, `artist` or `album`",
                ));
            }
        }
    }
    let Some(received) = received else {
        return Err(ApiError::invalid_field(
            "file",
            "the upload has no `file` part",
        ));
    };
    let probe_path = received.part.clone();
    let container = received.container;
    let probed: Probed =
        tokio::task::spawn_blocking(move || crate::media::probe(&probe_path, container))
            .await
            .map_err(|e| {
                // The decoder panicked on this file: the file is what is wrong with the request.
                tracing::warn!(error = %e, "the decoder failed on an upload");
                ApiError::invalid_field(
                    "file",
                    format!(
                        "the {} file cannot be played: the decoder failed on it",
                        container.name()
                    ),
                )
            })?
            .map_err(|e| match e {
                ProbeError::Io(io) => io_error("cannot read an upload", &received.part, &io),
                other => ApiError::invalid_field(
                    "file",
                    format!("the {} file cannot be played: {other}", container.name()),
                ),
            })?;
    let key = storage_key(station, id, container);
    let Some(final_path) = library.path_of(&key) else {
        return Err(ApiError::internal());
    };
    tokio::fs::rename(&received.part, &final_path)
        .await
        .map_err(|e| io_error("cannot move an upload into place", &final_path, &e))?;
    // From here the file has its final name: the guard follows it.
    removal.0 = Some(final_path.clone());
    let from_name = received
        .filename
        .as_deref()
        .and_then(|n| FsPath::new(n).file_stem())
        .and_then(|s| s.to_str())
        .map(str::to_owned);
    let tags = probed.tags;
    let new = NewMedia {
        id,
        title: title
            .or_else(|| tag_text(tags.title))
            .or_else(|| tag_text(from_name))
            .unwrap_or_else(|| "Untitled".to_owned()),
        artist: artist.or_else(|| tag_text(tags.artist)),
        album: album.or_else(|| tag_text(tags.album)),
        genre: tag_text(tags.genre),
        year: tags.year.filter(|y| (0..=9999).contains(y)),
        storage_key: key,
        content_type: container.content_type().to_owned(),
        size_bytes: i64::try_from(received.size).unwrap_or(i64::MAX),
        duration_ms: probed.duration_ms.and_then(|d| i64::try_from(d).ok()),
        sample_rate: probed.sample_rate,
        channels: probed.channels,
        filename: received
            .filename
            .as_deref()
            .and_then(|n| tag_text(Some(n.to_owned()))),
    };
    let entry = audit_entry(&principal, &info, "media.upload", "media");
    let item = super::transaction(&state.db, move |conn| {
        let (item, _job) = media::create(conn, station, &new)?;
        let details = serde_json::json!({
            "title": item.title, "content_type": item.content_type, "size_bytes": item.size_bytes,
        });
        audit::record(
            conn,
            &entry.target(item.id).station(station).details(details),
        )?;
        Ok(item)
    })
    .await?;
    removal.keep();
    publish(&state, station, id, MediaChange::Uploaded);
    library.wake_analysis();
    Ok((StatusCode::CREATED, Json(item.into())))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"))
        })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Get a media item.
#[utoipa::path(
    get, path = "/stations/{station_id}/media/{media_id}", tag = "media",
    params(MediaPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The item", body = MediaDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such item at the station", body = ErrorBody),
    )
)]
pub(crate) async fn get_media(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<MediaPath>,
) -> Result<Json<MediaDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaRead, Some(station))?;
    let id = MediaId::from(path.media_id);
    let item = state
        .db
        .run(move |conn| media::get(conn, station, id))
        .await?;
    Ok(Json(item.into()))
}

/// Change a media item's metadata and cue points.
#[utoipa::path(
    patch, path = "/stations/{station_id}/media/{media_id}", tag = "media",
    params(MediaPath),
    request_body = UpdateMedia,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The item as changed", body = MediaDto),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such item at the station", body = ErrorBody),
        (status = 422, description = "A field is refused: cue points out of order or past the item's length, a blank title", body = ErrorBody),
    )
)]
pub(crate) async fn update_media(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MediaPath>,
    Json(body): Json<UpdateMedia>,
) -> Result<Json<MediaDto>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaWrite, Some(station))?;
    let id = MediaId::from(path.media_id);
    let changed: Vec<&str> = [
        ("title", body.title.is_some()),
        ("artist", body.artist.is_some()),
        ("album", body.album.is_some()),
        ("genre", body.genre.is_some()),
        ("year", body.year.is_some()),
        ("bpm", body.bpm.is_some()),
        ("cue_in_ms", body.cue_in_ms.is_some()),
        ("cue_out_ms", body.cue_out_ms.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect();
    let details = serde_json::json!({ "changed": changed });
    let changes = MediaChanges {
        title: body.title,
        artist: body.artist,
        album: body.album,
        genre: body.genre,
        year: body.year,
        bpm: body.bpm,
        cue_in_ms: body.cue_in_ms,
        cue_out_ms: body.cue_out_ms,
    };
    let entry = audit_entry(&principal, &info, "media.update", "media");
    let item = super::transaction(&state.db, move |conn| {
        let item = media::update(conn, station, id, &changes)?;
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(item)
    })
    .await?;
    publish(&state, station, id, MediaChange::Updated);
    Ok(Json(item.into()))
}

/// Delete a media item and its file.
///
/// Refused while a clock slot or show of the station names the item. Planned schedule entries
/// that would play it are removed with it; the schedule has a gap there until it is refreshed.
#[utoipa::path(
    delete, path = "/stations/{station_id}/media/{media_id}", tag = "media",
    params(MediaPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted, with its file, tag links and planned plays"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such item at the station", body = ErrorBody),
        (status = 409, description = "A clock or show names the item (the message says which)", body = ErrorBody),
    )
)]
pub(crate) async fn delete_media(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MediaPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaDelete, Some(station))?;
    let id = MediaId::from(path.media_id);
    let entry = audit_entry(&principal, &info, "media.delete", "media");
    let item = super::transaction(&state.db, move |conn| {
        if let Some(user) = media::programme_users(conn, station, id)? {
            return Err(ApiError::conflict(format!(
                "media item `{id}` is used by {user}; take it out there first"
            )));
        }
        let (item, unplanned) = media::delete(conn, station, id, Utc::now())?;
        let details = serde_json::json!({
            "title": item.title, "unplanned_entries": unplanned,
        });
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(item)
    })
    .await?;
    if let Some(path) = state.media.path_of(&item.storage_key)
        && let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a deleted item's file");
    }
    publish(&state, station, id, MediaChange::Deleted);
    Ok(StatusCode::NO_CONTENT)
}

/// A byte range asked for, resolved against the file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeAsk {
    /// No usable `Range`: the whole file.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that lies outside the file.
    Unsatisfiable,
}

/// Resolves a `Range` header for a file of `len` bytes. One `bytes=` range is served; a header
/// that does not parse, or asks for several ranges, is ignored (the whole file is served, as
/// RFC 9110 allows).
fn resolve_range(header: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(n) if len > 0 => RangeAsk::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Some(_) => RangeAsk::Unsatisfiable,
            None => RangeAsk::Whole,
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return RangeAsk::Whole;
            };
            let end = if last.is_empty() {
                len.saturating_sub(1)
            } else {
                match number(last) {
                    Some(end) if end >= start => end.min(len.saturating_sub(1)),
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= len {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part { start, end }
            }
        }
        (true, true) => RangeAsk::Whole,
    }
}

/// Download a media item's file. Byte ranges are served (`Range: bytes=0-1023`, one range).
#[utoipa::path(
    get, path = "/stations/{station_id}/media/{media_id}/file", tag = "media",
    params(
        MediaPath,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`, `bytes=1024-`, `bytes=-500`"),
    ),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "The whole file, with `Accept-Ranges: bytes`", content(
            (AudioFile = "audio/mpeg"), (AudioFile = "audio/flac"), (AudioFile = "audio/ogg"),
            (AudioFile = "audio/wav"), (AudioFile = "audio/mp4"),
        ), headers(
            ("Accept-Ranges" = String, description = "`bytes`"),
            ("Content-Length" = u64, description = "The file's size in bytes"),
        )),
        (status = 206, description = "The range asked for", content(
            (AudioFile = "audio/mpeg"), (AudioFile = "audio/flac"), (AudioFile = "audio/ogg"),
            (AudioFile = "audio/wav"), (AudioFile = "audio/mp4"),
        ), headers(
            ("Content-Range" = String, description = "`bytes <first>-<last>/<length>`"),
            ("Content-Length" = u64, description = "The range's size in bytes"),
        )),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such item at the station, or its file is missing", body = ErrorBody),
        (status = 416, description = "The range lies outside the file (`range_not_satisfiable`)", body = ErrorBody, headers(
            ("Content-Range" = String, description = "`bytes */<length>`"),
        )),
    )
)]
pub(crate) async fn media_file(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<MediaPath>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaRead, Some(station))?;
    let id = MediaId::from(path.media_id);
    let item = state
        .db
        .run(move |conn| media::get(conn, station, id))
        .await?;
    let missing = || ApiError::not_found(format!("the file of media item `{id}` is missing"));
    let Some(file_path) = state.media.path_of(&item.storage_key) else {
        tracing::error!(media_id = %id, key = %item.storage_key, "storage key outside the media directory");
        return Err(missing());
    };
    let mut file = match tokio::fs::File::open(&file_path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %file_path.display(), error = %e, "media file cannot be opened");
            return Err(missing());
        }
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| io_error("cannot read a media file", &file_path, &e))?
        .len();
    let content_type = HeaderValue::from_str(&item.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match resolve_range(range, len) {
        RangeAsk::Whole => (StatusCode::OK, 0, len),
        RangeAsk::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeAsk::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range lies outside the file, which has {len} bytes"),
            )
            .with_field("Range")
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| io_error("cannot read a media file", &file_path, &e))?;
    }
    let stream = tokio_util::io::ReaderStream::new(file.take(count)).map(|chunk| chunk);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// List a station's tags, by name.
#[utoipa::path(
    get, path = "/stations/{station_id}/tags", tag = "media",
    params(StationPath, PageParams),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "A page of tags, by name", body = Paginated<TagDto>),
        (status = 400, description = "Bad station id or paging", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
    )
)]
pub(crate) async fn list_tags(
    State(state): State<AppState>,
    principal: Principal,
    Path(path): Path<StationPath>,
    Query(params): Query<PageParams>,
) -> Result<Json<Paginated<TagDto>>, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaRead, Some(station))?;
    let page = params.page()?;
    let (items, total) = state
        .db
        .run(move |conn| {
            stations::get(conn, station)?;
            media::list_tags(conn, station, page)
        })
        .await?;
    Ok(Json(Paginated::new(items, total, page).map(TagDto::from)))
}

/// Create a tag at a station.
#[utoipa::path(
    post, path = "/stations/{station_id}/tags", tag = "media",
    params(StationPath),
    request_body = CreateTag,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = TagDto),
        (status = 400, description = "Bad station id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such station", body = ErrorBody),
        (status = 409, description = "The station has a tag of that name", body = ErrorBody),
        (status = 422, description = "The name is refused", body = ErrorBody),
    )
)]
pub(crate) async fn create_tag(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<StationPath>,
    Json(body): Json<CreateTag>,
) -> Result<(StatusCode, Json<TagDto>), ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::TagWrite, Some(station))?;
    let entry = audit_entry(&principal, &info, "tag.create", "tag");
    let tag = super::transaction(&state.db, move |conn| {
        stations::get(conn, station)?;
        let tag = media::create_tag(conn, station, &body.name)?;
        let details = serde_json::json!({ "name": tag.name });
        audit::record(
            conn,
            &entry.target(tag.id).station(station).details(details),
        )?;
        Ok(tag)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(tag.into())))
}

/// Delete a tag; the items it was on lose it.
#[utoipa::path(
    delete, path = "/stations/{station_id}/tags/{tag_id}", tag = "media",
    params(TagPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "Deleted, with its links"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a manager of the station", body = ErrorBody),
        (status = 404, description = "No such tag at the station", body = ErrorBody),
    )
)]
pub(crate) async fn delete_tag(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<TagPath>,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::TagWrite, Some(station))?;
    let id = TagId::from(path.tag_id);
    let entry = audit_entry(&principal, &info, "tag.delete", "tag");
    super::transaction(&state.db, move |conn| {
        let tag = media::delete_tag(conn, station, id)?;
        let details = serde_json::json!({ "name": tag.name });
        audit::record(conn, &entry.target(id).station(station).details(details))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Put a tag on a media item (again: nothing changes).
#[utoipa::path(
    put, path = "/stations/{station_id}/media/{media_id}/tags/{tag_id}", tag = "media",
    params(MediaTagPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "The item carries the tag"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such item or tag at the station", body = ErrorBody),
    )
)]
pub(crate) async fn tag_media(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MediaTagPath>,
) -> Result<StatusCode, ApiError> {
    link(state, principal, info, path, true).await
}

/// Take a tag off a media item (when it is not on: nothing changes).
#[utoipa::path(
    delete, path = "/stations/{station_id}/media/{media_id}/tags/{tag_id}", tag = "media",
    params(MediaTagPath),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 204, description = "The item does not carry the tag"),
        (status = 400, description = "Bad id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No role at the station", body = ErrorBody),
        (status = 404, description = "No such item or tag at the station", body = ErrorBody),
    )
)]
pub(crate) async fn untag_media(
    State(state): State<AppState>,
    principal: Principal,
    info: RequestInfo,
    Path(path): Path<MediaTagPath>,
) -> Result<StatusCode, ApiError> {
    link(state, principal, info, path, false).await
}

async fn link(
    state: AppState,
    principal: Principal,
    info: RequestInfo,
    path: MediaTagPath,
    on: bool,
) -> Result<StatusCode, ApiError> {
    let station = StationId::from(path.station_id);
    authorize(&principal, Action::MediaWrite, Some(station))?;
    let (media_id, tag) = (MediaId::from(path.media_id), TagId::from(path.tag_id));
    let action = if on { "media.tag" } else { "media.untag" };
    let entry = audit_entry(&principal, &info, action, "media");
    let changed = super::transaction(&state.db, move |conn| {
        let changed = if on {
            media::link_tag(conn, station, media_id, tag)?
        } else {
            media::unlink_tag(conn, station, media_id, tag)?
        };
        if changed {
            let details = serde_json::json!({ "tag_id": tag.to_string() });
            audit::record(
                conn,
                &entry.target(media_id).station(station).details(details),
            )?;
        }
        Ok(changed)
    })
    .await?;
    if changed {
        publish(&state, station, media_id, MediaChange::Updated);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_against_the_length() {
        use RangeAsk::*;
        let cases = [
            (None, 100, Whole),
            (Some("bytes=0-9"), 100, Part { start: 0, end: 9 }),
            (Some("bytes=90-"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=90-500"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=-10"), 100, Part { start: 90, end: 99 }),
            (Some("bytes=-500"), 100, Part { start: 0, end: 99 }),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-0"), 0, Unsatisfiable),
            (Some("bytes=5-2"), 100, Whole),
            (Some("bytes=0-1,5-6"), 100, Whole),
            (Some("items=0-1"), 100, Whole),
            (Some("bytes=x-1"), 100, Whole),
            (Some("bytes=+1-2"), 100, Whole),
        ];
        for (header, len, expected) in cases {
            assert_eq!(resolve_range(header, len), expected, "{header:?} of {len}");
        }
    }

    #[test]
    fn sizes_are_written_for_people() {
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn tag_text_is_cleaned() {
        assert_eq!(tag_text(Some(" a\u{0}b ".into())), Some("ab".into()));
        assert_eq!(tag_text(Some("  ".into())), None);
        assert_eq!(tag_text(None), None);
        assert_eq!(
            tag_text(Some("x".repeat(600))).map(|t| t.chars().count()),
            Some(media::MAX_TEXT_CHARS)
        );
    }
}
