//! `scenetok serve`: the streaming server until SIGINT / SIGTERM, then a clean stop (complete
//! frames finished, incomplete ones dropped, results flushed, the final counters printed).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use scenetok::models::det::detector::WEIGHTS_FILE as DET_WEIGHTS;
use scenetok::models::det::{Detector, Ratios};
use scenetok::models::lidar_seg::{LidarSegModel, WEIGHTS_FILE as LIDAR_WEIGHTS};
use scenetok::models::motion::MotionModel;
use scenetok::models::motion::transformer::WEIGHTS_FILE as MOTION_WEIGHTS;
use scenetok::models::scene_tokens::TokenConfig;
use scenetok::pipeline::Pipeline;
use scenetok::pipeline::stages::{
    CameraDetStage, ImageStage, LidarStage, MotionStage, PointsStage, SegmentMaps, TokensStage,
};
use scenetok::scene::{CameraName, LaserName};
use scenetok::sparse::layers::RunCtx;
use scenetok::stream::presets::{PresetSpec, StageName};
use scenetok::stream::{FrameSink, Preset, ServeOptions, Server};
use scenetok::viz::VizSink;
use scenetok::viz::live::LiveView;

use super::features::ImageModelArgs;
use super::{Context, DeviceArg};

/// The pruning ratios the streaming preset's detector runs at: the searched set measured at
/// 1.39× on the backbone for ΔAP −0.007 [−0.021, +0.005] (README, SparseViT).
pub const STREAMING_DET_RATIOS: &str = "0.1/0.4/0.3,0.3,0.8,0.8/0.5";
/// The streaming preset's detector input scale (the weights': 0.5): on 100 held-out images
/// the pruned detector's AP is 0.118 at 0.35 against 0.124 at 0.5 (dense at 0.5: 0.1305), at
/// about half the backbone's work (README, Streaming).
pub const STREAMING_DET_SCALE: f64 = 0.35;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: any free port, printed on the first line).
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    #[command(flatten)]
    stages: StageArgs,
    /// Results later than this after their frame arrived (its last required part) are marked late.
    #[arg(long, default_value_t = 200)]
    deadline_ms: u64,
    /// Complete frames waiting for the pipeline besides the one ready (JPEGs decoded ahead);
    /// beyond, the oldest waiting (the ready one first) is dropped.
    #[arg(long, default_value_t = 2)]
    queue: usize,
    /// Frames in the stages at once (started, not finished; each stage runs on a thread of its
    /// own). Default: the preset's (streaming 2: one frame's detector overlaps the next one's
    /// points and motion; full 1: its stages each fill both cores, and a second frame in them
    /// only halves the speed of both).
    #[arg(long)]
    in_flight: Option<usize>,
    /// An incomplete frame is rejected this long after its first part arrived.
    #[arg(long, default_value_t = 2000)]
    frame_timeout_ms: u64,
    /// Rows within this many milliseconds of an open frame join it.
    #[arg(long, default_value_t = 5.0)]
    tolerance_ms: f64,
    /// Results waiting per subscriber; beyond, that subscriber loses them (counted).
    #[arg(long, default_value_t = 256)]
    subscriber_buffer: usize,
    /// Write every result to parquet parts in this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Frames per parquet part.
    #[arg(long, default_value_t = 600)]
    part_frames: usize,
    /// Log every processed frame live to a rerun viewer (`host:port` or a `rerun+http://…`
    /// URL; start one with `rerun` or `.venv/bin/rerun`).
    #[arg(long, value_name = "ADDR")]
    rerun: Option<String>,
    /// ...or to an `.rrd` file, complete when the server stops.
    #[arg(long, value_name = "FILE", conflicts_with = "rerun")]
    rerun_save: Option<PathBuf>,
    /// Print the counters this often (seconds; 0: only at the end).
    #[arg(long, default_value_t = 10.0)]
    stats_every: f64,
}

/// What runs on each frame: a preset, optionally changed.
#[derive(clap::Args)]
pub struct StageArgs {
    #[arg(long, value_enum, default_value = "streaming")]
    preset: Preset,
    /// The stages instead of the preset's (comma-separated: points,lidar,image,tokens,motion,detect).
    #[arg(long, value_enum, value_delimiter = ',')]
    stages: Option<Vec<StageName>>,
    /// The lasers instead of the preset's (TOP,FRONT,…).
    #[arg(long, value_delimiter = ',')]
    lasers: Option<Vec<String>>,
    /// The cameras instead of the preset's (FRONT,FRONT_LEFT,…).
    #[arg(long, value_delimiter = ',')]
    cameras: Option<Vec<String>>,
    /// SparseViT pruning ratios (`dense`, or blocks by commas and stages by slashes; default:
    /// the searched set for the streaming preset, dense for the full one).
    #[arg(long)]
    det_ratios: Option<String>,
    /// SparseViT's input scale instead of the weights' (0.5; the streaming preset: 0.35).
    #[arg(long)]
    det_scale: Option<f64>,
    /// The motion model.
    #[arg(long, value_enum, default_value = "transformer")]
    motion: MotionModel,
    #[command(flatten)]
    image: ImageModelArgs,
    #[command(flatten)]
    device: DeviceArg,
}

impl StageArgs {
    /// The preset with the changes asked for.
    pub fn spec(&self) -> Result<PresetSpec> {
        let mut spec = self.preset.spec();
        if let Some(s) = &self.stages {
            spec.stages = s.clone();
            spec.stages.sort();
            spec.stages.dedup();
        }
        if let Some(l) = &self.lasers {
            spec.lasers = l
                .iter()
                .map(|n| {
                    LaserName::from_name(n)
                        .with_context(|| format!("--lasers: expected {}, found `{n}`", LaserName::expected()))
                })
                .collect::<Result<_>>()?;
        }
        if let Some(c) = &self.cameras {
            spec.cameras = c
                .iter()
                .map(|n| {
                    CameraName::from_name(n)
                        .with_context(|| format!("--cameras: expected {}, found `{n}`", CameraName::expected()))
                })
                .collect::<Result<_>>()?;
        }
        Ok(spec)
    }

    /// The pipeline of `spec`'s stages with their models, and the maps its motion stage reads.
    pub fn pipeline(&self, ctx: &Context, spec: &PresetSpec) -> Result<(Pipeline, SegmentMaps)> {
        let device = self.device.open()?;
        let maps = SegmentMaps::default();
        let mut p = Pipeline::new();
        for stage in &spec.stages {
            p = match stage {
                StageName::Points => p.then(PointsStage::first_returns(&spec.lasers))?,
                StageName::Lidar => {
                    let model = LidarSegModel::load(&ctx.data()?.weights(LIDAR_WEIGHTS), &device)?;
                    p.then(LidarStage::new(model, RunCtx::default()))?
                }
                StageName::Image => p.then(ImageStage::new(self.image.encoder(ctx)?, None)?)?,
                StageName::Tokens => p.then(TokensStage::new(TokenConfig::default()))?,
                StageName::Detect => {
                    let mut det = Detector::load(&ctx.data()?.weights(DET_WEIGHTS), &device)?;
                    let scale = match (self.det_scale, self.preset) {
                        (Some(s), _) => Some(s),
                        (None, Preset::Streaming) => Some(STREAMING_DET_SCALE),
                        (None, Preset::Full) => None,
                    };
                    if let Some(s) = scale {
                        anyhow::ensure!(s > 0.0 && s <= 1.0, "--det-scale: expected a scale in (0, 1], found {s}");
                        det.scale = s;
                    }
                    let text = match (&self.det_ratios, self.preset) {
                        (Some(t), _) => t.clone(),
                        (None, Preset::Streaming) => STREAMING_DET_RATIOS.to_string(),
                        (None, Preset::Full) => "dense".to_string(),
                    };
                    let cfg = det.config().clone();
                    let ratios = if text == "dense" { Ratios::dense(&cfg) } else { Ratios::parse(&text, &cfg)? };
                    p.then(CameraDetStage::new(det, ratios, device.clone()))?
                }
                StageName::Motion => {
                    let model = self.motion.load(&ctx.data()?.weights(MOTION_WEIGHTS), &device)?;
                    p.then(MotionStage::new(model, maps.clone()))?
                }
            };
        }
        Ok((p, maps))
    }
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    let spec = args.stages.spec()?;
    let (pipeline, maps) = args.stages.pipeline(ctx, &spec)?;
    let mut opts = ServeOptions::new(args.listen, spec);
    opts.assembly.timeout = Duration::from_millis(args.frame_timeout_ms);
    opts.assembly.tolerance_micros = (args.tolerance_ms * 1e3).round() as i64;
    opts.queue_capacity = args.queue;
    opts.in_flight = args.in_flight.unwrap_or(args.stages.preset.in_flight()).max(1);
    opts.deadline = Duration::from_millis(args.deadline_ms);
    opts.subscriber_buffer = args.subscriber_buffer;
    opts.out = args.out.clone();
    opts.part_frames = args.part_frames;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = runtime.block_on(async {
        let sink: Option<Box<dyn FrameSink>> = match (&args.rerun, &args.rerun_save) {
            (Some(addr), _) => Some(Box::new(LiveView::open(&VizSink::Connect(addr.clone()))?)),
            (_, Some(file)) => Some(Box::new(LiveView::open(&VizSink::Save(file.clone()))?)),
            _ => None,
        };
        let server = Server::start(pipeline, maps, sink, opts).await?;
        writeln!(stdout, "listening on {}", server.local_addr())?;
        stdout.flush()?;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(args.stats_every.max(0.1)));
        tick.tick().await;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick(), if args.stats_every > 0.0 => {
                    writeln!(stdout, "{}", server.stats().summary())?;
                    stdout.flush()?;
                }
            }
        }
        writeln!(stdout, "stopping: finishing complete frames, dropping incomplete ones")?;
        anyhow::Ok(server.shutdown().await?)
    })?;
    writeln!(stdout, "{}", report.summary())?;
    writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
    if let Some(out) = &args.out {
        writeln!(stdout, "results: {} frames in {}", report.results_written, out.display())?;
    }
    Ok(())
}
