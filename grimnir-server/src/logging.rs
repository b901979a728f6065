//! Logging with `tracing`: readable lines in development, JSON lines in production.
//!
//! Logs go to standard error, so that standard output stays free for what a command prints
//! (`grimnir migrate` reports there; later commands print plans and simulations).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The configured filter did not parse (configuration loading checks it first, so this
    /// means a `LogConfig` built by hand).
    #[error("log.level {level:?}: {message}")]
    Filter {
        /// The filter as configured.
        level: String,
        /// The parser's message.
        message: String,
    },
    /// A global subscriber was set already.
    #[error("logging was set up already: {0}")]
    AlreadySet(String),
}

/// Installs the global `tracing` subscriber for `config`. Call it once, early in `main`.
///
/// JSON lines carry `timestamp`, `level`, `target`, the event's fields (`message` among them)
/// and the current span's fields under `span`: for an HTTP request that is `method`, `path` and
/// `request_id`.
pub fn init(config: &LogConfig) -> Result<(), LoggingError> {
    let filter = EnvFilter::builder()
        .parse(config.level.as_str())
        .map_err(|e| LoggingError::Filter {
            level: config.level.as_str().to_owned(),
            message: e.to_string(),
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| LoggingError::AlreadySet(e.to_string()))
}
