//! Typed identifiers, so a clock id can never be passed where a media id is expected.

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(String);

        impl $name {
            /// What this id names, as used in error messages.
            pub const KIND: &'static str = $kind;

            /// Wraps an id. Emptiness is checked when the owning model is validated.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

typed_id!(
    /// Identifies a station.
    StationId, "station"
);
typed_id!(
    /// Identifies a media item (a track, jingle, liner, advert…).
    MediaId, "media item"
);
typed_id!(
    /// Identifies a smart block.
    BlockId, "smart block"
);
typed_id!(
    /// Identifies a clock (an hour template).
    ClockId, "clock"
);
typed_id!(
    /// Identifies a show.
    ShowId, "show"
);
typed_id!(
    /// Identifies a webstream (an external HTTP/ICY stream relayed on air).
    WebstreamId, "webstream"
);

/// Whether an id passes [`check_id`], without building an error.
pub(crate) fn id_ok(id: &str) -> bool {
    !id.is_empty() && id.trim() == id && !id.chars().any(char::is_control)
}

/// Checks that an id is usable: not empty, no surrounding whitespace, no control characters.
pub(crate) fn check_id(field: &str, id: &str) -> crate::Result<()> {
    if id.is_empty() {
        return Err(crate::Error::invalid(
            field,
            "\"\"",
            "an id must not be empty",
        ));
    }
    if id.trim() != id || id.chars().any(char::is_control) {
        return Err(crate::Error::invalid(
            field,
            format!("{id:?}"),
            "an id must not have surrounding whitespace or control characters",
        ));
    }
    Ok(())
}
