//! The Icecast source client against a real `icecast2` (started per test on a free loopback
//! port) and against small fake servers for what a real one will not do (stall, show the raw
//! request). Real-server tests are skipped with a printed reason when `icecast2` is not
//! installed, unless `CI=true`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/icecast_server.rs"]
mod icecast_server;
#[path = "common/media.rs"]
mod media;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use grimnir_engine::output::{
    Backoff, Destination, Icecast, IcecastConfig, NowPlaying, Output, OutputState, Packet,
    StreamInfo,
};
use icecast_server::{IcecastServer, free_port};

const MOUNT: &str = "/live";
/// Quick retries: the tests wait for reconnects.
const BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_millis(400),
};

/// Three seconds of a 440 Hz sine as 128 kbit/s CBR MP3 frames, encoded once per test binary.
fn mp3() -> &'static (StreamInfo, Vec<Packet>) {
    static MP3: OnceLock<(StreamInfo, Vec<Packet>)> = OnceLock::new();
    MP3.get_or_init(|| {
        let (caps, packets) = media::encode(
            "audiotestsrc wave=sine freq=440 volume=0.3 num-buffers=115 samplesperbuffer=1152 \
             ! audio/x-raw,format=S16LE,rate=44100,channels=2 \
             ! lamemp3enc target=bitrate bitrate=128 cbr=true ! mpegaudioparse \
             ! appsink name=sink sync=false",
        );
        assert!(packets.len() > 100, "{} MP3 frames", packets.len());
        let info = StreamInfo {
            caps,
            content_type: "audio/mpeg",
            extension: "mp3",
            bitrate: Some(128),
            rate: 44_100,
            channels: 2,
        };
        (info, packets)
    })
}

fn config(server: &IcecastServer) -> IcecastConfig {
    let mut config =
        IcecastConfig::new("127.0.0.1", server.port(), MOUNT, server.source_password());
    config.timeout = Duration::from_secs(3);
    config
}

/// Sends the packets to an output at their own pace, round and round, until dropped.
struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    fn start(output: Arc<Output>, packets: Vec<Packet>) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut due = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                for packet in &packets {
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(wait) = (start + due).checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    output.send(packet.clone());
                    due += packet
                        .buffer
                        .duration()
                        .map_or(Duration::from_millis(26), Duration::from);
                }
            }
        });
        Feeder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    done()
}

/// An MP3 output to the server's `/live`, fed in real time.
fn on_air(server: &IcecastServer, config: IcecastConfig) -> (Arc<Output>, Feeder) {
    let (info, packets) = mp3();
    let output = Arc::new(
        Output::start(
            "icecast",
            info.clone(),
            Box::new(Icecast::new(config)),
            64,
            BACKOFF,
        )
        .unwrap(),
    );
    let feeder = Feeder::start(Arc::clone(&output), packets.clone());
    assert!(
        wait_until(Duration::from_secs(10), || output.health().state
            == OutputState::Up),
        "not up: {:?}\n{}",
        output.health(),
        server.logs()
    );
    assert!(
        server.wait_for_mount(MOUNT, Duration::from_secs(10)),
        "no source on {MOUNT}: {:?}",
        server.status_json()
    );
    (output, feeder)
}

/// Decodes `bytes` of MP3 with ffmpeg: its codec, and its mono samples.
fn decode_mp3(bytes: &[u8], name: &str) -> (String, Vec<i16>) {
    let path: PathBuf =
        std::env::temp_dir().join(format!("grimnir-icecast-{}-{name}.mp3", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["stream=codec_name,sample_rate,channels", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe is needed");
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "s16le", "-ac", "1", "-"])
        .output()
        .expect("ffmpeg is needed");
    let _ = std::fs::remove_file(&path);
    assert!(probe.status.success(), "ffprobe: {probe:?}");
    assert!(decoded.status.success(), "ffmpeg: {decoded:?}");
    let samples = decoded
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (
        String::from_utf8_lossy(&probe.stdout).trim().to_owned(),
        samples,
    )
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Asserts `bytes` hold at least `seconds` of the test's sine.
fn assert_sine(bytes: &[u8], seconds: f64, name: &str) {
    let (stream, samples) = decode_mp3(bytes, name);
    assert_eq!(stream, "mp3,44100,2");
    let decoded = samples.len() as f64 / 44_100.0;
    assert!(decoded >= seconds, "only {decoded:.2} s decoded");
    // volume=0.3 of full scale: an RMS near 0.3 / √2 × 32767 ≈ 6950.
    let level = rms(&samples);
    assert!((5_000.0..9_000.0).contains(&level), "RMS {level:.0}");
}

#[test]
fn a_listener_receives_decodable_mp3_with_the_station_details() {
    let Some(server) = IcecastServer::start_or_skip() else {
        return;
    };
    let mut config = config(&server);
    config.name = Some("Grimnir Rádio".to_owned());
    config.description = Some("Tests on air".to_owned());
    config.genre = Some("Sine".to_owned());
    config.url = Some("https://grimnir.example/".to_owned());
    let (output, feeder) = on_air(&server, config);

    let mut listener = server.listen(MOUNT, false);
    let audio = listener.read_audio(48_000, Duration::from_secs(10));
    assert_eq!(audio.len(), 48_000);
    assert_sine(&audio, 2.5, "listener");

    let source = server.source(MOUNT).unwrap();
    assert_eq!(source["server_name"], "Grimnir Rádio");
    assert_eq!(source["server_description"], "Tests on air");
    assert_eq!(source["genre"], "Sine");
    assert_eq!(source["server_url"], "https://grimnir.example/");
    assert_eq!(source["server_type"], "audio/mpeg");
    assert_eq!(source["bitrate"], 128);
    assert_eq!(source["ice-samplerate"], 44_100);
    assert_eq!(source["ice-channels"], 2);
    assert_eq!(
        source["audio_info"],
        "ice-samplerate=44100;ice-channels=2;ice-bitrate=128"
    );

    drop(feeder);
    let health = output.health();
    assert_eq!(health.state, OutputState::Up, "{health:?}");
    assert!(health.bytes >= 48_000, "{health:?}");
    assert_eq!(health.reconnects, 0);
    assert_eq!(health.last_error, None);
}

#[test]
fn the_title_reaches_the_status_page_and_icy_listeners() {
    let Some(server) = IcecastServer::start_or_skip() else {
        return;
    };
    let (output, _feeder) = on_air(&server, config(&server));
    let mut listener = server.listen(MOUNT, true);
    assert_eq!(
        listener.read_audio(8_000, Duration::from_secs(5)).len(),
        8_000
    );

    let meta = NowPlaying {
        artist: Some("Björk & Guðmundur".to_owned()),
        title: "Jóga + 日本 ♪ 100%".to_owned(),
    };
    let title = meta.stream_title();
    output.now_playing(meta);

    assert!(
        wait_until(Duration::from_secs(5), || server
            .source(MOUNT)
            .is_some_and(|s| s["title"] == title.as_str())),
        "status: {:?}",
        server.source(MOUNT)
    );
    assert!(
        listener.wait_for_title(&title, Duration::from_secs(10)),
        "the listener saw {:?}",
        listener.titles()
    );
    // And the audio around the metadata blocks is still the stream.
    let audio = listener.read_audio(40_000, Duration::from_secs(10));
    assert_sine(&audio, 2.0, "icy-listener");
    assert_eq!(output.health().last_error, None);
}

#[test]
fn a_wrong_password_is_reported_down_with_the_mount_and_refusal() {
    let Some(server) = IcecastServer::start_or_skip() else {
        return;
    };
    let mut config = config(&server);
    config.password = "not-the-password".to_owned();
    let (info, _) = mp3();
    let output = Output::start(
        "icecast",
        info.clone(),
        Box::new(Icecast::new(config)),
        64,
        BACKOFF,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(10), || output
        .health()
        .last_error
        .is_some()));
    let health = output.health();
    assert_eq!(health.state, OutputState::Down);
    let error = health.last_error.unwrap();
    let place = format!("Icecast 127.0.0.1:{} mount /live", server.port());
    assert!(error.starts_with(&place), "{error}");
    assert!(error.contains("wrong user or password"), "{error}");
    assert!(error.contains("401"), "{error}");
    assert!(server.mounts().is_empty());
}

#[test]
fn a_mount_in_use_is_refused_clearly() {
    let Some(server) = IcecastServer::start_or_skip() else {
        return;
    };
    let (_output, _feeder) = on_air(&server, config(&server));
    let (info, _) = mp3();
    let mut second = Icecast::new(config(&server));
    let error = second.open(info, &[]).unwrap_err();
    assert!(error.contains("mount /live"), "{error}");
    assert!(error.contains("the mount already has a source"), "{error}");
    assert!(error.contains("Mountpoint in use"), "{error}");
    assert!(!second.is_connected());
}

#[test]
fn the_output_reconnects_when_the_server_comes_back() {
    let Some(mut server) = IcecastServer::start_or_skip() else {
        return;
    };
    let (output, _feeder) = on_air(&server, config(&server));
    let mut listener = server.listen(MOUNT, false);
    assert_eq!(
        listener.read_audio(16_000, Duration::from_secs(5)).len(),
        16_000
    );

    server.stop();
    assert!(
        wait_until(Duration::from_secs(10), || output.health().state
            == OutputState::Down),
        "{:?}",
        output.health()
    );
    let health = output.health();
    let error = health.last_error.unwrap();
    assert!(error.contains("mount /live"), "{error}");

    server.start_again();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let h = output.health();
            h.state == OutputState::Up && h.reconnects >= 1
        }),
        "{:?}\n{}",
        output.health(),
        server.logs()
    );
    assert!(server.wait_for_mount(MOUNT, Duration::from_secs(10)));
    let mut listener = server.listen(MOUNT, false);
    let audio = listener.read_audio(40_000, Duration::from_secs(10));
    assert_eq!(audio.len(), 40_000);
    assert_sine(&audio, 2.0, "after-restart");
}

/// A stand-in server: answers every connection's request head with `reply`, then reads
/// until the client closes; hands back everything each client sent.
fn fake_server(connections: usize, reply: &'static str) -> (u16, Receiver<Vec<u8>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut accepted = 0;
        while accepted < connections && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    accepted += 1;
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        stream.set_nonblocking(false).unwrap();
                        let _ = tx.send(serve(stream, reply));
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, rx)
}

fn serve(mut stream: TcpStream, reply: &str) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return data,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    stream.write_all(reply.as_bytes()).unwrap();
    let _ = stream.read_to_end(&mut data);
    data
}

const ADMIN_OK: &str = "HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<?xml \
                        version=\"1.0\"?>\n<iceresponse><message>Metadata update \
                        successful</message><return>1</return></iceresponse>\n";

fn split_request(data: &[u8]) -> (Vec<String>, Vec<u8>) {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(data[..end].to_vec()).unwrap();
    (
        head.split("\r\n").map(str::to_owned).collect(),
        data[end + 4..].to_vec(),
    )
}

fn mp3_info() -> StreamInfo {
    gst::init().unwrap();
    StreamInfo {
        caps: gst::Caps::builder("audio/mpeg").build(),
        content_type: "audio/mpeg",
        extension: "mp3",
        bitrate: Some(128),
        rate: 44_100,
        channels: 2,
    }
}

#[test]
fn the_source_request_carries_credentials_details_and_headers_first() {
    let (port, requests) = fake_server(1, "HTTP/1.0 200 OK\r\n\r\n");
    let mut config = IcecastConfig::new("127.0.0.1", port, "live", "hackme");
    config.name = Some("Grimnir\r\nX-Injected: 1".to_owned());
    config.description = Some("Déscription".to_owned());
    config.genre = Some("Jazz".to_owned());
    config.url = Some("https://grimnir.example/".to_owned());
    config.public = true;
    let mut icecast = Icecast::new(config);
    let info = mp3_info();
    let header = Packet::from_slice(b"HEADER", true);
    icecast.open(&info, &[header]).unwrap();
    icecast
        .write(&Packet::from_slice(b"AUDIO1", false))
        .unwrap();
    icecast
        .write(&Packet::from_slice(b"AUDIO2", false))
        .unwrap();
    icecast.close();
    assert!(!icecast.is_connected());

    let (head, body) = split_request(&requests.recv_timeout(Duration::from_secs(10)).unwrap());
    assert_eq!(head[0], "PUT /live HTTP/1.1");
    for expected in [
        format!("Host: 127.0.0.1:{port}"),
        // base64("source:hackme")
        "Authorization: Basic c291cmNlOmhhY2ttZQ==".to_owned(),
        "Content-Type: audio/mpeg".to_owned(),
        "Ice-Public: 1".to_owned(),
        "Ice-Name: Grimnir  X-Injected: 1".to_owned(),
        "Ice-Description: Déscription".to_owned(),
        "Ice-Genre: Jazz".to_owned(),
        "Ice-Url: https://grimnir.example/".to_owned(),
        "Ice-Audio-Info: ice-samplerate=44100;ice-channels=2;ice-bitrate=128".to_owned(),
    ] {
        assert!(
            head.contains(&expected),
            "{expected:?} missing from {head:#?}"
        );
    }
    assert!(!head.iter().any(|h| h.starts_with("X-Injected")));
    assert_eq!(body, b"HEADERAUDIO1AUDIO2");
}

#[test]
fn the_title_update_is_percent_encoded_utf8_with_the_source_credentials() {
    let (port, requests) = fake_server(2, ADMIN_OK);
    let mut icecast = Icecast::new(IcecastConfig::new("127.0.0.1", port, "/live", "hackme"));
    icecast.open(&mp3_info(), &[]).unwrap();
    let meta = NowPlaying {
        artist: Some("Sigur Rós".to_owned()),
        title: "Hoppípolla & 日本 +1".to_owned(),
    };
    icecast.now_playing(&meta).unwrap();
    icecast.close();
    let mut heads: Vec<Vec<String>> = (0..2)
        .map(|_| split_request(&requests.recv_timeout(Duration::from_secs(10)).unwrap()).0)
        .collect();
    heads.sort_by_key(|h| h[0].starts_with("PUT"));
    let admin = &heads[0];
    assert_eq!(
        admin[0],
        "GET /admin/metadata?mount=%2Flive&mode=updinfo\
         &song=Sigur%20R%C3%B3s%20-%20Hopp%C3%ADpolla%20%26%20%E6%97%A5%E6%9C%AC%20%2B1\
         &charset=UTF-8 HTTP/1.0"
    );
    assert!(admin.contains(&"Authorization: Basic c291cmNlOmhhY2ttZQ==".to_owned()));
}

#[test]
fn a_refused_title_update_is_an_error_with_icecasts_message() {
    let refusal = "HTTP/1.0 200 OK\r\n\r\n<?xml version=\"1.0\"?>\n<iceresponse><message>No \
                   such mount</message><return>0</return></iceresponse>\n";
    let (port, _requests) = fake_server(2, refusal);
    let mut icecast = Icecast::new(IcecastConfig::new("127.0.0.1", port, "/live", "pw"));
    icecast.open(&mp3_info(), &[]).unwrap();
    let error = icecast
        .now_playing(&NowPlaying {
            artist: None,
            title: "x".to_owned(),
        })
        .unwrap_err();
    assert!(
        error.contains("mount /live: title update refused"),
        "{error}"
    );
    assert!(error.contains("No such mount"), "{error}");
}

#[test]
fn ogg_titles_travel_in_the_stream_so_no_request_is_made() {
    let (port, requests) = fake_server(2, ADMIN_OK);
    let mut icecast = Icecast::new(IcecastConfig::new("127.0.0.1", port, "/live.ogg", "pw"));
    let info = StreamInfo {
        caps: gst::Caps::builder("audio/ogg").build(),
        content_type: "audio/ogg",
        extension: "ogg",
        bitrate: None,
        rate: 48_000,
        channels: 2,
    };
    icecast.open(&info, &[]).unwrap();
    icecast
        .now_playing(&NowPlaying {
            artist: None,
            title: "Ignored".to_owned(),
        })
        .unwrap();
    icecast.close();
    let (head, _) = split_request(&requests.recv_timeout(Duration::from_secs(10)).unwrap());
    assert_eq!(head[0], "PUT /live.ogg HTTP/1.1");
    assert!(head.contains(&"Content-Type: audio/ogg".to_owned()));
    assert!(head.contains(&"Ice-Audio-Info: ice-samplerate=48000;ice-channels=2".to_owned()));
    assert!(requests.recv_timeout(Duration::from_millis(500)).is_err());
}

#[test]
fn a_stalled_server_turns_into_an_error_instead_of_blocking() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release, released) = channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        // Accept nothing more, but keep the connection open.
        let _ = released.recv_timeout(Duration::from_secs(30));
    });
    let mut config = IcecastConfig::new("127.0.0.1", port, "/live", "pw");
    config.timeout = Duration::from_millis(300);
    let mut icecast = Icecast::new(config);
    icecast.open(&mp3_info(), &[]).unwrap();
    let packet = Packet::from_slice(&vec![0x55; 64 * 1024], false);
    let start = Instant::now();
    let mut error = None;
    // Loopback buffers hold some megabytes; 256 MiB is far more than any.
    for _ in 0..4096 {
        if let Err(e) = icecast.write(&packet) {
            error = Some(e);
            break;
        }
    }
    let elapsed = start.elapsed();
    release.send(()).unwrap();
    server.join().unwrap();
    let error = error.expect("writes to a stalled server kept succeeding");
    assert!(error.contains("mount /live: connection lost"), "{error}");
    assert!(error.contains("did not respond within 300ms"), "{error}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(!icecast.is_connected());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = free_port();
    let mut icecast = Icecast::new(IcecastConfig::new("127.0.0.1", port, "/live", "pw"));
    let error = icecast.open(&mp3_info(), &[]).unwrap_err();
    assert!(
        error.starts_with(&format!(
            "Icecast 127.0.0.1:{port} mount /live: cannot connect"
        )),
        "{error}"
    );
}
