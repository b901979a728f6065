//! An Icecast/Shoutcast source endpoint: DJs' encoders connect here to go live.
//!
//! The protocol is Icecast's: the client sends `SOURCE /mount HTTP/1.0` (older clients) or
//! `PUT /mount HTTP/1.1` (Icecast 2.4's, which ffmpeg and current clients speak, usually with
//! `Expect: 100-continue`), HTTP Basic credentials, the stream's `Content-Type` and `ice-*`
//! headers, and then the encoded stream itself for as long as the DJ is on. The listener
//! answers `200 OK` (or `100 Continue`) when the credentials pass the [`Authenticator`] and the
//! mount is free, `401` when they do not, `403` when the mount is taken or not offered, and
//! `400` for anything that is not a source request.
//!
//! Each accepted connection becomes a [`LiveConnection`] with its [`LiveSource`], fed by a
//! thread of its own; [`SourceListener::accept`] hands them over in order.
//!
//! ```no_run
//! use std::sync::Arc;
//! use grimnir_engine::input::{LiveConfig, icecast::{Credentials, SourceListener}};
//!
//! let auth = Arc::new(|c: &Credentials| c.mount == "/live" && c.user == "dj" && c.password == "pw");
//! let listener = SourceListener::bind("127.0.0.1:8010".parse()?, LiveConfig::new(48_000, 2), auth)?;
//! if let Some(live) = listener.accept(std::time::Duration::from_secs(60)) {
//!     println!("{} is live on {}", live.user, live.mount);
//!     // hand live.source to the mixer…
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Feeder, LiveConfig, LiveSource};
use crate::EngineError;

/// The longest request head read (request line and headers), bytes.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connecting source presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The mount asked for (`/live`).
    pub mount: String,
    /// The user name (`source` for clients that send none).
    pub user: String,
    /// The password.
    pub password: String,
}

/// Decides whether a source may go live; the server checks its DJs' credentials here. It runs
/// on the connection's own thread and may take its time (a database lookup).
pub trait Authenticator: Send + Sync {
    /// Whether these credentials may stream to this mount.
    fn allows(&self, credentials: &Credentials) -> bool;
}

impl<F: Fn(&Credentials) -> bool + Send + Sync> Authenticator for F {
    fn allows(&self, credentials: &Credentials) -> bool {
        self(credentials)
    }
}

/// A DJ who is now connected.
#[derive(Debug)]
pub struct LiveConnection {
    /// The mount.
    pub mount: String,
    /// Who.
    pub user: String,
    /// The stream's declared type (`audio/mpeg`, `audio/ogg`, …), if given.
    pub content_type: Option<String>,
    /// The stream's name (`ice-name`), if given.
    pub name: Option<String>,
    /// Where the client connects from.
    pub peer: SocketAddr,
    /// The decoded audio, for the mixer.
    pub source: LiveSource,
}

/// Something that happened to a connection, for the station's log and events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerEvent {
    /// A connection was turned away: wrong credentials, a taken mount, a bad request.
    Refused {
        /// Where from.
        peer: SocketAddr,
        /// Why, with the mount when there was one.
        reason: String,
    },
    /// A live source's connection ended.
    Ended {
        /// Where from.
        peer: SocketAddr,
        /// The mount.
        mount: String,
        /// `None` when the client closed it; else what happened (idle, decoder failure).
        reason: Option<String>,
    },
}

/// An Icecast source endpoint listening on a TCP address.
pub struct SourceListener {
    addr: SocketAddr,
    connections: Mutex<Receiver<LiveConnection>>,
    events: Mutex<Receiver<ListenerEvent>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SourceListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceListener")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SourceListener {
    /// Listens on `addr` (port 0 picks a free one; see [`SourceListener::local_addr`]).
    /// Connections are decoded with `config`; `auth` decides who may stream.
    pub fn bind(
        addr: SocketAddr,
        config: LiveConfig,
        auth: Arc<dyn Authenticator>,
    ) -> Result<SourceListener, EngineError> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| EngineError::Pipeline(format!("cannot listen on {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        // Non-blocking accept, polled, so that the listener can be stopped.
        listener
            .set_nonblocking(true)
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (events_tx, events) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(Mutex::new(HashSet::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("live source {addr}"))
                .spawn(move || {
                    accept_loop(&listener, &stop, &tx, &events_tx, config, &auth, &busy);
                })
                .map_err(|e| EngineError::Pipeline(e.to_string()))?
        };
        Ok(SourceListener {
            addr,
            connections: Mutex::new(rx),
            events: Mutex::new(events),
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What happened to connections since the last call, oldest first.
    pub fn events(&self) -> Vec<ListenerEvent> {
        let rx = self.events.lock().unwrap_or_else(|p| p.into_inner());
        rx.try_iter().collect()
    }

    /// The next source that went live, waiting up to `timeout`.
    pub fn accept(&self, timeout: Duration) -> Option<LiveConnection> {
        let rx = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        rx.recv_timeout(timeout).ok()
    }
}

impl Drop for SourceListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    tx: &Sender<LiveConnection>,
    events: &Sender<ListenerEvent>,
    config: LiveConfig,
    auth: &Arc<dyn Authenticator>,
    busy: &Arc<Mutex<HashSet<String>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let (tx, events, auth, busy) = (
                    tx.clone(),
                    events.clone(),
                    Arc::clone(auth),
                    Arc::clone(busy),
                );
                let _ = std::thread::Builder::new()
                    .name(format!("live {peer}"))
                    .spawn(move || {
                        let event = match serve(stream, peer, config, &*auth, &busy, &tx) {
                            Outcome::Refused(reason) => ListenerEvent::Refused { peer, reason },
                            Outcome::Ended { mount, reason } => ListenerEvent::Ended {
                                peer,
                                mount,
                                reason,
                            },
                        };
                        let _ = events.send(event);
                    });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            // A failed accept (out of descriptors, a reset before accept): try again shortly.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// How a connection ended.
enum Outcome {
    Refused(String),
    Ended {
        mount: String,
        reason: Option<String>,
    },
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    mount: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn credentials(&self) -> Option<Credentials> {
        let value = self.header("authorization")?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = crate::output::icecast::base64_decode(encoded)?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some(Credentials {
            mount: self.mount.clone(),
            user: if user.is_empty() { "source" } else { user }.to_owned(),
            password: password.to_owned(),
        })
    }
}

/// Reads the request head: the request line and headers, up to the empty line.
fn read_head(reader: &mut impl BufRead) -> Result<Request, String> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .by_ref()
            .take((MAX_HEAD - total + 1) as u64)
            .read_line(&mut line)
            .map_err(|e| format!("reading the request: {e}"))?;
        total += n;
        if n == 0 {
            return Err("the connection closed before the request was complete".into());
        }
        if total > MAX_HEAD {
            return Err(format!("the request head is over {MAX_HEAD} bytes"));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut it = lines.into_iter();
    let request_line = it.next().ok_or("an empty request")?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(mount), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("not a request line: {request_line:?}"));
    };
    if !version.starts_with("HTTP/") && !version.starts_with("ICE/") {
        return Err(format!("not a request line: {request_line:?}"));
    }
    let headers = it
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    Ok(Request {
        method: method.to_ascii_uppercase(),
        mount: mount.split('?').next().unwrap_or_default().to_owned(),
        headers,
    })
}

fn respond(stream: &mut TcpStream, status: &str, extra: &str) {
    // One write: a client reading once gets the whole status line.
    let answer =
        format!("HTTP/1.0 {status}\r\nServer: grimnir-engine\r\n{extra}Content-Length: 0\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.flush();
}

/// Releases a mount when the connection ends, however it ends.
struct MountGuard<'a> {
    busy: &'a Mutex<HashSet<String>>,
    mount: String,
}

impl Drop for MountGuard<'_> {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.mount);
    }
}

fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    config: LiveConfig,
    auth: &dyn Authenticator,
    busy: &Mutex<HashSet<String>>,
    tx: &Sender<LiveConnection>,
) -> Outcome {
    let refused = |stream: &mut TcpStream, status: &str, extra: &str, reason: String| {
        respond(stream, status, extra);
        Outcome::Refused(reason)
    };
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(HEAD_TIMEOUT)))
        .and_then(|()| stream.try_clone());
    let mut reader = match setup {
        Ok(clone) => BufReader::new(clone),
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let request = match read_head(&mut reader) {
        Ok(r) => r,
        Err(e) => return refused(&mut stream, "400 Bad Request", "", e),
    };
    if request.method != "SOURCE" && request.method != "PUT" {
        let reason = format!("{} {}: not a source request", request.method, request.mount);
        return refused(
            &mut stream,
            "405 Method Not Allowed",
            "Allow: SOURCE, PUT\r\n",
            reason,
        );
    }
    if request
        .header("transfer-encoding")
        .is_some_and(|t| !t.eq_ignore_ascii_case("identity"))
    {
        let reason = format!(
            "{}: a chunked source stream is not supported; send the stream as is",
            request.mount
        );
        return refused(&mut stream, "400 Bad Request", "", reason);
    }
    let Some(credentials) = request.credentials().filter(|c| auth.allows(c)) else {
        let reason = format!("{}: wrong or missing credentials", request.mount);
        return refused(
            &mut stream,
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"grimnir\"\r\n",
            reason,
        );
    };
    let taken = !busy
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(request.mount.clone());
    if taken {
        let reason = format!("{}: already has a source", request.mount);
        return refused(&mut stream, "403 Forbidden", "", reason);
    }
    let _guard = MountGuard {
        busy,
        mount: request.mount.clone(),
    };
    let source = match LiveSource::start(config) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("{}: {e}", request.mount);
            return refused(&mut stream, "500 Internal Server Error", "", reason);
        }
    };
    let feeder = source.feeder();
    if request
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    } else {
        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
    }
    let _ = stream.flush();
    let connection = LiveConnection {
        mount: request.mount.clone(),
        user: credentials.user,
        content_type: request.header("content-type").map(str::to_owned),
        name: request.header("ice-name").map(str::to_owned),
        peer,
        source,
    };
    let mount = request.mount;
    if tx.send(connection).is_err() {
        return Outcome::Ended {
            mount,
            reason: Some("the listener is closed".into()),
        };
    }
    let result = stream
        .set_read_timeout(Some(config.idle_timeout))
        .map_err(|e| e.to_string())
        .and_then(|()| pump(&mut reader, &feeder));
    feeder.finish();
    Outcome::Ended {
        mount,
        reason: result.err(),
    }
}

/// Copies the stream into the decoder until the client closes, goes idle or the source is
/// dropped.
fn pump(reader: &mut impl Read, feeder: &Feeder) -> Result<(), String> {
    let mut chunk = vec![0u8; 8192];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => feeder
                .push(&chunk[..n])
                .map_err(|e| format!("decoder: {e}"))?,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("the source sent nothing for too long".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Request, String> {
        read_head(&mut BufReader::new(text.as_bytes()))
    }

    #[test]
    fn source_and_put_heads_are_read() {
        let r = head(
            "PUT /live?x=1 HTTP/1.1\r\nAuthorization: Basic ZGo6cHc=\r\n\
             Content-Type: audio/mpeg\r\nExpect: 100-continue\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!((r.method.as_str(), r.mount.as_str()), ("PUT", "/live"));
        assert_eq!(r.header("content-type"), Some("audio/mpeg"));
        assert_eq!(
            r.credentials(),
            Some(Credentials {
                mount: "/live".into(),
                user: "dj".into(),
                password: "pw".into()
            })
        );
        let r = head("SOURCE /live ICE/1.0\r\nAuthorization: Basic OnB3\r\n\r\n").unwrap();
        assert_eq!(
            r.credentials().unwrap().user,
            "source",
            "no user name given"
        );
    }

    #[test]
    fn broken_heads_are_refused_with_the_reason() {
        for bad in [
            "",
            "GET\r\n\r\n",
            "hello world\r\n\r\n",
            "PUT /live HTTP/1.1\r\nX: y",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
        let huge = format!("PUT /live HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(head(&huge).unwrap_err().contains("over"));
        for auth in ["Bearer abc", "Basic !!!!", "Basic ZGpwdw=="] {
            let r = head(&format!(
                "PUT /live HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n"
            ))
            .unwrap();
            assert_eq!(r.credentials(), None, "{auth}");
        }
    }
}
