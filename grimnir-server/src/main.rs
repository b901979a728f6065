//! `grimnir`: the Grimnir Radio server and its command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use grimnir_server::config::{Config, EnvVars};
use grimnir_server::db::users::AccountRole;
use grimnir_server::{logging, server};

/// Grimnir Radio: broadcast radio automation.
///
/// Settings come from embedded defaults, then the config file, then GRIMNIR_* (or RLM_*)
/// environment variables.
#[derive(Debug, Parser)]
#[command(name = "grimnir", version)]
struct Cli {
    /// YAML config file (default: the one GRIMNIR_CONFIG or RLM_CONFIG names, else none).
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: apply pending migrations, then serve HTTP until SIGINT or SIGTERM.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage user accounts on the configured database.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Plan a station and print the timeline: from its grimnir-planner files, or with
    /// `--source database` as stored in the configured database.
    Plan(PlanArgs),
    /// Print (or write with --out) the key engines check DJs' live credentials with: the
    /// `live.key_file` of an engine's config. It is derived from `auth.jwt_secret`.
    LiveKey {
        /// Write the key to this file (created with mode 0600) instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. Without --password-stdin a password is generated and printed once.
    Create {
        /// Sign-in address.
        #[arg(long)]
        email: String,
        /// `admin` (everything, everywhere) or `user` (what roles at stations allow).
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Admin,
    User,
}

/// The first line of standard input, without its line ending.
fn password_from_stdin() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".to_owned());
    }
    Ok(password)
}

/// Where `grimnir plan` reads the station from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlanSource {
    /// grimnir-planner station and library files.
    Files,
    /// The configured database: the station's smart blocks, clocks, shows, grid and media.
    Database,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Where the station comes from.
    #[arg(long, value_enum, default_value_t = PlanSource::Files)]
    source: PlanSource,
    /// The station file (clocks, grid, smart blocks, shows), YAML or JSON; with
    /// `--source database`, the station's id.
    #[arg(long, value_name = "FILE|ID")]
    station: PathBuf,
    /// The library file (the media), YAML or JSON; needed with `--source files`.
    #[arg(long, value_name = "FILE", required_if_eq("source", "files"))]
    library: Option<PathBuf>,
    /// The first hour, station local time ("2026-11-24 06:00"); default: this hour.
    #[arg(long, value_parser = parse_local)]
    from: Option<chrono::NaiveDateTime>,
    /// How many hours to plan.
    #[arg(long, default_value_t = 48)]
    hours: u32,
    /// The seed: same files, window and seed, same timeline.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON lines (one entry each, what the engine's render mode reads).
    #[arg(long, conflicts_with = "explain")]
    json: bool,
    /// Explain why the entry on air at this local time is there.
    #[arg(long, value_parser = parse_local)]
    explain: Option<chrono::NaiveDateTime>,
}

fn parse_local(text: &str) -> Result<chrono::NaiveDateTime, String> {
    [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .ok_or_else(|| format!("`{text}` is not a local time like \"2026-11-24 06:00\""))
}

/// The plan options of `grimnir plan`'s arguments.
fn plan_options(args: &PlanArgs) -> grimnir_server::plan::PlanOptions {
    use grimnir_server::plan::Output;
    let output = match (args.json, args.explain) {
        (_, Some(at)) => Output::Explain(at),
        (true, None) => Output::JsonLines,
        (false, None) => Output::Table,
    };
    grimnir_server::plan::PlanOptions {
        from: args.from,
        hours: args.hours,
        seed: args.seed,
        output,
    }
}

/// `grimnir plan` over files: needs no database, so it runs before the configuration is loaded.
fn plan(args: PlanArgs) -> Result<(), String> {
    let library = args
        .library
        .as_deref()
        .ok_or("--library is needed with --source files")?;
    let plan = grimnir_server::plan::plan_files(&args.station, library, &plan_options(&args))
        .map_err(|e| e.to_string())?;
    print_plan(&plan)
}

/// `grimnir plan --source database`: the station as stored in the configured database.
async fn plan_database(config: &Config, args: PlanArgs) -> Result<(), String> {
    let station = args
        .station
        .to_str()
        .and_then(|s| s.parse::<grimnir_server::db::stations::StationId>().ok())
        .ok_or_else(|| {
            format!(
                "--station {}: with --source database, the station's id (a UUID)",
                args.station.display()
            )
        })?;
    let db = server::open_storage(config)
        .await
        .map_err(|e| e.to_string())?;
    let plan = grimnir_server::plan::plan_station(&db, station, &plan_options(&args))
        .await
        .map_err(|e| e.to_string())?;
    print_plan(&plan)
}

/// Prints a plan: the output on standard output, the count and diagnostics on standard error.
fn print_plan(plan: &grimnir_server::plan::Plan) -> Result<(), String> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(plan.output.as_bytes()) {
        // `grimnir plan | head` closes the pipe early: the reader's choice, not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.to_string()),
        _ => {}
    }
    eprintln!(
        "{} entries; {} warnings or errors",
        plan.entries,
        plan.diagnostics.len()
    );
    for d in &plan.diagnostics {
        eprintln!("  {d}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("grimnir: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `grimnir live-key`.
fn live_key(config: &Config, out: Option<&std::path::Path>) -> Result<(), String> {
    let secret = config.auth.jwt_secret.as_ref().ok_or(
        "auth.jwt_secret (GRIMNIR_JWT_SECRET) is not set: without it the server signs with a \
         random secret that changes at every start, and engines could not keep a live key",
    )?;
    let key = secret.live_key();
    match out {
        None => println!("{key}"),
        Some(path) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            writeln!(file, "{key}").map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote the live key to {}", path.display());
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    let command = match cli.command {
        Command::Plan(args) if args.source == PlanSource::Files => return plan(args),
        other => other,
    };
    let env = EnvVars::from_process().map_err(|e| e.to_string())?;
    let (config, warnings) =
        Config::load(cli.config.as_deref(), &env).map_err(|e| e.to_string())?;
    logging::init(&config.log).map_err(|e| e.to_string())?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    if let Command::LiveKey { out } = command {
        return live_key(&config, out.as_deref());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        match command {
            Command::Plan(args) => plan_database(&config, args).await,
            Command::LiveKey { .. } => Ok(()),
            Command::Serve => server::serve(&config, server::shutdown_signal())
                .await
                .map_err(|e| e.to_string()),
            Command::Migrate => {
                let applied = server::migrate(&config).await.map_err(|e| e.to_string())?;
                if applied.is_empty() {
                    println!("{}: schema is up to date", config.database.url);
                } else {
                    println!(
                        "{}: applied {} migration(s): {}",
                        config.database.url,
                        applied.len(),
                        applied.join(", ")
                    );
                }
                Ok(())
            }
            Command::User {
                command:
                    UserCommand::Create {
                        email,
                        role,
                        password_stdin,
                    },
            } => {
                let password = if password_stdin {
                    Some(password_from_stdin()?)
                } else {
                    None
                };
                let role = match role {
                    Role::Admin => AccountRole::Admin,
                    Role::User => AccountRole::User,
                };
                let created = server::create_user(&config, &email, role, password)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "created {} {} ({})",
                    created.user.role, created.user.email, created.user.id
                );
                if let Some(password) = created.generated_password {
                    println!("password: {password}");
                }
                Ok(())
            }
        }
    })
}
