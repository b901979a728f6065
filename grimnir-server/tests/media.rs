//! The media library through the API: uploads of every container taken and refusals of what is
//! not (413, 415, 422, nothing left behind), listing and editing, byte ranges, tags, deletion,
//! the analysis queue and the analyser's loudness against ffmpeg's. Runs on SQLite, PostgreSQL
//! and MariaDB. Test audio is synthesized here (WAV) or made from it with ffmpeg; no media file
//! is committed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::Method;
use chrono::{TimeDelta, Utc};
use common::api::{self, Answer, Credential, World};
use common::media::{Part, multipart, wav};
use grimnir_server::config::MediaConfig;
use grimnir_server::db::media::{self as media_db, FailOutcome, MediaId};
use grimnir_server::http::AppState;
use grimnir_server::media::MediaLibrary;
use serde_json::{Value, json};

/// A world whose media library is in `dir` and takes uploads up to `max` bytes.
async fn world(backend: &api::Backend, dir: &Path, max: u64) -> World {
    let db = api::open(backend).await;
    let state = AppState {
        media: MediaLibrary::new(&MediaConfig {
            dir: dir.to_path_buf(),
            max_upload_bytes: max,
        }),
        ..common::state(db)
    };
    World::new(state).await
}

fn manager(w: &World) -> Credential {
    Credential::Bearer(w.manager_a.token.clone())
}

fn dj(w: &World) -> Credential {
    Credential::Bearer(w.dj_a.token.clone())
}

async fn upload(w: &World, who: &Credential, parts: &[Part<'_>]) -> Answer {
    let (content_type, body) = multipart(parts);
    api::call(Method::POST, &format!("/api/v1/stations/{}/media", w.a))
        .auth(who)
        .bytes(&content_type, body)
        .send(&w.app)
        .await
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

async fn media_count(w: &World) -> u64 {
    let list = api::call(Method::GET, &format!("/api/v1/stations/{}/media", w.a))
        .auth(&manager(w))
        .send(&w.app)
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.body["total"].as_u64().unwrap()
}

fn ffmpeg_present() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Either ffmpeg is required (CI=true) and its absence fails, or the test part is skipped with
/// the reason on standard error.
fn require_ffmpeg(what: &str) -> bool {
    if ffmpeg_present() {
        return true;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "ffmpeg is not installed; CI=true requires it for {what}"
    );
    eprintln!("SKIPPED {what}: ffmpeg is not installed (set CI=true to make this a failure)");
    false
}

/// `source` converted by ffmpeg with `args` into `dir/name`.
fn convert(source: &Path, dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(source)
        .args(args)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?} -> {name}");
    std::fs::read(out).unwrap()
}

async fn every_container_is_taken(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 16 << 20).await;
    let source = wav(44_100, 2, 0.0, 2.0, -12.0);
    let mut files: Vec<(&str, Vec<u8>, &str, &str)> =
        vec![("tone.wav", source.clone(), "audio/wav", "wav")];
    if require_ffmpeg("uploads of MP3, FLAC, Ogg and M4A") {
        let work = tempfile::tempdir().unwrap();
        let src = work.path().join("source.wav");
        std::fs::write(&src, &source).unwrap();
        let tags = [
            "-metadata",
            "title=Sine Song",
            "-metadata",
            "artist=Synth",
            "-metadata",
            "album=Tones",
            "-metadata",
            "genre=Test",
            "-metadata",
            "date=2024",
        ];
        let with = |args: &[&'static str]| [&tags[..], args].concat();
        files.push((
            "tagged.mp3",
            convert(
                &src,
                work.path(),
                "tagged.mp3",
                &with(&["-c:a", "libmp3lame", "-b:a", "128k"]),
            ),
            "audio/mpeg",
            "mp3",
        ));
        files.push((
            "bare.mp3",
            convert(
                &src,
                work.path(),
                "bare.mp3",
                &[
                    "-c:a",
                    "libmp3lame",
                    "-b:a",
                    "128k",
                    "-id3v2_version",
                    "0",
                    "-write_id3v1",
                    "0",
                    "-write_xing",
                    "0",
                    "-map_metadata",
                    "-1",
                ],
            ),
            "audio/mpeg",
            "mp3",
        ));
        files.push((
            "tone.flac",
            convert(&src, work.path(), "tone.flac", &with(&["-c:a", "flac"])),
            "audio/flac",
            "flac",
        ));
        files.push((
            "tone.ogg",
            convert(
                &src,
                work.path(),
                "tone.ogg",
                &with(&["-c:a", "libvorbis", "-q:a", "4"]),
            ),
            "audio/ogg",
            "ogg",
        ));
        files.push((
            "tone.m4a",
            convert(
                &src,
                work.path(),
                "tone.m4a",
                &with(&["-c:a", "aac", "-b:a", "128k"]),
            ),
            "audio/mp4",
            "m4a",
        ));
    }
    for (file, bytes, content_type, ext) in &files {
        if file.starts_with("bare") {
            assert_eq!(
                &bytes[..2],
                b"\xFF\xFB",
                "{file} should start with a frame header"
            );
        }
        let answer = upload(&w, &dj(&w), &[Part::file(file, bytes)]).await;
        assert_eq!(answer.status, 201, "{name} {file}: {}", answer.text);
        let item = &answer.body;
        assert_eq!(item["content_type"], *content_type, "{name} {file}");
        assert_eq!(item["sample_rate"], 44_100, "{name} {file}");
        assert_eq!(item["channels"], 2, "{name} {file}");
        assert_eq!(item["size_bytes"], bytes.len(), "{name} {file}");
        assert_eq!(item["analysis_state"], "pending", "{name} {file}");
        assert_eq!(item["filename"], *file, "{name} {file}");
        // The header's length where there is one; a bare MP3 (no Xing header) has none.
        if let Some(ms) = item["duration_ms"].as_i64() {
            assert!((ms - 2000).abs() <= 60, "{name} {file}: {ms} ms");
        } else {
            assert!(file.starts_with("bare"), "{name} {file}: no length");
        }
        if *file == "tone.wav" || file.starts_with("bare") {
            // No tags: named after the file.
            assert_eq!(item["title"], file.rsplit_once('.').unwrap().0, "{name}");
        } else {
            assert_eq!(item["title"], "Sine Song", "{name} {file}");
            assert_eq!(item["artist"], "Synth", "{name} {file}");
            assert_eq!(item["album"], "Tones", "{name} {file}");
            assert_eq!(item["genre"], "Test", "{name} {file}");
            assert_eq!(item["year"], 2024, "{name} {file}");
        }
        let id = item["id"].as_str().unwrap();
        let stored = media_dir
            .path()
            .join(format!("stations/{}/media/{id}.{ext}", w.a));
        assert_eq!(std::fs::read(&stored).unwrap(), *bytes, "{name} {file}");
    }
    // Past axum's default body limit (2 MB): uploads are bound by media.max_upload_bytes only.
    let long = wav(48_000, 2, 0.0, 20.0, -12.0);
    assert!(long.len() > 3 << 20);
    let taken = upload(&w, &dj(&w), &[Part::file("long.wav", &long)]).await;
    assert_eq!(taken.status, 201, "{name}: {}", taken.text);
    assert_eq!(taken.body["duration_ms"], 20_000, "{name}");
    // Parts win over tags.
    let tagged = files.iter().find(|f| f.0 == "tone.flac");
    if let Some((file, bytes, _, _)) = tagged {
        let answer = upload(
            &w,
            &manager(&w),
            &[
                Part::text("title", "Given Title"),
                Part::file(file, bytes),
                Part::text("artist", " Given Artist "),
            ],
        )
        .await;
        assert_eq!(answer.status, 201, "{name}: {}", answer.text);
        assert_eq!(answer.body["title"], "Given Title", "{name}");
        assert_eq!(answer.body["artist"], "Given Artist", "{name}");
        assert_eq!(answer.body["album"], "Tones", "{name}");
    }
    // A pending analysis job per upload, and an upload event and audit row.
    let id: MediaId = files_under(media_dir.path())[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let job = w
        .state
        .db
        .run(move |c| media_db::job_of(c, id))
        .await
        .unwrap();
    assert_eq!(
        job.map(|j| (j.0, j.1)),
        Some(("pending".to_owned(), 0)),
        "{name}"
    );
    assert!(
        files_under(media_dir.path())
            .iter()
            .all(|f| !f.to_string_lossy().ends_with(".part")),
        "{name}"
    );
}

async fn what_cannot_be_played_is_refused_and_leaves_nothing(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 64 * 1024).await;

    // 413: past the limit, named in the message.
    let big = wav(48_000, 2, 0.0, 1.0, -12.0);
    let too_big = upload(&w, &dj(&w), &[Part::file("big.wav", &big)]).await;
    assert_eq!(too_big.status, 413, "{name}: {}", too_big.text);
    assert_eq!(too_big.code(), "payload_too_large", "{name}");
    assert!(
        too_big.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536 bytes (64 KiB)"),
        "{name}: {}",
        too_big.text
    );

    // 415: the bytes say what it is.
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    let image = upload(&w, &dj(&w), &[Part::file("cover.mp3", &png)]).await;
    assert_eq!(image.status, 415, "{name}: {}", image.text);
    assert_eq!(image.code(), "unsupported_media_type", "{name}");
    assert!(image.text.contains("a PNG image"), "{name}: {}", image.text);
    let json_body = api::call(Method::POST, &format!("/api/v1/stations/{}/media", w.a))
        .auth(&dj(&w))
        .json(&json!({"title": "x"}))
        .send(&w.app)
        .await;
    assert_eq!(json_body.status, 415, "{name}: {}", json_body.text);
    assert!(json_body.text.contains("multipart/form-data"), "{name}");

    // 422: a WAV cut in half says so; garbage behind a WAV header does not decode.
    let whole = wav(8_000, 1, 0.0, 3.0, -12.0);
    let cut = upload(
        &w,
        &dj(&w),
        &[Part::file("cut.wav", &whole[..whole.len() / 2])],
    )
    .await;
    assert_eq!(cut.status, 422, "{name}: {}", cut.text);
    assert_eq!(cut.field(), Some("file"), "{name}");
    assert!(cut.text.contains("truncated"), "{name}: {}", cut.text);
    let mut junk = b"RIFF\x10\x00\x00\x00WAVEjunk".to_vec();
    junk.extend_from_slice(&[0x55; 200]);
    let broken = upload(&w, &dj(&w), &[Part::file("junk.wav", &junk)]).await;
    assert_eq!(broken.status, 422, "{name}: {}", broken.text);
    assert!(
        broken.text.contains("cannot be played"),
        "{name}: {}",
        broken.text
    );

    // 422: no file, an unknown part, two files.
    let small = wav(8_000, 1, 0.0, 0.5, -12.0);
    let no_file = upload(&w, &dj(&w), &[Part::text("title", "x")]).await;
    assert_eq!(
        (no_file.status.as_u16(), no_file.field()),
        (422, Some("file")),
        "{name}"
    );
    let unknown = upload(
        &w,
        &dj(&w),
        &[Part::file("a.wav", &small), Part::text("mood", "x")],
    )
    .await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.field()),
        (422, Some("mood")),
        "{name}"
    );
    let two = upload(
        &w,
        &dj(&w),
        &[Part::file("a.wav", &small), Part::file("b.wav", &small)],
    )
    .await;
    assert_eq!(
        (two.status.as_u16(), two.field()),
        (422, Some("file")),
        "{name}"
    );

    // Nothing of any of them is on disk or in the database.
    assert_eq!(
        files_under(media_dir.path()),
        Vec::<PathBuf>::new(),
        "{name}"
    );
    assert_eq!(media_count(&w).await, 0, "{name}");

    // And the same library takes a good file.
    let ok = upload(&w, &dj(&w), &[Part::file("ok.wav", &small)]).await;
    assert_eq!(ok.status, 201, "{name}: {}", ok.text);
    assert_eq!(files_under(media_dir.path()).len(), 1, "{name}");
}

async fn media_are_listed_edited_served_and_deleted(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 4 << 20).await;
    let base = format!("/api/v1/stations/{}/media", w.a);
    let tone = wav(8_000, 1, 0.0, 2.0, -12.0);
    let mut ids = Vec::new();
    for (title, artist) in [
        ("Blue Monday", "New Order"),
        ("Ceremony", "Joy Division"),
        ("Atmosphere", "Joy Division"),
    ] {
        let a = upload(
            &w,
            &manager(&w),
            &[
                Part::file("x.wav", &tone),
                Part::text("title", title),
                Part::text("artist", artist),
            ],
        )
        .await;
        assert_eq!(a.status, 201, "{name}: {}", a.text);
        ids.push(a.body["id"].as_str().unwrap().to_owned());
    }
    let titles = |a: &Answer| -> Vec<String> {
        a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |path: String| {
        let w = &w;
        async move {
            api::call(Method::GET, &path)
                .auth(&dj(w))
                .send(&w.app)
                .await
        }
    };
    let all = get(base.clone()).await;
    assert_eq!(
        titles(&all),
        ["Atmosphere", "Blue Monday", "Ceremony"],
        "{name}"
    );
    let joy = get(format!("{base}?q=JOY%20div")).await;
    assert_eq!(
        titles(&joy),
        ["Atmosphere", "Ceremony"],
        "{name}: {}",
        joy.text
    );
    let paged = get(format!("{base}?limit=1&offset=1")).await;
    assert_eq!(
        (titles(&paged), paged.body["total"].as_u64()),
        (vec!["Blue Monday".to_owned()], Some(3)),
        "{name}"
    );
    let wild = get(format!("{base}?q=%25")).await;
    assert_eq!(wild.body["total"], 0, "{name}: a % is literal");
    // Case folds beyond ASCII on every backend (SQLite's own LOWER folds ASCII only).
    let umlaut = upload(
        &w,
        &manager(&w),
        &[
            Part::file("x.wav", &tone),
            Part::text("title", "Schrei nach Liebe"),
            Part::text("artist", "Die Ärzte"),
        ],
    )
    .await;
    assert_eq!(umlaut.status, 201, "{name}: {}", umlaut.text);
    for q in ["%C3%84RZTE", "die%20%C3%A4rzte", "SCHREI"] {
        let found = get(format!("{base}?q={q}")).await;
        assert_eq!(titles(&found), ["Schrei nach Liebe"], "{name}: q={q}");
    }
    let gone = api::call(
        Method::DELETE,
        &format!("{base}/{}", umlaut.body["id"].as_str().unwrap()),
    )
    .auth(&manager(&w))
    .send(&w.app)
    .await;
    assert_eq!(gone.status, 204, "{name}: {}", gone.text);
    let unknown = get(format!("{base}?sort=title")).await;
    assert_eq!(unknown.status, 400, "{name}: {}", unknown.text);

    // Tags: unique per station, linked idempotently, filtered on.
    let tags = format!("/api/v1/stations/{}/tags", w.a);
    let tag = api::call(Method::POST, &tags)
        .auth(&manager(&w))
        .json(&json!({"name": "post-punk"}))
        .send(&w.app)
        .await;
    assert_eq!(tag.status, 201, "{name}: {}", tag.text);
    let tag_id = tag.body["id"].as_str().unwrap().to_owned();
    let again = api::call(Method::POST, &tags)
        .auth(&manager(&w))
        .json(&json!({"name": " post-punk "}))
        .send(&w.app)
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "conflict"),
        "{name}: {}",
        again.text
    );
    let elsewhere = api::call(Method::POST, &format!("/api/v1/stations/{}/tags", w.b))
        .auth(&Credential::Bearer(w.admin.token.clone()))
        .json(&json!({"name": "post-punk"}))
        .send(&w.app)
        .await;
    assert_eq!(
        elsewhere.status, 201,
        "{name}: the name is free at another station"
    );
    let elsewhere_id = elsewhere.body["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        for id in &ids[1..] {
            let linked = api::call(Method::PUT, &format!("{base}/{id}/tags/{tag_id}"))
                .auth(&dj(&w))
                .send(&w.app)
                .await;
            assert_eq!(linked.status, 204, "{name}: {}", linked.text);
        }
    }
    let foreign = api::call(
        Method::PUT,
        &format!("{base}/{}/tags/{elsewhere_id}", ids[0]),
    )
    .auth(&manager(&w))
    .send(&w.app)
    .await;
    assert_eq!(foreign.status, 404, "{name}: another station's tag");
    let tagged = get(format!("{base}?tag=post-punk")).await;
    assert_eq!(titles(&tagged), ["Atmosphere", "Ceremony"], "{name}");
    let one = get(format!("{base}/{}", ids[1])).await;
    assert_eq!(one.body["tags"][0]["name"], "post-punk", "{name}");
    for _ in 0..2 {
        let unlinked = api::call(Method::DELETE, &format!("{base}/{}/tags/{tag_id}", ids[1]))
            .auth(&dj(&w))
            .send(&w.app)
            .await;
        assert_eq!(unlinked.status, 204, "{name}");
    }
    assert_eq!(
        titles(&get(format!("{base}?tag=post-punk")).await),
        ["Atmosphere"],
        "{name}"
    );
    let listed = get(tags.clone()).await;
    assert_eq!(listed.body["total"], 1, "{name}");

    // Edits, with cue points checked against each other and the length.
    let item = format!("{base}/{}", ids[0]);
    let patch = |body: Value| {
        let (w, item) = (&w, item.clone());
        async move {
            api::call(Method::PATCH, &item)
                .auth(&dj(w))
                .json(&body)
                .send(&w.app)
                .await
        }
    };
    let edited = patch(json!({"album": "Power, Corruption & Lies", "genre": "synth-pop", "year": 1983, "bpm": 130.5, "cue_in_ms": 100, "cue_out_ms": 1900})).await;
    assert_eq!(edited.status, 200, "{name}: {}", edited.text);
    assert_eq!(
        (
            edited.body["year"].as_i64(),
            edited.body["bpm"].as_f64(),
            edited.body["cue_out_ms"].as_i64()
        ),
        (Some(1983), Some(130.5), Some(1900)),
        "{name}"
    );
    assert_eq!(edited.body["genre"], "synth-pop", "{name}");
    for (body, field) in [
        (json!({"cue_out_ms": 50}), "cue_out_ms"),
        (json!({"cue_out_ms": 2001}), "cue_out_ms"),
        (json!({"cue_in_ms": -5}), "cue_in_ms"),
        (json!({"cue_in_ms": 2000, "cue_out_ms": null}), "cue_in_ms"),
        (json!({"title": "  "}), "title"),
        (json!({"year": 12345}), "year"),
        (json!({"bpm": 0}), "bpm"),
        (json!({"loudness_lufs": -9}), "loudness_lufs"),
    ] {
        let refused = patch(body.clone()).await;
        assert_eq!(
            (refused.status.as_u16(), refused.field()),
            (422, Some(field)),
            "{name} {body}: {}",
            refused.text
        );
    }
    let cleared = patch(json!({"genre": null, "cue_in_ms": null})).await;
    assert_eq!(
        (
            cleared.body["genre"].clone(),
            cleared.body["cue_in_ms"].clone()
        ),
        (Value::Null, Value::Null),
        "{name}"
    );

    // The file, whole and in ranges.
    let file = format!("{item}/file");
    let whole = get(file.clone()).await;
    assert_eq!(whole.status, 200, "{name}");
    assert_eq!(whole.raw, tone, "{name}");
    assert_eq!(whole.headers["content-type"], "audio/wav", "{name}");
    assert_eq!(whole.headers["accept-ranges"], "bytes", "{name}");
    let ranged = |range: &'static str| {
        let (w, file) = (&w, file.clone());
        async move {
            api::call(Method::GET, &file)
                .auth(&dj(w))
                .header("range", range)
                .send(&w.app)
                .await
        }
    };
    let part = ranged("bytes=4-11").await;
    assert_eq!(part.status, 206, "{name}");
    assert_eq!(part.raw, &tone[4..12], "{name}");
    assert_eq!(
        part.headers["content-range"],
        format!("bytes 4-11/{}", tone.len()),
        "{name}"
    );
    let tail = ranged("bytes=-10").await;
    assert_eq!(
        (tail.status.as_u16(), tail.raw.as_slice()),
        (206, &tone[tone.len() - 10..]),
        "{name}"
    );
    let rest = ranged("bytes=32000-").await;
    assert_eq!(rest.raw, &tone[32000..], "{name}");
    let outside = ranged("bytes=999999-").await;
    assert_eq!(
        (outside.status.as_u16(), outside.code()),
        (416, "range_not_satisfiable"),
        "{name}"
    );
    assert_eq!(
        outside.headers["content-range"],
        format!("bytes */{}", tone.len()),
        "{name}"
    );

    // Deleting: refused while a clock names the item; planned plays go with it.
    let station = w.a;
    let media_id: MediaId = ids[0].parse().unwrap();
    let clock_id = w
        .state
        .db
        .run(move |c| {
            use grimnir_planner as planner;
            let slot = planner::Slot::new(planner::SlotKind::HardItem {
                media: media_id.to_string().into(),
            });
            let clock = grimnir_server::db::clocks::create(
                c,
                station,
                &grimnir_server::db::clocks::ClockInput {
                    name: "Top".into(),
                    slots: vec![slot],
                },
            )?;
            Ok(clock.id)
        })
        .await
        .unwrap();
    let refused = api::call(Method::DELETE, &item)
        .auth(&manager(&w))
        .send(&w.app)
        .await;
    assert_eq!(refused.status, 409, "{name}: {}", refused.text);
    assert!(
        refused.text.contains(&clock_id.to_string()),
        "{name}: {}",
        refused.text
    );
    let by_dj = api::call(Method::DELETE, &item)
        .auth(&dj(&w))
        .send(&w.app)
        .await;
    assert_eq!(by_dj.status, 403, "{name}");
    w.state
        .db
        .run(move |c| grimnir_server::db::clocks::delete(c, station, clock_id))
        .await
        .unwrap();
    let stored_file = media_dir
        .path()
        .join(format!("stations/{}/media/{}.wav", w.a, ids[0]));
    assert!(stored_file.exists(), "{name}");
    let deleted = api::call(Method::DELETE, &item)
        .auth(&manager(&w))
        .send(&w.app)
        .await;
    assert_eq!(deleted.status, 204, "{name}: {}", deleted.text);
    assert!(!stored_file.exists(), "{name}: the file goes with the row");
    assert_eq!(get(item.clone()).await.status, 404, "{name}");
    assert_eq!(get(file).await.status, 404, "{name}");

    // Deleting a tag unlinks it.
    let gone = api::call(Method::DELETE, &format!("{tags}/{tag_id}"))
        .auth(&manager(&w))
        .send(&w.app)
        .await;
    assert_eq!(gone.status, 204, "{name}");
    assert_eq!(
        get(format!("{base}?tag=post-punk")).await.body["total"],
        0,
        "{name}"
    );

    // Every write is in the audit log.
    let audit = api::call(
        Method::GET,
        &format!("/api/v1/audit?station_id={}&limit=200", w.a),
    )
    .auth(&manager(&w))
    .send(&w.app)
    .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "media.upload",
        "media.update",
        "media.delete",
        "media.tag",
        "media.untag",
        "tag.create",
        "tag.delete",
    ] {
        assert!(actions.contains(&action), "{name}: {action} in {actions:?}");
    }
}

/// The queue: a job is taken by one worker only, retried a bounded number of times, and a
/// stalled one is handed out again.
async fn jobs_are_claimed_once_and_retried_boundedly(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 4 << 20).await;
    let tone = wav(8_000, 1, 0.0, 1.0, -12.0);
    let a = upload(&w, &manager(&w), &[Part::file("x.wav", &tone)]).await;
    assert_eq!(a.status, 201, "{name}: {}", a.text);
    let id: MediaId = a.body["id"].as_str().unwrap().parse().unwrap();
    let db = w.state.db.clone();
    // Two claims race from two connections; exactly one wins.
    let claims: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.run(|c| media_db::claim_job(c, Utc::now(), TimeDelta::zero()))
                    .await
            })
        })
        .collect();
    let mut won = Vec::new();
    for c in claims {
        if let Some(job) = c.await.unwrap().unwrap() {
            won.push(job);
        }
    }
    assert_eq!(won.len(), 1, "{name}: {won:?}");
    let mut job = won.pop().unwrap();
    assert_eq!((job.media_id, job.attempt), (id, 1), "{name}");
    for attempt in 1..=media_db::MAX_ATTEMPTS {
        assert_eq!(job.attempt, attempt, "{name}");
        let j = job.clone();
        let outcome = db
            .run(move |c| media_db::fail_job(c, &j, "decoder exploded"))
            .await
            .unwrap();
        if attempt < media_db::MAX_ATTEMPTS {
            assert_eq!(outcome, FailOutcome::Retry, "{name}");
            // Not again before its backoff.
            let early = db
                .run(|c| media_db::claim_job(c, Utc::now(), TimeDelta::hours(1)))
                .await
                .unwrap();
            assert!(early.is_none(), "{name}");
            job = db
                .run(|c| media_db::claim_job(c, Utc::now(), TimeDelta::zero()))
                .await
                .unwrap()
                .unwrap();
        } else {
            assert_eq!(outcome, FailOutcome::GaveUp, "{name}");
        }
    }
    assert!(
        db.run(|c| media_db::claim_job(c, Utc::now(), TimeDelta::zero()))
            .await
            .unwrap()
            .is_none(),
        "{name}"
    );
    let item = api::call(Method::GET, &format!("/api/v1/stations/{}/media/{id}", w.a))
        .auth(&dj(&w))
        .send(&w.app)
        .await;
    assert_eq!(item.body["analysis_state"], "failed", "{name}");
    assert_eq!(item.body["analysis_error"], "decoder exploded", "{name}");

    // A job left running by a dead worker comes back after the lease.
    let b = upload(&w, &manager(&w), &[Part::file("y.wav", &tone)]).await;
    let b_id: MediaId = b.body["id"].as_str().unwrap().parse().unwrap();
    let taken = db
        .run(|c| media_db::claim_job(c, Utc::now(), TimeDelta::zero()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.media_id, b_id, "{name}");
    let requeued = db
        .run(|c| media_db::requeue_stalled(c, Utc::now() - TimeDelta::hours(1)))
        .await
        .unwrap();
    assert_eq!(requeued, 0, "{name}: within its lease");
    let requeued = db
        .run(|c| media_db::requeue_stalled(c, Utc::now() + TimeDelta::seconds(1)))
        .await
        .unwrap();
    assert_eq!(requeued, 1, "{name}");
    let again = db
        .run(|c| media_db::claim_job(c, Utc::now(), TimeDelta::zero()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.media_id, again.attempt), (b_id, 2), "{name}");
}

/// Integrated loudness of `path` by ffmpeg's ebur128 filter.
fn ffmpeg_loudness(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap();
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with("I:"))
        .unwrap_or_else(|| panic!("no integrated loudness in ffmpeg's output:\n{text}"));
    line.trim_start()
        .trim_start_matches("I:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

async fn the_analyser_measures_what_ffmpeg_measures(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 16 << 20).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        grimnir_server::media::analysis::AnalysisWorker::new(
            w.state.db.clone(),
            w.state.media.clone(),
            w.state.events.clone(),
        )
        .run(async move {
            let _ = stopped.await;
        }),
    );
    let mut events = w.state.events.subscribe();
    // 1 s of silence, then 5 s of a 1 kHz sine at -20 dBFS.
    let tone = wav(48_000, 2, 1.0, 5.0, -20.0);
    let a = upload(&w, &dj(&w), &[Part::file("sine.wav", &tone)]).await;
    assert_eq!(a.status, 201, "{name}: {}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/stations/{}/media/{id}", w.a);
    let started = Instant::now();
    let item = loop {
        let item = api::call(Method::GET, &path)
            .auth(&dj(&w))
            .send(&w.app)
            .await;
        if item.body["analysis_state"] != "pending" {
            break item.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: no analysis within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = stop.send(());
    worker.await.unwrap();
    assert_eq!(item["analysis_state"], "done", "{name}: {item}");
    assert_eq!(item["duration_ms"], 6000, "{name}");
    let cue_in = item["cue_in_ms"].as_i64().unwrap();
    assert!((cue_in - 1000).abs() <= 5, "{name}: cue in at {cue_in} ms");
    let cue_out = item["cue_out_ms"].as_i64().unwrap();
    assert!(
        (5995..=6000).contains(&cue_out),
        "{name}: cue out at {cue_out} ms"
    );
    let lufs = item["loudness_lufs"].as_f64().unwrap();
    let peak = item["true_peak_dbtp"].as_f64().unwrap();
    assert!((peak - -20.0).abs() < 0.5, "{name}: true peak {peak}");
    if require_ffmpeg("the loudness comparison with ffmpeg") {
        let stored = media_dir
            .path()
            .join(format!("stations/{}/media/{id}.wav", w.a));
        let reference = ffmpeg_loudness(&stored);
        assert!(
            (lufs - reference).abs() <= 0.2,
            "{name}: {lufs} LUFS, ffmpeg {reference}"
        );
    } else {
        assert!((lufs - -20.0).abs() < 0.5, "{name}: {lufs}");
    }
    // The upload and the analysis were announced.
    let mut changes = Vec::new();
    while let Ok(Ok(delivery)) =
        tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        let envelope = delivery.envelope();
        if let grimnir_server::events::Event::MediaChanged(c) = &envelope.event
            && envelope.station_id == w.a.as_uuid()
        {
            changes.push(c.change);
        }
    }
    use grimnir_server::events::MediaChange;
    assert_eq!(
        changes,
        [MediaChange::Uploaded, MediaChange::Analysed],
        "{name}"
    );
}

/// A client that goes away mid-upload, or announces too much, leaves nothing behind.
async fn interrupted_uploads_leave_nothing(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 1 << 20).await;
    let path = format!("/api/v1/stations/{}/media", w.a);
    let audio = wav(8_000, 1, 0.0, 2.0, -12.0);
    let (content_type, body) = multipart(&[Part::file("a.wav", &audio)]);
    // Half the body, then the connection breaks.
    let half = bytes::Bytes::from(body[..body.len() / 2].to_vec());
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "gone",
        )),
    ];
    let broken = api::call(Method::POST, &path)
        .auth(&dj(&w))
        .bytes(
            &content_type,
            axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
        )
        .send(&w.app)
        .await;
    assert_eq!(broken.status, 400, "{name}: {}", broken.text);
    assert_eq!(broken.code(), "malformed_multipart", "{name}");
    // A body announced larger than the limit is refused before it is read.
    let announced = api::call(Method::POST, &path)
        .auth(&dj(&w))
        .header("content-length", &(2u64 << 20).to_string())
        .bytes(&content_type, body.clone())
        .send(&w.app)
        .await;
    assert_eq!(announced.status, 413, "{name}: {}", announced.text);
    assert!(
        announced.text.contains("1048576 bytes (1 MiB)"),
        "{name}: {}",
        announced.text
    );
    assert_eq!(
        files_under(media_dir.path()),
        Vec::<PathBuf>::new(),
        "{name}"
    );
    assert_eq!(media_count(&w).await, 0, "{name}");
}

/// Deleting an item takes its planned plays out of the schedule and keeps the past ones.
async fn deleting_unplans_future_plays(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 1 << 20).await;
    let audio = wav(8_000, 1, 0.0, 1.0, -12.0);
    let a = upload(&w, &manager(&w), &[Part::file("a.wav", &audio)]).await;
    assert_eq!(a.status, 201, "{name}: {}", a.text);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let station = w.a;
    let now = Utc::now();
    let entry = |start: chrono::DateTime<Utc>| -> grimnir_planner::Entry {
        serde_json::from_value(json!({
            "start": start, "end": start + TimeDelta::seconds(1),
            "source": {"type": "media", "id": id, "title": "a", "artists": [], "cue_in": 0, "cue_out": 1000},
            "tier": "automation",
            "transition": {"fade_in": 0, "fade_out": 0, "overlap": 0},
            "provenance": {"role": "slot", "kind": "smart_block", "frame": start, "step": 0, "pick": 0}
        }))
        .unwrap()
    };
    let (past, future) = (
        entry(now - TimeDelta::hours(1)),
        entry(now + TimeDelta::hours(1)),
    );
    let (from, to) = (now - TimeDelta::hours(2), now + TimeDelta::hours(2));
    let count = move |c: &mut grimnir_server::db::DbConnection| {
        grimnir_server::db::schedule::list(c, station, from, to, grimnir_server::db::Page::ALL)
            .map(|(entries, _)| entries.len())
    };
    let stored = w
        .state
        .db
        .run(move |c| {
            grimnir_server::db::schedule::replace_window(c, station, from, to, &[past, future])?;
            count(c)
        })
        .await
        .unwrap();
    assert_eq!(stored, 2, "{name}");
    let deleted = api::call(
        Method::DELETE,
        &format!(
            "/api/v1/stations/{}/media/{}",
            w.a,
            a.body["id"].as_str().unwrap()
        ),
    )
    .auth(&manager(&w))
    .send(&w.app)
    .await;
    assert_eq!(deleted.status, 204, "{name}: {}", deleted.text);
    assert_eq!(
        w.state.db.run(count).await.unwrap(),
        1,
        "{name}: the past play stays"
    );
}

/// The worker records a failed analysis (here: the file is gone) with its attempt and reason,
/// and the item says why; it does not stop working.
async fn the_worker_records_failures(backend: &api::Backend) {
    let name = backend.name;
    let media_dir = tempfile::tempdir().unwrap();
    let w = world(backend, media_dir.path(), 1 << 20).await;
    let audio = wav(8_000, 1, 0.0, 1.0, -12.0);
    let a = upload(&w, &manager(&w), &[Part::file("a.wav", &audio)]).await;
    assert_eq!(a.status, 201, "{name}: {}", a.text);
    let id: MediaId = a.body["id"].as_str().unwrap().parse().unwrap();
    std::fs::remove_file(
        media_dir
            .path()
            .join(format!("stations/{}/media/{id}.wav", w.a)),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(
        grimnir_server::media::analysis::AnalysisWorker::new(
            w.state.db.clone(),
            w.state.media.clone(),
            w.state.events.clone(),
        )
        .run(async move {
            let _ = stopped.await;
        }),
    );
    let started = Instant::now();
    let job = loop {
        let job = w
            .state
            .db
            .run(move |c| media_db::job_of(c, id))
            .await
            .unwrap()
            .unwrap();
        if job.2.is_some() {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name}: no failure recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = stop.send(());
    worker.await.unwrap();
    // Back in the queue for a later attempt, with the reason.
    assert_eq!((job.0.as_str(), job.1), ("pending", 1), "{name}");
    assert!(
        job.2.as_deref().unwrap().contains("cannot read the file"),
        "{name}: {job:?}"
    );
    let item = api::call(Method::GET, &format!("/api/v1/stations/{}/media/{id}", w.a))
        .auth(&dj(&w))
        .send(&w.app)
        .await;
    assert_eq!(item.body["analysis_state"], "pending", "{name}");
    assert!(
        item.body["analysis_error"]
            .as_str()
            .unwrap()
            .contains("cannot read the file"),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_records_failures_on_every_backend() {
    for backend in api::backends() {
        the_worker_records_failures(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_uploads_leave_nothing_on_every_backend() {
    for backend in api::backends() {
        interrupted_uploads_leave_nothing(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_unplans_future_plays_on_every_backend() {
    for backend in api::backends() {
        deleting_unplans_future_plays(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_container_is_taken_on_every_backend() {
    for backend in api::backends() {
        every_container_is_taken(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_played_is_refused_on_every_backend() {
    for backend in api::backends() {
        what_cannot_be_played_is_refused_and_leaves_nothing(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_are_listed_edited_served_and_deleted_on_every_backend() {
    for backend in api::backends() {
        media_are_listed_edited_served_and_deleted(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_claimed_once_and_retried_boundedly_on_every_backend() {
    for backend in api::backends() {
        jobs_are_claimed_once_and_retried_boundedly(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analyser_measures_what_ffmpeg_measures_on_every_backend() {
    for backend in api::backends() {
        the_analyser_measures_what_ffmpeg_measures(&backend).await;
    }
}
