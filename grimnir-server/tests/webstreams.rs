//! The webstream API and its health probe, against tiny HTTP servers on loopback (one sends
//! MP3 with ICY headers, one answers 404, one redirects, one accepts and says nothing) and a
//! real icecast2 when it is installed. The API runs on SQLite, PostgreSQL and MariaDB.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
#[path = "../../grimnir-engine/tests/common/icecast_server.rs"]
mod icecast_server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Method;
use common::api::{self, Credential, World};
use grimnir_server::webstream_probe::{self, ProbeSettings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One MPEG-1 Layer III frame, 128 kbit/s at 44.1 kHz: a header and silence (417 bytes).
fn mp3_frame() -> Vec<u8> {
    let mut frame = vec![0u8; 417];
    frame[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x00]);
    frame
}

/// How a test server answers.
#[derive(Clone)]
enum Reply {
    /// `audio/mpeg` with ICY headers, then frames until the client goes.
    Audio,
    /// The same from a Shoutcast v1 server: `ICY 200 OK` for a status line, sent in two
    /// pieces that split the `ICY`.
    Shoutcast,
    /// 404.
    NotFound,
    /// 200 `text/html`.
    Html,
    /// 302 to this URL.
    Redirect(String),
    /// Accepts, reads the request, never answers.
    Stall,
}

/// A server on a free loopback port; the request heads it received are in the list.
async fn serve(reply: Reply) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (reply, seen) = (reply.clone(), seen.clone());
            tokio::spawn(answer(socket, reply, seen));
        }
    });
    (format!("http://{addr}/stream"), heads)
}

async fn answer(mut socket: TcpStream, reply: Reply, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let text = match reply {
        Reply::Audio | Reply::Shoutcast => {
            let (status, name) = match reply {
                Reply::Audio => ("HTTP/1.0 200 OK", "Test FM"),
                _ => ("ICY 200 OK", "Old FM"),
            };
            let head = format!(
                "{status}\r\nContent-Type: audio/mpeg\r\nicy-name: {name}\r\n\
                 icy-br: 128\r\nicy-genre: Jazz\r\n\r\n"
            );
            let _ = socket.set_nodelay(true);
            let (first, rest) = head.as_bytes().split_at(2);
            if socket.write_all(first).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if socket.write_all(rest).await.is_err() {
                return;
            }
            let frame = mp3_frame();
            // About 10 s of audio at most: the client goes long before.
            for _ in 0..400 {
                if socket.write_all(&frame).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(26)).await;
            }
            return;
        }
        Reply::NotFound => "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
                            Content-Length: 9\r\n\r\nnot found"
            .to_owned(),
        Reply::Html => "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n\
                        <html></html>"
            .to_owned(),
        Reply::Redirect(to) => {
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
        }
        Reply::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
    };
    let _ = socket.write_all(text.as_bytes()).await;
    let _ = socket.shutdown().await;
}

fn manager(world: &World) -> Credential {
    Credential::Bearer(world.manager_a.token.clone())
}

async fn health(world: &World, base: &str, id: &str) -> (Value, Duration) {
    let started = Instant::now();
    let answer = api::call(Method::GET, &format!("{base}/{id}/health"))
        .auth(&manager(world))
        .send(&world.app)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    (answer.body, started.elapsed())
}

async fn webstreams_are_checked_and_probed(backend: &api::Backend) {
    let name = backend.name;
    let db = api::open(backend).await;
    let world = World::new(common::state(db)).await;
    let base = format!("/api/v1/stations/{}/webstreams", world.a);
    let (audio, audio_heads) = serve(Reply::Audio).await;
    let (missing, _) = serve(Reply::NotFound).await;
    let (redirect, _) = serve(Reply::Redirect(audio.clone())).await;
    let (stall, _) = serve(Reply::Stall).await;
    let post = |body: Value| {
        let (world, base) = (&world, &base);
        async move {
            api::call(Method::POST, base)
                .auth(&manager(world))
                .json(&body)
                .send(&world.app)
                .await
        }
    };

    for (body, field) in [
        (
            json!({"name": "x", "url": "ftp://example.org/a.mp3"}),
            "url",
        ),
        (
            json!({"name": "x", "url": "http://169.254.169.254/latest/meta-data/"}),
            "url",
        ),
        (json!({"name": "x", "url": "not a url"}), "url"),
        (
            json!({"name": "x", "url": audio, "fallback_urls": ["http://user:pw@example.org/"]}),
            "fallback_urls[0]",
        ),
        (
            json!({"name": "x", "url": audio, "fallback_urls": [missing, missing]}),
            "fallback_urls[1]",
        ),
        (
            json!({"name": "x", "url": audio, "headers": {"Host": "elsewhere"}}),
            "headers.Host",
        ),
        (
            json!({"name": "x", "url": audio, "headers": {"X-Token": "line\nbreak"}}),
            "headers.X-Token",
        ),
        (json!({"name": "", "url": audio}), "name"),
    ] {
        let refused = post(body.clone()).await;
        assert_eq!(refused.status, 422, "{name}: {body} → {}", refused.text);
        assert_eq!(
            refused.field(),
            Some(field),
            "{name}: {body} → {}",
            refused.text
        );
    }

    // Header values are stored, sent, and never answered.
    let created = post(
        json!({"name": "Relay", "url": audio, "fallback_urls": [missing],
                              "headers": {"X-Token": "secret-token"}}),
    )
    .await;
    assert_eq!(created.status, 201, "{name}: {}", created.text);
    assert!(
        !created.text.contains("secret-token"),
        "{name}: {}",
        created.text
    );
    assert_eq!(created.body["header_names"], json!(["X-Token"]), "{name}");
    assert_eq!(created.body["health_state"], "unknown", "{name}");
    let id = created.body["id"].as_str().unwrap().to_owned();

    // The primary plays: healthy, with what the stream says of itself.
    let (report, _) = health(&world, &base, &id).await;
    assert_eq!(report["state"], "healthy", "{name}: {report}");
    let primary = &report["urls"][0];
    assert_eq!(primary["ok"], true, "{name}: {primary}");
    assert_eq!(primary["status"], 200, "{name}");
    assert_eq!(primary["content_type"], "audio/mpeg", "{name}");
    assert_eq!(primary["icy_name"], "Test FM", "{name}");
    assert_eq!(primary["icy_bitrate"], "128", "{name}");
    assert_eq!(primary["icy_genre"], "Jazz", "{name}");
    assert_eq!(primary["looks_like_audio"], true, "{name}");
    assert!(primary["latency_ms"].is_u64(), "{name}");
    let fallback = &report["urls"][1];
    assert_eq!(
        (&fallback["reachable"], &fallback["ok"], &fallback["status"]),
        (&json!(true), &json!(false), &json!(404)),
        "{name}: {fallback}"
    );
    let heads = audio_heads.lock().unwrap().join("\n");
    assert!(
        heads.to_ascii_lowercase().contains("x-token: secret-token"),
        "{name}: {heads}"
    );

    // Only a fallback plays (through a redirect): degraded. New URLs reset the state first.
    let changed = api::call(Method::PATCH, &format!("{base}/{id}"))
        .auth(&manager(&world))
        .json(&json!({"url": missing, "fallback_urls": [redirect]}))
        .send(&world.app)
        .await;
    assert_eq!(changed.status, 200, "{name}: {}", changed.text);
    assert_eq!(changed.body["health_state"], "unknown", "{name}");
    assert_eq!(
        changed.body["header_names"],
        json!(["X-Token"]),
        "{name}: headers kept"
    );
    let (report, _) = health(&world, &base, &id).await;
    assert_eq!(report["state"], "degraded", "{name}: {report}");
    assert_eq!(report["urls"][1]["final_url"], json!(audio), "{name}");
    assert_eq!(report["urls"][1]["ok"], true, "{name}");

    // Nothing plays, and a server that never answers costs the timeout, not more: down.
    let changed = api::call(Method::PATCH, &format!("{base}/{id}"))
        .auth(&manager(&world))
        .json(&json!({"url": stall, "fallback_urls": [missing]}))
        .send(&world.app)
        .await;
    assert_eq!(changed.status, 200, "{name}: {}", changed.text);
    let (report, took) = health(&world, &base, &id).await;
    assert_eq!(report["state"], "down", "{name}: {report}");
    assert_eq!(report["urls"][0]["reachable"], false, "{name}");
    assert!(
        report["urls"][0]["error"]
            .as_str()
            .unwrap()
            .contains("within"),
        "{name}: {report}"
    );
    let bound = ProbeSettings::default().timeout;
    assert!(
        took >= bound && took < bound + Duration::from_secs(3),
        "{name}: the check took {took:?}; the bound is {bound:?}"
    );

    // The check is recorded on the webstream, which any role at the station reads.
    let read = api::call(Method::GET, &format!("{base}/{id}"))
        .auth(&Credential::Bearer(world.dj_a.token.clone()))
        .send(&world.app)
        .await;
    assert_eq!(read.status, 200, "{name}: {}", read.text);
    assert_eq!(read.body["health_state"], "down", "{name}");
    assert!(read.body["last_health_check"].is_string(), "{name}");
    assert_eq!(
        read.body["last_health"]["urls"].as_array().unwrap().len(),
        2,
        "{name}"
    );
    let dj_probe = api::call(Method::GET, &format!("{base}/{id}/health"))
        .auth(&Credential::Bearer(world.dj_a.token.clone()))
        .send(&world.app)
        .await;
    assert_eq!(
        dj_probe.status, 403,
        "{name}: only managers make the server send requests"
    );

    // A webstream a clock plays is not deleted.
    let clock = api::call(Method::POST, &format!("/api/v1/stations/{}/clocks", world.a))
        .auth(&manager(&world))
        .json(&json!({"name": "Relay hour", "slots": [{"webstream": {"webstream": id, "duration": 600}}]}))
        .send(&world.app)
        .await;
    assert_eq!(clock.status, 201, "{name}: {}", clock.text);
    let in_use = api::call(Method::DELETE, &format!("{base}/{id}"))
        .auth(&manager(&world))
        .send(&world.app)
        .await;
    assert_eq!(in_use.status, 409, "{name}: {}", in_use.text);
    assert!(in_use.text.contains("clock"), "{name}: {}", in_use.text);
    let clock_id = clock.body["id"].as_str().unwrap();
    let gone = api::call(
        Method::DELETE,
        &format!("/api/v1/stations/{}/clocks/{clock_id}", world.a),
    )
    .auth(&manager(&world))
    .send(&world.app)
    .await;
    assert_eq!(gone.status, 204, "{name}: {}", gone.text);
    let deleted = api::call(Method::DELETE, &format!("{base}/{id}"))
        .auth(&manager(&world))
        .send(&world.app)
        .await;
    assert_eq!(deleted.status, 204, "{name}: {}", deleted.text);

    let audit = api::call(
        Method::GET,
        &format!("/api/v1/audit?station_id={}&limit=200", world.a),
    )
    .auth(&manager(&world))
    .send(&world.app)
    .await;
    assert!(!audit.text.contains("secret-token"), "{name}");
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "webstream.create",
        "webstream.update",
        "webstream.health_check",
        "webstream.delete",
    ] {
        assert!(actions.contains(&action), "{name}: {action} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webstreams_are_checked_and_probed_on_every_backend() {
    for backend in api::backends() {
        webstreams_are_checked_and_probed(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_keeps_to_its_timeout_and_judges_the_content() {
    let settings = ProbeSettings {
        timeout: Duration::from_millis(300),
        ..ProbeSettings::default()
    };
    let (stall, _) = serve(Reply::Stall).await;
    let started = Instant::now();
    let stalled = webstream_probe::probe_url(&stall, &[], settings).await;
    let took = started.elapsed();
    assert!(!stalled.reachable && !stalled.ok, "{stalled:?}");
    assert!(
        took >= settings.timeout && took < Duration::from_millis(1500),
        "took {took:?}"
    );

    let (html, _) = serve(Reply::Html).await;
    let page = webstream_probe::probe_url(&html, &[], settings).await;
    assert!(
        page.reachable && !page.ok && !page.looks_like_audio,
        "{page:?}"
    );

    // Nobody listens here: refused at once, reported, not an error of the probe.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let refused = webstream_probe::probe_url(&format!("http://{closed}/"), &[], settings).await;
    assert!(!refused.reachable, "{refused:?}");
    assert!(refused.error.unwrap().contains("connect"));

    // A redirect loop ends at the limit.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = format!("http://{}/loop", listener.local_addr().unwrap());
    let target = me.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(answer(
                socket,
                Reply::Redirect(target.clone()),
                Arc::default(),
            ));
        }
    });
    let looped = webstream_probe::probe_url(&me, &[], settings).await;
    assert!(!looped.ok, "{looped:?}");
    assert!(looped.error.unwrap().contains("redirects"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shoutcast_v1_server_is_read_as_http() {
    let (url, heads) = serve(Reply::Shoutcast).await;
    let report = webstream_probe::probe_url(&url, &[], ProbeSettings::default()).await;
    assert!(report.reachable && report.ok, "{report:?}");
    assert_eq!(report.status, Some(200));
    assert_eq!(report.icy_name.as_deref(), Some("Old FM"));
    assert_eq!(report.icy_bitrate.as_deref(), Some("128"));
    assert!(report.looks_like_audio, "{report:?}");
    assert_eq!(heads.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_icecast_mount_is_healthy() {
    let Some(icecast) = icecast_server::IcecastServer::start_or_skip() else {
        return;
    };
    let port = icecast.port();
    // A source on /live, as an encoder would send it.
    let mut source = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("source:{}", icecast.source_password()));
    let head = format!(
        "PUT /live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: audio/mpeg\r\nIce-Name: Grimnir Test\r\nIce-Genre: Jazz\r\n\
         Ice-Bitrate: 128\r\nIce-Public: 0\r\n\r\n"
    );
    source.write_all(head.as_bytes()).await.unwrap();
    let feeding = tokio::spawn(async move {
        let frame = mp3_frame();
        for _ in 0..1000 {
            if source.write_all(&frame).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(26)).await;
        }
    });
    let (icecast, mounted) = tokio::task::spawn_blocking(move || {
        let mounted = icecast.wait_for_mount("/live", Duration::from_secs(10));
        (icecast, mounted)
    })
    .await
    .unwrap();
    assert!(mounted, "no source on /live:\n{}", icecast.logs());

    let settings = ProbeSettings::default();
    let live =
        webstream_probe::probe_url(&format!("http://127.0.0.1:{port}/live"), &[], settings).await;
    assert!(live.ok, "{live:?}");
    assert_eq!(live.content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(live.icy_name.as_deref(), Some("Grimnir Test"));
    assert_eq!(live.icy_genre.as_deref(), Some("Jazz"));
    let nothing =
        webstream_probe::probe_url(&format!("http://127.0.0.1:{port}/nothing"), &[], settings)
            .await;
    assert!(nothing.reachable && !nothing.ok, "{nothing:?}");
    assert_eq!(nothing.status, Some(404));
    feeding.abort();
    drop(icecast);
}
