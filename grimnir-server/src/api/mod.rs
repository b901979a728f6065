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

pub mod analytics;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod caller;
pub mod clocks;
pub mod dsp_graphs;
pub mod encoder_presets;
pub mod error;
pub mod extract;
pub mod live;
pub mod media;
pub mod members;
pub mod migrations;
pub mod mounts;
pub mod page;
pub mod playout;
pub mod priority;
pub mod programme;
pub mod schedule;
pub mod shows;
pub mod smart_blocks;
pub mod stations;
pub mod users;
pub mod webstreams;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
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
            the other routes and limited to the stations the caller may read. A browser, which \
            cannot set headers on a WebSocket or an EventSource, gets a ticket from \
            `POST /auth/ticket` and opens the stream with `?ticket=…` instead.",
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
        (name = "encoder-presets", description = "Named encoder settings that mounts use"),
        (name = "mounts", description = "A station's encoded streams and their outputs"),
        (name = "webstreams", description = "External streams a station relays, and their health"),
        (name = "dsp-graphs", description = "Saved DSP chains of stations, and the one applied"),
        (name = "smart-blocks", description = "Rule-based track selection, and previews of it"),
        (name = "clocks", description = "Hour templates made of slots, and simulations of them"),
        (name = "shows", description = "Calendar events that take over the air from the clocks"),
        (name = "schedule", description = "The planned timeline: list, re-plan, edit"),
        (name = "programme", description = "A station's weekly grid of clocks and its planning settings"),
        (name = "priority", description = "Priority sources: emergencies and overrides"),
        (name = "executor", description = "What stations' executors are doing"),
        (name = "playout", description = "Skip, stop and reload a station's playout"),
        (name = "analytics", description = "What is on air and what was played"),
        (name = "live", description = "DJs going live"),
        (name = "webhooks", description = "Reports from external playouts"),
        (name = "media", description = "The media library: uploads, metadata, cue points, files and tags"),
        (name = "migrations", description = "Import jobs from AzuraCast and LibreTime (admins)"),
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
        .routes(routes!(auth::event_ticket))
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
        .routes(routes!(audit::list_audit))
        .routes(routes!(
            dsp_graphs::list_dsp_graphs,
            dsp_graphs::create_dsp_graph
        ))
        .routes(routes!(
            dsp_graphs::get_dsp_graph,
            dsp_graphs::update_dsp_graph,
            dsp_graphs::delete_dsp_graph
        ))
        .routes(routes!(dsp_graphs::apply_dsp_graph))
        .routes(routes!(
            smart_blocks::list_smart_blocks,
            smart_blocks::create_smart_block
        ))
        .routes(routes!(
            smart_blocks::get_smart_block,
            smart_blocks::update_smart_block,
            smart_blocks::delete_smart_block
        ))
        .routes(routes!(smart_blocks::materialize_smart_block))
        .routes(routes!(programme::get_programme, programme::put_programme))
        .routes(routes!(clocks::list_clocks, clocks::create_clock))
        .routes(routes!(
            clocks::get_clock,
            clocks::update_clock,
            clocks::delete_clock
        ))
        .routes(routes!(clocks::simulate_clock))
        .routes(routes!(shows::list_shows, shows::create_show))
        .routes(routes!(
            shows::get_show,
            shows::update_show,
            shows::delete_show
        ))
        .routes(routes!(schedule::list_schedule))
        .routes(routes!(schedule::refresh_schedule))
        .routes(routes!(schedule::update_schedule_entry))
        .routes(routes!(
            priority::list_priority_sources,
            priority::create_priority_source
        ))
        .routes(routes!(priority::delete_priority_source))
        .routes(routes!(priority::emergency))
        .routes(routes!(priority::override_source))
        .routes(routes!(playout::list_executor_states))
        .routes(routes!(playout::get_executor_state))
        .routes(routes!(playout::skip))
        .routes(routes!(playout::stop))
        .routes(routes!(playout::reload))
        .routes(routes!(analytics::now_playing))
        .routes(routes!(analytics::spins))
        .routes(routes!(analytics::track_start))
        .routes(routes!(live::live_authorize))
        .routes(routes!(live::live_handover))
        .routes(routes!(live::live_release))
        .merge(media::routes())
        .merge(migrations::routes())
        .merge(
            encoder_presets::routes()
                .merge(mounts::routes())
                .merge(webstreams::routes()),
        );
    let (router, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(API_PREFIX, public.merge(signed_in))
        .split_for_parts();
    document_common_answers(&mut document);
    (router, document)
}

/// Answers any operation may give that its own declaration leaves out, as reusable responses
/// in `components/responses` referenced from every operation that can give them: 429 and 503
/// from every route, 400 from every route with parameters or a body, 413, 415 and 422 from
/// every route with a JSON body. A client generated from the document (or a schema-driven
/// fuzzer) thus expects each status the server can send.
fn document_common_answers(document: &mut OpenApiDocument) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let error = |description: &str| {
        ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
    };
    let seconds = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .build();
    let retry_after = HeaderBuilder::new()
        .schema(Some(seconds))
        .description(Some("Seconds to wait before trying again"))
        .build();
    let common = [
        (
            "400",
            "BadRequest",
            error("A path or query parameter does not parse, or the body is not JSON").build(),
        ),
        (
            "413",
            "PayloadTooLarge",
            error("The body is larger than the server takes").build(),
        ),
        (
            "415",
            "UnsupportedMediaType",
            error("The body is not `application/json`").build(),
        ),
        (
            "422",
            "InvalidField",
            error("A field of the body is missing or refused; `field` names it").build(),
        ),
        (
            "429",
            "RateLimited",
            error("Too many requests from this client or user")
                .header("Retry-After", retry_after)
                .build(),
        ),
        (
            "503",
            "Unavailable",
            error("The database cannot be reached; try again").build(),
        ),
    ];
    let components = document.components.get_or_insert_with(Default::default);
    for (_, name, response) in &common {
        components
            .responses
            .insert((*name).to_owned(), RefOr::T(response.clone()));
    }
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let has_body = operation.request_body.is_some();
            let has_params =
                has_body || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            for (status, name, _) in &common {
                let applies = match *status {
                    "400" => has_params,
                    "413" | "415" | "422" => has_body,
                    _ => true,
                };
                if applies {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
            }
        }
    }
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
/// It is a [write transaction](DbConnection::write_transaction): on SQLite it holds the write
/// lock from the start, so `f` may read what a change depends on before writing it.
pub async fn transaction<T, F>(db: &Database, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let done = db.run(move |conn| Ok(conn.write_transaction(f))).await;
    // Whatever happened, caches of stored state (signed-in principals) look again.
    db.note_write();
    done?
}
