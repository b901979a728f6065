//! Render mode end to end: real files decoded by GStreamer, placed by the mixer, written by an
//! encoder, read back.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use grimnir_dsp::DspGraph;
use grimnir_engine::mix::Placement;
use grimnir_engine::render::{Encoding, Item, render};

const RATE: u32 = 48_000;

fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn read_wav(path: &Path) -> Vec<f32> {
    hound::WavReader::open(path)
        .unwrap()
        .into_samples::<f32>()
        .map(Result::unwrap)
        .collect()
}

fn constant(value: f32, frames: usize) -> Vec<f32> {
    vec![value; frames * 2]
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("grimnir-render-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn empty() -> DspGraph {
    DspGraph { nodes: Vec::new() }
}

#[test]
fn a_hard_cut_lands_on_its_frame() {
    let d = dir("cut");
    write_wav(&d.join("a.wav"), &constant(0.25, 3 * RATE as usize));
    write_wav(&d.join("b.wav"), &constant(-0.25, RATE as usize));
    let items = [
        Item {
            cue_out: Some(2.0),
            ..Item::new(d.join("a.wav"), 0.0)
        },
        Item::new(d.join("b.wav"), 2.0),
    ];
    let out = d.join("out.wav");
    let report = render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    assert_eq!(report.played, [0, 1]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let audio = read_wav(&out);
    let first_b = audio.iter().position(|&x| x < 0.0).unwrap() / 2;
    assert_eq!(
        first_b,
        2 * RATE as usize,
        "B starts at 2.000 s to the frame"
    );
    assert!(audio[..first_b * 2].iter().all(|&x| x == 0.25));
    assert!(
        audio[first_b * 2..(first_b + RATE as usize) * 2]
            .iter()
            .all(|&x| x == -0.25)
    );
}

#[test]
fn a_crossfade_follows_the_planned_curve_to_the_frame() {
    let d = dir("xfade");
    write_wav(&d.join("a.wav"), &constant(0.25, 3 * RATE as usize));
    write_wav(&d.join("b.wav"), &constant(0.5, 2 * RATE as usize));
    let items = [
        Item {
            cue_out: Some(3.0),
            fade_out: 1.0,
            ..Item::new(d.join("a.wav"), 0.0)
        },
        Item {
            cue_out: Some(2.0),
            fade_in: 1.0,
            ..Item::new(d.join("b.wav"), 2.0)
        },
    ];
    let out = d.join("out.wav");
    render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    let audio = read_wav(&out);
    let r = u64::from(RATE);
    let a = Placement {
        fade_out: r,
        ..Placement::new(0, 3 * r)
    };
    let b = Placement {
        fade_in: r,
        ..Placement::new(2 * r, 2 * r)
    };
    for k in (0..4 * r).step_by(7) {
        let mut want = 0.0;
        if k < a.end() {
            want += 0.25 * a.gain_at(k);
        }
        if k >= b.start {
            want += 0.5 * b.gain_at(k - b.start);
        }
        let got = audio[2 * k as usize];
        assert!((got - want).abs() < 1e-6, "frame {k}: {got} vs {want}");
    }
}

#[test]
fn two_halves_of_a_sine_join_without_a_seam() {
    let d = dir("gapless");
    let sine: Vec<f32> = (0..RATE as usize * 2)
        .flat_map(|i| {
            let v = (0.5 * (2.0 * std::f64::consts::PI * 441.0 * i as f64 / f64::from(RATE)).sin())
                as f32;
            [v, v]
        })
        .collect();
    // Split off the block grid, mid-cycle.
    let split = 48_017;
    write_wav(&d.join("a.wav"), &sine[..split * 2]);
    write_wav(&d.join("b.wav"), &sine[split * 2..]);
    let items = [
        Item::new(d.join("a.wav"), 0.0),
        Item::new(d.join("b.wav"), split as f64 / f64::from(RATE)),
    ];
    let out = d.join("out.wav");
    render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    let audio = read_wav(&out);
    assert!(audio.len() >= sine.len());
    let worst = sine
        .iter()
        .zip(&audio)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-6, "largest difference {worst}");
}

#[test]
fn bad_files_are_skipped_and_named_and_the_next_item_is_on_time() {
    let d = dir("bad");
    write_wav(&d.join("good.wav"), &constant(0.25, RATE as usize));
    std::fs::write(d.join("empty.mp3"), b"").unwrap();
    std::fs::write(
        d.join("text.mp3"),
        b"this is not an mp3 file, only some text\n".repeat(100),
    )
    .unwrap();
    let items = [
        Item {
            cue_out: Some(1.0),
            ..Item::new(d.join("missing.mp3"), 0.0)
        },
        Item {
            cue_out: Some(1.0),
            ..Item::new(d.join("empty.mp3"), 1.0)
        },
        Item {
            cue_out: Some(1.0),
            ..Item::new(d.join("text.mp3"), 2.0)
        },
        Item::new(d.join("good.wav"), 3.0),
    ];
    let out = d.join("out.wav");
    let report = render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    assert_eq!(report.played, [3]);
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(|(i, p)| format!("{i}: {p}"))
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("0: ") && problems[0].contains("missing.mp3"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("empty.mp3") && problems[1].contains("empty"),
        "{problems:?}"
    );
    assert!(
        problems[2].contains("text.mp3") && problems[2].contains("text file"),
        "{problems:?}"
    );
    let audio = read_wav(&out);
    let first = audio.iter().position(|&x| x != 0.0).unwrap() / 2;
    assert_eq!(first, 3 * RATE as usize);
}

#[test]
fn a_truncated_mp3_ends_early_is_reported_and_the_next_item_is_on_time() {
    let d = dir("truncated");
    let mp3 = d.join("tone.mp3");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("sine=frequency=440:duration=4:sample_rate=48000")
        .args(["-ac", "2", "-b:a", "128k"])
        .arg(&mp3)
        .status()
        .expect("ffmpeg is installed (make test installs it)");
    assert!(status.success());
    let bytes = std::fs::read(&mp3).unwrap();
    std::fs::write(&mp3, &bytes[..bytes.len() / 2]).unwrap();
    write_wav(&d.join("next.wav"), &constant(0.25, RATE as usize / 2));
    let items = [
        Item {
            cue_out: Some(4.0),
            ..Item::new(&mp3, 0.0)
        },
        Item::new(d.join("next.wav"), 4.0),
    ];
    let out = d.join("out.wav");
    let report = render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    assert_eq!(report.played, [0, 1]);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].1.contains("tone.mp3") && report.problems[0].1.contains("early"));
    let audio = read_wav(&out);
    let next = audio.iter().position(|&x| x == 0.25).unwrap() / 2;
    assert_eq!(next, 4 * RATE as usize);
}
