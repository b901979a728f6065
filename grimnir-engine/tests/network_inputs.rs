//! Network inputs, each against a real sender on loopback.
//!
//! - Webstreams against local HTTP servers that serve audio and then die: the fallback URL
//!   takes over, the primary takes back over when it returns, health reports each step, and a
//!   chain with nothing left ends with the reasons.
//! - SRT (with and without a passphrase) and RTP from ffmpeg: the audio arrives, and the
//!   input ends when the sender stops.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/http_audio.rs"]
mod http_audio;
#[path = "common/live.rs"]
mod live;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use grimnir_engine::input::LiveConfig;
use grimnir_engine::input::network::NetworkInput;
use grimnir_engine::input::webstream::{
    Webstream, WebstreamConfig, WebstreamHealth, WebstreamStatus,
};
use grimnir_engine::mix::Source;
use http_audio::{Server, dead_url, mp3};

const RATE: u32 = 48_000;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("grimnir-webstream-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn start(urls: Vec<String>, retry_primary: Duration) -> (Webstream, Receiver<WebstreamStatus>) {
    grimnir_engine::init().unwrap();
    let mut config = WebstreamConfig::new(urls, LiveConfig::new(RATE, 2));
    config.timeout = Duration::from_secs(2);
    config.retry_primary = retry_primary;
    let (tx, rx) = channel();
    let tx = Mutex::new(tx);
    let stream = Webstream::start(
        config,
        Box::new(move |s| {
            let _ = tx.lock().unwrap().send(s.clone());
        }),
    )
    .unwrap();
    (stream, rx)
}

/// Reads `stream` in real time (as the playout thread does) for up to `limit`, returning
/// the left channel, and stopping early when it ends (an error, or fewer frames than asked).
fn play(stream: &mut dyn Source, limit: Duration) -> (Vec<f32>, Option<String>) {
    let began = Instant::now();
    let mut left = Vec::new();
    let mut block = vec![0f32; 2 * 1024];
    let mut frames = 0u64;
    while began.elapsed() < limit {
        match stream.read(&mut block) {
            Ok(n) => {
                left.extend(block[..2 * n].iter().step_by(2));
                frames += n as u64;
                if n < 1024 {
                    return (left, Some("ended".into()));
                }
            }
            Err(e) => return (left, Some(e)),
        }
        // Keep to the wall clock.
        let due = Duration::from_secs_f64(frames as f64 / f64::from(RATE));
        if let Some(wait) = due.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    (left, None)
}

/// The frequency of `left` over `seconds` from `from`, by zero crossings (0 for silence).
fn frequency(left: &[f32], from: f64, seconds: f64) -> f64 {
    let a = ((from * f64::from(RATE)) as usize).min(left.len());
    let b = (a + (seconds * f64::from(RATE)) as usize).min(left.len());
    let crossings = left[a..b]
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0) && w[0].abs().max(w[1].abs()) > 1e-3)
        .count();
    crossings as f64 / 2.0 / seconds
}

/// The start of the first half-second window at `freq` (within 10 Hz) from `from` on.
fn first(left: &[f32], freq: f64, from: f64) -> Option<f64> {
    let end = left.len() as f64 / f64::from(RATE);
    let mut t = from;
    while t + 0.5 <= end {
        if (frequency(left, t, 0.5) - freq).abs() < 10.0 {
            return Some(t);
        }
        t += 0.25;
    }
    None
}

#[test]
fn the_fallback_takes_over_when_the_primary_dies_and_health_says_so() {
    let d = dir("failover");
    let mut primary = Server::start(mp3(&d.join("a.mp3"), 440, 30));
    let backup = Server::start(mp3(&d.join("b.mp3"), 660, 30));
    let (mut stream, statuses) = start(vec![primary.url(), backup.url()], Duration::from_secs(600));
    let (before, _) = play(&mut stream, Duration::from_secs(3));
    assert!(
        first(&before, 440.0, 0.0).is_some(),
        "no 440 Hz from the primary"
    );
    assert_eq!(stream.status().health, WebstreamHealth::Healthy);

    primary.kill();
    let (after, ended) = play(&mut stream, Duration::from_secs(8));
    assert!(ended.is_none(), "{ended:?}");
    let backup_at = first(&after, 660.0, 0.0).expect("the fallback never played");
    println!("fallback on air {backup_at:.2} s after the primary died");
    assert!(backup_at < 5.0, "the fallback took {backup_at} s");
    let status = stream.status();
    assert_eq!(status.health, WebstreamHealth::Degraded);
    assert_eq!((status.url, status.switches), (1, 1));
    let error = status.last_error.unwrap();
    assert!(error.contains(&primary.url()), "{error}");

    let seen: Vec<WebstreamHealth> = statuses.try_iter().map(|s| s.health).collect();
    let healthy = seen.iter().position(|h| *h == WebstreamHealth::Healthy);
    let degraded = seen.iter().position(|h| *h == WebstreamHealth::Degraded);
    assert!(
        healthy.is_some() && degraded.is_some() && healthy < degraded,
        "{seen:?}"
    );
    drop(backup);
}

#[test]
fn the_primary_takes_back_over_when_it_returns() {
    let d = dir("recover");
    let primary_audio = mp3(&d.join("a.mp3"), 440, 30);
    // The primary's port is reserved, and nothing answers on it yet.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let primary_url = format!("http://127.0.0.1:{port}/stream.mp3");
    let backup = Server::start(mp3(&d.join("b.mp3"), 660, 30));
    let (mut stream, _) = start(vec![primary_url, backup.url()], Duration::from_secs(1));
    let (first_part, _) = play(&mut stream, Duration::from_secs(3));
    assert!(first(&first_part, 660.0, 0.0).is_some(), "no fallback");
    assert_eq!(stream.status().health, WebstreamHealth::Degraded);

    let primary = Server::on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        primary_audio,
    );
    let (second_part, _) = play(&mut stream, Duration::from_secs(6));
    let back = first(&second_part, 440.0, 0.0).expect("the primary never came back");
    println!("primary back on air {back:.2} s after it returned");
    let status = stream.status();
    assert_eq!((status.health, status.url), (WebstreamHealth::Healthy, 0));
    drop(primary);
}

#[test]
fn a_chain_with_nothing_left_ends_with_the_reasons() {
    let urls = vec![dead_url(), dead_url()];
    let (mut stream, _) = start(urls.clone(), Duration::from_secs(600));
    let began = Instant::now();
    let (_, ended) = play(&mut stream, Duration::from_secs(15));
    let reason = ended.expect("the webstream did not end");
    println!("ended after {:?}: {reason}", began.elapsed());
    assert!(reason.contains("every URL"), "{reason}");
    assert!(
        reason.contains(&urls[1]) || reason.contains(&urls[0]),
        "{reason}"
    );
    assert_eq!(stream.status().health, WebstreamHealth::Down);
}

#[test]
fn bad_urls_are_refused_before_anything_opens() {
    grimnir_engine::init().unwrap();
    for urls in [
        vec![],
        vec!["ftp://example.org/x.mp3".to_owned()],
        vec!["http://127.0.0.1:1/a".to_owned(), "/media/b.mp3".to_owned()],
    ] {
        let config = WebstreamConfig::new(urls.clone(), LiveConfig::new(RATE, 2));
        let e = Webstream::start(config, Box::new(|_| {}))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("webstream"), "{urls:?}: {e}");
    }
}

/// A UDP/TCP port free on loopback now.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn network(url: &str) -> NetworkInput {
    grimnir_engine::init().unwrap();
    let mut config = LiveConfig::new(RATE, 2);
    config.idle_timeout = Duration::from_secs(2);
    NetworkInput::open(url, config).unwrap()
}

#[test]
fn srt_from_a_caller_arrives_and_ends_when_it_stops() {
    let port = free_port();
    let mut input = network(&format!("srt://127.0.0.1:{port}?mode=listener&latency=120"));
    let mut ffmpeg = live::sender(
        440,
        4,
        &["-c:a", "mp2", "-b:a", "192k", "-f", "mpegts"],
        &format!("srt://127.0.0.1:{port}?mode=caller"),
    );
    let began = Instant::now();
    let (left, ended) = play(&mut input, Duration::from_secs(15));
    let _ = ffmpeg.wait();
    assert!(
        ended.is_some(),
        "the input did not end after the sender stopped"
    );
    let at = first(&left, 440.0, 0.0).expect("no 440 Hz over SRT");
    println!(
        "SRT: audio after {at:.2} s, input ended after {:?}",
        began.elapsed()
    );
    let heard = (0..left.len() / RATE as usize)
        .filter(|s| (frequency(&left, *s as f64, 1.0) - 440.0).abs() < 10.0)
        .count();
    assert!(heard >= 2, "only {heard} s of the 4 s tone");
    assert!(input.error().is_none(), "{:?}", input.error());
}

#[test]
fn srt_with_a_passphrase_refuses_a_caller_without_it() {
    let port = free_port();
    let mut input = network(&format!(
        "srt://127.0.0.1:{port}?mode=listener&passphrase=correct-horse-battery"
    ));
    let mut wrong = live::sender(
        440,
        3,
        &["-c:a", "mp2", "-f", "mpegts"],
        &format!("srt://127.0.0.1:{port}?mode=caller&passphrase=wrong-passphrase-1"),
    );
    let (left, _) = play(&mut input, Duration::from_secs(3));
    let _ = wrong.kill();
    let _ = wrong.wait();
    assert!(
        first(&left, 440.0, 0.0).is_none(),
        "audio came through with the wrong passphrase"
    );
    assert!(!input.is_ready());
    drop(input);

    let port = free_port();
    let mut input = network(&format!(
        "srt://127.0.0.1:{port}?mode=listener&passphrase=correct-horse-battery"
    ));
    let mut right = live::sender(
        440,
        3,
        &["-c:a", "mp2", "-f", "mpegts"],
        &format!("srt://127.0.0.1:{port}?mode=caller&passphrase=correct-horse-battery"),
    );
    let (left, _) = play(&mut input, Duration::from_secs(5));
    let _ = right.kill();
    let _ = right.wait();
    assert!(
        first(&left, 440.0, 0.0).is_some(),
        "no audio with the right passphrase"
    );
}

#[test]
fn rtp_opus_arrives_and_ends_when_it_stops() {
    let port = free_port();
    let mut input = network(&format!("rtp://127.0.0.1:{port}?encoding=OPUS"));
    let mut ffmpeg = live::sender(
        660,
        4,
        &[
            "-c:a",
            "libopus",
            "-b:a",
            "96k",
            "-payload_type",
            "96",
            "-f",
            "rtp",
        ],
        &format!("rtp://127.0.0.1:{port}"),
    );
    let (left, ended) = play(&mut input, Duration::from_secs(15));
    let _ = ffmpeg.wait();
    assert!(
        ended.is_some(),
        "the input did not end after the sender stopped"
    );
    let at = first(&left, 660.0, 0.0).expect("no 660 Hz over RTP");
    println!("RTP: audio after {at:.2} s");
    assert!(input.error().is_none(), "{:?}", input.error());
}
