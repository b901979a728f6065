//! Puts a station on air in real time: a list of items through the DSP chain to Icecast
//! mounts, recordings and HLS, with telemetry every second.
//!
//! ```text
//! cargo run -p grimnir-engine --release --example station -- <list> [--seconds N]
//!     [--graph dsp.yaml] [--icecast HOST:PORT] [--password PW]
//!     [--mount /live.mp3=mp3:128] [--mount /live.opus=opus:96] …
//!     [--record DIR=flac] [--hls DIR=aac:96] [--quiet]
//! ```
//!
//! The list is the render example's (`start path [cue_in= cue_out= fade_in= fade_out= lufs=
//! curve=]`), its starts in seconds from one second after start-up. Encodings are `mp3:KBPS`
//! (LAME quality 2), `aac:KBPS`, `opus:KBPS` and `flac`. The station runs for `--seconds`
//! (default: until the last item ends) and prints, at the end, one line
//! `summary underruns=N dropouts=D cpu_percent=X rss_kb=Y` for scripts (underruns: the
//! playout fell behind the clock; dropouts: the encoders did, and audio was lost).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use grimnir_dsp::DspGraph;
use grimnir_engine::encode::Encoding;
use grimnir_engine::output::hls::{Hls, HlsConfig};
use grimnir_engine::output::icecast::{Icecast, IcecastConfig};
use grimnir_engine::output::record::{RecordConfig, Recorder};
use grimnir_engine::render::list_items;
use grimnir_engine::station::{Station, StationConfig, StationEvent};

fn encoding(text: &str) -> Result<Encoding> {
    let (kind, rate) = text.split_once(':').unwrap_or((text, ""));
    let kbps = || -> Result<u32> {
        rate.parse()
            .with_context(|| format!("`{text}`: give the bitrate, e.g. mp3:128"))
    };
    Ok(match kind {
        "mp3" => Encoding::Mp3 {
            bitrate: kbps()?,
            quality: 2,
        },
        "aac" => Encoding::Aac { bitrate: kbps()? },
        "opus" => Encoding::Opus { bitrate: kbps()? },
        "flac" => Encoding::Flac,
        _ => bail!("`{text}`: use mp3:KBPS, aac:KBPS, opus:KBPS or flac"),
    })
}

fn split<'a>(arg: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    arg.split_once('=')
        .with_context(|| format!("{flag} takes WHERE=ENCODING, e.g. /live.mp3=mp3:128"))
}

/// Peak resident set size of this process, kB (Linux).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut graph = DspGraph::broadcast_default();
    let mut seconds: Option<f64> = None;
    let (mut server, mut password) = ("127.0.0.1:8000".to_owned(), "hackme".to_owned());
    let (mut mounts, mut records, mut hls) = (Vec::new(), Vec::new(), Vec::new());
    let mut quiet = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--graph" => {
                let path = value("--graph")?;
                let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
                graph = DspGraph::from_yaml(&text).with_context(|| path.clone())?;
            }
            "--seconds" => seconds = Some(value("--seconds")?.parse()?),
            "--icecast" => server = value("--icecast")?,
            "--password" => password = value("--password")?,
            "--mount" => mounts.push(value("--mount")?),
            "--record" => records.push(value("--record")?),
            "--hls" => hls.push(value("--hls")?),
            "--quiet" => quiet = true,
            _ => positional.push(arg),
        }
    }
    let [list] = positional.as_slice() else {
        bail!(
            "usage: station <list> [--seconds N] [--graph dsp.yaml] [--icecast HOST:PORT] [--password PW] [--mount /m=mp3:128]… [--record DIR=flac]… [--hls DIR=aac:96]… [--quiet]"
        );
    };
    let items = list_items(&std::fs::read_to_string(list).with_context(|| list.clone())?)?;
    let (host, port) = server
        .rsplit_once(':')
        .context("--icecast takes HOST:PORT")?;
    let port: u16 = port.parse().context("--icecast takes HOST:PORT")?;

    let mut config = StationConfig::new(graph);
    for m in &mounts {
        let (mount, enc) = split(m, "--mount")?;
        let ice = IcecastConfig::new(host, port, mount, password.clone());
        config = config.output(mount, encoding(enc)?, Icecast::new(ice));
    }
    for r in &records {
        let (dir, enc) = split(r, "--record")?;
        let rec = RecordConfig::new(PathBuf::from(dir), "recording");
        config = config.output(dir, encoding(enc)?, Recorder::new(rec));
    }
    for h in &hls {
        let (dir, enc) = split(h, "--hls")?;
        config = config.output(dir, encoding(enc)?, Hls::new(HlsConfig::new(dir)));
    }
    let last_end = items
        .iter()
        .map(|i| i.start + i.cue_out.unwrap_or(f64::INFINITY) - i.cue_in)
        .fold(0.0, f64::max);
    let run_for = seconds.unwrap_or(1.0 + last_end);
    if !run_for.is_finite() {
        bail!("an item has no cue_out, so give --seconds");
    }

    let (station, events) = Station::start(config)?;
    for (id, mut item) in items.into_iter().enumerate() {
        item.start += 1.0;
        station.schedule(id as u64, item)?;
    }
    let started = Instant::now();
    let limit = Duration::from_secs_f64(run_for.max(0.0));
    let mut last = None;
    let mut cpu = Vec::new();
    while started.elapsed() < limit {
        let Ok(event) = events.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        match event {
            StationEvent::Telemetry(t) => {
                if !quiet {
                    let loudness = t
                        .loudness
                        .map(|l| format!("{:.1} LUFS-S {:.1} dBTP", l.short_term, l.true_peak))
                        .unwrap_or_default();
                    let outputs: Vec<String> = t
                        .outputs
                        .iter()
                        .map(|o| format!("{} {} {} B", o.name, o.state.as_str(), o.bytes))
                        .collect();
                    println!(
                        "{:6.1} s depth {:5} queued {:5} underruns {} dropouts {} cpu {:4.1}% {loudness} | {}",
                        t.clock,
                        t.buffer_depth,
                        t.queued,
                        t.underruns,
                        t.dropouts,
                        t.cpu_percent.unwrap_or(0.0),
                        outputs.join(", ")
                    );
                }
                cpu.extend(t.cpu_percent);
                last = Some(t);
            }
            other if !quiet => println!("{other:?}"),
            _ => {}
        }
    }
    station.stop();
    // The first second is start-up; the mean after it is the steady cost.
    let steady: Vec<f64> = cpu.iter().skip(1).copied().collect();
    let mean = steady.iter().sum::<f64>() / steady.len().max(1) as f64;
    println!(
        "summary underruns={} dropouts={} cpu_percent={mean:.2} rss_kb={}",
        last.as_ref().map_or(0, |t| t.underruns),
        last.as_ref().map_or(0, |t| t.dropouts),
        peak_rss_kb().unwrap_or(0)
    );
    Ok(())
}
