//! A station on air to a real `icecast2` on loopback, heard by a listener: the stream
//! decodes, carries the titles, is as loud as the DSP chain's target by `ffmpeg -af ebur128`,
//! and survives the server going away while the recording beside it has no gap.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/icecast_server.rs"]
mod icecast_server;

#[path = "common/media.rs"]
mod media;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use grimnir_dsp::DspGraph;
use grimnir_engine::encode::Encoding;
use grimnir_engine::output::icecast::{Icecast, IcecastConfig};
use grimnir_engine::output::record::{RecordConfig, Recorder};
use grimnir_engine::output::{NowPlaying, OutputState};
use grimnir_engine::render::Item;
use grimnir_engine::station::{Station, StationConfig, StationEvent};
use icecast_server::IcecastServer;

const RATE: u32 = 48_000;
const MP3: Encoding = Encoding::Mp3 {
    bitrate: 128,
    quality: 2,
};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("grimnir-onair-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Music-like test audio: three tones and noise, their levels moving, `seconds` long.
fn music_wav(path: &Path, level: f32, seconds: f32) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut seed = 0x2545_f491_u32;
    for k in 0..(seconds * RATE as f32) as usize {
        let t = k as f32 / RATE as f32;
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed as f32 / u32::MAX as f32) * 2.0 - 1.0;
        let swell = 0.75 + 0.25 * (std::f32::consts::TAU * 0.3 * t).sin();
        let tones = [(110.0, 0.5), (440.0, 0.3), (1760.0, 0.15)]
            .iter()
            .map(|(f, a)| a * (std::f32::consts::TAU * f * t).sin())
            .sum::<f32>();
        let x = level * swell * (tones + 0.2 * noise);
        w.write_sample(x).unwrap();
        w.write_sample(x * 0.9).unwrap();
    }
    w.finalize().unwrap();
}

/// Integrated loudness of `path` by ffmpeg's EBU R128 meter, LUFS.
fn ffmpeg_lufs(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = &text[text.rfind("Summary:").expect("ffmpeg printed no summary")..];
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("I:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits (at most `limit`) for an event that `want` picks, keeping the others.
fn wait_event(
    rx: &Receiver<StationEvent>,
    limit: Duration,
    seen: &mut Vec<StationEvent>,
    want: impl Fn(&StationEvent) -> bool,
) {
    let until = Instant::now() + limit;
    loop {
        if seen.iter().any(&want) {
            return;
        }
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "gave up waiting; events: {seen:#?}");
        if let Ok(e) = rx.recv_timeout(left) {
            seen.push(e);
        }
    }
}

fn output_is(name: &'static str, state: OutputState) -> impl Fn(&StationEvent) -> bool {
    move |e| matches!(e, StationEvent::Output(h) if h.name == name && h.state == state)
}

#[test]
fn the_stream_decodes_carries_its_title_and_is_as_loud_as_the_target() {
    let Some(server) = IcecastServer::start_or_skip() else {
        return;
    };
    let d = dir("loud");
    let music = d.join("music.wav");
    music_wav(&music, 0.08, 40.0);
    let measured = ffmpeg_lufs(&music);
    let graph = DspGraph::from_yaml(
        "nodes:\n  - type: loudness_normalize\n    config: { target_lufs: -16.0, true_peak_limit_dbtp: -1.0 }\n  - type: limiter\n",
    )
    .unwrap();
    let ice = IcecastConfig::new(
        "127.0.0.1",
        server.port(),
        "/live.mp3",
        server.source_password(),
    );
    let config = StationConfig::new(graph).output("icecast", MP3, Icecast::new(ice));
    let (station, events) = Station::start(config).unwrap();
    let title = "Grimnir Ωmega – Première";
    station
        .schedule(
            1,
            Item {
                lufs: Some(measured),
                meta: Some(NowPlaying {
                    artist: None,
                    title: title.into(),
                }),
                ..Item::new(&music, 0.0)
            },
        )
        .unwrap();
    assert!(server.wait_for_mount("/live.mp3", Duration::from_secs(15)));
    let mut listener = server.listen("/live.mp3", true);
    // Twelve seconds of 128 kbit/s.
    let audio = listener.read_audio(192_000, Duration::from_secs(40));
    assert!(
        listener.titles().iter().any(|t| t == title),
        "{:?}",
        listener.titles()
    );
    let status = server.source("/live.mp3").unwrap();
    assert_eq!(status["title"].as_str(), Some(title), "{status}");
    drop(events);
    station.stop();

    let heard = d.join("heard.mp3");
    std::fs::write(&heard, &audio).unwrap();
    let samples = media::decode(&heard);
    assert!(
        samples.len() > 2 * 10 * RATE as usize,
        "the stream decodes: {} samples",
        samples.len()
    );
    let lufs = ffmpeg_lufs(&heard);
    println!("the listener hears {lufs:.2} LUFS (file {measured:.2} LUFS, target -16)");
    assert!(
        (lufs - -16.0).abs() <= 1.0,
        "the listener hears {lufs:.2} LUFS; the target is -16 (the file measured {measured:.2})"
    );
}

#[test]
fn a_dead_server_stops_neither_the_recording_nor_the_stream_for_good() {
    let Some(mut server) = IcecastServer::start_or_skip() else {
        return;
    };
    let d = dir("isolate");
    let music = d.join("tone.wav");
    music_wav(&music, 0.2, 60.0);
    let ice = IcecastConfig::new(
        "127.0.0.1",
        server.port(),
        "/live.mp3",
        server.source_password(),
    );
    let record = RecordConfig::new(d.join("archive"), "archive");
    let mut config = StationConfig::new(DspGraph { nodes: Vec::new() })
        .output("icecast", MP3, Icecast::new(ice))
        .output("archive", MP3, Recorder::new(record));
    config.backoff.initial = Duration::from_millis(200);
    config.backoff.max = Duration::from_millis(800);
    let (station, events) = Station::start(config).unwrap();
    station.schedule(1, Item::new(&music, 0.5)).unwrap();
    let mut seen = Vec::new();
    wait_event(
        &events,
        Duration::from_secs(15),
        &mut seen,
        output_is("icecast", OutputState::Up),
    );
    std::thread::sleep(Duration::from_secs(2));

    server.stop();
    wait_event(
        &events,
        Duration::from_secs(20),
        &mut seen,
        output_is("icecast", OutputState::Down),
    );
    std::thread::sleep(Duration::from_secs(2));
    seen.clear();
    server.start_again();
    wait_event(
        &events,
        Duration::from_secs(30),
        &mut seen,
        output_is("icecast", OutputState::Up),
    );
    assert!(server.wait_for_mount("/live.mp3", Duration::from_secs(10)));
    let mut listener = server.listen("/live.mp3", false);
    let audio = listener.read_audio(32_000, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let on_air = station.clock();
    station.stop();
    let archive: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            StationEvent::Output(h) if h.name == "archive" => Some(h.state),
            _ => None,
        })
        .collect();
    assert!(
        archive.iter().all(|s| *s == OutputState::Up),
        "the archive never left Up: {archive:?}"
    );

    let heard = d.join("heard.mp3");
    std::fs::write(&heard, &audio).unwrap();
    assert!(
        media::decode(&heard).len() > 2 * RATE as usize,
        "the stream is back and decodes"
    );

    // One recording, as long as the station was on air, the tone unbroken from 0.5 s on.
    let files: Vec<_> = std::fs::read_dir(d.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let samples = media::decode(&files[0]);
    let seconds = samples.len() as f64 / 2.0 / f64::from(RATE);
    assert!(
        seconds > on_air - 1.0,
        "the recording holds {seconds:.2} s of {on_air:.2} s on air"
    );
    let window = 2 * RATE as usize / 20;
    let tone = &samples[RATE as usize * 2..samples.len() - window];
    for (k, w) in tone.chunks_exact(window).enumerate() {
        let rms = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
        assert!(
            rms > 0.02,
            "a gap in the recording at {:.2} s (rms {rms})",
            1.0 + k as f64 * 0.05
        );
    }
}

#[test]
fn an_opus_stream_changes_its_title_with_a_new_ogg_chain() {
    let Some(server) = IcecastServer::start_or_skip() else {
        return;
    };
    let d = dir("opus");
    let first = d.join("first.wav");
    let second = d.join("second.wav");
    music_wav(&first, 0.08, 5.0);
    music_wav(&second, 0.08, 30.0);
    let ice = IcecastConfig::new(
        "127.0.0.1",
        server.port(),
        "/live.opus",
        server.source_password(),
    );
    let opus = Encoding::Opus { bitrate: 96 };
    let config = StationConfig::new(DspGraph::default()).output("icecast", opus, Icecast::new(ice));
    let (station, events) = Station::start(config).unwrap();
    let meta = |artist: &str, title: &str| {
        Some(NowPlaying {
            artist: Some(artist.into()),
            title: title.into(),
        })
    };
    station
        .schedule(
            1,
            Item {
                cue_out: Some(5.0),
                meta: meta("Grimnir", "Erstes Stück"),
                ..Item::new(&first, 0.5)
            },
        )
        .unwrap();
    station
        .schedule(
            2,
            Item {
                meta: meta("Grimnir", "Zweites Stück – Ωmega"),
                ..Item::new(&second, 5.5)
            },
        )
        .unwrap();
    assert!(server.wait_for_mount("/live.opus", Duration::from_secs(15)));
    // From the start of the first item into the second: about 9 s at 96 kbit/s. (Icecast 2.4
    // passes Opus comments on to listeners but does not read them into its status page, so the
    // listener is the judge.)
    let mut listener = server.listen("/live.opus", false);
    let audio = listener.read_audio(110_000, Duration::from_secs(30));
    let has = |needle: &str| audio.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        has("TITLE=Zweites Stück – Ωmega"),
        "the second title's chain arrived"
    );
    assert!(has("ARTIST=Grimnir"));
    drop(events);
    station.stop();
    let heard = d.join("heard.opus");
    std::fs::write(&heard, &audio).unwrap();
    // The stream decodes whole, across the chains: about 9 s of audio in 110 kB. (ffmpeg notes
    // "failed to create or replace stream" when a chain begins inside its probe window, as the
    // first title's does here, and then decodes every chain.)
    let samples = media::decode(&heard);
    assert!(
        samples.len() > 2 * 8 * RATE as usize,
        "the stream decodes: {} samples",
        samples.len()
    );
}
