//! ffmpeg's `ebur128` filter as an independent judge of the [`Meter`]: the same synthesized
//! EBU Tech 3341 signals are written to WAV files, measured by ffmpeg, and its integrated
//! loudness is compared with ours.
//!
//! ffmpeg is an external program. Without it the test prints why it is skipped and passes,
//! except in CI (`CI=true`), where a missing judge is a failure rather than a silent pass.

// Helpers here are test code too: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

mod signals;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use grimnir_dsp::{AudioSpec, Meter};
use signals::{Program, RATE};

/// How far ffmpeg's integrated loudness may be from ours, LU. ffmpeg prints one decimal, so
/// its rounding alone takes up to 0.05 of this.
const AGREEMENT_LU: f64 = 0.1;

/// Writes interleaved `f32` samples as a 32-bit IEEE float WAV file (`WAVE_FORMAT_IEEE_FLOAT`,
/// with the `fact` chunk that non-PCM WAV files carry).
fn write_wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) -> io::Result<()> {
    const FORMAT_IEEE_FLOAT: u16 = 3;
    let too_long = || io::Error::new(io::ErrorKind::InvalidInput, "too long for a WAV file");
    let data_len = u32::try_from(samples.len() * 4).map_err(|_| too_long())?;
    let frames = u32::try_from(samples.len() / usize::from(channels)).map_err(|_| too_long())?;
    let block_align = channels * 4;
    // "WAVE" + fmt (8 + 18) + fact (8 + 4) + data (8 + data).
    let riff_len = (4 + 26 + 12 + 8u32)
        .checked_add(data_len)
        .ok_or_else(too_long)?;

    let mut out = Vec::with_capacity(samples.len() * 4 + 58);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_len.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&18u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_IEEE_FLOAT.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // cbSize: no extension
    out.extend_from_slice(b"fact");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&frames.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for x in samples {
        out.extend_from_slice(&x.to_le_bytes());
    }
    let mut file = std::fs::File::create(path)?;
    file.write_all(&out)?;
    file.flush()
}

/// Whether ffmpeg can be run. When it cannot: fails in CI, otherwise prints why and says no.
fn ffmpeg_available() -> bool {
    match Command::new("ffmpeg").arg("-version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => format!("`ffmpeg -version` exited with {}", out.status),
                Err(e) => format!("cannot run ffmpeg: {e}"),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ffmpeg is needed to judge the loudness meter in CI and is missing ({why}); \
                 install it (scripts/ensure-deps.sh, or apt-get install ffmpeg)"
            );
            println!("skipped: {why}; install ffmpeg to compare the meter with it");
            false
        }
    }
}

/// ffmpeg's integrated loudness of a WAV file: the `I:` line of the `Summary:` block that
/// `ffmpeg -nostats -i x.wav -af ebur128=peak=true -f null -` prints on stderr.
fn ffmpeg_integrated(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .arg("-nostats")
        .arg("-hide_banner")
        .arg("-i")
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed on {path:?}:\n{log}");
    parse_summary_integrated(&log)
        .unwrap_or_else(|| panic!("no `I:` value in ffmpeg's Summary block:\n{log}"))
}

/// The `I:` value (LUFS) after the last `Summary:` line of ffmpeg's `ebur128` log.
fn parse_summary_integrated(log: &str) -> Option<f64> {
    let summary = &log[log.rfind("Summary:")?..];
    summary.lines().find_map(|line| {
        let value = line.trim().strip_prefix("I:")?;
        value.split_whitespace().next()?.parse().ok()
    })
}

fn wav_path(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffmpeg_judge");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}.wav", std::process::id()))
}

/// Measures `samples` (48 kHz stereo) with our meter and with ffmpeg, and checks that the
/// integrated loudness agrees within ±0.1 LU.
fn judge(name: &str, samples: &[f32]) {
    let mut meter = Meter::new(AudioSpec::new(RATE, 2).unwrap()).unwrap();
    meter.add(samples);
    let ours = meter.reading().integrated;

    let path = wav_path(name);
    write_wav_f32(&path, RATE, 2, samples).unwrap();
    let theirs = ffmpeg_integrated(&path);
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
    judge(
        "tech3341-case-1",
        &Program::stereo().tone(-23.0, 20.0).samples(),
    );
    judge(
        "tech3341-case-5",
        &Program::stereo()
            .tone(-26.0, 20.0)
            .tone(-20.0, 20.1)
            .tone(-26.0, 20.0)
            .samples(),
    );
}

/// The parser reads the `Summary:` block, not the per-frame lines before it.
#[test]
fn summary_parser_reads_the_summary() {
    let log = "\
[Parsed_ebur128_0 @ 0x5581] t: 19.9     TARGET:-23 LUFS    M: -23.0 S: -23.0     I: -23.0 LUFS
[Parsed_ebur128_0 @ 0x5581] Summary:

  Integrated loudness:
    I:         -22.9 LUFS
    Threshold: -33.0 LUFS

  Loudness range:
    LRA:         0.0 LU
";
    assert_eq!(parse_summary_integrated(log), Some(-22.9));
    assert_eq!(parse_summary_integrated("no summary here"), None);
}
