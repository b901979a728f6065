//! ffmpeg's `ebur128` filter as an independent judge: writing `f32` audio to WAV, checking that
//! ffmpeg can be run, and reading the `Summary:` block it prints.
//!
//! ffmpeg is an external program. Without it a test prints why it is skipped and passes, except
//! in CI (`CI=true`), where a missing judge is a failure rather than a silent pass.
#![allow(dead_code, unreachable_pub)]
// Helpers here are test code too: an unwrap that fails is a failing test.
#![allow(clippy::unwrap_used)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes interleaved `f32` samples as a 32-bit IEEE float WAV file (`WAVE_FORMAT_IEEE_FLOAT`,
/// with the `fact` chunk that non-PCM WAV files carry).
pub fn write_wav_f32(path: &Path, rate: u32, channels: u16, samples: &[f32]) -> io::Result<()> {
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
pub fn ffmpeg_available() -> bool {
    match Command::new("ffmpeg").arg("-version").output() {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => format!("`ffmpeg -version` exited with {}", out.status),
                Err(e) => format!("cannot run ffmpeg: {e}"),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ffmpeg is needed to judge loudness in CI and is missing ({why}); \
                 install it (scripts/ensure-deps.sh, or apt-get install ffmpeg)"
            );
            println!("skipped: {why}; install ffmpeg to judge loudness with it");
            false
        }
    }
}

/// What ffmpeg's `ebur128=peak=true` reports in its `Summary:` block (one decimal each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Integrated loudness, LUFS (`I:`).
    pub integrated: f64,
    /// True peak, dBTP (`Peak:` of the `True peak:` section, which ffmpeg labels dBFS).
    pub true_peak: f64,
}

/// ffmpeg's summary of a WAV file, from
/// `ffmpeg -nostats -i x.wav -af ebur128=peak=true -f null -` (printed on stderr).
pub fn ffmpeg_summary(path: &Path) -> Summary {
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
    Summary {
        integrated: parse_summary_integrated(&log)
            .unwrap_or_else(|| panic!("no `I:` value in ffmpeg's Summary block:\n{log}")),
        true_peak: parse_summary_true_peak(&log)
            .unwrap_or_else(|| panic!("no `Peak:` value in ffmpeg's Summary block:\n{log}")),
    }
}

/// The first value of a line starting with `label` after the last `Summary:` line of ffmpeg's
/// `ebur128` log.
fn parse_summary_value(log: &str, label: &str) -> Option<f64> {
    let summary = &log[log.rfind("Summary:")?..];
    summary.lines().find_map(|line| {
        let value = line.trim().strip_prefix(label)?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The `I:` value (LUFS) of the `Summary:` block.
pub fn parse_summary_integrated(log: &str) -> Option<f64> {
    parse_summary_value(log, "I:")
}

/// The `Peak:` value (dBTP) of the `Summary:` block; ffmpeg prints `-inf` for silence.
pub fn parse_summary_true_peak(log: &str) -> Option<f64> {
    parse_summary_value(log, "Peak:")
}

/// A fresh path for a WAV file under the test's temporary directory, in a subdirectory named
/// `group`; the process id keeps concurrent runs apart.
pub fn wav_path(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(group);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}.wav", std::process::id()))
}

/// A log as ffmpeg 6/7 prints it, for parser tests.
pub const SAMPLE_LOG: &str = "\
[Parsed_ebur128_0 @ 0x5581] t: 19.9     TARGET:-23 LUFS    M: -23.0 S: -23.0     I: -23.0 LUFS       LRA:   0.0 LU  FTPK: -23.0 dBFS  TPK: -22.9 dBFS
[Parsed_ebur128_0 @ 0x5581] Summary:

  Integrated loudness:
    I:         -22.9 LUFS
    Threshold: -33.0 LUFS

  Loudness range:
    LRA:         0.0 LU
    Threshold: -43.0 LUFS
    LRA low:   -23.0 LUFS
    LRA high:  -23.0 LUFS

  True peak:
    Peak:       -1.2 dBFS
";
