//! Webstreams: external HTTP/ICY streams a station relays (clock slots and shows refer to
//! them), with fallback URLs, request headers and the last health check.
//!
//! Header values may be credentials (`Authorization`), so the API only ever shows header
//! names. The last [`HealthReport`] is kept in `metadata.last_health`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::programme::check_name;
use super::schema::webstreams;
use super::stations::StationId;
use super::{DbConnection, Page, StorageError, now, stored_id, uuid_id};
use crate::webstream_probe::{HealthReport, HealthState, refused_address};

uuid_id! {
    /// The id of a webstream.
    WebstreamId
}

/// Longest URL, characters (the column is `VARCHAR(2048)`).
pub const MAX_URL_CHARS: usize = 2048;
/// Most fallback URLs.
pub const MAX_FALLBACKS: usize = 8;
/// Most request headers.
pub const MAX_HEADERS: usize = 16;
/// Longest header value, bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;

/// Headers the client sets itself, or that would change how the connection works.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// A webstream as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WebstreamRecord {
    /// Its id.
    pub id: WebstreamId,
    /// Its station.
    pub station_id: StationId,
    /// Name shown to people.
    pub name: String,
    /// The primary URL.
    pub url: String,
    /// Backup URLs, tried in order.
    pub fallback_urls: Vec<String>,
    /// Request headers, by name.
    pub headers: BTreeMap<String, String>,
    /// The health found by the last check.
    pub health_state: HealthState,
    /// When it was last checked.
    pub last_health_check: Option<DateTime<Utc>>,
    /// What the last check found.
    pub last_health: Option<HealthReport>,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

/// What a new webstream is made of. The caller checks it with [`check_stream`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebstream {
    /// Name shown to people: 1 to 255 characters.
    pub name: String,
    /// The primary URL.
    pub url: String,
    /// Backup URLs.
    pub fallback_urls: Vec<String>,
    /// Request headers.
    pub headers: BTreeMap<String, String>,
}

/// Changes to a webstream; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebstreamChanges {
    /// A new name.
    pub name: Option<String>,
    /// A new primary URL.
    pub url: Option<String>,
    /// New fallbacks, replacing the old.
    pub fallback_urls: Option<Vec<String>>,
    /// New headers, replacing the old.
    pub headers: Option<BTreeMap<String, String>>,
}

/// A field path (`fallback_urls[1]`, `headers.Authorization`) and what is wrong.
pub type StreamProblem = (String, String);

/// Checks one URL: http or https, a host, no credentials (they go in a header, whose value
/// is never shown), no refused literal address, at most [`MAX_URL_CHARS`].
pub fn check_url(url: &str) -> Result<(), String> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("longer than {MAX_URL_CHARS} characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?}: only http and https streams are relayed, not {}",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "credentials in the URL would be shown to everyone who reads the stream; send them \
             in an Authorization header instead (header values are write-only)"
                .to_owned(),
        );
    }
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(format!("{url:?} has no host")),
    };
    if let Some(why) = ip.and_then(refused_address) {
        return Err(format!("{url:?}: the server does not connect to {why}"));
    }
    Ok(())
}

/// Checks a stream's URLs and headers; the problem names the field.
pub fn check_stream(
    url: Option<&str>,
    fallback_urls: Option<&[String]>,
    headers: Option<&BTreeMap<String, String>>,
) -> Result<(), StreamProblem> {
    if let Some(url) = url {
        check_url(url).map_err(|m| ("url".to_owned(), m))?;
    }
    if let Some(fallbacks) = fallback_urls {
        if fallbacks.len() > MAX_FALLBACKS {
            return Err((
                "fallback_urls".into(),
                format!("{} URLs; at most {MAX_FALLBACKS}", fallbacks.len()),
            ));
        }
        for (i, fallback) in fallbacks.iter().enumerate() {
            let field = format!("fallback_urls[{i}]");
            check_url(fallback).map_err(|m| (field.clone(), m))?;
            if fallbacks[..i].contains(fallback) || url == Some(fallback.as_str()) {
                return Err((field, format!("{fallback:?} is listed already")));
            }
        }
    }
    if let Some(headers) = headers {
        if headers.len() > MAX_HEADERS {
            return Err((
                "headers".into(),
                format!("{} headers; at most {MAX_HEADERS}", headers.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (name, value) in headers {
            let field = format!("headers.{name}");
            let lower = name.to_ascii_lowercase();
            if name.len() > 64 || hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err((
                    field,
                    "not an HTTP header name (1 to 64 token characters)".into(),
                ));
            }
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err((field, "set by the server itself; it cannot be given".into()));
            }
            if !seen.insert(lower) {
                return Err((field, "given twice (header names ignore case)".into()));
            }
            // Never echo the value: it may be a credential.
            if value.len() > MAX_HEADER_VALUE_BYTES
                || hyper::header::HeaderValue::from_str(value).is_err()
            {
                return Err((
                    field,
                    format!(
                        "the value must be at most {MAX_HEADER_VALUE_BYTES} bytes of visible \
                         ASCII and spaces"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webstreams)]
struct WebstreamRow {
    id: String,
    station_id: String,
    name: String,
    url: String,
    fallback_urls: String,
    headers: String,
    health_state: String,
    last_health_check: Option<NaiveDateTime>,
    metadata: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn corrupt(column: &'static str, value: &str, expected: &'static str) -> StorageError {
    StorageError::Corrupt {
        table: "webstreams",
        column,
        value: value.to_owned(),
        expected,
    }
}

impl TryFrom<WebstreamRow> for WebstreamRecord {
    type Error = StorageError;

    fn try_from(row: WebstreamRow) -> Result<Self, StorageError> {
        let fallback_urls = serde_json::from_str(&row.fallback_urls)
            .map_err(|_| corrupt("fallback_urls", &row.fallback_urls, "a JSON list of URLs"))?;
        let headers = serde_json::from_str(&row.headers).map_err(|_| {
            // Values may be credentials: not shown.
            corrupt("headers", "(hidden)", "a JSON object of header values")
        })?;
        let health_state = HealthState::parse(&row.health_state)
            .ok_or_else(|| corrupt("health_state", &row.health_state, "a health state"))?;
        let metadata: serde_json::Value = serde_json::from_str(&row.metadata)
            .map_err(|_| corrupt("metadata", &row.metadata, "a JSON object"))?;
        let last_health = metadata
            .get("last_health")
            .and_then(|h| serde_json::from_value(h.clone()).ok());
        Ok(WebstreamRecord {
            id: stored_id("webstreams", "id", &row.id)?,
            station_id: stored_id("webstreams", "station_id", &row.station_id)?,
            name: row.name,
            url: row.url,
            fallback_urls,
            headers,
            health_state,
            last_health_check: row.last_health_check.map(|t| t.and_utc()),
            last_health,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Task(format!("as JSON: {e}")))
}

fn load(
    conn: &mut DbConnection,
    station: StationId,
    id: WebstreamId,
) -> Result<WebstreamRecord, StorageError> {
    webstreams::table
        .filter(webstreams::id.eq(id.to_string()))
        .filter(webstreams::station_id.eq(station.to_string()))
        .select(WebstreamRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| StorageError::NotFound {
            entity: "webstream",
            id: id.to_string(),
        })?
        .try_into()
}

/// Stores a new webstream of `station`, never checked yet, and returns it as stored.
pub fn create(
    conn: &mut DbConnection,
    station: StationId,
    new: &NewWebstream,
) -> Result<WebstreamRecord, StorageError> {
    let name = check_name(&new.name)?;
    let id = WebstreamId::random();
    let at = now();
    diesel::insert_into(webstreams::table)
        .values((
            webstreams::id.eq(id.to_string()),
            webstreams::station_id.eq(station.to_string()),
            webstreams::name.eq(name),
            webstreams::url.eq(&new.url),
            webstreams::fallback_urls.eq(json(&new.fallback_urls)?),
            webstreams::headers.eq(json(&new.headers)?),
            webstreams::health_state.eq(HealthState::Unknown.as_str()),
            webstreams::metadata.eq("{}"),
            webstreams::created_at.eq(at),
            webstreams::updated_at.eq(at),
        ))
        .execute(conn)?;
    load(conn, station, id)
}

/// The webstream `id` of `station`.
pub fn get(
    conn: &mut DbConnection,
    station: StationId,
    id: WebstreamId,
) -> Result<WebstreamRecord, StorageError> {
    load(conn, station, id)
}

/// One page of `station`'s webstreams by name, then id, and how many it has in all.
pub fn list_page(
    conn: &mut DbConnection,
    station: StationId,
    page: Page,
) -> Result<(Vec<WebstreamRecord>, i64), StorageError> {
    let station = station.to_string();
    let total: i64 = webstreams::table
        .filter(webstreams::station_id.eq(&station))
        .count()
        .get_result(conn)?;
    let items = webstreams::table
        .filter(webstreams::station_id.eq(&station))
        .order((webstreams::name, webstreams::id))
        .limit(page.limit)
        .offset(page.offset)
        .select(WebstreamRow::as_select())
        .load(conn)?
        .into_iter()
        .map(WebstreamRecord::try_from)
        .collect::<Result<_, _>>()?;
    Ok((items, total))
}

/// Applies `changes` and returns the webstream as stored afterwards. A changed URL list makes
/// the last health check stale: the state goes back to `unknown`.
pub fn update(
    conn: &mut DbConnection,
    station: StationId,
    id: WebstreamId,
    changes: &WebstreamChanges,
) -> Result<WebstreamRecord, StorageError> {
    let name = changes.name.as_deref().map(check_name).transpose()?;
    let fallbacks = changes.fallback_urls.as_ref().map(json).transpose()?;
    let headers = changes.headers.as_ref().map(json).transpose()?;
    let urls_changed = changes.url.is_some() || changes.fallback_urls.is_some();
    diesel::update(
        webstreams::table
            .filter(webstreams::id.eq(id.to_string()))
            .filter(webstreams::station_id.eq(station.to_string())),
    )
    .set((
        name.map(|n| webstreams::name.eq(n)),
        changes.url.as_deref().map(|u| webstreams::url.eq(u)),
        fallbacks.map(|f| webstreams::fallback_urls.eq(f)),
        headers.map(|h| webstreams::headers.eq(h)),
        urls_changed.then_some(webstreams::health_state.eq(HealthState::Unknown.as_str())),
        webstreams::updated_at.eq(now()),
    ))
    .execute(conn)?;
    load(conn, station, id)
}

/// Records a health check of webstream `id`.
pub fn record_health(
    conn: &mut DbConnection,
    station: StationId,
    id: WebstreamId,
    report: &HealthReport,
) -> Result<WebstreamRecord, StorageError> {
    let metadata = serde_json::json!({ "last_health": report }).to_string();
    diesel::update(
        webstreams::table
            .filter(webstreams::id.eq(id.to_string()))
            .filter(webstreams::station_id.eq(station.to_string())),
    )
    .set((
        webstreams::health_state.eq(report.state.as_str()),
        webstreams::last_health_check.eq(Some(report.checked_at.naive_utc())),
        webstreams::metadata.eq(metadata),
    ))
    .execute(conn)?;
    load(conn, station, id)
}

/// Deletes webstream `id` of `station`. The caller checks [`users`] first.
pub fn delete(
    conn: &mut DbConnection,
    station: StationId,
    id: WebstreamId,
) -> Result<(), StorageError> {
    let deleted = diesel::delete(
        webstreams::table
            .filter(webstreams::id.eq(id.to_string()))
            .filter(webstreams::station_id.eq(station.to_string())),
    )
    .execute(conn)?;
    if deleted == 0 {
        return Err(StorageError::NotFound {
            entity: "webstream",
            id: id.to_string(),
        });
    }
    Ok(())
}

/// What at `station` plays webstream `id`, described for people, or `None`.
pub fn users(
    conn: &mut DbConnection,
    station: StationId,
    id: WebstreamId,
) -> Result<Option<String>, StorageError> {
    let id = id.to_string();
    for clock in super::clocks::all(conn, station)? {
        for (position, slot) in clock.clock.slots.iter().enumerate() {
            let plays = super::programme::slot_references(&slot.kind)
                .iter()
                .any(|(_, r)| matches!(r, super::programme::Reference::Webstream(w) if *w == id));
            if plays {
                return Ok(Some(format!("slot {position} of clock {}", clock.id)));
            }
        }
    }
    for show in super::shows::all(conn, station)? {
        if matches!(&show.show.content, grimnir_planner::ShowContent::Webstream(w) if w.as_str() == id)
        {
            return Ok(Some(format!("show {}", show.id)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://stream.example.org/live.mp3").is_ok());
        assert!(check_url("http://127.0.0.1:8000/live").is_ok());
        assert!(check_url("ftp://example.org/x").is_err());
        assert!(check_url("http://user:pw@example.org/x").is_err());
        assert!(check_url("http://169.254.169.254/latest/meta-data").is_err());
        assert!(check_url("http://[fe80::1]/x").is_err());
        assert!(check_url(&format!("http://example.org/{}", "a".repeat(MAX_URL_CHARS))).is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn headers_are_checked_without_echoing_values() {
        let one = |name: &str, value: &str| BTreeMap::from([(name.to_owned(), value.to_owned())]);
        assert!(check_stream(None, None, Some(&one("Authorization", "Bearer x"))).is_ok());
        let (field, message) = check_stream(None, None, Some(&one("Host", "evil"))).unwrap_err();
        assert_eq!(field, "headers.Host");
        assert!(!message.contains("evil"));
        let (_, message) =
            check_stream(None, None, Some(&one("X-Key", "secret\nvalue"))).unwrap_err();
        assert!(!message.contains("secret"));
        assert_eq!(
            check_stream(None, None, Some(&one("bad name", "x")))
                .unwrap_err()
                .0,
            "headers.bad name"
        );
    }
}
