//! The limiter's promise under random parameters and hostile input: output finite, and its
//! true peak (measured by the EBU meter, not by looking at samples) at the ceiling or below,
//! within the 0.1 dB a true-peak reading allows.

// Test helpers may unwrap: a failure is a failing test.
#![allow(clippy::unwrap_used)]

use grimnir_dsp::*;
use proptest::prelude::*;

/// xorshift64*: deterministic noise from the case's seed.
fn noise(seed: u64, len: usize) -> impl Iterator<Item = f32> {
    let mut s = seed | 1;
    (0..len).map(move |_| {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let x = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn true_peak_stays_under_the_ceiling(
        ceiling in -6.0f64..0.0,
        lookahead in 1.0f64..10.0,
        release in 5.0f64..200.0,
        drive_db in 0.0f32..18.0,
        tone in 50.0f32..18_000.0,
        seed in any::<u64>(),
        channels in 1usize..=2,
        block in 1usize..2048,
    ) {
        let spec = AudioSpec::new(48_000, channels).unwrap();
        let mut limiter = TruePeakLimiter::new(Limiter { threshold_db: ceiling, lookahead_ms: lookahead, release_ms: release });
        limiter.prepare(spec).unwrap();
        let drive = 10f32.powf(drive_db / 20.0);
        let frames = 24_000;
        let mut audio: Vec<f32> = noise(seed, frames * channels)
            .enumerate()
            .map(|(i, n)| {
                let t = (i / channels) as f32 / 48_000.0;
                drive * (0.5 * n + 0.6 * (2.0 * std::f32::consts::PI * tone * t).sin())
            })
            .collect();
        for chunk in audio.chunks_mut(block * channels) {
            limiter.process(chunk);
        }
        prop_assert!(audio.iter().all(|x| x.is_finite()));
        let mut meter = Meter::new(spec).unwrap();
        meter.add(&audio);
        let tp = meter.reading().true_peak;
        prop_assert!(tp <= ceiling + 0.1, "true peak {tp:.3} dBTP over the {ceiling:.2} dBTP ceiling");
    }
}

/// SPEC's chain leaves the true-peak ceiling to its final limiter (the normalizer's own ceiling
/// is skipped as redundant): the output must still stay under it, and the latency is the
/// limiter's alone.
#[test]
fn spec_chain_output_stays_under_its_final_ceiling() {
    let spec = AudioSpec::new(48_000, 2).unwrap();
    let graph = DspGraph::broadcast_default();
    let mut chain = Chain::new(&graph).unwrap();
    chain.prepare(spec).unwrap();
    let mut alone = TruePeakLimiter::new(Limiter::default());
    alone.prepare(spec).unwrap();
    assert_eq!(chain.latency_frames(), alone.latency_frames());
    let mut audio: Vec<f32> = noise(7, 10 * 48_000 * 2)
        .enumerate()
        .map(|(i, n)| {
            let t = (i / 2) as f32 / 48_000.0;
            2.0 * (0.4 * n + 0.6 * (2.0 * std::f32::consts::PI * 3_000.0 * t).sin())
        })
        .collect();
    chain.set_track_loudness(Some(-3.0));
    for block in audio.chunks_mut(2048) {
        chain.process(block);
    }
    let mut meter = Meter::new(spec).unwrap();
    meter.add(&audio);
    let tp = meter.reading().true_peak;
    assert!(
        tp <= -1.0 + 0.1,
        "chain output true peak {tp:.3} dBTP over -1 dBTP"
    );
}
