//! Health checks of webstreams: one bounded HTTP GET per URL, reading only the response head
//! and the first few KiB of the body.
//!
//! [`probe`] asks every URL of a webstream at once (the primary and each fallback) and reports,
//! per URL, whether it answered, its status, content type, ICY name/bitrate/genre headers,
//! whether what it sends looks like audio (by content type, or by the first bytes: an ID3 tag,
//! an MPEG/ADTS frame sync, `OggS`, `fLaC`) and how long the head took. The stream is
//! [`HealthState::Healthy`] when the primary delivers audio, [`HealthState::Degraded`] when
//! only a fallback does, and [`HealthState::Down`] otherwise.
//!
//! Every URL gets [`ProbeSettings::timeout`] in all, from name resolution to the last body
//! byte read: a server that accepts the connection and then says nothing costs that long and
//! no longer. Redirects are followed up to [`ProbeSettings::max_redirects`] times. Shoutcast
//! v1 servers, which answer `ICY 200 OK` in place of an HTTP status line, are read as HTTP/1.0.
//!
//! # Which addresses are asked
//!
//! The server makes these requests itself, so creating webstreams and probing them is for
//! station managers and admins only (see [`crate::auth::policy`]). Addresses are checked after
//! name resolution, on every redirect, and the connection goes to the address that was
//! checked (no second lookup to rebind): link-local addresses (`169.254.0.0/16`, `fe80::/10`,
//! where cloud metadata services answer), the AWS metadata address `fd00:ec2::254`,
//! unspecified, broadcast and multicast addresses are refused. Loopback and private ranges are
//! allowed on purpose: relaying a stream from an Icecast on the same host or the studio LAN is
//! the common case.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout_at;
use tokio_rustls::rustls;
use utoipa::ToSchema;

/// How a probe behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// The most one URL may take, redirects and body included.
    pub timeout: Duration,
    /// Body bytes read at most, to sniff the format.
    pub max_body_bytes: usize,
    /// Redirects followed at most.
    pub max_redirects: u8,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeout: Duration::from_secs(5),
            max_body_bytes: 4096,
            max_redirects: 3,
        }
    }
}

/// A webstream's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Never checked.
    Unknown,
    /// The primary URL delivers audio.
    Healthy,
    /// The primary does not, a fallback does.
    Degraded,
    /// No URL delivers audio.
    Down,
}

impl HealthState {
    /// The name in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Down => "down",
        }
    }

    /// The state named `name`, if it is one.
    pub fn parse(name: &str) -> Option<HealthState> {
        [
            HealthState::Unknown,
            HealthState::Healthy,
            HealthState::Degraded,
            HealthState::Down,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// What one URL answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UrlHealth {
    /// The URL asked.
    pub url: String,
    /// Whether it answered with an HTTP response head.
    pub reachable: bool,
    /// Whether it delivers audio: a 2xx status and audio by content type or first bytes.
    pub ok: bool,
    /// The final HTTP status.
    pub status: Option<u16>,
    /// Where redirects led, when they did.
    pub final_url: Option<String>,
    /// The `Content-Type`.
    pub content_type: Option<String>,
    /// The `icy-name` header (the station's name).
    pub icy_name: Option<String>,
    /// The `icy-br` header (bitrate, kbit/s, as the server says it).
    pub icy_bitrate: Option<String>,
    /// The `icy-genre` header.
    pub icy_genre: Option<String>,
    /// Whether the content type or the first bytes are audio.
    pub looks_like_audio: bool,
    /// Milliseconds from the start until the (final) response head.
    pub latency_ms: Option<u64>,
    /// Why it is not reachable or not ok, for people.
    pub error: Option<String>,
}

impl UrlHealth {
    fn new(url: &str) -> UrlHealth {
        UrlHealth {
            url: url.to_owned(),
            reachable: false,
            ok: false,
            status: None,
            final_url: None,
            content_type: None,
            icy_name: None,
            icy_bitrate: None,
            icy_genre: None,
            looks_like_audio: false,
            latency_ms: None,
            error: None,
        }
    }
}

/// A webstream's health check: the state and what each URL answered, primary first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthReport {
    /// The state that follows.
    pub state: HealthState,
    /// When the check started.
    pub checked_at: DateTime<Utc>,
    /// The primary URL, then each fallback.
    pub urls: Vec<UrlHealth>,
}

/// Why an address is not asked, if it is not.
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            if a.is_link_local() {
                Some("a link-local address (169.254.0.0/16, where cloud metadata services answer)")
            } else if a.is_unspecified() {
                Some("the unspecified address")
            } else if a.is_broadcast() || a.is_multicast() {
                Some("a broadcast or multicast address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return refused_address(IpAddr::V4(v4));
            }
            if a.segments()[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address (fe80::/10)")
            } else if a == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("the cloud metadata address fd00:ec2::254")
            } else if a.is_unspecified() {
                Some("the unspecified address")
            } else if a.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

/// Probes the primary `urls[0]` and every fallback after it at once, each sent `headers`, and
/// reports their health. Bounded by `settings.timeout` (plus scheduling).
pub async fn probe(
    urls: &[String],
    headers: &[(String, String)],
    settings: ProbeSettings,
) -> HealthReport {
    let checked_at = Utc::now();
    let checks = urls.iter().map(|url| probe_url(url, headers, settings));
    let results = futures_util::future::join_all(checks).await;
    let state = match results.iter().position(|r| r.ok) {
        Some(0) => HealthState::Healthy,
        Some(_) => HealthState::Degraded,
        None => HealthState::Down,
    };
    HealthReport {
        state,
        checked_at,
        urls: results,
    }
}

/// One URL, with redirects, within `settings.timeout`.
pub async fn probe_url(
    url: &str,
    headers: &[(String, String)],
    settings: ProbeSettings,
) -> UrlHealth {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + settings.timeout);
    let mut report = UrlHealth::new(url);
    let mut current = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            report.error = Some(format!("not a URL: {e}"));
            return report;
        }
    };
    for hop in 0..=settings.max_redirects {
        let asked = timeout_at(deadline, request_head(&current, headers)).await;
        let (response, conn) = match asked {
            Err(_) => {
                report.error = Some(format!(
                    "no response head within {} ms",
                    settings.timeout.as_millis()
                ));
                return report;
            }
            Ok(Err(e)) => {
                report.error = Some(e);
                return report;
            }
            Ok(Ok(answer)) => answer,
        };
        report.reachable = true;
        report.latency_ms = Some(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
        let status = response.status();
        report.status = Some(status.as_u16());
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        if status.is_redirection()
            && let Some(location) = location
        {
            conn.abort();
            if hop == settings.max_redirects {
                report.error = Some(format!("more than {} redirects", settings.max_redirects));
                return report;
            }
            match current.join(&location) {
                Ok(next) if matches!(next.scheme(), "http" | "https") => {
                    report.final_url = Some(next.to_string());
                    current = next;
                    continue;
                }
                _ => {
                    report.error = Some(format!("redirected to {location:?}, not an http(s) URL"));
                    return report;
                }
            }
        }
        let text = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        };
        report.content_type = text("content-type");
        report.icy_name = text("icy-name");
        report.icy_bitrate = text("icy-br");
        report.icy_genre = text("icy-genre");
        let mut body = response.into_body();
        let mut first = Vec::new();
        while first.len() < settings.max_body_bytes {
            match timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        first.extend_from_slice(data);
                    }
                }
                // The end, a broken body, or no more time: judge by what came.
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        conn.abort();
        report.looks_like_audio =
            audio_content_type(report.content_type.as_deref()) || audio_bytes(&first);
        report.ok = status.is_success() && report.looks_like_audio;
        if !report.ok {
            report.error = Some(if status.is_success() {
                format!(
                    "status {} but neither the content type ({}) nor the first bytes are audio",
                    status.as_u16(),
                    report.content_type.as_deref().unwrap_or("none")
                )
            } else {
                format!("status {}", status.as_u16())
            });
        }
        return report;
    }
    report
}

type Answer = (
    hyper::Response<hyper::body::Incoming>,
    tokio::task::JoinHandle<()>,
);

/// Connects to `url`'s host (checked address, TLS for https) and sends the GET; returns the
/// response head and the connection task, which the caller aborts when done.
async fn request_head(url: &url::Url, headers: &[(String, String)]) -> Result<Answer, String> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| "no port".to_owned())?;
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| format!("cannot resolve {name}: {e}"))?
            .collect(),
        Some(url::Host::Ipv4(a)) => vec![SocketAddr::new(a.into(), port)],
        Some(url::Host::Ipv6(a)) => vec![SocketAddr::new(a.into(), port)],
        None => return Err("no host".to_owned()),
    };
    let mut refused = None;
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        if let Some(why) = refused_address(addr.ip()) {
            refused = Some(format!("refused: {} is {why}", addr.ip()));
            continue;
        }
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(format!("cannot connect to {addr}: {e}")),
        }
    }
    let Some(tcp) = stream else {
        return Err(last_error
            .or(refused)
            .unwrap_or_else(|| "the name resolves to no address".to_owned()));
    };
    let host = url.host_str().unwrap_or_default();
    if url.scheme() == "https" {
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        send(IcyAsHttp::new(tls), url, headers).await
    } else {
        send(IcyAsHttp::new(tcp), url, headers).await
    }
}

/// Shoutcast v1 servers begin their answer with `ICY 200 OK` where HTTP has `HTTP/1.0 200 OK`,
/// which hyper refuses as a status line. This stream hands its reader `HTTP/1.0 ` in place of a
/// leading `ICY `; every other byte, and everything written, passes through unchanged.
struct IcyAsHttp<S> {
    io: S,
    start: Start,
}

/// How far [`IcyAsHttp`] is through the start of the answer.
enum Start {
    /// Reading the first four bytes, which decide.
    Sniffing(Vec<u8>),
    /// Handing out the (possibly rewritten) first bytes, from the index.
    Draining(Vec<u8>, usize),
    /// Everything else: the stream itself.
    Passed,
}

impl<S> IcyAsHttp<S> {
    fn new(io: S) -> Self {
        IcyAsHttp {
            io,
            start: Start::Sniffing(Vec::with_capacity(4)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IcyAsHttp<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        const ICY: &[u8] = b"ICY ";
        let this = self.get_mut();
        loop {
            match &mut this.start {
                Start::Sniffing(seen) => {
                    let mut more = [0u8; 4];
                    let mut read = ReadBuf::new(&mut more[..ICY.len() - seen.len()]);
                    ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
                    let ended = read.filled().is_empty();
                    seen.extend_from_slice(read.filled());
                    if ended || seen.len() == ICY.len() || !ICY.starts_with(seen) {
                        let first = if seen.as_slice() == ICY {
                            b"HTTP/1.0 ".to_vec()
                        } else {
                            std::mem::take(seen)
                        };
                        this.start = Start::Draining(first, 0);
                    }
                }
                Start::Draining(first, at) => {
                    let n = (first.len() - *at).min(buf.remaining());
                    buf.put_slice(&first[*at..*at + n]);
                    *at += n;
                    if *at == first.len() {
                        this.start = Start::Passed;
                    }
                    if n > 0 || buf.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                }
                Start::Passed => return Pin::new(&mut this.io).poll_read(cx, buf),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IcyAsHttp<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

async fn send<S>(io: S, url: &url::Url, headers: &[(String, String)]) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let mut request = hyper::Request::get(target)
        .header(header::HOST, authority)
        .header(
            header::USER_AGENT,
            concat!(
                "grimnir/",
                env!("CARGO_PKG_VERSION"),
                " (webstream health check)"
            ),
        )
        .header(header::ACCEPT, "*/*")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    for (name, value) in headers {
        // Stored headers were checked when they were given.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            request.headers_mut().insert(name, value);
        }
    }
    match sender.send_request(request).await {
        Ok(response) => Ok((response, task)),
        Err(e) => {
            task.abort();
            Err(format!("HTTP: {e}"))
        }
    }
}

/// The client TLS settings: webpki's roots, the ring provider, HTTP/1.1.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// Content types of audio streams and HLS playlists.
fn audio_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("audio/")
        && !matches!(
            mime.as_str(),
            "audio/x-scpls" | "audio/x-mpegurl" | "audio/mpegurl"
        )
        || matches!(
            mime.as_str(),
            "application/ogg"
                | "video/mp2t"
                | "application/vnd.apple.mpegurl"
                | "application/x-mpegurl"
        )
}

/// Whether `first` starts like an audio stream: an ID3 tag, an MPEG audio or ADTS frame sync,
/// an Ogg page or a FLAC stream.
fn audio_bytes(first: &[u8]) -> bool {
    first.starts_with(b"ID3")
        || first.starts_with(b"OggS")
        || first.starts_with(b"fLaC")
        || (first.len() >= 2 && first[0] == 0xff && first[1] & 0xe0 == 0xe0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a reader of `IcyAsHttp` gets when the server sends `pieces`, one write each, and
    /// the reader asks for at most `chunk` bytes at a time.
    async fn read_through(pieces: &[&[u8]], chunk: usize) -> Vec<u8> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut server, client) = tokio::io::duplex(64);
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for piece in pieces {
                server.write_all(&piece).await.unwrap();
                // Let the reader see each piece on its own.
                tokio::task::yield_now().await;
            }
        });
        let mut reader = IcyAsHttp::new(client);
        let mut got = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        got
    }

    #[tokio::test]
    async fn an_icy_status_line_reads_as_http_1_0_and_nothing_else_changes() {
        let head: &[u8] = b"ICY 200 OK\r\nicy-name: Old FM\r\n\r\n\xff\xfbICY ";
        let http: &[u8] = b"HTTP/1.0 200 OK\r\nicy-name: Old FM\r\n\r\n\xff\xfbICY ";
        for chunk in [1, 3, 4, 1024] {
            assert_eq!(read_through(&[head], chunk).await, http, "chunk {chunk}");
            // The first four bytes split across writes.
            let split: [&[u8]; 3] = [&head[..1], &head[1..3], &head[3..]];
            assert_eq!(
                read_through(&split, chunk).await,
                http,
                "split, chunk {chunk}"
            );
            // HTTP answers, and answers that only start like ICY, pass unchanged.
            for same in [
                &b"HTTP/1.1 200 OK\r\n\r\n"[..],
                b"ICX 200",
                b"IC",
                b"I",
                b"",
            ] {
                assert_eq!(read_through(&[same], chunk).await, same, "chunk {chunk}");
            }
        }
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused() {
        for refused in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "0.0.0.0",
            "::ffff:169.254.1.1",
            "224.0.0.1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(refused_address(ip).is_some(), "{refused}");
        }
        for allowed in [
            "127.0.0.1",
            "::1",
            "10.0.0.5",
            "192.168.1.2",
            "93.184.216.34",
        ] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert_eq!(refused_address(ip), None, "{allowed}");
        }
    }

    #[test]
    fn audio_is_recognised_by_type_or_bytes() {
        assert!(audio_content_type(Some("audio/mpeg")));
        assert!(audio_content_type(Some("application/ogg; charset=x")));
        assert!(!audio_content_type(Some("audio/x-scpls")));
        assert!(!audio_content_type(Some("text/html")));
        assert!(audio_bytes(&[0xff, 0xfb, 0x90, 0x00]));
        assert!(audio_bytes(b"ID3\x04"));
        assert!(!audio_bytes(b"<html>"));
    }
}
