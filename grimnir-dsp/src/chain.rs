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
}

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
        })
    }

    /// Applies new parameters to a running chain without clicks: each processor smooths its own
    /// change. The graph must have the same node types in the same order, or this returns an
    /// error and leaves the chain as it was; the caller then builds a new chain (and the engine
    /// crossfades to it). Changes to normalization and limiter parameters are not applied here:
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
        for stage in &mut self.stages {
            if let Stage::Normalize(n) = stage {
                n.set_track_loudness(lufs);
            }
        }
    }

    /// Processes a block with a microphone signal for the ducking nodes (same format and length
    /// as `block`). Without a microphone, ducking releases.
    pub fn process_with_sidechain(&mut self, block: &mut [f32], mic: Option<&[f32]>) {
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
        for stage in &mut self.stages {
            stage.processor().prepare(spec)?;
        }
        Ok(())
    }

    fn reset(&mut self) {
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
