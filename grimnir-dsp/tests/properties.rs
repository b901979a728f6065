//! The `Processor` contract under random parameters, formats and hostile input: for every
//! processor type and for random chains, whatever the samples (NaN, ±inf, huge, denormal) and
//! however they are cut into blocks, every output sample of a whole frame is finite, and once
//! the bad input is over, a second of a −20 dBFS sine comes out audible again.

// Test helpers may unwrap: a failure is a failing test.
#![allow(clippy::unwrap_used)]

use grimnir_dsp::*;
use proptest::prelude::*;

const RATES: [u32; 6] = [8_000, 22_050, 44_100, 48_000, 96_000, 192_000];

/// Seconds of hostile input before the recovery sine.
const HOSTILE_SEC: f64 = 0.1;

/// A processor under test, with a sidechain where it has one.
trait UnderTest {
    fn prepare(&mut self, spec: AudioSpec);
    fn run(&mut self, block: &mut [f32], mic: &[f32]);
}

impl UnderTest for Chain {
    fn prepare(&mut self, spec: AudioSpec) {
        Processor::prepare(self, spec).unwrap();
    }
    fn run(&mut self, block: &mut [f32], mic: &[f32]) {
        self.process_with_sidechain(block, Some(mic));
        while self.take_silence_event().is_some() {}
    }
}

/// A lone processor, fed through `Processor::process` (the ducker through its sidechain).
struct Lone<P>(P);

impl<P: Processor> UnderTest for Lone<P> {
    fn prepare(&mut self, spec: AudioSpec) {
        self.0.prepare(spec).unwrap();
    }
    fn run(&mut self, block: &mut [f32], _mic: &[f32]) {
        self.0.process(block);
    }
}

struct LoneDucker(Ducker);

impl UnderTest for LoneDucker {
    fn prepare(&mut self, spec: AudioSpec) {
        self.0.prepare(spec).unwrap();
    }
    fn run(&mut self, block: &mut [f32], mic: &[f32]) {
        self.0.process_with_sidechain(block, mic);
    }
}

/// xorshift64*: deterministic values from the case's seed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Values the contract says count as silence: not finite, or denormal.
const POISON: [f32; 6] = [
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    1.0e-40,
    -1.0e-42,
    -0.0,
];
/// Finite, but far beyond full scale.
const HUGE: [f32; 4] = [f32::MAX, -f32::MAX, 1.0e30, -1.0e6];

/// Noise at about −15 dBFS RMS with one sample in `bad_rate` replaced by a hostile value (from
/// [`POISON`], and from [`HUGE`] too if `huge`).
fn hostile(seed: u64, len: usize, bad_rate: u32, huge: bool) -> Vec<f32> {
    let mut n = Noise(seed | 1);
    (0..len)
        .map(|_| {
            let r = n.next();
            let pick = (r >> 32) as usize;
            if (r % u64::from(bad_rate)) != 0 {
                0.3 * n.unit()
            } else if huge && pick % 3 == 0 {
                HUGE[pick % HUGE.len()]
            } else {
                POISON[pick % POISON.len()]
            }
        })
        .collect()
}

/// What the contract says `hostile` means: poison values replaced by silence.
fn sanitized(audio: &[f32]) -> Vec<f32> {
    audio
        .iter()
        .map(|&x| if x.is_normal() { x } else { 0.0 })
        .collect()
}

/// One second of a 997 Hz sine with −20 dBFS peaks on every channel.
fn sine(spec: AudioSpec) -> Vec<f32> {
    let rate = spec.sample_rate() as usize;
    let amp = db_to_gain(-20.0) as f32;
    (0..rate)
        .flat_map(|i| {
            let x = amp * (std::f32::consts::TAU * 997.0 * i as f32 / rate as f32).sin();
            std::iter::repeat_n(x, spec.channels())
        })
        .collect()
}

/// Runs `audio` through `p` in blocks of `block` frames (plus, every other block, one
/// sample that is not a whole frame, to test that it is left alone), with `mic` as sidechain.
/// Asserts every whole frame comes out finite.
fn run_blocks(
    p: &mut dyn UnderTest,
    spec: AudioSpec,
    audio: &mut [f32],
    mic: &[f32],
    block: usize,
) -> Result<(), TestCaseError> {
    let ch = spec.channels();
    let mut pos = 0;
    let mut odd = false;
    while pos < audio.len() {
        let end = (pos + block * ch).min(audio.len());
        let chunk = &mut audio[pos..end];
        let mic = &mic[pos.min(mic.len())..end.min(mic.len())];
        p.run(chunk, mic);
        for (i, x) in chunk.iter().enumerate() {
            prop_assert!(x.is_finite(), "sample {} is {}", pos + i, x);
        }
        if odd && ch > 1 {
            // An empty block and a lone partial frame: both must be harmless no-ops.
            p.run(&mut [], &[]);
            let mut partial = [f32::NAN];
            p.run(&mut partial, &[]);
            prop_assert!(partial[0].is_nan(), "a partial frame was processed");
        }
        odd = !odd;
        pos = end;
    }
    Ok(())
}

/// The property. The hostile input comes out finite; then, after a second of a −20 dBFS sine,
/// the processor is where a twin fed the same input with the poison values replaced by zeros
/// is (bit for bit: bad samples never reached the state). Without huge values, the sine also
/// comes out audible (RMS of its last 100 ms above −120 dBFS); with them, a compressor with a
/// long release may legitimately still be holding a deep gain reduction.
fn check(
    make: &dyn Fn() -> Box<dyn UnderTest>,
    (rate, channels): (u32, usize),
    (seed, bad_rate, block): (u64, u32, usize),
    huge: bool,
    with_mic: bool,
) -> Result<(), TestCaseError> {
    let spec = AudioSpec::new(rate, channels).unwrap();
    let len = (HOSTILE_SEC * f64::from(rate)) as usize * channels;
    let input = hostile(seed, len, bad_rate, huge);
    let mic = if with_mic {
        hostile(seed.rotate_left(17), len, bad_rate, huge)
    } else {
        Vec::new()
    };
    let tone = sine(spec);
    let quiet_mic = vec![0.0; tone.len()];
    let mut tails = Vec::new();
    for (input, mic) in [
        (input.clone(), mic.clone()),
        (sanitized(&input), sanitized(&mic)),
    ] {
        let mut p = make();
        p.prepare(spec);
        let mut audio = input;
        run_blocks(p.as_mut(), spec, &mut audio, &mic, block)?;
        let mut out = tone.clone();
        run_blocks(p.as_mut(), spec, &mut out, &quiet_mic, block)?;
        tails.push(out[out.len() - out.len() / 10..].to_vec());
    }
    let bits = |t: &[f32]| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    prop_assert!(
        bits(&tails[0]) == bits(&tails[1]),
        "the bad samples changed the processor's state"
    );
    let tail = &tails[0];
    let rms = (tail.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
    let db = gain_to_db(rms);
    prop_assert!(
        huge || db > -120.0,
        "after the hostile input, the sine comes out at {db:.1} dBFS RMS"
    );
    Ok(())
}

/// A sample rate and 1–8 channels; at 96 and 192 kHz at most 2 channels, which keeps a debug
/// build's run short without leaving any rate or channel count untested.
fn format() -> impl Strategy<Value = (u32, usize)> {
    (prop::sample::select(RATES.to_vec()), 1usize..=8).prop_map(|(rate, channels)| {
        if rate > 48_000 {
            (rate, (channels - 1) % 2 + 1)
        } else {
            (rate, channels)
        }
    })
}

/// Input: seed, one hostile sample in `bad_rate`, block size in frames.
fn input() -> impl Strategy<Value = (u64, u32, usize)> {
    (any::<u64>(), 2u32..200, 1usize..3000)
}

/// Boxes a processor for [`check`].
fn boxed<P: UnderTest + 'static>(p: P) -> Box<dyn UnderTest> {
    Box::new(p)
}

fn normalize_params() -> impl Strategy<Value = LoudnessNormalize> {
    (
        -70.0f64..=0.0,
        -20.0f64..=0.0,
        0.4f64..=600.0,
        0.0f64..=40.0,
    )
        .prop_map(|(t, c, w, g)| LoudnessNormalize {
            target_lufs: t,
            true_peak_limit_dbtp: c,
            integrated_window_sec: w,
            max_gain_db: g,
        })
}

fn agc_params() -> impl Strategy<Value = Agc> {
    (
        any::<bool>(),
        -60.0f64..=0.0,
        0.0f64..=40.0,
        0.0f64..=10_000.0,
        0.0f64..=60_000.0,
    )
        .prop_map(|(enabled, t, g, a, r)| Agc {
            enabled,
            target_level_db: t,
            max_gain_db: g,
            attack_ms: a,
            release_ms: r,
        })
}

fn compressor_params() -> impl Strategy<Value = Compressor> {
    (
        -80.0f64..=0.0,
        1.0f64..=100.0,
        0.0f64..=48.0,
        0.0f64..=1000.0,
        0.0f64..=10_000.0,
        -24.0f64..=40.0,
        any::<bool>(),
    )
        .prop_map(|(t, r, k, a, rel, m, link)| Compressor {
            threshold_db: t,
            ratio: r,
            knee_db: k,
            attack_ms: a,
            release_ms: rel,
            makeup_gain_db: m,
            stereo_link: link,
        })
}

fn limiter_params() -> impl Strategy<Value = Limiter> {
    (-30.0f64..=0.0, 0.5f64..=50.0, 1.0f64..=10_000.0).prop_map(|(t, l, r)| Limiter {
        threshold_db: t,
        lookahead_ms: l,
        release_ms: r,
    })
}

fn ducking_params() -> impl Strategy<Value = Ducking> {
    (
        -60.0f64..=0.0,
        -90.0f64..=0.0,
        0.0f64..=10_000.0,
        0.0f64..=60_000.0,
    )
        .prop_map(|(amount, t, a, r)| Ducking {
            amount_db: amount,
            threshold_db: t,
            attack_ms: a,
            release_ms: r,
        })
}

fn silence_params() -> impl Strategy<Value = SilenceDetector> {
    (-120.0f64..=0.0, 0.1f64..=3600.0, any::<bool>()).prop_map(|(t, d, notify)| SilenceDetector {
        threshold_db: t,
        duration_sec: d,
        action: if notify {
            SilenceAction::Notify
        } else {
            SilenceAction::FailoverToFallback
        },
    })
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        normalize_params().prop_map(Node::LoudnessNormalize),
        agc_params().prop_map(Node::Agc),
        compressor_params().prop_map(Node::Compressor),
        limiter_params().prop_map(Node::Limiter),
        ducking_params().prop_map(Node::Ducking),
        silence_params().prop_map(Node::SilenceDetector),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn normalizer_live_mode(p in normalize_params(), f in format(), i in input(), huge: bool) {
        check(&|| boxed(Lone(LoudnessNormalizer::new(p))), f, i, huge, false)?;
    }

    #[test]
    fn normalizer_track_mode(
        p in normalize_params(),
        lufs in -70.0f64..0.0,
        f in format(),
        i in input(),
        huge: bool,
    ) {
        let make = || {
            let mut n = LoudnessNormalizer::new(p);
            n.set_track_loudness(Some(lufs));
            boxed(Lone(n))
        };
        check(&make, f, i, huge, false)?;
    }

    #[test]
    fn auto_gain(p in agc_params(), f in format(), i in input(), huge: bool) {
        check(&|| boxed(Lone(AutoGain::new(p))), f, i, huge, false)?;
    }

    #[test]
    fn compressor(p in compressor_params(), f in format(), i in input(), huge: bool) {
        check(&|| boxed(Lone(DynamicsCompressor::new(p))), f, i, huge, false)?;
    }

    #[test]
    fn limiter(p in limiter_params(), f in format(), i in input(), huge: bool) {
        check(&|| boxed(Lone(TruePeakLimiter::new(p))), f, i, huge, false)?;
    }

    #[test]
    fn ducker_with_hostile_sidechain(p in ducking_params(), f in format(), i in input(), huge: bool) {
        check(&|| boxed(LoneDucker(Ducker::new(p))), f, i, huge, true)?;
    }

    #[test]
    fn silence_watch_passes_audio_through(
        p in silence_params(),
        (rate, ch) in format(),
        (seed, bad, block) in input(),
    ) {
        let spec = AudioSpec::new(rate, ch).unwrap();
        let mut watch = SilenceWatch::new(p);
        watch.prepare(spec).unwrap();
        let input = hostile(seed, (HOSTILE_SEC * f64::from(rate)) as usize * ch, bad, true);
        let mut audio = input.clone();
        for chunk in audio.chunks_mut(block * ch) {
            watch.process(chunk);
            while watch.take_event().is_some() {}
        }
        // Unchanged, bit for bit, except that what is not a finite number comes out as
        // something finite (the contract's "all output finite").
        for (i, (x, y)) in input.iter().zip(&audio).enumerate() {
            prop_assert!(y.is_finite() || !x.is_finite(), "sample {i}: {x} became {y}");
            if x.is_finite() {
                prop_assert_eq!(x.to_bits(), y.to_bits(), "sample {} changed", i);
            }
        }
    }

    #[test]
    fn random_chains(
        nodes in prop::collection::vec(node(), 1..=6),
        track in prop::option::of(-70.0f64..0.0),
        f in format(),
        i in input(),
    ) {
        // Chains of several compressors and normalizers may end far below −120 dBFS by design;
        // their property is finiteness and the bit-for-bit twin.
        let graph = DspGraph { nodes };
        let make = || {
            let mut chain = Chain::new(&graph).unwrap();
            chain.set_track_loudness(track);
            boxed(chain)
        };
        check(&make, f, i, true, true)?;
    }
}
