//! `grimnir-engine`: one station's media engine as its own process, controlled over gRPC.
//!
//! ```text
//! grimnir-engine --config wgmr-engine.yaml
//! grimnir-engine --listen unix:/run/grimnir/wgmr.sock --record /var/lib/grimnir/archive=flac \
//!     --fallback /media/fallback/loop.mp3
//! ```
//!
//! Flags override the file. It prints `live source endpoint on ADDRESS` (when the file has a
//! `live` section) and `listening on ADDRESS` on standard output once it serves, and stops
//! cleanly (what is mixed is written) on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use grimnir_engine::input::icecast::SourceListener;
use grimnir_engine::process::config::{EngineConfig, OutputFile};
use grimnir_engine::process::server::{Bound, EngineServer};

/// One station's media engine, controlled over gRPC.
#[derive(Debug, Parser)]
#[command(name = "grimnir-engine", version)]
struct Args {
    /// The configuration file (YAML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to listen: unix:PATH or IP:PORT (a port of 0 lets the system choose).
    #[arg(long)]
    listen: Option<String>,
    /// A file holding the shared token every call must carry.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The DSP graph file (YAML, or JSON for .json).
    #[arg(long)]
    graph: Option<PathBuf>,
    /// What plays when nothing else is left.
    #[arg(long)]
    fallback: Option<PathBuf>,
    /// Sample rate, Hz.
    #[arg(long)]
    rate: Option<u32>,
    /// A recording output: DIR=ENCODING (flac, mp3:128, aac:128, opus:96). Repeatable.
    #[arg(long = "record", value_name = "DIR=ENCODING")]
    records: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => EngineConfig::read(path)?,
        None => {
            let Some(listen) = &args.listen else {
                bail!("give --config FILE or --listen ADDRESS");
            };
            EngineConfig::parse(&format!("listen: {listen:?}\n"), "--listen")?
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.token_file.is_some() {
        config.token_file = args.token_file;
    }
    if args.graph.is_some() {
        config.graph = args.graph;
    }
    if args.fallback.is_some() {
        config.fallback = args.fallback;
    }
    if args.rate.is_some() {
        config.rate = args.rate;
    }
    for (k, record) in args.records.iter().enumerate() {
        let (dir, encoding) = record
            .split_once('=')
            .with_context(|| format!("--record {record}: give DIR=ENCODING"))?;
        config.outputs.push(OutputFile::record(
            format!("record-{k}"),
            encoding,
            PathBuf::from(dir),
        ));
    }
    let loaded = config.load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Bind first: an address in use is refused before anything goes on air.
    let bound = runtime.block_on(async { Bound::bind(&loaded.listen) })?;
    // The live endpoint binds before anything goes on air, too.
    let live = match loaded.live {
        Some(live) => {
            let mounts = live.credentials.mounts().to_vec();
            let listener =
                SourceListener::bind(live.listen, live.config, Arc::new(live.credentials))?;
            Some((listener, mounts))
        }
        None => None,
    };
    let mut server = EngineServer::start(loaded.station, loaded.fallback)?;
    if let Some((listener, mounts)) = live {
        println!("live source endpoint on {}", listener.local_addr());
        server.attach_live(listener, mounts)?;
    }
    println!("listening on {}", bound.listen());
    let served = runtime.block_on(server.serve_with(
        bound,
        loaded.token.as_deref(),
        loaded.tls.as_ref(),
        shutdown_signal(),
    ));
    server.stop();
    // The socket is ours (the bind succeeded): leave no stale file behind.
    if let grimnir_engine::process::server::Listen::Unix(path) = &loaded.listen {
        let _ = std::fs::remove_file(path);
    }
    served?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
