//! The `scenetok` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod sparse_cli;

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
        /// Divide the lidar range-image height and width: `H,W` (1,1 = Waymo's sizes).
        #[arg(long, value_delimiter = ',', num_args = 2)]
        lidar_div: Option<Vec<usize>>,
        /// Divide camera image sizes (1 = Waymo's 1920×1280 / 1920×886).
        #[arg(long)]
        camera_div: Option<u32>,
    },
    /// Run a motion model over scenarios (a v2 dataset folder or WOMD TFRecords) and compute
    /// the WOMD challenge metrics: `OUT/metrics.json`, `OUT/predictions.parquet`, the official
    /// `OUT/submission.binproto`, and the report `OUT/report.html` + `OUT/report.md`.
    Eval {
        #[arg(long)]
        data: PathBuf,
        /// What to evaluate: motion prediction, or LiDAR segmentation (per-class IoU, mIoU
        /// of the sparse-conv LiDAR encoder on the TOP lidar's labelled points).
        #[arg(long, value_enum, default_value = "motion")]
        task: EvalTask,
        #[arg(long, value_enum, default_value = "ctra")]
        model: scenetok::models::baselines::Baseline,
        /// Output folder (required for motion; for lidar-seg, metrics.json goes there).
        #[arg(long)]
        out: Option<PathBuf>,
        /// For v2 datasets: a 9.1 s scenario window every STRIDE frames.
        #[arg(long, default_value_t = 20)]
        stride: usize,
        /// lidar-seg: the weights (default: the shipped data/weights file).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// lidar-seg: at most this many frames per segment.
        #[arg(long)]
        max_frames: Option<usize>,
    },
    /// Sparse-conv tools: export LiDAR training data for tools/train/.
    Sparse {
        #[command(subcommand)]
        which: SparseCmd,
    },
    /// Autotune the sparse-conv dataflows of a network on real frames and store the choice.
    Tune(sparse_cli::TuneArgs),
    /// The main job: generate a small synthetic world (unless OUT/world exists), evaluate every
    /// motion baseline on it and on the real WOMD sample when present, and say where it all is.
    Demo {
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Frames of the generated segment (≥ 91 for one motion window).
        #[arg(long, default_value_t = 131)]
        frames: usize,
    },
    /// Redraw a run's report from its folder, or compare two runs side by side (B against A).
    Report {
        /// A run folder written by `scenetok eval` (or `demo`).
        run_a: PathBuf,
        /// A second run folder: writes a comparison of B against A.
        run_b: Option<PathBuf>,
        /// Where the comparison goes (default: `A/../compare-A-vs-B`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also render the report in headless Chromium to this PNG and fail on console errors.
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },
    /// Benchmarks against a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchKind,
    },
    /// Image features of a v2 dataset or a v1 TFRecord: per camera (pooled vector, top-5 classes, optionally
    /// the feature map) and per LiDAR point (the chosen camera, pixel and sampled feature),
    /// as parquet: OUT (points) and OUT's stem + `.cameras.parquet`.
    Features {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        segment: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        model: ImageModelArgs,
        /// The feature map sampled per point (default: the config's `sample`).
        #[arg(long)]
        map: Option<String>,
        /// At most this many frames per segment.
        #[arg(long)]
        frames: Option<usize>,
        /// Also store every camera's sampled feature map (large).
        #[arg(long)]
        with_maps: bool,
    },
    /// Show a dataset, a v1 Frame or WOMD Scenario TFRecord, and motion predictions in rerun.
    Viz(VizArgs),
    /// Write scenetok's tiny built-in v2 dataset (every component, 3 frames) to a folder.
    Fixture {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EvalTask {
    Motion,
    LidarSeg,
}

#[derive(Subcommand)]
enum SparseCmd {
    /// Write the TOP lidar's points, features and segmentation labels of every frame as
    /// safetensors files (the PyTorch trainer's input).
    Export {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

// ---- scenetok viz ------------------------------------------------------------------------------

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("sink").required(true).args(["save", "spawn", "connect", "write_blueprints"])))]
struct VizArgs {
    /// A v2 dataset folder, a v1 `Frame` TFRecord or a WOMD `Scenario` TFRecord.
    #[arg(long, required_unless_present = "write_blueprints")]
    data: Option<PathBuf>,
    /// The segment of a v2 dataset (default: the first).
    #[arg(long)]
    segment: Option<String>,
    /// Frame indices: `A..B`, `A..`, `..B` or `N`.
    #[arg(long, value_parser = scenetok::viz::parse_frame_range)]
    frames: Option<std::ops::Range<usize>>,
    /// Write the recording to an .rrd file (with the blueprint).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Start a viewer and stream to it (`rerun` on PATH, else .venv/bin/rerun).
    #[arg(long)]
    spawn: bool,
    /// Stream to a running viewer: `host:port` or a `rerun+http://…/proxy` URL.
    #[arg(long)]
    connect: Option<String>,
    /// Write the blueprints (perception.rbl, motion.rbl) into this folder and exit.
    #[arg(long)]
    write_blueprints: Option<PathBuf>,
    /// Colour points by intensity or by LiDAR segmentation class.
    #[arg(long, value_enum, default_value = "intensity")]
    color: scenetok::viz::PointColors,
    /// Also log the second returns.
    #[arg(long)]
    second_returns: bool,
    /// Skip the range images.
    #[arg(long)]
    no_range_images: bool,
    /// Skip camera images and panoptic labels.
    #[arg(long)]
    no_cameras: bool,
    /// Motion baselines to run on the input's scenarios; their predictions and metrics join
    /// the recording (a WOMD file without --model shows the scenario alone).
    #[arg(long = "model", value_enum)]
    models: Vec<scenetok::models::baselines::Baseline>,
    /// For v2 datasets with --model: a 9.1 s scenario window every STRIDE frames.
    #[arg(long, default_value_t = 20)]
    stride: usize,
}

fn viz(args: VizArgs, stdout: &mut impl std::io::Write) -> Result<()> {
    use scenetok::viz::{VizOptions, VizSink};
    if let Some(dir) = &args.write_blueprints {
        for p in scenetok::viz::write_blueprints(dir)? {
            writeln!(stdout, "wrote {}", p.display())?;
        }
        return Ok(());
    }
    let Some(data) = args.data else { anyhow::bail!("--data is required") };
    let sink = match (args.save, args.spawn, args.connect) {
        (Some(p), _, _) => VizSink::Save(p),
        (_, true, _) => VizSink::Spawn,
        (_, _, Some(a)) => VizSink::Connect(a),
        _ => anyhow::bail!("one of --save, --spawn, --connect is required"),
    };
    let opts = VizOptions {
        segment: args.segment,
        frames: args.frames,
        point_colors: args.color,
        second_returns: args.second_returns,
        range_images: !args.no_range_images,
        cameras: !args.no_cameras,
        segmentation: !args.no_cameras,
        ..VizOptions::default()
    };
    let started = std::time::Instant::now();
    let summary = scenetok::viz::input::record_path(&data, &opts, &sink, &args.models, args.stride)?;
    writeln!(stdout, "{}", summary.input.as_deref().unwrap_or("?"))?;
    if let Some(f) = &summary.frames {
        writeln!(
            stdout,
            "logged {} frame(s): {} points, {} camera images, {} panoptic labels, {} 3-D boxes, {} map features",
            f.frames, f.points, f.images, f.panoptic_labels, f.lidar_boxes, f.map_features
        )?;
    }
    if let Some(m) = &summary.motion {
        writeln!(
            stdout,
            "logged {} scenario(s), {} steps, {} predicted agents, {} modes",
            m.scenarios, m.steps, m.predicted_agents, m.modes
        )?;
    }
    let dest = match &sink {
        VizSink::Save(p) => p.display().to_string(),
        VizSink::Spawn => "a spawned viewer".into(),
        VizSink::Connect(a) => a.clone(),
    };
    writeln!(stdout, "to {dest} in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(())
}

// ---- end of scenetok viz -----------------------------------------------------------------------

#[derive(Subcommand)]
enum BenchKind {
    /// The sparse-conv engine: MinkUNet per dataflow and tuned, per-layer GFLOP/s against
    /// SGEMM, and spconv's CPU build on the same voxels when available.
    Sparse(sparse_cli::BenchArgs),
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
    /// Reading lidar columns (vs pyarrow) and range image → points (vs NumPy) on a dataset.
    Io {
        #[arg(long)]
        data: PathBuf,
        /// Python with pyarrow and numpy for the baselines (default: the setup script's venv).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Skip the baselines.
        #[arg(long)]
        no_baseline: bool,
        /// Runs, each ours then the baselines; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
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
    },
}

// ---- image encoder (scenetok features, scenetok bench image) --------------------------------

/// Which image model and how to run it.
#[derive(clap::Args)]
struct ImageModelArgs {
    /// Model config (default: data/models/efficientnet_lite0.toml).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Override the config's resize factor (e.g. 1 for full resolution).
    #[arg(long)]
    scale: Option<f64>,
    /// ONNX Runtime intra-op threads (0 = ONNX Runtime's default: one per physical core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Keep the session's memory on 4 KiB pages (by default it moves to transparent huge
    /// pages after the first run: faster).
    #[arg(long)]
    no_huge_pages: bool,
}

impl ImageModelArgs {
    fn options(&self) -> scenetok::models::image_encoder::EncoderOptions {
        scenetok::models::image_encoder::EncoderOptions {
            threads: self.threads,
            huge_pages: !self.no_huge_pages,
            ..Default::default()
        }
    }
    fn config_path(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(scenetok::models::image_encoder::default_config_path)
    }
    fn encoder(&self) -> Result<scenetok::models::image_encoder::ImageEncoder> {
        use scenetok::models::image_encoder::{ImageEncoder, ModelConfig};
        let mut cfg = ModelConfig::load(self.config_path())?;
        if let Some(s) = self.scale {
            cfg = cfg.with_scale(s)?;
        }
        Ok(ImageEncoder::load(cfg, self.options())?)
    }
}

fn features_command(
    data: &std::path::Path,
    out: &std::path::Path,
    opts: scenetok::models::image_encoder::export::ExportOptions,
    model: &ImageModelArgs,
    stdout: &mut impl std::io::Write,
) -> Result<()> {
    let mut enc = model.encoder()?;
    let s = scenetok::models::image_encoder::export::export_features(&mut enc, data, out, &opts)?;
    writeln!(
        stdout,
        "{} frames, {} camera images, {} points ({} seen by a camera, {:.1}%), {} channels per point\nwrote {} and {}",
        s.frames,
        s.images,
        s.points,
        s.points_seen,
        100.0 * s.points_seen as f64 / s.points.max(1) as f64,
        s.channels,
        s.points_file.display(),
        s.cameras_file.display()
    )?;
    Ok(())
}

/// The Python side of `bench image`.
struct Baseline {
    python: Option<PathBuf>,
    huge_pages: bool,
}

fn bench_image_command(
    data: Option<PathBuf>,
    model: &ImageModelArgs,
    runs: usize,
    baseline: Option<Baseline>,
    stdout: &mut impl std::io::Write,
) -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = data.unwrap_or_else(|| root.join("../shared/waymo-samples/v1/pvps_data_one_frame.tfrecord"));
    anyhow::ensure!(
        source.exists(),
        "{}: not found (pass --data: a v1 .tfrecord or a v2 dataset folder)",
        source.display()
    );
    let opts = scenetok::bench::image::ImageBenchOptions {
        source,
        config: model.config_path(),
        scale: model.scale,
        encoder: model.options(),
        runs,
        python: baseline.as_ref().map(|b| b.python.clone().unwrap_or_else(|| root.join(".venv/bin/python"))),
        python_huge_pages: baseline.is_some_and(|b| b.huge_pages),
        script: root.join("tools/image_reference.py"),
    };
    write!(stdout, "{}", scenetok::bench::image::run(&opts)?.report())?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Inspect { paths, json } => {
            let mut reports = Vec::new();
            for p in &paths {
                // Library errors already name the file and the place in it.
                let report = scenetok::io::inspect::inspect(p)?;
                if !json {
                    writeln!(stdout, "{}", report.to_table())?;
                }
                reports.push(report);
            }
            if json {
                let out = if reports.len() == 1 {
                    serde_json::to_string_pretty(&reports[0])?
                } else {
                    serde_json::to_string_pretty(&reports)?
                };
                writeln!(stdout, "{out}")?;
            }
        }
        Command::Generate { out, preset, segments, frames, seed, lidar_div, camera_div } => {
            let mut cfg = scenetok::sim::generate::GenerateConfig::preset(preset);
            cfg.seed = seed;
            cfg.segments = segments.unwrap_or(cfg.segments);
            cfg.frames = frames.unwrap_or(cfg.frames);
            if let Some(d) = lidar_div {
                anyhow::ensure!(
                    d.len() == 2 && d.iter().all(|x| *x >= 1),
                    "--lidar-div takes two divisors ≥ 1, e.g. 8,16"
                );
                cfg.lidar_div = [d[0], d[1]];
            }
            if let Some(d) = camera_div {
                anyhow::ensure!(d >= 1, "--camera-div must be at least 1");
                cfg.camera_div = d;
            }
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
            writeln!(
                stdout,
                "wrote {} segment(s), {} files under {}",
                manifest.segments.len(),
                manifest.files.len(),
                out.display()
            )?;
            let frames = manifest.frames_written.max(1) as f64;
            let per_frame: f64 =
                manifest.seconds.iter().filter(|(k, _)| !k.starts_with("setup")).map(|(_, v)| v).sum::<f64>() / frames;
            writeln!(stdout, "time per frame {:.0} ms:", per_frame * 1e3)?;
            for (stage, secs) in &manifest.seconds {
                writeln!(
                    stdout,
                    "  {stage:<58} {:>8.0} ms{}",
                    secs * 1e3 / if stage.starts_with("setup") { 1.0 } else { frames },
                    if stage.starts_with("setup") { " (once per segment)" } else { " per frame" }
                )?;
            }
            let total: usize = manifest.trajectory_types.values().sum();
            writeln!(stdout, "trajectory types (WOMD classification, every agent over 9.1 s windows):")?;
            for (name, n) in &manifest.trajectory_types {
                writeln!(stdout, "  {name:<15} {n:>6}  {:5.1}%", 100.0 * *n as f64 / total.max(1) as f64)?;
            }
        }
        Command::Bench { which: BenchKind::Viz { data, work, repeats, stream_frames } } => {
            let r = scenetok::bench::viz::run(&work, data.as_deref(), repeats, stream_frames)?;
            write!(stdout, "{}", r.report())?;
        }
        Command::Bench { which: BenchKind::Io { data, python, no_baseline, runs } } => {
            let python = python.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
            let python = (!no_baseline).then_some(python.as_path());
            let script = scenetok::bench::io::default_script();
            let result = scenetok::bench::io::run(&data, python, &script, runs)?;
            write!(stdout, "{}", result.report())?;
        }
        Command::Eval { data, task: EvalTask::LidarSeg, out, weights, max_frames, .. } => {
            sparse_cli::eval_lidar_seg(&data, weights, out, max_frames, &mut stdout)?
        }
        Command::Sparse { which: SparseCmd::Export { data, out } } => {
            let n = scenetok::models::lidar_seg::export(&data, &out)?;
            writeln!(stdout, "wrote {n} frame file(s) under {}", out.display())?;
        }
        Command::Tune(args) => sparse_cli::tune(args, &mut stdout)?,
        Command::Bench { which: BenchKind::Sparse(args) } => sparse_cli::bench(args, &mut stdout)?,
        Command::Eval { data, task: EvalTask::Motion, model, out, stride, .. } => {
            let out = out.ok_or_else(|| anyhow::anyhow!("eval --task motion needs --out DIR"))?;
            let started = std::time::Instant::now();
            let scenarios = scenetok::eval::runner::load_scenarios(&data, stride)?;
            let read_s = started.elapsed().as_secs_f64();
            anyhow::ensure!(
                !scenarios.is_empty(),
                "{}: no scenario of 91 frames with agents to predict",
                data.display()
            );
            let bar = indicatif::ProgressBar::new(scenarios.len() as u64);
            let report =
                scenetok::eval::runner::evaluate_with_progress(&scenarios, model, &data.display().to_string(), || {
                    bar.inc(1)
                })?;
            bar.finish_and_clear();
            let path = scenetok::eval::runner::write_run(&out, &report)?;
            write!(stdout, "{}", report.table())?;
            let stage_s = |name: &str| {
                report
                    .latency
                    .iter()
                    .find(|l| l.stage == name)
                    .map_or(0.0, |l| l.stats.mean_ms * l.stats.count as f64 / 1e3)
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
        }
        Command::Report { run_a, run_b, out, screenshot } => {
            let (a, data_a) = scenetok::eval::report::load_run(&run_a)?;
            let path = match run_b {
                None => scenetok::eval::report::write_report(&run_a, &a, &data_a)?,
                Some(run_b) => {
                    let (b, _) = scenetok::eval::report::load_run(&run_b)?;
                    let name =
                        |p: &std::path::Path| p.file_name().map_or("run".into(), |n| n.to_string_lossy().to_string());
                    let (na, nb) = (name(&run_a), name(&run_b));
                    let out = out.unwrap_or_else(|| {
                        run_a.parent().unwrap_or(std::path::Path::new(".")).join(format!("compare-{na}-vs-{nb}"))
                    });
                    scenetok::eval::report::write_comparison(&out, (&na, &a), (&nb, &b))?
                }
            };
            writeln!(stdout, "wrote {} and report.md beside it", path.display())?;
            if let Some(png) = screenshot {
                let check = scenetok::eval::report::browser::check_page(&path, &png, 1280, 2400)?;
                anyhow::ensure!(
                    check.console_errors.is_empty(),
                    "{} logged console errors in Chromium:\n{}",
                    path.display(),
                    check.console_errors.join("\n")
                );
                writeln!(
                    stdout,
                    "rendered in Chromium without console errors: {} ({:.0}% inked, {} colours)",
                    png.display(),
                    100.0 * check.ink,
                    check.colours
                )?;
            }
        }
        Command::Bench { which: BenchKind::Metrics { data, repeat } } => {
            let result = scenetok::bench::metrics::run(&data, repeat)?;
            write!(stdout, "{}", result.report())?;
        }
        Command::Bench { which: BenchKind::Image { data, model, runs, python, no_baseline, baseline_huge_pages } } => {
            let baseline = (!no_baseline).then_some(Baseline { python, huge_pages: baseline_huge_pages });
            bench_image_command(data, &model, runs, baseline, &mut stdout)?
        }
        Command::Features { data, segment, out, model, map, frames, with_maps } => {
            let opts =
                scenetok::models::image_encoder::export::ExportOptions { segment, max_frames: frames, map, with_maps };
            features_command(&data, &out, opts, &model, &mut stdout)?
        }
        Command::Demo { out, frames } => demo(&out, frames, &mut stdout)?,
        Command::Viz(args) => viz(args, &mut stdout)?,
        Command::Fixture { out } => {
            let files = scenetok::io::fixture::write(&out)?;
            writeln!(stdout, "wrote {} component files under {}", files.len(), out.display())?;
        }
    }
    Ok(())
}

fn demo(out: &std::path::Path, frames: usize, stdout: &mut impl std::io::Write) -> Result<()> {
    use scenetok::eval::runner::{evaluate, load_scenarios, write_run};
    use scenetok::models::baselines::Baseline;
    let world = out.join("world");
    if world.join("scenetok_manifest.json").exists() {
        writeln!(stdout, "using the world already generated in {}", world.display())?;
    } else {
        let mut cfg = scenetok::sim::generate::GenerateConfig::preset(scenetok::sim::generate::Preset::Tiny);
        (cfg.segments, cfg.frames) = (1, frames);
        let bar = indicatif::ProgressBar::new(frames as u64);
        let manifest = scenetok::sim::generate::generate(&world, &cfg, |_, _| bar.inc(1))?;
        bar.finish_and_clear();
        writeln!(stdout, "generated {} segment(s) of {frames} frames in {}", manifest.segments.len(), world.display())?;
    }
    let mut inputs = vec![("generated world", world.clone())];
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/waymo-samples/womd/motion_data_one_scenario.tfrecord");
    if sample.exists() {
        inputs.push(("real WOMD scenario", sample));
    }
    let mut reports = Vec::new();
    for (label, data) in inputs {
        let scenarios = load_scenarios(&data, 20)?;
        writeln!(stdout, "\n{label}: {} scenario(s)", scenarios.len())?;
        writeln!(
            stdout,
            "  {:<18} {:>8} {:>8} {:>6} {:>6} {:>8}",
            "model", "minADE", "minFDE", "MR", "mAP", "softmAP"
        )?;
        for model in Baseline::ALL {
            let report = evaluate(&scenarios, model, &data.display().to_string())?;
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
        }
    }
    demo_perception(out, &world, stdout)?;
    // The map-aware baseline against constant velocity, on the generated world.
    let generated: Vec<&std::path::PathBuf> =
        reports.iter().filter(|(_, l)| *l == "generated world").map(|(d, _)| d).collect();
    let run = |name: &str| generated.iter().find(|d| d.ends_with(name)).copied();
    if let (Some(a), Some(b)) = (run(Baseline::ConstantVelocity.name()), run(Baseline::LaneFollower.name())) {
        let (ra, _) = scenetok::eval::report::load_run(a)?;
        let (rb, _) = scenetok::eval::report::load_run(b)?;
        let cmp = out.join("compare-constant-velocity-vs-lane-follower");
        scenetok::eval::report::write_comparison(&cmp, ("constant-velocity", &ra), ("lane-follower", &rb))?;
    }
    writeln!(stdout, "\nreports (report.html, report.md), metrics, predictions and submissions:")?;
    for (dir, label) in &reports {
        writeln!(stdout, "  {}  ({label})", dir.join("report.html").display())?;
    }
    writeln!(
        stdout,
        "  {}  (comparison)",
        out.join("compare-constant-velocity-vs-lane-follower/report.html").display()
    )?;
    Ok(())
}

/// The demo's perception stages on the generated world: the trained LiDAR encoder's
/// segmentation (mIoU), image features for every LiDAR point, and a rerun recording of the
/// segment with the motion predictions.
fn demo_perception(out: &std::path::Path, world: &std::path::Path, stdout: &mut impl std::io::Write) -> Result<()> {
    use scenetok::models::{image_encoder, lidar_seg};
    let frames = Some(20);
    let model = lidar_seg::LidarSegModel::load(&lidar_seg::LidarSegModel::default_path())?;
    let seg = lidar_seg::evaluate(world, &model, frames)?;
    let dir = out.join("lidar_seg");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("metrics.json"), serde_json::to_string_pretty(&seg)?)?;
    writeln!(
        stdout,
        "\nLiDAR segmentation (MinkUNet, shipped weights) on {} frames: mIoU {:.3} over {} classes ({} labelled points;\n  the demo's lidars are 1/8 x 1/16 of Waymo's resolution, the weights were trained at full size: README has that number)",
        seg.frames,
        seg.miou,
        seg.classes.len(),
        seg.points
    )?;

    let cfg = image_encoder::ModelConfig::load(image_encoder::default_config_path())?;
    let mut encoder = image_encoder::ImageEncoder::load(cfg, Default::default())?;
    let opts = image_encoder::export::ExportOptions { max_frames: Some(2), ..Default::default() };
    let f = image_encoder::export::export_features(&mut encoder, world, &out.join("features.parquet"), &opts)?;
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

    let ds = scenetok::io::v2::Dataset::open(world)?;
    let rrd = out.join("world.rrd");
    let sink = scenetok::viz::VizSink::Save(rrd.clone());
    let rec = scenetok::viz::open_recording("scenetok demo", &sink, scenetok::viz::Layout::Perception)?;
    let opts = scenetok::viz::VizOptions { frames: Some(0..40), ..Default::default() };
    let summary = scenetok::viz::record_dataset(&ds, &opts, &rec)?;
    rec.flush_blocking()?;
    drop(rec);
    let scenarios = scenetok::eval::runner::load_scenarios(world, 20)?;
    let report = scenetok::eval::runner::evaluate(
        &scenarios,
        scenetok::models::baselines::Baseline::LaneFollower,
        &world.display().to_string(),
    )?;
    let motion_rrd = out.join("motion.rrd");
    let rec = scenetok::viz::open_recording(
        "scenetok demo: motion",
        &scenetok::viz::VizSink::Save(motion_rrd.clone()),
        scenetok::viz::Layout::Motion,
    )?;
    scenetok::viz::record_motion(&rec, &scenarios, &[scenetok::viz::MotionRun::from_report(&report)])?;
    rec.flush_blocking()?;
    writeln!(
        stdout,
        "rerun recordings: {} ({} frames, {} points, {} images) and {} (lane-follower predictions); `rerun FILE` opens them",
        rrd.display(),
        summary.frames,
        summary.points,
        summary.images,
        motion_rrd.display()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // `scenetok inspect … | head` closes the pipe early: not an error worth a word.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
