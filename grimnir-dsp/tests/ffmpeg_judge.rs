//! ffmpeg's `ebur128` filter as an independent judge of the [`Meter`]: the same synthesized
//! EBU Tech 3341 signals are written to WAV files, measured by ffmpeg, and its integrated
//! loudness is compared with ours.
//!
//! ffmpeg is an external program. Without it the test prints why it is skipped and passes,
//! except in CI (`CI=true`), where a missing judge is a failure rather than a silent pass
//! (see the shared `judge` module).

// Helpers here are test code too: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

mod judge;
mod signals;

use grimnir_dsp::{AudioSpec, Meter};
use judge::{
    ffmpeg_available, ffmpeg_summary, parse_summary_integrated, parse_summary_true_peak, wav_path,
    write_wav_f32,
};
use signals::{Program, RATE};

/// How far ffmpeg's integrated loudness may be from ours, LU. ffmpeg prints one decimal, so
/// its rounding alone takes up to 0.05 of this.
const AGREEMENT_LU: f64 = 0.1;

/// Measures `samples` (48 kHz stereo) with our meter and with ffmpeg, and checks that the
/// integrated loudness agrees within ±0.1 LU.
fn compare(name: &str, samples: &[f32]) {
    let mut meter = Meter::new(AudioSpec::new(RATE, 2).unwrap()).unwrap();
    meter.add(samples);
    let ours = meter.reading().integrated;

    let path = wav_path("ffmpeg_judge", name);
    write_wav_f32(&path, RATE, 2, samples).unwrap();
    let theirs = ffmpeg_summary(&path).integrated;
    std::fs::remove_file(&path).unwrap();

    println!("{name}: I = {ours:.3} LUFS (grimnir-dsp), {theirs:.1} LUFS (ffmpeg ebur128)");
    assert!(
        (ours - theirs).abs() <= AGREEMENT_LU,
        "{name}: our meter reads I = {ours:.3} LUFS, ffmpeg {theirs:.1} LUFS: they differ by \
         {:.3} LU (at most {AGREEMENT_LU} allowed)",
        (ours - theirs).abs()
    );
}

/// ffmpeg agrees with the meter on Tech 3341 case 1 (stereo −23 dBFS, 20 s; I = −23.0) and
/// case 5 (20 s −26 / 20.1 s −20 / 20 s −26 dBFS; I = −23.0), within ±0.1 LU.
#[test]
fn ffmpeg_agrees_on_integrated_loudness() {
    if !ffmpeg_available() {
        return;
    }
    compare(
        "tech3341-case-1",
        &Program::stereo().tone(-23.0, 20.0).samples(),
    );
    compare(
        "tech3341-case-5",
        &Program::stereo()
            .tone(-26.0, 20.0)
            .tone(-20.0, 20.1)
            .tone(-26.0, 20.0)
            .samples(),
    );
}

/// The parser reads `I:` and `Peak:` from the `Summary:` block, not the per-frame lines before it.
#[test]
fn summary_parser_reads_the_summary() {
    let log = judge::SAMPLE_LOG;
    assert_eq!(parse_summary_integrated(log), Some(-22.9));
    assert_eq!(parse_summary_true_peak(log), Some(-1.2));
    assert_eq!(parse_summary_integrated("no summary here"), None);
}
