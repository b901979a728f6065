//! A graph of another shape replaces a running chain by a crossfade, not a jump.

// Test code: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

use grimnir_dsp::*;

const RATE: u32 = 48_000;

/// A stereo sine at `amplitude`, frames `from..from + frames`.
fn sine(from: usize, frames: usize, amplitude: f32) -> Vec<f32> {
    (from..from + frames)
        .flat_map(|i| {
            let v = amplitude
                * (2.0 * std::f64::consts::PI * 997.0 * i as f64 / f64::from(RATE)).sin() as f32;
            [v, -v]
        })
        .collect()
}

/// A heavy compressor: audibly different from passing the audio through.
fn squash() -> DspGraph {
    DspGraph {
        nodes: vec![Node::Compressor(Compressor {
            threshold_db: -30.0,
            ratio: 10.0,
            makeup_gain_db: 0.0,
            ..Compressor::default()
        })],
    }
}

/// Where two runs of samples first differ, if they do (without printing them whole).
fn first_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("worst difference {worst}");
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn prepared(graph: &DspGraph) -> Chain {
    let mut chain = Chain::new(graph).unwrap();
    chain.prepare(AudioSpec::new(RATE, 2).unwrap()).unwrap();
    chain
}

#[test]
fn another_shape_fades_from_the_old_chain_to_a_fresh_new_one() {
    let fade = 4_800; // 100 ms
    let before = 10_000;
    let after = 20_000;
    let input = sine(0, before + after, 0.5);
    let mut chain = prepared(&DspGraph { nodes: Vec::new() });
    // What the new graph alone makes of the audio from the switch on.
    let mut fresh = prepared(&squash());
    let mut alone = input[2 * before..].to_vec();
    fresh.process(&mut alone);

    let mut out = input.clone();
    // Blocks of an odd size, so the switch and the fade's chunks fall mid-block.
    let (head, tail) = out.split_at_mut(2 * before);
    for block in head.chunks_mut(2 * 333) {
        chain.process(block);
    }
    chain.replace(&squash(), fade).unwrap();
    assert!(chain.is_crossfading());
    for block in tail.chunks_mut(2 * 1_777) {
        chain.process(block);
    }
    assert!(!chain.is_crossfading(), "the fade ended");

    // Before the switch: the old (empty) graph, the input unchanged.
    assert_eq!(
        first_difference(&out[..2 * before], &input[..2 * before]),
        None
    );
    // During the fade: the raised-cosine blend of the old output and the new chain's.
    for k in 0..fade {
        let g = 0.5 - 0.5 * (std::f64::consts::PI * (k + 1) as f64 / fade as f64).cos();
        for c in 0..2 {
            let i = 2 * k + c;
            let want = g as f32 * alone[i] + (1.0 - g as f32) * input[2 * before + i];
            let got = out[2 * before + i];
            assert!((got - want).abs() < 1e-6, "frame {k}: {got} vs {want}");
        }
    }
    // After it: exactly what the new chain alone makes.
    assert_eq!(
        first_difference(&out[2 * (before + fade)..], &alone[2 * fade..]),
        None
    );
    // And no click: no step between frames larger than the sine's own largest step.
    let sine_step = 0.5 * 2.0 * std::f32::consts::PI * 997.0 / RATE as f32;
    let worst = out
        .chunks_exact(2)
        .zip(out.chunks_exact(2).skip(1))
        .map(|(a, b)| (b[0] - a[0]).abs())
        .fold(0f32, f32::max);
    assert!(worst <= sine_step * 1.01, "a step of {worst}");
}

#[test]
fn without_the_fade_the_switch_would_click() {
    // The same switch made by dropping the old chain: the check above would catch it.
    let input = sine(0, 20_000, 0.5);
    let mut out = input.clone();
    let mut squashed = prepared(&squash());
    // Let the compressor settle, then switch straight to the unprocessed input.
    squashed.process(&mut out[..2 * 10_000]);
    let sine_step = 0.5 * 2.0 * std::f32::consts::PI * 997.0 / RATE as f32;
    let worst = out
        .chunks_exact(2)
        .zip(out.chunks_exact(2).skip(1))
        .map(|(a, b)| (b[0] - a[0]).abs())
        .fold(0f32, f32::max);
    assert!(worst > sine_step * 1.5, "a jump of only {worst}");
}

#[test]
fn every_node_gives_the_same_output_whatever_the_block_sizes() {
    // The crossfade cuts blocks into chunks of its own; that must not change the sound, nor
    // may the block sizes GStreamer happens to deliver.
    let graph = DspGraph {
        nodes: vec![
            Node::LoudnessNormalize(LoudnessNormalize::default()),
            Node::Agc(Agc::default()),
            Node::Compressor(Compressor::default()),
            Node::Ducking(Ducking::default()),
            Node::Limiter(Limiter::default()),
            Node::SilenceDetector(SilenceDetector::default()),
        ],
    };
    // Quiet, then loud, then a silence, then loud again; a microphone for the ducker.
    let mut input = sine(0, 48_000, 0.02);
    input.extend(sine(48_000, 48_000, 0.9));
    input.extend(vec![0.0; 2 * 24_000]);
    input.extend(sine(120_000, 48_000, 0.5));
    let mic: Vec<f32> = (0..input.len())
        .map(|i| {
            if (60_000..90_000).contains(&(i / 2)) {
                0.3
            } else {
                0.0
            }
        })
        .collect();
    let run = |sizes: &[usize]| {
        let mut chain = prepared(&graph);
        let mut out = input.clone();
        let mut at = 0;
        for &size in sizes.iter().cycle() {
            if at >= out.len() {
                break;
            }
            let end = (at + 2 * size).min(out.len());
            chain.process_with_sidechain(&mut out[at..end], Some(&mic[at..end]));
            at = end;
        }
        out
    };
    let whole = run(&[input.len()]);
    for sizes in [&[1024][..], &[333, 1, 4_801, 64], &[1]] {
        assert_eq!(
            first_difference(&run(sizes), &whole),
            None,
            "blocks {sizes:?}"
        );
    }
}

#[test]
fn the_same_shape_glides_and_a_bad_graph_changes_nothing() {
    let mut chain = prepared(&squash());
    let mut gentler = squash();
    if let Node::Compressor(c) = &mut gentler.nodes[0] {
        c.ratio = 2.0;
    }
    chain.replace(&gentler, 4_800).unwrap();
    assert!(!chain.is_crossfading(), "same shape: updated in place");

    let mut bad = squash();
    if let Node::Compressor(c) = &mut bad.nodes[0] {
        c.ratio = -1.0;
    }
    assert!(chain.replace(&bad, 4_800).is_err());
    assert!(!chain.is_crossfading());
}

#[test]
fn a_new_shape_inherits_the_track_loudness_and_a_second_switch_cuts_the_first_fade() {
    let normalize = DspGraph {
        nodes: vec![Node::LoudnessNormalize(LoudnessNormalize::default())],
    };
    let mut chain = prepared(&DspGraph { nodes: Vec::new() });
    chain.set_track_loudness(Some(-30.0));
    chain.replace(&normalize, 4_800).unwrap();
    let mut block = sine(0, 4_800 + 48_000, 0.05);
    chain.process(&mut block);
    // A fresh normalizer told the same loudness, over the same audio after the fade.
    let mut reference = prepared(&normalize);
    reference.set_track_loudness(Some(-30.0));
    let mut alone = sine(0, 4_800 + 48_000, 0.05);
    reference.process(&mut alone);
    assert_eq!(
        first_difference(&block[2 * 4_800..], &alone[2 * 4_800..]),
        None
    );

    // Two switches in a row: the second fades from the chain that was fading in.
    chain.replace(&squash(), 48_000).unwrap();
    chain.replace(&DspGraph { nodes: Vec::new() }, 480).unwrap();
    let mut rest = sine(0, 1_000, 0.5);
    chain.process(&mut rest);
    assert!(!chain.is_crossfading());
    assert_eq!(
        first_difference(&rest[2 * 480..], &sine(480, 520, 0.5)),
        None
    );
}
