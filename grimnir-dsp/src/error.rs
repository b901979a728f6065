//! Errors for configurations and audio formats that cannot be used.

/// Why a DSP graph or an audio format was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DspError {
    /// A node parameter holds an impossible value.
    #[error("nodes[{node}] ({kind}).{field} = {value}: {reason}")]
    InvalidParameter {
        /// Position of the node in the graph.
        node: usize,
        /// The node's type (`compressor`, `limiter`, …).
        kind: &'static str,
        /// The parameter.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The audio format is outside what the processors support.
    #[error("unsupported audio format: {0}")]
    UnsupportedFormat(String),
    /// A graph document could not be parsed.
    #[error("cannot read the DSP graph: {0}")]
    Parse(String),
}
