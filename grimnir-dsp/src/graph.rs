//! The DSP graph model: an ordered chain of nodes with their parameters, as in a station file.
//!
//! ```yaml
//! nodes:
//!   - type: loudness_normalize
//!     config: { target_lufs: -16.0, true_peak_limit_dbtp: -1.0, integrated_window_sec: 3.0 }
//!   - type: compressor
//!     config: { threshold_db: -20.0, ratio: 3.0, knee_db: 6.0, attack_ms: 5, release_ms: 50 }
//!   - type: limiter
//!     config: { threshold_db: -1.0, lookahead_ms: 5, release_ms: 10 }
//! ```
//!
//! Every parameter has the default of SPEC.md's example configuration, so `config` may be left
//! out or given in part. [`DspGraph::validate`] refuses impossible values with an error naming
//! the node, the field and the value.

use crate::DspError;

/// An ordered chain of processing nodes.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct DspGraph {
    /// The nodes, in signal order.
    pub nodes: Vec<Node>,
}

/// One processing node.
///
/// In a file: `{ type: compressor, config: { ratio: 4 } }`; `config` may be partial or absent.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(from = "NodeFile", into = "NodeFile"))]
#[non_exhaustive]
pub enum Node {
    /// Brings programme loudness to a target (EBU R128 / ATSC A/85).
    LoudnessNormalize(LoudnessNormalize),
    /// Automatic gain control toward a level.
    Agc(Agc),
    /// Dynamic range compression.
    Compressor(Compressor),
    /// Look-ahead true-peak limiter.
    Limiter(Limiter),
    /// Music under a microphone.
    Ducking(Ducking),
    /// Dead-air detection.
    SilenceDetector(SilenceDetector),
}

/// The file form of a [`Node`]: internally tagged by `type`, so that a missing `config` can
/// take the defaults (adjacent tagging cannot).
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum NodeFile {
    LoudnessNormalize {
        #[serde(default)]
        config: LoudnessNormalize,
    },
    Agc {
        #[serde(default)]
        config: Agc,
    },
    Compressor {
        #[serde(default)]
        config: Compressor,
    },
    Limiter {
        #[serde(default)]
        config: Limiter,
    },
    Ducking {
        #[serde(default)]
        config: Ducking,
    },
    SilenceDetector {
        #[serde(default)]
        config: SilenceDetector,
    },
}

#[cfg(feature = "serde")]
impl From<NodeFile> for Node {
    fn from(f: NodeFile) -> Node {
        match f {
            NodeFile::LoudnessNormalize { config } => Node::LoudnessNormalize(config),
            NodeFile::Agc { config } => Node::Agc(config),
            NodeFile::Compressor { config } => Node::Compressor(config),
            NodeFile::Limiter { config } => Node::Limiter(config),
            NodeFile::Ducking { config } => Node::Ducking(config),
            NodeFile::SilenceDetector { config } => Node::SilenceDetector(config),
        }
    }
}

#[cfg(feature = "serde")]
impl From<Node> for NodeFile {
    fn from(n: Node) -> NodeFile {
        match n {
            Node::LoudnessNormalize(config) => NodeFile::LoudnessNormalize { config },
            Node::Agc(config) => NodeFile::Agc { config },
            Node::Compressor(config) => NodeFile::Compressor { config },
            Node::Limiter(config) => NodeFile::Limiter { config },
            Node::Ducking(config) => NodeFile::Ducking { config },
            Node::SilenceDetector(config) => NodeFile::SilenceDetector { config },
        }
    }
}

impl Node {
    /// The node's type as written in files.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::LoudnessNormalize(_) => "loudness_normalize",
            Node::Agc(_) => "agc",
            Node::Compressor(_) => "compressor",
            Node::Limiter(_) => "limiter",
            Node::Ducking(_) => "ducking",
            Node::SilenceDetector(_) => "silence_detector",
        }
    }
}

/// Parameters of [`Node::LoudnessNormalize`].
///
/// With a track's analysed loudness known (what the media library stores), the gain is set per
/// track; for sources of unknown loudness (live DJs, webstreams) it follows a sliding integrated
/// measurement over `integrated_window_sec`, smoothed so no step is audible.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct LoudnessNormalize {
    /// Target integrated loudness, LUFS.
    pub target_lufs: f64,
    /// True-peak ceiling, dBTP.
    pub true_peak_limit_dbtp: f64,
    /// Window of the sliding measurement for sources of unknown loudness, seconds.
    pub integrated_window_sec: f64,
    /// Most gain ever applied, dB (quiet passages are not pumped up without bound).
    pub max_gain_db: f64,
}

impl Default for LoudnessNormalize {
    fn default() -> Self {
        LoudnessNormalize {
            target_lufs: -16.0,
            true_peak_limit_dbtp: -1.0,
            integrated_window_sec: 3.0,
            max_gain_db: 12.0,
        }
    }
}

/// Parameters of [`Node::Agc`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Agc {
    /// Whether the node acts (a disabled node passes audio unchanged).
    pub enabled: bool,
    /// Level aimed for, dBFS RMS.
    pub target_level_db: f64,
    /// Most gain applied, dB.
    pub max_gain_db: f64,
    /// How fast gain falls when the level rises, ms.
    pub attack_ms: f64,
    /// How fast gain rises when the level falls, ms.
    pub release_ms: f64,
}

impl Default for Agc {
    fn default() -> Self {
        Agc {
            enabled: true,
            target_level_db: -14.0,
            max_gain_db: 12.0,
            attack_ms: 10.0,
            release_ms: 100.0,
        }
    }
}

/// Parameters of [`Node::Compressor`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Compressor {
    /// Level above which gain is reduced, dBFS.
    pub threshold_db: f64,
    /// Input dB above threshold per output dB (3 = 3:1).
    pub ratio: f64,
    /// Width of the soft knee around the threshold, dB.
    pub knee_db: f64,
    /// ms.
    pub attack_ms: f64,
    /// ms.
    pub release_ms: f64,
    /// Gain added after compression, dB.
    pub makeup_gain_db: f64,
    /// One gain for all channels (keeps the stereo image).
    pub stereo_link: bool,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor {
            threshold_db: -20.0,
            ratio: 3.0,
            knee_db: 6.0,
            attack_ms: 5.0,
            release_ms: 50.0,
            makeup_gain_db: 2.0,
            stereo_link: true,
        }
    }
}

/// Parameters of [`Node::Limiter`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Limiter {
    /// The ceiling the output never exceeds, dBTP.
    pub threshold_db: f64,
    /// How far ahead the limiter looks, ms (it delays the audio by as much).
    pub lookahead_ms: f64,
    /// ms.
    pub release_ms: f64,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            threshold_db: -1.0,
            lookahead_ms: 5.0,
            release_ms: 10.0,
        }
    }
}

/// Parameters of [`Node::Ducking`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Ducking {
    /// How far music goes down under the microphone, dB (negative).
    pub amount_db: f64,
    /// Microphone level that counts as speech, dBFS.
    pub threshold_db: f64,
    /// ms.
    pub attack_ms: f64,
    /// ms.
    pub release_ms: f64,
}

impl Default for Ducking {
    fn default() -> Self {
        Ducking {
            amount_db: -12.0,
            threshold_db: -40.0,
            attack_ms: 50.0,
            release_ms: 500.0,
        }
    }
}

/// What the station does when the silence detector fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SilenceAction {
    /// Report it, asking the station to switch to the fallback source (the detector only
    /// reports; the executor makes the switch).
    #[default]
    FailoverToFallback,
    /// Report it only.
    Notify,
}

/// Parameters of [`Node::SilenceDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct SilenceDetector {
    /// Level below which audio counts as silence, dBFS.
    pub threshold_db: f64,
    /// How long silence must last before it is reported, seconds.
    pub duration_sec: f64,
    /// What the station does about it.
    pub action: SilenceAction,
}

impl Default for SilenceDetector {
    fn default() -> Self {
        SilenceDetector {
            threshold_db: -40.0,
            duration_sec: 5.0,
            action: SilenceAction::FailoverToFallback,
        }
    }
}

/// Names the node being validated in any error.
struct Check {
    node: usize,
    kind: &'static str,
}

impl Check {
    /// Attack and release times: not negative, and at most the given milliseconds.
    fn times(
        &self,
        attack: f64,
        max_attack: f64,
        release: f64,
        max_release: f64,
    ) -> Result<(), DspError> {
        let what = "milliseconds, not negative";
        self.range("attack_ms", attack, 0.0, max_attack, what)?;
        self.range("release_ms", release, 0.0, max_release, what)
    }

    fn range(
        &self,
        field: &'static str,
        v: f64,
        lo: f64,
        hi: f64,
        what: &str,
    ) -> Result<(), DspError> {
        if v.is_finite() && (lo..=hi).contains(&v) {
            return Ok(());
        }
        Err(DspError::InvalidParameter {
            node: self.node,
            kind: self.kind,
            field,
            value: v.to_string(),
            reason: format!("{what} ({lo} to {hi})"),
        })
    }
}

impl DspGraph {
    /// The chain of SPEC.md's example station: loudness normalization, AGC, compressor,
    /// limiter and silence detector, with their default parameters.
    pub fn broadcast_default() -> DspGraph {
        DspGraph {
            nodes: vec![
                Node::LoudnessNormalize(LoudnessNormalize::default()),
                Node::Agc(Agc::default()),
                Node::Compressor(Compressor::default()),
                Node::Limiter(Limiter::default()),
                Node::SilenceDetector(SilenceDetector::default()),
            ],
        }
    }

    /// Checks every parameter of every node.
    pub fn validate(&self) -> Result<(), DspError> {
        for (node, n) in self.nodes.iter().enumerate() {
            let c = Check {
                node,
                kind: n.kind(),
            };
            match n {
                Node::LoudnessNormalize(p) => {
                    c.range(
                        "target_lufs",
                        p.target_lufs,
                        -70.0,
                        0.0,
                        "a loudness in LUFS",
                    )?;
                    c.range(
                        "true_peak_limit_dbtp",
                        p.true_peak_limit_dbtp,
                        -20.0,
                        0.0,
                        "a ceiling at or below 0 dBTP",
                    )?;
                    c.range(
                        "integrated_window_sec",
                        p.integrated_window_sec,
                        0.4,
                        600.0,
                        "seconds",
                    )?;
                    c.range("max_gain_db", p.max_gain_db, 0.0, 40.0, "dB of gain")?;
                }
                Node::Agc(p) => {
                    c.range(
                        "target_level_db",
                        p.target_level_db,
                        -60.0,
                        0.0,
                        "a level at or below 0 dBFS",
                    )?;
                    c.range("max_gain_db", p.max_gain_db, 0.0, 40.0, "dB of gain")?;
                    c.times(p.attack_ms, 10_000.0, p.release_ms, 60_000.0)?;
                }
                Node::Compressor(p) => {
                    c.range(
                        "threshold_db",
                        p.threshold_db,
                        -80.0,
                        0.0,
                        "a threshold at or below 0 dBFS",
                    )?;
                    c.range("ratio", p.ratio, 1.0, 100.0, "a ratio of at least 1")?;
                    c.range("knee_db", p.knee_db, 0.0, 48.0, "dB")?;
                    c.times(p.attack_ms, 1000.0, p.release_ms, 10_000.0)?;
                    c.range("makeup_gain_db", p.makeup_gain_db, -24.0, 40.0, "dB")?;
                }
                Node::Limiter(p) => {
                    c.range(
                        "threshold_db",
                        p.threshold_db,
                        -30.0,
                        0.0,
                        "a ceiling at or below 0 dBTP",
                    )?;
                    c.range(
                        "lookahead_ms",
                        p.lookahead_ms,
                        0.5,
                        50.0,
                        "milliseconds of look-ahead",
                    )?;
                    c.range("release_ms", p.release_ms, 1.0, 10_000.0, "milliseconds")?;
                }
                Node::Ducking(p) => {
                    c.range(
                        "amount_db",
                        p.amount_db,
                        -60.0,
                        0.0,
                        "a reduction in dB (0 or negative)",
                    )?;
                    c.range(
                        "threshold_db",
                        p.threshold_db,
                        -90.0,
                        0.0,
                        "a level at or below 0 dBFS",
                    )?;
                    c.times(p.attack_ms, 10_000.0, p.release_ms, 60_000.0)?;
                }
                Node::SilenceDetector(p) => {
                    c.range(
                        "threshold_db",
                        p.threshold_db,
                        -120.0,
                        0.0,
                        "a level at or below 0 dBFS",
                    )?;
                    c.range("duration_sec", p.duration_sec, 0.1, 3600.0, "seconds")?;
                }
            }
        }
        Ok(())
    }

    /// Parses and validates a graph written in YAML.
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<DspGraph, DspError> {
        let graph: DspGraph = serde_yaml_ng::from_str(text).map_err(|e| {
            // Name the node at fault: serde's message has only a line and column.
            let node = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
                .ok()
                .and_then(|doc| {
                    let nodes = doc.get("nodes")?.as_sequence()?;
                    nodes.iter().enumerate().find_map(|(i, n)| {
                        serde_yaml_ng::from_value::<Node>(n.clone()).err()?;
                        Some((i, n.get("type").and_then(|t| t.as_str()).map(str::to_owned)))
                    })
                });
            parse_error(node, &e)
        })?;
        graph.validate()?;
        Ok(graph)
    }

    /// Parses and validates a graph written in JSON.
    #[cfg(feature = "json")]
    pub fn from_json(text: &str) -> Result<DspGraph, DspError> {
        let graph: DspGraph = serde_json::from_str(text).map_err(|e| {
            let node = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|doc| {
                    let nodes = doc.get("nodes")?.as_array()?;
                    nodes.iter().enumerate().find_map(|(i, n)| {
                        serde_json::from_value::<Node>(n.clone()).err()?;
                        Some((i, n.get("type").and_then(|t| t.as_str()).map(str::to_owned)))
                    })
                });
            parse_error(node, &e)
        })?;
        graph.validate()?;
        Ok(graph)
    }
}

/// A parse error, prefixed with the node it is in when that is known: `nodes[2] (limiter): …`.
#[cfg(any(feature = "yaml", feature = "json"))]
fn parse_error(node: Option<(usize, Option<String>)>, e: &dyn std::fmt::Display) -> DspError {
    DspError::Parse(match node {
        Some((i, Some(kind))) => format!("nodes[{i}] ({kind}): {e}"),
        Some((i, None)) => format!("nodes[{i}]: {e}"),
        None => e.to_string(),
    })
}
