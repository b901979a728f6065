//! The edit list of an MP4/M4A audio file, for gapless playback.
//!
//! An AAC encoder puts priming before the audio (ffmpeg: 1024 samples, Apple: 2112) and pads
//! the last frame. An MP4 file says where the real audio lies with an edit list (`elst`): from
//! `media_time` in the track's own time scale, for `duration` in the movie's. GStreamer 1.22's
//! qtdemux applies the start of that edit but ends the track early: it compares its movie
//! duration (`mvhd`, presentation time) with sample times that run `media_time` later, so the
//! last AAC frame (up to `media_time` of audio) is never pushed.
//!
//! [`read`] finds the edit and where the movie duration is stored. The decoder then shows
//! qtdemux a movie duration lengthened by `media_time` (see [`Edit::patch`]), so every frame is
//! pushed, and itself cuts the decoded stream to the edit's duration.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The largest `moov` box read; a music file's is a few kilobytes.
const MAX_MOOV: u64 = 16 * 1024 * 1024;

/// The one edit of an audio track, and the movie header's duration field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// Where the audio starts in the track, in the track's time scale.
    pub(crate) media_time: u64,
    /// The track's time scale (`mdhd`), units per second.
    pub(crate) media_timescale: u32,
    /// How long the audio lasts, in the movie's time scale.
    pub(crate) duration: u64,
    /// The movie's time scale (`mvhd`), units per second.
    pub(crate) movie_timescale: u32,
    /// Where in the file the `mvhd` duration field lies.
    pub(crate) mvhd_duration_at: u64,
    /// Its width in bytes: 4 (version 0) or 8 (version 1).
    pub(crate) mvhd_duration_width: u8,
    /// Its value.
    pub(crate) mvhd_duration: u64,
}

impl Edit {
    /// The audio's length in seconds.
    pub(crate) fn seconds(&self) -> f64 {
        self.duration as f64 / f64::from(self.movie_timescale)
    }

    /// The movie duration to show qtdemux: the stored one lengthened by `media_time`, in the
    /// movie's time scale, rounded up; saturating at the field's width.
    pub(crate) fn lengthened(&self) -> u64 {
        let extra = (u128::from(self.media_time) * u128::from(self.movie_timescale))
            .div_ceil(u128::from(self.media_timescale.max(1)));
        let max = if self.mvhd_duration_width == 4 {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        let value = u128::from(self.mvhd_duration) + extra;
        u64::try_from(value).map_or(max, |v| v.min(max))
    }

    /// Writes the lengthened movie duration into `bytes`, a piece of the file that starts at
    /// file offset `offset`, wherever it overlaps the duration field (a field split across two
    /// pieces is written one part in each).
    pub(crate) fn patch(&self, offset: u64, bytes: &mut [u8]) {
        let width = usize::from(self.mvhd_duration_width);
        let value = self.lengthened().to_be_bytes();
        let field = &value[8 - width..];
        for (i, byte) in field.iter().enumerate() {
            let Some(at) = (self.mvhd_duration_at + i as u64).checked_sub(offset) else {
                continue;
            };
            if let Some(slot) = usize::try_from(at).ok().and_then(|at| bytes.get_mut(at)) {
                *slot = *byte;
            }
        }
    }
}

/// Reads the edit of the first audio track of the MP4 file at `path`. `None` when the file is
/// not MP4, cannot be read, has no audio track, or its audio track has no single edit that
/// starts past zero (then there is nothing to correct).
pub(crate) fn read(path: &Path) -> Option<Edit> {
    let mut file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let mut at = 0u64;
    while at + 8 <= size {
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8]).ok()?;
        let mut length = u64::from(u32::from_be_bytes(header[..4].try_into().ok()?));
        let mut header_len = 8;
        if length == 1 {
            file.read_exact(&mut header[8..]).ok()?;
            length = u64::from_be_bytes(header[8..16].try_into().ok()?);
            header_len = 16;
        } else if length == 0 {
            length = size - at;
        }
        if length < header_len || at + length > size {
            return None;
        }
        if &header[4..8] == b"moov" {
            if length > MAX_MOOV {
                return None;
            }
            let mut moov = vec![0u8; (length - header_len) as usize];
            file.read_exact(&mut moov).ok()?;
            return parse_moov(&moov, at + header_len);
        }
        at += length;
    }
    None
}

/// The boxes directly inside `data`, as (type, body, body's offset in the file).
fn boxes(data: &[u8], offset: u64) -> impl Iterator<Item = ([u8; 4], &[u8], u64)> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = data.get(at..at + 8)?;
        let kind: [u8; 4] = header[4..8].try_into().ok()?;
        let (length, header_len) = match u32::from_be_bytes(header[..4].try_into().ok()?) {
            0 => (data.len() - at, 8),
            1 => {
                let large = data.get(at + 8..at + 16)?;
                (
                    usize::try_from(u64::from_be_bytes(large.try_into().ok()?)).ok()?,
                    16,
                )
            }
            n => (usize::try_from(n).ok()?, 8),
        };
        if length < header_len {
            return None;
        }
        let body = data.get(at + header_len..at.checked_add(length)?)?;
        let body_offset = offset + (at + header_len) as u64;
        at += length;
        Some((kind, body, body_offset))
    })
}

/// The first box of `kind` directly inside `data`.
fn child<'a>(data: &'a [u8], offset: u64, kind: &[u8; 4]) -> Option<(&'a [u8], u64)> {
    boxes(data, offset)
        .find(|(k, _, _)| k == kind)
        .map(|(_, body, at)| (body, at))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

fn parse_moov(moov: &[u8], offset: u64) -> Option<Edit> {
    let (mvhd, mvhd_at) = child(moov, offset, b"mvhd")?;
    // A full box: version, flags; then creation and modification times, time scale, duration.
    let (movie_timescale, duration_at, width) = match *mvhd.first()? {
        0 => (be_u32(mvhd, 12)?, 16, 4u8),
        1 => (be_u32(mvhd, 20)?, 24, 8u8),
        _ => return None,
    };
    let mvhd_duration = if width == 4 {
        u64::from(be_u32(mvhd, duration_at)?)
    } else {
        be_u64(mvhd, duration_at)?
    };
    let audio = boxes(moov, offset)
        .filter(|(kind, _, _)| kind == b"trak")
        .find(|(_, trak, at)| is_audio(trak, *at))?;
    let (trak, trak_at) = (audio.1, audio.2);
    let (mdia, mdia_at) = child(trak, trak_at, b"mdia")?;
    let (mdhd, _) = child(mdia, mdia_at, b"mdhd")?;
    let media_timescale = match *mdhd.first()? {
        0 => be_u32(mdhd, 12)?,
        1 => be_u32(mdhd, 20)?,
        _ => return None,
    };
    let (edts, edts_at) = child(trak, trak_at, b"edts")?;
    let (elst, _) = child(edts, edts_at, b"elst")?;
    let version = *elst.first()?;
    let entries = be_u32(elst, 4)?;
    if entries != 1 {
        // An empty edit (a delay) or several pieces: not the encoder-priming case.
        return None;
    }
    let (duration, media_time) = match version {
        0 => (
            u64::from(be_u32(elst, 8)?),
            i64::from(be_u32(elst, 12)? as i32),
        ),
        1 => (be_u64(elst, 8)?, be_u64(elst, 16)? as i64),
        _ => return None,
    };
    let media_time = u64::try_from(media_time).ok().filter(|&t| t > 0)?;
    if movie_timescale == 0 || media_timescale == 0 || duration == 0 {
        return None;
    }
    Some(Edit {
        media_time,
        media_timescale,
        duration,
        movie_timescale,
        mvhd_duration_at: mvhd_at + duration_at as u64,
        mvhd_duration_width: width,
        mvhd_duration,
    })
}

/// Whether a `trak` holds sound: its `mdia/hdlr` handler type is `soun`.
fn is_audio(trak: &[u8], offset: u64) -> bool {
    child(trak, offset, b"mdia")
        .and_then(|(mdia, at)| child(mdia, at, b"hdlr"))
        .and_then(|(hdlr, _)| hdlr.get(8..12))
        == Some(b"soun".as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of `kind` around `body`.
    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn full(version: u8, rest: &[u8]) -> Vec<u8> {
        let mut out = vec![version, 0, 0, 0];
        out.extend_from_slice(rest);
        out
    }

    /// What ffmpeg writes for 4 s of AAC at 48 kHz: movie scale 1000, 1024 frames of priming.
    fn file(handler: &[u8; 4], entries: &[(u32, i32)]) -> Vec<u8> {
        let mvhd = full(
            0,
            &[0u32, 0, 1000, 4000]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<_>>(),
        );
        let mdhd = full(
            0,
            &[0u32, 0, 48_000, 193_024]
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<_>>(),
        );
        let mut hdlr_body = vec![0u8; 4];
        hdlr_body.extend_from_slice(handler);
        hdlr_body.extend_from_slice(&[0u8; 13]);
        let mut elst_body = (entries.len() as u32).to_be_bytes().to_vec();
        for (duration, media_time) in entries {
            elst_body.extend_from_slice(&duration.to_be_bytes());
            elst_body.extend_from_slice(&media_time.to_be_bytes());
            elst_body.extend_from_slice(&[0, 1, 0, 0]);
        }
        let mdia = [
            mp4_box(b"mdhd", &mdhd),
            mp4_box(b"hdlr", &full(0, &hdlr_body)),
        ]
        .concat();
        let trak = [
            mp4_box(b"tkhd", &full(0, &[0u8; 80])),
            mp4_box(b"edts", &mp4_box(b"elst", &full(0, &elst_body))),
            mp4_box(b"mdia", &mdia),
        ]
        .concat();
        let moov = [mp4_box(b"mvhd", &mvhd), mp4_box(b"trak", &trak)].concat();
        [
            mp4_box(b"ftyp", b"M4A \0\0\0\0"),
            mp4_box(b"mdat", &[0u8; 100]),
            mp4_box(b"moov", &moov),
        ]
        .concat()
    }

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("grimnir-mp4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn an_ffmpeg_style_edit_is_read_with_the_movie_duration_field() {
        let bytes = file(b"soun", &[(4000, 1024)]);
        let edit = read(&write("ffmpeg.m4a", &bytes)).unwrap();
        assert_eq!(edit.media_time, 1024);
        assert_eq!(edit.media_timescale, 48_000);
        assert_eq!((edit.duration, edit.movie_timescale), (4000, 1000));
        assert_eq!(edit.seconds(), 4.0);
        let at = edit.mvhd_duration_at as usize;
        assert_eq!(bytes[at..at + 4], 4000u32.to_be_bytes());
        assert_eq!(edit.mvhd_duration, 4000);
        // 1024 / 48000 s is 21.3 movie units: rounded up to 22.
        assert_eq!(edit.lengthened(), 4022);
    }

    #[test]
    fn the_patch_lands_on_the_field_even_split_across_pieces() {
        let bytes = file(b"soun", &[(4000, 1024)]);
        let edit = read(&write("split.m4a", &bytes)).unwrap();
        let at = edit.mvhd_duration_at as usize;
        for split in at..=at + 4 {
            let mut patched = bytes.clone();
            let (first, second) = patched.split_at_mut(split);
            edit.patch(0, first);
            edit.patch(split as u64, second);
            assert_eq!(
                patched[at..at + 4],
                4022u32.to_be_bytes(),
                "split at {split}"
            );
            // Nothing else changed.
            let mut expected = bytes.clone();
            expected[at..at + 4].copy_from_slice(&4022u32.to_be_bytes());
            assert_eq!(patched, expected);
        }
        // A piece that does not reach the field is left alone.
        let mut piece = bytes[..at].to_vec();
        edit.patch(0, &mut piece);
        assert_eq!(piece, bytes[..at]);
    }

    #[test]
    fn files_without_a_priming_edit_give_nothing() {
        for (name, bytes) in [
            ("video.mp4", file(b"vide", &[(4000, 1024)])),
            ("zero.m4a", file(b"soun", &[(4000, 0)])),
            ("empty-edit.m4a", file(b"soun", &[(100, -1), (4000, 0)])),
            ("two.m4a", file(b"soun", &[(2000, 1024), (2000, 50_000)])),
        ] {
            assert_eq!(read(&write(name, &bytes)), None, "{name}");
        }
        assert_eq!(read(Path::new("/nonexistent/file.m4a")), None);
    }

    #[test]
    fn every_truncation_and_corruption_is_refused_without_panic() {
        let bytes = file(b"soun", &[(4000, 1024)]);
        for cut in 0..bytes.len() {
            assert_eq!(read(&write("cut.m4a", &bytes[..cut])), None, "cut at {cut}");
        }
        // Every byte of the moov set to each of a few values: no panic, whatever comes out.
        let start = bytes.windows(4).position(|w| w == b"moov").unwrap() - 4;
        for at in start..bytes.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut broken = bytes.clone();
                broken[at] = value;
                let _ = read(&write("broken.m4a", &broken));
            }
        }
    }
}
