//! The LiDAR encoder's segmentation quality: per-class IoU and mIoU (upstream's rule: the
//! mean over the classes in the labels or the predictions, class 0 never scored) on the
//! labelled points of the chosen lasers, frame by frame through the pipeline. A shard's
//! confusion counts are its partial result ([`SegPartial`]): integer sums, so the merged
//! counts, and the report computed from them, are the single process's exactly.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::partial::{check_shard_set, read_partial, write_partial};
use super::run::EvalError;
use super::segmentation::ConfusionMatrix;
use crate::error::{Error, Location, Result};
use crate::io::shard::Shard;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

    /// Frames seen (with or without labelled points).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Labelled points scored.
    pub fn points(&self) -> usize {
        self.points
    }

    /// Sums another shard's counts into these.
    pub fn absorb(&mut self, other: &Confusion) {
        self.matrix.merge(&other.matrix);
        self.frames += other.frames;
        self.points += other.points;
    }

    /// The report of these counts; none labelled point to score is an error about `data`
    /// (an mIoU over nothing would read as 0, not as "nothing to score").
    pub fn scored_report(&self, data: &Path) -> Result<SegReport> {
        if self.points == 0 {
            return Err(Error::invalid(
                Location::file(data),
                "labelled TOP points to score (a lidar_segmentation component with TOP labels)",
                format!("none in {} frame(s)", self.frames),
            ));
        }
        Ok(self.report())
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
    confusion(source, frames, model, run)?.scored_report(source.path())
}

/// The confusion counts of [`evaluate`] (a shard's may hold no point).
pub fn confusion(source: &Source, frames: &FrameSelection, model: LidarSegModel, run: RunCtx) -> Result<Confusion> {
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
    Ok(conf)
}

/// What a LiDAR-segmentation partial file starts with; another value is refused.
pub const PARTIAL_FORMAT: &str = "scenetok-lidarseg-partial/1";

/// A shard's LiDAR-segmentation evaluation (`eval --task lidar-seg --shard I/N --partial`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegPartial {
    pub format: String,
    /// The weights and the data as given on the command line (the same on every shard).
    pub weights: String,
    pub data: String,
    pub shard: Shard,
    pub confusion: Confusion,
}

impl SegPartial {
    pub fn new(weights: &Path, data: &Path, shard: Shard, confusion: Confusion) -> Self {
        SegPartial {
            format: PARTIAL_FORMAT.into(),
            weights: weights.display().to_string(),
            data: data.display().to_string(),
            shard,
            confusion,
        }
    }

    /// The whole evaluation from every shard's partial (`names` say where each came from).
    pub fn merge(parts: Vec<(String, SegPartial)>) -> Result<SegPartial, EvalError> {
        check_shard_set(
            parts.iter().map(|(name, p)| (name.as_str(), format!("weights {} on {}", p.weights, p.data), p.shard)),
        )?;
        let mut parts = parts.into_iter().map(|(_, p)| p);
        let Some(mut whole) = parts.next() else { return Err(EvalError::Other("no partial results to merge".into())) };
        for p in parts {
            whole.confusion.absorb(&p.confusion);
        }
        whole.shard = Shard::ALL;
        Ok(whole)
    }

    /// The report of the whole evaluation.
    pub fn report(&self) -> Result<SegReport> {
        self.confusion.scored_report(Path::new(&self.data))
    }

    /// Writes the partial (JSON for a `.json` name, else MessagePack: [`Encoding`](super::partial::Encoding)), whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), EvalError> {
        write_partial(path, self)
    }

    /// Reads a partial written by [`write`](Self::write).
    pub fn read(path: &Path) -> Result<SegPartial, EvalError> {
        let p = read_partial(path, PARTIAL_FORMAT, |p: &SegPartial| &p.format)?;
        let found = p.confusion.matrix.classes();
        if found != CLASSES {
            let expected = format!("a confusion matrix of the {CLASSES} LiDAR classes");
            return Err(Error::invalid(Location::file(path), expected, format!("one of {found} classes")).into());
        }
        Ok(p)
    }
}
