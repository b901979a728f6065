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

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use grimnir_dsp::DspGraph;
use grimnir_engine::mix::Curve;
use grimnir_engine::render::{Encoding, Item, render};

fn parse_list(text: &str) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("line {}", n + 1);
        let mut words = line.split_whitespace();
        let start: f64 = words
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("{}: the start (seconds) comes first", at()))?;
        let path = words.next().with_context(|| format!("{}: no file", at()))?;
        let mut item = Item::new(path, start);
        for word in words {
            let (key, value) = word
                .split_once('=')
                .with_context(|| format!("{}: `{word}` is not key=value", at()))?;
            let seconds = || -> Result<f64> {
                value
                    .parse()
                    .with_context(|| format!("{}: {key}={value} is not a number", at()))
            };
            match key {
                "cue_in" => item.cue_in = seconds()?,
                "cue_out" => item.cue_out = Some(seconds()?),
                "fade_in" => item.fade_in = seconds()?,
                "fade_out" => item.fade_out = seconds()?,
                "lufs" => item.lufs = Some(seconds()?),
                "curve" => {
                    item.curve = match value {
                        "equal_power" => Curve::EqualPower,
                        "linear" => Curve::Linear,
                        "s_curve" => Curve::SCurve,
                        _ => bail!(
                            "{}: curve={value}: use equal_power, linear or s_curve",
                            at()
                        ),
                    }
                }
                _ => bail!("{}: unknown key `{key}`", at()),
            }
        }
        items.push(item);
    }
    items.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(items)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut graph = DspGraph::broadcast_default();
    let (mut rate, mut bitrate, mut quality) = (48_000u32, None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--graph" => {
                let path = value("--graph")?;
                let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
                graph = DspGraph::from_yaml(&text).with_context(|| path.clone())?;
            }
            "--rate" => rate = value("--rate")?.parse()?,
            "--bitrate" => bitrate = Some(value("--bitrate")?.parse()?),
            "--quality" => quality = Some(value("--quality")?.parse()?),
            _ => positional.push(arg),
        }
    }
    let [list, out] = positional.as_slice() else {
        bail!(
            "usage: render <list> <out.mp3|out.flac|out.wav> [--graph dsp.yaml] [--rate HZ] [--bitrate KBPS] [--quality 0-9]"
        );
    };
    let items = parse_list(&std::fs::read_to_string(list).with_context(|| list.clone())?)?;
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
