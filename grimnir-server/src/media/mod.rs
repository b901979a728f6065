//! The media library's files: where they are kept, what they are, and how they sound.
//!
//! - [`MediaLibrary`]: the media directory (`media.dir`), the upload limit
//!   (`media.max_upload_bytes`) and the bell that wakes the analyser. Files are kept as
//!   `stations/<station_id>/media/<media_id>.<ext>` below the directory ([`storage_key`]), the
//!   layout SPEC.md gives for object storage. An upload is written to a `.part` file next to
//!   where it will live and renamed into place only once it has been checked and probed, so a
//!   file under its final name is always whole; [`MediaLibrary::remove_stale_parts`] removes
//!   `.part` files that a stopped server left behind.
//! - [`sniff`]: the container from the first bytes of a file: MP3 (with or without an ID3v2
//!   tag), FLAC, Ogg, WAV (RIFF/WAVE) or MP4/M4A (`ftyp`); anything else is named
//!   ([`Unrecognized`]).
//! - [`probe`]: opens a file with symphonia and decodes its beginning: sample rate, channels,
//!   length and tags, or why it cannot be played ([`ProbeError`]).
//! - [`analysis`]: the whole file decoded and measured (EBU R128 integrated loudness and true
//!   peak with grimnir-dsp's [`Meter`](grimnir_dsp::Meter), cue points by a silence
//!   threshold), and the worker that does it for queued jobs.

pub mod analysis;
mod decode;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

pub use decode::{PROBE_SECONDS, ProbeError, Probed, TrackTags, probe};

use crate::config::MediaConfig;
use crate::db::media::MediaId;
use crate::db::stations::StationId;

/// The suffix of a file still being uploaded.
pub const PART_SUFFIX: &str = ".part";

/// How old a `.part` file must be (since its last write) before it counts as left behind: an
/// upload in progress on another server sharing the directory writes to its file all along.
pub const STALE_PART_AGE: Duration = Duration::from_secs(15 * 60);

/// The media directory, the upload limit and the analyser's bell. Cloning shares them.
#[derive(Debug, Clone)]
pub struct MediaLibrary {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_upload_bytes: u64,
    analysis_wanted: Notify,
}

impl MediaLibrary {
    /// A library in `config.dir` taking uploads up to `config.max_upload_bytes`. Nothing is
    /// created until a file is stored.
    pub fn new(config: &MediaConfig) -> Self {
        MediaLibrary {
            inner: Arc::new(Inner {
                dir: config.dir.clone(),
                max_upload_bytes: config.max_upload_bytes,
                analysis_wanted: Notify::new(),
            }),
        }
    }

    /// The media directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The largest file an upload may carry, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.inner.max_upload_bytes
    }

    /// The path of a stored file. A key that would leave the media directory (an absolute path,
    /// `..`) is refused: keys come from the database, which another program may have written.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let relative = Path::new(key);
        if key.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return None;
        }
        Some(self.inner.dir.join(relative))
    }

    /// Tells the analyser that a job is waiting (a new upload).
    pub fn wake_analysis(&self) {
        self.inner.analysis_wanted.notify_one();
    }

    /// Completes when [`wake_analysis`](Self::wake_analysis) is called (or was, since the last
    /// wait).
    pub async fn analysis_wanted(&self) {
        self.inner.analysis_wanted.notified().await;
    }

    /// Removes the `.part` files under `stations/*/media/` not written to for `older_than`:
    /// uploads a stopped server never finished. Returns how many were removed; a file that
    /// cannot be removed is logged and skipped.
    pub fn remove_stale_parts(&self, older_than: Duration) -> std::io::Result<usize> {
        let stations = self.inner.dir.join("stations");
        let entries = match std::fs::read_dir(&stations) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for station in entries.flatten() {
            let Ok(files) = std::fs::read_dir(station.path().join("media")) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                if !path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(PART_SUFFIX))
                {
                    continue;
                }
                let age = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                if age < older_than {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!(path = %path.display(), error = %e,
                        "cannot remove an unfinished upload"),
                }
            }
        }
        Ok(removed)
    }
}

/// Where the file of item `media` of `station` is kept, relative to the media directory.
pub fn storage_key(station: StationId, media: MediaId, container: Container) -> String {
    format!("stations/{station}/media/{media}.{}", container.extension())
}

/// The audio containers the library takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// MPEG audio layer III, with or without an ID3v2 tag in front.
    Mp3,
    /// FLAC.
    Flac,
    /// Ogg (Vorbis).
    Ogg,
    /// WAV (RIFF/WAVE).
    Wav,
    /// MP4/M4A (ISO base media file format), AAC inside.
    Mp4,
}

impl Container {
    /// The file extension stored files get.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp3 => "mp3",
            Container::Flac => "flac",
            Container::Ogg => "ogg",
            Container::Wav => "wav",
            Container::Mp4 => "m4a",
        }
    }

    /// The MIME type files are served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Container::Mp3 => "audio/mpeg",
            Container::Flac => "audio/flac",
            Container::Ogg => "audio/ogg",
            Container::Wav => "audio/wav",
            Container::Mp4 => "audio/mp4",
        }
    }

    /// The name for people.
    pub fn name(self) -> &'static str {
        match self {
            Container::Mp3 => "MP3",
            Container::Flac => "FLAC",
            Container::Ogg => "Ogg",
            Container::Wav => "WAV",
            Container::Mp4 => "MP4/M4A",
        }
    }

    /// The container of a stored file, by its extension.
    pub fn from_extension(ext: &str) -> Option<Container> {
        [
            Container::Mp3,
            Container::Flac,
            Container::Ogg,
            Container::Wav,
            Container::Mp4,
        ]
        .into_iter()
        .find(|c| c.extension() == ext)
    }
}

/// How many bytes [`sniff`] wants to see (fewer will do for a shorter file).
pub const SNIFF_BYTES: usize = 12;

/// A file that is none of the [`Container`]s, with what it looks like instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found}; expected MP3, FLAC, Ogg, WAV or MP4/M4A audio")]
pub struct Unrecognized {
    /// What the first bytes say, for people (`a PNG image`, `bytes 00 01 02 03`).
    pub found: String,
}

/// The container of a file, from its first [`SNIFF_BYTES`] bytes.
pub fn sniff(head: &[u8]) -> Result<Container, Unrecognized> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    let found = |what: &str| {
        Err(Unrecognized {
            found: what.to_owned(),
        })
    };
    if head.is_empty() {
        return found("an empty file");
    }
    if starts(b"ID3") {
        return Ok(Container::Mp3);
    }
    if starts(b"fLaC") {
        return Ok(Container::Flac);
    }
    if starts(b"OggS") {
        return Ok(Container::Ogg);
    }
    if starts(b"RIFF") && head.len() >= 12 {
        return match &head[8..12] {
            b"WAVE" => Ok(Container::Wav),
            b"AVI " => found("an AVI video (RIFF/AVI)"),
            b"WEBP" => found("a WebP image (RIFF/WEBP)"),
            other => found(&format!(
                "a RIFF file of type {:?}",
                String::from_utf8_lossy(other)
            )),
        };
    }
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return Ok(Container::Mp4);
    }
    if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 {
        // An MPEG audio frame header: layer bits 00 are reserved in MPEG audio and mean AAC in
        // an ADTS header, which has no container to keep its timing in.
        return match (head[1] >> 1) & 0b11 {
            0b01 => Ok(Container::Mp3),
            0b00 => found("raw AAC (ADTS) without a container; put it in an M4A file"),
            _ => found("MPEG audio layer I or II (MP1/MP2)"),
        };
    }
    let known: [(&[u8], &str); 10] = [
        (b"%PDF", "a PDF document"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"\x1A\x45\xDF\xA3", "a Matroska/WebM file"),
        (b"FORM", "an IFF file (AIFF)"),
        (b"MThd", "a MIDI file"),
        (b"\x7FELF", "an ELF executable"),
        (b"caff", "a Core Audio file (CAF)"),
    ];
    if let Some((_, what)) = known.iter().find(|(magic, _)| starts(magic)) {
        return found(what);
    }
    if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return found("text");
    }
    let bytes: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    found(&format!(
        "unknown content starting with bytes {}",
        bytes.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn containers_are_told_by_their_first_bytes() {
        let cases: [(&[u8], Container); 7] = [
            (b"ID3\x04\x00\x00\x00\x00\x00\x00", Container::Mp3),
            (b"\xFF\xFB\x90\x64\x00\x00", Container::Mp3),
            (b"\xFF\xF3\x90\x64", Container::Mp3),
            (b"fLaC\x00\x00\x00\x22", Container::Flac),
            (b"OggS\x00\x02", Container::Ogg),
            (b"RIFF\x24\x00\x00\x00WAVEfmt ", Container::Wav),
            (b"\x00\x00\x00\x20ftypM4A ", Container::Mp4),
        ];
        for (head, expected) in cases {
            assert_eq!(sniff(head), Ok(expected), "{head:?}");
        }
    }

    #[test]
    fn other_files_are_named() {
        let cases: [(&[u8], &str); 7] = [
            (b"\x89PNG\r\n\x1a\n", "a PNG image"),
            (b"RIFF\x00\x00\x00\x00AVI LIST", "an AVI video (RIFF/AVI)"),
            (b"\xFF\xF1\x50\x80", "raw AAC (ADTS)"),
            (b"hello, world", "text"),
            (b"", "an empty file"),
            (
                b"\x00\x01\x02\x03\x04",
                "unknown content starting with bytes 00 01 02 03 04",
            ),
            (b"%PDF-1.7", "a PDF document"),
        ];
        for (head, found) in cases {
            let err = sniff(head).unwrap_err();
            assert!(err.found.starts_with(found), "{head:?}: {}", err.found);
            assert!(err.to_string().contains("expected MP3, FLAC"), "{err}");
        }
    }

    #[test]
    fn keys_stay_inside_the_directory() {
        let library = MediaLibrary::new(&MediaConfig {
            dir: PathBuf::from("/srv/media"),
            max_upload_bytes: 1024,
        });
        assert_eq!(
            library.path_of("stations/a/media/b.mp3"),
            Some(PathBuf::from("/srv/media/stations/a/media/b.mp3"))
        );
        assert_eq!(library.path_of("../etc/passwd"), None);
        assert_eq!(library.path_of("/etc/passwd"), None);
        assert_eq!(library.path_of("stations/../../x"), None);
        assert_eq!(library.path_of(""), None);
    }

    #[test]
    fn stale_parts_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let library = MediaLibrary::new(&MediaConfig {
            dir: dir.path().to_path_buf(),
            max_upload_bytes: 1024,
        });
        assert_eq!(library.remove_stale_parts(STALE_PART_AGE).unwrap(), 0);
        let media = dir.path().join("stations/s1/media");
        std::fs::create_dir_all(&media).unwrap();
        let stale = media.join("a.mp3.part");
        let fresh = media.join("b.mp3.part");
        let whole = media.join("c.mp3");
        for p in [&stale, &fresh, &whole] {
            std::fs::write(p, b"x").unwrap();
        }
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::File::options()
            .write(true)
            .open(&whole)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(library.remove_stale_parts(STALE_PART_AGE).unwrap(), 1);
        assert!(!stale.exists());
        assert!(fresh.exists() && whole.exists());
    }
}
