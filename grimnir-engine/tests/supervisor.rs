//! Crash and resume: `kill -9` on the engine during a track; the supervisor notices, starts
//! a new engine, and the track goes on from where it had got to, the queue behind it.
#![cfg(feature = "process")]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/live.rs"]
mod live;
#[path = "common/media.rs"]
mod media;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use grimnir_engine::process::client::{Update, item};
use grimnir_engine::process::{Listen, Supervisor, SupervisorConfig, SupervisorEvent, proto};
use tokio::sync::broadcast;

const RATE: u32 = 48_000;
const SECOND: i64 = 1_000_000_000;
/// The track: 2 s steps of these frequencies, so where it plays from can be heard.
const STEPS: [f32; 5] = [300.0, 500.0, 700.0, 900.0, 1100.0];

fn steps_wav(path: &Path) -> String {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut phase = 0f32;
    for k in 0..(STEPS.len() * 2 * RATE as usize) {
        let f = STEPS[k / (2 * RATE as usize)];
        phase = (phase + std::f32::consts::TAU * f / RATE as f32) % std::f32::consts::TAU;
        let x = 0.2 * phase.sin();
        w.write_sample(x).unwrap();
        w.write_sample(x).unwrap();
    }
    w.finalize().unwrap();
    path.display().to_string()
}

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

async fn next_event(
    events: &mut broadcast::Receiver<SupervisorEvent>,
    limit: Duration,
    mut done: impl FnMut(&SupervisorEvent) -> bool,
) -> SupervisorEvent {
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "gave up waiting for a supervisor event");
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(e)) if done(&e) => return e,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("gave up waiting for a supervisor event"),
        }
    }
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn a_killed_engine_is_replaced_and_the_track_resumes_at_its_position() {
    let d = std::env::temp_dir().join(format!("grimnir-supervisor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let track = steps_wav(&d.join("track.wav"));
    let next = steps_wav(&d.join("next.wav"));
    std::fs::write(d.join("flat.yaml"), "nodes: []\n").unwrap();
    let args = vec![
        "--graph".into(),
        d.join("flat.yaml").into_os_string(),
        "--record".into(),
        format!("{}=flac", d.join("rec").display()).into(),
    ];
    let config = SupervisorConfig::new(
        env!("CARGO_BIN_EXE_grimnir-engine"),
        args,
        Listen::Unix(d.join("engine.sock")),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (resumed_cue_in, resumed_at) = rt.block_on(async {
        let supervisor = Supervisor::start(config).await.unwrap();
        let mut events = supervisor.events();
        supervisor.load_graph("nodes: []\n").await.unwrap();
        let start = unix_ns() + SECOND / 2;
        supervisor
            .play(item("track", &track), Some(start))
            .await
            .unwrap();
        supervisor
            .queue(vec![(item("next", &next), start + 10 * SECOND)])
            .await
            .unwrap();
        next_event(
            &mut events,
            Duration::from_secs(10),
            |e| matches!(e, SupervisorEvent::Update(Update::Started(s)) if s.id == "track"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;

        let old = supervisor.pid().await;
        let killed = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-9", &old.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let died = next_event(&mut events, Duration::from_secs(10), |e| {
            matches!(e, SupervisorEvent::Died { .. })
        })
        .await;
        let noticed = killed.elapsed();
        let restarted = next_event(&mut events, Duration::from_secs(20), |e| {
            matches!(e, SupervisorEvent::Restarted { .. })
        })
        .await;
        let SupervisorEvent::Restarted { pid, took } = restarted else {
            unreachable!()
        };
        assert_ne!(pid, old);
        println!(
            "death noticed after {:.0} ms ({died:?}); new engine up and replayed {:.0} ms later",
            noticed.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3
        );

        // The new engine holds the track, resumed part way, and the queue behind it.
        let mut client = supervisor.client().await;
        let health = client.health().await.unwrap().reply;
        let ids: Vec<&str> = health
            .items
            .iter()
            .map(|h| h.item.as_ref().unwrap().id.as_str())
            .collect();
        assert_eq!(ids, ["track", "next"], "{health:?}");
        let cue_in = health.items[0].item.as_ref().unwrap().cue_in_ns;
        let resumed = next_event(
            &mut events,
            Duration::from_secs(10),
            |e| matches!(e, SupervisorEvent::Update(Update::Started(s)) if s.id == "track"),
        )
        .await;
        let SupervisorEvent::Update(Update::Started(proto::ItemStarted { at_ns, .. })) = resumed
        else {
            unreachable!()
        };
        // Its position: the time since it first started, to within the restart's margin.
        let expected = unix_ns() - start;
        assert!(
            (cue_in - expected).abs() < 2 * SECOND,
            "resumed at {cue_in} ns, {expected} ns after its start"
        );
        next_event(
            &mut events,
            Duration::from_secs(15),
            |e| matches!(e, SupervisorEvent::Update(Update::Started(s)) if s.id == "next"),
        )
        .await;
        (cue_in, at_ns)
    });
    drop(rt);
    // The new engine's recording: from where the track came back, it plays the step its
    // cue-in names.
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.join("rec"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let samples = media::decode(files.last().unwrap());
    let on_air = resumed_at as f64 / 1e9;
    // A window inside one step, past the 50 ms resume fade.
    let mut into = resumed_cue_in as f64 / 1e9 + 0.1;
    if (into % 2.0) > 1.6 {
        into += 0.5;
    }
    let step = STEPS[(into / 2.0) as usize];
    let f = frequency(&samples, on_air + (into - resumed_cue_in as f64 / 1e9), 0.3);
    assert!(
        (f - f64::from(step)).abs() < 15.0,
        "{f} Hz, expected {step}"
    );
}

#[test]
fn a_live_route_survives_a_crash_and_the_reconnecting_dj_goes_back_on_air() {
    let d = std::env::temp_dir().join(format!("grimnir-supervisor-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // A fixed port: the DJ's client reconnects to the same address after the crash.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(d.join("live.key"), live::LIVE_KEY).unwrap();
    std::fs::write(
        d.join("engine.yaml"),
        format!(
            "listen: unix:{}\nlive:\n  listen: 127.0.0.1:{port}\n  station: {}\n  key_file: {}\n",
            d.join("engine.sock").display(),
            live::LIVE_STATION,
            d.join("live.key").display()
        ),
    )
    .unwrap();
    let config = SupervisorConfig::new(
        env!("CARGO_BIN_EXE_grimnir-engine"),
        vec!["--config".into(), d.join("engine.yaml").into_os_string()],
        Listen::Unix(d.join("engine.sock")),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let supervisor = Supervisor::start(config).await.unwrap();
        let mut events = supervisor.events();
        let connected = supervisor
            .route_live("show", "/live", Duration::from_millis(100), true)
            .await
            .unwrap();
        assert!(!connected);
        let old = supervisor.pid().await;
        let status = std::process::Command::new("kill")
            .args(["-9", &old.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        next_event(&mut events, Duration::from_secs(20), |e| {
            matches!(e, SupervisorEvent::Restarted { .. })
        })
        .await;
        // The new engine waits for the DJ on the same route.
        let mut client = supervisor.client().await;
        let live_inputs = client.health().await.unwrap().reply.live;
        assert_eq!(live_inputs.len(), 1, "{live_inputs:?}");
        assert_eq!(live_inputs[0].routed_id, "show");
        let mut source = live::dj(port, &live::live_credential(live::LIVE_STATION), 440, 20);
        next_event(
            &mut events,
            Duration::from_secs(15),
            |e| matches!(e, SupervisorEvent::Update(Update::Started(s)) if s.id == "show"),
        )
        .await;
        let _ = source.kill();
        let _ = source.wait();
        // The DJ left: the route is spent, and a later crash does not bring it back.
        next_event(
            &mut events,
            Duration::from_secs(10),
            |e| matches!(e, SupervisorEvent::Update(Update::Ended(s)) if s.id == "show"),
        )
        .await;
        let old = supervisor.pid().await;
        std::process::Command::new("kill")
            .args(["-9", &old.to_string()])
            .status()
            .unwrap();
        next_event(&mut events, Duration::from_secs(20), |e| {
            matches!(e, SupervisorEvent::Restarted { .. })
        })
        .await;
        let mut client = supervisor.client().await;
        assert!(client.health().await.unwrap().reply.live.is_empty());
    });
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn a_detached_engine_plays_on_and_the_next_supervisor_adopts_it() {
    let d = std::env::temp_dir().join(format!("grimnir-supervisor-adopt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let track = steps_wav(&d.join("track.wav"));
    let next = steps_wav(&d.join("next.wav"));
    let config = SupervisorConfig::new(
        env!("CARGO_BIN_EXE_grimnir-engine"),
        Vec::new(),
        Listen::Unix(d.join("engine.sock")),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let first = Supervisor::start(config.clone()).await.unwrap();
        assert!(!first.adopted());
        let mut events = first.events();
        let start = unix_ns() + SECOND / 2;
        first
            .play(item("track", &track), Some(start))
            .await
            .unwrap();
        first
            .queue(vec![(item("next", &next), start + 10 * SECOND)])
            .await
            .unwrap();
        next_event(
            &mut events,
            Duration::from_secs(10),
            |e| matches!(e, SupervisorEvent::Update(Update::Started(s)) if s.id == "track"),
        )
        .await;
        let pid = first.pid().await;
        // The controller restarts: the engine plays on.
        first.detach();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!gone(pid), "the detached engine stopped");

        let second = Supervisor::start(config.clone()).await.unwrap();
        assert!(second.adopted());
        assert_eq!(second.pid().await, pid, "it started another engine");
        let mut events = second.events();
        let health = second.client().await.health().await.unwrap().reply;
        assert_eq!(health.pid, pid);
        tokio::time::sleep(Duration::from_secs(2)).await;

        // The adopted engine dies: the second supervisor notices by its telemetry alone
        // and puts back what the first one had given it.
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        next_event(&mut events, Duration::from_secs(10), |e| {
            matches!(e, SupervisorEvent::Died { .. })
        })
        .await;
        next_event(&mut events, Duration::from_secs(20), |e| {
            matches!(e, SupervisorEvent::Restarted { .. })
        })
        .await;
        let new_pid = second.pid().await;
        assert_ne!(new_pid, pid);
        let held = second.client().await.health().await.unwrap().reply.items;
        let ids: Vec<&str> = held
            .iter()
            .map(|h| h.item.as_ref().unwrap().id.as_str())
            .collect();
        assert_eq!(ids, ["track", "next"], "{held:?}");
        let cue_in = held[0].item.as_ref().unwrap().cue_in_ns;
        assert!(
            cue_in > SECOND,
            "the track did not resume part way: {cue_in} ns"
        );

        // Dropping a supervisor that did not detach takes its engine down with it.
        drop(second);
        let until = Instant::now() + Duration::from_secs(5);
        while !gone(new_pid) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            gone(new_pid),
            "dropping the supervisor left its engine running"
        );
    });
}
