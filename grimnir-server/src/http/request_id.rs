//! A request id on every request: the client's `x-request-id` when it is a sane token, a new
//! UUID otherwise. The id is written back on the response and recorded on the request's span.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::HeaderName;
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept.
const MAX_LEN: usize = 128;

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a client's id may be reused: short, and made of characters that cannot confuse a
/// log reader (letters, digits, `-`, `_`, `.`, `:`).
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: settles the request id before anything else sees the request.
pub(crate) async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    // The id is ASCII by construction, so it is always a valid header value.
    let value = HeaderValue::from_str(&id).ok();
    if let Some(value) = &value {
        request
            .headers_mut()
            .insert(REQUEST_ID_HEADER, value.clone());
    }
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    if let Some(value) = value {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn client_ids_are_screened() {
        assert!(acceptable("3f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f"));
        assert!(acceptable("lb:42.7_x"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable("quote\"d"));
        assert!(!acceptable(&"a".repeat(129)));
    }
}
