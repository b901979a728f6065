//! The engine process: every gRPC call round-trips on a real `grimnir-engine` process and on
//! an in-process server, tokens are checked, bad input is refused by name while the air goes
//! on, the queue plays on without its controller, and an emergency's delay is measured in
//! the recorded output.
#![cfg(feature = "process")]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/http_audio.rs"]
mod http_audio;
#[path = "common/live.rs"]
mod live;
#[path = "common/media.rs"]
mod media;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use grimnir_engine::input::LiveConfig;
use grimnir_engine::input::icecast::SourceListener;
use grimnir_engine::process::client::{Update, Updates, item};
use grimnir_engine::process::config::LiveCredentials;
use grimnir_engine::process::server::{Bound, EngineServer, Listen, ServeError};
use grimnir_engine::process::{ClientError, EngineClient, proto};
use grimnir_engine::station::StationConfig;
use live::{LIVE_KEY, LIVE_STATION, dj, live_credential};

const RATE: u32 = 48_000;
const SECOND: i64 = 1_000_000_000;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("grimnir-process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sine_wav(path: &Path, freq: f32, amplitude: f32, seconds: f32) -> String {
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
    path.display().to_string()
}

/// A DSP graph that leaves the audio as it is, so levels in the recording are the files'.
const FLAT_GRAPH: &str = "nodes: []\n";

/// The real binary, killed when dropped.
struct Engine {
    child: Child,
    listen: Listen,
}

impl Engine {
    fn spawn(args: &[&str]) -> Engine {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grimnir-engine"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the engine did not say where it listens");
        Engine {
            child,
            listen: Listen::parse(&addr).unwrap(),
        }
    }

    /// SIGTERM, and waits (bounded) for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "the engine did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Updates until `done` returns a value, each within 3 s (telemetry comes every second),
/// at most `limit` in all.
async fn wait_for<T>(
    updates: &mut Updates,
    limit: Duration,
    mut done: impl FnMut(&Update) -> Option<T>,
) -> T {
    let until = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < until,
            "gave up waiting; updates so far: {seen:#?}"
        );
        let update = updates.next_within(Duration::from_secs(3)).await.unwrap();
        if let Some(t) = done(&update) {
            return t;
        }
        if !matches!(update, Update::Telemetry(_)) {
            seen.push(update);
        }
    }
}

fn started(id: &str) -> impl FnMut(&Update) -> Option<proto::ItemStarted> + '_ {
    move |u| match u {
        Update::Started(s) if s.id == id => Some(s.clone()),
        _ => None,
    }
}

fn ended(id: &str) -> impl FnMut(&Update) -> Option<proto::ItemEnded> + '_ {
    move |u| match u {
        Update::Ended(e) if e.id == id => Some(e.clone()),
        _ => None,
    }
}

fn refused(result: Result<impl std::fmt::Debug, ClientError>) -> (tonic::Code, String) {
    match result {
        Err(ClientError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// An in-process engine serving on a Unix socket, with a recording.
struct InProcess {
    server: std::sync::Arc<EngineServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    listen: Listen,
}

impl InProcess {
    async fn start(d: &Path, listen: Listen, token: Option<&str>) -> InProcess {
        InProcess::start_with(d, listen, token, None, None).await
    }

    /// With a fallback file and a live source endpoint, if given.
    async fn start_with(
        d: &Path,
        listen: Listen,
        token: Option<&str>,
        fallback: Option<&str>,
        live: Option<(SourceListener, Vec<String>)>,
    ) -> InProcess {
        let mut config = StationConfig::new(grimnir_dsp::DspGraph::from_yaml(FLAT_GRAPH).unwrap());
        config = config.output(
            "archive",
            grimnir_engine::encode::Encoding::Flac,
            grimnir_engine::output::record::Recorder::new(
                grimnir_engine::output::record::RecordConfig::new(d.join("rec"), "rec"),
            ),
        );
        let mut server = EngineServer::start(config, fallback.map(PathBuf::from)).unwrap();
        if let Some((listener, mounts)) = live {
            server.attach_live(listener, mounts).unwrap();
        }
        let server = std::sync::Arc::new(server);
        let bound = Bound::bind(&listen).unwrap();
        let listen = bound.listen().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = std::sync::Arc::clone(&server);
        let token = token.map(str::to_owned);
        let task = tokio::spawn(async move {
            serving
                .serve(bound, token.as_deref(), async {
                    let _ = stopped.await;
                })
                .await
        });
        InProcess {
            server,
            stop: Some(stop),
            task: Some(task),
            listen,
        }
    }

    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        if let Ok(server) = std::sync::Arc::try_unwrap(self.server) {
            server.stop();
        }
    }
}

#[test]
fn every_call_round_trips_on_a_real_engine_process() {
    let d = dir("calls");
    let a = sine_wav(&d.join("a.wav"), 440.0, 0.2, 3.0);
    let b = sine_wav(&d.join("b.wav"), 660.0, 0.2, 3.0);
    let alert = sine_wav(&d.join("alert.wav"), 1000.0, 0.5, 0.5);
    let socket = d.join("engine.sock");
    let engine = Engine::spawn(&[
        "--listen",
        &format!("unix:{}", socket.display()),
        "--record",
        &format!("{}=flac", d.join("rec").display()),
    ]);
    runtime().block_on(async {
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let health = client.health().await.unwrap();
        assert_eq!(health.reply.rate, RATE);
        assert!(health.reply.items.is_empty());
        // The mapping between the clocks is one reading of both, taken just now.
        let unix_now = SystemClock::unix_ns();
        assert!((health.clock.unix_ns - unix_now).abs() < 5 * SECOND);
        assert!(health.clock.station_ns >= 0);

        let mut updates = client.updates().await.unwrap();
        // Telemetry every second: three reports, each within a bounded wait.
        let mut clocks = Vec::new();
        while clocks.len() < 3 {
            if let Update::Telemetry(t) = updates.next_within(Duration::from_secs(3)).await.unwrap()
            {
                clocks.push(t.station_ns);
            }
        }
        assert!(clocks.windows(2).all(|w| w[1] > w[0]), "{clocks:?}");

        client.load_graph(FLAT_GRAPH).await.unwrap();
        client.load_graph("{\"nodes\": []}").await.unwrap();

        let at = client.play(item("a", &a), None).await.unwrap();
        let s = wait_for(&mut updates, Duration::from_secs(10), started("a")).await;
        assert!(s.at_ns >= at - SECOND / 10);

        let now = client.health().await.unwrap().clock.station_ns;
        let pending = client
            .queue(
                [
                    (item("b", &b), now + 2 * SECOND),
                    (item("c", &b), now + 60 * SECOND),
                ],
                false,
            )
            .await
            .unwrap();
        assert_eq!(pending, 2);
        let held = client.health().await.unwrap().reply.items;
        let ids: Vec<&str> = held
            .iter()
            .map(|h| h.item.as_ref().unwrap().id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(held[0].state, proto::ItemState::OnAir as i32);

        // "c" is cancelled before it starts; "a" fades out over 0.5 s.
        client.stop("c").await.unwrap();
        client
            .fade("a", None, Duration::from_millis(500))
            .await
            .unwrap();
        let e = wait_for(&mut updates, Duration::from_secs(10), ended("a")).await;
        assert!(e.at_ns < at + 3 * SECOND, "the fade ended it early: {e:?}");
        let s = wait_for(&mut updates, Duration::from_secs(10), started("b")).await;
        assert!(s.late_ns < SECOND / 2, "{s:?}");

        let received = client.insert_emergency(item("eas", &alert)).await.unwrap();
        let s = wait_for(&mut updates, Duration::from_secs(10), started("eas")).await;
        assert!(s.at_ns >= received);
        // The emergency cut "b": it is no longer held.
        let held = client.health().await.unwrap().reply;
        assert!(held.emergency);
        assert!(
            held.items
                .iter()
                .all(|h| h.item.as_ref().unwrap().id != "b")
        );
        wait_for(&mut updates, Duration::from_secs(10), ended("eas")).await;

        client
            .queue([(item("d", &a), now + 30 * SECOND)], false)
            .await
            .unwrap();
        client.stop_all().await.unwrap();
        assert!(client.health().await.unwrap().reply.items.is_empty());
    });
    assert!(engine.terminate().success());
    // The recording is real audio of the time the engine ran.
    let recorded = recording(&d.join("rec"));
    let samples = media::decode(&recorded);
    assert!(
        samples.len() > 2 * 5 * RATE as usize,
        "{} samples",
        samples.len()
    );
    assert!(samples.iter().any(|x| x.abs() > 0.1));
}

struct SystemClock;

impl SystemClock {
    fn unix_ns() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    }
}

/// The one recording file in `dir`.
fn recording(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn bad_input_is_refused_by_name_and_the_air_goes_on() {
    let d = dir("bad");
    let a = sine_wav(&d.join("a.wav"), 440.0, 0.2, 2.0);
    let rt = runtime();
    rt.block_on(async {
        let engine = InProcess::start(&d, Listen::Unix(d.join("e.sock")), None).await;
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();

        let (code, message) = refused(client.stop("nobody").await);
        assert_eq!(code, tonic::Code::NotFound);
        assert!(message.contains("`nobody`"), "{message}");
        let (code, message) = refused(client.fade("nobody", None, Duration::from_secs(1)).await);
        assert_eq!(code, tonic::Code::NotFound);
        assert!(message.contains("`nobody`"), "{message}");

        let (code, message) = refused(
            client
                .load_graph("nodes:\n  - type: limiter\n    threshold_db: 12\n")
                .await,
        );
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(
            message.starts_with("graph:") && message.contains("threshold"),
            "{message}"
        );
        let (code, _) = refused(client.load_graph("{ not json").await);
        assert_eq!(code, tonic::Code::InvalidArgument);

        let missing = d.join("missing.wav").display().to_string();
        let (code, message) = refused(client.play(item("m", &missing), None).await);
        assert_eq!(code, tonic::Code::NotFound);
        assert!(
            message.contains("missing.wav") && message.contains("`m`"),
            "{message}"
        );
        let (code, message) = refused(
            client
                .play(item("w", "ftp://example.invalid/x.mp3"), None)
                .await,
        );
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.contains("ftp://"), "{message}");
        let mut web = item("w", "http://127.0.0.1:9/a.mp3");
        web.fallback_urls = vec!["gopher://x".into()];
        let (code, message) = refused(client.play(web, None).await);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.contains("gopher://x"), "{message}");
        let mut file_with_fallbacks = item("f", &a);
        file_with_fallbacks.fallback_urls = vec!["http://127.0.0.1:9/b.mp3".into()];
        let (code, message) = refused(client.play(file_with_fallbacks, None).await);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.contains("fallback_urls"), "{message}");
        let mut cued = item("cue", &a);
        cued.cue_in_ns = 2 * SECOND;
        cued.cue_out_ns = Some(SECOND);
        let (code, message) = refused(client.play(cued, None).await);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.contains("cue_out_ns"), "{message}");
        let (code, message) = refused(client.play(item("engine:x", &a), None).await);
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.contains("engine:"), "{message}");
        let (code, message) = refused(client.insert_emergency(item("e", &missing)).await);
        assert_eq!(code, tonic::Code::NotFound);
        assert!(message.contains("missing.wav"), "{message}");

        // A queue with one bad item queues nothing.
        let now = client.health().await.unwrap().clock.station_ns;
        let (code, _) = refused(
            client
                .queue(
                    [
                        (item("q1", &a), now + SECOND),
                        (item("q2", &missing), now + 2 * SECOND),
                    ],
                    false,
                )
                .await,
        );
        assert_eq!(code, tonic::Code::NotFound);
        assert!(client.health().await.unwrap().reply.items.is_empty());

        // The air goes on: an item plays, and an id in use is refused while it does.
        client.play(item("ok", &a), None).await.unwrap();
        wait_for(&mut updates, Duration::from_secs(10), started("ok")).await;
        let (code, message) = refused(client.play(item("ok", &a), None).await);
        assert_eq!(code, tonic::Code::AlreadyExists);
        assert!(message.contains("`ok`"), "{message}");
        wait_for(&mut updates, Duration::from_secs(10), |u| {
            matches!(u, Update::Telemetry(_)).then_some(())
        })
        .await;
        engine.shut_down().await;
    });
}

#[test]
fn a_token_is_required_checked_and_enforced_off_loopback() {
    let d = dir("token");
    let token = "correct horse battery staple";
    runtime().block_on(async {
        let engine = InProcess::start(&d, Listen::parse("127.0.0.1:0").unwrap(), Some(token)).await;
        let (code, message) = refused(
            EngineClient::connect(&engine.listen, None)
                .await
                .unwrap()
                .health()
                .await,
        );
        assert_eq!(code, tonic::Code::Unauthenticated);
        assert!(message.contains("Bearer"), "{message}");
        let (code, _) = refused(
            EngineClient::connect(&engine.listen, Some("correct horse battery stapler"))
                .await
                .unwrap()
                .health()
                .await,
        );
        assert_eq!(code, tonic::Code::Unauthenticated);
        let mut client = EngineClient::connect(&engine.listen, Some(token))
            .await
            .unwrap();
        client.health().await.unwrap();
        client
            .updates()
            .await
            .unwrap()
            .next_within(Duration::from_secs(3))
            .await
            .unwrap();

        // Serving on an address other machines reach, without a token, is refused.
        let open = Bound::bind(&Listen::parse("0.0.0.0:0").unwrap()).unwrap();
        let e = engine.server.serve(open, None, async {}).await.unwrap_err();
        assert!(matches!(e, ServeError::Insecure(_)), "{e}");
        engine.shut_down().await;
    });
    // The binary refuses too, before it starts anything.
    let out = Command::new(env!("CARGO_BIN_EXE_grimnir-engine"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token"), "{stderr}");
}

/// The dominant frequency of the left channel over `seconds` from `from`, by zero crossings.
fn frequency(samples: &[f32], from: f64, seconds: f64) -> f64 {
    let a = (from * f64::from(RATE)) as usize;
    let n = (seconds * f64::from(RATE)) as usize;
    let left: Vec<f32> = samples[2 * a..2 * (a + n)]
        .iter()
        .step_by(2)
        .copied()
        .collect();
    let crossings = left
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / seconds
}

fn peak(samples: &[f32], from: f64, seconds: f64) -> f32 {
    let a = 2 * (from * f64::from(RATE)) as usize;
    let b = a + 2 * (seconds * f64::from(RATE)) as usize;
    samples[a..b.min(samples.len())]
        .iter()
        .fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn the_queue_plays_on_time_with_its_controller_gone_then_the_fallback() {
    let d = dir("orphan");
    let a = sine_wav(&d.join("a.wav"), 440.0, 0.2, 2.0);
    let b = sine_wav(&d.join("b.wav"), 660.0, 0.2, 2.0);
    let c = sine_wav(&d.join("c.wav"), 880.0, 0.2, 2.0);
    let fallback = sine_wav(&d.join("fallback.wav"), 220.0, 0.2, 1.0);
    std::fs::write(d.join("flat.yaml"), FLAT_GRAPH).unwrap();
    let socket = d.join("engine.sock");
    let engine = Engine::spawn(&[
        "--listen",
        &format!("unix:{}", socket.display()),
        "--graph",
        &d.join("flat.yaml").display().to_string(),
        "--fallback",
        &fallback,
        "--record",
        &format!("{}=flac", d.join("rec").display()),
    ]);
    // The controller queues three items and dies: its runtime, connection and all are gone.
    let start = runtime().block_on(async {
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let now = client.health().await.unwrap().clock.station_ns;
        let start = now + SECOND;
        client
            .queue(
                [
                    (item("a", &a), start),
                    (item("b", &b), start + 2 * SECOND),
                    (item("c", &c), start + 4 * SECOND),
                ],
                false,
            )
            .await
            .unwrap();
        start
    });
    // Someone else watches: every item starts on time, then the fallback loops.
    runtime().block_on(async {
        let mut watcher = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = watcher.updates().await.unwrap();
        for (id, at) in [("b", start + 2 * SECOND), ("c", start + 4 * SECOND)] {
            let s = wait_for(&mut updates, Duration::from_secs(10), started(id)).await;
            // On its frame: the start is rounded to the nearest sample, so it may fall on
            // either side of a millisecond boundary (CI once saw 3002.99… vs 3003.00 ms).
            let frame = SECOND / i64::from(RATE);
            assert!((s.at_ns - at).abs() <= frame, "{s:?}, planned {at} ns");
            assert_eq!(s.late_ns, 0, "{s:?}");
        }
        for _ in 0..2 {
            wait_for(
                &mut updates,
                Duration::from_secs(10),
                started("engine:fallback"),
            )
            .await;
        }
        let t = wait_for(&mut updates, Duration::from_secs(5), |u| match u {
            Update::Telemetry(t) => Some(t.clone()),
            _ => None,
        })
        .await;
        assert!(t.fallback && t.underruns == 0, "{t:?}");
    });
    assert!(engine.terminate().success());
    // ffmpeg reads the recording back: each item at its time, then the fallback.
    let samples = media::decode(&recording(&d.join("rec")));
    let s = start as f64 / 1e9;
    for (at, freq) in [
        (s + 0.6, 440.0),
        (s + 2.6, 660.0),
        (s + 4.6, 880.0),
        (s + 6.6, 220.0),
    ] {
        let f = frequency(&samples, at, 0.5);
        assert!((f - freq).abs() < 10.0, "{f} Hz at {at} s, expected {freq}");
    }
}

#[test]
fn emergency_latency_is_measured_at_the_output() {
    let d = dir("emergency");
    let programme = sine_wav(&d.join("programme.wav"), 440.0, 0.1, 30.0);
    let alert = sine_wav(&d.join("alert.wav"), 1000.0, 0.8, 1.0);
    std::fs::write(d.join("flat.yaml"), FLAT_GRAPH).unwrap();
    let engine = Engine::spawn(&[
        "--listen",
        &format!("unix:{}", d.join("engine.sock").display()),
        "--graph",
        &d.join("flat.yaml").display().to_string(),
        "--record",
        &format!("{}=flac", d.join("rec").display()),
    ]);
    let calls = runtime().block_on(async {
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        client
            .play(item("programme", &programme), None)
            .await
            .unwrap();
        wait_for(&mut updates, Duration::from_secs(10), started("programme")).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut calls = Vec::new();
        for k in 0..5 {
            let clock = client.health().await.unwrap().clock;
            let mut alert = item(format!("alert-{k}"), &alert);
            alert.cue_out_ns = Some(SECOND * 4 / 10);
            let called = clock.station_ns(SystemClock::unix_ns());
            let received = client.insert_emergency(alert).await.unwrap();
            let id = format!("alert-{k}");
            wait_for(&mut updates, Duration::from_secs(10), ended(&id)).await;
            calls.push((called, received));
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        calls
    });
    assert!(engine.terminate().success());
    let samples = media::decode(&recording(&d.join("rec")));
    let mut latencies = Vec::new();
    for &(called, received) in &calls {
        let from = (called as f64 / 1e9 * f64::from(RATE)) as usize;
        // The programme is at 0.1, the alert at 0.8: its first sample above 0.5 is its start
        // (a 1 kHz sine passes 0.5 within 0.1 ms of starting).
        let first = samples[2 * from..]
            .chunks(2)
            .position(|f| f[0].abs() > 0.5)
            .expect("the alert is not in the recording");
        let on_air = (from + first) as f64 / f64::from(RATE);
        latencies.push((
            (on_air - called as f64 / 1e9) * 1e3,
            (on_air - received as f64 / 1e9) * 1e3,
        ));
        // Nothing of the alert before the call.
        assert!(peak(&samples, called as f64 / 1e9 - 0.5, 0.5) < 0.15);
    }
    // The programme was cut by the first alert and stays off after it.
    let after_first = calls[0].0 as f64 / 1e9 + 0.45 + latencies[0].0 / 1e3;
    assert!(peak(&samples, after_first, 0.4) < 0.01);
    let text: Vec<String> = latencies
        .iter()
        .map(|(c, r)| format!("{c:.1} ms from the call ({r:.1} ms from its receipt)"))
        .collect();
    println!("emergency on air after: {}", text.join("; "));
}

#[test]
fn a_socket_another_engine_listens_on_is_not_taken() {
    let d = dir("taken");
    let socket = d.join("engine.sock");
    let listen = format!("unix:{}", socket.display());
    let first = Engine::spawn(&["--listen", &listen]);
    let out = Command::new(env!("CARGO_BIN_EXE_grimnir-engine"))
        .args(["--listen", &listen])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another process is listening"), "{stderr}");
    // The first engine still answers.
    runtime().block_on(async {
        let mut client = EngineClient::connect(&first.listen, None).await.unwrap();
        client.health().await.unwrap();
    });
    assert!(first.terminate().success());
}

// --- Live sources -------------------------------------------------------------------------

/// A source endpoint offering `/live` to this station's live credentials.
fn live_endpoint() -> (SourceListener, Vec<String>, u16) {
    let mounts = vec!["/live".to_owned()];
    let credentials = LiveCredentials::new(LIVE_KEY, LIVE_STATION, mounts.clone());
    let listener = SourceListener::bind(
        "127.0.0.1:0".parse().unwrap(),
        LiveConfig::new(RATE, 2),
        std::sync::Arc::new(credentials),
    )
    .unwrap();
    let port = listener.local_addr().port();
    (listener, mounts, port)
}

/// Waits (bounded) for a child to exit; kills it past `limit`.
async fn exited(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn live_connected(u: &Update) -> Option<proto::LiveConnected> {
    match u {
        Update::LiveConnected(c) => Some(c.clone()),
        _ => None,
    }
}

#[test]
fn a_routed_dj_takes_the_air_and_the_fallback_returns_when_they_leave() {
    let d = dir("live-route");
    let fallback = sine_wav(&d.join("fallback.wav"), 220.0, 0.2, 2.0);
    let (listener, mounts, port) = live_endpoint();
    runtime().block_on(async {
        let engine = InProcess::start_with(
            &d,
            Listen::Unix(d.join("e.sock")),
            None,
            Some(&fallback),
            Some((listener, mounts)),
        )
        .await;
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        wait_for(
            &mut updates,
            Duration::from_secs(10),
            started("engine:fallback"),
        )
        .await;

        // The show is routed before the DJ connects: the air goes on as it is.
        let connected = client
            .route_live("night", "/live", Duration::from_millis(300), true)
            .await
            .unwrap();
        assert!(!connected);
        let live = client.health().await.unwrap().reply.live;
        assert_eq!(live.len(), 1, "{live:?}");
        assert!(
            !live[0].connected && live[0].routed_id == "night",
            "{live:?}"
        );

        let mut source = dj(port, &live_credential(LIVE_STATION), 440, 4);
        let c = wait_for(&mut updates, Duration::from_secs(10), live_connected).await;
        assert_eq!((c.mount.as_str(), c.routed_id.as_str()), ("/live", "night"));
        assert_eq!(c.name, "Night shift");
        let on = wait_for(&mut updates, Duration::from_secs(10), started("night")).await;
        let live = client.health().await.unwrap().reply.live;
        assert!(
            live[0].connected && live[0].routed_id == "night",
            "{live:?}"
        );

        // The DJ leaves: the live item ends within 3 s and the fallback takes the air again.
        assert!(exited(&mut source, Duration::from_secs(20)).await.success());
        let left = Instant::now();
        let off = wait_for(&mut updates, Duration::from_secs(10), ended("night")).await;
        let after = left.elapsed();
        assert!(
            after < Duration::from_secs(3),
            "ended {after:?} after the DJ left"
        );
        let back = wait_for(
            &mut updates,
            Duration::from_secs(5),
            started("engine:fallback"),
        )
        .await;
        assert!(back.at_ns - off.at_ns < 3 * SECOND, "{off:?} {back:?}");
        eprintln!(
            "live item ended {after:?} after the source client exited; fallback {:.3} s later",
            (back.at_ns - off.at_ns) as f64 / 1e9
        );
        assert!(client.health().await.unwrap().reply.live.is_empty());
        // A second of the fallback, for the recording.
        for _ in 0..2 {
            wait_for(&mut updates, Duration::from_secs(5), |u| {
                matches!(u, Update::Telemetry(_)).then_some(())
            })
            .await;
        }
        engine.shut_down().await;

        // The recording: the DJ's 440 Hz between the two, the fallback's 220 Hz after.
        let samples = media::decode(&recording(&d.join("rec")));
        let (on, off, back) = (
            on.at_ns as f64 / 1e9,
            off.at_ns as f64 / 1e9,
            back.at_ns as f64 / 1e9,
        );
        assert!(off - on > 3.0, "the DJ was on air from {on} to {off} s");
        let f = frequency(&samples, on + 1.0, 1.5);
        assert!((f - 440.0).abs() < 10.0, "{f} Hz while the DJ was on");
        let f = frequency(&samples, back + 0.5, 0.5);
        assert!((f - 220.0).abs() < 10.0, "{f} Hz after the DJ left");
    });
}

#[test]
fn a_dj_on_standby_is_routed_then_stopped_and_disconnected() {
    let d = dir("live-standby");
    let (listener, mounts, port) = live_endpoint();
    runtime().block_on(async {
        let engine = InProcess::start_with(
            &d,
            Listen::Unix(d.join("e.sock")),
            None,
            None,
            Some((listener, mounts)),
        )
        .await;
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        let mut source = dj(port, &live_credential(LIVE_STATION), 440, 30);
        let c = wait_for(&mut updates, Duration::from_secs(10), live_connected).await;
        assert_eq!(c.routed_id, "", "nobody routed it: it stands by");
        let live = client.health().await.unwrap().reply.live;
        assert!(
            live[0].connected && live[0].routed_id.is_empty(),
            "{live:?}"
        );

        let connected = client
            .route_live("late", "/live", Duration::ZERO, false)
            .await
            .unwrap();
        assert!(connected);
        wait_for(&mut updates, Duration::from_secs(5), started("late")).await;
        let (code, message) = refused(
            client
                .route_live("again", "/live", Duration::ZERO, false)
                .await,
        );
        assert_eq!(code, tonic::Code::AlreadyExists);
        assert!(message.contains("`late`"), "{message}");

        // Stop takes it off at once and hangs up on the client.
        client.stop("late").await.unwrap();
        wait_for(&mut updates, Duration::from_secs(5), ended("late")).await;
        wait_for(&mut updates, Duration::from_secs(10), |u| {
            matches!(u, Update::LiveDisconnected(d) if d.mount == "/live").then_some(())
        })
        .await;
        let status = exited(&mut source, Duration::from_secs(10)).await;
        assert!(!status.success(), "ffmpeg should have lost its connection");
        engine.shut_down().await;
    });
}

#[test]
fn live_credentials_and_routes_are_checked() {
    let d = dir("live-refused");
    let (listener, mounts, port) = live_endpoint();
    runtime().block_on(async {
        let engine = InProcess::start_with(
            &d,
            Listen::Unix(d.join("e.sock")),
            None,
            None,
            Some((listener, mounts)),
        )
        .await;
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        for password in [live_credential("another-station"), "hackme".to_owned()] {
            let mut source = dj(port, &password, 440, 2);
            let r = wait_for(&mut updates, Duration::from_secs(10), |u| match u {
                Update::LiveRefused(r) => Some(r.clone()),
                _ => None,
            })
            .await;
            assert!(r.peer.starts_with("127.0.0.1:"), "{r:?}");
            assert!(!exited(&mut source, Duration::from_secs(10)).await.success());
        }
        assert!(client.health().await.unwrap().reply.live.is_empty());

        let (code, message) = refused(
            client
                .route_live("x", "/other", Duration::ZERO, false)
                .await,
        );
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(
            message.contains("/other") && message.contains("/live"),
            "{message}"
        );
        let (code, _) = refused(
            client
                .route_live("engine:x", "/live", Duration::ZERO, false)
                .await,
        );
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(
            !client
                .route_live("show", "/live", Duration::ZERO, false)
                .await
                .unwrap()
        );
        let (code, message) = refused(
            client
                .route_live("other-show", "/live", Duration::ZERO, false)
                .await,
        );
        assert_eq!(code, tonic::Code::AlreadyExists);
        assert!(message.contains("`show`"), "{message}");
        // Stop cancels a waiting route.
        client.stop("show").await.unwrap();
        assert!(client.health().await.unwrap().reply.live.is_empty());
        engine.shut_down().await;

        // An engine without an endpoint says so.
        let plain = InProcess::start(&d, Listen::Unix(d.join("plain.sock")), None).await;
        let mut client = EngineClient::connect(&plain.listen, None).await.unwrap();
        let (code, message) = refused(client.route_live("x", "/live", Duration::ZERO, false).await);
        assert_eq!(code, tonic::Code::FailedPrecondition);
        assert!(message.contains("live"), "{message}");
        plain.shut_down().await;
    });
}

#[test]
fn the_engine_process_takes_live_sources_from_its_config() {
    let d = dir("live-config");
    std::fs::write(d.join("live.key"), LIVE_KEY).unwrap();
    std::fs::write(
        d.join("engine.yaml"),
        format!(
            "listen: unix:{}\nlive:\n  listen: 127.0.0.1:0\n  station: {LIVE_STATION}\n  key_file: {}\n",
            d.join("e.sock").display(),
            d.join("live.key").display()
        ),
    )
    .unwrap();
    let mut engine = Command::new(env!("CARGO_BIN_EXE_grimnir-engine"))
        .args(["--config", &d.join("engine.yaml").display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(engine.stdout.take().unwrap()).lines();
    let mut endpoint = None;
    let mut listen = None;
    while listen.is_none() {
        let line = lines.next().expect("the engine stopped").unwrap();
        if let Some(addr) = line.strip_prefix("live source endpoint on ") {
            endpoint = Some(addr.parse::<std::net::SocketAddr>().unwrap());
        }
        listen = line
            .strip_prefix("listening on ")
            .map(|a| Listen::parse(a).unwrap());
    }
    let port = endpoint.expect("no live endpoint line").port();
    runtime().block_on(async {
        let mut client = EngineClient::connect(&listen.unwrap(), None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        let mut source = dj(port, &live_credential(LIVE_STATION), 440, 20);
        let c = wait_for(&mut updates, Duration::from_secs(10), live_connected).await;
        assert_eq!(c.mount, "/live");
        assert!(
            client
                .route_live("show", "/live", Duration::ZERO, true)
                .await
                .unwrap()
        );
        wait_for(&mut updates, Duration::from_secs(5), started("show")).await;
        let _ = source.kill();
        let _ = source.wait();
    });
    let _ = engine.kill();
    let _ = engine.wait();
}

// --- Webstreams ---------------------------------------------------------------------------

#[test]
fn a_webstream_item_fails_over_to_its_fallback_url_and_reports_its_health() {
    let d = dir("webstream");
    let mut primary = http_audio::Server::start(http_audio::mp3(&d.join("a.mp3"), 440, 30));
    let backup = http_audio::Server::start(http_audio::mp3(&d.join("b.mp3"), 660, 30));
    runtime().block_on(async {
        let engine = InProcess::start(&d, Listen::Unix(d.join("e.sock")), None).await;
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        let mut relay = item("relay", primary.url());
        relay.fallback_urls = vec![backup.url()];
        relay.cue_out_ns = Some(30 * SECOND);
        client.play(relay, None).await.unwrap();
        let on = wait_for(&mut updates, Duration::from_secs(10), started("relay")).await;
        let health = |want: &'static str| {
            move |u: &Update| match u {
                Update::Webstream(w) if w.id == "relay" && w.health == want => Some(w.clone()),
                _ => None,
            }
        };
        wait_for(&mut updates, Duration::from_secs(10), health("healthy")).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        primary.kill();
        let killed = Instant::now();
        let degraded = wait_for(&mut updates, Duration::from_secs(10), health("degraded")).await;
        let took = killed.elapsed();
        assert_eq!((degraded.url, degraded.switches), (1, 1), "{degraded:?}");
        assert!(degraded.last_error.contains(&primary.url()), "{degraded:?}");
        // Some of the fallback on air, for the recording.
        for _ in 0..3 {
            wait_for(&mut updates, Duration::from_secs(5), |u| {
                matches!(u, Update::Telemetry(_)).then_some(())
            })
            .await;
        }
        let now = client.health().await.unwrap().clock.station_ns;
        client.stop("relay").await.unwrap();
        engine.shut_down().await;

        let samples = media::decode(&recording(&d.join("rec")));
        let on = on.at_ns as f64 / 1e9;
        let f = frequency(&samples, on + 1.0, 0.5);
        assert!((f - 440.0).abs() < 10.0, "{f} Hz from the primary");
        let f = frequency(&samples, now as f64 / 1e9 - 1.0, 0.5);
        assert!((f - 660.0).abs() < 10.0, "{f} Hz from the fallback");
        eprintln!("webstream degraded (on its fallback) {took:?} after its primary died");
    });
    drop(backup);
}

#[test]
fn an_srt_input_routed_by_url_takes_the_air_when_its_audio_arrives() {
    let d = dir("srt-route");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("srt://127.0.0.1:{port}?mode=listener");
    runtime().block_on(async {
        // No source endpoint is needed for a network input.
        let engine = InProcess::start(&d, Listen::Unix(d.join("e.sock")), None).await;
        let mut client = EngineClient::connect(&engine.listen, None).await.unwrap();
        let mut updates = client.updates().await.unwrap();
        let (code, message) = refused(
            client
                .route_live(
                    "x",
                    "srt://127.0.0.1:9?mode=rendezvous",
                    Duration::ZERO,
                    false,
                )
                .await,
        );
        assert_eq!(code, tonic::Code::InvalidArgument);
        assert!(message.contains("mode"), "{message}");
        // A route waiting for audio can be stopped.
        assert!(
            !client
                .route_live(
                    "cancelled",
                    "rtp://127.0.0.1:9?encoding=OPUS",
                    Duration::ZERO,
                    false
                )
                .await
                .unwrap()
        );
        client.stop("cancelled").await.unwrap();

        assert!(
            !client
                .route_live("remote", &url, Duration::from_millis(100), true)
                .await
                .unwrap()
        );
        let (code, message) = refused(
            client
                .route_live("twice", &url, Duration::ZERO, false)
                .await,
        );
        assert_eq!(code, tonic::Code::AlreadyExists);
        assert!(message.contains("`remote`"), "{message}");
        let live_inputs = client.health().await.unwrap().reply.live;
        assert_eq!(live_inputs.len(), 1, "{live_inputs:?}");
        assert_eq!(
            (
                live_inputs[0].mount.as_str(),
                live_inputs[0].routed_id.as_str()
            ),
            (url.as_str(), "remote")
        );
        let mut studio = live::sender(
            440,
            4,
            &["-c:a", "mp2", "-b:a", "192k", "-f", "mpegts"],
            &format!("srt://127.0.0.1:{port}?mode=caller"),
        );
        let on = wait_for(&mut updates, Duration::from_secs(10), started("remote")).await;
        let off = wait_for(&mut updates, Duration::from_secs(15), ended("remote")).await;
        let _ = studio.wait();
        assert!(off.at_ns - on.at_ns > 2 * SECOND, "{on:?} {off:?}");
        assert!(client.health().await.unwrap().reply.live.is_empty());
        engine.shut_down().await;
        let samples = media::decode(&recording(&d.join("rec")));
        let f = frequency(&samples, on.at_ns as f64 / 1e9 + 1.0, 1.0);
        assert!((f - 440.0).abs() < 10.0, "{f} Hz from the SRT input");
    });
}

// --- Mutual TLS ---------------------------------------------------------------------------

/// Runs openssl (a test-only tool) in `d`.
fn openssl(d: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(d)
        .output()
        .expect("openssl is needed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority `name` in `d`: `name.crt`, `name.key`.
fn authority(d: &Path, name: &str) {
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// A certificate `name` signed by authority `ca`, for `usage` (serverAuth or clientAuth).
fn certificate(d: &Path, ca: &str, name: &str, usage: &str) {
    std::fs::write(
        d.join(format!("{name}.ext")),
        format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"
        ),
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn read(d: &Path, file: &str) -> String {
    std::fs::read_to_string(d.join(file)).unwrap()
}

#[test]
fn mutual_tls_admits_only_controllers_with_a_certificate_from_the_engines_authority() {
    let d = dir("tls");
    authority(&d, "ca");
    authority(&d, "rogue-ca");
    certificate(&d, "ca", "engine", "serverAuth");
    certificate(&d, "ca", "controller", "clientAuth");
    certificate(&d, "rogue-ca", "intruder", "clientAuth");
    let tls = grimnir_engine::process::ServerTls {
        cert: read(&d, "engine.crt"),
        key: read(&d, "engine.key"),
        client_ca: read(&d, "ca.crt"),
    };
    let client_tls = |cert: &str| grimnir_engine::process::ClientTls {
        ca: read(&d, "ca.crt"),
        domain: "localhost".into(),
        cert: read(&d, &format!("{cert}.crt")),
        key: read(&d, &format!("{cert}.key")),
    };
    runtime().block_on(async {
        let config = StationConfig::new(grimnir_dsp::DspGraph::from_yaml(FLAT_GRAPH).unwrap());
        let server = std::sync::Arc::new(EngineServer::start(config, None).unwrap());
        let bound = Bound::bind(&Listen::parse("127.0.0.1:0").unwrap()).unwrap();
        let listen = bound.listen().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = std::sync::Arc::clone(&server);
        let served_tls = tls.clone();
        let task = tokio::spawn(async move {
            serving
                .serve_with(bound, None, Some(&served_tls), async {
                    let _ = stopped.await;
                })
                .await
        });

        let mut client = EngineClient::connect_with(&listen, None, Some(&client_tls("controller")))
            .await
            .unwrap();
        assert_eq!(client.health().await.unwrap().reply.rate, RATE);

        // A certificate from another authority, and no TLS at all, get nothing.
        for intruder in [Some(client_tls("intruder")), None] {
            let answer = async {
                let mut c = EngineClient::connect_with(&listen, None, intruder.as_ref()).await?;
                c.health().await
            }
            .await;
            assert!(answer.is_err(), "{intruder:?} was answered: {answer:?}");
        }
        // A client that does not trust the engine's authority refuses it.
        let mut distrustful = client_tls("controller");
        distrustful.ca = read(&d, "rogue-ca.crt");
        let answer = async {
            let mut c = EngineClient::connect_with(&listen, None, Some(&distrustful)).await?;
            c.health().await
        }
        .await;
        assert!(answer.is_err(), "{answer:?}");

        let _ = stop.send(());
        task.await.unwrap().unwrap();
        if let Ok(server) = std::sync::Arc::try_unwrap(server) {
            server.stop();
        }
    });
}
