//! The `grimnirdsp` element's implementation (see the parent module for its interface).
//!
//! The output meter (ebur128 with true peak, the costliest part of the element) only runs
//! while meter messages are asked for (`meter-interval` above 0).

use std::sync::{LazyLock, Mutex, MutexGuard};

use byte_slice_cast::AsMutSliceOf;
use grimnir_dsp::{AudioSpec, Chain, DspError, DspGraph, Meter, Processor, SilenceEvent};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use super::{METER_MESSAGE, SILENCE_MESSAGE, TRACK_EVENT};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "grimnirdsp",
        gst::DebugColorFlags::empty(),
        Some("Grimnir broadcast DSP chain"),
    )
});

const DEFAULT_METER_INTERVAL_MS: u64 = 1000;
/// How long the crossfade from a running chain to one of another shape lasts, ms.
pub(super) const GRAPH_CROSSFADE_MS: f64 = 100.0;

/// What the properties hold.
#[derive(Debug)]
struct Settings {
    graph: DspGraph,
    /// The text the graph was read from, as given (for reading the property back).
    graph_text: String,
    meter_interval_ms: u64,
    track_lufs: Option<f64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            graph: DspGraph { nodes: Vec::new() },
            graph_text: String::new(),
            meter_interval_ms: DEFAULT_METER_INTERVAL_MS,
            track_lufs: None,
        }
    }
}

/// What exists while audio of a known format flows.
struct State {
    spec: AudioSpec,
    chain: Chain,
    meter: Meter,
    /// Frames processed since the format was set, and since the last meter message.
    frames: u64,
    since_report: u64,
    /// A copy for buffers whose memory is not aligned for `f32` (rare; grown when needed).
    scratch: Vec<f32>,
}

#[derive(Default)]
pub struct DspFilter {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

/// Locks, recovering the data if a thread panicked while holding the lock: the settings and
/// state stay usable, and the audio keeps flowing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DspFilter {
    /// Makes `graph` the element's graph: into the running chain if one exists (in place when
    /// the shape is the same, else by a crossfade to a new chain), and into the settings.
    pub(super) fn apply_graph(
        &self,
        graph: DspGraph,
        text: Option<String>,
    ) -> Result<(), DspError> {
        graph.validate()?;
        let mut state = lock(&self.state);
        if let Some(state) = state.as_mut() {
            let fade = state.spec.frames_in_ms(GRAPH_CROSSFADE_MS);
            state.chain.replace(&graph, fade)?;
        }
        let mut settings = lock(&self.settings);
        settings.graph_text = text.unwrap_or_default();
        settings.graph = graph;
        Ok(())
    }

    /// Parses graph text as JSON when it looks like JSON, else as YAML.
    fn parse_graph(text: &str) -> Result<DspGraph, DspError> {
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            Ok(DspGraph { nodes: Vec::new() })
        } else if trimmed.starts_with('{') {
            DspGraph::from_json(text)
        } else {
            DspGraph::from_yaml(text)
        }
    }

    fn post(&self, structure: gst::Structure) {
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(structure).src(&*obj).build());
    }

    fn report(&self, state: &State) {
        let r = state.meter.reading();
        let ns = state.frames * 1_000_000_000 / u64::from(state.spec.sample_rate());
        self.post(
            gst::Structure::builder(METER_MESSAGE)
                .field("momentary", r.momentary)
                .field("short-term", r.short_term)
                .field("integrated", r.integrated)
                .field("loudness-range", r.range)
                .field("true-peak", r.true_peak)
                .field("stream-time", ns)
                .build(),
        );
    }
}

#[glib::object_subclass]
impl ObjectSubclass for DspFilter {
    const NAME: &'static str = "GrimnirDsp";
    type Type = super::DspElement;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for DspFilter {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("graph")
                    .nick("DSP graph")
                    .blurb("The DSP graph as YAML or JSON text (empty: no processing)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("meter-interval")
                    .nick("Meter interval")
                    .blurb("Milliseconds between meter messages (0: none)")
                    .default_value(DEFAULT_METER_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "graph" => {
                let text: String = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let applied = Self::parse_graph(&text)
                    .and_then(|graph| self.apply_graph(graph, Some(text.clone())));
                if let Err(e) = applied {
                    gst::warning!(CAT, imp = self, "graph refused: {e}");
                    gst::element_imp_warning!(
                        self,
                        gst::LibraryError::Settings,
                        ("DSP graph refused, the running graph stays: {}", e)
                    );
                }
            }
            "meter-interval" => {
                lock(&self.settings).meter_interval_ms = value.get().unwrap_or(0);
            }
            other => gst::warning!(CAT, imp = self, "no property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "graph" => settings.graph_text.to_value(),
            "meter-interval" => settings.meter_interval_ms.to_value(),
            // GObject only asks for the properties declared above.
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for DspFilter {}

impl ElementImpl for DspFilter {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Grimnir DSP",
                "Filter/Effect/Audio",
                "Broadcast loudness and dynamics: normalization, AGC, compressor, true-peak \
                 limiter, ducking, silence detection (grimnir-dsp)",
                "The Grimnir Radio developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_audio::AudioCapsBuilder::new_interleaved()
                .format(gst_audio::AudioFormat::F32le)
                .rate_range(grimnir_dsp::MIN_RATE as i32..=grimnir_dsp::MAX_RATE as i32)
                .channels_range(1..=grimnir_dsp::MAX_CHANNELS as i32)
                .build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .filter_map(|dir| {
                    let name = if dir == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, dir, gst::PadPresence::Always, &caps).ok()
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for DspFilter {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_audio::AudioInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "not raw audio: {}", incaps))?;
        let spec = AudioSpec::new(info.rate(), info.channels() as usize)
            .map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        let settings = lock(&self.settings);
        let build = || -> Result<State, DspError> {
            let mut chain = Chain::new(&settings.graph)?;
            chain.prepare(spec)?;
            chain.set_track_loudness(settings.track_lufs);
            Ok(State {
                spec,
                chain,
                meter: Meter::new(spec)?,
                frames: 0,
                since_report: 0,
                scratch: Vec::new(),
            })
        };
        let state = build().map_err(|e| gst::loggable_error!(CAT, "{}", e))?;
        drop(settings);
        *lock(&self.state) = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::CustomDownstream(e) = event.view()
            && let Some(s) = e.structure()
            && s.name() == TRACK_EVENT
        {
            let lufs = s.get::<f64>("lufs").ok();
            lock(&self.settings).track_lufs = lufs;
            if let Some(state) = lock(&self.state).as_mut() {
                state.chain.set_track_loudness(lufs);
            }
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let interval_ms = lock(&self.settings).meter_interval_ms;
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["no audio format set"]);
            return Err(gst::FlowError::NotNegotiated);
        };
        let mut map = buf.map_writable().map_err(|_| gst::FlowError::Error)?;
        let frames = match map.as_mut_slice_of::<f32>() {
            Ok(samples) => {
                state.chain.process(samples);
                if interval_ms > 0 {
                    state.meter.add(samples);
                }
                samples.len() / state.spec.channels()
            }
            Err(_) => {
                // Unaligned memory: through a copy.
                let bytes = map.as_mut_slice();
                state.scratch.clear();
                state.scratch.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                state.chain.process(&mut state.scratch);
                if interval_ms > 0 {
                    state.meter.add(&state.scratch);
                }
                for (b, x) in bytes.chunks_exact_mut(4).zip(&state.scratch) {
                    b.copy_from_slice(&x.to_le_bytes());
                }
                state.scratch.len() / state.spec.channels()
            }
        };
        drop(map);
        state.frames += frames as u64;
        state.since_report += frames as u64;
        while let Some(event) = state.chain.take_silence_event() {
            let (silent, frame) = match event {
                SilenceEvent::Started { at_frame } => (true, at_frame),
                SilenceEvent::Ended { at_frame, .. } => (false, at_frame),
                _ => continue,
            };
            self.post(
                gst::Structure::builder(SILENCE_MESSAGE)
                    .field("silent", silent)
                    .field("frame", frame)
                    .build(),
            );
        }
        let interval = interval_ms * u64::from(state.spec.sample_rate()) / 1000;
        if interval > 0 && state.since_report >= interval {
            state.since_report = 0;
            self.report(state);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
