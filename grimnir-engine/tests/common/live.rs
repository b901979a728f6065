//! Live sources for the tests: credentials as the server issues them, and ffmpeg as a DJ.
#![allow(dead_code)] // each test file uses part of it

use std::process::{Child, Command, Stdio};

use grimnir_engine::process::config::{LIVE_AUDIENCE, LIVE_ISSUER, LIVE_PURPOSE};

pub(crate) const LIVE_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
pub(crate) const LIVE_STATION: &str = "6d1f3c2e-live-test";

/// A live credential as the server's `live/authorize` issues it.
pub(crate) fn live_credential(station: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": LIVE_ISSUER, "aud": LIVE_AUDIENCE, "sub": "dj-7", "station": station,
        "mount": "m", "purpose": LIVE_PURPOSE, "iat": now, "exp": now + 300, "jti": "j",
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(LIVE_KEY),
    )
    .unwrap()
}

/// ffmpeg streaming `seconds` of a sine as MP3 to the endpoint's `/live`, in real time.
pub(crate) fn dj(port: u16, password: &str, freq: u32, seconds: u32) -> Child {
    let codec = [
        "-c:a",
        "libmp3lame",
        "-b:a",
        "128k",
        "-content_type",
        "audio/mpeg",
    ];
    let codec = [&codec[..], &["-ice_name", "Night shift", "-f", "mp3"]].concat();
    sender(
        freq,
        seconds,
        &codec,
        &format!("icecast://source:{password}@127.0.0.1:{port}/live"),
    )
}

/// ffmpeg sending `seconds` of a 48 kHz stereo sine in real time, encoded with `codec` (its
/// codec and format arguments), to `url`.
pub(crate) fn sender(freq: u32, seconds: u32, codec: &[&str], url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={freq}:sample_rate=48000:duration={seconds}"
        ))
        .args(["-ac", "2"])
        .args(codec)
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is needed")
}
