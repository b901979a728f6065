//! Plans a station from its files and prints the timeline.
//!
//! ```text
//! cargo run -p grimnir-planner --features yaml,json --example plan -- \
//!     <station file> <library file> [--from "2026-11-24 00:00"] [--hours 48] [--seed N]
//!     [--json] [--explain "2026-11-24 09:15"]
//! ```
//!
//! Files may be YAML or JSON (by extension). `--from` is the station's local time (default: the
//! start of the current local hour). The default output is a table; `--json` prints one JSON
//! object per entry instead (start, end, media id, artist, title, slot kind, tier, provenance);
//! `--explain T` prints why the entry on air at local time T is there.
//! Diagnostics go to standard error.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::{NaiveDateTime, TimeZone, Timelike, Utc};
use grimnir_planner::{Format, Library, PlanRequest, Planner, Severity, StationConfig, Window};

struct Args {
    station: PathBuf,
    library: PathBuf,
    from: Option<NaiveDateTime>,
    hours: u32,
    seed: u64,
    json: bool,
    explain: Option<NaiveDateTime>,
}

fn parse_local(text: &str) -> anyhow::Result<NaiveDateTime> {
    for format in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(t);
        }
    }
    bail!("`{text}` is not a local time like \"2026-11-24 06:00\"")
}

fn parse_args() -> anyhow::Result<Args> {
    let mut positional = Vec::new();
    let (mut from, mut hours, mut seed, mut json, mut explain) = (None, 48, 1, false, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--from" => from = Some(parse_local(&value("--from")?)?),
            "--hours" => {
                hours = value("--hours")?
                    .parse()
                    .context("--hours takes a whole number")?
            }
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .context("--seed takes a whole number")?
            }
            "--explain" => explain = Some(parse_local(&value("--explain")?)?),
            "--json" => json = true,
            "-h" | "--help" => {
                println!(
                    "usage: plan <station file> <library file> [--from \"YYYY-MM-DD HH:MM\"] \
                     [--hours N] [--seed N] [--json] [--explain \"YYYY-MM-DD HH:MM\"]"
                );
                std::process::exit(0);
            }
            other if other.starts_with("--") => bail!("unknown option {other} (try --help)"),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [station, library]: [PathBuf; 2] = positional
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected a station file and a library file (try --help)"))?;
    Ok(Args {
        station,
        library,
        from,
        hours,
        seed,
        json,
        explain,
    })
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    match run() {
        // `plan ... | head` closes the pipe early: that is the reader's choice, not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let config =
        StationConfig::from_str_as(&read(&args.station)?, Format::from_path(&args.station))
            .with_context(|| format!("in {}", args.station.display()))?;
    let library = Library::from_str_as(&read(&args.library)?, Format::from_path(&args.library))
        .with_context(|| format!("in {}", args.library.display()))?;
    let tz = config.station.timezone;
    let planner =
        Planner::new(config, library).context("the station and library do not fit together")?;

    let from_local = match args.from {
        Some(t) => t,
        None => {
            let now = chrono::DateTime::<Utc>::from(std::time::SystemTime::now())
                .with_timezone(&tz)
                .naive_local();
            now.with_minute(0)
                .and_then(|t| t.with_second(0))
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(now)
        }
    };
    let start = tz
        .from_local_datetime(&from_local)
        .earliest()
        .with_context(|| format!("{from_local} does not exist in {tz} (skipped by a DST change)"))?
        .with_timezone(&Utc);
    let window = Window::hours(start, args.hours)?;
    let (timeline, diagnostics) = planner.plan(PlanRequest::new(window, args.seed));
    let mut out = std::io::stdout().lock();

    if let Some(at) = args.explain {
        let t = tz
            .from_local_datetime(&at)
            .earliest()
            .with_context(|| format!("{at} does not exist in {tz}"))?
            .with_timezone(&Utc);
        match timeline.what_plays_at(t) {
            Some(entry) => out.write_all(timeline.explain(entry).as_bytes())?,
            None => bail!("{at} is outside the planned window"),
        }
        return Ok(());
    }

    if args.json {
        out.write_all(timeline.to_json_lines().as_bytes())?;
    } else {
        let name = planner.config().station.name.as_str();
        out.write_all(timeline.table(tz, name, args.hours).as_bytes())?;
    }

    let counts = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    eprintln!(
        "{} entries; diagnostics: {} error, {} warning, {} info",
        timeline.entries.len(),
        counts(Severity::Error),
        counts(Severity::Warning),
        counts(Severity::Info)
    );
    for d in diagnostics
        .iter()
        .filter(|d| d.severity >= Severity::Warning)
    {
        eprintln!("  {d}");
    }
    Ok(())
}
