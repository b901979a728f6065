//! Icecast: an Icecast 2.4 source client over a plain TCP connection.
//!
//! [`Icecast`] speaks the source protocol Icecast 2.4 introduced (an HTTP `PUT` of the mount,
//! then the encoded stream as the request body) on a [`std::net::TcpStream`]: no libshout, no
//! GStreamer element. It is a [`Destination`], so it runs on its output's own thread, where
//! blocking is allowed: every connect, read and write is bounded by
//! [`IcecastConfig::timeout`], so a server that stops reading turns into an error (and a
//! reconnect by the output worker) instead of a thread blocked forever.
//!
//! Stream titles go through Icecast's admin interface (`/admin/metadata?mode=updinfo`), which
//! Icecast inserts into the stream of every listener that asked for ICY metadata.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{Destination, NowPlaying, Packet, StreamInfo};

/// The longest response head read from Icecast; its replies are a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
/// The most of an error page or admin reply kept to explain a refusal.
const MAX_BODY: usize = 16 * 1024;
/// The most of Icecast's own words quoted in an error.
const MAX_SAID: usize = 200;

/// Where and how to connect to an Icecast server as a source.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IcecastConfig {
    /// The server's host name or address.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// The mount to stream to, such as `/live` (a missing leading `/` is added).
    pub mount: String,
    /// The source user: `source` unless the mount is configured otherwise.
    pub user: String,
    /// The source password.
    pub password: String,
    /// The station's name (`Ice-Name`), shown in directories and players.
    pub name: Option<String>,
    /// A description of the stream (`Ice-Description`).
    pub description: Option<String>,
    /// The genre (`Ice-Genre`).
    pub genre: Option<String>,
    /// The station's web site (`Ice-Url`).
    pub url: Option<String>,
    /// Whether Icecast may list the stream in public directories (`Ice-Public`).
    pub public: bool,
    /// The bound on connecting, on waiting for a reply and on each write: a server that
    /// accepts nothing for this long is treated as gone.
    pub timeout: Duration,
}

impl IcecastConfig {
    /// A source for `mount` on `host:port` with `password`, user `source`, no station
    /// details, not public, and a 10 s timeout.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        mount: impl Into<String>,
        password: impl Into<String>,
    ) -> IcecastConfig {
        IcecastConfig {
            host: host.into(),
            port,
            mount: mount.into(),
            user: "source".to_owned(),
            password: password.into(),
            name: None,
            description: None,
            genre: None,
            url: None,
            public: false,
            timeout: Duration::from_secs(10),
        }
    }

    /// The mount as it goes on the wire: always starting with `/`.
    pub fn mount_path(&self) -> String {
        if self.mount.starts_with('/') {
            self.mount.clone()
        } else {
            format!("/{}", self.mount)
        }
    }
}

// The password stays out of logs.
impl fmt::Debug for IcecastConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcecastConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("mount", &self.mount)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("genre", &self.genre)
            .field("url", &self.url)
            .field("public", &self.public)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An Icecast 2.4 source connection, as an output's [`Destination`].
///
/// Opening connects, sends `PUT /mount` with the source credentials and the stream's
/// details, waits for Icecast's answer, and writes the stream's header packets. A refusal is
/// an error that names the server, the mount and what Icecast said (a wrong password, a mount
/// that already has a source, a mount the server does not allow).
///
/// [`Destination::now_playing`] sends the title through Icecast's admin interface with the
/// same credentials: a short request of its own on the output's thread, bounded by the
/// timeout like everything else.
///
/// **Ogg streams** (`audio/ogg`: Vorbis, Opus, Ogg FLAC) carry their title in the comment
/// header inside the stream, and Icecast ignores admin updates for them, so there
/// `now_playing` does nothing and succeeds. A station's Opus streams change title by starting
/// a new Ogg chain ([`super::ogg`]), which Icecast passes on to listeners (Icecast 2.4 does not
/// read Opus comments into its status page).
///
/// **Character sets:** titles are sent as UTF-8 (`charset=UTF-8`) and `Ice-*` values as UTF-8
/// bytes. Icecast 2.4 reads `Ice-*` values as being in the mount's `<charset>` and recodes
/// titles into it, and that charset is ISO-8859-1 unless configured: there, non-ASCII station
/// names come out garbled and title characters outside Latin-1 reach listeners as `&#NNNN;`.
/// Give the mount `<charset>UTF-8</charset>` in `icecast.xml` for text in any script.
///
/// ```no_run
/// use grimnir_engine::output::{Icecast, IcecastConfig};
///
/// let mut config = IcecastConfig::new("icecast.example.org", 8000, "/live", "hackme");
/// config.name = Some("Grimnir Radio".to_owned());
/// let destination = Icecast::new(config);
/// # let _ = destination;
/// ```
#[derive(Debug)]
pub struct Icecast {
    config: IcecastConfig,
    connection: Option<TcpStream>,
    /// The open stream is Ogg: titles travel inside it.
    ogg: bool,
}

impl Icecast {
    /// A source for the server and mount in `config`; nothing connects until it is opened.
    pub fn new(config: IcecastConfig) -> Icecast {
        Icecast {
            config,
            connection: None,
            ogg: false,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &IcecastConfig {
        &self.config
    }

    /// Whether the source connection is open.
    pub fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// The server and mount, as errors name them.
    fn place(&self) -> String {
        format!(
            "Icecast {}:{} mount {}",
            self.config.host,
            self.config.port,
            self.config.mount_path()
        )
    }

    fn timeout(&self) -> Duration {
        // Zero is refused by the socket calls; it would mean "no bound", which we never want.
        self.config.timeout.max(Duration::from_millis(1))
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let place = self.place();
        let host = self.config.host.as_str();
        let addrs = (host, self.config.port)
            .to_socket_addrs()
            .map_err(|e| format!("{place}: cannot resolve {host}: {e}"))?;
        let timeout = self.timeout();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let setup = stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        // Packets are small and already paced by the encoder.
                        .and_then(|()| stream.set_nodelay(true));
                    return match setup {
                        Ok(()) => Ok(stream),
                        Err(e) => Err(format!("{place}: cannot set up the connection: {e}")),
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => format!("{place}: cannot connect: {}", io_reason(&e, timeout)),
            None => format!("{place}: {host} has no address"),
        })
    }

    fn authorization(&self) -> String {
        let credentials = format!("{}:{}", self.config.user, self.config.password);
        format!("Basic {}", base64(credentials.as_bytes()))
    }

    fn source_request(&self, stream: &StreamInfo) -> String {
        let c = &self.config;
        let mut request = format!(
            "PUT {} HTTP/1.1\r\n\
             Host: {}:{}\r\n\
             Authorization: {}\r\n\
             User-Agent: {}\r\n\
             Content-Type: {}\r\n\
             Ice-Public: {}\r\n",
            percent_encode(&c.mount_path(), b"/"),
            c.host,
            c.port,
            self.authorization(),
            user_agent(),
            header_value(stream.content_type),
            u8::from(c.public),
        );
        let fields = [
            ("Ice-Name", &c.name),
            ("Ice-Description", &c.description),
            ("Ice-Genre", &c.genre),
            ("Ice-Url", &c.url),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                request.push_str(&format!("{field}: {}\r\n", header_value(value)));
            }
        }
        let mut info = format!(
            "ice-samplerate={};ice-channels={}",
            stream.rate, stream.channels
        );
        if let Some(kbps) = stream.bitrate {
            info.push_str(&format!(";ice-bitrate={kbps}"));
            request.push_str(&format!("Ice-Bitrate: {kbps}\r\n"));
        }
        request.push_str(&format!("Ice-Audio-Info: {info}\r\n\r\n"));
        request
    }

    /// Explains a reply that is not a success.
    fn refusal(&self, what: &str, reply: &Reply) -> String {
        let said = reply.message();
        let lower = said.to_ascii_lowercase();
        let why = match reply.code {
            401 => "wrong user or password",
            403 if lower.contains("in use") => "the mount already has a source",
            403 if lower.contains("content-type") => "the server does not take this format",
            403 if lower.contains("too many") => "the server has all the sources it allows",
            403 => "forbidden",
            404 => "the server does not know this mount",
            400 if lower.contains("source does not exist") => "no source is on the mount",
            400 => "bad request",
            500..=599 => "server error",
            _ => "unexpected reply",
        };
        let mut text = format!(
            "{}: {what} refused: {why} (Icecast said: {} {}",
            self.place(),
            reply.code,
            reply.reason
        );
        if !said.is_empty() {
            text.push_str(&format!(": \"{said}\""));
        }
        text.push(')');
        text
    }
}

impl Destination for Icecast {
    fn open(&mut self, stream: &StreamInfo, headers: &[Packet]) -> Result<(), String> {
        self.close();
        let place = self.place();
        let timeout = self.timeout();
        let mut connection = self.connect()?;
        connection
            .write_all(self.source_request(stream).as_bytes())
            .map_err(|e| {
                format!(
                    "{place}: cannot send the source request: {}",
                    io_reason(&e, timeout)
                )
            })?;
        let reply = read_reply(&mut connection, false)
            .map_err(|e| format!("{place}: no answer to the source request: {e}"))?;
        if !(200..300).contains(&reply.code) {
            let _ = connection.shutdown(Shutdown::Both);
            return Err(self.refusal("source", &reply));
        }
        for header in headers {
            write_packet(&mut connection, header).map_err(|e| {
                format!(
                    "{place}: cannot write the stream headers: {}",
                    io_reason(&e, timeout)
                )
            })?;
        }
        self.ogg = is_ogg(stream.content_type);
        self.connection = Some(connection);
        Ok(())
    }

    fn write(&mut self, packet: &Packet) -> Result<(), String> {
        let timeout = self.timeout();
        let Some(connection) = self.connection.as_mut() else {
            return Err(format!("{}: not connected", self.place()));
        };
        match write_packet(connection, packet) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = connection.shutdown(Shutdown::Both);
                self.connection = None;
                Err(format!(
                    "{}: connection lost: {}",
                    self.place(),
                    io_reason(&e, timeout)
                ))
            }
        }
    }

    fn now_playing(&mut self, meta: &NowPlaying) -> Result<(), String> {
        if self.ogg {
            return Ok(());
        }
        let place = self.place();
        if self.connection.is_none() {
            return Err(format!("{place}: not connected; the title is not sent"));
        }
        let timeout = self.timeout();
        let c = &self.config;
        let request = format!(
            "GET /admin/metadata?mount={}&mode=updinfo&song={}&charset=UTF-8 HTTP/1.0\r\n\
             Host: {}:{}\r\n\
             Authorization: {}\r\n\
             User-Agent: {}\r\n\
             Connection: close\r\n\r\n",
            percent_encode(&c.mount_path(), b""),
            percent_encode(&meta.stream_title(), b""),
            c.host,
            c.port,
            self.authorization(),
            user_agent(),
        );
        let mut admin = self.connect()?;
        admin
            .write_all(request.as_bytes())
            .map_err(|e| format!("{place}: cannot send the title: {}", io_reason(&e, timeout)))?;
        let reply = read_reply(&mut admin, true)
            .map_err(|e| format!("{place}: no answer to the title update: {e}"))?;
        let _ = admin.shutdown(Shutdown::Both);
        // Icecast answers 200 with `<return>0</return>` when it refuses an update.
        let refused_in_body =
            reply.body.contains("<return>") && !reply.body.contains("<return>1</return>");
        if reply.code != 200 || refused_in_body {
            return Err(self.refusal("title update", &reply));
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

fn write_packet(connection: &mut TcpStream, packet: &Packet) -> std::io::Result<()> {
    let map = packet
        .buffer
        .map_readable()
        .map_err(|e| std::io::Error::other(format!("unreadable packet: {e}")))?;
    connection.write_all(map.as_slice())
}

fn user_agent() -> String {
    format!("grimnir-engine/{}", env!("CARGO_PKG_VERSION"))
}

fn is_ogg(content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim();
    ["audio/ogg", "application/ogg", "video/ogg"]
        .iter()
        .any(|t| base.eq_ignore_ascii_case(t))
}

/// A timeout reads as what it means here: the server stopped accepting.
fn io_reason(e: &std::io::Error, timeout: Duration) -> String {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            format!("the server did not respond within {timeout:?} ({e})")
        }
        _ => e.to_string(),
    }
}

/// An HTTP reply: its status and, when read, its body.
#[derive(Debug, Default)]
struct Reply {
    code: u16,
    reason: String,
    body: String,
}

impl Reply {
    /// What Icecast said in the body: the `<message>` of an admin reply, or the text of an
    /// error page without its markup, shortened.
    fn message(&self) -> String {
        let inner = match (self.body.find("<message>"), self.body.find("</message>")) {
            (Some(start), Some(end)) if start + 9 <= end => &self.body[start + 9..end],
            _ => self.body.as_str(),
        };
        let text = strip_markup(inner);
        let mut said: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if said.chars().count() > MAX_SAID {
            said = said.chars().take(MAX_SAID).collect::<String>() + "…";
        }
        said
    }
}

/// Reads a reply's head and, when `full` or when the status is not a success, its body.
fn read_reply(connection: &mut TcpStream, full: bool) -> Result<Reply, String> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find(&data, b"\r\n\r\n") {
            break i;
        }
        if data.len() > MAX_HEAD {
            return Err("the reply's head is too long".to_owned());
        }
        match connection.read(&mut chunk) {
            Ok(0) if data.is_empty() => return Err("the server closed the connection".to_owned()),
            // Some servers end an error reply without the blank line.
            Ok(0) => break data.len(),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let (code, reason) = parse_status_line(head.lines().next().unwrap_or(""))
        .ok_or_else(|| format!("not an HTTP reply: {:?}", head.lines().next().unwrap_or("")))?;
    let mut body = data
        .get(head_end + 4..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if full || !(200..300).contains(&code) {
        // Until the server closes; a timeout or reset only shortens the explanation.
        while body.len() < MAX_BODY {
            match connection.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    Ok(Reply {
        code,
        reason,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `HTTP/1.0 401 Authentication Required` → `(401, "Authentication Required")`.
fn parse_status_line(line: &str) -> Option<(u16, String)> {
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") && version != "ICY" {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").trim().to_owned();
    Some((code, reason))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// A header value that cannot end the header early: control characters become spaces.
fn header_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Percent-encodes the UTF-8 bytes of `text`, keeping RFC 3986's unreserved characters and
/// the bytes in `keep`.
fn percent_encode(text: &str, keep: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decodes standard base64 with padding (RFC 4648 §4), as Basic authentication sends it;
/// `None` for anything else.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, group) in text.chunks(4).enumerate() {
        let last = i == text.len() / 4 - 1;
        let pad = group.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &group[..4 - pad] {
            n = (n << 6) | u32::from(value(c)?);
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Standard base64 with padding (RFC 4648 §4), for Basic authentication.
pub(crate) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                let index = (n >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(b"source:hackme"), "c291cmNlOmhhY2ttZQ==");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
        // And back, for every length of input.
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64(&data)), Some(data));
        }
        for bad in ["a", "abc", "ab=c", "a===", "ab==cd==", "ab*d"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_encoding_keeps_unreserved_and_encodes_utf8_bytes() {
        assert_eq!(
            percent_encode("Björk - Jóga", b""),
            "Bj%C3%B6rk%20-%20J%C3%B3ga"
        );
        assert_eq!(
            percent_encode("a+b&c=d?/#%", b""),
            "a%2Bb%26c%3Dd%3F%2F%23%25"
        );
        assert_eq!(percent_encode("/live stream", b"/"), "/live%20stream");
        assert_eq!(percent_encode("AZaz09-_.~", b""), "AZaz09-_.~");
        assert_eq!(percent_encode("日本", b""), "%E6%97%A5%E6%9C%AC");
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            parse_status_line("HTTP/1.0 401 Authentication Required\r"),
            Some((401, "Authentication Required".to_owned()))
        );
        assert_eq!(
            parse_status_line("HTTP/1.1 200 OK"),
            Some((200, "OK".to_owned()))
        );
        assert_eq!(
            parse_status_line("HTTP/1.1 204"),
            Some((204, String::new()))
        );
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line("HTTP/1.1 abc OK"), None);
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn messages_lose_their_markup() {
        let page = Reply {
            code: 400,
            reason: "Bad Request".to_owned(),
            body: "<html><head><title>Error 400</title></head><body><b>400 - Source does not \
                   exist</b></body></html>\r\n"
                .to_owned(),
        };
        assert_eq!(page.message(), "Error 400 400 - Source does not exist");
        let admin = Reply {
            code: 200,
            reason: "OK".to_owned(),
            body: "<?xml version=\"1.0\"?>\n<iceresponse><message>Metadata update \
                   successful</message><return>1</return></iceresponse>\n"
                .to_owned(),
        };
        assert_eq!(admin.message(), "Metadata update successful");
        let long = Reply {
            body: "x".repeat(1000),
            ..Reply::default()
        };
        assert_eq!(long.message().chars().count(), MAX_SAID + 1);
    }

    #[test]
    fn header_values_cannot_inject_headers() {
        assert_eq!(header_value("Radio\r\nX-Evil: 1"), "Radio  X-Evil: 1");
        assert_eq!(header_value("Grimnir Rádio"), "Grimnir Rádio");
    }

    #[test]
    fn ogg_is_recognized_with_parameters() {
        assert!(is_ogg("audio/ogg"));
        assert!(is_ogg("application/ogg"));
        assert!(is_ogg("Audio/Ogg; codecs=opus"));
        assert!(!is_ogg("audio/mpeg"));
        assert!(!is_ogg("audio/aac"));
    }

    #[test]
    fn refusals_name_the_server_mount_and_reason() {
        let icecast = Icecast::new(IcecastConfig::new("example.org", 8000, "live", "pw"));
        let reply = Reply {
            code: 403,
            reason: "Forbidden".to_owned(),
            body: "Mountpoint in use".to_owned(),
        };
        assert_eq!(
            icecast.refusal("source", &reply),
            "Icecast example.org:8000 mount /live: source refused: the mount already has a \
             source (Icecast said: 403 Forbidden: \"Mountpoint in use\")"
        );
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let config = IcecastConfig::new("h", 1, "/m", "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
