//! Who is calling: the [`Principal`] extractor, the policy check handlers make, the request's
//! audit details, and the per-address limit of public endpoints.
//!
//! A handler that needs a signed-in caller takes a [`Principal`] argument (anonymous requests
//! are answered 401 before the handler runs) and asks [`authorize`] before it touches anything:
//!
//! ```text
//! async fn get_station(State(state): State<AppState>, principal: Principal,
//!                      Path(p): Path<StationPath>) -> Result<Json<StationDto>, ApiError> {
//!     let station = StationId::from(p.station_id);
//!     authorize(&principal, Action::StationRead, Some(station))?;
//!     …
//! }
//! ```

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::audit::{Actor, Entry};
use crate::auth::policy::{self, Action, Credential, Principal};
use crate::auth::sessions::RequestInfo;
use crate::db::stations::StationId;
use crate::http::{AppState, RequestId};

/// The header carrying an API key.
pub const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The client's address, as [`ClientIp`] settled it (or the connection's peer).
pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    ip_of(&parts.extensions)
}

fn ip_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ClientIp>()
        .map(|ClientIp(ip)| *ip)
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        })
}

/// The client's address of a request, in its extensions: the peer, or behind a trusted proxy
/// the address it forwarded (see [`crate::auth::Auth::client_ip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The header reverse proxies name the client in.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Middleware: settles [`ClientIp`] before anything else looks at the request.
pub async fn assign_client_ip(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let forwarded = request
        .headers()
        .get_all(&FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let forwarded = (!forwarded.is_empty()).then_some(forwarded.as_str());
    if let Some(ip) = state.auth.client_ip(peer, forwarded) {
        request.extensions_mut().insert(ClientIp(ip));
    }
    next.run(request).await
}

/// Refuses with 403 unless the policy allows `principal` to do `action` (at `station`).
pub fn authorize(
    principal: &Principal,
    action: Action,
    station: Option<StationId>,
) -> Result<(), ApiError> {
    if policy::allows(principal, action, station) {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

/// Who acted, for the audit log.
pub fn actor(principal: &Principal) -> Actor {
    match principal.credential {
        Credential::ApiKey(key) => Actor::ApiKey {
            key,
            user: principal.user_id,
        },
        _ => Actor::User(principal.user_id),
    }
}

/// An audit entry for what `principal` does in this request: actor, action, kind of target,
/// request id and client address filled in. Add `.target(…)`, `.station(…)` and
/// `.details(…)`, and record it with [`crate::audit::record`] in the change's transaction.
pub fn audit_entry(principal: &Principal, info: &RequestInfo, action: &str, target: &str) -> Entry {
    Entry::new(actor(principal), action, target)
        .request(info.request_id.clone(), info.remote_addr.clone())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let bearer = value
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
                .ok_or_else(|| {
                    ApiError::new(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "the Authorization header must be `Bearer <access token>`",
                    )
                })?;
            state.auth.authenticate_bearer(&state.db, bearer).await?
        } else if let Some(value) = parts.headers.get(&API_KEY_HEADER) {
            let key = value.to_str().unwrap_or_default().trim();
            state.auth.authenticate_api_key(&state.db, key).await?
        } else {
            return Err(ApiError::unauthenticated());
        };
        state
            .auth
            .check_user(principal.user_id)
            .map_err(ApiError::rate_limited)?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(RequestInfo {
            request_id: parts.extensions.get::<RequestId>().map(|id| id.0.clone()),
            remote_addr: client_ip(parts).map(|ip| ip.to_string()),
        })
    }
}

/// Middleware for the event stream (WebSocket and SSE): authenticates the caller like any API
/// route (401 with the error body otherwise) and gives the stream handlers its
/// [`EventScope`](crate::events::EventScope): every station for admins, else the stations where
/// the policy allows [`Action::EventRead`].
///
/// A request without `Authorization` or `X-API-Key` may carry a ticket from
/// `POST /auth/ticket` as `?ticket=` instead, since browsers cannot set headers on a WebSocket
/// or an `EventSource`. The ticket is spent, and taken out of the query before the stream
/// handlers read their filters.
pub async fn scope_events(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let (ticket, rest) = take_ticket(parts.uri.query());
    let has_header =
        parts.headers.contains_key(AUTHORIZATION) || parts.headers.contains_key(&API_KEY_HEADER);
    let principal = match ticket {
        Some(ticket) if !has_header => match state.auth.redeem_ticket(&state.db, &ticket).await {
            Ok(principal) => match state.auth.check_user(principal.user_id) {
                Ok(()) => principal,
                Err(limited) => return ApiError::rate_limited(limited).into_response(),
            },
            Err(e) => return ApiError::from(e).into_response(),
        },
        _ => match Principal::from_request_parts(&mut parts, &state).await {
            Ok(principal) => principal,
            Err(e) => return e.into_response(),
        },
    };
    if let Some(rest) = rest {
        match with_query(&parts.uri, &rest) {
            Some(uri) => parts.uri = uri,
            None => {
                return ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_filter",
                    "the query string cannot be read",
                )
                .into_response();
            }
        }
    }
    let scope = if principal.is_admin() {
        crate::events::EventScope::All
    } else {
        crate::events::EventScope::Stations(
            principal
                .stations()
                .map(|(station, _)| station)
                .filter(|s| policy::allows(&principal, Action::EventRead, Some(*s)))
                .map(|s| s.as_uuid())
                .collect(),
        )
    };
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(scope);
    next.run(request).await
}

/// The value of the first `ticket` parameter of `query`, and the query without any `ticket`
/// parameter (`None` when there was none to take out). Parameters are split on `&` and kept as
/// written, so the filters that remain are parsed exactly as the client sent them.
fn take_ticket(query: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(query) = query else {
        return (None, None);
    };
    let mut ticket = None;
    let mut found = false;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("ticket", value)) => {
                found = true;
                if ticket.is_none() {
                    // Tickets are base64url and dots: nothing to decode, but a client that
                    // encodes anyway still works.
                    ticket = Some(percent_decode(value).unwrap_or_else(|| value.to_owned()));
                }
            }
            _ if pair == "ticket" => found = true,
            _ => rest.push(pair),
        }
    }
    (ticket, found.then(|| rest.join("&")))
}

/// `%XX` escapes and `+` decoded, or `None` when the result is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={value}"))
        .ok()?
        .pop()
        .map(|(_, v)| v)
}

/// `uri` with its query replaced by `query` (dropped when empty).
fn with_query(uri: &axum::http::Uri, query: &str) -> Option<axum::http::Uri> {
    let path_and_query = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    axum::http::Uri::from_parts(parts).ok()
}

/// Middleware for public endpoints: at most the configured rate per client address.
pub async fn limit_public(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.auth.check_public(ip_of(request.extensions())) {
        Ok(()) => next.run(request).await,
        Err(limited) => ApiError::rate_limited(limited).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_is_taken_out_of_the_query_and_the_filters_stay_as_written() {
        assert_eq!(take_ticket(None), (None, None));
        assert_eq!(take_ticket(Some("types=now_playing")), (None, None));
        assert_eq!(
            take_ticket(Some("station=a%2Cb&ticket=x.y-z_&types=now_playing")),
            (
                Some("x.y-z_".to_owned()),
                Some("station=a%2Cb&types=now_playing".to_owned())
            )
        );
        // Only the first ticket counts; every one is removed.
        assert_eq!(
            take_ticket(Some("ticket=one&ticket=two")),
            (Some("one".to_owned()), Some(String::new()))
        );
        assert_eq!(
            take_ticket(Some("ticket%3D=no&ticket=a%2Eb")),
            (Some("a.b".to_owned()), Some("ticket%3D=no".to_owned()))
        );
        let uri: axum::http::Uri = "/api/v1/events?ticket=t&types=x".parse().unwrap();
        assert_eq!(
            with_query(&uri, "types=x").unwrap(),
            "/api/v1/events?types=x"
        );
        assert_eq!(with_query(&uri, "").unwrap(), "/api/v1/events");
    }
}
