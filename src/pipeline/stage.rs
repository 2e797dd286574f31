//! Stages and the pipeline that runs them on a frame, in order, timing each.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::io::v2::FrameRequest;

use super::context::FrameContext;
use super::timing::StageTimes;

/// The stages of a frame, in the order they run: each reads what the earlier ones put in
/// the [`FrameContext`]. Later stages (scene tokens, motion, the SparseRefine and SparseViT
/// heads) take their places in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageKind {
    /// Range images → points per laser and return.
    Points,
    /// The sparse-conv LiDAR encoder over the points.
    LidarFeatures,
    /// The image model over the cameras, sampled per point.
    ImageFeatures,
    /// Scene tokens from the points, their features and the boxes.
    Tokens,
    /// Motion prediction.
    Motion,
    /// Perception heads (segmentation, detection).
    Heads,
}

/// One step of the per-frame graph.
pub trait Stage: Send {
    /// Where the stage runs in the frame's order.
    fn kind(&self) -> StageKind;
    /// The name its timings go under.
    fn name(&self) -> &'static str;
    /// The parts of a v2 frame the stage reads (`None`: only what earlier stages made).
    fn request(&self) -> Option<FrameRequest> {
        None
    }
    /// Reads the context, adds its output.
    fn run(&mut self, ctx: &mut FrameContext) -> Result<()>;
}

/// Stages in order, with the timings of every frame run so far.
#[derive(Default)]
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    times: StageTimes,
}

impl Pipeline {
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Adds a stage after the others; a stage that belongs before one already there is an
    /// error (its inputs would not be filled when it runs).
    pub fn then(mut self, stage: impl Stage + 'static) -> Result<Self> {
        if let Some(last) = self.stages.last()
            && last.kind() > stage.kind()
        {
            return Err(Error::invalid(
                crate::error::Location::default().detail("pipeline"),
                format!(
                    "stage `{}` before `{}` ({:?} runs before {:?})",
                    stage.name(),
                    last.name(),
                    stage.kind(),
                    last.kind()
                ),
                format!("`{}` after `{}`", stage.name(), last.name()),
            ));
        }
        self.stages.push(Box::new(stage));
        Ok(self)
    }

    /// What a v2 frame must be read with for these stages: every component any of them
    /// reads, second returns when one of them wants them.
    pub fn request(&self) -> FrameRequest {
        let mut out = FrameRequest::only(&[]).without_second_returns();
        for r in self.stages.iter().filter_map(|s| s.request()) {
            out.components.extend(r.components);
            out.second_returns |= r.second_returns;
        }
        out
    }

    /// Runs every stage on the frame in `ctx`, recording each one's wall time in the
    /// context and in the pipeline's totals.
    pub fn run(&mut self, ctx: &mut FrameContext) -> Result<()> {
        for stage in &mut self.stages {
            let t = Instant::now();
            stage.run(ctx)?;
            let d = t.elapsed();
            ctx.times.push((stage.name(), d));
            self.times.record(stage.name(), d);
        }
        Ok(())
    }

    /// Per-stage timings over every frame run.
    pub fn times(&self) -> &StageTimes {
        &self.times
    }

    /// The stages' names, in order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// One pipeline per stage, in order, so that each can run on a thread of its own with a
    /// queue between them (the streaming server): running them in turn on a context is
    /// running this one.
    pub fn into_single_stages(self) -> Vec<Pipeline> {
        self.stages.into_iter().map(|stage| Pipeline { stages: vec![stage], times: StageTimes::default() }).collect()
    }
}
