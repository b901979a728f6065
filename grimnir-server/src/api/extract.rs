//! Extractors that refuse bad input with the API's error body, naming the field.
//!
//! axum's own `Json`, `Path` and `Query` answer bad input with plain-text bodies; these wrap the
//! same work and answer [`ApiError`]s instead: `malformed_json` (400), `invalid_field` (422),
//! `invalid_path` (400), `invalid_query` (400), `unsupported_media_type` (415) and
//! `payload_too_large` (413). Handlers use these, never axum's.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body, checked field by field; as a response, a JSON body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// Path parameters, each named when it does not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

/// Query parameters, each named when it does not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

/// For `#[serde(default, deserialize_with = "…")]` on an `Option<Option<T>>` field of a change:
/// `Some(None)` for a field given as `null` (remove it), as opposed to `None` for a field left
/// out (keep it).
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// The message of a serde error without the position serde_json appends (the field says where).
pub(crate) fn bare(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at)
            if message[at + 9..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            &message[..at]
        }
        _ => message,
    }
}

/// The field an error is about: the path where it happened, and for a missing or unknown field,
/// that field's name below it.
pub(crate) fn field_of(path: &str, message: &str) -> Option<String> {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|start| message.strip_prefix(start))
        .and_then(|rest| rest.split('`').next())
        .filter(|name| !name.is_empty());
    let path = (path != "." && !path.is_empty()).then_some(path);
    match (path, named) {
        (Some(path), Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            Some(path.to_owned())
        }
        (Some(path), Some(name)) => Some(format!("{path}.{name}")),
        (Some(path), None) => Some(path.to_owned()),
        (None, Some(name)) => Some(name.to_owned()),
        (None, None) => None,
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
    else {
        return false;
    };
    let mime = mime.trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Deserializes a JSON body, naming the offending field.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let message = bare(&message);
        match inner.classify() {
            serde_json::error::Category::Data => {
                let mut error =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
                error.field = field_of(&path, message);
                error
            }
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {message}"),
            ),
        }
    })?;
    deserializer.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {}", bare(&e.to_string())),
        )
    })?;
    Ok(value)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection {
                    BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                        ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            "the body is too large",
                        )
                    }
                    other => ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed_json",
                        format!("the body could not be read: {}", other.body_text()),
                    ),
                })?;
        from_json(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid = |field: Option<String>, message: String| {
            let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", message);
            e.field = field;
            e
        };
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| invalid(None, rejection.body_text()))?;
        let pairs: Vec<(String, String)> = raw
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let deserializer =
            serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs.into_iter());
        serde_path_to_error::deserialize(deserializer)
            .map(Path)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                invalid(field_of(&path, &message), message)
            })
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let mut error =
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message.clone());
                error.field = field_of(&path, &message);
                error
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn err(body: &str) -> ApiError {
        from_json::<Outer>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = err(r#"{"inner":{"count":1}}"#);
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid_field"));
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.message, "missing field `name`");

        let e = err(r#"{"name":"x","inner":{"count":"many"}}"#);
        assert_eq!(e.field.as_deref(), Some("inner.count"));
        assert!(
            e.message.starts_with("invalid type: string"),
            "{}",
            e.message
        );

        // Well-formed JSON of the wrong shape is a field error, not a syntax error.
        let e = err("[1,2]");
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid_field"));

        let e = err(r#"{"name":"x","inner":{}}"#);
        assert_eq!(e.field.as_deref(), Some("inner.count"));

        let e = err(r#"{"name":"x","inner":{"count":1},"extra":true}"#);
        assert_eq!(e.field.as_deref(), Some("extra"));

        for malformed in [
            "{",
            "",
            r#"{"name":}"#,
            r#"{"name":"x","#,
            r#"{"name":"x","inner":{"count":1}} trailing"#,
        ] {
            let e = err(malformed);
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "malformed_json"),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn content_types() {
        let v = |s: &'static str| header::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("Application/JSON; charset=utf-8"))));
        assert!(is_json(Some(&v("application/merge-patch+json"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(None));
    }
}
