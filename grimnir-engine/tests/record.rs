//! Recording: real MP3 and FLAC packets from GStreamer written by the recorder, every file read
//! back by ffprobe and decoded on its own by ffmpeg.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "common/media.rs"]
mod media;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use grimnir_engine::output::{
    Backoff, Destination, Output, OutputState, Packet, RecordConfig, Recorder, StreamInfo,
};

const RATE: u32 = 44_100;

/// A directory of its own for one test, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("grimnir-record-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// About 10.5 s of a sine as 128 kbit/s CBR MP3, one packet per frame (1152 samples).
fn mp3() -> &'static (StreamInfo, Vec<Packet>) {
    static MP3: OnceLock<(StreamInfo, Vec<Packet>)> = OnceLock::new();
    MP3.get_or_init(|| {
        let (caps, packets) = media::encode(
            "audiotestsrc wave=sine freq=440 volume=0.3 num-buffers=402 samplesperbuffer=1152 \
             ! audio/x-raw,format=S16LE,rate=44100,channels=2 \
             ! lamemp3enc target=bitrate bitrate=128 cbr=true ! mpegaudioparse \
             ! appsink name=sink sync=false",
        );
        assert!(packets.iter().all(|p| !p.header));
        let info = StreamInfo {
            caps,
            content_type: "audio/mpeg",
            extension: "mp3",
            bitrate: Some(128),
            rate: RATE,
            channels: 2,
        };
        (info, packets)
    })
}

/// About 10.5 s of a sine as FLAC: three header packets (`fLaC`, STREAMINFO, VORBIS_COMMENT),
/// then frames of 4608 samples.
fn flac() -> &'static (StreamInfo, Vec<Packet>) {
    static FLAC: OnceLock<(StreamInfo, Vec<Packet>)> = OnceLock::new();
    FLAC.get_or_init(|| {
        let (caps, packets) = media::encode(
            "audiotestsrc wave=sine freq=440 volume=0.3 num-buffers=100 samplesperbuffer=4608 \
             ! audio/x-raw,format=S16LE,rate=44100,channels=2 ! flacenc \
             ! appsink name=sink sync=false",
        );
        let headers = packets.iter().take_while(|p| p.header).count();
        assert!(headers >= 2, "{headers} FLAC header packets");
        assert!(packets[headers..].iter().all(|p| !p.header));
        let info = StreamInfo {
            caps,
            content_type: "audio/flac",
            extension: "flac",
            bitrate: None,
            rate: RATE,
            channels: 2,
        };
        (info, packets)
    })
}

fn bytes_of(packet: &Packet) -> Vec<u8> {
    packet.buffer.map_readable().unwrap().as_slice().to_vec()
}

/// The recorder's files in `dir` in the order they were started: by the time in their name,
/// then by their `-N` suffix.
fn recordings(dir: &Path, prefix: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<(String, u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            let stem = name
                .strip_prefix(&format!("{prefix}-"))?
                .strip_suffix(&format!(".{extension}"))?;
            let stamp = stem.get(..15)?.to_owned();
            let suffix = match stem.get(15..)? {
                "" => 0,
                s => s.strip_prefix('-')?.parse().ok()?,
            };
            Some((stamp, suffix, path))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, _, path)| path).collect()
}

/// ffprobe's view of a file's audio stream: `codec,rate,channels`.
fn probe(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["stream=codec_name,sample_rate,channels", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is needed");
    assert!(out.status.success(), "ffprobe {}: {out:?}", path.display());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Decodes a file alone with ffmpeg: its duration in seconds, from the samples it holds.
fn decoded_seconds(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s16le", "-ac", "1", "-"])
        .output()
        .expect("ffmpeg is needed");
    assert!(out.status.success(), "ffmpeg {}: {out:?}", path.display());
    assert!(
        !out.stdout.is_empty(),
        "{} decodes to nothing",
        path.display()
    );
    (out.stdout.len() / 2) as f64 / f64::from(RATE)
}

/// The audio durations the files should have: a new file starts at the first packet after
/// `every` of audio.
fn expected_durations(packets: &[Packet], every: Duration) -> Vec<f64> {
    let mut files = vec![0.0];
    for packet in packets.iter().filter(|p| !p.header) {
        let last = files.last_mut().unwrap();
        if *last >= every.as_secs_f64() {
            files.push(0.0);
        }
        let duration = packet.buffer.duration().unwrap();
        *files.last_mut().unwrap() += duration.nseconds() as f64 / 1e9;
    }
    files
}

/// Writes all packets through an output worker, as the station does, and stops it.
fn record_through_output(info: &StreamInfo, packets: &[Packet], config: RecordConfig) {
    let output = Output::start(
        "record",
        info.clone(),
        Box::new(Recorder::new(config)),
        packets.len() + 1,
        Backoff::default(),
    )
    .unwrap();
    for packet in packets {
        output.send(packet.clone());
    }
    let health = output.health();
    output.stop();
    assert_eq!(health.dropped, 0, "{health:?}");
    assert_eq!(health.last_error, None, "{health:?}");
}

fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual:.4} s, expected {expected:.4} s ± {tolerance} s"
    );
}

#[test]
fn mp3_rotates_by_duration_into_files_that_decode_alone() {
    let dir = TempDir::new("mp3-duration");
    let (info, packets) = mp3();
    let every = Duration::from_secs(2);
    let mut config = RecordConfig::new(&dir.0, "wgmr");
    config.rotate_every = Some(every);
    record_through_output(info, packets, config);

    let files = recordings(&dir.0, "wgmr", "mp3");
    let expected = expected_durations(packets, every);
    assert_eq!(files.len(), expected.len(), "{files:?}");
    assert_eq!(files.len(), 6);
    let frame = 1152.0 / f64::from(RATE);
    for (file, want) in files.iter().zip(&expected) {
        assert_eq!(probe(file), "mp3,44100,2", "{}", file.display());
        // An MP3 cut between frames may lose its first frame's bit reservoir: the decoder
        // still gives that frame's length of audio, so the duration holds to the frame.
        assert_close(
            decoded_seconds(file),
            *want,
            frame / 2.0,
            &file.display().to_string(),
        );
    }
    // Nothing lost, nothing doubled: the files are the stream, cut at packet boundaries.
    let stream: Vec<u8> = packets.iter().flat_map(bytes_of).collect();
    let recorded: Vec<u8> = files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(recorded == stream, "the files are not the stream");
}

#[test]
fn flac_files_each_start_with_the_stream_headers() {
    let dir = TempDir::new("flac-duration");
    let (info, packets) = flac();
    let every = Duration::from_secs(2);
    let mut config = RecordConfig::new(&dir.0, "wgmr");
    config.rotate_every = Some(every);
    // Through the worker the headers arrive as ordinary packets flagged `header`.
    record_through_output(info, packets, config);

    let files = recordings(&dir.0, "wgmr", "flac");
    let expected = expected_durations(packets, every);
    assert_eq!(files.len(), expected.len(), "{files:?}");
    assert!(files.len() >= 5, "{files:?}");
    let headers: Vec<u8> = packets
        .iter()
        .filter(|p| p.header)
        .flat_map(bytes_of)
        .collect();
    assert!(headers.starts_with(b"fLaC"));
    for (file, want) in files.iter().zip(&expected) {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            bytes.starts_with(&headers),
            "{} lacks the headers",
            file.display()
        );
        assert_eq!(probe(file), "flac,44100,2", "{}", file.display());
        // FLAC frames decode exactly.
        assert_close(
            decoded_seconds(file),
            *want,
            1e-4,
            &file.display().to_string(),
        );
    }
}

#[test]
fn files_rotate_before_they_pass_the_size_limit() {
    let dir = TempDir::new("flac-size");
    let (info, packets) = flac();
    let max = 20_000;
    let mut config = RecordConfig::new(&dir.0, "size");
    config.rotate_every = None;
    config.max_file_bytes = Some(max);
    let (headers, audio): (Vec<Packet>, Vec<Packet>) =
        packets.iter().cloned().partition(|p| p.header);
    // As on a reopen: the headers come with `open`, the audio through `write`.
    let mut recorder = Recorder::new(config);
    recorder.open(info, &headers).unwrap();
    for packet in &audio {
        recorder.write(packet).unwrap();
    }
    recorder.close();
    assert_eq!(recorder.current_file(), None);

    let files = recordings(&dir.0, "size", "flac");
    assert!(files.len() >= 5, "{files:?}");
    let largest_packet = audio.iter().map(|p| p.buffer.size() as u64).max().unwrap();
    let header_bytes: Vec<u8> = headers.iter().flat_map(bytes_of).collect();
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).unwrap();
        let size = bytes.len() as u64;
        assert!(size <= max, "{}: {size} bytes", file.display());
        if i + 1 < files.len() {
            assert!(
                size > max - largest_packet,
                "{}: only {size} bytes",
                file.display()
            );
        }
        assert!(bytes.starts_with(&header_bytes));
        assert_eq!(probe(file), "flac,44100,2");
        assert!(decoded_seconds(file) > 0.5);
    }
    let audio_bytes: u64 = audio.iter().map(|p| p.buffer.size() as u64).sum();
    let recorded: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(
        recorded,
        audio_bytes + files.len() as u64 * header_bytes.len() as u64
    );
}

#[test]
fn without_durations_the_timestamps_measure_the_audio() {
    let dir = TempDir::new("pts");
    let (info, packets) = mp3();
    let undated: Vec<Packet> = packets
        .iter()
        .map(|p| {
            let mut buffer = p.buffer.copy();
            buffer.get_mut().unwrap().set_duration(gst::ClockTime::NONE);
            assert!(buffer.pts().is_some());
            Packet {
                buffer,
                header: false,
            }
        })
        .collect();
    let every = Duration::from_secs(1);
    let mut config = RecordConfig::new(&dir.0, "pts");
    config.rotate_every = Some(every);
    record_through_output(info, &undated, config);

    let files = recordings(&dir.0, "pts", "mp3");
    let expected = expected_durations(packets, every);
    assert_eq!(files.len(), expected.len(), "{files:?}");
    let frame = 1152.0 / f64::from(RATE);
    for (file, want) in files.iter().zip(&expected) {
        assert_close(
            decoded_seconds(file),
            *want,
            frame / 2.0,
            &file.display().to_string(),
        );
    }
}

fn write_file(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0u8; bytes]).unwrap();
}

fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * 86_400)
}

fn stamp(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y%m%d-%H%M%S")
        .to_string()
}

#[test]
fn retention_keeps_the_newest_files_within_the_total_size() {
    let dir = TempDir::new("total");
    let d = &dir.0;
    // An old recording of ours, and files that are not ours whatever their size or age.
    write_file(&d.join("rec-20000101-000000.mp3"), 30_000);
    let foreign = [
        "rec-20000101-000000.flac",
        "other-20000101-000000.mp3",
        "rec-notes.mp3",
        "notes.txt",
    ];
    for name in foreign {
        write_file(&d.join(name), 100_000);
    }
    let (info, packets) = mp3();
    let max = 50_000;
    let mut config = RecordConfig::new(d, "rec");
    config.rotate_every = Some(Duration::from_secs(1));
    config.max_total_bytes = Some(max);
    record_through_output(info, packets, config);

    assert!(!d.join("rec-20000101-000000.mp3").exists());
    for name in foreign {
        assert_eq!(
            std::fs::metadata(d.join(name)).unwrap().len(),
            100_000,
            "{name}"
        );
    }
    let files = recordings(d, "rec", "mp3");
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    let newest = *sizes.last().unwrap();
    // At the last rotation the new file was empty and the others fitted; then it grew.
    assert!(total - newest <= max, "{sizes:?}");
    assert!(
        total > max - 17_000,
        "more was deleted than needed: {sizes:?}"
    );
    // The survivors are the stream's last seconds: together they end with its last bytes.
    let stream: Vec<u8> = packets.iter().flat_map(bytes_of).collect();
    let kept: Vec<u8> = files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(
        stream.ends_with(&kept),
        "the newest files were not the ones kept: {files:?} {sizes:?}"
    );
    for file in &files {
        assert_eq!(probe(file), "mp3,44100,2");
    }
}

#[test]
fn retention_deletes_our_files_older_than_keep_days() {
    let dir = TempDir::new("age");
    let d = &dir.0;
    let old_by_name = ["rec-20000101-000000.mp3", "rec-20000101-000000-3.mp3"];
    let recent_by_name = format!("rec-{}.mp3", stamp(days_ago(1)));
    // Shaped like ours but no such date: their age is their modification time.
    let old_by_mtime = "rec-20001399-000000.mp3";
    let recent_by_mtime = "rec-20001399-000001.mp3";
    let foreign = [
        "rec-20000101-000000.flac",
        "other-20000101-000000.mp3",
        "rec-old-notes.mp3",
    ];
    for name in old_by_name.iter().chain(&foreign).chain(&[
        old_by_mtime,
        recent_by_mtime,
        recent_by_name.as_str(),
    ]) {
        write_file(&d.join(name), 1_000);
    }
    for name in foreign.iter().chain(&[old_by_mtime]) {
        let file = std::fs::File::options()
            .write(true)
            .open(d.join(name))
            .unwrap();
        file.set_modified(days_ago(30)).unwrap();
    }

    let (info, packets) = mp3();
    let mut config = RecordConfig::new(d, "rec");
    config.rotate_every = Some(Duration::from_secs(5));
    config.keep_days = Some(7);
    let mut recorder = Recorder::new(config);
    recorder.open(info, &[]).unwrap();
    for packet in packets {
        recorder.write(packet).unwrap();
    }
    recorder.close();

    for name in old_by_name.iter().chain(&[old_by_mtime]) {
        assert!(!d.join(name).exists(), "{name} is older than 7 days");
    }
    for name in foreign
        .iter()
        .chain(&[recent_by_mtime, recent_by_name.as_str()])
    {
        assert!(d.join(name).exists(), "{name} was deleted");
    }
    // The recordings just made are young: all kept.
    let made: Vec<PathBuf> = recordings(d, "rec", "mp3")
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 1_000)
        .collect();
    assert_eq!(made.len(), 3, "{made:?}");
}

/// Makes a file undeletable (`chattr +i`) until dropped; `None` where that is not permitted
/// (it needs root and a file system with the immutable flag).
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        (ok && std::fs::remove_file(path).is_err()).then(|| Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn an_old_recording_that_cannot_be_deleted_is_a_warning_not_a_failure() {
    let dir = TempDir::new("undeletable");
    let d = &dir.0;
    let stuck = d.join("rec-20000101-000000.mp3");
    write_file(&stuck, 1_000);
    let Some(_guard) = Immutable::set(&stuck) else {
        let why = "chattr +i is not permitted here (it needs root and ext4/xfs)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED: {why}");
        return;
    };
    let (info, packets) = mp3();
    let mut config = RecordConfig::new(d, "rec");
    config.keep_days = Some(7);
    let mut recorder = Recorder::new(config);
    recorder.open(info, &[]).unwrap();
    for packet in packets {
        recorder.write(packet).unwrap();
    }
    recorder.close();
    let warning = recorder.take_warning().expect("a warning");
    assert!(
        warning.contains("rec-20000101-000000.mp3") && warning.contains("cannot be deleted"),
        "{warning}"
    );
    assert_eq!(recorder.take_warning(), None);
    // The recording itself was made in full.
    let made = recordings(d, "rec", "mp3");
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(std::fs::metadata(&made[1]).unwrap().len() > 1_000);
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let dir = TempDir::new("no-overwrite");
    let d = &dir.0;
    // Whatever second the recorder starts in, its plain name is taken.
    let now = SystemTime::now();
    let taken: Vec<PathBuf> = (0..5)
        .map(|s| d.join(format!("rec-{}.mp3", stamp(now + Duration::from_secs(s)))))
        .collect();
    for path in &taken {
        std::fs::write(path, b"precious").unwrap();
    }
    let (info, packets) = mp3();
    let mut recorder = Recorder::new(RecordConfig::new(d, "rec"));
    recorder.open(info, &[]).unwrap();
    let current = recorder.current_file().unwrap().to_path_buf();
    for packet in &packets[..40] {
        recorder.write(packet).unwrap();
    }
    recorder.close();

    for path in &taken {
        assert_eq!(
            std::fs::read(path).unwrap(),
            b"precious",
            "{}",
            path.display()
        );
    }
    assert!(!taken.contains(&current));
    let name = current.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("rec-") && name.ends_with("-1.mp3"),
        "{name}"
    );
    assert_eq!(probe(&current), "mp3,44100,2");
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    let dir = TempDir::new("unusable");
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let target = file.join("recordings");
    let (info, _) = mp3();

    let mut recorder = Recorder::new(RecordConfig::new(&target, "rec"));
    let error = recorder.open(info, &[]).unwrap_err();
    assert!(error.contains(&target.display().to_string()), "{error}");
    assert!(error.contains("cannot create"), "{error}");

    let output = Output::start(
        "record",
        info.clone(),
        Box::new(Recorder::new(RecordConfig::new(&target, "rec"))),
        8,
        Backoff::default(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while output.health().last_error.is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let health = output.health();
    assert_eq!(health.state, OutputState::Down);
    assert_eq!(health.last_error, Some(error));
}

#[test]
fn a_prefix_with_a_path_separator_is_refused() {
    let dir = TempDir::new("prefix");
    let (info, _) = mp3();
    let mut recorder = Recorder::new(RecordConfig::new(&dir.0, "../escape"));
    let error = recorder.open(info, &[]).unwrap_err();
    assert!(error.contains("\"../escape\""), "{error}");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}
