//! The DSP graph model: SPEC.md's example parses with its defaults, and impossible values are
//! refused with an error naming node, field and value.

// Test helpers may unwrap: a failure is a failing test.
#![allow(clippy::unwrap_used)]

use grimnir_dsp::*;

/// The `dsp_graph` block of SPEC.md's example station configuration.
const SPEC_EXAMPLE: &str = r#"
nodes:
  - type: loudness_normalize
    config:
      target_lufs: -16.0
      true_peak_limit_dbtp: -1.0
      integrated_window_sec: 3.0
  - type: agc
    config:
      enabled: true
      target_level_db: -14.0
      max_gain_db: 12.0
      attack_ms: 10
      release_ms: 100
  - type: compressor
    config:
      threshold_db: -20.0
      ratio: 3.0
      knee_db: 6.0
      attack_ms: 5
      release_ms: 50
      makeup_gain_db: 2.0
  - type: limiter
    config:
      threshold_db: -1.0
      lookahead_ms: 5
      release_ms: 10
  - type: silence_detector
    config:
      threshold_db: -40.0
      duration_sec: 5.0
      action: failover_to_fallback
"#;

#[test]
fn spec_example_parses_to_the_defaults() {
    let graph = DspGraph::from_yaml(SPEC_EXAMPLE).unwrap();
    assert_eq!(graph, DspGraph::broadcast_default());
    let kinds: Vec<&str> = graph.nodes.iter().map(Node::kind).collect();
    assert_eq!(
        kinds,
        [
            "loudness_normalize",
            "agc",
            "compressor",
            "limiter",
            "silence_detector"
        ]
    );
}

#[test]
fn config_may_be_partial_or_absent() {
    let graph = DspGraph::from_yaml(
        "nodes:\n  - type: limiter\n  - type: compressor\n    config: { ratio: 4 }\n",
    )
    .unwrap();
    assert_eq!(graph.nodes[0], Node::Limiter(Limiter::default()));
    assert_eq!(
        graph.nodes[1],
        Node::Compressor(Compressor {
            ratio: 4.0,
            ..Compressor::default()
        })
    );
}

#[test]
fn json_round_trip() {
    let graph = DspGraph::broadcast_default();
    let json = serde_json::to_string(&graph).unwrap();
    assert_eq!(DspGraph::from_json(&json).unwrap(), graph);
}

fn refused(yaml: &str) -> String {
    DspGraph::from_yaml(yaml).unwrap_err().to_string()
}

#[test]
fn impossible_values_name_node_field_and_value() {
    let err =
        refused("nodes:\n  - type: limiter\n  - type: compressor\n    config: { ratio: 0.5 }\n");
    assert_eq!(
        err,
        "nodes[1] (compressor).ratio = 0.5: a ratio of at least 1 (1 to 100)"
    );
    let err = refused("nodes:\n  - type: agc\n    config: { attack_ms: -3 }\n");
    assert!(err.starts_with("nodes[0] (agc).attack_ms = -3"), "{err}");
    let err = refused("nodes:\n  - type: compressor\n    config: { threshold_db: 3 }\n");
    assert!(
        err.starts_with("nodes[0] (compressor).threshold_db = 3"),
        "{err}"
    );
    let err = refused("nodes:\n  - type: limiter\n    config: { threshold_db: .nan }\n");
    assert!(
        err.starts_with("nodes[0] (limiter).threshold_db = NaN"),
        "{err}"
    );
}

#[test]
fn unknown_types_and_fields_are_refused() {
    let err = refused("nodes:\n  - type: reverb\n");
    assert!(
        err.contains("reverb") && err.contains("loudness_normalize"),
        "{err}"
    );
    let err = refused("nodes:\n  - type: limiter\n    config: { treshold_db: -1 }\n");
    assert!(err.contains("treshold_db"), "{err}");
    // The error names the node at fault, in YAML and in JSON.
    let err =
        refused("nodes:\n  - type: agc\n  - type: limiter\n    config: { treshold_db: -1 }\n");
    assert!(
        err.starts_with("cannot read the DSP graph: nodes[1] (limiter): ")
            && err.contains("treshold_db"),
        "{err}"
    );
    let err = DspGraph::from_json(
        r#"{"nodes": [{"type": "agc"}, {"type": "compressor"}, {"type": "delay"}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nodes[2] (delay): ") && err.contains("delay"),
        "{err}"
    );
}

#[test]
fn audio_formats_outside_the_supported_range_are_refused() {
    assert!(AudioSpec::new(48_000, 2).is_ok());
    assert!(
        AudioSpec::new(7_999, 2)
            .unwrap_err()
            .to_string()
            .contains("7999 Hz")
    );
    assert!(AudioSpec::new(192_001, 2).is_err());
    assert!(AudioSpec::new(48_000, 0).is_err());
    assert!(
        AudioSpec::new(48_000, 9)
            .unwrap_err()
            .to_string()
            .contains("9 channels")
    );
}
