//! Render mode: a run of items played as fast as the CPU allows into a file.
//!
//! `mixer → appsrc → grimnirdsp → audioconvert → encoder → filesink`. Each item is opened
//! (prerolled) before its turn; one that cannot be opened is skipped and reported, and
//! whatever follows stays at its planned frame.

use std::path::{Path, PathBuf};

use grimnir_dsp::{DspGraph, Node};
use gst::prelude::*;

use crate::EngineError;
use crate::decode::Decoder;
use crate::mix::{Curve, MixEvent, Mixer, Placement};

/// Frames per block pushed into the pipeline.
const BLOCK: usize = 1024;
/// The length of a placement without a cue-out: it ends when its file does.
const UNTIL_FILE_ENDS: u64 = u64::MAX;

/// One item to play.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The media file.
    pub path: PathBuf,
    /// When its audio starts, seconds from the start of the render.
    pub start: f64,
    /// Where playback starts in the file, seconds.
    pub cue_in: f64,
    /// Where it stops in the file, seconds (`None`: the end of the file).
    pub cue_out: Option<f64>,
    /// Fade-in and fade-out, seconds.
    pub fade_in: f64,
    /// Fade-out, seconds, ending at the cue-out.
    pub fade_out: f64,
    /// Shape of both fades.
    pub curve: Curve,
    /// The item's integrated loudness as analysis measured it, LUFS.
    pub lufs: Option<f64>,
}

impl Item {
    /// An item at `start` seconds playing the whole file, no fades.
    pub fn new(path: impl Into<PathBuf>, start: f64) -> Item {
        Item {
            path: path.into(),
            start,
            cue_in: 0.0,
            cue_out: None,
            fade_in: 0.0,
            fade_out: 0.0,
            curve: Curve::EqualPower,
            lufs: None,
        }
    }
}

/// The output file's encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Encoding {
    /// MP3 (LAME) at a constant bitrate, kbit/s, with LAME's `-q` quality (0 best … 9).
    Mp3 {
        /// kbit/s.
        bitrate: u32,
        /// LAME quality, 0–9.
        quality: u32,
    },
    /// FLAC, lossless.
    Flac,
    /// WAV, 32-bit float.
    Wav,
}

impl Encoding {
    /// The encoding a file name implies: `.mp3` (128 kbit/s, quality 2), `.flac`, `.wav`.
    pub fn for_path(path: &Path) -> Result<Encoding, EngineError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("mp3") => Ok(Encoding::Mp3 {
                bitrate: 128,
                quality: 2,
            }),
            Some("flac") => Ok(Encoding::Flac),
            Some("wav") => Ok(Encoding::Wav),
            _ => Err(EngineError::Pipeline(format!(
                "{}: unknown output format (use .mp3, .flac or .wav)",
                path.display()
            ))),
        }
    }

    fn elements(self) -> Result<Vec<gst::Element>, EngineError> {
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| EngineError::MissingElement {
                    element: name.to_owned(),
                    reason: e.to_string(),
                })
        };
        Ok(match self {
            Encoding::Mp3 { bitrate, quality } => {
                let lame = make("lamemp3enc")?;
                lame.set_property_from_str("target", "bitrate");
                lame.set_property("bitrate", bitrate.clamp(8, 320) as i32);
                lame.set_property("cbr", true);
                // lamemp3enc's engine quality: high = LAME -q 2, standard = -q 5, fast = -q 7.
                let engine = match quality {
                    0..=2 => "high",
                    3..=5 => "standard",
                    _ => "fast",
                };
                lame.set_property_from_str("encoding-engine-quality", engine);
                vec![make("audioconvert")?, lame, make("id3v2mux")?]
            }
            Encoding::Flac => vec![make("audioconvert")?, make("flacenc")?],
            Encoding::Wav => vec![make("audioconvert")?, make("wavenc")?],
        })
    }
}

/// What a render did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Frames rendered.
    pub frames: u64,
    /// Items that played (wholly or partly), by index into the run.
    pub played: Vec<usize>,
    /// Items skipped or cut short, with the reason.
    pub problems: Vec<(usize, String)>,
}

/// The loudness target of the first normalizer in `graph`, if any.
fn target_lufs(graph: &DspGraph) -> Option<f64> {
    graph.nodes.iter().find_map(|n| match n {
        Node::LoudnessNormalize(p) => Some(p.target_lufs),
        _ => None,
    })
}

/// Renders `items` (in start order) at `rate` Hz stereo through `graph` into `out`.
pub fn render(
    items: &[Item],
    graph: &DspGraph,
    rate: u32,
    encoding: Encoding,
    out: &Path,
) -> Result<Report, EngineError> {
    const CHANNELS: usize = 2;
    crate::init()?;
    graph.validate()?;
    let caps = gst_audio::AudioCapsBuilder::new_interleaved()
        .format(gst_audio::AudioFormat::F32le)
        .rate(rate as i32)
        .channels(CHANNELS as i32)
        .build();
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .block(true)
        .max_bytes((BLOCK * CHANNELS * 4 * 8) as u64)
        .build();
    let dsp = crate::DspElement::new();
    dsp.set_graph(graph)?;
    dsp.set_property("meter-interval", 0u64);
    let sink = gst::ElementFactory::make("filesink")
        .property("location", out.to_string_lossy().as_ref())
        .build()
        .map_err(|e| EngineError::MissingElement {
            element: "filesink".into(),
            reason: e.to_string(),
        })?;
    let mut chain: Vec<gst::Element> = vec![src.clone().upcast(), dsp.clone().upcast()];
    chain.extend(encoding.elements()?);
    chain.push(sink);
    let pipeline = gst::Pipeline::new();
    let fail = |e: gst::glib::BoolError| EngineError::Pipeline(e.to_string());
    pipeline.add_many(&chain).map_err(fail)?;
    gst::Element::link_many(&chain).map_err(fail)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| EngineError::Pipeline(e.to_string()))?;

    let target = target_lufs(graph);
    let seconds = |s: f64| (s.max(0.0) * f64::from(rate)).round() as u64;
    let mut report = Report::default();
    let mut mixer = Mixer::new(CHANNELS);
    let mut next = 0;
    let mut block = vec![0f32; BLOCK * CHANNELS];
    let mut loudness_sent: Option<Option<f64>> = None;
    // The latest item whose start has been reached (items are in start order).
    let mut reached = 0;
    let mut on_air: Option<usize> = None;
    loop {
        // Open every item that starts within the next two blocks, so it is ready on time.
        let horizon = mixer.position() + 2 * BLOCK as u64;
        while next < items.len() && seconds(items[next].start) < horizon {
            let item = &items[next];
            match Decoder::open(&item.path, rate, CHANNELS, item.cue_in) {
                Ok(decoder) => {
                    let frames = match item.cue_out {
                        Some(out) => seconds(out - item.cue_in),
                        None => UNTIL_FILE_ENDS,
                    };
                    let gain = match (target, item.lufs) {
                        (Some(t), Some(l)) => 10f64.powf((t - l).clamp(-40.0, 40.0) / 20.0) as f32,
                        _ => 1.0,
                    };
                    let placement = Placement {
                        start: seconds(item.start),
                        frames,
                        fade_in: seconds(item.fade_in),
                        fade_out: if item.cue_out.is_some() {
                            seconds(item.fade_out)
                        } else {
                            0
                        },
                        curve: item.curve,
                        gain,
                    };
                    mixer.place(next as u64, placement, Box::new(decoder));
                }
                Err(e) => report.problems.push((next, e.to_string())),
            }
            next += 1;
        }
        if mixer.pending() == 0 && next >= items.len() {
            break;
        }
        // The normalizer is told the loudness of what is on air: with per-item gains applied
        // here, items of known loudness arrive at the target.
        while reached < next && seconds(items[reached].start) <= mixer.position() {
            on_air = Some(reached);
            reached += 1;
        }
        if let Some(lufs) = on_air.map(|k| items[k].lufs.and(target))
            && loudness_sent != Some(lufs)
        {
            src.send_event(crate::track_loudness_event(lufs));
            loudness_sent = Some(lufs);
        }
        let start = mixer.position();
        mixer.render(&mut block);
        for event in mixer.take_events() {
            match event {
                MixEvent::Started { id, .. } => report.played.push(id as usize),
                // Without a cue-out, the file's end is the item's end.
                MixEvent::Short { id, frame, missing } if items[id as usize].cue_out.is_some() => {
                    report.problems.push((
                        id as usize,
                        format!(
                            "{}: ended {:.3} s early at {:.3} s (truncated?)",
                            items[id as usize].path.display(),
                            missing as f64 / f64::from(rate),
                            frame as f64 / f64::from(rate)
                        ),
                    ));
                }
                MixEvent::Failed { id, reason, .. } => report.problems.push((
                    id as usize,
                    format!("{}: {reason}", items[id as usize].path.display()),
                )),
                _ => {}
            }
        }
        let mut buffer = gst::Buffer::with_size(block.len() * 4)
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::SECOND.mul_div_floor(start, u64::from(rate)));
            b.set_duration(gst::ClockTime::SECOND.mul_div_floor(BLOCK as u64, u64::from(rate)));
            let mut map = b
                .map_writable()
                .map_err(|e| EngineError::Pipeline(e.to_string()))?;
            for (bytes, x) in map.as_mut_slice().chunks_exact_mut(4).zip(&block) {
                bytes.copy_from_slice(&x.to_le_bytes());
            }
        }
        src.push_buffer(buffer)
            .map_err(|e| EngineError::Pipeline(format!("output pipeline stopped: {e:?}")))?;
        report.frames = mixer.position();
    }
    src.end_of_stream()
        .map_err(|e| EngineError::Pipeline(format!("{e:?}")))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| EngineError::Pipeline("no bus".into()))?;
    let done = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let _ = pipeline.set_state(gst::State::Null);
    match done.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(report),
        Some(gst::MessageView::Error(e)) => Err(EngineError::Pipeline(e.error().to_string())),
        _ => Err(EngineError::Pipeline("the output did not finish".into())),
    }
}
