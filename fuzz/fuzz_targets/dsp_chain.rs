//! A `grimnir-dsp` chain built from the input, then fed hostile audio: every output sample must
//! be finite, and draining the silence events must end.
//!
//! Input layout: byte 0 picks the mode.
//!
//! - Even: **text**. The graph document (YAML, else JSON) runs up to the first `0x00` byte;
//!   the bytes after it are the run (below). Most inputs stop in the parser; that is its test.
//! - Odd: **structured**. A graph is built from the bytes as data (node kinds and parameter
//!   values, out-of-range and non-finite ones included) and checked with `validate()`; a valid
//!   graph goes on to the run. Most inputs reach the processors.
//!
//! The run: 1 byte sample rate (8 000 to 192 000 Hz), 1 byte channels (1 to 8), 2 bytes block
//! size in samples (0 and sizes that are not whole frames included: the whole frames of each block
//! must come out finite, a trailing partial frame unchanged), 1 byte of flags (sidechain
//! and its length, whether to set a track loudness), 8 bytes of `f64` track loudness, then the
//! samples as little-endian `f32` (any bit pattern: NaN, infinities, denormals, huge values).
//!
//! Parsing and validation errors are fine; a panic or a non-finite output sample is a finding,
//! whatever the graph holds (the chain sanitizes its input, so even an empty graph emits only
//! finite audio).

#![no_main]

use grimnir_dsp::{
    Agc, AudioSpec, Chain, Compressor, DspGraph, Ducking, Limiter, LoudnessNormalize, Node,
    Processor, SilenceAction, SilenceDetector, SilenceWatch, sanitize,
};
use libfuzzer_sys::fuzz_target;

const RATES: [u32; 6] = [8_000, 22_050, 44_100, 48_000, 96_000, 192_000];
/// Longer graphs only make a run slower, not more interesting.
const MAX_NODES: usize = 16;
/// Bytes of the run's header before the samples.
const HEADER: usize = 13;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        text_mode(rest);
    } else {
        structured_mode(rest);
    }
});

fn text_mode(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (doc, run_bytes) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok(text) = std::str::from_utf8(doc) else {
        return;
    };
    let graph = match DspGraph::from_yaml(text) {
        Ok(g) => g,
        Err(_) => match DspGraph::from_json(text) {
            Ok(g) => g,
            Err(_) => return,
        },
    };
    // What the parser accepted, validation must accept.
    assert!(
        graph.validate().is_ok(),
        "from_yaml/from_json accepted an invalid graph"
    );
    if graph.nodes.len() <= MAX_NODES {
        run(&graph, run_bytes);
    }
}

/// Reads bytes one at a time, with zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// A parameter value: mostly inside `lo..=hi`, sometimes at or just past its edges, or not
    /// a number at all.
    fn param(&mut self, lo: f64, hi: f64) -> f64 {
        let b = self.byte();
        match b {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => lo,
            4 => hi,
            5 => lo - 1e-9,
            6 => hi + 1e-9,
            7 => -0.0,
            8 => f64::MAX,
            9 => f64::MIN_POSITIVE,
            10 => lo - 1.0,
            11 => hi * 2.0 + 1.0,
            _ => lo + (hi - lo) * f64::from(b - 12) / 243.0,
        }
    }
}

fn structured_mode(data: &[u8]) {
    let mut b = Bytes(data);
    let count = usize::from(b.byte() % 7);
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        let node = match b.byte() % 6 {
            0 => Node::LoudnessNormalize(LoudnessNormalize {
                target_lufs: b.param(-70.0, 0.0),
                true_peak_limit_dbtp: b.param(-20.0, 0.0),
                integrated_window_sec: b.param(0.4, 600.0),
                max_gain_db: b.param(0.0, 40.0),
            }),
            1 => Node::Agc(Agc {
                enabled: b.byte() % 2 == 0,
                target_level_db: b.param(-60.0, 0.0),
                max_gain_db: b.param(0.0, 40.0),
                attack_ms: b.param(0.0, 10_000.0),
                release_ms: b.param(0.0, 60_000.0),
            }),
            2 => Node::Compressor(Compressor {
                threshold_db: b.param(-80.0, 0.0),
                ratio: b.param(1.0, 100.0),
                knee_db: b.param(0.0, 48.0),
                attack_ms: b.param(0.0, 1000.0),
                release_ms: b.param(0.0, 10_000.0),
                makeup_gain_db: b.param(-24.0, 40.0),
                stereo_link: b.byte() % 2 == 0,
            }),
            3 => Node::Limiter(Limiter {
                threshold_db: b.param(-30.0, 0.0),
                lookahead_ms: b.param(0.5, 50.0),
                release_ms: b.param(1.0, 10_000.0),
            }),
            4 => Node::Ducking(Ducking {
                amount_db: b.param(-60.0, 0.0),
                threshold_db: b.param(-90.0, 0.0),
                attack_ms: b.param(0.0, 10_000.0),
                release_ms: b.param(0.0, 60_000.0),
            }),
            _ => Node::SilenceDetector(SilenceDetector {
                threshold_db: b.param(-120.0, 0.0),
                duration_sec: b.param(0.1, 3600.0),
                action: if b.byte() % 2 == 0 {
                    SilenceAction::FailoverToFallback
                } else {
                    SilenceAction::Notify
                },
            }),
        };
        nodes.push(node);
    }
    let graph = DspGraph { nodes };
    match graph.validate() {
        Ok(()) => {
            assert!(
                Chain::new(&graph).is_ok(),
                "validate() and Chain::new disagree"
            );
            run(&graph, b.0);
        }
        Err(_) => assert!(
            Chain::new(&graph).is_err(),
            "Chain::new accepted a graph validate() refused"
        ),
    }
}

/// Runs `graph` on the audio described by `data` (see the top of the file).
fn run(graph: &DspGraph, data: &[u8]) {
    if data.len() < HEADER {
        return;
    }
    let (header, samples) = data.split_at(HEADER);
    let rate = RATES[usize::from(header[0]) % RATES.len()];
    let channels = usize::from(header[1] % 8) + 1;
    let block = usize::from(u16::from_le_bytes([header[2], header[3]]));
    let flags = header[4];
    let lufs = f64::from_le_bytes(header[5..13].try_into().expect("8 bytes"));
    let spec = AudioSpec::new(rate, channels).expect("rates and channels in range");

    // A graph of silence detectors only (or none) must pass whole frames through exactly as
    // the chain's own sanitizing leaves them.
    let passthrough = graph
        .nodes
        .iter()
        .all(|n| matches!(n, Node::SilenceDetector(_)));
    let mut chain = Chain::new(graph).expect("the graph was validated");
    chain
        .prepare(spec)
        .expect("every processor prepares for a valid format");
    // Track mode with any value (NaN and infinities included), or live mode.
    if flags & 1 != 0 {
        chain.set_track_loudness(Some(lufs));
    }
    let mut audio: Vec<f32> = samples
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // The microphone: the same samples reversed, as long as the block, shorter, or longer.
    let mic_all: Vec<f32> = audio.iter().rev().copied().collect();
    let sidechain = flags & 2 != 0;
    let mic_len = |n: usize| match (flags >> 2) & 3 {
        0 => n,
        1 => n / 2,
        2 => n.saturating_sub(1),
        _ => n + channels + 1,
    };

    // Block size 0 would make no progress: process one empty block, then whole input at once.
    let step = if block == 0 {
        chain.process(&mut []);
        chain.process_with_sidechain(&mut [], Some(&[]));
        audio.len().max(1)
    } else {
        block
    };
    let mut pos = 0;
    let mut blocks = 0usize;
    while pos < audio.len() {
        let end = (pos + step).min(audio.len());
        let chunk = &mut audio[pos..end];
        // A block holds whole frames (the `Processor` contract); a trailing partial frame is
        // documented to be left as it is, NaN included.
        let whole = chunk.len() - chunk.len() % channels;
        let partial: Vec<u32> = chunk[whole..].iter().map(|x| x.to_bits()).collect();
        if sidechain {
            let want = mic_len(chunk.len());
            let mic = &mic_all[pos.min(mic_all.len())..(pos + want).min(mic_all.len())];
            chain.process_with_sidechain(chunk, Some(mic));
        } else {
            chain.process(chunk);
        }
        for (i, x) in chunk[..whole].iter().enumerate() {
            assert!(
                x.is_finite(),
                "sample {} is {x} ({rate} Hz, {channels} ch, block {block}, sidechain {sidechain})",
                pos + i
            );
        }
        if passthrough {
            let input = samples[4 * pos..4 * (pos + whole)]
                .chunks_exact(4)
                .map(|c| sanitize(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_bits());
            assert!(
                chunk[..whole].iter().map(|x| x.to_bits()).eq(input),
                "silence detectors changed the audio"
            );
        }
        assert!(
            chunk[whole..].iter().map(|x| x.to_bits()).eq(partial),
            "a trailing partial frame was changed (block {block}, {channels} ch)"
        );
        blocks += 1;
        // Halfway, a live parameter update with the same graph, and a new item's loudness.
        if blocks == 2 {
            chain.update(graph).expect("updating with the same graph");
            chain.set_track_loudness(if flags & 16 != 0 { Some(lufs) } else { None });
        }
        drain_silence_events(&mut chain, graph);
        pos = end;
    }
    chain.reset();
    let mut tail = vec![0.0f32; channels * 64];
    chain.process(&mut tail);
    assert!(tail.iter().all(|x| x.is_finite()), "non-finite after reset");
    drain_silence_events(&mut chain, graph);
}

/// Takes every queued silence event; the queue is bounded, so this must end.
fn drain_silence_events(chain: &mut Chain, graph: &DspGraph) {
    let watches = graph
        .nodes
        .iter()
        .filter(|n| matches!(n, Node::SilenceDetector(_)))
        .count();
    let bound = watches * SilenceWatch::EVENT_CAPACITY;
    let mut taken = 0;
    while chain.take_silence_event().is_some() {
        taken += 1;
        assert!(
            taken <= bound,
            "more than {bound} silence events queued by {watches} watches"
        );
    }
}
