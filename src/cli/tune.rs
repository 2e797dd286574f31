//! `scenetok tune`: autotune the sparse-conv dataflows of a network on real frames.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use std::collections::BTreeMap;

use scenetok::backend::{Dataflow, Device, Precision};
use scenetok::models::lidar_seg::{CLASSES, FEATURES, LidarPoints};
use scenetok::pipeline::stages::PointsStage;
use scenetok::pipeline::{FrameContext, FrameSelection, Pipeline, Source};
use scenetok::scene::LaserName;
use scenetok::sparse::SparseTensor;
use scenetok::sparse::layers::RunCtx;
use scenetok::sparse::nets::{MinkUNet, MinkUNetConfig, SparseResNet21D};
use scenetok::sparse::quant::{self, Guard};
use scenetok::sparse::tune::{TuneRecord, tune};
use scenetok::sparse::voxelize;
use scenetok::sparse::weights::Params;

use super::DeviceArg;

/// Where `scenetok tune` stores its choices and `eval` looks for them.
pub const TUNING_DIR: &str = "runs/tuning";

/// The tuning label of a voxel size.
pub fn scale_label(voxel: f32) -> String {
    format!("voxel{voxel}")
}

#[derive(clap::Args)]
pub struct Args {
    /// A v2 dataset whose frames (all five lidars) are the tuning inputs.
    #[arg(long)]
    data: PathBuf,
    /// Network: `minkunet` or `resnet21d`.
    #[arg(long, default_value = "minkunet")]
    network: String,
    #[arg(long, default_value_t = 1.0)]
    width: f32,
    #[arg(long, default_value_t = 0.1)]
    voxel: f32,
    #[arg(long, default_value_t = 2)]
    frames: usize,
    /// Interleaved timing rounds per candidate (the fastest counts).
    #[arg(long, default_value_t = 2)]
    reps: usize,
    /// Where tunings are stored (one JSON per network, device and input scale).
    #[arg(long, default_value = TUNING_DIR)]
    dir: PathBuf,
    #[command(flatten)]
    device: DeviceArg,
}

/// A network with random weights at a width, as one forward closure.
pub enum Net {
    MinkUNet(Box<MinkUNet>),
    ResNet(Box<SparseResNet21D>),
}

impl Net {
    pub fn build(name: &str, width: f32, device: &Device) -> Result<Self> {
        let mut p = Params::random(0);
        Ok(match name {
            "minkunet" => Net::MinkUNet(Box::new(MinkUNet::build(
                MinkUNetConfig { in_channels: FEATURES, num_classes: CLASSES, width },
                &mut p,
                device,
            )?)),
            "resnet21d" => Net::ResNet(Box::new(SparseResNet21D::build(FEATURES, width, &mut p, device)?)),
            other => anyhow::bail!("--network {other}: expected minkunet or resnet21d"),
        })
    }
    /// Packs BF16 and INT8 weights (calibrated on `calib`, SmoothQuant α 0.5) and returns
    /// the guarded per-conv choice (MinkUNet only).
    pub fn prepare_lowp(&mut self, device: &Device, calib: &[SparseTensor]) -> Result<BTreeMap<String, Precision>> {
        match self {
            Net::MinkUNet(n) => Ok(quant::prepare(n.as_mut(), device, calib, Some(0.5), Guard::default())?.precisions),
            Net::ResNet(_) => anyhow::bail!("low precision is prepared for MinkUNet only"),
        }
    }
    pub fn forward(&self, x: &SparseTensor, ctx: &RunCtx) -> scenetok::Result<()> {
        match self {
            Net::MinkUNet(n) => n.forward(x, ctx).map(drop),
            Net::ResNet(n) => n.forward(x, ctx).map(drop),
        }
    }
}

/// The first `frames` frames' first-return points of every lidar (the encoder's input).
pub fn load_frames(data: &Path, frames: usize) -> Result<Vec<LidarPoints>> {
    load_frames_of(data, frames, &[])
}

/// The first `frames` frames' first returns of `lasers` (all of them when empty).
pub fn load_frames_of(data: &Path, frames: usize, lasers: &[LaserName]) -> Result<Vec<LidarPoints>> {
    let source = Source::open(data)?;
    let mut points = Pipeline::new().then(PointsStage::first_returns(lasers))?;
    let selection = FrameSelection::all().request(points.request());
    let mut out = Vec::new();
    for frame in source.frames(&selection)?.take(frames) {
        let mut ctx = FrameContext::new(frame?);
        points.run(&mut ctx)?;
        let mut pts = LidarPoints::default();
        for c in &ctx.points {
            pts.push_cloud(&c.cloud, None);
        }
        out.push(pts);
    }
    anyhow::ensure!(!out.is_empty(), "{}: no lidar frames", data.display());
    Ok(out)
}

/// Voxel tensors of `frames` on `device`.
pub fn inputs(frames: &[LidarPoints], voxel: f32, device: &Device) -> Result<Vec<SparseTensor>> {
    frames.iter().map(|f| Ok(voxelize(device, &[f.as_ref()], voxel)?.tensor)).collect()
}

pub fn run(args: Args, stdout: &mut impl Write) -> Result<()> {
    let device = args.device.open()?;
    let frames = load_frames(&args.data, args.frames)?;
    let inputs = inputs(&frames, args.voxel, &device)?;
    let net = Net::build(&args.network, args.width, &device)?;
    let groups = tune(&inputs, &Dataflow::candidates(), args.reps, &|x, c| net.forward(x, c))?;
    let record = TuneRecord {
        network: format!("{}-w{}", args.network, args.width),
        device: device.backend().tuning_key(),
        scale: scale_label(args.voxel),
        groups,
    };
    let path = record.save(&args.dir)?;
    writeln!(stdout, "{:<16} {:>6} {:<26} {:>9} {:>11}", "group", "layers", "chosen", "ms", "default ms")?;
    for g in &record.groups {
        writeln!(
            stdout,
            "{:<16} {:>6} {:<26} {:>9.2} {:>11.2}",
            g.key.label(),
            g.layers,
            g.dataflow.label(),
            g.ms,
            g.default_ms
        )?;
    }
    writeln!(stdout, "stored {}", path.display())?;
    Ok(())
}
