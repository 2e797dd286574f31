//! The LiDAR encoder stage: the first-return points of the frame through the sparse-conv
//! segmenter as one sweep; each point's class and the voxel features go into the context.

use crate::error::Result;
use crate::models::lidar_seg::{LidarPoints, LidarSegModel};
use crate::pipeline::context::{FrameContext, LidarOutput, Return};
use crate::pipeline::stage::{Stage, StageKind};
use crate::sparse::layers::RunCtx;

/// Points → voxels → MinkUNet → classes and features.
pub struct LidarStage {
    model: LidarSegModel,
    run: RunCtx,
}

impl LidarStage {
    /// `run` picks the dataflow per layer group (e.g. a stored tuning).
    pub fn new(model: LidarSegModel, run: RunCtx) -> Self {
        LidarStage { model, run }
    }
    pub fn model(&self) -> &LidarSegModel {
        &self.model
    }
    /// Channels of the voxel features it puts in the context (the last decoder level's).
    pub fn channels(&self) -> usize {
        self.model.net.config.channels()[8]
    }
}

impl Stage for LidarStage {
    fn kind(&self) -> StageKind {
        StageKind::LidarFeatures
    }
    fn name(&self) -> &'static str {
        "lidar"
    }

    fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        // Every laser's first return is one sweep of the scene, as the encoder was trained.
        let mut pts = LidarPoints::default();
        let mut spans = Vec::with_capacity(ctx.points.len());
        for c in &ctx.points {
            if c.ret == Return::First {
                let start = pts.len();
                pts.push_cloud(&c.cloud, None);
                spans.push(Some(start..pts.len()));
            } else {
                spans.push(None);
            }
        }
        let seg = self.model.segment(&pts, &self.run)?;
        let classes = spans.iter().map(|s| s.clone().map(|r| seg.classes[r].to_vec())).collect();
        ctx.lidar = Some(LidarOutput {
            classes,
            features: seg.features,
            point_voxel: seg.point_voxel,
            spans,
            voxel_size: self.model.voxel_size,
        });
        Ok(())
    }
}
