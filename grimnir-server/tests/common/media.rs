//! Audio and upload bodies for the media tests, made here: no media files are committed.

/// A 16-bit PCM WAV: `silent` seconds of silence, then `tone` seconds of a 1 kHz sine whose
/// peak is at `dbfs`, at `rate` Hz in `channels` channels.
pub fn wav(rate: u32, channels: u16, silent: f64, tone: f64, dbfs: f64) -> Vec<u8> {
    let silent_frames = (silent * f64::from(rate)).round() as usize;
    let tone_frames = (tone * f64::from(rate)).round() as usize;
    let amp = 10f64.powf(dbfs / 20.0) * f64::from(i16::MAX);
    let mut data = Vec::with_capacity((silent_frames + tone_frames) * usize::from(channels) * 2);
    for i in 0..silent_frames + tone_frames {
        let x = if i < silent_frames {
            0.0
        } else {
            let t = (i - silent_frames) as f64 / f64::from(rate);
            amp * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()
        };
        for _ in 0..channels {
            data.extend_from_slice(&(x.round() as i16).to_le_bytes());
        }
    }
    let block = u32::from(channels) * 2;
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * block).to_le_bytes());
    out.extend_from_slice(&(block as u16).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// One part of a multipart form.
pub struct Part<'a> {
    pub name: &'a str,
    /// For a file part, its file name.
    pub filename: Option<&'a str>,
    pub data: &'a [u8],
}

impl<'a> Part<'a> {
    pub fn file(filename: &'a str, data: &'a [u8]) -> Self {
        Part {
            name: "file",
            filename: Some(filename),
            data,
        }
    }

    pub fn text(name: &'a str, value: &'a str) -> Self {
        Part {
            name,
            filename: None,
            data: value.as_bytes(),
        }
    }
}

/// The boundary of [`multipart`] bodies.
pub const BOUNDARY: &str = "grimnir-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body of `parts`, and its content type.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part.filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    part.name
                )
                .as_bytes(),
            ),
        }
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}
