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
use grimnir_planner::{
    Entry, Format, Library, PlanRequest, Planner, Role, Severity, Source, StationConfig, Tier,
    Window,
};

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
        for entry in &timeline.entries {
            writeln!(out, "{}", serde_json::to_string(&json_line(entry))?)?;
        }
    } else {
        let name = planner.config().station.name.as_str();
        out.write_all(table(&timeline.entries, tz, name, args.hours).as_bytes())?;
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

/// The flat JSON shape of one entry, for scripts and the engine's render mode.
fn json_line(e: &Entry) -> serde_json::Value {
    let (media, artist, title, cue_in, cue_out) = match &e.source {
        Source::Media {
            id,
            title,
            artists,
            cue_in,
            cue_out,
        } => (
            Some(id.as_str()),
            Some(artists.join(", ")),
            Some(title.clone()),
            Some(cue_in.as_secs_f64()),
            Some(cue_out.as_secs_f64()),
        ),
        _ => (None, None, None, None, None),
    };
    serde_json::json!({
        "start": e.start,
        "end": e.end,
        "media_id": media,
        "artist": artist,
        "title": title,
        "cue_in": cue_in,
        "cue_out": cue_out,
        "source": e.source,
        "slot_kind": e.provenance.kind,
        "tier": e.tier.number(),
        "transition": e.transition,
        "provenance": e.provenance,
    })
}

fn table(entries: &[Entry], tz: chrono_tz::Tz, name: &str, hours: u32) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{name}: {hours} hours from {}",
        entries.first().map_or_else(String::new, |e| {
            e.start
                .with_timezone(&tz)
                .format("%a %Y-%m-%d %H:%M %Z")
                .to_string()
        })
    );
    let _ = writeln!(
        s,
        "{:<20} {:>8}  {:<4} {:<13} {:<22} what",
        "local start", "length", "tier", "kind", "from"
    );
    let mut day = None;
    for e in entries {
        let local = e.start.with_timezone(&tz);
        if day != Some(local.date_naive()) {
            day = Some(local.date_naive());
            let _ = writeln!(s, "── {} ──", local.format("%A %Y-%m-%d"));
        }
        let from = match (&e.provenance.clock, &e.provenance.show, e.provenance.role) {
            (_, _, Role::HourFill) => "filler (no clock)".to_owned(),
            (Some(c), _, Role::RunFill) => format!("{c} / filler"),
            (Some(c), ..) => format!("{c} #{}", e.provenance.slot.map_or(0, |s| s + 1)),
            (_, Some(s), _) => format!("show {s}"),
            _ => String::new(),
        };
        let what = match &e.source {
            Source::Media { title, artists, .. } => format!("{} – {title}", artists.join(", ")),
            Source::Webstream { id } => format!("[webstream {id}]"),
            Source::Live { name } => format!("[LIVE] {name}"),
            _ => "[fallback audio]".to_owned(),
        };
        let mut marks = String::new();
        if e.provenance.trimmed {
            marks.push_str(" ✂");
        }
        if !e.provenance.relaxed.is_empty() {
            marks.push_str(" ≈");
        }
        let tier = match e.tier {
            Tier::LiveScheduled => "2",
            Tier::Fallback => "4!",
            _ => "3",
        };
        let _ = writeln!(
            s,
            "{:<20} {:>8}  {:<4} {:<13} {:<22} {what}{marks}",
            local.format("%a %H:%M:%S%.3f"),
            e.length().to_string(),
            tier,
            e.provenance.kind,
            from,
        );
    }
    let _ = writeln!(
        s,
        "✂ cut at a hard boundary with a fade   ≈ a rule was loosened to fill the air (--explain shows which)"
    );
    s
}
