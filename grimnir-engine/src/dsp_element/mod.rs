//! `grimnirdsp`: the [`grimnir_dsp`] chain as a GStreamer element.
//!
//! An in-place filter on interleaved `F32LE` audio (1–8 channels, 8–192 kHz). All processing is
//! [`grimnir_dsp::Chain`]'s; the element only carries buffers, settings and readings across.
//!
//! - Property `graph`: the DSP graph as YAML or JSON text (an empty string is an empty graph:
//!   audio passes, sanitized). A graph with the same node types in the same order is applied
//!   to the running chain without clicks ([`grimnir_dsp::Chain::update`]); another shape builds
//!   a new chain and the output crossfades to it over 100 ms ([`grimnir_dsp::Chain::replace`]). A graph that does not parse or validate is refused with a
//!   warning on the bus naming what is wrong, and the running graph stays.
//! - Property `meter-interval`: how often the readings of the output are posted, ms (0: never).
//!   Each is an element message named [`METER_MESSAGE`] with the fields `momentary`,
//!   `short-term`, `integrated` (LUFS), `loudness-range` (LU), `true-peak` (dBTP) and
//!   `stream-time` (ns of audio processed since the last format change).
//! - Silence detector nodes post [`SILENCE_MESSAGE`] with `silent` (bool) and `frame`.
//! - The loudness of what follows in the stream is set by a serialized custom downstream event
//!   built by [`track_loudness_event`], so a per-track gain changes exactly at the buffer where
//!   the track starts.

mod imp;

use gst::glib;
use gst::prelude::*;

/// Name of the element message carrying meter readings.
pub const METER_MESSAGE: &str = "grimnir-dsp-meter";
/// Name of the element message reporting a silence starting or ending.
pub const SILENCE_MESSAGE: &str = "grimnir-silence";
/// Name of the custom event carrying the loudness of the audio that follows.
pub const TRACK_EVENT: &str = "grimnir-track";

glib::wrapper! {
    /// The `grimnirdsp` element. Create it with `gst::ElementFactory::make("grimnirdsp")` after
    /// [`crate::init`], or with [`DspElement::new`].
    pub struct DspElement(ObjectSubclass<imp::DspFilter>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

impl DspElement {
    /// A new element with an empty graph (GStreamer is initialized if it was not).
    pub fn new() -> DspElement {
        let _ = gst::init();
        glib::Object::new()
    }

    /// Applies `graph`, or returns why it cannot be used (the running graph then stays).
    pub fn set_graph(&self, graph: &grimnir_dsp::DspGraph) -> Result<(), grimnir_dsp::DspError> {
        use gst::subclass::prelude::ObjectSubclassIsExt;
        self.imp().apply_graph(graph.clone(), None)
    }
}

impl Default for DspElement {
    fn default() -> DspElement {
        DspElement::new()
    }
}

/// The event that tells a `grimnirdsp` element downstream the integrated loudness of the audio
/// that follows (LUFS, as analysis measured it), or `None` for audio of unknown loudness (live
/// sources), for which the normalizer measures as it goes.
pub fn track_loudness_event(lufs: Option<f64>) -> gst::Event {
    // Building an event needs GStreamer initialized; a second init is a no-op.
    let _ = gst::init();
    let mut s = gst::Structure::builder(TRACK_EVENT);
    if let Some(lufs) = lufs.filter(|l| l.is_finite()) {
        s = s.field("lufs", lufs);
    }
    gst::event::CustomDownstream::new(s.build())
}

/// Registers `grimnirdsp` with GStreamer (done by [`crate::init`]).
pub(crate) fn register() -> Result<(), glib::BoolError> {
    gst::Element::register(
        None,
        "grimnirdsp",
        gst::Rank::NONE,
        DspElement::static_type(),
    )
}
