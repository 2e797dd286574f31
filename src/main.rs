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
    /// Generate segments of the synthetic world as a Waymo v2 dataset (plus the map).
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Sizes and counts to start from: `tiny` (tests, demo) or `full` (Waymo's).
        #[arg(long, value_enum, default_value = "full")]
        preset: scenetok::sim::generate::Preset,
        #[arg(long)]
        segments: Option<usize>,
        /// Frames per segment at 10 Hz (Waymo: 199).
        #[arg(long)]
        frames: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
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
        Command::Generate { out, preset, segments, frames, seed } => {
            let mut cfg = scenetok::sim::generate::GenerateConfig::preset(preset);
            cfg.seed = seed;
            cfg.segments = segments.unwrap_or(cfg.segments);
            cfg.frames = frames.unwrap_or(cfg.frames);
            anyhow::ensure!(cfg.segments > 0 && cfg.frames > 0, "--segments and --frames must be at least 1");
            let bar = indicatif::ProgressBar::new((cfg.segments * cfg.frames) as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:40}] {pos}/{len} frames ({per_sec}, eta {eta})",
                )?
                .progress_chars("=> "),
            );
            bar.set_prefix("generate");
            let manifest = scenetok::sim::generate::generate(&out, &cfg, |_, _| bar.inc(1))?;
            bar.finish_and_clear();
            println!(
                "wrote {} segment(s), {} files under {}",
                manifest.segments.len(),
                manifest.files.len(),
                out.display()
            );
            let total: usize = manifest.trajectory_types.values().sum();
            println!("trajectory types (WOMD classification, every agent over 9.1 s windows):");
            for (name, n) in &manifest.trajectory_types {
                println!("  {name:<15} {n:>6}  {:5.1}%", 100.0 * *n as f64 / total.max(1) as f64);
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
