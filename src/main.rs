//! The `scenetok` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "scenetok", version, about = "Perception and motion prediction on Waymo-format data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a v2 dataset folder, a parquet file or a TFRecord file holds: segments,
    /// frames, components, row counts, schemas and every tolerated deviation.
    Inspect {
        /// Dataset folder, `.parquet` file or `.tfrecord` file (several allowed).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write scenetok's tiny built-in v2 dataset (every component, 3 frames) to a folder.
    Fixture {
        #[arg(long)]
        out: PathBuf,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { paths, json } => {
            let mut reports = Vec::new();
            for p in &paths {
                // Library errors already name the file and the place in it.
                let report = scenetok::io::inspect::inspect(p)?;
                if !json {
                    println!("{}", report.to_table());
                }
                reports.push(report);
            }
            if json {
                let out = if reports.len() == 1 {
                    serde_json::to_string_pretty(&reports[0])?
                } else {
                    serde_json::to_string_pretty(&reports)?
                };
                println!("{out}");
            }
        }
        Command::Fixture { out } => {
            let files = scenetok::io::fixture::write(&out)?;
            println!("wrote {} component files under {}", files.len(), out.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
