//! The LiDAR encoder's segmentation quality: per-class IoU and mIoU (upstream's rule: the
//! mean over the classes in the labels or the predictions, class 0 never scored) on the
//! labelled points of the chosen lasers, frame by frame through the pipeline.

use serde::Serialize;

use super::segmentation::ConfusionMatrix;
use crate::error::Result;
use crate::models::lidar_seg::{CLASSES, LidarSegModel};
use crate::pipeline::stages::{LidarStage, PointsStage};
use crate::pipeline::{FrameContext, FrameSelection, Pipeline, Source};
use crate::scene::LaserName;
use crate::sparse::layers::RunCtx;

/// Per-class IoU over labelled points.
#[derive(Debug, Clone, Serialize)]
pub struct SegReport {
    pub frames: usize,
    pub points: usize,
    /// `(class, IoU, labelled points)` for every class that occurs in labels or predictions.
    pub classes: Vec<(String, f64, u64)>,
    /// Mean IoU over the classes present in the labels or the predictions.
    pub miou: f64,
}

/// Confusion counts over frames.
#[derive(Debug, Clone)]
pub struct Confusion {
    matrix: ConfusionMatrix,
    frames: usize,
    points: usize,
}

impl Default for Confusion {
    fn default() -> Self {
        Confusion { matrix: ConfusionMatrix::new(CLASSES), frames: 0, points: 0 }
    }
}

impl Confusion {
    /// Adds one frame's predictions against its labels (labels ≤ 0 are skipped).
    pub fn add(&mut self, pred: &[i32], labels: &[i32]) {
        self.frames += 1;
        for (&p, &l) in pred.iter().zip(labels) {
            if l <= 0 || l as usize >= CLASSES {
                continue;
            }
            self.points += 1;
            self.matrix.add(l as usize, p.clamp(0, CLASSES as i32 - 1) as usize);
        }
    }

    pub fn report(&self) -> SegReport {
        let r = self.matrix.lidar_report();
        let classes = r.classes.into_iter().filter_map(|c| Some((c.class, c.iou?, c.support))).collect();
        SegReport { frames: self.frames, points: self.points, classes, miou: r.miou }
    }
}

impl SegReport {
    /// A text table.
    pub fn table(&self) -> String {
        let mut s = format!("LiDAR segmentation: {} frames, {} labelled points\n", self.frames, self.points);
        s += &format!("  {:<20} {:>7} {:>10}\n", "class", "IoU", "points");
        for (c, iou, n) in &self.classes {
            s += &format!("  {c:<20} {:>7.3} {n:>10}\n", iou);
        }
        s += &format!("  {:<20} {:>7.3}\n", "mIoU", self.miou);
        s
    }
}

/// Evaluates the model on the TOP lidar's labelled first-return points of the selected
/// segments and frames (the model takes what the pipeline gives it: TOP's points alone).
pub fn evaluate(source: &Source, frames: &FrameSelection, model: LidarSegModel, run: RunCtx) -> Result<SegReport> {
    let mut pipeline = Pipeline::new()
        .then(PointsStage::first_returns(&[LaserName::Top]).with_labels())?
        .then(LidarStage::new(model, run))?;
    let selection = frames.clone().request(pipeline.request());
    let mut conf = Confusion::default();
    let mut ctx = FrameContext::default();
    for frame in source.frames(&selection)? {
        ctx.load(frame?);
        pipeline.run(&mut ctx)?;
        let Some(lidar) = &ctx.lidar else { continue };
        let mut pred = Vec::new();
        let mut labels = Vec::new();
        for (cloud, classes) in ctx.points.iter().zip(&lidar.classes) {
            if let (Some(c), Some(l)) = (classes, &cloud.labels) {
                pred.extend_from_slice(c);
                labels.extend_from_slice(l);
            }
        }
        conf.add(&pred, &labels);
    }
    // Scores over no labelled point would read as an mIoU of 0, not as "nothing to score".
    if conf.points == 0 {
        return Err(crate::Error::invalid(
            crate::Location::file(source.path()),
            "labelled TOP points to score (a lidar_segmentation component with TOP labels)",
            format!("none in {} frame(s)", conf.frames),
        ));
    }
    Ok(conf.report())
}
