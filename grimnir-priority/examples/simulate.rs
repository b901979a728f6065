//! Plays a scenario file through the executor and prints the air log, one JSON object per line.
//!
//! ```sh
//! cargo run -p grimnir-priority --example simulate -- \
//!     grimnir-priority/examples/scenarios/emergency-and-live.yaml
//! ```
//!
//! The scenario layout is described in the crate README.

use std::io::Write as _;

use anyhow::Context as _;
use grimnir_priority::{Format, Scenario, simulate};

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .context("usage: simulate <scenario.yaml|scenario.json>")?;
    let path = std::path::PathBuf::from(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let scenario = Scenario::from_str_as(&text, Format::of_path(&path))
        .with_context(|| format!("in {}", path.display()))?;
    let log = simulate(&scenario)?;
    let mut out = std::io::stdout().lock();
    out.write_all(log.to_json_lines()?.as_bytes())?;
    Ok(())
}
