//! The engine's errors.

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// GStreamer could not be initialized, or an element could not be registered.
    #[error("cannot initialize GStreamer: {0}")]
    Init(String),
    /// A GStreamer element the engine needs is not installed.
    #[error(
        "GStreamer element `{element}` is missing (install the plugin package that provides it): {reason}"
    )]
    MissingElement {
        /// The element's factory name.
        element: String,
        /// What GStreamer said.
        reason: String,
    },
    /// A media file could not be played.
    #[error("{path}: {reason}")]
    Media {
        /// The file.
        path: String,
        /// Why: missing, empty, not audio, truncated, …
        reason: String,
    },
    /// The DSP graph was refused.
    #[error(transparent)]
    Dsp(#[from] grimnir_dsp::DspError),
    /// A timeline could not be read.
    #[error("timeline: {0}")]
    Timeline(String),
    /// A pipeline failed.
    #[error("pipeline: {0}")]
    Pipeline(String),
}
