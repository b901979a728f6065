//! The `grimnir` binary end to end: first start in an empty directory, JSON logs with request
//! ids, SIGTERM, and a bad config file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary, with no GRIMNIR_*/RLM_* variables from the caller's environment.
fn grimnir(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_grimnir"));
    command.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("GRIMNIR_") || key.starts_with("RLM_") {
            command.env_remove(key.as_ref());
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("cannot run grimnir")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn migrate_creates_the_database_under_data_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(grimnir(dir.path()).arg("migrate"));
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    // Every migration, the first one among them.
    assert!(
        stdout.starts_with("sqlite://data/grimnir.db: applied ")
            && stdout.contains(" migration(s): 20261124000001"),
        "{stdout}"
    );
    assert!(dir.path().join("data/grimnir.db").is_file());

    let second = run(grimnir(dir.path()).arg("migrate"));
    assert!(second.status.success());
    assert_eq!(
        text(&second.stdout),
        "sqlite://data/grimnir.db: schema is up to date\n"
    );
}

#[test]
fn a_bad_config_file_stops_start_up_naming_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grimnir.yaml"),
        "http:\n  listen: 127.0.0.1:0\nlog:\n  format: xml\n",
    )
    .unwrap();
    let output = run(grimnir(dir.path()).args(["--config", "grimnir.yaml", "serve"]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr,
        "grimnir: grimnir.yaml:4:3: log.format: expected `pretty` or `json`\n"
    );
    assert!(!dir.path().join("data").exists(), "nothing started");
}

#[test]
fn a_bad_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(grimnir(dir.path())
        .env("RLM_DATABASE_URL", "oracle://db/x")
        .arg("migrate"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("grimnir: environment variable RLM_DATABASE_URL=\"oracle://db/x\": unknown database URL scheme"),
        "{stderr}"
    );
}

/// A running `grimnir serve` whose log lines arrive on a channel; killed if the test fails.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<serde_json::Value>,
}

impl Served {
    /// Waits up to 20 s for a JSON log line matching `wanted`.
    fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let value: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            self.seen.push(value.clone());
            if wanted(&value) {
                return value;
            }
        }
        panic!("no log line for {what}; saw {:#?}", self.seen);
    }
}

impl Served {
    /// `grimnir serve` in `dir` with production (JSON) logs on a free loopback port.
    fn start(dir: &Path) -> Served {
        Served::start_with(dir, &[])
    }

    /// The same, with more variables.
    fn start_with(dir: &Path, vars: &[(&str, &str)]) -> Served {
        let mut child = grimnir(dir)
            .envs(vars.iter().copied())
            .env("GRIMNIR_ENV", "production")
            .env("GRIMNIR_HTTP_LISTEN", "127.0.0.1:0")
            .env("GRIMNIR_JWT_SECRET", common::TEST_SECRET)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served {
            child,
            lines,
            seen: Vec::new(),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_json_in_production_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Uploads a stopped server left unfinished: the stale one is removed at start.
    let uploads = dir.path().join("data/media/stations/s1/media");
    std::fs::create_dir_all(&uploads).unwrap();
    let (stale, fresh) = (uploads.join("a.flac.part"), uploads.join("b.flac.part"));
    std::fs::write(&stale, b"x").unwrap();
    std::fs::write(&fresh, b"x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let mut served = Served::start(dir.path());

    let listening = served.wait_for("listening", |l| l["message"] == "listening");
    let addr: SocketAddr = listening["address"].as_str().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback());
    let removed = served.wait_for("unfinished uploads", |l| {
        l["message"] == "unfinished uploads removed"
    });
    assert_eq!(removed["removed"], 1);
    assert!(!stale.exists() && fresh.exists());
    assert!(
        dir.path().join("data/grimnir.db").is_file(),
        "created on first start"
    );

    let ready = common::get(addr, "/readyz", &[("x-request-id", "cli-test-1")]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let logged = served.wait_for("the request", |l| l["span"]["request_id"] == "cli-test-1");
    assert_eq!(logged["span"]["path"], "/readyz");
    assert_eq!(logged["level"], "INFO");
    assert!(logged["timestamp"].is_string());
    assert!(logged["span"].get("station_id").is_none(), "{logged}");
    // A request about a station carries its id, refused or not.
    let station = "3f1c2b9e-9a41-4c47-a1a0-3d0d2b3c4e5f";
    let refused = common::get(
        addr,
        &format!("/api/v1/stations/{station}/mounts"),
        &[("x-request-id", "cli-test-2")],
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let logged = served.wait_for("the station request", |l| {
        l["span"]["request_id"] == "cli-test-2"
    });
    assert_eq!(logged["span"]["station_id"], station, "{logged}");

    let pid = served.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "grimnir did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    served.wait_for("SIGTERM", |l| l["message"] == "SIGTERM received");
    served.wait_for("the end", |l| l["message"] == "stopped");
}

/// The database `grimnir migrate` makes in `dir` (SQLite under `data/`), opened here.
async fn migrated(dir: &Path) -> grimnir_server::db::Database {
    let out = run(grimnir(dir).arg("migrate"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = format!("sqlite://{}", dir.join("data/grimnir.db").display());
    grimnir_server::db::Database::open(url.parse().unwrap(), Default::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_station_executor_logs_carries_the_station_id() {
    use grimnir_server::db::stations::{self, NewStation};
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(dir.path()).await;
    let station = db
        .run(|c| stations::create(c, &NewStation::new("Logged FM", "UTC")))
        .await
        .unwrap()
        .id;
    drop(db);
    let mut served = Served::start(dir.path());
    // The first commands the station's executor sends are logged inside its task.
    let logged = served.wait_for("a command of the station's executor", |l| {
        l["message"] == "engine command (no engine connected)"
    });
    assert_eq!(logged["span"]["name"], "station", "{logged}");
    assert_eq!(
        logged["span"]["station_id"],
        station.to_string(),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_deletes_audit_entries_past_their_retention() {
    use diesel::prelude::*;
    use grimnir_server::audit::{self, Actor, Entry};
    use grimnir_server::db::{Page, schema};
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(dir.path()).await;
    // Ten days old, and one from now.
    db.run(|c| {
        let old = audit::record(c, &Entry::new(Actor::System, "test.old", "thing"))?;
        diesel::update(schema::audit_log::table.find(old.to_string()))
            .set(
                schema::audit_log::occurred_at
                    .eq((chrono::Utc::now() - chrono::Duration::days(10)).naive_utc()),
            )
            .execute(c)?;
        audit::record(c, &Entry::new(Actor::System, "test.recent", "thing"))
    })
    .await
    .unwrap();
    let mut served = Served::start_with(dir.path(), &[("GRIMNIR_AUDIT_RETENTION_DAYS", "7")]);
    let logged = served.wait_for("the audit prune", |l| {
        l["message"] == "old audit entries deleted"
    });
    assert_eq!(logged["deleted"], 1, "{logged}");
    let actions: Vec<String> = db
        .run(|c| audit::list(c, None, Page::ALL))
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"test.recent".to_owned()), "{actions:?}");
    assert!(actions.contains(&"audit.prune".to_owned()), "{actions:?}");
    assert!(!actions.contains(&"test.old".to_owned()), "{actions:?}");
}

#[test]
fn live_key_prints_the_key_engines_check_live_credentials_with() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-live-key-test-secret-of-32-bytes!!";
    let key = |secret: &str| {
        let out = run(grimnir(dir.path())
            .env("GRIMNIR_JWT_SECRET", secret)
            .arg("live-key"));
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let printed = key(secret);
    assert_eq!(printed.len(), 64, "{printed}");
    assert!(printed.chars().all(|c| c.is_ascii_hexdigit()), "{printed}");
    assert_eq!(printed, key(secret), "the same secret gives the same key");
    assert_ne!(printed, key("another-test-secret-of-at-least-32-b"));
    assert!(!printed.contains(secret));

    // --out writes it, readable by its owner only.
    let file = dir.path().join("live.key");
    let out = run(grimnir(dir.path())
        .env("GRIMNIR_JWT_SECRET", secret)
        .args(["live-key", "--out"])
        .arg(&file));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), printed);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // Without a configured secret there is no key an engine could keep.
    let out = run(grimnir(dir.path()).arg("live-key"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("jwt_secret"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn production_refuses_to_start_without_a_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(grimnir(dir.path())
        .env("GRIMNIR_ENV", "production")
        .env("GRIMNIR_HTTP_LISTEN", "127.0.0.1:0")
        .arg("serve"));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no JWT secret: set GRIMNIR_JWT_SECRET"),
        "{stderr}"
    );
    // It stops before touching storage.
    assert!(!dir.path().join("data").exists());

    // A secret too short is refused, naming the variable but not the value.
    let out = run(grimnir(dir.path())
        .env("RLM_JWT_SECRET", "hunter2hunter2")
        .arg("serve"));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("RLM_JWT_SECRET") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_makes_accounts_that_sign_in() {
    use std::io::Write as _;

    use grimnir_server::auth::sessions::RequestInfo;
    use grimnir_server::db::{Database, DatabaseUrl};

    let dir = tempfile::tempdir().unwrap();
    // A password from standard input.
    let mut child = grimnir(dir.path())
        .args([
            "user",
            "create",
            "--email",
            "Ops@Example.org",
            "--role",
            "admin",
        ])
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"the operator's long password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("created admin ops@example.org ("),
        "{stdout}"
    );
    assert!(!stdout.contains("password"), "{stdout}");

    // A generated password, printed once.
    let out = run(grimnir(dir.path()).args(["user", "create", "--email", "dj@example.org"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("created user dj@example.org ("),
        "{stdout}"
    );
    let generated = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 24);

    // Taken emails and short passwords are refused.
    let out = run(grimnir(dir.path()).args(["user", "create", "--email", "OPS@example.org"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists already"),
        "{}",
        text(&out.stderr)
    );
    let mut child = grimnir(dir.path())
        .args([
            "user",
            "create",
            "--email",
            "x@example.org",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 10 characters"),
        "{}",
        text(&out.stderr)
    );

    // Both sign in, on the database the command used.
    let db = Database::open(
        DatabaseUrl::sqlite_file(dir.path().join("data/grimnir.db")),
        Default::default(),
    )
    .await
    .unwrap();
    let auth = common::auth_with(common::generous_limits());
    let info = RequestInfo::default();
    let ops = auth
        .login(
            &db,
            "ops@example.org",
            "the operator's long password",
            &info,
        )
        .await
        .unwrap();
    assert_eq!(ops.user.role.as_str(), "admin");
    let dj = auth
        .login(&db, "dj@example.org", &generated, &info)
        .await
        .unwrap();
    assert_eq!(dj.user.role.as_str(), "user");
}

/// The planner's demo station and library, from the workspace.
fn demo(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../grimnir-planner/examples/demo")
        .join(file)
}

#[test]
fn plan_prints_the_timeline_the_planner_makes() {
    let dir = tempfile::tempdir().unwrap();
    let plan = |extra: &[&str]| {
        let mut command = grimnir(dir.path());
        command
            .arg("plan")
            .arg("--station")
            .arg(demo("station.yaml"))
            .arg("--library")
            .arg(demo("library.yaml"))
            .args(["--from", "2026-11-24 06:00", "--hours", "3"])
            .args(extra);
        run(&mut command)
    };
    let json = plan(&["--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let lines: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three hours of air, entry after entry, from 06:00 New York time.
    assert_eq!(lines[0]["start"], "2026-11-24T11:00:00Z");
    assert_eq!(lines.last().unwrap()["end"], "2026-11-24T14:00:00Z");
    for pair in lines.windows(2) {
        assert_eq!(pair[0]["end"], pair[1]["start"]);
    }
    // Deterministic: the same command, the same bytes; another seed, another timeline.
    assert_eq!(plan(&["--json"]).stdout, json.stdout);
    assert_ne!(plan(&["--json", "--seed", "7"]).stdout, json.stdout);
    assert!(text(&json.stderr).contains(&format!("{} entries", lines.len())));

    let table = text(&plan(&[]).stdout);
    assert!(table.contains("── Tuesday 2026-11-24 ──"), "{table}");
    let explain = plan(&["--explain", "2026-11-24 07:30"]);
    assert!(explain.status.success(), "{}", text(&explain.stderr));
    assert!(!explain.stdout.is_empty());
    let outside = plan(&["--explain", "2026-11-25 07:30"]);
    assert!(!outside.status.success());
    assert!(text(&outside.stderr).contains("outside the planned window"));
}

#[test]
fn plan_names_a_broken_station_file() {
    let dir = tempfile::tempdir().unwrap();
    let station = dir.path().join("station.yaml");
    std::fs::write(&station, "station:\n  name: X\n").unwrap();
    let out = run(grimnir(dir.path())
        .arg("plan")
        .arg("--station")
        .arg(&station)
        .arg("--library")
        .arg(demo("library.yaml")));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("grimnir: ") && stderr.contains("station.yaml"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reads_a_station_from_the_database() {
    use diesel::prelude::*;
    use grimnir_planner::{Millis, Slot, SlotKind, SmartBlock, WeeklyGrid};
    use grimnir_server::db::programme::{self, ProgrammeSettings};
    use grimnir_server::db::schema::media_items;
    use grimnir_server::db::{Database, DatabaseUrl, clocks, smart_blocks, stations};

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        DatabaseUrl::sqlite_file(dir.path().join("data/grimnir.db")),
        Default::default(),
    )
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let station = db
        .run(|c| {
            let station = stations::create(c, &stations::NewStation::new("CLI FM", "UTC"))?;
            let at = chrono::Utc::now().naive_utc();
            for i in 0..20_i64 {
                diesel::insert_into(media_items::table)
                    .values((
                        media_items::id.eq(uuid::Uuid::new_v4().to_string()),
                        media_items::station_id.eq(station.id.to_string()),
                        media_items::title.eq(format!("Song {i}")),
                        media_items::artist.eq(Some(format!("Band {}", i % 7))),
                        media_items::storage_key.eq(format!("media/{i}.flac")),
                        media_items::content_type.eq("audio/flac"),
                        media_items::size_bytes.eq(1_i64),
                        media_items::duration_ms.eq(Some(170_000 + 4_000 * i)),
                        media_items::analysis_state.eq("done"),
                        media_items::metadata.eq("{}"),
                        media_items::created_at.eq(at),
                        media_items::updated_at.eq(at),
                    ))
                    .execute(c)?;
            }
            let block = smart_blocks::create(
                c,
                station.id,
                &smart_blocks::SmartBlockInput {
                    name: "All".into(),
                    description: None,
                    block: SmartBlock::new("x", None),
                },
            )?;
            let clock = clocks::create(
                c,
                station.id,
                &clocks::ClockInput {
                    name: "Music".into(),
                    slots: vec![Slot::new(SlotKind::SmartBlock {
                        block: block.id.to_string().into(),
                        duration: Some(Millis::from_minutes(20)),
                    })],
                },
            )?;
            let settings = ProgrammeSettings {
                grid: WeeklyGrid {
                    default: Some(clock.id.to_string().into()),
                    rules: vec![],
                },
                ..ProgrammeSettings::default()
            };
            programme::set_settings(c, station.id, &settings)?;
            Ok(station.id)
        })
        .await
        .unwrap();
    drop(db);

    let plan = |station: &str, extra: &[&str]| {
        run(grimnir(dir.path())
            .args(["plan", "--source", "database", "--station", station])
            .args(["--from", "2026-11-24 06:00", "--hours", "2"])
            .args(extra))
    };
    let json = plan(&station.to_string(), &["--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let lines: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["start"], "2026-11-24T06:00:00Z");
    assert!(lines.last().unwrap()["end"].as_str().unwrap() >= "2026-11-24T08:00:00Z");
    for pair in lines.windows(2) {
        assert_eq!(pair[0]["end"], pair[1]["start"]);
    }
    assert!(
        lines
            .iter()
            .all(|l| l["title"].as_str().unwrap().starts_with("Song "))
    );
    assert_eq!(plan(&station.to_string(), &["--json"]).stdout, json.stdout);
    assert!(text(&plan(&station.to_string(), &[]).stdout).contains("CLI FM"));

    let unknown = plan(&uuid::Uuid::new_v4().to_string(), &[]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("not found"),
        "{}",
        text(&unknown.stderr)
    );
    let not_an_id = plan("station.yaml", &[]);
    assert!(!not_an_id.status.success());
    assert!(
        text(&not_an_id.stderr).contains("a UUID"),
        "{}",
        text(&not_an_id.stderr)
    );
    // Files stay the default source, and need a library.
    let no_library = run(grimnir(dir.path()).args(["plan", "--station", "station.yaml"]));
    assert!(!no_library.status.success());
    assert!(
        text(&no_library.stderr).contains("--library"),
        "{}",
        text(&no_library.stderr)
    );
}
