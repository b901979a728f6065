//! The encoder delay and padding an MP3 file declares in its LAME tag, for gapless playback.
//!
//! An MP3 encoder puts silence before the audio (LAME: 576 samples) and pads the last frame;
//! every decoder adds 529 samples of its own delay on top. LAME and most encoders since record
//! both in the "LAME tag" inside the first frame (a Xing/Info frame that carries no audio).
//! GStreamer 1.22's decoders leave that priming in, so without this an MP3's audio arrives
//! about 1 105 samples late, a cue-in misses its frame by as much, and two halves of one piece
//! do not join. [`read`] finds the numbers; the decoder trims by them.

/// What the LAME tag says, in samples at the file's own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gapless {
    /// The file's sample rate, Hz.
    pub(crate) rate: u32,
    /// Samples to drop at the start of the decoded stream (encoder delay + decoder delay).
    pub(crate) skip: u64,
    /// Samples of real audio after those: the rest is padding.
    pub(crate) length: Option<u64>,
}

/// The decoder delay of an MPEG Layer III decoder (the synthesis filterbank), samples.
const DECODER_DELAY: u64 = 529;

/// Reads the gapless information from the start of an MP3 file (`head`: its first few
/// kilobytes). `None` when the file is not MP3 or carries no LAME tag.
pub(crate) fn read(head: &[u8]) -> Option<Gapless> {
    let mut at = 0;
    // An ID3v2 tag first: 10 bytes of header, its size in 7-bit bytes.
    if head.len() >= 10 && &head[..3] == b"ID3" {
        let size = head[6..10]
            .iter()
            .fold(0usize, |s, b| (s << 7) | usize::from(b & 0x7f));
        let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
        at = 10 + size + footer;
    }
    let frame = head.get(at..)?;
    let header = frame.get(..4)?;
    if header[0] != 0xff || header[1] & 0xe0 != 0xe0 {
        return None;
    }
    let version = (header[1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (header[1] >> 1) & 3; // 1: Layer III
    if layer != 1 || version == 1 {
        return None;
    }
    let crc = header[1] & 1 == 0;
    let rates = [44_100, 48_000, 32_000];
    let rate_index = usize::from((header[2] >> 2) & 3);
    let rate = rates.get(rate_index)?
        / match version {
            3 => 1,
            2 => 2,
            _ => 4,
        };
    let mono = header[3] >> 6 == 3;
    let side_info = match (version == 3, mono) {
        (true, true) => 17,
        (true, false) => 32,
        (false, true) => 9,
        (false, false) => 17,
    };
    let samples_per_frame: u64 = if version == 3 { 1152 } else { 576 };
    let tag_at = 4 + if crc { 2 } else { 0 } + side_info;
    let tag = frame.get(tag_at..)?;
    if tag.get(..4)? != b"Xing" && tag.get(..4)? != b"Info" {
        return None;
    }
    let flags = u32::from_be_bytes(tag.get(4..8)?.try_into().ok()?);
    let mut pos = 8;
    let mut frames = None;
    if flags & 1 != 0 {
        frames = Some(u64::from(u32::from_be_bytes(
            tag.get(pos..pos + 4)?.try_into().ok()?,
        )));
        pos += 4;
    }
    if flags & 2 != 0 {
        pos += 4; // bytes
    }
    if flags & 4 != 0 {
        pos += 100; // table of contents
    }
    if flags & 8 != 0 {
        pos += 4; // quality
    }
    // The LAME extension: a 9-byte encoder name, then 12 bytes of settings, then delay and
    // padding as two 12-bit numbers.
    let lame = tag.get(pos..pos + 24)?;
    let name = &lame[..4];
    if name != b"LAME" && name != b"Lavc" && name != b"Lavf" && name != b"GOGO" {
        return None;
    }
    let d = &lame[21..24];
    let delay = (u64::from(d[0]) << 4) | (u64::from(d[1]) >> 4);
    let padding = ((u64::from(d[1]) & 0x0f) << 8) | u64::from(d[2]);
    let length = frames.map(|f| (f * samples_per_frame).saturating_sub(delay + padding));
    Some(Gapless {
        rate,
        skip: delay + DECODER_DELAY,
        length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Xing/Info frame as LAME writes it: MPEG-1 Layer III, 48 kHz, joint stereo.
    fn info_frame(frames: u32, delay: u16, padding: u16, crc: bool) -> Vec<u8> {
        let mut f = vec![0xff, if crc { 0xfa } else { 0xfb }, 0x94, 0x64];
        if crc {
            f.extend([0, 0]);
        }
        f.extend([0u8; 32]);
        f.extend(b"Info");
        f.extend(0x0fu32.to_be_bytes());
        f.extend(frames.to_be_bytes());
        f.extend(12345u32.to_be_bytes());
        f.extend([0u8; 100]);
        f.extend(50u32.to_be_bytes());
        f.extend(b"LAME3.100");
        f.extend([0u8; 12]);
        f.push((delay >> 4) as u8);
        f.push((((delay & 0x0f) << 4) | (padding >> 8)) as u8);
        f.push((padding & 0xff) as u8);
        f.extend([0u8; 300]);
        f
    }

    #[test]
    fn the_lame_tag_gives_delay_and_padding() {
        let g = read(&info_frame(100, 576, 1000, false)).unwrap();
        assert_eq!(g.rate, 48_000);
        assert_eq!(g.skip, 576 + 529);
        assert_eq!(g.length, Some(100 * 1152 - 576 - 1000));
        assert_eq!(read(&info_frame(100, 576, 1000, true)), Some(g));
    }

    #[test]
    fn an_id3_tag_before_the_frame_is_skipped() {
        let mut file = b"ID3\x04\x00\x00\x00\x00\x01\x00".to_vec(); // 128 bytes of tag
        file.extend([0u8; 128]);
        file.extend(info_frame(10, 576, 1, false));
        assert_eq!(read(&file).unwrap().skip, 1105);
    }

    #[test]
    fn other_files_have_none() {
        assert_eq!(read(b"RIFF....WAVEfmt "), None);
        assert_eq!(read(b""), None);
        assert_eq!(read(&[0xff; 3]), None);
        let mut no_tag = info_frame(10, 576, 1, false);
        no_tag[36..40].copy_from_slice(b"Junk");
        assert_eq!(read(&no_tag), None);
        // A truncated tag is not trusted.
        assert_eq!(read(&info_frame(10, 576, 1, false)[..150]), None);
    }
}
