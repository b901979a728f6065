//! A [`DspGraph`] made runnable: its processors in order, under one [`Processor`].

use crate::agc::AutoGain;
use crate::compressor::DynamicsCompressor;
use crate::ducking::Ducker;
use crate::limiter::TruePeakLimiter;
use crate::normalize::LoudnessNormalizer;
use crate::silence::{SilenceEvent, SilenceWatch};
use crate::{AudioSpec, DspError, DspGraph, Node, Processor, sanitize};

/// One processor of a chain.
#[derive(Debug)]
enum Stage {
    Normalize(Box<LoudnessNormalizer>),
    Agc(AutoGain),
    Compressor(DynamicsCompressor),
    Limiter(TruePeakLimiter),
    Ducking(Ducker),
    Silence(SilenceWatch),
}

impl Stage {
    fn new(node: &Node) -> Stage {
        match node {
            Node::LoudnessNormalize(p) => Stage::Normalize(Box::new(LoudnessNormalizer::new(*p))),
            Node::Agc(p) => Stage::Agc(AutoGain::new(*p)),
            Node::Compressor(p) => Stage::Compressor(DynamicsCompressor::new(*p)),
            Node::Limiter(p) => Stage::Limiter(TruePeakLimiter::new(*p)),
            Node::Ducking(p) => Stage::Ducking(Ducker::new(*p)),
            Node::SilenceDetector(p) => Stage::Silence(SilenceWatch::new(*p)),
        }
    }

    fn processor(&mut self) -> &mut dyn Processor {
        match self {
            Stage::Normalize(p) => p.as_mut(),
            Stage::Agc(p) => p,
            Stage::Compressor(p) => p,
            Stage::Limiter(p) => p,
            Stage::Ducking(p) => p,
            Stage::Silence(p) => p,
        }
    }
}

/// The processors of a [`DspGraph`], run in order on each block.
///
/// ```
/// use grimnir_dsp::{AudioSpec, Chain, DspGraph, Processor};
///
/// let mut chain = Chain::new(&DspGraph::broadcast_default())?;
/// chain.prepare(AudioSpec::new(48_000, 2)?)?;
/// chain.set_track_loudness(Some(-9.5)); // the next item's analysed loudness
/// let mut block = vec![0.25f32; 2 * 1024];
/// chain.process(&mut block);
/// assert!(block.iter().all(|x| x.is_finite()));
/// # Ok::<(), grimnir_dsp::DspError>(())
/// ```
#[derive(Debug)]
pub struct Chain {
    stages: Vec<Stage>,
    channels: usize,
    /// The format set by [`Processor::prepare`], if it was.
    spec: Option<AudioSpec>,
    /// The loudness last given to [`Chain::set_track_loudness`], for a chain that replaces this.
    track_lufs: Option<f64>,
    /// The chain being faded out after [`Chain::replace`].
    outgoing: Option<Box<Outgoing>>,
}

/// A replaced chain, still running while the new one fades in.
#[derive(Debug)]
struct Outgoing {
    chain: Chain,
    /// Frames of the crossfade done, and in all.
    done: usize,
    length: usize,
    /// The block as it came in, for the outgoing chain (a chunk at a time).
    scratch: Vec<f32>,
}

/// Frames processed at a time during a crossfade between chains.
const FADE_CHUNK: usize = 1024;

impl Chain {
    /// The processors of `graph`, after validating it.
    pub fn new(graph: &DspGraph) -> Result<Chain, DspError> {
        graph.validate()?;
        let mut stages: Vec<Stage> = graph.nodes.iter().map(Stage::new).collect();
        // A normalizer's own ceiling is redundant when a limiter later in the chain holds one
        // at or below it: the final limiter decides the output's true peak either way.
        for (k, stage) in stages.iter_mut().enumerate() {
            if let Stage::Normalize(n) = stage {
                let covered = graph.nodes[k + 1..].iter().any(
                    |later| matches!(later, Node::Limiter(l) if l.threshold_db <= n.ceiling_dbtp()),
                );
                if covered {
                    n.leave_ceiling_to_chain();
                }
            }
        }
        Ok(Chain {
            stages,
            channels: 1,
            spec: None,
            track_lufs: None,
            outgoing: None,
        })
    }

    /// Applies `graph` to a running chain without a click, whatever its shape.
    ///
    /// A graph of the same shape is applied by [`Chain::update`]. Another shape becomes a new
    /// chain, prepared for the same format and told the same track loudness, and the output
    /// crossfades from the old chain to the new one over `fade_frames` frames: both run on the
    /// same input meanwhile, weighted by a raised cosine whose two gains sum to one (the two
    /// outputs are near copies of each other, so equal-amplitude is the fade that keeps the
    /// level). The old chain is dropped when the fade ends.
    ///
    /// The new chain starts from rest, as a chain built for the next item would. When the
    /// chains' latencies differ (a limiter's look-ahead), the fade blends the two timings
    /// instead of jumping from one to the other. An invalid graph is refused with the reason
    /// and the running chain stays as it was.
    pub fn replace(&mut self, graph: &DspGraph, fade_frames: usize) -> Result<(), DspError> {
        if self.update(graph).is_ok() {
            return Ok(());
        }
        let mut next = Chain::new(graph)?;
        let Some(spec) = self.spec else {
            // Not running yet: nothing to fade from.
            next.set_track_loudness(self.track_lufs);
            *self = next;
            return Ok(());
        };
        next.prepare(spec)?;
        next.set_track_loudness(self.track_lufs);
        let mut old = std::mem::replace(self, next);
        // A fade still running is cut short: only the chain that was being faded in carries on
        // into the new fade.
        old.outgoing = None;
        if fade_frames > 0 {
            self.outgoing = Some(Box::new(Outgoing {
                chain: old,
                done: 0,
                length: fade_frames,
                scratch: vec![0.0; FADE_CHUNK * spec.channels()],
            }));
        }
        Ok(())
    }

    /// Whether a crossfade from a replaced chain is still running.
    pub fn is_crossfading(&self) -> bool {
        self.outgoing.is_some()
    }

    /// Applies new parameters to a running chain without clicks: each processor smooths its own
    /// change. The graph must have the same node types in the same order, or this returns an
    /// error and leaves the chain as it was; [`Chain::replace`] then builds a new chain and
    /// crossfades to it. Changes to normalization and limiter parameters are not applied here:
    /// a ceiling or target that moves mid-item would be heard as pumping, so they take effect in
    /// a chain built for the next item.
    pub fn update(&mut self, graph: &DspGraph) -> Result<(), DspError> {
        graph.validate()?;
        let same_shape = graph.nodes.len() == self.stages.len()
            && graph.nodes.iter().zip(&self.stages).all(|(n, s)| {
                matches!(
                    (n, s),
                    (Node::LoudnessNormalize(_), Stage::Normalize(_))
                        | (Node::Agc(_), Stage::Agc(_))
                        | (Node::Compressor(_), Stage::Compressor(_))
                        | (Node::Limiter(_), Stage::Limiter(_))
                        | (Node::Ducking(_), Stage::Ducking(_))
                        | (Node::SilenceDetector(_), Stage::Silence(_))
                )
            });
        if !same_shape {
            return Err(DspError::UnsupportedFormat(
                "the new graph has other nodes: build a new chain and crossfade to it".into(),
            ));
        }
        for (node, stage) in graph.nodes.iter().zip(&mut self.stages) {
            match (node, stage) {
                (Node::Agc(p), Stage::Agc(s)) => s.set_params(*p),
                (Node::Compressor(p), Stage::Compressor(s)) => s.set_params(*p),
                (Node::Ducking(p), Stage::Ducking(s)) => s.set_params(*p),
                (Node::SilenceDetector(p), Stage::Silence(s)) => s.set_params(*p),
                // Normalization and limiter parameters are not changed mid-item (see above).
                _ => {}
            }
        }
        Ok(())
    }

    /// Tells every normalizer the next item's integrated loudness (track mode), or `None` for a
    /// source of unknown loudness (live mode).
    pub fn set_track_loudness(&mut self, lufs: Option<f64>) {
        self.track_lufs = lufs;
        if let Some(out) = &mut self.outgoing {
            out.chain.set_track_loudness(lufs);
        }
        for stage in &mut self.stages {
            if let Stage::Normalize(n) = stage {
                n.set_track_loudness(lufs);
            }
        }
    }

    /// Processes a block with a microphone signal for the ducking nodes (same format and length
    /// as `block`). Without a microphone, ducking releases.
    pub fn process_with_sidechain(&mut self, block: &mut [f32], mic: Option<&[f32]>) {
        if self.outgoing.is_some() {
            self.crossfade(block, mic);
        } else {
            self.run(block, mic);
        }
    }

    /// Runs the block through this chain's own processors.
    fn run(&mut self, block: &mut [f32], mic: Option<&[f32]>) {
        // Whatever the graph holds (even nothing that processes audio), no NaN, infinity or
        // denormal leaves the chain.
        let whole = block.len() - block.len() % self.channels.max(1);
        for x in &mut block[..whole] {
            *x = sanitize(*x);
        }
        for stage in &mut self.stages {
            match (stage, mic) {
                (Stage::Ducking(d), Some(mic)) => d.process_with_sidechain(block, mic),
                (stage, _) => stage.processor().process(block),
            }
        }
    }

    /// Runs the block through the outgoing chain and this one, a chunk at a time, and mixes
    /// them by the fade; ends the fade when it is complete.
    fn crossfade(&mut self, block: &mut [f32], mic: Option<&[f32]>) {
        let channels = self.channels.max(1);
        let whole = block.len() - block.len() % channels;
        let mut at = 0;
        while at < whole {
            let Some(out) = self.outgoing.as_mut() else {
                // The fade ended in this block: the rest is this chain's alone.
                let mic = mic.and_then(|m| m.get(at..whole));
                self.run(&mut block[at..whole], mic);
                return;
            };
            let frames = ((whole - at) / channels)
                .min(FADE_CHUNK)
                .min(out.length - out.done);
            let n = frames * channels;
            let chunk = &mut block[at..at + n];
            let mic_chunk = mic.and_then(|m| m.get(at..at + n));
            let old = &mut out.scratch[..n];
            old.copy_from_slice(chunk);
            out.chain.run(old, mic_chunk);
            let (done, length) = (out.done, out.length);
            self.run(chunk, mic_chunk);
            let Some(out) = self.outgoing.as_mut() else {
                return;
            };
            for (k, (new, old)) in chunk
                .chunks_exact_mut(channels)
                .zip(out.scratch[..n].chunks_exact(channels))
                .enumerate()
            {
                // Raised cosine from 0 to 1 over the fade; the old chain gets the rest.
                let x = (done + k + 1) as f64 / length as f64;
                let g = (0.5 - 0.5 * (std::f64::consts::PI * x).cos()) as f32;
                for (y, o) in new.iter_mut().zip(old) {
                    *y = g * *y + (1.0 - g) * *o;
                }
            }
            out.done += frames;
            if out.done >= out.length {
                self.outgoing = None;
            }
            at += n;
        }
    }

    /// The next silence event of any silence detector in the chain.
    pub fn take_silence_event(&mut self) -> Option<SilenceEvent> {
        self.stages.iter_mut().find_map(|s| match s {
            Stage::Silence(w) => w.take_event(),
            _ => None,
        })
    }
}

impl Processor for Chain {
    fn prepare(&mut self, spec: AudioSpec) -> Result<(), DspError> {
        self.channels = spec.channels();
        self.spec = Some(spec);
        // A new format ends any crossfade: the outgoing chain was prepared for the old one.
        self.outgoing = None;
        for stage in &mut self.stages {
            stage.processor().prepare(spec)?;
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.outgoing = None;
        for stage in &mut self.stages {
            stage.processor().reset();
        }
    }

    fn process(&mut self, block: &mut [f32]) {
        self.process_with_sidechain(block, None);
    }

    fn latency_frames(&self) -> usize {
        self.stages
            .iter()
            .map(|s| match s {
                Stage::Normalize(p) => p.latency_frames(),
                Stage::Agc(p) => p.latency_frames(),
                Stage::Compressor(p) => p.latency_frames(),
                Stage::Limiter(p) => p.latency_frames(),
                Stage::Ducking(p) => p.latency_frames(),
                Stage::Silence(p) => p.latency_frames(),
            })
            .sum()
    }
}
