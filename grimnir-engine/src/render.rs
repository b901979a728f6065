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
pub use crate::encode::Encoding;
use crate::mix::{Curve, MixEvent, Mixer, Placement};
use crate::output::NowPlaying;

/// Frames per block pushed into the pipeline: large, as nothing waits for a block here, and
/// every block costs a buffer and a hand-over between threads.
const BLOCK: usize = 4096;
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
    /// What outputs announce while it is on air (live playout).
    pub meta: Option<NowPlaying>,
    /// A webstream instead of a file (live playout only): these HTTP/ICY URLs, the primary
    /// first and its fallbacks in order ([`crate::input::webstream`]); `path` is not read.
    /// It plays `cue_out - cue_in` seconds (so a resumed webstream plays the rest of its
    /// slot), or without a `cue_out` until stopped or until every URL fails.
    pub webstream: Option<Vec<String>>,
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
            meta: None,
            webstream: None,
        }
    }

    /// A webstream item at `start` seconds: `urls` are the primary and its fallbacks.
    pub fn webstream(urls: Vec<String>, start: f64) -> Item {
        let mut item = Item::new(PathBuf::new(), start);
        item.webstream = Some(urls);
        item
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
pub(crate) fn target_lufs(graph: &DspGraph) -> Option<f64> {
    graph.nodes.iter().find_map(|n| match n {
        Node::LoudnessNormalize(p) => Some(p.target_lufs),
        _ => None,
    })
}

/// Reads a simple list: one item per line, its start in seconds, the file, then any of
/// `cue_in=S cue_out=S fade_in=S fade_out=S lufs=L curve=equal_power|linear|s_curve`. Blank
/// lines and lines starting with `#` are skipped. Items come back in start order.
pub fn list_items(text: &str) -> Result<Vec<Item>, EngineError> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: String| EngineError::Timeline(format!("line {}: {what}", n + 1));
        let mut words = line.split_whitespace();
        let start: f64 = words
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad("the start (seconds) comes first".into()))?;
        let path = words.next().ok_or_else(|| bad("no file".into()))?;
        let mut item = Item::new(path, start);
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| bad(format!("`{word}` is not key=value")))?;
            let number = || -> Result<f64, EngineError> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad(format!("{key}={value} is not a number")))
            };
            match key {
                "cue_in" => item.cue_in = number()?,
                "cue_out" => item.cue_out = Some(number()?),
                "fade_in" => item.fade_in = number()?,
                "fade_out" => item.fade_out = number()?,
                "lufs" => item.lufs = Some(number()?),
                "curve" => {
                    item.curve = match value {
                        "equal_power" => Curve::EqualPower,
                        "linear" => Curve::Linear,
                        "s_curve" => Curve::SCurve,
                        _ => {
                            return Err(bad(format!(
                                "curve={value}: use equal_power, linear or s_curve"
                            )));
                        }
                    }
                }
                _ => return Err(bad(format!("unknown key `{key}`"))),
            }
        }
        items.push(item);
    }
    items.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(items)
}

/// Reads a timeline in the planner's JSON lines (`grimnir-planner`'s `plan --json`: one
/// object per line with `start`, `media_id`, `artist`, `title`, `cue_in`, `cue_out` and
/// `transition`), as items starting at seconds from the first entry's start. `resolve` finds
/// a media id's file. Entries that play no media (live, webstream, fallback) have no file to
/// render and are left out; each is named in the second list, with its line.
///
/// The lines carry no loudness: items get no per-item gain, and the DSP chain's normalizer
/// does the levelling.
pub fn planner_items(
    json_lines: &str,
    resolve: impl Fn(&str) -> Option<PathBuf>,
) -> Result<(Vec<Item>, Vec<String>), EngineError> {
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let mut origin = None;
    for (n, line) in json_lines.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| EngineError::Timeline(format!("line {}: {what}", n + 1));
        let entry: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let start = entry["start"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| bad("`start` is not an RFC 3339 time"))?;
        let origin = *origin.get_or_insert(start);
        let seconds = (start - origin).num_milliseconds() as f64 / 1000.0;
        let Some(id) = entry["media_id"].as_str() else {
            skipped.push(format!(
                "line {}: {} plays no media",
                n + 1,
                entry["source"]
            ));
            continue;
        };
        let path = resolve(id).ok_or_else(|| bad(&format!("no file for media `{id}`")))?;
        let number = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        let transition = &entry["transition"];
        let mut item = Item::new(path, seconds);
        item.cue_in = number(&entry["cue_in"]);
        item.cue_out = entry["cue_out"].as_f64();
        item.fade_in = number(&transition["fade_in"]);
        item.fade_out = number(&transition["fade_out"]);
        item.meta = entry["title"].as_str().map(|title| NowPlaying {
            artist: entry["artist"]
                .as_str()
                .filter(|a| !a.is_empty())
                .map(str::to_owned),
            title: title.to_owned(),
        });
        items.push(item);
    }
    items.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok((items, skipped))
}

/// Where `item` sounds on a timeline at `rate` Hz, with the gain that brings its measured
/// loudness to `target` LUFS (unity when either is unknown).
pub(crate) fn placement_for(item: &Item, rate: u32, target: Option<f64>) -> Placement {
    let seconds = |s: f64| (s.max(0.0) * f64::from(rate)).round() as u64;
    let gain = match (target, item.lufs) {
        (Some(t), Some(l)) => 10f64.powf((t - l).clamp(-40.0, 40.0) / 20.0) as f32,
        _ => 1.0,
    };
    Placement {
        start: seconds(item.start),
        frames: match item.cue_out {
            Some(out) => seconds(out - item.cue_in),
            None => UNTIL_FILE_ENDS,
        },
        fade_in: seconds(item.fade_in),
        // Without a cue-out the end is unknown, so there is nothing to fade towards.
        fade_out: if item.cue_out.is_some() {
            seconds(item.fade_out)
        } else {
            0
        },
        curve: item.curve,
        gain,
    }
}

/// A buffer holding `samples` (interleaved, `channels` channels) as `F32LE`, stamped as
/// starting at output frame `start`.
pub(crate) fn audio_buffer(
    samples: &[f32],
    channels: usize,
    start: u64,
    rate: u32,
) -> Result<gst::Buffer, EngineError> {
    let frames = (samples.len() / channels.max(1)) as u64;
    let mut buffer = gst::Buffer::with_size(samples.len() * 4)
        .map_err(|e| EngineError::Pipeline(e.to_string()))?;
    if let Some(b) = buffer.get_mut() {
        let at = |frame: u64| gst::ClockTime::SECOND.mul_div_floor(frame, u64::from(rate));
        let pts = at(start);
        b.set_pts(pts);
        b.set_duration(
            at(start + frames)
                .zip(pts)
                .map(|(end, pts)| end.saturating_sub(pts)),
        );
        let mut map = b
            .map_writable()
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        #[cfg(target_endian = "little")]
        {
            use byte_slice_cast::AsByteSlice;
            map.as_mut_slice().copy_from_slice(samples.as_byte_slice());
        }
        #[cfg(not(target_endian = "little"))]
        for (bytes, x) in map.as_mut_slice().chunks_exact_mut(4).zip(samples) {
            bytes.copy_from_slice(&x.to_le_bytes());
        }
    }
    Ok(buffer)
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
    chain.extend(encoding.file_elements()?);
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
            if item.webstream.is_some() {
                report
                    .problems
                    .push((next, "a webstream cannot be rendered offline".into()));
                next += 1;
                continue;
            }
            match Decoder::open(&item.path, rate, CHANNELS, item.cue_in) {
                Ok(decoder) => {
                    let placement = placement_for(item, rate, target);
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
        let buffer = audio_buffer(&block, CHANNELS, start, rate)?;
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
