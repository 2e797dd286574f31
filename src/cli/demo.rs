//! `scenetok demo`: the main job. A small synthetic world (unless one is there), every
//! motion baseline evaluated on it and on the real WOMD sample when present, the LiDAR and
//! image encoders on it, reports and rerun recordings, and where everything is.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use scenetok::eval::lidar_seg;
use scenetok::eval::report::{load_run, write_comparison};
use scenetok::eval::runner::{EvalReport, evaluate, load_scenarios, write_run};
use scenetok::models::image_encoder::{ImageEncoder, ModelConfig, default_config_path};
use scenetok::models::lidar_seg::{LidarSegModel, WEIGHTS_FILE};
use scenetok::models::motion::{Baseline, MotionModel, MotionPredictor};
use scenetok::pipeline::export::{ExportOptions, export_features};
use scenetok::pipeline::{FrameSelection, Source};
use scenetok::sim::generate::{GenerateConfig, Preset, generate};
use scenetok::sparse::layers::RunCtx;
use scenetok::viz::{Layout, MotionRun, VizOptions, VizSink, open_recording, record_motion, record_source};

use super::{Context, DeviceArg};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Frames of the generated segment (≥ 91 for one motion window).
    #[arg(long, default_value_t = 131)]
    frames: usize,
    #[command(flatten)]
    device: DeviceArg,
}

/// The real WOMD sample scenario beside the source tree, when it is there.
fn womd_sample() -> Option<PathBuf> {
    scenetok::locate::in_source_tree("../shared/waymo-samples/womd/motion_data_one_scenario.tfrecord")
        .filter(|p| p.exists())
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    let out = &args.out;
    let world = out.join("world");
    if world.join("scenetok_manifest.json").exists() {
        writeln!(stdout, "using the world already generated in {}", world.display())?;
    } else {
        let mut cfg = GenerateConfig::preset(Preset::Tiny);
        (cfg.segments, cfg.frames) = (1, args.frames);
        let bar = indicatif::ProgressBar::new(args.frames as u64);
        let manifest = generate(&world, &cfg, |_, _| bar.inc(1))?;
        bar.finish_and_clear();
        writeln!(
            stdout,
            "generated {} segment(s) of {} frames in {}",
            manifest.segments.len(),
            args.frames,
            world.display()
        )?;
    }
    let mut inputs = vec![("generated world", world.clone())];
    if let Some(sample) = womd_sample() {
        inputs.push(("real WOMD scenario", sample));
    }
    // Every baseline, and the transformer when its weights are there.
    let device = args.device.open()?;
    let mut models: Vec<Box<dyn MotionPredictor>> = Baseline::ALL.iter().map(|b| b.predictor()).collect();
    let weights = ctx.data()?.weights(scenetok::models::motion::transformer::WEIGHTS_FILE);
    if weights.exists() {
        models.push(MotionModel::Transformer.load(&weights, &device)?);
    } else {
        writeln!(stdout, "no transformer weights at {} (tools/train/train_motion.py trains them)", weights.display())?;
    }
    let mut reports = Vec::new();
    // The generated world's runs, every model: the motion recording shows them side by side.
    let mut generated_runs = Vec::new();
    for (label, data) in inputs {
        let scenarios = load_scenarios(&data, 20)?;
        writeln!(stdout, "\n{label}: {} scenario(s)", scenarios.len())?;
        writeln!(
            stdout,
            "  {:<18} {:>8} {:>8} {:>6} {:>6} {:>8}",
            "model", "minADE", "minFDE", "MR", "mAP", "softmAP"
        )?;
        for model in &models {
            let report = evaluate(&scenarios, model.as_ref(), &data.display().to_string())?;
            let dir = out.join(if label.starts_with("real") { "womd" } else { "generated" }).join(model.name());
            write_run(&dir, &report)?;
            let m = &report.mean;
            reports.push((dir.clone(), label));
            writeln!(
                stdout,
                "  {:<18} {:>8.3} {:>8.3} {:>6.3} {:>6.3} {:>8.3}",
                model.name(),
                m.min_ade,
                m.min_fde,
                m.miss_rate,
                m.map,
                m.soft_map
            )?;
            if label == "generated world" {
                generated_runs.push(report);
            }
        }
    }
    perception(out, &world, &generated_runs, ctx, &args.device, stdout)?;
    // The map-aware baseline against constant velocity, on the generated world.
    let generated: Vec<&PathBuf> = reports.iter().filter(|(_, l)| *l == "generated world").map(|(d, _)| d).collect();
    let run = |name: &str| generated.iter().find(|d| d.ends_with(name)).copied();
    if let (Some(a), Some(b)) = (run(Baseline::ConstantVelocity.name()), run(Baseline::LaneFollower.name())) {
        let (ra, _) = load_run(a)?;
        let (rb, _) = load_run(b)?;
        let cmp = out.join("compare-constant-velocity-vs-lane-follower");
        write_comparison(&cmp, ("constant-velocity", &ra), ("lane-follower", &rb))?;
    }
    // The transformer against the best baseline, when it ran.
    let transformer_cmp = out.join("compare-lane-follower-vs-transformer");
    let with_transformer = if let (Some(a), Some(b)) = (run(Baseline::LaneFollower.name()), run("transformer")) {
        let (ra, _) = load_run(a)?;
        let (rb, _) = load_run(b)?;
        write_comparison(&transformer_cmp, ("lane-follower", &ra), ("transformer", &rb))?;
        true
    } else {
        false
    };
    writeln!(stdout, "\nreports (report.html, report.md), metrics, predictions and submissions:")?;
    for (dir, label) in &reports {
        writeln!(stdout, "  {}  ({label})", dir.join("report.html").display())?;
    }
    writeln!(
        stdout,
        "  {}  (comparison)",
        out.join("compare-constant-velocity-vs-lane-follower/report.html").display()
    )?;
    if with_transformer {
        writeln!(stdout, "  {}  (comparison)", transformer_cmp.join("report.html").display())?;
    }
    Ok(())
}

/// The demo's perception stages on the generated world: the trained LiDAR encoder's
/// segmentation (mIoU), image features for every LiDAR point, and a rerun recording of the
/// segment, and one of the motion scenarios with every model's predictions (`runs`).
fn perception(
    out: &Path,
    world: &Path,
    runs: &[EvalReport],
    ctx: &Context,
    device: &DeviceArg,
    stdout: &mut impl Write,
) -> Result<()> {
    let data = ctx.data()?;
    let device = device.open()?;
    let source = Source::open(world)?;
    let model = LidarSegModel::load(&data.weights(WEIGHTS_FILE), &device)?;
    let seg = lidar_seg::evaluate(&source, &FrameSelection::all().first(Some(20)), model, RunCtx::default())?;
    let dir = out.join("lidar_seg");
    std::fs::create_dir_all(&dir)?;
    scenetok::io::output::write_file(&dir.join("metrics.json"), serde_json::to_string_pretty(&seg)?.as_bytes())?;
    writeln!(
        stdout,
        "\nLiDAR segmentation (MinkUNet, shipped weights) on {} frames: mIoU {:.3} over {} classes ({} labelled points;\n  the demo's lidars are 1/8 x 1/16 of Waymo's resolution, the weights were trained at full size: README has that number)",
        seg.frames,
        seg.miou,
        seg.classes.len(),
        seg.points
    )?;

    let cfg = ModelConfig::load(default_config_path(&data))?;
    let encoder = ImageEncoder::load(cfg, Default::default())?;
    let opts = ExportOptions { max_frames: Some(2), ..Default::default() };
    let f = export_features(encoder, &source, &out.join("features.parquet"), &opts)?;
    writeln!(
        stdout,
        "image features (EfficientNet-Lite0, ONNX Runtime): {} frames, {} camera images, {} of {} points seen by a camera, {} channels → {}",
        f.frames,
        f.images,
        f.points_seen,
        f.points,
        f.channels,
        f.points_file.display()
    )?;

    let rrd = out.join("world.rrd");
    let rec = open_recording("scenetok demo", &VizSink::Save(rrd.clone()), Layout::Perception)?;
    let opts = VizOptions { frames: Some(0..40), ..Default::default() };
    let summary = record_source(&source, &opts, &rec)?;
    rec.finish()?;
    let scenarios = load_scenarios(world, 20)?;
    let motion_rrd = out.join("motion.rrd");
    let rec = open_recording("scenetok demo: motion", &VizSink::Save(motion_rrd.clone()), Layout::Motion)?;
    record_motion(&rec, &scenarios, &runs.iter().map(MotionRun::from_report).collect::<Vec<_>>())?;
    rec.finish()?;
    let names: Vec<&str> = runs.iter().map(|r| r.model.as_str()).collect();
    writeln!(
        stdout,
        "rerun recordings: {} ({} frames, {} points, {} images) and {} (predictions of {}); `rerun FILE` opens them",
        rrd.display(),
        summary.frames,
        summary.points,
        summary.images,
        motion_rrd.display(),
        names.join(", ")
    )?;
    Ok(())
}
