//! `grimnir`: the Grimnir Radio server and its command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use grimnir_server::config::{Config, EnvVars};
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

fn run(cli: Cli) -> Result<(), String> {
    let env = EnvVars::from_process().map_err(|e| e.to_string())?;
    let (config, warnings) =
        Config::load(cli.config.as_deref(), &env).map_err(|e| e.to_string())?;
    logging::init(&config.log).map_err(|e| e.to_string())?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        match cli.command {
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
        }
    })
}
