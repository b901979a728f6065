//! Each processor, and the full SPEC.md chain, on stereo 48 kHz audio in 1024-frame blocks.
//!
//! The audio is synthesized here from a seeded generator, identical on every machine: 4.096 s
//! (192 blocks) of something music-like — a bass line and chords that change every half second,
//! a kick every beat, pink-ish noise for cymbals, and phrases that swell and fall by about 20 dB
//! — so that the gain stages, compressor and limiter all have work to do. The ducking bench keys
//! on a "microphone" of syllable-like noise bursts, one second of talk and one of pause.
//!
//! One iteration runs the whole clip through the processor, one block at a time: each block is
//! copied from the clip into a scratch buffer (8 KiB, a negligible share of the time) and
//! processed in place. Processors are prepared once and keep their state across iterations, as
//! they do on air; `process` never allocates, so what is timed is the DSP alone.
//!
//! Criterion reports throughput in frames per second (`thrpt: … Melem/s`, one element being one
//! stereo frame). **× real time on one core = frames per second / 48,000**: 24 Melem/s is
//! 500× real time, the target for `full_chain`.
//!
//! - `processors/normalize_live`: `LoudnessNormalizer` with no track loudness (sliding gated
//!   measurement, slewed gain, true-peak ceiling).
//! - `processors/normalize_track`: `LoudnessNormalizer` with the item's loudness known.
//! - `processors/agc`, `processors/compressor`, `processors/limiter`: `AutoGain`,
//!   `DynamicsCompressor`, `TruePeakLimiter`, with default parameters.
//! - `processors/ducking`: `Ducker::process_with_sidechain` under the microphone.
//! - `processors/silence`: `SilenceWatch` (audio passes through unchanged).
//! - `processors/meter`: `Meter::add` (momentary, short-term, integrated, range, true peak).
//! - `processors/full_chain_track`: the same chain with a track loudness set, as in file
//!   playout (the normalizer then runs no meter of its own).
//! - `processors/full_chain`: `Chain::new(&DspGraph::broadcast_default())`: normalize, AGC,
//!   compressor, limiter, silence detector.
//!
//! ```text
//! cargo bench -p grimnir-dsp --bench processors -- --warm-up-time 2 --measurement-time 5
//! ```
//!
//! CPU time against ffmpeg's `loudnorm,acompressor,alimiter` on an hour of audio is measured by
//! `benches/dsp-vs-ffmpeg.sh` at the repository root.

use std::f32::consts::TAU;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use grimnir_dsp::{
    Agc, AudioSpec, AutoGain, Chain, Compressor, DspGraph, Ducker, Ducking, DynamicsCompressor,
    Limiter, LoudnessNormalize, LoudnessNormalizer, Meter, Processor, SilenceDetector,
    SilenceWatch, TruePeakLimiter,
};

const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
const BLOCK_FRAMES: usize = 1024;
const CLIP_BLOCKS: usize = 192;
const CLIP_FRAMES: usize = BLOCK_FRAMES * CLIP_BLOCKS;
const SEED: u64 = 0x0067_7269_6d6e_6972;

/// SplitMix64: a tiny seeded generator whose sequence can never change under us.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn bipolar(&mut self) -> f32 {
        // The top 24 bits fill an f32 mantissa exactly.
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Pink-ish noise: Paul Kellet's economy filter over white noise.
struct PinkNoise {
    b: [f32; 3],
}

impl PinkNoise {
    fn next(&mut self, white: f32) -> f32 {
        self.b[0] = 0.99765 * self.b[0] + white * 0.099_046;
        self.b[1] = 0.963 * self.b[1] + white * 0.296_516_4;
        self.b[2] = 0.57 * self.b[2] + white * 1.052_691_3;
        (self.b[0] + self.b[1] + self.b[2] + white * 0.1848) * 0.2
    }
}

fn db(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// The music clip, interleaved stereo.
fn music(seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let mut pink = [PinkNoise { b: [0.0; 3] }, PinkNoise { b: [0.0; 3] }];
    let rate = RATE as f32;
    // A minor-ish progression, one chord per half second: root frequencies in Hz.
    let roots = [110.0f32, 87.31, 130.81, 98.0, 110.0, 146.83, 130.81, 123.47];
    let beat = RATE as usize / 2;
    let mut out = Vec::with_capacity(CLIP_FRAMES * CHANNELS);
    for i in 0..CLIP_FRAMES {
        let t = i as f32 / rate;
        let root = roots[(i / beat) % roots.len()];
        let in_beat = (i % beat) as f32 / rate;
        // Phrases swell and fall by ~20 dB over two seconds.
        let phrase = db(-20.0 * (0.5 - 0.5 * (TAU * t / 2.048).cos()));
        let bass = 0.35 * (TAU * root * 0.5 * t).sin();
        let chord = 0.12
            * ((TAU * root * 2.0 * t).sin()
                + (TAU * root * 2.0 * 1.189 * t).sin()
                + (TAU * root * 3.0 * t).sin());
        // Kick: a falling sine with a fast decay at each beat.
        let kick = 0.6
            * (-in_beat * 30.0).exp()
            * (TAU * (50.0 + 80.0 * (-in_beat * 40.0).exp()) * in_beat).sin();
        let hat_env = (-((i % (beat / 2)) as f32 / rate) * 60.0).exp();
        let mut frame = [0f32; CHANNELS];
        for (ch, x) in frame.iter_mut().enumerate() {
            let hat = 0.25 * hat_env * pink[ch].next(rng.bipolar());
            // Chords panned a little apart so the channels differ.
            let pan = if ch == 0 { 1.1 } else { 0.9 };
            *x = phrase * (bass + pan * chord + kick + hat);
        }
        out.extend_from_slice(&frame);
    }
    out
}

/// The microphone clip: syllables of noise at ~5 Hz for a second, then a second of pause.
fn microphone(seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let rate = RATE as f32;
    let mut out = Vec::with_capacity(CLIP_FRAMES * CHANNELS);
    for i in 0..CLIP_FRAMES {
        let t = i as f32 / rate;
        let talking = (t % 2.0) < 1.0;
        let syllable = (TAU * 5.0 * t).sin().max(0.0);
        let x = if talking {
            0.3 * syllable * rng.bipolar()
        } else {
            0.001 * rng.bipolar()
        };
        out.extend_from_slice(&[x; CHANNELS]);
    }
    out
}

/// Benchmarks `process_block` over the whole clip, one copied block at a time.
fn bench_blocks(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    clip: &[f32],
    mut process_block: impl FnMut(&mut [f32], usize),
) {
    let mut block = vec![0f32; BLOCK_FRAMES * CHANNELS];
    group.bench_function(name, |b| {
        b.iter(|| {
            for (n, input) in clip.chunks_exact(block.len()).enumerate() {
                block.copy_from_slice(input);
                process_block(&mut block, n);
                black_box(&mut block);
            }
        });
    });
}

fn prepared<P: Processor>(mut p: P, spec: AudioSpec) -> P {
    p.prepare(spec).expect("48 kHz stereo is supported");
    p
}

fn processors(c: &mut Criterion) {
    let spec = AudioSpec::new(RATE, CHANNELS).expect("48 kHz stereo is valid");
    let clip = music(SEED);
    let mic = microphone(SEED ^ 1);

    let mut group = c.benchmark_group("processors");
    group.throughput(Throughput::Elements(CLIP_FRAMES as u64));

    let mut p = prepared(LoudnessNormalizer::new(LoudnessNormalize::default()), spec);
    bench_blocks(&mut group, "normalize_live", &clip, |b, _| p.process(b));

    let mut p = prepared(LoudnessNormalizer::new(LoudnessNormalize::default()), spec);
    p.set_track_loudness(Some(-11.0));
    bench_blocks(&mut group, "normalize_track", &clip, |b, _| p.process(b));

    let mut p = prepared(AutoGain::new(Agc::default()), spec);
    bench_blocks(&mut group, "agc", &clip, |b, _| p.process(b));

    let mut p = prepared(DynamicsCompressor::new(Compressor::default()), spec);
    bench_blocks(&mut group, "compressor", &clip, |b, _| p.process(b));

    let mut p = prepared(TruePeakLimiter::new(Limiter::default()), spec);
    bench_blocks(&mut group, "limiter", &clip, |b, _| p.process(b));

    let mut p = prepared(Ducker::new(Ducking::default()), spec);
    let mic_blocks: Vec<&[f32]> = mic.chunks_exact(BLOCK_FRAMES * CHANNELS).collect();
    bench_blocks(&mut group, "ducking", &clip, |b, n| {
        p.process_with_sidechain(b, mic_blocks[n]);
    });

    let mut p = prepared(SilenceWatch::new(SilenceDetector::default()), spec);
    bench_blocks(&mut group, "silence", &clip, |b, _| {
        p.process(b);
        // Music never fires it, but a caller would poll after each block.
        black_box(p.take_event());
    });

    let mut meter = Meter::new(spec).expect("48 kHz stereo is supported");
    bench_blocks(&mut group, "meter", &clip, |b, _| meter.add(b));

    // Tens of milliseconds per iteration: fewer samples keep the run within the measurement time.
    group.sample_size(50);
    let chain = Chain::new(&DspGraph::broadcast_default()).expect("the default graph is valid");
    let mut chain = prepared(chain, spec);
    bench_blocks(&mut group, "full_chain", &clip, |b, _| {
        chain.process(b);
        black_box(chain.take_silence_event());
    });

    // File playout: the item's analysed loudness is known, so the normalizer needs no meter.
    let mut track = Chain::new(&DspGraph::broadcast_default()).expect("the default graph is valid");
    track.set_track_loudness(Some(-14.0));
    let mut track = prepared(track, spec);
    bench_blocks(&mut group, "full_chain_track", &clip, |b, _| {
        track.process(b);
        black_box(track.take_silence_event());
    });

    group.finish();
}

criterion_group!(benches, processors);
criterion_main!(benches);
