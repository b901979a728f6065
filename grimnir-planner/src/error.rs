//! Errors for input that cannot be used at all.
//!
//! Problems the planner can work around (an unmet quota, a relaxed separation rule) are
//! [`Diagnostic`](crate::Diagnostic)s, not errors.

/// Why a station, library or plan request was refused.
///
/// Every variant names the offending field with a path such as
/// `smart_blocks[2].separation.artist.minutes`, so a person can find it in their file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field holds a value outside what it may hold.
    #[error("{field} = {value}: {reason}")]
    Invalid {
        /// Path of the field, e.g. `items[4].cue_out`.
        field: String,
        /// The offending value, as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field refers to something that does not exist.
    #[error("{field} refers to unknown {kind} `{id}`")]
    UnknownId {
        /// Path of the referring field.
        field: String,
        /// What kind of thing was looked for (`media item`, `smart block`, …).
        kind: &'static str,
        /// The id that was not found.
        id: String,
    },
    /// Two things of the same kind share one id.
    #[error("{kind} id `{id}` is used more than once (again at {field})")]
    DuplicateId {
        /// What kind of thing (`clock`, `show`, …).
        kind: &'static str,
        /// The repeated id.
        id: String,
        /// Path of the second use.
        field: String,
    },
    /// A station, library or timeline file could not be parsed.
    #[error("cannot read {what}: {message}")]
    Parse {
        /// Which file or document (`station file`, `library file`).
        what: &'static str,
        /// The parser's message, with line and column where it has them.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unknown(field: impl Into<String>, kind: &'static str, id: &str) -> Self {
        Error::UnknownId {
            field: field.into(),
            kind,
            id: id.to_owned(),
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
