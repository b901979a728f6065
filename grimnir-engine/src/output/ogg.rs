//! Opus packets into an Ogg stream that can change its title: a new chained stream (RFC 7845,
//! RFC 3533) for every title.
//!
//! An Ogg stream names what it plays only in its comment header (`OpusTags`), which comes once,
//! at the start. Listeners and Icecast learn of a new title from a new *chain*: the current
//! logical stream ends (a page flagged end-of-stream) and a new one begins with its own serial
//! number, `OpusHead` and `OpusTags`. The encoder runs on undisturbed; only the framing
//! changes. The new chain's `OpusHead` has a pre-skip of 0 — its first packet continues the
//! audio of the last one, with nothing to skip — and its granule positions count again from 0.
//!
//! Pages hold whole packets and are sent once they reach 1500 bytes, or at a chain's end: at
//! 96 kbit/s some seven packets, 140 ms, a page.

use super::{NowPlaying, Packet};

/// A page is sent once its packets reach this many bytes.
const PAGE_BYTES: usize = 1500;
/// Lacing values in one page at most (RFC 3533).
const MAX_SEGMENTS: usize = 255;

const CONTINUED: u8 = 0x01;
const BEGIN: u8 = 0x02;
const END: u8 = 0x04;

/// Why an Opus stream could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OggError {
    /// The encoder's first header was not an `OpusHead`.
    #[error("not an OpusHead identification header ({0} bytes)")]
    NotOpusHead(usize),
}

/// The Ogg framing of one Opus encoder's packets.
#[derive(Debug)]
pub struct OggOpus {
    /// The encoder's identification header, as it gave it.
    head: Vec<u8>,
    /// The encoder's vendor string, from its comment header.
    vendor: Vec<u8>,
    title: Option<NowPlaying>,
    /// A new title waits for the next packet to start its chain.
    retitle: bool,
    serial: u32,
    sequence: u32,
    /// Samples (at 48 kHz) through the last packet of this chain, pre-skip included.
    granule: u64,
    /// Whole packets waiting for their page, and their samples.
    pending: Vec<u8>,
    lacing: Vec<u8>,
    pending_samples: u64,
    /// Chains begun, the first included.
    chains: u32,
    started: bool,
}

impl OggOpus {
    /// Framing for the encoder whose identification header is `head`.
    pub fn new(head: &[u8]) -> Result<OggOpus, OggError> {
        if head.len() < 19 || !head.starts_with(b"OpusHead") {
            return Err(OggError::NotOpusHead(head.len()));
        }
        Ok(OggOpus {
            head: head.to_vec(),
            vendor: b"grimnir-engine".to_vec(),
            title: None,
            retitle: false,
            serial: 0x6772_6d00,
            sequence: 0,
            granule: 0,
            pending: Vec::new(),
            lacing: Vec::new(),
            pending_samples: 0,
            chains: 0,
            started: false,
        })
    }

    /// Takes the vendor string of the encoder's comment header, kept in every chain's.
    pub fn set_vendor_from_tags(&mut self, tags: &[u8]) {
        if let Some(vendor) = tags.strip_prefix(b"OpusTags").and_then(|rest| {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            rest.get(4..4 + len)
        }) {
            self.vendor = vendor.to_vec();
        }
    }

    /// What is on air from now on: the next packet begins a chain that carries it.
    pub fn now_playing(&mut self, meta: NowPlaying) {
        if self.title.as_ref() != Some(&meta) {
            self.title = Some(meta);
            self.retitle = true;
        }
    }

    /// How many chains have begun.
    pub fn chains(&self) -> u32 {
        self.chains
    }

    /// Frames one audio packet: the pages it completes, headers of a new chain first.
    pub fn push(&mut self, packet: &[u8]) -> Vec<Packet> {
        let mut out = Vec::new();
        if !self.started || self.retitle {
            if self.started {
                self.flush(END, &mut out);
            }
            self.begin_chain(&mut out);
        }
        let samples = opus_samples(packet);
        if self.lacing.len() + packet.len() / 255 + 1 > MAX_SEGMENTS {
            self.flush(0, &mut out);
        }
        self.pending.extend_from_slice(packet);
        self.lacing
            .extend(std::iter::repeat_n(255u8, packet.len() / 255));
        self.lacing.push((packet.len() % 255) as u8);
        self.granule = self.granule.saturating_add(samples);
        self.pending_samples += samples;
        if self.pending.len() >= PAGE_BYTES {
            self.flush(0, &mut out);
        }
        out
    }

    fn begin_chain(&mut self, out: &mut Vec<Packet>) {
        let first = !self.started;
        self.started = true;
        self.retitle = false;
        self.chains += 1;
        self.serial = self.serial.wrapping_add(1);
        self.sequence = 0;
        let mut head = self.head.clone();
        let pre_skip = if first {
            u16::from_le_bytes([head[10], head[11]])
        } else {
            // The audio goes on from the last chain's: nothing to skip.
            head[10] = 0;
            head[11] = 0;
            0
        };
        self.granule = u64::from(pre_skip);
        let head_page = page(BEGIN, 0, self.serial, self.sequence, &[&head]);
        self.sequence += 1;
        let tags = opus_tags(&self.vendor, self.title.as_ref());
        let tags_pages = pages_of_packet(&tags, self.serial, &mut self.sequence);
        out.push(Packet::from_slice(&head_page, true));
        for p in tags_pages {
            out.push(Packet::from_slice(&p, true));
        }
    }

    /// Sends the waiting packets as a page with `flags`.
    fn flush(&mut self, flags: u8, out: &mut Vec<Packet>) {
        if self.lacing.is_empty() && flags & END == 0 {
            return;
        }
        let bytes = page_from(
            flags,
            self.granule,
            self.serial,
            self.sequence,
            &self.lacing,
            &self.pending,
        );
        self.sequence = self.sequence.wrapping_add(1);
        self.pending.clear();
        self.lacing.clear();
        let mut packet = Packet::from_slice(&bytes, false);
        // The audio the page holds, for outputs that measure their files in time.
        let nanos = self.pending_samples * 1_000_000_000 / 48_000;
        packet
            .buffer
            .make_mut()
            .set_duration(gst::ClockTime::from_nseconds(nanos));
        self.pending_samples = 0;
        out.push(packet);
    }
}

/// The comment header: the vendor, and the title and artist of `meta`.
fn opus_tags(vendor: &[u8], meta: Option<&NowPlaying>) -> Vec<u8> {
    let mut comments: Vec<String> = Vec::new();
    if let Some(m) = meta {
        comments.push(format!("TITLE={}", m.title));
        if let Some(artist) = m.artist.as_deref().filter(|a| !a.is_empty()) {
            comments.push(format!("ARTIST={artist}"));
        }
    }
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in &comments {
        tags.extend_from_slice(&(c.len() as u32).to_le_bytes());
        tags.extend_from_slice(c.as_bytes());
    }
    tags
}

/// Samples at 48 kHz in an Opus packet, from its table-of-contents byte (RFC 6716, 3.1).
fn opus_samples(packet: &[u8]) -> u64 {
    let Some(&toc) = packet.first() else {
        return 0;
    };
    let config = toc >> 3;
    // Frame length in 48 kHz samples.
    let frame: u64 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(0, |c| u64::from(c & 0x3f)),
    };
    frame * frames
}

/// A packet that may need several pages (a long comment header).
fn pages_of_packet(packet: &[u8], serial: u32, sequence: &mut u32) -> Vec<Vec<u8>> {
    let mut lacing: Vec<u8> = std::iter::repeat_n(255u8, packet.len() / 255).collect();
    lacing.push((packet.len() % 255) as u8);
    let mut pages = Vec::new();
    let mut at = 0;
    let mut continued = false;
    for segs in lacing.chunks(MAX_SEGMENTS) {
        let len: usize = segs.iter().map(|&s| usize::from(s)).sum();
        let last = at + len >= packet.len() && segs.last().is_some_and(|&s| s < 255);
        // A page that ends the packet has its granule (0 for headers); one that does not,
        // none (-1).
        let granule = if last { 0 } else { u64::MAX };
        let flags = if continued { CONTINUED } else { 0 };
        pages.push(page_from(
            flags,
            granule,
            serial,
            *sequence,
            segs,
            &packet[at..at + len],
        ));
        *sequence = sequence.wrapping_add(1);
        at += len;
        continued = true;
    }
    pages
}

/// One page holding whole `packets`.
fn page(flags: u8, granule: u64, serial: u32, sequence: u32, packets: &[&[u8]]) -> Vec<u8> {
    let mut lacing = Vec::new();
    let mut body = Vec::new();
    for p in packets {
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
        body.extend_from_slice(p);
    }
    page_from(flags, granule, serial, sequence, &lacing, &body)
}

/// A page from its lacing values and body, with its checksum.
fn page_from(
    flags: u8,
    granule: u64,
    serial: u32,
    sequence: u32,
    lacing: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let mut page = Vec::with_capacity(27 + lacing.len() + body.len());
    page.extend_from_slice(b"OggS");
    page.push(0);
    page.push(flags);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&serial.to_le_bytes());
    page.extend_from_slice(&sequence.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    page.push(lacing.len() as u8);
    page.extend_from_slice(lacing);
    page.extend_from_slice(body);
    let crc = crc32(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Ogg's CRC-32: polynomial 0x04c11db7, initial value 0, no reflection, no final inversion.
fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *entry = r;
        }
        t
    });
    bytes.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[usize::from(((crc >> 24) as u8) ^ b)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_oggs() {
        // The CRC-32/MPEG-2 family without the initial inversion: "123456789" gives 0x89a1897f
        // (the catalogued check value of CRC-32 with init 0, no reflection, no xorout).
        assert_eq!(crc32(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn packet_lengths_come_from_the_toc() {
        // CELT 20 ms, one frame; SILK 60 ms, two frames; CELT 2.5 ms, code 3 with 4 frames.
        assert_eq!(opus_samples(&[0xf8, 0]), 960);
        assert_eq!(opus_samples(&[(3 << 3) | 1]), 2 * 2880);
        assert_eq!(opus_samples(&[(16 << 3) | 3, 4]), 4 * 120);
        assert_eq!(opus_samples(&[]), 0);
    }

    #[test]
    fn a_new_title_ends_the_chain_and_begins_another() {
        gst::init().unwrap();
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        let mut ogg = OggOpus::new(&head).unwrap();
        let packet = [0xfcu8; 200];
        let mut pages = Vec::new();
        for _ in 0..20 {
            pages.extend(ogg.push(&packet));
        }
        ogg.now_playing(NowPlaying {
            title: "Zweites Lied".into(),
            artist: Some("Grimnir".into()),
        });
        let at_change = pages.len();
        pages.extend(ogg.push(&packet));
        assert_eq!(ogg.chains(), 2);
        let bytes = |p: &Packet| p.buffer.map_readable().unwrap().to_vec();
        // The old chain's last page is flagged end-of-stream; then the new chain's headers.
        let end = bytes(&pages[at_change]);
        assert_eq!(end[5] & END, END);
        let new_head = bytes(&pages[at_change + 1]);
        assert_eq!(new_head[5] & BEGIN, BEGIN);
        assert!(pages[at_change + 1].header && pages[at_change + 2].header);
        assert_ne!(new_head[14..18], end[14..18], "a new serial number");
        // Its OpusHead has no pre-skip; its tags carry the title.
        let body = &new_head[28..];
        assert!(body.starts_with(b"OpusHead") && body[10..12] == [0, 0]);
        let tags = bytes(&pages[at_change + 2]);
        let text = String::from_utf8_lossy(&tags);
        assert!(text.contains("TITLE=Zweites Lied") && text.contains("ARTIST=Grimnir"));
        // Every page's checksum holds.
        for p in &pages {
            let mut b = bytes(p);
            let stored = u32::from_le_bytes(b[22..26].try_into().unwrap());
            b[22..26].copy_from_slice(&[0; 4]);
            assert_eq!(crc32(&b), stored);
        }
    }

    #[test]
    fn not_an_opus_head_is_refused() {
        assert_eq!(
            OggOpus::new(b"OpusTags...").unwrap_err(),
            OggError::NotOpusHead(11)
        );
    }
}
