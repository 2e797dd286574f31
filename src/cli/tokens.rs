//! `scenetok tokens`: the scene elements (MoST tokens before their learned projection) of a
//! dataset's frames, as parquet: OUT (elements) and OUT's stem + `.points.parquet`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use scenetok::io::shard::Shard;
use scenetok::models::lidar_seg::{LidarSegModel, WEIGHTS_FILE};
use scenetok::models::scene_tokens::TokenConfig;
use scenetok::pipeline::export::{TokenExport, check_token_outputs, export_tokens};
use scenetok::pipeline::stages::{ImageStage, LidarStage};
use scenetok::pipeline::{Segments, Source};
use scenetok::sparse::layers::RunCtx;

use super::features::ImageModelArgs;
use super::{Context, DeviceArg};

#[derive(clap::Args)]
pub struct Args {
    /// A v2 dataset folder or a v1 Frame TFRecord.
    #[arg(long)]
    data: PathBuf,
    /// The elements file; the per-point file goes next to it.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, conflicts_with = "shard")]
    segment: Option<String>,
    /// Only this shard's segments (I/N: segment k in the input's order where k mod N = I);
    /// each shard writes its own OUT.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
    /// At most this many frames per segment.
    #[arg(long)]
    frames: Option<usize>,
    #[command(flatten)]
    models: TokenModelArgs,
    /// At most this many elements per frame (agents, then objects, then ground tiles, each
    /// nearest first).
    #[arg(long, default_value_t = TokenConfig::default().max_tokens)]
    max_tokens: usize,
}

/// The models whose features the elements pool (both by default).
#[derive(clap::Args)]
pub struct TokenModelArgs {
    /// LiDAR-encoder weights (default: the shipped ones).
    #[arg(long)]
    lidar_weights: Option<PathBuf>,
    /// Without the LiDAR encoder's voxel features.
    #[arg(long)]
    no_lidar: bool,
    /// Without the image model's per-point features.
    #[arg(long)]
    no_image: bool,
    #[command(flatten)]
    model: ImageModelArgs,
    #[command(flatten)]
    device: DeviceArg,
}

impl TokenModelArgs {
    /// The LiDAR and image stages asked for (either may be left out).
    pub fn stages(&self, ctx: &Context) -> Result<(Option<LidarStage>, Option<ImageStage>)> {
        let device = self.device.open()?;
        let lidar = if self.no_lidar {
            None
        } else {
            let weights = match &self.lidar_weights {
                Some(w) => w.clone(),
                None => ctx.data()?.weights(WEIGHTS_FILE),
            };
            Some(LidarStage::new(LidarSegModel::load(&weights, &device)?, RunCtx::default()))
        };
        let image = if self.no_image { None } else { Some(ImageStage::new(self.model.encoder(ctx)?, None)?) };
        Ok((lidar, image))
    }
}

pub fn run(args: Args, ctx: &Context, stdout: &mut impl Write) -> Result<()> {
    // The input and the outputs first: a bad one is reported before the models load.
    let source = Source::open(&args.data)?;
    check_token_outputs(&args.out, &source)?;
    let (lidar, image) = args.models.stages(ctx)?;
    let job = TokenExport {
        lidar,
        image,
        config: TokenConfig { max_tokens: args.max_tokens, ..TokenConfig::default() },
        segments: match (args.segment, args.shard) {
            (Some(name), _) => Segments::Named(name),
            (None, Some(shard)) => Segments::Shard(shard),
            (None, None) => Segments::All,
        },
        max_frames: args.frames,
    };
    let s = export_tokens(job, &source, &args.out)?;
    let per = |k: usize| s.kinds[k] as f64 / s.frames.max(1) as f64;
    writeln!(
        stdout,
        "{} frames: {:.1} agents, {:.1} objects, {:.1} ground tiles per frame ({} dropped by the cap); \
         {:.1}% of {} points in an element; {} features per element ({} image, {} LiDAR channels)\nwrote {} and {}",
        s.frames,
        per(0),
        per(1),
        per(2),
        s.dropped,
        100.0 * s.points_in_elements as f64 / s.points.max(1) as f64,
        s.points,
        s.layout.len(),
        s.layout.image_channels,
        s.layout.lidar_channels,
        s.elements_file.display(),
        s.points_file.display()
    )?;
    Ok(())
}
