//! The scene-token stage: the first-return points of every laser, with the LiDAR-encoder
//! and image features the earlier stages attached (each optional), and the frame's 3-D box
//! labels → scene elements ([`crate::models::scene_tokens`]).

use crate::error::Result;
use crate::geom::range_image::INTENSITY;
use crate::io::v2::{Component, FrameRequest};
use crate::models::image_encoder::PointFeatures;
use crate::models::scene_tokens::{PointFeatureSource, TokenConfig, TokenInput, extract};
use crate::pipeline::context::{FrameContext, Return, TokenOutput};
use crate::pipeline::stage::{Stage, StageKind};

/// Points, features and boxes → elements.
#[derive(Debug, Clone, Default)]
pub struct TokensStage {
    pub config: TokenConfig,
}

impl TokensStage {
    pub fn new(config: TokenConfig) -> Self {
        TokensStage { config }
    }
}

impl Stage for TokensStage {
    fn kind(&self) -> StageKind {
        StageKind::Tokens
    }
    fn name(&self) -> &'static str {
        "tokens"
    }
    fn request(&self) -> Option<FrameRequest> {
        Some(FrameRequest::only(&[Component::LidarBox]).without_second_returns())
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        let mut xyz = Vec::new();
        let mut intensity = Vec::new();
        let mut clouds = Vec::new();
        for (c, cloud) in ctx.points.iter().enumerate().filter(|(_, c)| c.ret == Return::First) {
            let start = xyz.len();
            xyz.extend_from_slice(&cloud.cloud.xyz);
            let ch = cloud.cloud.channels;
            if ch > INTENSITY {
                intensity.extend(cloud.cloud.features.chunks_exact(ch).map(|f| f[INTENSITY]));
            } else {
                intensity.resize(xyz.len(), f32::NAN);
            }
            clouds.push((c, start..xyz.len()));
        }
        let image = ctx.image.as_ref().map(|im| ImagePoints {
            parts: clouds.iter().filter_map(|(c, r)| im.points.get(*c).map(|f| (r.start, f))).collect(),
            channels: im.points.iter().map(|p| p.features.ncols()).max().unwrap_or(0),
        });
        let host;
        let lidar = match &ctx.lidar {
            Some(l) => {
                let feats = &l.features.feats;
                let table = match feats.as_host() {
                    Some(t) => t,
                    None => {
                        host = l.features.device.backend().download(feats)?;
                        &host
                    }
                };
                // Where each of our clouds lies in the encoder's sweep (the same first returns,
                // so usually the same places): read through, never copied.
                let parts = clouds
                    .iter()
                    .filter_map(|(c, r)| {
                        let s = l.spans.get(*c)?.as_ref().filter(|s| s.len() == r.len())?;
                        Some((r.start, s.start, r.len()))
                    })
                    .collect();
                Some(VoxelRows { table, channels: feats.cols(), rows: &l.point_voxel, parts })
            }
            None => None,
        };
        let input = TokenInput {
            xyz: &xyz,
            intensity: &intensity,
            image: image.as_ref().map(|s| s as &dyn PointFeatureSource),
            lidar: lidar.as_ref().map(|s| s as &dyn PointFeatureSource),
            boxes: &ctx.frame.lidar_boxes,
        };
        let elements = extract(&input, &self.config);
        ctx.tokens = Some(TokenOutput { elements, clouds });
        Ok(())
    }
}

/// The image stage's per-cloud point features over the concatenated clouds.
struct ImagePoints<'a> {
    /// `(first point in the concatenation, that cloud's features)`, in order.
    parts: Vec<(usize, &'a PointFeatures)>,
    channels: usize,
}

impl PointFeatureSource for ImagePoints<'_> {
    fn channels(&self) -> usize {
        self.channels
    }
    fn feature(&self, i: usize) -> Option<&[f32]> {
        let k = self.parts.partition_point(|(s, _)| *s <= i).checked_sub(1)?;
        let (start, f) = self.parts[k];
        let local = i - start;
        if f.camera.get(local)?.is_none() || f.features.ncols() != self.channels {
            return None;
        }
        f.features.row(local).to_slice()
    }
}

/// The LiDAR encoder's voxel features, read through each point's voxel row.
struct VoxelRows<'a> {
    table: &'a [f32],
    channels: usize,
    /// The voxel row of each point of the encoder's sweep.
    rows: &'a [Option<u32>],
    /// `(first point here, first point in the sweep, points)` per cloud the encoder took.
    parts: Vec<(usize, usize, usize)>,
}

impl PointFeatureSource for VoxelRows<'_> {
    fn channels(&self) -> usize {
        self.channels
    }
    fn feature(&self, i: usize) -> Option<&[f32]> {
        let k = self.parts.partition_point(|p| p.0 <= i).checked_sub(1)?;
        let (here, sweep, len) = self.parts[k];
        if i - here >= len {
            return None;
        }
        let r = (*self.rows.get(sweep + i - here)?)? as usize;
        self.table.get(r * self.channels..(r + 1) * self.channels)
    }
}
