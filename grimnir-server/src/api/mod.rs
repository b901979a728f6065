//! The REST API under `/api/v1`, with its OpenAPI 3.1 document and docs page.
//!
//! Every route is declared with `#[utoipa::path]` and registered through utoipa-axum's
//! [`routes!`], so the router and the document are built from the same declarations: the
//! document served at `GET /api/v1/openapi.json` lists exactly the routes served (a test checks
//! both ways, and a snapshot test fails on any change not committed with the route). The docs
//! page, Swagger UI served from the binary, is at `/api/v1/docs/` and works without internet.
//!
//! The pieces every handler uses:
//!
//! - [`error::ApiError`]: one error body, `{"error":{"code","message","field"}}`.
//! - [`extract`]: `Json`, `Path` and `Query` extractors that refuse bad input with that body,
//!   naming the field.
//! - [`page`]: `?limit=&offset=` and the `{items,total,limit,offset}` answer of lists.
//! - [`caller`]: the [`Principal`](crate::auth::policy::Principal) extractor (bearer token or
//!   `X-API-Key`) and [`caller::authorize`], the policy check.
//!
//! # Adding a resource
//!
//! 1. A module here with its DTOs (`#[derive(ToSchema)]`, request bodies with
//!    `#[serde(deny_unknown_fields)]`) and handlers annotated with `#[utoipa::path]` (path
//!    relative to `/api/v1`, `tag`, `params`, `request_body`, every response with its body,
//!    `security` unless public).
//! 2. Each handler takes `State<AppState>` and a `Principal`, and calls
//!    `authorize(&principal, Action::…, Some(station))` before touching anything; add the
//!    action and its row to the table in [`crate::auth::policy`].
//! 3. Changes go through [`transaction`] with an [`audit::record`](crate::audit::record) of the
//!    change inside it.
//! 4. Register the handlers in [`router`] with `.routes(routes!(…))`, one call per path; add the
//!    routes to the authorization matrix test and update the OpenAPI snapshot.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod caller;
pub mod error;
pub mod extract;
pub mod members;
pub mod page;
pub mod stations;
pub mod users;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use diesel::Connection as _;
use utoipa::openapi::OpenApi as OpenApiDocument;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use self::error::{ApiError, ErrorBody};
use crate::db::{Database, DbConnection, StorageError};
use crate::http::AppState;

/// Where the API lives.
pub const API_PREFIX: &str = "/api/v1";
/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the docs page is served.
pub const DOCS_PATH: &str = "/api/v1/docs";

/// The document's fixed parts: info, tags, security schemes and shared schemas. The paths come
/// from the routes registered in [`router`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Grimnir Radio API",
        version = "1",
        description = "The reference server's REST API. Errors share one body: \
            `{\"error\":{\"code\":\"…\",\"message\":\"…\",\"field\":\"…\"}}`. Lists take \
            `?limit=` (1–200, default 50) and `?offset=`, and answer `{items,total,limit,offset}`. \
            Sign in at `/auth/login`; send the access token as `Authorization: Bearer …`, or an \
            API key as `X-API-Key: …`. Request bodies are JSON (`Content-Type: application/json`, \
            else 415). Any route may answer 429 `rate_limited` with `Retry-After`, and 503 \
            `unavailable` while the database cannot be reached. Not listed as operations: the \
            event stream, `GET /api/v1/events` (WebSocket) and `GET /api/v1/events/stream` \
            (Server-Sent Events), with `?station=` and `?types=` filters, authenticated like \
            the other routes and limited to the stations the caller may read.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "Sign in, refresh, sign out, oneself"),
        (name = "users", description = "User accounts (admins)"),
        (name = "stations", description = "Stations"),
        (name = "members", description = "Roles at stations"),
        (name = "api-keys", description = "API keys of stations, for integrations and webhooks"),
        (name = "audit", description = "The audit log"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from /auth/login or /auth/refresh"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "A station's API key",
            ))),
        );
    }
}

/// The API's routes (with their paths under [`API_PREFIX`]) and the OpenAPI document built from
/// them. Public routes (sign-in, refresh, sign-out) are limited per client address.
pub fn router(state: &AppState) -> (Router<AppState>, OpenApiDocument) {
    let public = OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .route_layer(from_fn_with_state(state.clone(), caller::limit_public));
    let signed_in = OpenApiRouter::new()
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(stations::list_stations, stations::create_station))
        .routes(routes!(
            stations::get_station,
            stations::update_station,
            stations::delete_station
        ))
        .routes(routes!(members::list_members))
        .routes(routes!(members::set_member, members::remove_member))
        .routes(routes!(api_keys::list_api_keys, api_keys::create_api_key))
        .routes(routes!(api_keys::revoke_api_key))
        .routes(routes!(audit::list_audit));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(API_PREFIX, public.merge(signed_in))
        .split_for_parts()
}

/// The OpenAPI document at [`OPENAPI_PATH`] and Swagger UI at [`DOCS_PATH`], both served from
/// the binary and limited per client address like the other public endpoints.
pub fn docs(openapi: OpenApiDocument, state: &AppState) -> Router<AppState> {
    // Swagger UI would otherwise load a validity badge from validator.swagger.io.
    let config = utoipa_swagger_ui::Config::default().validator_url("none");
    Router::from(
        SwaggerUi::new(DOCS_PATH)
            .url(OPENAPI_PATH, openapi)
            .config(config),
    )
    .route_layer(from_fn_with_state(state.clone(), caller::limit_public))
}

/// The OpenAPI document, without serving anything (for tools and tests).
pub fn openapi(state: &AppState) -> OpenApiDocument {
    router(state).1
}

/// Answer for paths no route serves.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Answer for routes asked with a method they do not serve.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        StorageError::Query(e).into()
    }
}

/// Runs `f` in one database transaction on the blocking pool: committed when it returns `Ok`,
/// rolled back when it returns an error, which is answered as it is.
///
/// Start `f` with a write where you can, and do the reads a change depends on inside: an SQLite
/// transaction whose first statement reads cannot wait for a concurrent writer and fails with
/// "database is locked", while one that starts with a write waits out the busy timeout.
pub async fn transaction<T, F>(db: &Database, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    db.run(move |conn| Ok(conn.transaction(f))).await?
}
