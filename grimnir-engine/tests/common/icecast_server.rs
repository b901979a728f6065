//! A real `icecast2` for tests: started on a free loopback port with its own configuration and
//! log directory, stopped and started again on the same port, killed by PID when dropped.
//!
//! Include it from a test file with
//! `#[path = "common/icecast_server.rs"] mod icecast_server;`.
//!
//! Icecast refuses to run as root; when the tests run as root the configuration has it drop
//! to `nobody:nogroup` (`<changeowner>`), so its directory is made writable for everyone.
//! When `icecast2` is not installed, [`IcecastServer::start_or_skip`] prints why and returns
//! `None` — unless `CI=true`, where a missing server fails the test.
//!
//! Every mount is configured with `<charset>UTF-8</charset>`: Icecast 2.4 otherwise recodes
//! titles and `Ice-*` header values into ISO-8859-1 (the ICY tradition), which turns whatever
//! Latin-1 cannot hold into `&#NNNN;` references.
#![allow(dead_code)] // each test file uses part of the helper
#![allow(clippy::unwrap_used)] // a test helper: a failed unwrap is a failed test
#![allow(unreachable_pub)] // `pub` is for the test files that include it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The source password every test server accepts.
pub const SOURCE_PASSWORD: &str = "grimnir-source";
/// The admin user's password.
pub const ADMIN_PASSWORD: &str = "grimnir-admin";

/// How long a server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running (or stopped) `icecast2` on `127.0.0.1`.
#[derive(Debug)]
pub struct IcecastServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    config: PathBuf,
    child: Option<Child>,
}

impl IcecastServer {
    /// Where `icecast2` is installed, if it is.
    pub fn binary() -> Option<PathBuf> {
        let candidates = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .unwrap_or_default();
        candidates
            .into_iter()
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
            .map(|dir| dir.join("icecast2"))
            .find(|p| p.is_file())
    }

    /// Starts a server, or, when `icecast2` is not installed, prints why the calling test is
    /// skipped and returns `None`. Under `CI=true` a missing server is a failure.
    pub fn start_or_skip() -> Option<IcecastServer> {
        if IcecastServer::binary().is_none() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "icecast2 is not installed, and CI=true: install the icecast2 package"
            );
            println!("skipped: icecast2 is not installed (apt-get install icecast2)");
            return None;
        }
        Some(IcecastServer::start())
    }

    /// Starts a server on a free loopback port. Panics if it cannot.
    pub fn start() -> IcecastServer {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let binary = IcecastServer::binary().expect("icecast2 is not installed");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "grimnir-icecast-{}-{}-{port}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // After dropping root, icecast writes its logs here as `nobody`.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let config = dir.join("icecast.xml");
        std::fs::write(&config, config_xml(port, &dir, &share_dir(&binary))).unwrap();
        let mut server = IcecastServer {
            binary,
            port,
            dir,
            config,
            child: None,
        };
        server.start_again();
        server
    }

    /// The port it listens on (always the same, across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The source password it accepts.
    pub fn source_password(&self) -> &'static str {
        SOURCE_PASSWORD
    }

    /// The admin password (user `admin`).
    pub fn admin_password(&self) -> &'static str {
        ADMIN_PASSWORD
    }

    /// Its directory: configuration and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether its process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (by its PID) and waits for it to go. Its sources and listeners lose
    /// their connections at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the same configuration, and waits until
    /// it answers. Panics if it does not.
    pub fn start_again(&mut self) {
        self.stop();
        let output = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(output("stdout.log"))
            .stderr(output("stderr.log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !self.is_running() {
                panic!("icecast2 exited at start:\n{}", self.logs());
            }
            if let Ok((200, _, _)) = http_get(self.port, "/status-json.xsl", &[]) {
                return;
            }
            if Instant::now() > deadline {
                let logs = self.logs();
                self.stop();
                panic!("icecast2 did not answer within {START_TIMEOUT:?}:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its output and error log, to explain a failure.
    pub fn logs(&self) -> String {
        ["stdout.log", "stderr.log", "error.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                format!("--- {name}\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `/status-json.xsl`, parsed.
    ///
    /// Icecast 2.4.4 now and then renders it as broken JSON (its stylesheet drops the opening
    /// brace when the statistics it transforms are incomplete for a moment), so a reply that
    /// does not parse is asked for again, for up to two seconds.
    pub fn status_json(&self) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (status, _, body) = http_get(self.port, "/status-json.xsl", &[]).unwrap();
            assert_eq!(
                status,
                200,
                "status-json.xsl: {}",
                String::from_utf8_lossy(&body)
            );
            match serde_json::from_slice(&body) {
                Ok(json) => return json,
                Err(e) if Instant::now() > deadline => panic!(
                    "status-json.xsl is not JSON ({e}): {}",
                    String::from_utf8_lossy(&body)
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The sources in the status, one object each (Icecast gives a lone source as an object
    /// and several as an array).
    pub fn sources(&self) -> Vec<serde_json::Value> {
        match self.status_json()["icestats"].get("source") {
            Some(serde_json::Value::Array(sources)) => sources.clone(),
            Some(source @ serde_json::Value::Object(_)) => vec![source.clone()],
            _ => Vec::new(),
        }
    }

    /// The status of `mount` (`/live`), while a source is on it.
    pub fn source(&self, mount: &str) -> Option<serde_json::Value> {
        self.sources().into_iter().find(|s| {
            s["listenurl"]
                .as_str()
                .is_some_and(|url| url.ends_with(mount))
        })
    }

    /// The mounts that have a source, such as `["/live"]`.
    pub fn mounts(&self) -> Vec<String> {
        let prefix = format!("http://127.0.0.1:{}", self.port);
        self.sources()
            .iter()
            .filter_map(|s| s["listenurl"].as_str())
            .map(|url| url.strip_prefix(&prefix).unwrap_or(url).to_owned())
            .collect()
    }

    /// Waits until `mount` has a source; false if it has none after `timeout`.
    pub fn wait_for_mount(&self, mount: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.source(mount).is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Connects a listener to `mount`, asking for ICY metadata if `icy_metadata`.
    pub fn listen(&self, mount: &str, icy_metadata: bool) -> Listener {
        Listener::connect(self.port, mount, icy_metadata)
    }
}

impl Drop for IcecastServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A listener on a mount: reads the audio and, if it asked for them, the ICY titles.
#[derive(Debug)]
pub struct Listener {
    reader: BufReader<TcpStream>,
    /// The HTTP status line and headers of the reply.
    pub head: Vec<String>,
    /// Audio bytes between two metadata blocks (`icy-metaint`), if metadata was asked for.
    metaint: Option<usize>,
    until_metadata: usize,
    titles: Vec<String>,
}

impl Listener {
    /// Connects to `mount` on `127.0.0.1:port`. Panics unless Icecast answers 200.
    pub fn connect(port: u16, mount: &str, icy_metadata: bool) -> Listener {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!("GET {mount} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
        if icy_metadata {
            request.push_str("Icy-MetaData: 1\r\n");
        }
        request.push_str("\r\n");
        (&stream).write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            head.push(line);
        }
        assert!(
            head.first().is_some_and(|l| l.contains(" 200 ")),
            "listener on {mount}: {head:?}"
        );
        let metaint = head.iter().find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("icy-metaint")
                .then(|| value.trim().parse().ok())?
        });
        assert_eq!(
            metaint.is_some(),
            icy_metadata,
            "icy-metaint when asked for: {head:?}"
        );
        Listener {
            reader,
            head,
            until_metadata: metaint.unwrap_or(0),
            metaint,
            titles: Vec::new(),
        }
    }

    /// Reads up to `bytes` of audio (metadata blocks taken out), for at most `timeout`; less
    /// if the stream ends or stalls.
    pub fn read_audio(&mut self, bytes: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut audio = Vec::with_capacity(bytes);
        let mut chunk = [0u8; 4096];
        while audio.len() < bytes && Instant::now() < deadline {
            if self.metaint.is_some() && self.until_metadata == 0 {
                if !self.read_metadata() {
                    break;
                }
                continue;
            }
            let mut want = (bytes - audio.len()).min(chunk.len());
            if self.metaint.is_some() {
                want = want.min(self.until_metadata);
            }
            match self.reader.read(&mut chunk[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    audio.extend_from_slice(&chunk[..n]);
                    if self.metaint.is_some() {
                        self.until_metadata -= n;
                    }
                }
            }
        }
        audio
    }

    /// Reads the stream until a metadata block carries `title`, for at most `timeout` (plus
    /// one socket read timeout if the stream stalls).
    pub fn wait_for_title(&mut self, title: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.titles.iter().any(|t| t == title) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.read_audio(4096, Duration::from_millis(500));
        }
    }

    /// The stream titles seen so far, in order.
    pub fn titles(&self) -> &[String] {
        &self.titles
    }

    /// Reads one metadata block: a length byte (×16) and `StreamTitle='…';…`.
    fn read_metadata(&mut self) -> bool {
        let mut length = [0u8; 1];
        if self.reader.read_exact(&mut length).is_err() {
            return false;
        }
        let mut block = vec![0u8; usize::from(length[0]) * 16];
        if self.reader.read_exact(&mut block).is_err() {
            return false;
        }
        self.until_metadata = self.metaint.unwrap_or(0);
        let text = String::from_utf8_lossy(&block);
        let text = text.trim_end_matches('\0');
        if let Some(start) = text.find("StreamTitle='") {
            let rest = &text[start + "StreamTitle='".len()..];
            let title = rest.find("';").map_or(rest, |end| &rest[..end]);
            if self.titles.last().map(String::as_str) != Some(title) {
                self.titles.push(title.to_owned());
            }
        }
        true
    }
}

/// A plain HTTP/1.0 GET on `127.0.0.1:port`: status, header lines, body.
pub fn http_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Vec<String>, Vec<u8>)> {
    let stream = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    (&stream).write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    (&stream).take(4 << 20).read_to_end(&mut reply)?;
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of head"))?;
    let head = String::from_utf8_lossy(&reply[..end]).into_owned();
    let lines: Vec<String> = head.lines().map(str::to_owned).collect();
    let status = lines
        .first()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:?}")))?;
    Ok((status, lines, reply[end + 4..].to_vec()))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Icecast's web and admin files: `/usr/share/icecast2` for `/usr/bin/icecast2`.
fn share_dir(binary: &Path) -> PathBuf {
    binary
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("/usr"), Path::to_path_buf)
        .join("share/icecast2")
}

fn config_xml(port: u16, dir: &Path, share: &Path) -> String {
    let security = if running_as_root() {
        "<security><chroot>0</chroot>\
         <changeowner><user>nobody</user><group>nogroup</group></changeowner></security>"
    } else {
        "<security><chroot>0</chroot></security>"
    };
    format!(
        r#"<icecast>
  <location>grimnir tests</location>
  <admin>tests@localhost</admin>
  <limits>
    <clients>50</clients>
    <sources>10</sources>
    <queue-size>1048576</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>5</header-timeout>
    <source-timeout>5</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>65536</burst-size>
  </limits>
  <authentication>
    <source-password>{SOURCE_PASSWORD}</source-password>
    <relay-password>{SOURCE_PASSWORD}-relay</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>{ADMIN_PASSWORD}</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket>
    <port>{port}</port>
    <bind-address>127.0.0.1</bind-address>
  </listen-socket>
  <fileserve>1</fileserve>
  <paths>
    <basedir>{share}</basedir>
    <logdir>{dir}</logdir>
    <webroot>{share}/web</webroot>
    <adminroot>{share}/admin</adminroot>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>3</loglevel>
  </logging>
  <mount type="default">
    <charset>UTF-8</charset>
  </mount>
  {security}
</icecast>
"#,
        dir = dir.display(),
        share = share.display(),
    )
}
