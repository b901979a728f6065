//! Renders a simple playlist through the DSP chain into a file, as fast as the CPU allows.
//!
//! ```text
//! cargo run -p grimnir-engine --release --example render -- <list> <out.mp3|out.flac|out.wav>
//!     [--graph <dsp.yaml>] [--rate 48000] [--bitrate 128] [--quality 2]
//! ```
//!
//! The list has one item per line: its start in seconds, the file, then any of
//! `cue_in=S cue_out=S fade_in=S fade_out=S lufs=L curve=equal_power|linear|s_curve`.
//! Blank lines and lines starting with `#` are skipped.
//!
//! Or the list is a timeline from the planner (`cargo run -p grimnir-planner --features
//! yaml,json --example plan -- … --json`): one JSON object per line. Then `--media <dir>`
//! says where the files are: media `t0001` plays the file in that directory whose name
//! without extension is `t0001`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use grimnir_dsp::DspGraph;
use grimnir_engine::render::{Encoding, list_items, planner_items, render};

/// The file in `dir` whose name without extension is `id`.
fn find_media(dir: &std::path::Path, id: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_stem().is_some_and(|s| s == id))
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut graph = DspGraph::broadcast_default();
    let (mut rate, mut bitrate, mut quality) = (48_000u32, None, None);
    let mut media: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--graph" => {
                let path = value("--graph")?;
                let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
                graph = DspGraph::from_yaml(&text).with_context(|| path.clone())?;
            }
            "--media" => media = Some(value("--media")?.into()),
            "--rate" => rate = value("--rate")?.parse()?,
            "--bitrate" => bitrate = Some(value("--bitrate")?.parse()?),
            "--quality" => quality = Some(value("--quality")?.parse()?),
            _ => positional.push(arg),
        }
    }
    let [list, out] = positional.as_slice() else {
        bail!(
            "usage: render <list> <out.mp3|out.flac|out.wav> [--graph dsp.yaml] [--media DIR] [--rate HZ] [--bitrate KBPS] [--quality 0-9]"
        );
    };
    let text = std::fs::read_to_string(list).with_context(|| list.clone())?;
    let items = if text.trim_start().starts_with('{') {
        let dir = media.context("a planner timeline needs --media <dir> to find its files")?;
        let (items, skipped) = planner_items(&text, |id| find_media(&dir, id))?;
        for s in skipped {
            println!("{list}: {s}");
        }
        items
    } else {
        list_items(&text)?
    };
    let out = PathBuf::from(out);
    let mut encoding = Encoding::for_path(&out)?;
    if let Encoding::Mp3 {
        bitrate: b,
        quality: q,
    } = &mut encoding
    {
        *b = bitrate.unwrap_or(*b);
        *q = quality.unwrap_or(*q);
    }
    let started = std::time::Instant::now();
    let report = render(&items, &graph, rate, encoding, &out)?;
    let seconds = report.frames as f64 / f64::from(rate);
    let took = started.elapsed().as_secs_f64();
    println!(
        "rendered {seconds:.1} s of audio in {took:.2} s ({:.0}x real time) to {}",
        seconds / took.max(1e-9),
        out.display()
    );
    println!("{} of {} items played", report.played.len(), items.len());
    for (i, problem) in &report.problems {
        println!("item {i}: {problem}");
    }
    Ok(())
}
