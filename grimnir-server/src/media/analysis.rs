//! Measuring media items, and the worker that measures queued ones.
//!
//! [`analyse`] decodes a whole file with symphonia and measures:
//!
//! - its length, from the frames decoded (not the header's claim);
//! - integrated loudness (LUFS) and true peak (dBTP) per EBU R128 / ITU-R BS.1770 with
//!   grimnir-dsp's [`Meter`]; both are `None` for a silent file (−∞);
//! - cue points: cue-in at the first sample whose magnitude reaches [`CUE_THRESHOLD_DBFS`],
//!   cue-out just after the last one. A file that never reaches it is cued whole.
//!
//! [`AnalysisWorker`] runs in `grimnir serve`: it takes pending jobs with
//! [`media::claim_job`] (safe with several servers on one
//! database), analyses each on the blocking pool, and writes the result or the failure. It
//! wakes when an upload rings [`MediaLibrary::wake_analysis`] and otherwise looks every
//! [`POLL_INTERVAL`], which also picks up jobs queued through another server and retries.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use grimnir_dsp::{AudioSpec, Meter};

use super::decode::{self, ProbeError, frames_to_ms, is_truncated};
use super::{Container, MediaLibrary};
use crate::db::media::{self, ClaimedJob, FailOutcome, Measurements};
use crate::db::{Database, StorageError};
use crate::events::{Event, EventBus, MediaChange, MediaChanged};

/// The level below which audio counts as silence for cue points, dBFS (sample peak).
pub const CUE_THRESHOLD_DBFS: f64 = -60.0;

/// How often the worker looks for jobs when nothing woke it.
pub const POLL_INTERVAL: Duration = Duration::from_secs(30);

/// How long a job may stay `running` before it counts as abandoned by a dead worker.
pub const RUNNING_LEASE: TimeDelta = TimeDelta::hours(1);

/// How long a failed job waits before its next attempt, times the attempts made.
pub const RETRY_BACKOFF: TimeDelta = TimeDelta::seconds(10);

/// Decodes the whole file at `path` (a `container`) and measures it. Blocking.
pub fn analyse(path: &Path, container: Container) -> Result<Measurements, ProbeError> {
    let mut opened = decode::open(path, container)?;
    let mut meter: Option<Meter> = None;
    let mut first_loud: Option<u64> = None;
    let mut last_loud: Option<u64> = None;
    let threshold = 10f64.powf(CUE_THRESHOLD_DBFS / 20.0) as f32;
    let mut frame = 0u64;
    let decoded = opened.decode(None, |spec, samples| {
        let channels = spec.channels.count().max(1);
        if meter.is_none() {
            let audio = AudioSpec::new(spec.rate, channels)
                .map_err(|e| ProbeError::Format(e.to_string()))?;
            meter = Some(Meter::new(audio).map_err(|e| ProbeError::Format(e.to_string()))?);
        }
        if let Some(meter) = meter.as_mut() {
            meter.add(samples);
        }
        for (i, frame_samples) in samples.chunks_exact(channels).enumerate() {
            if frame_samples.iter().any(|x| x.abs() >= threshold) {
                let at = frame + i as u64;
                first_loud.get_or_insert(at);
                last_loud = Some(at);
            }
        }
        frame += (samples.len() / channels) as u64;
        Ok(())
    })?;
    let (Some(spec), Some(meter)) = (decoded.spec, meter) else {
        return Err(ProbeError::Empty);
    };
    if decoded.frames == 0 {
        return Err(ProbeError::Empty);
    }
    if let Some(declared) = opened.declared_frames
        && is_truncated(decoded.frames, declared, spec.rate)
    {
        return Err(ProbeError::Truncated {
            decoded_ms: frames_to_ms(decoded.frames, spec.rate),
            declared_ms: frames_to_ms(declared, spec.rate),
        });
    }
    let reading = meter.reading();
    let finite = |x: f64| x.is_finite().then_some(x);
    let ms = |frames: u64| i64::try_from(frames_to_ms(frames, spec.rate)).unwrap_or(i64::MAX);
    let duration_ms = ms(decoded.frames);
    let (cue_in_ms, cue_out_ms) = match (first_loud, last_loud) {
        (Some(first), Some(last)) => {
            // Cue-out rounds up, so the last audible sample is inside.
            let out = (last + 1)
                .saturating_mul(1000)
                .div_ceil(u64::from(spec.rate));
            (
                ms(first),
                i64::try_from(out).unwrap_or(i64::MAX).min(duration_ms),
            )
        }
        _ => (0, duration_ms),
    };
    Ok(Measurements {
        duration_ms,
        loudness_lufs: finite(reading.integrated),
        true_peak_dbtp: finite(reading.true_peak),
        cue_in_ms,
        // A file with audio only in its last millisecond still gets an item one ms long.
        cue_out_ms: cue_out_ms.max(cue_in_ms + 1).min(duration_ms.max(1)),
    })
}

/// The background task that analyses queued media items.
#[derive(Debug, Clone)]
pub struct AnalysisWorker {
    db: Database,
    library: MediaLibrary,
    events: EventBus,
    poll: Duration,
}

impl AnalysisWorker {
    /// A worker on `db`, reading files from `library` and telling `events` what it found.
    pub fn new(db: Database, library: MediaLibrary, events: EventBus) -> Self {
        AnalysisWorker {
            db,
            library,
            events,
            poll: POLL_INTERVAL,
        }
    }

    /// Looks for jobs every `poll` instead of [`POLL_INTERVAL`] when nothing wakes it.
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Works until `shutdown` completes: analyses every job it can take, then waits for a wake
    /// or the poll. A job being analysed when `shutdown` completes is left `running` and handed
    /// out again after [`RUNNING_LEASE`]; a result being recorded is recorded first.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let job = tokio::select! {
                _ = &mut shutdown => return,
                job = self.claim() => job,
            };
            let Some(job) = job else {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = self.library.analysis_wanted() => {}
                    _ = tokio::time::sleep(self.poll) => {}
                }
                continue;
            };
            let outcome = tokio::select! {
                _ = &mut shutdown => return,
                outcome = self.analyse_job(&job) => outcome,
            };
            if let Err(e) = self.record(&job, outcome).await {
                tracing::warn!(media_id = %job.media_id, error = %e,
                    "cannot record an analysis; the job is handed out again later");
            }
        }
    }

    /// Takes one job, after handing stalled ones back to the queue.
    async fn claim(&self) -> Option<ClaimedJob> {
        let lease_start = Utc::now() - RUNNING_LEASE;
        let claimed = self
            .db
            .run(move |conn| {
                let requeued = media::requeue_stalled(conn, lease_start)?;
                if requeued > 0 {
                    tracing::warn!(
                        jobs = requeued,
                        "analysis jobs of a stopped worker requeued"
                    );
                }
                media::claim_job(conn, Utc::now(), RETRY_BACKOFF)
            })
            .await;
        claimed.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot take an analysis job");
            None
        })
    }

    async fn analyse_job(&self, job: &ClaimedJob) -> Result<Measurements, String> {
        let path = self.library.path_of(&job.storage_key).ok_or_else(|| {
            format!(
                "storage key {:?} is outside the media directory",
                job.storage_key
            )
        })?;
        let container = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(Container::from_extension)
            .ok_or_else(|| format!("{} has no known audio extension", job.storage_key))?;
        tokio::task::spawn_blocking(move || analyse(&path, container))
            .await
            .map_err(|e| format!("the analysis stopped: {e}"))?
            .map_err(|e| e.to_string())
    }

    async fn record(
        &self,
        job: &ClaimedJob,
        outcome: Result<Measurements, String>,
    ) -> Result<(), StorageError> {
        let station = job.station_id;
        let media_id = job.media_id;
        let change = match outcome {
            Ok(measured) => {
                let job = job.clone();
                self.db
                    .run(move |conn| {
                        use diesel::Connection as _;
                        conn.transaction(|conn| media::finish_job(conn, &job, &measured))
                    })
                    .await?;
                tracing::info!(%media_id, loudness_lufs = ?measured.loudness_lufs,
                    duration_ms = measured.duration_ms, "media analysed");
                MediaChange::Analysed
            }
            Err(error) => {
                tracing::warn!(%media_id, attempt = job.attempt, %error, "media analysis failed");
                let job = job.clone();
                let outcome = self
                    .db
                    .run(move |conn| {
                        use diesel::Connection as _;
                        conn.transaction(|conn| media::fail_job(conn, &job, &error))
                    })
                    .await?;
                match outcome {
                    FailOutcome::Retry => return Ok(()),
                    FailOutcome::GaveUp => MediaChange::AnalysisFailed,
                }
            }
        };
        let _ = self.events.publish(
            station.as_uuid(),
            Event::MediaChanged(MediaChanged {
                media_id: media_id.as_uuid(),
                change,
            }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A 16-bit PCM WAV of `seconds_silent` of silence, then `seconds_tone` of a 1 kHz sine at
    /// `dbfs`, at `rate` Hz in `channels` channels.
    fn wav(rate: u32, channels: u16, seconds_silent: f64, seconds_tone: f64, dbfs: f64) -> Vec<u8> {
        let silent = (seconds_silent * f64::from(rate)) as usize;
        let tone = (seconds_tone * f64::from(rate)) as usize;
        let amp = 10f64.powf(dbfs / 20.0) * f64::from(i16::MAX);
        let mut data = Vec::new();
        for i in 0..silent + tone {
            let x = if i < silent {
                0.0
            } else {
                let t = (i - silent) as f64 / f64::from(rate);
                amp * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()
            };
            for _ in 0..channels {
                data.extend_from_slice(&(x.round() as i16).to_le_bytes());
            }
        }
        let block = u32::from(channels) * 2;
        let mut out = Vec::new();
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

    #[test]
    fn a_tone_after_silence_is_measured_and_cued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        std::fs::write(&path, wav(48_000, 2, 1.0, 4.0, -20.0)).unwrap();
        let m = analyse(&path, Container::Wav).unwrap();
        assert_eq!(m.duration_ms, 5000);
        // A stereo sine at -20 dBFS peak reads about -20 LUFS (-3 dB for RMS, +3 dB for two
        // channels, +0.7 dB of K-weighting at 1 kHz, -0.7 dB of the BS.1770 offset).
        let lufs = m.loudness_lufs.unwrap();
        assert!((lufs - -20.0).abs() < 0.3, "{lufs}");
        let peak = m.true_peak_dbtp.unwrap();
        assert!((peak - -20.0).abs() < 0.3, "{peak}");
        assert!((m.cue_in_ms - 1000).abs() <= 1, "{}", m.cue_in_ms);
        assert!(
            m.cue_out_ms >= 4999 && m.cue_out_ms <= 5000,
            "{}",
            m.cue_out_ms
        );
    }

    #[test]
    fn silence_is_cued_whole_with_no_loudness() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silence.wav");
        std::fs::write(&path, wav(44_100, 1, 2.0, 0.0, -20.0)).unwrap();
        let m = analyse(&path, Container::Wav).unwrap();
        assert_eq!(m.duration_ms, 2000);
        assert_eq!(m.loudness_lufs, None);
        assert_eq!(m.true_peak_dbtp, None);
        assert_eq!((m.cue_in_ms, m.cue_out_ms), (0, 2000));
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        let whole = wav(8_000, 1, 0.0, 4.0, -20.0);
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let err = analyse(&path, Container::Wav).unwrap_err();
        assert!(matches!(err, ProbeError::Truncated { .. }), "{err}");
        let err = decode::probe(&path, Container::Wav).unwrap_err();
        assert!(
            err.to_string()
                .contains("of the 4000 ms its header declares"),
            "{err}"
        );
    }

    #[test]
    fn a_wav_written_to_a_pipe_is_not_called_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("piped.wav");
        let mut piped = wav(8_000, 1, 0.0, 1.0, -20.0);
        piped[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        piped[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &piped).unwrap();
        let probed = decode::probe(&path, Container::Wav).unwrap();
        assert_eq!(probed.duration_ms, Some(1000));
        assert_eq!(analyse(&path, Container::Wav).unwrap().duration_ms, 1000);
    }

    #[test]
    fn probing_reads_format_and_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        std::fs::write(&path, wav(22_050, 1, 0.5, 1.0, -6.0)).unwrap();
        let probed = decode::probe(&path, Container::Wav).unwrap();
        assert_eq!(probed.sample_rate, 22_050);
        assert_eq!(probed.channels, 1);
        assert_eq!(probed.duration_ms, Some(1500));
    }
}
