//! Render mode end to end: real files decoded by GStreamer, placed by the mixer, written by an
//! encoder, read back.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/media.rs"]
mod media;

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

#[test]
fn a_planner_timeline_renders_each_entry_at_its_time() {
    let d = dir("planner");
    write_wav(&d.join("t1.wav"), &constant(0.25, 3 * RATE as usize));
    write_wav(&d.join("t2.wav"), &constant(0.5, 3 * RATE as usize));
    // The shape `grimnir-planner`'s `plan --json` prints, one entry per line.
    let lines = [
        r#"{"start":"2026-11-24T09:00:00Z","end":"2026-11-24T09:00:01Z","media_id":"t1","artist":"A","title":"One","cue_in":0.5,"cue_out":1.5,"tier":3,"transition":{"fade_in":0,"fade_out":0,"overlap":0}}"#,
        r#"{"start":"2026-11-24T09:00:01Z","end":"2026-11-24T09:00:02Z","media_id":null,"source":{"live":{"name":"Morning show"}},"tier":2,"transition":{"fade_in":0,"fade_out":0,"overlap":0}}"#,
        r#"{"start":"2026-11-24T09:00:02.250Z","end":"2026-11-24T09:00:03Z","media_id":"t2","artist":"B","title":"Two","cue_in":0,"cue_out":0.75,"tier":3,"transition":{"fade_in":0,"fade_out":0.25,"overlap":0}}"#,
    ];
    let resolve = |id: &str| Some(d.join(format!("{id}.wav")));
    let (items, skipped) =
        grimnir_engine::render::planner_items(&lines.join("\n"), resolve).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].starts_with("line 2") && skipped[0].contains("Morning show"));
    assert_eq!(items[1].start, 2.25);
    assert_eq!(items[1].meta.as_ref().unwrap().stream_title(), "B - Two");
    let out = d.join("out.wav");
    render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    let left: Vec<f32> = read_wav(&out).into_iter().step_by(2).collect();
    let at = |s: f64| (s * f64::from(RATE)) as usize;
    assert!(left[..at(1.0)].iter().all(|&x| x == 0.25), "t1 from 0 s");
    assert!(
        left[at(1.0)..at(2.25)].iter().all(|&x| x == 0.0),
        "nothing during live"
    );
    assert_eq!(left[at(2.25)], 0.5, "t2 on its frame");
    assert_eq!(left[at(2.25) - 1], 0.0);
    assert!(left[at(3.0) - 1] < 0.01, "t2 fades out to its end");

    let bad = grimnir_engine::render::planner_items("{\"start\": 5}", |_| None).unwrap_err();
    assert!(bad.to_string().contains("line 1"), "{bad}");
    let missing = grimnir_engine::render::planner_items(lines[0], |_| None).unwrap_err();
    assert!(missing.to_string().contains("t1"), "{missing}");
}

#[test]
fn a_list_reads_its_keys_and_names_the_bad_line() {
    use grimnir_engine::render::list_items;
    let items = list_items(
        "# comment\n\n10 b.mp3 fade_in=1\n0 a.mp3 cue_in=1.5 cue_out=9 fade_out=2 lufs=-9 curve=s_curve\n",
    )
    .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].path, PathBuf::from("a.mp3"), "in start order");
    assert_eq!(items[0].cue_out, Some(9.0));
    assert_eq!(items[0].lufs, Some(-9.0));
    assert_eq!(items[0].curve, grimnir_engine::mix::Curve::SCurve);
    assert_eq!(items[1].fade_in, 1.0);
    for (text, says) in [
        ("x a.mp3", "line 1"),
        ("0", "no file"),
        ("0 a.mp3\n1 b.mp3 cue_in=soon", "line 2: cue_in=soon"),
        ("0 a.mp3 volume=3", "unknown key `volume`"),
        ("0 a.mp3 curve=round", "curve=round"),
    ] {
        let e = list_items(text).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
}

#[test]
fn a_cue_in_starts_on_its_exact_frame_of_the_file() {
    let d = dir("cue");
    // Every frame of the file holds a different value: frame k is k / 200 000.
    let frames = 3 * RATE as usize;
    let ramp: Vec<f32> = (0..frames)
        .flat_map(|k| [k as f32 / 200_000.0; 2])
        .collect();
    write_wav(&d.join("ramp.wav"), &ramp);
    let flac = d.join("ramp.flac");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(d.join("ramp.wav"))
        .args(["-sample_fmt", "s32", "-c:a", "flac"])
        .arg(&flac)
        .status()
        .unwrap();
    assert!(status.success());
    for source in [d.join("ramp.wav"), flac] {
        let items = vec![Item {
            cue_in: 1.25,
            cue_out: Some(2.0),
            ..Item::new(&source, 0.5)
        }];
        let out = d.join("out.wav");
        render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
        let left: Vec<f32> = read_wav(&out).into_iter().step_by(2).collect();
        let first = (0.5 * f64::from(RATE)) as usize;
        let expected = 1.25 * f64::from(RATE) / 200_000.0;
        assert_eq!(left[first - 1], 0.0, "{}", source.display());
        assert!(
            (f64::from(left[first]) - expected).abs() < 1e-5,
            "{}: the first frame is the file's frame at 1.25 s: {} vs {expected}",
            source.display(),
            left[first]
        );
        let last = first + (0.75 * f64::from(RATE)) as usize - 1;
        assert!((f64::from(left[last]) - (2.0 * f64::from(RATE) - 1.0) / 200_000.0).abs() < 1e-5);
        assert_eq!(left.get(last + 1).copied().unwrap_or(0.0), 0.0);
    }
}

#[test]
fn a_cue_in_lands_where_ffmpeg_puts_that_frame_in_each_lossy_format() {
    // How many frames of the whole 4 s file may differ from what went in: MP3 (its LAME tag
    // read), Opus (its pre-skip and end trim) and M4A (its edit list) are exact; GStreamer's
    // Vorbis decoder keeps one frame past the end.
    for (ext, codec, slack) in [
        ("mp3", "libmp3lame", Some(0)),
        ("opus", "libopus", Some(0)),
        ("ogg", "libvorbis", Some(1)),
        ("m4a", "aac", Some(0)),
    ] {
        cue_in_vs_ffmpeg(ext, codec, slack);
    }
}

fn cue_in_vs_ffmpeg(ext: &str, codec: &str, slack: Option<usize>) {
    let d = dir(&format!("cue-{ext}"));
    // A chirp: every stretch of it is unlike every other, so the alignment is unambiguous.
    let frames = 4 * RATE as usize;
    let chirp: Vec<f32> = (0..frames)
        .flat_map(|k| {
            let t = k as f64 / f64::from(RATE);
            let x = 0.5 * (std::f64::consts::TAU * (200.0 * t + 300.0 * t * t)).sin();
            [x as f32; 2]
        })
        .collect();
    write_wav(&d.join("chirp.wav"), &chirp);
    let mp3 = d.join(format!("chirp.{ext}"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(d.join("chirp.wav"))
        .args(["-c:a", codec, "-b:a", "192k"])
        .arg(&mp3)
        .status()
        .unwrap();
    assert!(status.success());
    let reference: Vec<f32> = media::decode(&mp3).into_iter().step_by(2).collect();
    let items = vec![Item {
        cue_in: 1.25,
        cue_out: Some(2.0),
        ..Item::new(&mp3, 0.0)
    }];
    let out = d.join("out.wav");
    render(&items, &empty(), RATE, Encoding::Wav, &out).unwrap();
    let ours: Vec<f32> = read_wav(&out).into_iter().step_by(2).collect();
    let at = (1.25 * f64::from(RATE)) as usize;
    let off = best_lag(&ours[1000..5000], &reference, at + 1000);
    assert_eq!(
        off, 0,
        "{ext}: our frame k of the item is ffmpeg's frame 1.25 s + k, off by {off}"
    );

    // The whole file decodes to exactly the samples that went in: no priming, no padding.
    let mut decoder = grimnir_engine::decode::Decoder::open(&mp3, RATE, 2, 0.0).unwrap();
    let mut whole = Vec::new();
    let mut block = vec![0f32; 2 * 1000];
    loop {
        use grimnir_engine::mix::Source;
        let n = decoder.read(&mut block).unwrap();
        whole.extend(block[..2 * n].iter().step_by(2));
        if n < 1000 {
            break;
        }
    }
    let total = whole.len();
    if let Some(slack) = slack {
        assert!(
            total.abs_diff(frames) <= slack,
            "{ext}: a file of {frames} frames gives {total}"
        );
    }
    // And its last stretch is the file's own last stretch, in its place.
    let from = frames - 5000;
    let off = best_lag(&whole[from..from + 4000], &reference, from);
    assert_eq!(off, 0, "{ext}: the file's end is off by {off} frames");
}

/// By how many frames `window` (taken from our frame `at`) is best matched in `reference`
/// away from its own frame `at`, searched within ±1500.
fn best_lag(window: &[f32], reference: &[f32], at: usize) -> i64 {
    (-1500i64..=1500)
        .filter(|lag| {
            let from = at as i64 + lag;
            from >= 0 && from as usize + window.len() <= reference.len()
        })
        .min_by(|a, b| {
            let err = |lag: i64| {
                let from = (at as i64 + lag) as usize;
                window
                    .iter()
                    .zip(&reference[from..from + window.len()])
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f32>()
            };
            err(*a).total_cmp(&err(*b))
        })
        .unwrap_or(i64::MAX)
}
