//! `scenetok features`: per-camera and per-point image features as parquet.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::models::image_encoder::{EncoderOptions, ImageEncoder, ModelConfig, default_config_path};
use scenetok::pipeline::Source;
use scenetok::pipeline::export::{ExportOptions, check_outputs, export_features};

use super::{Context, DeviceArg};

#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    device: DeviceArg,
}

/// Which image model and how to run it.
#[derive(clap::Args)]
pub struct ImageModelArgs {
    /// Model config (default: the data folder's models/efficientnet_lite0.toml).
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
    pub fn options(&self) -> EncoderOptions {
        EncoderOptions { threads: self.threads, huge_pages: !self.no_huge_pages, ..Default::default() }
    }
    pub fn config_path(&self, ctx: &Context) -> Result<PathBuf> {
        match &self.model {
            Some(p) => Ok(p.clone()),
            None => Ok(default_config_path(&ctx.data()?)),
        }
    }
    pub fn scale(&self) -> Option<f64> {
        self.scale
    }
    pub fn encoder(&self, ctx: &Context) -> Result<ImageEncoder> {
        let mut cfg = ModelConfig::load(self.config_path(ctx)?)?;
        if let Some(s) = self.scale {
            cfg = cfg.with_scale(s)?;
        }
        Ok(ImageEncoder::load(cfg, self.options())?)
    }
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    // The image model runs on ONNX Runtime's CPU provider; the device is checked so
    // `--device` means the same on every command.
    args.device.open()?;
    // The input and the outputs first: a bad one is reported before the model loads.
    let source = Source::open(&args.data)?;
    check_outputs(&args.out, &source)?;
    let encoder = args.model.encoder(ctx)?;
    let opts =
        ExportOptions { segment: args.segment, max_frames: args.frames, map: args.map, with_maps: args.with_maps };
    let s = export_features(encoder, &source, &args.out, &opts)?;
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
