//! Recording: the station's stream written to timestamped files, rotated and pruned.
//!
//! A [`Recorder`] is a [`Destination`] that writes the encoded stream as it is, packet by
//! packet, to `{prefix}-{YYYYMMDD-HHMMSS}.{ext}` in a directory (UTC wall-clock time of the
//! file's start). It starts a new file when the current one holds
//! [`RecordConfig::rotate_every`] of audio or would grow past [`RecordConfig::max_file_bytes`],
//! always between two packets and always beginning with the stream's header packets, so every
//! file decodes on its own. After each new file it applies the retention policy to its own
//! earlier files.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Destination, Packet, StreamInfo};

/// Room in the write buffer: a few seconds of a typical stream, so the disk sees few writes.
const WRITE_BUFFER: usize = 64 * 1024;
/// `YYYYMMDD-HHMMSS`.
const STAMP_FORMAT: &str = "%Y%m%d-%H%M%S";
const STAMP_LEN: usize = 15;
const SECONDS_PER_DAY: i64 = 86_400;

/// Where and how to record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordConfig {
    /// The directory the files go to; created if missing.
    pub dir: PathBuf,
    /// The start of every file's name, before `-{YYYYMMDD-HHMMSS}`. Retention only ever
    /// touches files named with this prefix and the stream's extension.
    pub prefix: String,
    /// The audio duration after which a new file starts, if any.
    pub rotate_every: Option<Duration>,
    /// The size a file may not grow past (a new file starts before it would), if any. Only
    /// a file whose headers and first packet alone are larger ends up larger.
    pub max_file_bytes: Option<u64>,
    /// Files whose start is more than this many days ago are deleted, if set.
    pub keep_days: Option<u32>,
    /// The most the recordings may take together: the oldest are deleted first, if set.
    pub max_total_bytes: Option<u64>,
}

impl RecordConfig {
    /// Records into `dir` as `{prefix}-…`, one file per hour of audio, keeping everything.
    pub fn new(dir: impl Into<PathBuf>, prefix: impl Into<String>) -> RecordConfig {
        RecordConfig {
            dir: dir.into(),
            prefix: prefix.into(),
            rotate_every: Some(Duration::from_secs(3600)),
            max_file_bytes: None,
            keep_days: None,
            max_total_bytes: None,
        }
    }
}

/// Continuous recording to timestamped files, as an output's [`Destination`].
///
/// Opening creates the directory if needed and a new file; an existing file is never
/// overwritten (a second file started in the same second is named `…-HHMMSS-1.ext`, and so
/// on). Header packets (Ogg's and FLAC's) start every file.
///
/// Retention runs after every new file, on this recorder's own files only (those named
/// `{prefix}-{YYYYMMDD-HHMMSS}[-N].{ext}`) and never on the file being written: first files
/// older than [`RecordConfig::keep_days`] go (their age is the time in their name, or their
/// modification time when the name holds no valid date), then, oldest first, files until all
/// of them together fit [`RecordConfig::max_total_bytes`]. A file that cannot be deleted is
/// left for the next rotation: the recording matters more than the clean-up.
///
/// ```no_run
/// use std::time::Duration;
/// use grimnir_engine::output::{RecordConfig, Recorder};
///
/// let mut config = RecordConfig::new("/var/lib/grimnir/recordings", "wgmr");
/// config.rotate_every = Some(Duration::from_secs(3600));
/// config.keep_days = Some(31);
/// let recorder = Recorder::new(config);
/// # let _ = recorder;
/// ```
#[derive(Debug)]
pub struct Recorder {
    config: RecordConfig,
    extension: String,
    /// The stream's current header packets, written at the start of every file.
    headers: Vec<Packet>,
    /// A non-header packet came after the headers: the next header starts a new set.
    headers_done: bool,
    /// The timestamp of the last packet that came without a duration.
    undated_pts: Option<gst::ClockTime>,
    file: Option<Recording>,
    /// Problems that did not stop the recording, for [`Destination::take_warning`].
    warnings: std::collections::VecDeque<String>,
}

/// The most warnings kept until the worker takes them; older ones give way.
const MAX_WARNINGS: usize = 32;

#[derive(Debug)]
struct Recording {
    path: PathBuf,
    writer: BufWriter<File>,
    bytes: u64,
    audio: gst::ClockTime,
    audio_packets: u64,
}

impl Recorder {
    /// A recorder with `config`; nothing is created until it is opened.
    pub fn new(config: RecordConfig) -> Recorder {
        Recorder {
            config,
            extension: String::new(),
            headers: Vec::new(),
            headers_done: false,
            undated_pts: None,
            warnings: std::collections::VecDeque::new(),
            file: None,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &RecordConfig {
        &self.config
    }

    /// The file being written, while open.
    pub fn current_file(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// Creates the next file and writes the headers into it, then applies retention.
    fn start_file(&mut self) -> Result<(), String> {
        let dir = &self.config.dir;
        let prefix = &self.config.prefix;
        if prefix.contains(['/', '\\']) || prefix == "." || prefix == ".." {
            return Err(format!(
                "recording prefix {prefix:?}: must be a plain name, without path separators"
            ));
        }
        fs::create_dir_all(dir).map_err(|e| {
            format!(
                "recording directory {}: cannot create it: {e}",
                dir.display()
            )
        })?;
        let stamp = chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
            .format(STAMP_FORMAT)
            .to_string();
        let (path, file) = create_new(dir, &file_stem(prefix, &stamp), &self.extension)?;
        let mut recording = Recording {
            path,
            writer: BufWriter::with_capacity(WRITE_BUFFER, file),
            bytes: 0,
            audio: gst::ClockTime::ZERO,
            audio_packets: 0,
        };
        for header in &self.headers {
            recording.append(header)?;
        }
        self.file = Some(recording);
        self.apply_retention();
        Ok(())
    }

    /// Flushes and closes the current file.
    fn finish_file(&mut self) -> Result<(), String> {
        match self.file.take() {
            Some(mut f) => f
                .writer
                .flush()
                .map_err(|e| format!("recording {}: cannot write: {e}", f.path.display())),
            None => Ok(()),
        }
    }

    fn remember(&mut self, packet: &Packet) {
        if packet.header {
            if self.headers_done {
                self.headers.clear();
                self.headers_done = false;
            }
            self.headers.push(packet.clone());
        } else if !self.headers.is_empty() {
            self.headers_done = true;
        }
    }

    fn warn(&mut self, warning: String) {
        if self.warnings.len() == MAX_WARNINGS {
            self.warnings.pop_front();
        }
        self.warnings.push_back(warning);
    }

    /// Deletes this recorder's own files that the policy no longer keeps. A file that cannot
    /// be deleted is reported as a warning and tried again at the next rotation.
    fn apply_retention(&mut self) {
        let mut failed = Vec::new();
        self.retain(&mut failed);
        for warning in failed {
            self.warn(warning);
        }
    }

    fn retain(&self, failed: &mut Vec<String>) {
        let c = &self.config;
        if c.keep_days.is_none() && c.max_total_bytes.is_none() {
            return;
        }
        let current = self.file.as_ref().map(|f| f.path.as_path());
        let entries = match fs::read_dir(&c.dir) {
            Ok(entries) => entries,
            Err(e) => {
                failed.push(format!(
                    "recordings in {}: cannot list them to apply retention: {e}",
                    c.dir.display()
                ));
                return;
            }
        };
        let mut files: Vec<OwnFile> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (name_time, suffix) = parse_own_name(&name, &c.prefix, &self.extension)?;
                let path = entry.path();
                if Some(path.as_path()) == current {
                    return None;
                }
                let meta = entry.metadata().ok()?;
                if !meta.is_file() {
                    return None;
                }
                let started = name_time.or_else(|| meta.modified().ok().map(unix_seconds))?;
                Some(OwnFile {
                    path,
                    started,
                    suffix,
                    bytes: meta.len(),
                })
            })
            .collect();
        files.sort_by(|a, b| (a.started, a.suffix, &a.path).cmp(&(b.started, b.suffix, &b.path)));

        if let Some(days) = c.keep_days {
            let cutoff = unix_seconds(SystemTime::now()) - i64::from(days) * SECONDS_PER_DAY;
            files.retain(|f| {
                f.started >= cutoff
                    || fs::remove_file(&f.path)
                        .map_err(|e| failed.push(cannot_delete(&f.path, &e)))
                        .is_err()
            });
        }
        if let Some(max) = c.max_total_bytes {
            let current_bytes = self.file.as_ref().map_or(0, |f| f.bytes);
            let mut total = current_bytes + files.iter().map(|f| f.bytes).sum::<u64>();
            for f in &files {
                if total <= max {
                    break;
                }
                match fs::remove_file(&f.path) {
                    Ok(()) => total = total.saturating_sub(f.bytes),
                    Err(e) => failed.push(cannot_delete(&f.path, &e)),
                }
            }
        }
    }
}

impl Recording {
    fn append(&mut self, packet: &Packet) -> Result<(), String> {
        let map = packet
            .buffer
            .map_readable()
            .map_err(|e| format!("recording {}: unreadable packet: {e}", self.path.display()))?;
        self.writer
            .write_all(map.as_slice())
            .map_err(|e| format!("recording {}: cannot write: {e}", self.path.display()))?;
        self.bytes += map.size() as u64;
        Ok(())
    }
}

impl Destination for Recorder {
    fn open(&mut self, stream: &StreamInfo, headers: &[Packet]) -> Result<(), String> {
        self.finish_file()?;
        self.extension = stream.extension.to_owned();
        self.headers = headers.to_vec();
        self.headers_done = false;
        self.undated_pts = None;
        self.start_file()
    }

    fn write(&mut self, packet: &Packet) -> Result<(), String> {
        self.remember(packet);
        let config = &self.config;
        let undated_pts = self.undated_pts;
        let Some(file) = self.file.as_mut() else {
            return Err(format!("recording in {}: not open", config.dir.display()));
        };
        if packet.header {
            return file.append(packet);
        }
        let duration = packet.buffer.duration();
        let pts = packet.buffer.pts();
        // A packet without a duration lasts until the next one starts.
        if duration.is_none()
            && let (Some(pts), Some(previous)) = (pts, undated_pts)
        {
            file.audio += pts.saturating_sub(previous);
        }
        let size = packet.buffer.size() as u64;
        let long_enough = config.rotate_every.is_some_and(|r| {
            file.audio.nseconds() >= u64::try_from(r.as_nanos()).unwrap_or(u64::MAX)
        });
        let too_big = config.max_file_bytes.is_some_and(|m| file.bytes + size > m);
        if file.audio_packets > 0 && (long_enough || too_big) {
            self.finish_file()?;
            self.start_file()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(format!(
                "recording in {}: not open",
                self.config.dir.display()
            ));
        };
        file.append(packet)?;
        file.audio_packets += 1;
        match duration {
            Some(d) => {
                file.audio += d;
                self.undated_pts = None;
            }
            None => self.undated_pts = pts,
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Err(e) = self.finish_file() {
            self.warn(e);
        }
    }

    fn take_warning(&mut self) -> Option<String> {
        self.warnings.pop_front()
    }
}

fn cannot_delete(path: &Path, e: &std::io::Error) -> String {
    format!(
        "recording {}: past retention but cannot be deleted: {e}",
        path.display()
    )
}

struct OwnFile {
    path: PathBuf,
    /// Seconds since the Unix epoch.
    started: i64,
    suffix: u32,
    bytes: u64,
}

fn file_stem(prefix: &str, stamp: &str) -> String {
    if prefix.is_empty() {
        stamp.to_owned()
    } else {
        format!("{prefix}-{stamp}")
    }
}

/// Creates `{stem}.{ext}`, or `{stem}-1.{ext}`, `{stem}-2.{ext}`… if it exists: never an
/// existing file. The number follows the highest one in use, so names keep the order files
/// were started in even after retention deleted the first of them.
fn create_new(dir: &Path, stem: &str, extension: &str) -> Result<(PathBuf, File), String> {
    let dot = if extension.is_empty() { "" } else { "." };
    let first = next_suffix(dir, stem, extension);
    for n in first..first.saturating_add(10_000) {
        let name = if n == 0 {
            format!("{stem}{dot}{extension}")
        } else {
            format!("{stem}-{n}{dot}{extension}")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("recording {}: cannot create: {e}", path.display())),
        }
    }
    Err(format!(
        "recording directory {}: too many files named {stem}",
        dir.display()
    ))
}

/// One more than the highest `N` of the files `{stem}[-N].{ext}` in `dir` (the plain name
/// counting as 0), or 0 if there are none.
fn next_suffix(dir: &Path, stem: &str, extension: &str) -> u32 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let rest = name.strip_prefix(stem)?;
            let rest = if extension.is_empty() {
                rest
            } else {
                rest.strip_suffix(extension)?.strip_suffix('.')?
            };
            match rest {
                "" => Some(0u32),
                r => {
                    let digits = r.strip_prefix('-')?;
                    if digits.bytes().all(|b| b.is_ascii_digit()) {
                        digits.parse().ok()
                    } else {
                        None
                    }
                }
            }
        })
        .max()
        .map_or(0, |n| n.saturating_add(1))
}

/// Whether `name` is one of this recorder's files: `{prefix}-{YYYYMMDD-HHMMSS}[-N].{ext}`. If
/// so, the start time it names (seconds since the Unix epoch, `None` for a date that does not
/// exist) and its suffix number.
fn parse_own_name(name: &str, prefix: &str, extension: &str) -> Option<(Option<i64>, u32)> {
    let rest = if prefix.is_empty() {
        name
    } else {
        name.strip_prefix(prefix)?.strip_prefix('-')?
    };
    let rest = if extension.is_empty() {
        rest
    } else {
        rest.strip_suffix(extension)?.strip_suffix('.')?
    };
    let stamp = rest.get(..STAMP_LEN)?;
    let shape_ok = stamp
        .char_indices()
        .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() });
    if !shape_ok {
        return None;
    }
    let suffix = match &rest[STAMP_LEN..] {
        "" => 0,
        s => {
            let digits = s.strip_prefix('-')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()?
        }
    };
    let time = chrono::NaiveDateTime::parse_from_str(stamp, STAMP_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp());
    Some((time, suffix))
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names_are_recognized_strictly() {
        let t = |n| parse_own_name(n, "wgmr", "mp3");
        assert_eq!(
            t("wgmr-20240102-030405.mp3"),
            Some((Some(1_704_164_645), 0))
        );
        assert_eq!(
            t("wgmr-20240102-030405-12.mp3"),
            Some((Some(1_704_164_645), 12))
        );
        // The right shape but no such date: the caller falls back to the file's mtime.
        assert_eq!(t("wgmr-20241399-000000.mp3"), Some((None, 0)));
        assert_eq!(t("wgmr-20240102-030405.flac"), None);
        assert_eq!(t("other-20240102-030405.mp3"), None);
        assert_eq!(t("wgmr-notes.mp3"), None);
        assert_eq!(t("wgmr-20240102-030405-.mp3"), None);
        assert_eq!(t("wgmr-20240102-030405-x.mp3"), None);
        assert_eq!(t("wgmr-20240102_030405.mp3"), None);
        assert_eq!(t("wgmr-2024010-2030405.mp3"), None);
        assert_eq!(t("wgmr2-20240102-030405.mp3"), None);
        assert_eq!(
            parse_own_name("20240102-030405.ogg", "", "ogg"),
            Some((Some(1_704_164_645), 0))
        );
    }

    #[test]
    fn new_files_never_replace_old_ones() {
        let dir = std::env::temp_dir().join(format!("grimnir-record-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut names = Vec::new();
        for _ in 0..3 {
            match create_new(&dir, "rec-20240102-030405", "mp3") {
                Ok((path, _)) => names.push(path.file_name().map(|n| n.to_os_string())),
                Err(e) => panic!("{e}"),
            }
        }
        // The first of them deleted (as retention does): the next one still comes after all.
        let _ = fs::remove_file(dir.join("rec-20240102-030405.mp3"));
        match create_new(&dir, "rec-20240102-030405", "mp3") {
            Ok((path, _)) => names.push(path.file_name().map(|n| n.to_os_string())),
            Err(e) => panic!("{e}"),
        }
        let _ = fs::remove_dir_all(&dir);
        let expected = [
            "rec-20240102-030405.mp3",
            "rec-20240102-030405-1.mp3",
            "rec-20240102-030405-2.mp3",
            "rec-20240102-030405-3.mp3",
        ];
        let expected: Vec<_> = expected.iter().map(|n| Some(n.into())).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn unix_seconds_handle_times_before_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_secs(5)), 5);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
