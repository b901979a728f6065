//! Live playout: a station on air in real time, its outputs read back by ffmpeg.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/media.rs"]
mod media;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grimnir_dsp::DspGraph;
use grimnir_engine::encode::Encoding;
use grimnir_engine::output::hls::{Hls, HlsConfig};
use grimnir_engine::output::{Destination, NowPlaying, OutputState, Packet, StreamInfo};
use grimnir_engine::render::Item;
use grimnir_engine::station::{Station, StationConfig, StationEvent};

const RATE: u32 = 48_000;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("grimnir-station-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sine_wav(path: &Path, freq: f32, amplitude: f32, seconds: f32) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for k in 0..(seconds * RATE as f32) as usize {
        let x = amplitude * (std::f32::consts::TAU * freq * k as f32 / RATE as f32).sin();
        w.write_sample(x).unwrap();
        w.write_sample(x).unwrap();
    }
    w.finalize().unwrap();
}

/// Keeps every byte it is given: an output an embedder might write.
#[derive(Clone, Default)]
struct Collect {
    bytes: Arc<Mutex<Vec<u8>>>,
    titles: Arc<Mutex<Vec<String>>>,
}

impl Destination for Collect {
    fn open(&mut self, _stream: &StreamInfo, headers: &[Packet]) -> Result<(), String> {
        for h in headers {
            self.write(h)?;
        }
        Ok(())
    }

    fn write(&mut self, packet: &Packet) -> Result<(), String> {
        let map = packet.buffer.map_readable().map_err(|e| e.to_string())?;
        self.bytes.lock().unwrap().extend_from_slice(&map);
        Ok(())
    }

    fn now_playing(&mut self, meta: &NowPlaying) -> Result<(), String> {
        self.titles.lock().unwrap().push(meta.stream_title());
        Ok(())
    }

    fn close(&mut self) {}
}

/// Events until `done` says so, for at most `limit`.
fn events_until(
    rx: &Receiver<StationEvent>,
    limit: Duration,
    mut done: impl FnMut(&[StationEvent]) -> bool,
) -> Vec<StationEvent> {
    let until = Instant::now() + limit;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "gave up waiting; events so far: {seen:#?}");
        if let Ok(e) = rx.recv_timeout(left) {
            seen.push(e);
        }
    }
    seen
}

fn ended(events: &[StationEvent], id: u64) -> bool {
    events
        .iter()
        .any(|e| matches!(e, StationEvent::Ended { id: k, .. } if *k == id))
}

#[test]
fn a_station_plays_its_items_on_time_to_every_output() {
    let d = dir("air");
    sine_wav(&d.join("a.wav"), 440.0, 0.3, 1.5);
    sine_wav(&d.join("b.wav"), 660.0, 0.3, 1.0);
    let first = Collect::default();
    let second = Collect::default();
    let mp3 = Encoding::Mp3 {
        bitrate: 128,
        quality: 2,
    };
    let hls = HlsConfig {
        segment: Duration::from_secs(1),
        ..HlsConfig::new(d.join("hls"))
    };
    let config = StationConfig::new(DspGraph { nodes: Vec::new() })
        .output("first", mp3, first.clone())
        .output("second", mp3, second.clone())
        .output("hls", Encoding::Aac { bitrate: 96 }, Hls::new(hls));
    let (station, events) = Station::start(config).unwrap();
    assert_eq!(
        station.encodings(),
        [mp3, Encoding::Aac { bitrate: 96 }],
        "one encode per distinct encoding"
    );
    let meta = NowPlaying {
        artist: Some("Grimnir".into()),
        title: "Première".into(),
    };
    station
        .schedule(
            1,
            Item {
                cue_out: Some(1.5),
                fade_out: 0.25,
                meta: Some(meta.clone()),
                ..Item::new(d.join("a.wav"), 0.5)
            },
        )
        .unwrap();
    station
        .schedule(
            2,
            Item {
                cue_out: Some(1.0),
                fade_in: 0.25,
                ..Item::new(d.join("b.wav"), 1.75)
            },
        )
        .unwrap();
    let seen = events_until(&events, Duration::from_secs(20), |e| {
        ended(e, 2) && e.iter().any(|e| matches!(e, StationEvent::Telemetry(_)))
    });
    station.stop();

    // Each item started on its planned frame, not a block later.
    let started: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            StationEvent::Started { id, at, late } => Some((*id, *at, *late)),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![(1, 0.5, 0.0), (2, 1.75, 0.0)], "{seen:#?}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, StationEvent::Ended { id: 1, at } if *at == 2.0))
    );
    let report = seen
        .iter()
        .find_map(|e| match e {
            StationEvent::Telemetry(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(report.outputs.len(), 3);
    assert!(report.loudness.is_some(), "the meter reports: {report:?}");
    assert!(report.frames > 0);

    // One encode feeds both MP3 outputs: they got the same bytes.
    let a = first.bytes.lock().unwrap().clone();
    let b = second.bytes.lock().unwrap().clone();
    assert!(!a.is_empty());
    assert_eq!(a, b, "two outputs of one encoding get one stream");
    assert_eq!(
        first.titles.lock().unwrap().as_slice(),
        ["Grimnir - Première"]
    );
    let mp3_path = d.join("air.mp3");
    std::fs::write(&mp3_path, &a).unwrap();
    let samples = media::decode(&mp3_path);
    let seconds = samples.len() as f64 / 2.0 / f64::from(RATE);
    assert!(
        seconds >= 2.75,
        "the stream holds the whole programme: {seconds} s"
    );
    // The first item is audible from 0.5 s: silence before it, tone after.
    let rms = |from: f64, to: f64| {
        let s = &samples[(from * 96_000.0) as usize..(to * 96_000.0) as usize];
        (s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32).sqrt()
    };
    assert!(rms(0.1, 0.4) < 0.01, "silence before the first item");
    assert!(rms(0.7, 1.2) > 0.15, "the first item plays");

    // HLS: a playlist ffmpeg can play.
    let playlist = d.join("hls").join("live.m3u8");
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert!(text.contains("#EXTINF"), "{text}");
    assert!(!media::decode(&playlist).is_empty());
}

#[test]
fn a_file_that_cannot_play_is_reported_and_the_next_item_stays_on_time() {
    let d = dir("bad");
    sine_wav(&d.join("b.wav"), 440.0, 0.3, 0.5);
    std::fs::write(d.join("text.mp3"), "not audio at all\n").unwrap();
    let sink = Collect::default();
    let config = StationConfig::new(DspGraph { nodes: Vec::new() }).output(
        "out",
        Encoding::Mp3 {
            bitrate: 64,
            quality: 5,
        },
        sink,
    );
    let (station, events) = Station::start(config).unwrap();
    station
        .schedule(1, Item::new(d.join("missing.mp3"), 0.2))
        .unwrap();
    station
        .schedule(2, Item::new(d.join("text.mp3"), 0.3))
        .unwrap();
    station
        .schedule(3, Item::new(d.join("b.wav"), 0.6))
        .unwrap();
    let seen = events_until(&events, Duration::from_secs(20), |e| ended(e, 3));
    station.stop();
    let failed: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            StationEvent::Failed { id, reason } => Some((*id, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{seen:#?}");
    assert!(
        failed[0].0 == 1 && failed[0].1.contains("missing.mp3"),
        "{failed:?}"
    );
    assert!(
        failed[1].0 == 2 && failed[1].1.contains("text.mp3"),
        "{failed:?}"
    );
    assert!(
        seen.iter().any(
            |e| matches!(e, StationEvent::Started { id: 3, at, late } if *at == 0.6 && *late == 0.0)
        ),
        "{seen:#?}"
    );
}

#[test]
fn a_fade_ends_an_item_where_asked_and_an_output_reports_up() {
    let d = dir("fade");
    sine_wav(&d.join("long.wav"), 440.0, 0.3, 10.0);
    let config = StationConfig::new(DspGraph { nodes: Vec::new() }).output(
        "out",
        Encoding::Opus { bitrate: 64 },
        Collect::default(),
    );
    let (station, events) = Station::start(config).unwrap();
    station
        .schedule(1, Item::new(d.join("long.wav"), 0.2))
        .unwrap();
    station.fade_out(1, 0.5, 0.25).unwrap();
    let seen = events_until(&events, Duration::from_secs(20), |e| ended(e, 1));
    station.stop();
    assert!(
        seen.iter()
            .any(|e| matches!(e, StationEvent::Ended { id: 1, at } if *at == 0.75)),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(
            |e| matches!(e, StationEvent::Output(h) if h.name == "out" && h.state == OutputState::Up)
        ),
        "{seen:#?}"
    );
}
