//! The command layer: argument parsing, progress bars and printing, one file per
//! subcommand. The library never depends on it.

// Library errors carry their full location (see src/lib.rs); they are the cold path.
#![allow(clippy::result_large_err)]

mod bench;
mod compare;
mod dataset;
mod demo;
mod eval;
mod features;
mod fixture;
mod generate;
mod inspect;
mod merge;
mod replay;
mod report;
mod search;
mod serve;
mod sparse;
mod tokens;
mod tune;
mod viz;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use scenetok::backend::{Device, DeviceSpec};
use scenetok::locate::DataDir;

#[derive(Parser)]
#[command(name = "scenetok", version, about = "Perception and motion prediction on Waymo-format data")]
pub struct Cli {
    /// The data folder with models/ and weights/ (default: $SCENETOK_DATA, else next to the
    /// executable, else the source tree).
    #[arg(long, global = true, value_name = "DIR")]
    models: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a v2 dataset folder, a parquet file or a TFRecord file holds: segments,
    /// frames, components, row counts, schemas and every tolerated deviation.
    Inspect(inspect::Args),
    /// Generate segments of the synthetic world as a Waymo v2 dataset (plus the map).
    Generate(generate::Args),
    /// Run a motion model over scenarios (a v2 dataset folder or WOMD TFRecords) and compute
    /// the WOMD challenge metrics: `OUT/metrics.json`, `OUT/predictions.parquet`, the official
    /// `OUT/submission.binproto`, and the report `OUT/report.html` + `OUT/report.md`; or
    /// evaluate the LiDAR encoder's segmentation (`--task lidar-seg`).
    Eval(eval::Args),
    /// Join shards' partial motion evaluations (`eval --shard I/N --partial FILE`) into the
    /// run folder one process would have written: the same metrics, bit for bit.
    Merge(merge::Args),
    /// Sparse-conv tools: export LiDAR training data for tools/train/.
    Sparse {
        #[command(subcommand)]
        which: sparse::Command,
    },
    /// Training data for the learned models (`dataset motion`: the motion transformer's).
    Dataset {
        #[command(subcommand)]
        which: dataset::Command,
    },
    /// Search model configurations on validation data (`search sparsevit`: pruning ratios
    /// under latency budgets) and store them per model and device.
    Search {
        #[command(subcommand)]
        which: search::Command,
    },
    /// Autotune the sparse-conv dataflows of a network on real frames and store the choice.
    Tune(tune::Args),
    /// The main job: generate a small synthetic world (unless OUT/world exists), evaluate every
    /// motion baseline on it and on the real WOMD sample when present, and say where it all is.
    Demo(demo::Args),
    /// Two motion models on the same scenarios: every WOMD metric with a 95% bootstrap
    /// interval over scenarios, and the interval of their difference (paired).
    Compare(compare::Args),
    /// Redraw a run's report from its folder, or compare two runs side by side (B against A).
    Report(report::Args),
    /// Benchmarks against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        which: bench::Command,
    },
    /// Image features of a v2 dataset or a v1 TFRecord: per camera (pooled vector, top-5
    /// classes, optionally the feature map) and per LiDAR point (the chosen camera, pixel and
    /// sampled feature), as parquet: OUT (points) and OUT's stem + `.cameras.parquet`.
    Features(features::Args),
    /// Scene elements of a dataset's frames (agents, open-set objects, ground tiles; MoST
    /// tokens before their learned projection), with each point's element, as parquet: OUT
    /// (elements) and OUT's stem + `.points.parquet`.
    Tokens(tokens::Args),
    /// Show a dataset, a v1 Frame or WOMD Scenario TFRecord, and motion predictions in rerun.
    Viz(viz::Args),
    /// The streaming server: v2 sensor batches in over Arrow Flight (DoPut), the pipeline on
    /// every complete frame, results out (DoGet, parquet); `stats` and `components` actions.
    Serve(serve::Args),
    /// Send a v2 dataset to a streaming server at the pace of its timestamps (or `--rate max`).
    Replay(replay::Args),
    /// Write scenetok's tiny built-in v2 dataset (every component, 3 frames) to a folder.
    Fixture(fixture::Args),
}

/// What every subcommand may need besides its own arguments.
pub struct Context {
    models: Option<PathBuf>,
}

impl Context {
    /// The data folder (models and weights), located as [`scenetok::locate`] says.
    pub fn data(&self) -> Result<DataDir> {
        Ok(DataDir::locate(self.models.as_deref())?)
    }
}

/// `--device`, on every command that computes.
#[derive(clap::Args, Clone, Copy)]
pub struct DeviceArg {
    /// Where to compute: cpu, cuda, cuda:N, or auto (the first GPU when one works, else the
    /// CPU).
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    device: DeviceSpec,
}

impl DeviceArg {
    /// Opens the device; asking for a GPU that is not there is an error naming what is missing.
    pub fn open(&self) -> Result<Device> {
        Ok(Device::open(self.device)?)
    }
}

/// Parses the command line and runs the subcommand, writing its report to stdout.
pub fn run(cli: Cli) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let ctx = Context { models: cli.models };
    match cli.command {
        Command::Inspect(a) => inspect::run(a, &mut stdout),
        Command::Generate(a) => generate::run(a, &mut stdout),
        Command::Eval(a) => eval::run(a, &ctx, &mut stdout),
        Command::Merge(a) => merge::run(a, &mut stdout),
        Command::Sparse { which } => sparse::run(which, &mut stdout),
        Command::Dataset { which } => dataset::run(which, &ctx, &mut stdout),
        Command::Tune(a) => tune::run(a, &mut stdout),
        Command::Search { which } => search::run(which, &ctx, &mut stdout),
        Command::Demo(a) => demo::run(a, &ctx, &mut stdout),
        Command::Report(a) => report::run(a, &mut stdout),
        Command::Compare(a) => compare::run(a, &ctx, &mut stdout),
        Command::Bench { which } => bench::run(which, &ctx, &mut stdout),
        Command::Features(a) => features::run(a, &ctx, &mut stdout),
        Command::Tokens(a) => tokens::run(a, &ctx, &mut stdout),
        Command::Viz(a) => viz::run(a, &ctx, &mut stdout),
        Command::Fixture(a) => fixture::run(a, &mut stdout),
        Command::Serve(a) => serve::run(a, &ctx, &mut stdout),
        Command::Replay(a) => replay::run(a, &mut stdout),
    }
}

/// A progress bar over `len` items, `what` after the counts.
pub fn progress(prefix: &str, len: u64, what: &str) -> Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})"
        ))?
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    Ok(bar)
}
