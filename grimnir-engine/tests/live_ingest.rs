//! Live ingest: a real source client (ffmpeg's icecast protocol) goes live through the source
//! endpoint; wrong credentials and a taken mount are refused; the jitter buffer holds its depth
//! over repeated dropouts.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use grimnir_engine::input::icecast::{Credentials, ListenerEvent, SourceListener};
use grimnir_engine::input::{LiveConfig, LiveSource};
use grimnir_engine::mix::Source;

const RATE: u32 = 48_000;

fn listener() -> SourceListener {
    grimnir_engine::init().unwrap();
    let auth =
        Arc::new(|c: &Credentials| c.mount == "/live" && c.user == "dj" && c.password == "s3cret");
    SourceListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        LiveConfig::new(RATE, 2),
        auth,
    )
    .unwrap()
}

/// ffmpeg streaming `seconds` of a 440 Hz sine as MP3 to `url`, in real time.
fn ffmpeg_source(url: &str, seconds: u32) -> std::process::Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=44100:duration={seconds}"
        ))
        .args(["-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k"])
        .args(["-content_type", "audio/mpeg", "-ice_name", "Morning show"])
        .args(["-f", "mp3", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is needed")
}

/// Waits for a child to exit, at most `limit`; kills it past that.
fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The left channel's frequency: its rising passes from below -0.01 to above +0.01 (the
/// hysteresis ignores the encoder's near-silent start), per second of the stretch between the
/// first and the last.
fn frequency(interleaved: &[f32]) -> f64 {
    let mut rises = Vec::new();
    let mut low = false;
    for (k, x) in interleaved.iter().step_by(2).enumerate() {
        if *x < -0.01 {
            low = true;
        } else if *x > 0.01 && low {
            low = false;
            rises.push(k);
        }
    }
    match (rises.first(), rises.last()) {
        (Some(a), Some(b)) if b > a => {
            (rises.len() - 1) as f64 / ((b - a) as f64 / f64::from(RATE))
        }
        _ => 0.0,
    }
}

#[test]
fn a_dj_streaming_with_ffmpeg_goes_live_and_ends_when_they_stop() {
    let listener = listener();
    let port = listener.local_addr().port();
    let mut dj = ffmpeg_source(&format!("icecast://dj:s3cret@127.0.0.1:{port}/live"), 3);
    let mut live = listener
        .accept(Duration::from_secs(10))
        .expect("the source connected");
    assert_eq!((live.mount.as_str(), live.user.as_str()), ("/live", "dj"));
    assert_eq!(live.content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(live.name.as_deref(), Some("Morning show"));
    assert!(live.source.wait_ready(Duration::from_secs(5)), "buffered");

    // 400 ms of what it sends (less than the buffer holds, so no dropout): the sine, decoded
    // and resampled to the station's rate.
    let frames = 4 * RATE as usize / 10;
    let mut first = vec![0f32; 2 * frames];
    assert_eq!(live.source.read(&mut first).unwrap(), frames);
    assert_eq!(live.source.stats().underruns, 0);
    let f = frequency(&first);
    assert!((f - 440.0).abs() < 5.0, "{f} Hz");

    // ffmpeg stops after 3 s: the source plays out and ends (a bounded number of reads).
    assert!(wait(&mut dj, Duration::from_secs(15)).success());
    let mut block = vec![0f32; 2 * 1024];
    let mut reads = 0;
    while live.source.read(&mut block).unwrap() == 1024 {
        reads += 1;
        assert!(reads < 1000, "the source never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(live.source.is_finished());
    let ended = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(10));
        listener.events().into_iter().find_map(|e| match e {
            ListenerEvent::Ended { mount, reason, .. } => Some((mount, reason)),
            _ => None,
        })
    });
    assert_eq!(ended, Some(("/live".to_owned(), None)));
}

#[test]
fn a_wrong_password_is_refused_and_nothing_goes_live() {
    let listener = listener();
    let port = listener.local_addr().port();
    let mut dj = ffmpeg_source(&format!("icecast://dj:guess@127.0.0.1:{port}/live"), 2);
    let status = wait(&mut dj, Duration::from_secs(15));
    let mut stderr = String::new();
    dj.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "ffmpeg was let in");
    assert!(
        stderr.contains("401") || stderr.contains("Unauthorized"),
        "{stderr}"
    );
    assert!(listener.accept(Duration::from_millis(200)).is_none());
    let refused = listener.events();
    assert!(
        refused
            .iter()
            .any(|e| matches!(e, ListenerEvent::Refused { reason, .. }
            if reason.contains("/live: wrong or missing credentials"))),
        "{refused:?}"
    );
}

/// Sends a raw request head and returns the status line.
fn status_of(port: u16, head: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The status line, however the answer is split into reads.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") && answer.len() < 256 {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&answer).trim_end().to_owned()
}

#[test]
fn a_taken_mount_and_bad_requests_are_refused() {
    let listener = listener();
    let port = listener.local_addr().port();
    // dj:s3cret
    let auth = "Authorization: Basic ZGo6czNjcmV0\r\n";
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first
        .write_all(
            format!("SOURCE /live HTTP/1.0\r\n{auth}Content-Type: audio/mpeg\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut ok = [0u8; 64];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = first.read(&mut ok).unwrap();
    assert!(String::from_utf8_lossy(&ok[..n]).starts_with("HTTP/1.0 200 OK"));
    let _live = listener.accept(Duration::from_secs(5)).unwrap();

    let taken = status_of(port, &format!("SOURCE /live HTTP/1.0\r\n{auth}\r\n"));
    assert!(taken.contains("403"), "{taken}");
    for (head, status) in [
        ("GET /live HTTP/1.0\r\n\r\n".to_owned(), "405"),
        ("hello\r\n\r\n".to_owned(), "400"),
        (format!("PUT /other HTTP/1.1\r\n{auth}\r\n"), "401"),
    ] {
        let got = status_of(port, &head);
        assert!(got.contains(status), "{head:?}: {got}");
    }
    assert!(
        status_of(
            port,
            &format!("PUT /live2 HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n")
        )
        .contains("400")
    );
    // The taken mount frees when its source leaves.
    drop(first);
    let freed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        listener
            .events()
            .iter()
            .any(|e| matches!(e, ListenerEvent::Ended { .. }))
    });
    assert!(freed);
    let mut again = TcpStream::connect(("127.0.0.1", port)).unwrap();
    again
        .write_all(format!("PUT /live HTTP/1.1\r\n{auth}Expect: 100-continue\r\n\r\n").as_bytes())
        .unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = again.read(&mut ok).unwrap();
    assert!(String::from_utf8_lossy(&ok[..n]).starts_with("HTTP/1.1 100 Continue"));
}

/// A WAV header for an endless 48 kHz stereo 16-bit stream.
fn wav_header() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&RATE.to_le_bytes());
    h.extend_from_slice(&(RATE * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
}

/// `frames` of a loud constant as 16-bit stereo PCM.
fn pcm(frames: usize) -> Vec<u8> {
    (0..frames * 2)
        .flat_map(|_| 16_000i16.to_le_bytes())
        .collect()
}

/// Waits until the decoder has caught up with what was sent (it may hold back a few ms).
fn settle(source: &LiveSource, sent: u64) {
    let mut last = u64::MAX;
    for _ in 0..500 {
        let now = source.stats().decoded;
        if now + 2_000 >= sent && now == last {
            return;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("decoded {} of {sent}", source.stats().decoded);
}

#[test]
fn ten_dropouts_in_a_row_do_not_shrink_the_buffer() {
    grimnir_engine::init().unwrap();
    let config = LiveConfig::new(RATE, 2); // 500 ms target
    let target = RATE as u64 / 2;
    let mut source = LiveSource::start(config).unwrap();
    let feeder = source.feeder();
    feeder.push(&wav_header()).unwrap();
    let tenth = RATE as usize / 10;
    let mut block = vec![0f32; 2 * tenth];
    let mut sent = 0u64;
    let mut waits = Vec::new();
    for gap in 0..10 {
        // Audio trickles back in, 100 ms at a time, read as it comes: silence until the
        // buffer holds its full target again, then the audio, every time.
        let mut silent_reads = 0;
        loop {
            feeder.push(&pcm(tenth)).unwrap();
            sent += tenth as u64;
            settle(&source, sent);
            let depth = source.stats().depth;
            assert_eq!(source.read(&mut block).unwrap(), tenth);
            if depth < target {
                assert!(
                    block.iter().all(|&x| x == 0.0),
                    "gap {gap}: played at {depth}"
                );
                silent_reads += 1;
                assert!(silent_reads < 20, "gap {gap}: never resumed");
            } else {
                assert!(
                    block.iter().all(|&x| x != 0.0),
                    "gap {gap}: silent at {depth}"
                );
                break;
            }
        }
        waits.push(silent_reads);
        // Then a one-second dropout: what is buffered plays, then silence.
        for _ in 0..10 {
            assert_eq!(source.read(&mut block).unwrap(), tenth);
        }
        assert!(block.iter().all(|&x| x == 0.0));
        assert_eq!(source.stats().underruns, gap + 1);
    }
    // Every gap waited as long for the buffer to refill: it did not shrink.
    assert!(waits.iter().all(|&w| w == waits[0] && w >= 4), "{waits:?}");

    // The end of the stream plays out and ends the source.
    feeder.push(&pcm(tenth)).unwrap();
    feeder.finish();
    let mut total = 0;
    for _ in 0..200 {
        let n = source.read(&mut block).unwrap();
        total += n;
        if n < tenth {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(source.is_finished(), "{:?}", source.stats());
    assert!(total <= 40 * tenth, "{total}");
}
