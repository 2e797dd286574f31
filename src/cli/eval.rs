//! `scenetok eval`: motion prediction (WOMD metrics, outputs, report) or the LiDAR encoder's
//! segmentation.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use scenetok::backend::Precision;
use scenetok::eval::lidar_seg;
use scenetok::eval::partial::MotionPartial;
use scenetok::eval::runner::{check_run_folder, write_run};
use scenetok::io::shard::Shard;
use scenetok::models::lidar_seg::{LidarSegModel, WEIGHTS_FILE};
use scenetok::models::motion::MotionModel;
use scenetok::pipeline::{FrameSelection, Segments, Source};
use scenetok::scene::LaserName;
use scenetok::sparse::layers::RunCtx;
use scenetok::sparse::quant::Guard;
use scenetok::sparse::tune::TuneRecord;

use super::tune::{TUNING_DIR, load_frames_of, scale_label};
use super::{Context, DeviceArg};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    data: PathBuf,
    /// What to evaluate: motion prediction, or LiDAR segmentation (per-class IoU, mIoU
    /// of the sparse-conv LiDAR encoder on the TOP lidar's labelled points).
    #[arg(long, value_enum, default_value = "motion")]
    task: Task,
    #[arg(long, value_enum, default_value = "ctra")]
    model: MotionModel,
    /// Output folder (motion: required unless --partial; for lidar-seg, metrics.json goes there).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Every task: only this shard of the input (I/N: v2 segments, or TFRecord
    /// records, number k in the input's order where k mod N = I); with --partial, `scenetok
    /// merge` joins the N.
    #[arg(long, default_value = "0/1", value_name = "I/N")]
    shard: Shard,
    /// Every task: write this shard's mergeable result to FILE instead of a run folder /
    /// metrics (JSON for a `.json` name, else MessagePack: fewer bytes, faster to merge);
    /// `scenetok merge FILE… --out DIR` writes those of all shards.
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    partial: Option<PathBuf>,
    /// For v2 datasets: a 9.1 s scenario window every STRIDE frames.
    #[arg(long, default_value_t = 20)]
    stride: usize,
    /// The weights: lidar-seg (default: the data folder's weights/lidar_seg_minkunet.safetensors)
    /// or the motion transformer (default: weights/motion_transformer.safetensors).
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
    lowp: LowpArgs,
    #[command(flatten)]
    camera: CameraSegArgs,
    #[command(flatten)]
    det: CameraDetArgs,
    #[command(flatten)]
    device: DeviceArg,
}

/// camera-det: SparseViT ratio sets and decoding.
#[derive(clap::Args, Clone)]
pub struct CameraDetArgs {
    /// camera-det: ratio sets NAME=RATIOS separated by `;` (blocks by commas, stages by
    /// slashes), each against the dense backbone (with --searched: besides its sets).
    #[arg(long)]
    ratios: Option<String>,
    /// camera-det: a `search sparsevit` record (runs/tuning/sparsevit__…json): its ratio
    /// sets are reported; it must be for these weights and this device.
    #[arg(long)]
    searched: Option<PathBuf>,
    /// camera-det: weights fine-tuned at one ratio set (their metadata's `fixed_ratios`,
    /// `train_camera_det.py --fixed-ratios`), each a row named by its file, at that set,
    /// against the dense --weights; repeatable.
    #[arg(long)]
    finetuned: Vec<PathBuf>,
    /// camera-det: the lowest box score kept.
    #[arg(long, default_value_t = 0.05)]
    score_threshold: f32,
    /// camera-det: the input scale instead of the weights' (e.g. 0.25: a quarter-size image,
    /// what a streaming preset may run at).
    #[arg(long)]
    det_scale: Option<f64>,
}

/// camera-seg: the dense model at several scales and SparseRefine's selector.
#[derive(clap::Args, Clone)]
pub struct CameraSegArgs {
    /// camera-seg: the dense model's config (default: the data folder's models/camera_seg_lite0.toml).
    #[arg(long)]
    pub seg_model: Option<PathBuf>,
    /// camera-seg: input scales to run the dense model at (1 = full resolution, the baseline).
    #[arg(long, value_delimiter = ',', default_value = "1,0.5,0.25")]
    pub scales: Vec<f64>,
    /// camera-seg: a v2 dataset (validation, never the scored one) to choose each scale's
    /// entropy threshold τ on; without it no selection is reported.
    #[arg(long)]
    pub tau_data: Option<PathBuf>,
    /// camera-seg: τ is the largest threshold whose selection holds this share of the
    /// low-resolution errors on --tau-data.
    #[arg(long, default_value_t = 0.8)]
    pub error_recall: f64,
    /// camera-seg: frames per segment of --tau-data used.
    #[arg(long, default_value_t = 2)]
    pub tau_frames: usize,
    /// camera-seg: SparseRefine's refiners, `camera_refiner_x<scale>.safetensors` per scale below
    /// 1 (default: the data folder's weights/); a scale without one is reported dense only.
    #[arg(long)]
    pub refiners: Option<PathBuf>,
    /// camera-seg: report the dense scales only.
    #[arg(long)]
    pub no_refine: bool,
    /// camera-seg: boundary F-score tolerance in full-resolution pixels.
    #[arg(long, default_value_t = 3)]
    pub boundary_tolerance: usize,
}

/// How the sparse convs compute (docs/quantization.md).
#[derive(clap::Args, Clone)]
pub struct LowpArgs {
    /// lidar-seg: the convs' arithmetic: fp32; bf16 or int8 for every conv (1×1 convs and
    /// the head stay fp32); auto: per conv the fastest whose output error stays within the
    /// guard on the calibration frames.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// int8 / auto: a v2 dataset whose TOP-lidar frames calibrate the activation scales
    /// (never the scored data).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    pub calib_frames: usize,
    /// SmoothQuant's migration strength α in [0, 1]; negative: no smoothing.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub smooth_alpha: f32,
    /// auto: the largest relative error of a conv's output in INT8.
    #[arg(long, default_value_t = Guard::default().int8)]
    pub int8_guard: f64,
    /// auto: the same for BF16.
    #[arg(long, default_value_t = Guard::default().bf16)]
    pub bf16_guard: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Bf16,
    Int8,
    Auto,
}

impl LowpArgs {
    pub fn alpha(&self) -> Option<f32> {
        (self.smooth_alpha >= 0.0).then_some(self.smooth_alpha.min(1.0))
    }
    pub fn guard(&self) -> Guard {
        Guard { int8: self.int8_guard, bf16: self.bf16_guard }
    }
    /// Prepares `model` and sets `run` for the chosen precision; says what it did.
    pub fn apply(&self, model: &mut LidarSegModel, run: &mut RunCtx, stdout: &mut impl Write) -> Result<()> {
        let calib = match (self.precision, &self.calib) {
            (PrecisionArg::Fp32, _) => return Ok(()),
            (PrecisionArg::Bf16, _) => Vec::new(),
            (_, Some(dir)) => load_frames_of(dir, self.calib_frames, &[LaserName::Top])?,
            (_, None) => {
                anyhow::bail!("--precision int8/auto needs --calib DATA: frames to calibrate on, not the scored ones")
            }
        };
        let t = std::time::Instant::now();
        let plan = model.prepare_lowp(&calib, self.alpha(), self.guard())?;
        run.default_precision = match self.precision {
            PrecisionArg::Bf16 => Precision::Bf16,
            PrecisionArg::Int8 => Precision::Int8,
            _ => Precision::F32,
        };
        if self.precision == PrecisionArg::Auto {
            run.precisions = plan.precisions.clone();
        }
        let count = |p: Precision| plan.precisions.values().filter(|&&q| q == p).count();
        writeln!(
            stdout,
            "precision {}: calibrated on {} frame(s) in {:.1} s (SmoothQuant α {}); the guard would pick int8 for {}, bf16 for {}, fp32 for {} conv(s)",
            clap::ValueEnum::to_possible_value(&self.precision).map_or("?".into(), |v| v.get_name().to_string()),
            plan.calibration_inputs,
            t.elapsed().as_secs_f64(),
            self.alpha().map_or("off".to_string(), |a| a.to_string()),
            count(Precision::Int8),
            count(Precision::Bf16),
            count(Precision::F32),
        )?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Task {
    Motion,
    LidarSeg,
    /// Camera semantic segmentation: the dense model at each --scales, mIoU, boundary F,
    /// SparseRefine's selection (with --tau-data) and ms per image.
    CameraSeg,
    /// Camera 2-D detection with SparseViT: COCO AP, AP50, AP75 per class for the dense
    /// backbone and each --ratios set, backbone and end-to-end ms per image.
    CameraDet,
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    match args.task {
        Task::Motion => {
            let weights = match &args.weights {
                Some(w) => w.clone(),
                None => ctx.data()?.weights(scenetok::models::motion::transformer::WEIGHTS_FILE),
            };
            motion(args, &weights, stdout)
        }
        Task::LidarSeg => {
            let weights = match &args.weights {
                Some(w) => w.clone(),
                None => ctx.data()?.weights(WEIGHTS_FILE),
            };
            lidar_seg(&args, &weights, stdout)
        }
        Task::CameraDet => {
            let weights = match &args.weights {
                Some(w) => w.clone(),
                None => ctx.data()?.weights(scenetok::models::det::detector::WEIGHTS_FILE),
            };
            camera_det(&args, &weights, stdout)
        }
        Task::CameraSeg => {
            let config = match &args.camera.seg_model {
                Some(c) => c.clone(),
                None => ctx.data()?.model(scenetok::models::seg::CONFIG_FILE),
            };
            let refiners = match &args.camera.refiners {
                Some(d) => d.clone(),
                None => ctx.data()?.weights(""),
            };
            camera_seg(&args, &config, &refiners, stdout)
        }
    }
}

fn camera_seg(args: &Args, config: &Path, refiners: &Path, stdout: &mut impl Write) -> Result<()> {
    use scenetok::eval::camera_seg::{CameraSegPartial, DenseMethod, choose_tau, evaluate, rows_of, table};
    use scenetok::models::image_encoder::EncoderOptions;
    use scenetok::models::seg::DenseSegModel;
    use scenetok::models::seg::refiner::{Refiner, weights_file};

    let (data, out, cam) = (args.data.as_path(), args.out.as_deref(), &args.camera);
    if let Some(out) = out {
        scenetok::io::output::refuse_input(&out.join("metrics.json"), &[data])?;
    }
    if let Some(partial) = &args.partial {
        scenetok::io::output::refuse_input(partial, &[data])?;
    }
    let source = Source::open(data)?;
    let tau_source = cam.tau_data.as_deref().map(Source::open).transpose()?;
    let device = args.device.open()?;
    let mut methods = Vec::new();
    for &scale in &cam.scales {
        let mut model = DenseSegModel::load(config, scale, EncoderOptions::default())?;
        // Full resolution is the baseline: nothing to refine there.
        let refiner_path = refiners.join(weights_file(scale));
        let refiner = if scale < 1.0 && !cam.no_refine && refiner_path.is_file() {
            let r = Refiner::load(&refiner_path, &device)?;
            if r.scale.is_some_and(|s| (s - scale).abs() > 1e-9) {
                anyhow::bail!("{}: trained for scale {:?}, not {scale}", refiner_path.display(), r.scale);
            }
            writeln!(stdout, "scale {scale}: refiner {} (channels {:?})", refiner_path.display(), r.channels)?;
            Some(r)
        } else {
            None
        };
        let tau = match &tau_source {
            Some(src) if scale < 1.0 => {
                let choice =
                    choose_tau(src, &FrameSelection::all().first(Some(cam.tau_frames)), &mut model, cam.error_recall)?;
                writeln!(
                    stdout,
                    "scale {scale}: τ = {:.3} on {} (selects {:.1}% of labelled pixels, {:.1}% of the errors there)",
                    choice.tau,
                    src.path().display(),
                    100.0 * choice.selected,
                    100.0 * choice.error_recall
                )?;
                Some(choice.tau)
            }
            _ => match &refiner {
                Some(r) => Some(r.tau.ok_or_else(|| {
                    anyhow::anyhow!("{}: no `tau` in its metadata (pass --tau-data)", refiner_path.display())
                })?),
                None => None,
            },
        };
        methods.push(DenseMethod { model, tau, refiner });
    }
    let frames = FrameSelection::all().segments(Segments::Shard(args.shard)).first(args.max_frames);
    let bar = indicatif::ProgressBar::new_spinner();
    let counted = evaluate(&source, &frames, &mut methods, cam.boundary_tolerance, || bar.inc(1))?;
    bar.finish_and_clear();
    // A single process goes through the same path as a merge of its shards.
    let partial =
        CameraSegPartial::new(config, refiners, data, rows_of(&methods), cam.boundary_tolerance, args.shard, counted);
    if let Some(path) = &args.partial {
        partial.write(path)?;
        writeln!(stdout, "shard {}: {} frames, {} images", args.shard, partial.frames.len(), partial.images())?;
        writeln!(stdout, "wrote {} (merge the shards with `scenetok merge`)", path.display())?;
        return Ok(());
    }
    let reports = partial.report()?;
    write!(stdout, "{}", table(&reports))?;
    match out {
        Some(out) => write_metrics(out, &reports, stdout),
        None => Ok(()),
    }
}

fn camera_det(args: &Args, weights: &Path, stdout: &mut impl Write) -> Result<()> {
    use scenetok::eval::camera_det::{DetMethod, DetPartial, evaluate};
    use scenetok::models::det::{DecodeOptions, Detector, Ratios};

    let (data, out, det_args) = (args.data.as_path(), args.out.as_deref(), &args.det);
    if let Some(out) = out {
        scenetok::io::output::refuse_input(&out.join("metrics.json"), &[data])?;
    }
    if let Some(partial) = &args.partial {
        scenetok::io::output::refuse_input(partial, &[data])?;
    }
    let source = Source::open(data)?;
    let device = args.device.open()?;
    if let Some(s) = det_args.det_scale {
        anyhow::ensure!(s > 0.0 && s <= 1.0, "--det-scale: expected a scale in (0, 1], found {s}");
    }
    let load = |path: &Path| -> Result<Detector> {
        let mut det = Detector::load(path, &device)?;
        if let Some(s) = det_args.det_scale {
            det.scale = s;
        }
        Ok(det)
    };
    let det = load(weights)?;
    let cfg = det.config().clone();
    let mut methods = vec![DetMethod::new("dense", Ratios::dense(&cfg))];
    let mut sets = match &det_args.ratios {
        Some(text) => Ratios::parse_sets(text, &cfg)?,
        None => Vec::new(),
    };
    if let Some(path) = &det_args.searched {
        use scenetok::models::det::search::{SearchRecord, model_id};
        let record = SearchRecord::load_for(path, &model_id(weights)?, &device.backend().tuning_key())?;
        sets.extend(record.sets(&cfg)?);
    }
    methods.extend(sets.into_iter().map(|(name, ratios)| DetMethod::new(name, ratios)));
    for path in &det_args.finetuned {
        let tuned = load(path)?;
        anyhow::ensure!(
            tuned.config() == &cfg,
            "--finetuned {}: a backbone of another config than --weights {}",
            path.display(),
            weights.display()
        );
        let Some(ratios) = tuned.fixed_ratios.clone() else {
            anyhow::bail!(
                "--finetuned {}: weights without `fixed_ratios` metadata (not fine-tuned at one ratio set)",
                path.display()
            );
        };
        methods.push(DetMethod::finetuned(path, ratios, tuned));
    }
    let opts = DecodeOptions { score_threshold: det_args.score_threshold, ..DecodeOptions::default() };
    let frames = FrameSelection::all().segments(Segments::Shard(args.shard)).first(args.max_frames);
    let bar = indicatif::ProgressBar::new_spinner();
    let (frame_count, images) = evaluate(&source, &frames, &det, &device, &methods, &opts, || bar.inc(1))?;
    bar.finish_and_clear();
    // A single process goes through the same path as a merge of its shards.
    let partial = DetPartial::new(weights, data, &methods, args.shard, frame_count, images);
    if let Some(path) = &args.partial {
        partial.write(path)?;
        writeln!(stdout, "shard {}: {} frames, {} images", args.shard, partial.frames, partial.images.len())?;
        writeln!(stdout, "wrote {} (merge the shards with `scenetok merge`)", path.display())?;
        return Ok(());
    }
    let report = partial.report();
    write!(stdout, "{}", report.table())?;
    match out {
        Some(out) => write_metrics(out, &report, stdout),
        None => Ok(()),
    }
}

/// `OUT/metrics.json` (pretty JSON), said on stdout.
pub(super) fn write_metrics(out: &Path, value: &impl serde::Serialize, stdout: &mut impl Write) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let p = out.join("metrics.json");
    scenetok::io::output::write_file(&p, serde_json::to_string_pretty(value)?.as_bytes())?;
    writeln!(stdout, "wrote {}", p.display())?;
    Ok(())
}

/// Where a motion evaluation writes.
enum Target<'a> {
    Run(&'a Path),
    Partial(&'a Path),
}

fn motion(args: Args, weights: &Path, stdout: &mut impl Write) -> Result<()> {
    let data = &args.data;
    // Where it goes: a run folder, or (one shard) a partial result; checked before any work.
    let target = match (&args.out, &args.partial) {
        (Some(out), None) => {
            check_run_folder(out, &[data])?;
            Target::Run(out.as_path())
        }
        (None, Some(partial)) => {
            scenetok::io::output::refuse_input(partial, &[data])?;
            Target::Partial(partial.as_path())
        }
        _ => anyhow::bail!("eval --task motion needs --out DIR (or --partial FILE for one shard)"),
    };
    // The baselines run on the CPU; the device is checked so `--device` means the same on
    // every command (the transformer runs there).
    let device = args.device.open()?;
    // The model before the data: missing weights are reported before any reading.
    let predictor = args.model.load(weights, &device)?;
    let started = std::time::Instant::now();
    let scenarios = Source::open(data)?
        .allow_missing_pose(args.allow_missing)
        .keyed_scenarios(&Segments::Shard(args.shard), args.stride)?;
    let read_s = started.elapsed().as_secs_f64();
    // An empty shard is a result (a shard of more shards than segments); an empty input is not.
    anyhow::ensure!(
        !scenarios.is_empty() || !args.shard.is_all(),
        "{}: no scenario of 91 frames with agents to predict",
        data.display()
    );
    let bar = indicatif::ProgressBar::new(scenarios.len() as u64);
    let name = data.display().to_string();
    let keyed = scenarios.iter().map(|(k, s)| (*k, s));
    let partial = MotionPartial::evaluate(keyed, predictor.as_ref(), &name, args.shard, || bar.inc(1))?;
    bar.finish_and_clear();
    let times = (
        read_s,
        partial.records.iter().map(|r| r.model_s).sum::<f64>(),
        partial.records.iter().map(|r| r.metrics_s).sum::<f64>(),
    );
    let out = match target {
        Target::Run(out) => out,
        Target::Partial(path) => {
            partial.write(path)?;
            writeln!(stdout, "shard {}: {} scenarios", args.shard, partial.records.len())?;
            print_times(stdout, times, started)?;
            writeln!(stdout, "wrote {} (merge the shards with `scenetok merge`)", path.display())?;
            return Ok(());
        }
    };
    let report = partial.report()?;
    let path = write_run(out, &report)?;
    write!(stdout, "{}", report.table())?;
    print_times(stdout, times, started)?;
    print_run_written(stdout, &path)
}

/// The line after a motion run folder is written (`eval`, `merge`).
pub(super) fn print_run_written(stdout: &mut impl Write, metrics: &Path) -> Result<()> {
    writeln!(
        stdout,
        "wrote {} (metrics), report.html, report.md, predictions.parquet and submission.binproto beside it",
        metrics.display()
    )?;
    Ok(())
}

fn print_times(
    stdout: &mut impl Write,
    (read_s, model_s, metrics_s): (f64, f64, f64),
    started: std::time::Instant,
) -> Result<()> {
    writeln!(
        stdout,
        "time: reading {read_s:.3} s, model {model_s:.3} s, metrics {metrics_s:.3} s, total {:.3} s",
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

fn lidar_seg(args: &Args, weights: &Path, stdout: &mut impl Write) -> Result<()> {
    let data = args.data.as_path();
    if let Some(out) = &args.out {
        scenetok::io::output::refuse_input(&out.join("metrics.json"), &[data])?;
    }
    if let Some(partial) = &args.partial {
        scenetok::io::output::refuse_input(partial, &[data])?;
    }
    // The input first: a bad one is reported before the model loads.
    let source = Source::open(data)?;
    let device = args.device.open()?;
    let mut model = LidarSegModel::load(weights, &device)?;
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
    args.lowp.apply(&mut model, &mut run, stdout)?;
    let frames = FrameSelection::all().segments(Segments::Shard(args.shard)).first(args.max_frames);
    let confusion = lidar_seg::confusion(&source, &frames, model, run)?;
    if let Some(path) = &args.partial {
        let partial = lidar_seg::SegPartial::new(weights, data, args.shard, confusion);
        partial.write(path)?;
        let c = &partial.confusion;
        writeln!(stdout, "shard {}: {} frames, {} labelled points", args.shard, c.frames(), c.points())?;
        writeln!(stdout, "wrote {} (merge the shards with `scenetok merge`)", path.display())?;
        return Ok(());
    }
    let report = confusion.scored_report(data)?;
    write!(stdout, "{}", report.table())?;
    match &args.out {
        Some(out) => write_metrics(out, &report, stdout),
        None => Ok(()),
    }
}
