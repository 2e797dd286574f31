//! `scenetok bench …`: benchmarks against a baseline measured in the same run.

mod sparse;
mod stream;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::features::ImageModelArgs;
use super::{Context, DeviceArg};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The sparse-conv engine: MinkUNet per dataflow and tuned, per-layer GFLOP/s against
    /// SGEMM, and spconv's CPU build on the same voxels when available.
    Sparse(sparse::Args),
    /// Logging one full-size frame to rerun (target ≤ 50 ms) vs reading it; a long segment
    /// recorded frame by frame with the memory watched.
    Viz {
        /// A dataset whose first frame is logged (default: one generated full-size frame).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where generated data and recordings go (kept for reruns).
        #[arg(long, default_value = "runs/bench-viz")]
        work: PathBuf,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Frames of the tiny-preset segment recorded for the streaming check (0 = skip).
        #[arg(long, default_value_t = 200)]
        stream_frames: usize,
    },
    /// Reading lidar columns (vs pyarrow) and range image → points (vs NumPy in float64 and
    /// float32, and Waymo's own TensorFlow conversion when installed) on a dataset.
    Io {
        #[arg(long)]
        data: PathBuf,
        /// Python with pyarrow and numpy for the baselines (default: the setup script's venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Python with waymo-open-dataset-tf-2-12-0 for Waymo's conversion (default:
        /// .venv-waymo/bin/python when tools/bench/setup-waymo.sh has created it).
        #[arg(long)]
        waymo_python: Option<PathBuf>,
        /// Skip Waymo's TensorFlow baseline.
        #[arg(long)]
        no_waymo: bool,
        /// Skip every baseline.
        #[arg(long)]
        no_baseline: bool,
        /// Runs, each ours then the baselines; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// The CPU GEMM every model calls, against NumPy's OpenBLAS in the same run, on squares
    /// and on the sparse engine's shapes (float32, all threads on both sides).
    Gemm {
        /// Python with NumPy for the baseline (default: the setup script's venv).
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long)]
        no_baseline: bool,
        /// Timed products per side and shape, after one warm-up; the best counts.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Skip the 4096² square.
        #[arg(long)]
        quick: bool,
    },
    /// The motion transformer on one generated scene (8 agents to predict) against the same
    /// weights in ONNX Runtime and PyTorch (Python, same threads), with GFLOP/s against this
    /// machine's SGEMM.
    Motion {
        /// d256 (the published size) or d128 (the shipped one); seeded random weights.
        #[arg(long, default_value = "d256")]
        config: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Timed passes per side after two warm-ups; medians are reported.
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// Python with torch and onnxruntime (default: .venv-train/bin/python, from
        /// tools/setup-train.sh).
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long)]
        no_baseline: bool,
        /// Where the inputs, weights and the ONNX export go.
        #[arg(long, default_value = "runs/bench-motion")]
        work: PathBuf,
    },
    /// Full-size frames through points, the LiDAR encoder, the image model and the scene
    /// tokens, each stage timed (goal: token extraction ≤ 30 ms per frame).
    Tokens {
        /// A dataset (default: generated full-size frames under --work).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "runs/bench-tokens")]
        work: PathBuf,
        /// Timed frames, after one warm-up frame.
        #[arg(long, default_value_t = 5)]
        frames: usize,
        #[command(flatten)]
        model: ImageModelArgs,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// SparseRefine (the dense camera-segmentation model at a low scale, the entropy selector,
    /// the sparse refiner) against the dense model at full resolution, on the same images.
    Refine {
        /// A v2 dataset with camera images.
        #[arg(long)]
        data: PathBuf,
        /// Timed frames (all their cameras), after one warm-up frame.
        #[arg(long, default_value_t = 4)]
        frames: usize,
        /// Interleaved rounds per frame; each method's fastest counts.
        #[arg(long, default_value_t = 2)]
        reps: usize,
        #[arg(long, value_delimiter = ',', default_value = "0.5,0.25")]
        scales: Vec<f64>,
        /// The dense model's config (default: the data folder's models/camera_seg_lite0.toml).
        #[arg(long)]
        seg_model: Option<PathBuf>,
        /// Folder of camera_refiner_x<scale>.safetensors (default: the data folder's weights/).
        #[arg(long)]
        refiners: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// The streaming server: a full-size segment replayed (looped) at 10 Hz into `scenetok
    /// serve` for `--duration` seconds: frames processed / dropped / rejected, latency per
    /// stage, the server's memory over the run and its CPU use. Server options after `--`.
    Stream(stream::Args),
    /// The SparseViT backbone at pruning ratios against its dense self on one image (random
    /// weights of --config unless --weights), and against ONNX Runtime on the dense backbone
    /// (--onnx, from tools/train/export_swin_onnx.py).
    Sparsevit {
        /// swin-t or small.
        #[arg(long, default_value = "swin-t")]
        config: String,
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Input size WIDTHxHEIGHT (SparseViT's latency is measured at 672x672).
        #[arg(long, default_value = "672x672")]
        size: String,
        /// Ratio sets NAME=RATIOS separated by `;` (RATIOS as blocks by commas, stages by
        /// slashes); default: the repository's Swin-T cfg1-cfg3 (for Swin-T depths; none otherwise).
        #[arg(long)]
        ratios: Option<String>,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// The dense backbone exported to ONNX for the same size.
        #[arg(long)]
        onnx: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArg,
    },
    /// Motion-metric throughput (scenarios/s) on the scenarios of a dataset or TFRecord.
    Metrics {
        #[arg(long)]
        data: PathBuf,
        /// Evaluate the scenarios this many times (more stable timings).
        #[arg(long, default_value_t = 20)]
        repeat: usize,
    },
    /// The image encoder on a frame's five full-size cameras (decode, preprocess, session,
    /// per-point sampling) vs Python onnxruntime on the same batch.
    Image {
        /// A v1 `.tfrecord` or v2 dataset folder (default: the real pvps sample frame).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        model: ImageModelArgs,
        /// Timed runs per side (after a warm-up run).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Python with onnxruntime for the baseline (default: the setup script's venv).
        #[arg(long)]
        python: Option<PathBuf>,
        #[arg(long)]
        no_baseline: bool,
        /// Give the Python baseline huge pages too (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`):
        /// the two sides on an equal footing.
        #[arg(long)]
        baseline_huge_pages: bool,
        /// How Python calls onnxruntime: `bound` (I/O bound once with pre-allocated outputs,
        /// as ours), `unbound` (plain `InferenceSession.run`), or `both` (two workers).
        #[arg(long, value_enum, default_value_t = BindingArg::Bound)]
        baseline_binding: BindingArg,
        #[command(flatten)]
        device: DeviceArg,
    },
}

/// `--baseline-binding` of `bench image`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BindingArg {
    Bound,
    Unbound,
    Both,
}

impl From<BindingArg> for scenetok::bench::image::BaselineBinding {
    fn from(b: BindingArg) -> Self {
        use scenetok::bench::image::BaselineBinding as B;
        match b {
            BindingArg::Bound => B::Bound,
            BindingArg::Unbound => B::Unbound,
            BindingArg::Both => B::Both,
        }
    }
}

/// A file of the source tree that a baseline needs (the Python scripts and venvs live
/// there, not beside an installed binary).
pub fn tree_file(relative: &str) -> Result<PathBuf> {
    scenetok::locate::in_source_tree(relative).ok_or_else(|| {
        anyhow::anyhow!(
            "the baselines need scenetok's source tree for {relative}: run from a checkout (or pass the \
             baseline's path, or --no-baseline)"
        )
    })
}

pub fn run(which: Command, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    match which {
        Command::Sparse(args) => sparse::run(args, stdout),
        Command::Stream(args) => stream::run(args, stdout),
        Command::Gemm { python, no_baseline, reps, quick } => {
            use scenetok::bench::gemm::{Baseline, GemmOptions, shapes};
            let baseline = if no_baseline {
                None
            } else {
                let python = match python {
                    Some(p) => p,
                    None => tree_file(".venv/bin/python")?,
                };
                Some(Baseline { python, script: tree_file("tools/bench/gemm_baseline.py")? })
            };
            let r = scenetok::bench::gemm::run(&GemmOptions { baseline, reps, shapes: shapes(quick) })?;
            write!(stdout, "{}", r.report())?;
            Ok(())
        }
        Command::Motion { config, seed, reps, python, no_baseline, work } => {
            use scenetok::bench::motion::{Baseline, MotionBenchOptions};
            let (baseline, sgemm) = if no_baseline {
                (None, None)
            } else {
                let python = match python {
                    Some(p) => p,
                    None => tree_file(".venv-train/bin/python")?,
                };
                let sgemm = scenetok::bench::gemm::Baseline {
                    python: tree_file(".venv/bin/python").unwrap_or_else(|_| python.clone()),
                    script: tree_file("tools/bench/gemm_baseline.py")?,
                };
                (Some(Baseline { python, script: tree_file("tools/bench/motion_baseline.py")? }), Some(sgemm))
            };
            let opts = MotionBenchOptions { config, seed, reps, baseline, sgemm, work };
            write!(stdout, "{}", scenetok::bench::motion::run(&opts)?.report())?;
            Ok(())
        }
        Command::Viz { data, work, repeats, stream_frames } => {
            let r = scenetok::bench::viz::run(&work, data.as_deref(), repeats, stream_frames)?;
            write!(stdout, "{}", r.report())?;
            Ok(())
        }
        Command::Io { data, python, waymo_python, no_waymo, no_baseline, runs } => {
            use scenetok::bench::io::{IoOptions, WaymoBaseline};
            let python = match (no_baseline, python) {
                (true, _) => None,
                (false, Some(p)) => Some(p),
                (false, None) => Some(tree_file(".venv/bin/python")?),
            };
            let script = if python.is_some() { tree_file("tools/bench/io_baseline.py")? } else { PathBuf::new() };
            let waymo = match (no_baseline || no_waymo, waymo_python) {
                (true, _) => WaymoBaseline::Skip,
                (false, Some(python)) => WaymoBaseline::Run { python, script: tree_file("tools/bench/io_waymo.py")? },
                (false, None) => match scenetok::locate::in_source_tree(".venv-waymo/bin/python") {
                    Some(python) if python.exists() => {
                        WaymoBaseline::Run { python, script: tree_file("tools/bench/io_waymo.py")? }
                    }
                    _ => WaymoBaseline::NotInstalled,
                },
            };
            let opts = IoOptions { python, script, waymo, runs };
            let result = scenetok::bench::io::run(&data, &opts)?;
            write!(stdout, "{}", result.report())?;
            Ok(())
        }
        Command::Tokens { data, work, frames, model, device } => {
            let opts = scenetok::bench::tokens::TokenBenchOptions {
                data,
                work,
                frames,
                lidar_weights: ctx.data()?.weights(scenetok::models::lidar_seg::WEIGHTS_FILE),
                image_config: model.config_path(ctx)?,
                image: model.options(),
                device: device.open()?,
            };
            write!(stdout, "{}", scenetok::bench::tokens::run(&opts)?.report())?;
            Ok(())
        }
        Command::Refine { data, frames, reps, scales, seg_model, refiners, device } => {
            let opts = scenetok::bench::refine::RefineBenchOptions {
                data,
                config: match seg_model {
                    Some(c) => c,
                    None => ctx.data()?.model(scenetok::models::seg::CONFIG_FILE),
                },
                refiners: match refiners {
                    Some(r) => r,
                    None => ctx.data()?.weights(""),
                },
                scales,
                frames,
                reps,
                device: device.open()?,
            };
            write!(stdout, "{}", scenetok::bench::refine::run(&opts)?.report())?;
            Ok(())
        }
        Command::Sparsevit { config, weights, size, ratios, reps, onnx, device } => {
            use scenetok::models::det::SwinConfig;
            let cfg =
                SwinConfig::named(&config).ok_or_else(|| anyhow::anyhow!("--config {config}: swin-t or small"))?;
            let (width, height) = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
                .filter(|&(w, h)| w > 0 && h > 0)
                .ok_or_else(|| anyhow::anyhow!("--size {size}: WIDTHxHEIGHT, e.g. 672x672"))?;
            let opts = scenetok::bench::sparsevit::SparseVitBenchOptions {
                config: cfg,
                weights,
                height,
                width,
                ratios,
                reps,
                onnx,
                device: device.open()?,
            };
            write!(stdout, "{}", scenetok::bench::sparsevit::run(&opts)?.report())?;
            Ok(())
        }
        Command::Metrics { data, repeat } => {
            let result = scenetok::bench::metrics::run(&data, repeat)?;
            write!(stdout, "{}", result.report())?;
            Ok(())
        }
        Command::Image { data, model, runs, python, no_baseline, baseline_huge_pages, baseline_binding, device } => {
            device.open()?;
            let source = match data {
                Some(d) => d,
                None => tree_file("../shared/waymo-samples/v1/pvps_data_one_frame.tfrecord")?,
            };
            anyhow::ensure!(
                source.exists(),
                "{}: not found (pass --data: a v1 .tfrecord or a v2 dataset folder)",
                source.display()
            );
            let python = match (no_baseline, python) {
                (true, _) => None,
                (false, Some(p)) => Some(p),
                (false, None) => Some(tree_file(".venv/bin/python")?),
            };
            let opts = scenetok::bench::image::ImageBenchOptions {
                source,
                config: model.config_path(ctx)?,
                scale: model.scale(),
                encoder: model.options(),
                runs,
                python,
                python_huge_pages: baseline_huge_pages,
                python_binding: baseline_binding.into(),
                script: PathBuf::new(),
            };
            let opts = match opts.python {
                Some(_) => {
                    scenetok::bench::image::ImageBenchOptions { script: tree_file("tools/image_reference.py")?, ..opts }
                }
                None => opts,
            };
            write!(stdout, "{}", scenetok::bench::image::run(&opts)?.report())?;
            Ok(())
        }
    }
}
