//! One error body for every error the API answers.
//!
//! ```json
//! {"error": {"code": "invalid_field", "message": "must not be empty", "field": "name"}}
//! ```
//!
//! `code` is for programs and never changes meaning; `message` is for people; `field` names the
//! offending input (a dotted path into the JSON body such as `outputs[0].url`, a query parameter
//! or a path parameter) when there is one.
//!
//! | status | code | when |
//! | --- | --- | --- |
//! | 400 | `malformed_json` | the body is not JSON |
//! | 400 | `invalid_query` | a query parameter is missing, unknown or of the wrong type (`field` names it) |
//! | 400 | `malformed_multipart` | a `multipart/form-data` upload body cannot be read |
//! | 400 | `invalid_path` | a path parameter is not what it should be, e.g. not a UUID (`field` names it) |
//! | 401 | `unauthenticated` | no credentials were given |
//! | 401 | `invalid_token` | the access token, refresh token or API key is not good |
//! | 401 | `token_expired` | the access token has expired: refresh it |
//! | 401 | `refresh_token_reused` | a spent refresh token was presented; its session is revoked |
//! | 401 | `invalid_credentials` | unknown email or wrong password |
//! | 403 | `account_disabled` | the password was right but the account is disabled |
//! | 403 | `forbidden` | the policy does not allow this principal to do this |
//! | 404 | `not_found` | no such route, or no such thing |
//! | 405 | `method_not_allowed` | the route exists, not with this method |
//! | 409 | `conflict` | a unique value is taken, or the change would lock everyone out |
//! | 409 | `managed_by_file` | a station file declares what the request would change |
//! | 413 | `payload_too_large` | the body is too large; for an upload, the message names `media.max_upload_bytes` |
//! | 415 | `unsupported_media_type` | a body without `Content-Type: application/json`; an upload that is not `multipart/form-data`, or whose file is not a container the media library takes |
//! | 416 | `range_not_satisfiable` | a `Range` outside a media file; `Content-Range: bytes */<length>` |
//! | 422 | `invalid_field` | the JSON is well-formed but a field is missing, of the wrong type or refused (`field` names it) |
//! | 429 | `rate_limited` | too many requests; `Retry-After` says how many seconds to wait |
//! | 500 | `internal` | a bug or a broken stored row; the details are in the server log |
//! | 503 | `unavailable` | the database cannot be reached; try again |

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Limited;
use crate::auth::password::PasswordError;
use crate::auth::sessions::AuthError;
use crate::db::StorageError;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code (see the table in the API description).
    #[schema(example = "invalid_field")]
    pub code: String,
    /// Text for people.
    #[schema(example = "must not be empty")]
    pub message: String,
    /// The offending input: a dotted path into the body, or a query or path parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "name")]
    pub field: Option<String>,
}

/// An error answered by the API: a status, a code, a message and maybe a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code.
    pub code: &'static str,
    /// Text for people.
    pub message: String,
    /// The offending input.
    pub field: Option<String>,
    /// For 429: when to try again.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// With the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 422 `invalid_field`.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in: send `Authorization: Bearer <access token>` or `X-API-Key: <key>`",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you are not allowed to do this",
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 409 `managed_by_file`: what the request would change is declared by a station file.
    pub fn managed_by_file(what: impl std::fmt::Display, path: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            "managed_by_file",
            format!("{what} is declared by the station file {path}; change the file instead"),
        )
    }

    /// 500 `internal`, with a generic message; log the details before.
    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// 429 `rate_limited`.
    pub fn rate_limited(limited: Limited) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; try again later",
        );
        e.retry_after = Some(limited.retry_after);
        e
    }

    /// The body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client waiting that long is let through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"grimnir\""),
            );
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { entity, id } => {
                ApiError::not_found(format!("{entity} `{id}` not found"))
            }
            StorageError::Invalid { field, reason, .. } => ApiError::invalid_field(field, reason),
            StorageError::Conflict {
                entity,
                field,
                value,
            } => ApiError::conflict(format!("a {entity} with {field} `{value}` exists already"))
                .with_field(field),
            StorageError::Connect { .. } | StorageError::Timeout(_) => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again",
                )
            }
            ref retryable if crate::db::is_retryable(retryable) => {
                tracing::warn!(error = %e, "transaction lost to a concurrent one");
                let mut busy = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database was busy with a conflicting change; try again",
                );
                busy.retry_after = Some(Duration::from_secs(1));
                busy
            }
            StorageError::Query(ref q) if crate::db::is_unique_violation(q) => {
                tracing::warn!(error = %e, "unique constraint");
                ApiError::conflict("a unique value is taken")
            }
            StorageError::Query(ref q)
                if matches!(
                    q,
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                        _
                    )
                ) =>
            {
                tracing::warn!(error = %e, "foreign key constraint");
                ApiError::conflict("it refers to something that does not exist, or is referred to")
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal()
            }
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::TooShort | PasswordError::TooLong => {
                ApiError::invalid_field("password", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "password hashing");
                ApiError::internal()
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let unauthorized =
            |code, message: String| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
        match e {
            AuthError::InvalidCredentials => unauthorized("invalid_credentials", e.to_string()),
            AuthError::AccountDisabled => {
                ApiError::new(StatusCode::FORBIDDEN, "account_disabled", e.to_string())
            }
            AuthError::InvalidToken(reason) => unauthorized("invalid_token", reason),
            AuthError::TokenExpired => unauthorized("token_expired", e.to_string()),
            AuthError::RefreshReused => unauthorized("refresh_token_reused", e.to_string()),
            AuthError::Storage(s) => s.into(),
            AuthError::Password(p) => p.into(),
            other => {
                tracing::error!(error = %other, "authentication");
                ApiError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_statuses_without_leaking_details() {
        let cases = [
            (
                StorageError::NotFound {
                    entity: "station",
                    id: "x".into(),
                },
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                StorageError::Invalid {
                    field: "timezone",
                    value: "Mars".into(),
                    reason: "bad".into(),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
            ),
            (
                StorageError::Connect {
                    backend: crate::db::Backend::Postgres,
                    url: "postgres://u:***@h/db".into(),
                    message: "refused".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StorageError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::SerializationFailure,
                    Box::new("Deadlock found when trying to get lock".to_owned()),
                )),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StorageError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::Unknown,
                    Box::new("database is locked".to_owned()),
                )),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StorageError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::Unknown,
                    Box::new("no such table: stations".to_owned()),
                )),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
            (
                StorageError::Task("panicked".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (storage, status, code) in cases {
            let e = ApiError::from(storage);
            assert_eq!((e.status, e.code), (status, code));
            assert!(
                !e.message.contains("refused")
                    && !e.message.contains("panicked")
                    && !e.message.contains("Deadlock")
            );
        }
    }

    #[test]
    fn rate_limits_carry_retry_after_in_whole_seconds() {
        let e = ApiError::rate_limited(Limited {
            retry_after: Duration::from_millis(1200),
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
