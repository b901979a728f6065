//! Runs a WAV file through a DSP chain and reports its loudness before and after.
//!
//! ```text
//! cargo run -p grimnir-dsp --release --features yaml --example process -- \
//!     [--graph grimnir-dsp/examples/broadcast.yaml] [--track-lufs -9.5] in.wav out.wav
//! ```
//!
//! - reads 16/24/32-bit integer or 32-bit float WAV, 8–192 kHz, 1–8 channels;
//! - builds the chain from `--graph` (YAML), or [`DspGraph::broadcast_default`] without it;
//! - `--track-lufs X` runs the normalizer in track mode with the item's known loudness;
//!   without it, in live mode (it measures as it goes);
//! - processes in 1024-frame blocks, compensating the chain's look-ahead so the output lines up
//!   with the input and has its length;
//! - writes 32-bit float WAV and prints integrated loudness, loudness range and true peak of
//!   input and output (measured with [`Meter`]), and how fast it ran.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use grimnir_dsp::{AudioSpec, Chain, DspGraph, Meter, Processor};

/// Frames per block handed to the chain, as an engine would.
const BLOCK_FRAMES: usize = 1024;

const USAGE: &str =
    "usage: process [--graph <graph.yaml>] [--track-lufs <LUFS>] <in.wav> <out.wav>";

/// The command line.
#[derive(Debug)]
struct Args {
    graph: Option<PathBuf>,
    track_lufs: Option<f64>,
    input: PathBuf,
    output: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut graph = None;
    let mut track_lufs = None;
    let mut files = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--graph") => {
                graph = Some(PathBuf::from(
                    args.next()
                        .with_context(|| format!("--graph needs a file\n{USAGE}"))?,
                ));
            }
            Some("--track-lufs") => {
                let value = args.next().context("--track-lufs needs a value in LUFS")?;
                let value = value.to_string_lossy();
                let lufs: f64 = value
                    .parse()
                    .ok()
                    .filter(|l: &f64| l.is_finite())
                    .with_context(|| format!("--track-lufs {value}: not a loudness in LUFS"))?;
                track_lufs = Some(lufs);
            }
            Some("-h" | "--help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Some(flag) if flag.starts_with("--") => bail!("unknown option {flag}\n{USAGE}"),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    let [input, output]: [PathBuf; 2] = files
        .try_into()
        .map_err(|f: Vec<PathBuf>| anyhow::anyhow!("expected 2 files, got {}\n{USAGE}", f.len()))?;
    Ok(Args {
        graph,
        track_lufs,
        input,
        output,
    })
}

/// Reads a WAV file as interleaved `f32` in [-1, 1], with its format.
/// A WAV file's samples as `f32`, one at a time (the file is never held in memory).
type Samples = Box<dyn Iterator<Item = Result<f32, hound::Error>>>;

fn open_wav(path: &Path) -> Result<(AudioSpec, usize, Samples)> {
    if !path.exists() {
        bail!("input file not found: {}", path.display());
    }
    let reader = hound::WavReader::open(path)
        .with_context(|| format!("cannot read {} as a WAV file", path.display()))?;
    let wav = reader.spec();
    let found = format!(
        "{}-bit {}, {} Hz, {} channel(s)",
        wav.bits_per_sample,
        match wav.sample_format {
            hound::SampleFormat::Int => "integer PCM",
            hound::SampleFormat::Float => "float",
        },
        wav.sample_rate,
        wav.channels
    );
    let spec = AudioSpec::new(wav.sample_rate, usize::from(wav.channels))
        .with_context(|| format!("{}: unsupported format ({found})", path.display()))?;
    let len = reader.len() as usize;
    let samples: Samples = match (wav.sample_format, wav.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => Box::new(reader.into_samples::<f32>()),
        (hound::SampleFormat::Int, bits @ (16 | 24 | 32)) => {
            let full_scale = 2f64.powi(i32::from(bits) - 1);
            Box::new(
                reader
                    .into_samples::<i32>()
                    .map(move |s| s.map(|s| (f64::from(s) / full_scale) as f32)),
            )
        }
        _ => bail!(
            "{}: unsupported sample format: {found} (supported: 16, 24 or 32-bit integer PCM, \
             or 32-bit float)",
            path.display()
        ),
    };
    Ok((spec, len, samples))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let graph = match &args.graph {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the graph file {}", path.display()))?;
            DspGraph::from_yaml(&text).with_context(|| format!("{}", path.display()))?
        }
        None => DspGraph::broadcast_default(),
    };
    let (spec, len, mut samples) = open_wav(&args.input)?;
    let channels = spec.channels();
    let frames = len / channels;
    let seconds = frames as f64 / f64::from(spec.sample_rate());

    let mut chain = Chain::new(&graph)?;
    chain.prepare(spec)?;
    chain.set_track_loudness(args.track_lufs);
    let wav = hound::WavSpec {
        channels: u16::try_from(channels)?,
        sample_rate: spec.sample_rate(),
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&args.output, wav)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let (mut before, mut after) = (Meter::new(spec)?, Meter::new(spec)?);

    // Look-ahead delays the output: the first `latency` samples out are dropped, and as many
    // samples of silence are fed after the input, so output and input line up and have the
    // same length. Memory stays one block, however long the file.
    let latency = chain.latency_frames() * channels;
    let mut to_drop = latency;
    let mut tail = latency;
    let mut block = vec![0f32; BLOCK_FRAMES * channels];
    let mut silence = Vec::new();
    let mut elapsed = 0.0;
    loop {
        let mut filled = 0;
        while filled < block.len() {
            match samples.next() {
                Some(x) => {
                    block[filled] = x.with_context(|| {
                        format!(
                            "{}: the audio data is damaged or cut short",
                            args.input.display()
                        )
                    })?;
                    filled += 1;
                }
                None => break,
            }
        }
        before.add(&block[..filled]);
        if filled < block.len() {
            // The input is exhausted: pad with silence to push the delayed tail out.
            let pad = tail.min(block.len() - filled);
            block[filled..filled + pad].fill(0.0);
            tail -= pad;
            filled += pad;
        }
        if filled == 0 {
            break;
        }
        let started = Instant::now();
        chain.process(&mut block[..filled]);
        elapsed += started.elapsed().as_secs_f64();
        while let Some(event) = chain.take_silence_event() {
            silence.push(event);
        }
        let skip = to_drop.min(filled);
        to_drop -= skip;
        let out = &block[skip..filled];
        after.add(out);
        for &x in out {
            writer.write_sample(x)?;
        }
    }
    writer
        .finalize()
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let (before, after) = (before.reading(), after.reading());

    println!(
        "{}: {} Hz, {} channel(s), {seconds:.1} s; graph: {}; normalizer: {}",
        args.input.display(),
        spec.sample_rate(),
        channels,
        args.graph.as_deref().map_or_else(
            || "broadcast default".to_owned(),
            |p| p.display().to_string()
        ),
        args.track_lufs
            .map_or_else(|| "live".to_owned(), |l| format!("track ({l} LUFS)")),
    );
    println!("           integrated      range   true peak");
    for (label, r) in [("before", before), ("after", after)] {
        println!(
            "{label:<8} {:>8.2} LUFS {:>6.2} LU {:>7.2} dBTP",
            r.integrated, r.range, r.true_peak
        );
    }
    for event in &silence {
        println!("silence detector: {event:?}");
    }
    println!(
        "processed in {:.3} s: {:.0}× real time (latency {} frames compensated)",
        elapsed,
        seconds / elapsed.max(1e-9),
        latency / channels
    );
    println!("wrote {} (32-bit float)", args.output.display());
    Ok(())
}
