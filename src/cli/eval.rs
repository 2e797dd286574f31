//! `scenetok eval`: motion prediction (WOMD metrics, outputs, report) or the LiDAR encoder's
//! segmentation.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use scenetok::eval::lidar_seg;
use scenetok::eval::runner::{check_run_folder, evaluate_with_progress, write_run};
use scenetok::models::lidar_seg::{LidarSegModel, WEIGHTS_FILE};
use scenetok::models::motion::Baseline;
use scenetok::pipeline::{FrameSelection, Segments, Source};
use scenetok::sparse::layers::RunCtx;
use scenetok::sparse::tune::TuneRecord;

use super::{Context, DeviceArg};

/// Where `scenetok tune` stores its choices and `eval` looks for them.
pub const TUNING_DIR: &str = "runs/tuning";

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    data: PathBuf,
    /// What to evaluate: motion prediction, or LiDAR segmentation (per-class IoU, mIoU
    /// of the sparse-conv LiDAR encoder on the TOP lidar's labelled points).
    #[arg(long, value_enum, default_value = "motion")]
    task: Task,
    #[arg(long, value_enum, default_value = "ctra")]
    model: Baseline,
    /// Output folder (required for motion; for lidar-seg, metrics.json goes there).
    #[arg(long)]
    out: Option<PathBuf>,
    /// For v2 datasets: a 9.1 s scenario window every STRIDE frames.
    #[arg(long, default_value_t = 20)]
    stride: usize,
    /// lidar-seg: the weights (default: the data folder's weights/lidar_seg_minkunet.safetensors).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// lidar-seg: at most this many frames per segment.
    #[arg(long)]
    max_frames: Option<usize>,
    /// Motion on a v2 dataset: frames without a vehicle_pose use the identity pose (with a
    /// warning) instead of stopping with an error.
    #[arg(long)]
    allow_missing: bool,
    #[command(flatten)]
    device: DeviceArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Task {
    Motion,
    LidarSeg,
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    match args.task {
        Task::Motion => motion(args, stdout),
        Task::LidarSeg => {
            let weights = match args.weights {
                Some(w) => w,
                None => ctx.data()?.weights(WEIGHTS_FILE),
            };
            lidar_seg(&args.data, &weights, args.out, args.max_frames, &args.device, stdout)
        }
    }
}

fn motion(args: Args, stdout: &mut impl Write) -> Result<()> {
    let data = &args.data;
    let out = args.out.ok_or_else(|| anyhow::anyhow!("eval --task motion needs --out DIR"))?;
    check_run_folder(&out, &[data])?;
    // The baselines run on the CPU; the device is checked so `--device` means the same on
    // every command.
    args.device.open()?;
    let started = std::time::Instant::now();
    let scenarios =
        Source::open(data)?.allow_missing_pose(args.allow_missing).scenarios(&Segments::All, args.stride)?;
    let read_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(!scenarios.is_empty(), "{}: no scenario of 91 frames with agents to predict", data.display());
    let bar = indicatif::ProgressBar::new(scenarios.len() as u64);
    let predictor = args.model.predictor();
    let report = evaluate_with_progress(&scenarios, predictor.as_ref(), &data.display().to_string(), || bar.inc(1))?;
    bar.finish_and_clear();
    let path = write_run(&out, &report)?;
    write!(stdout, "{}", report.table())?;
    let stage_s = |name: &str| {
        report.latency.iter().find(|l| l.stage == name).map_or(0.0, |l| l.stats.mean_ms * l.stats.count as f64 / 1e3)
    };
    writeln!(
        stdout,
        "time: reading {read_s:.3} s, model {:.3} s, metrics {:.3} s, total {:.3} s",
        stage_s("model"),
        stage_s("metrics"),
        started.elapsed().as_secs_f64()
    )?;
    writeln!(
        stdout,
        "wrote {} (metrics), report.html, report.md, predictions.parquet and submission.binproto beside it",
        path.display()
    )?;
    Ok(())
}

/// The tuning label of a voxel size.
pub fn scale_label(voxel: f32) -> String {
    format!("voxel{voxel}")
}

fn lidar_seg(
    data: &Path,
    weights: &Path,
    out: Option<PathBuf>,
    max_frames: Option<usize>,
    device: &DeviceArg,
    stdout: &mut impl Write,
) -> Result<()> {
    if let Some(out) = &out {
        scenetok::io::output::refuse_input(&out.join("metrics.json"), &[data])?;
    }
    // The input first: a bad one is reported before the model loads.
    let source = Source::open(data)?;
    let device = device.open()?;
    let model = LidarSegModel::load(weights, &device)?;
    // A stored `scenetok tune` result for this network, device and scale is reused.
    let tuned = TuneRecord::load(
        Path::new(TUNING_DIR),
        &format!("minkunet-w{}", model.net.config.width),
        &device.backend().tuning_key(),
        &scale_label(model.voxel_size),
    )?;
    let mut run = RunCtx::default();
    if let Some(t) = &tuned {
        run.choices = t.choices();
        writeln!(stdout, "using the dataflows tuned for {} on {}", t.network, t.device)?;
    }
    let report = lidar_seg::evaluate(&source, &FrameSelection::all().first(max_frames), model, run)?;
    write!(stdout, "{}", report.table())?;
    if let Some(out) = out {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let p = out.join("metrics.json");
        scenetok::io::output::write_file(&p, serde_json::to_string_pretty(&report)?.as_bytes())?;
        writeln!(stdout, "wrote {}", p.display())?;
    }
    Ok(())
}
