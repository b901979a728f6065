//! The reference server of [Grimnir Radio] and the library behind its `grimnir` command.
//!
//! This crate composes the Grimnir Radio crates into a service with storage and an HTTP API.
//! It is being built in slices; what exists today:
//!
//! - [`config`]: configuration from embedded defaults, an optional YAML file and `GRIMNIR_*`
//!   environment variables (with their `RLM_*` aliases), validated with errors that name the
//!   file, line and field, or the variable.
//! - [`db`]: storage through diesel on SQLite (the default, a file under `./data`), PostgreSQL
//!   or MySQL/MariaDB, chosen by the database URL; the full schema of the data model in embedded
//!   migrations per backend; a repository for stations.
//! - [`api`]: the REST API under `/api/v1`, its OpenAPI 3.1 document and offline docs page, one
//!   error body, paging.
//! - [`auth`]: passwords (argon2id, bcrypt), access and refresh tokens, API keys, the policy of
//!   who may do what, rate limits.
//! - [`audit`]: the audit log.
//! - [`events`]: the real-time event stream: the eight event types and their JSON wire format,
//!   and the [`events::EventBus`] that carries them in process or across instances over NATS
//!   or Redis.
//! - [`executor_pool`]: one task per active station driving its `grimnir-priority` executor:
//!   commands to a [`executor_pool::CommandSink`], executor states, play history, events and
//!   metrics, panic isolation.
//! - [`http`]: an axum service with `/healthz`, `/readyz`, `/metrics`, the API and the event
//!   stream (WebSocket and SSE), a request id on every request, and graceful shutdown.
//! - [`logging`]: `tracing` with readable lines in development and JSON lines in production.
//! - [`media`]: the media library's files: uploads kept per station, container sniffing,
//!   probing and loudness/cue analysis with symphonia and grimnir-dsp, and the analysis worker.
//! - [`plan`]: `grimnir plan`, the planner over a station's files or a station in the database.
//! - [`planning`]: the planner over a station in the database: smart-block previews, clock
//!   simulations and the schedule.
//! - [`metrics`]: Prometheus metrics with the SPEC.md names, and the helpers that record them.
//! - [`server`]: what `grimnir serve` and `grimnir migrate` do.
//! - [`station_files`]: declarative station files (station, mounts, DSP graph, failover),
//!   validated with errors that name file, line and field, applied at start and again
//!   whenever one changes.
//!
//! The other API resources come next; the crate's README lists them.
//!
//! # Example
//!
//! Serve on a free loopback port with an SQLite database in a directory of your choosing, and
//! stop when a channel says so:
//!
//! ```no_run
//! use grimnir_server::config::{Config, EnvVars};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let env = EnvVars::from_pairs([
//!     ("GRIMNIR_DATA_DIR", "/tmp/grimnir-demo"),
//!     ("GRIMNIR_HTTP_LISTEN", "127.0.0.1:0"),
//!     ("GRIMNIR_JWT_SECRET", "at least thirty-two bytes of secret"),
//! ]);
//! let (config, _warnings) = Config::load(None, &env)?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(async move {
//!     grimnir_server::server::serve(&config, async {
//!         let _ = stopped.await;
//!     })
//!     .await
//! });
//! // … later:
//! let _ = stop.send(());
//! server.await??;
//! # Ok(())
//! # }
//! ```
//!
//! [Grimnir Radio]: https://github.com/grimnir-radio/grimnir

pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod db;
pub mod events;
pub mod executor_pool;
pub mod http;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod plan;
pub mod planning;
pub mod server;
pub mod station_files;
pub mod webstream_probe;
mod yaml_paths;
