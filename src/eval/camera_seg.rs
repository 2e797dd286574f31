//! Camera semantic segmentation quality: per-class IoU and mIoU over labelled pixels (the
//! camera challenge's 29 classes, [`super::segmentation`]) and a boundary F-score.
//!
//! **Boundary F-score** (class-agnostic, pooled over images): a pixel is a boundary pixel of a
//! class map when one of its 4 neighbours has another class; undefined (0) ground-truth pixels
//! are neither boundary nor scored, and a neighbour that is undefined in the ground truth does
//! not make a boundary in either map. Precision: the share of predicted boundary pixels within
//! `tolerance` pixels (Chebyshev distance) of a ground-truth boundary pixel; recall: the share of
//! ground-truth boundary pixels within `tolerance` of a predicted one; F = 2PR / (P + R). The
//! tolerance is in full-resolution pixels (default 3), the same for every method compared.
//!
//! A shard's frames with their counts (per image confusion, boundary and selection counts,
//! seconds) are its partial result ([`CameraSegPartial`]): integer counts, so merged back in
//! the input's order they give the single process's metrics and intervals exactly (but for
//! wall times).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::segmentation::{ConfusionMatrix, SegmentationReport};

/// Matched and total boundary pixels of each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundaryCounts {
    pub pred_matched: u64,
    pub pred_total: u64,
    pub gt_matched: u64,
    pub gt_total: u64,
}

impl BoundaryCounts {
    pub fn precision(&self) -> f64 {
        self.pred_matched as f64 / self.pred_total.max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.gt_matched as f64 / self.gt_total.max(1) as f64
    }
    pub fn f_score(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
    pub fn merge(&mut self, o: &BoundaryCounts) {
        self.pred_matched += o.pred_matched;
        self.pred_total += o.pred_total;
        self.gt_matched += o.gt_matched;
        self.gt_total += o.gt_total;
    }
}

/// Boundary pixels of `classes` (`w × h`), where `gt` is labelled (non-zero) at the pixel and
/// at the neighbour.
fn boundary(classes: &[u8], gt: &[u8], w: usize, h: usize) -> Vec<bool> {
    let mut b = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if gt[i] == 0 {
                continue;
            }
            let differs = |j: usize| gt[j] != 0 && classes[j] != classes[i];
            b[i] = (x + 1 < w && differs(i + 1))
                || (x > 0 && differs(i - 1))
                || (y + 1 < h && differs(i + w))
                || (y > 0 && differs(i - w));
        }
    }
    b
}

/// `mask` dilated by a `(2r+1)²` square (separable: rows, then columns).
fn dilate(mask: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut rows = vec![false; w * h];
    for y in 0..h {
        let m = &mask[y * w..][..w];
        // Distance to the last set pixel on the left and the next on the right.
        let mut last: Option<usize> = None;
        let mut left = vec![usize::MAX; w];
        for x in 0..w {
            if m[x] {
                last = Some(x);
            }
            left[x] = last.map_or(usize::MAX, |l| x - l);
        }
        let mut next: Option<usize> = None;
        for x in (0..w).rev() {
            if m[x] {
                next = Some(x);
            }
            let right = next.map_or(usize::MAX, |n| n - x);
            rows[y * w + x] = left[x].min(right) <= r;
        }
    }
    let mut out = vec![false; w * h];
    for x in 0..w {
        let mut last: Option<usize> = None;
        let mut up = vec![usize::MAX; h];
        for y in 0..h {
            if rows[y * w + x] {
                last = Some(y);
            }
            up[y] = last.map_or(usize::MAX, |l| y - l);
        }
        let mut next: Option<usize> = None;
        for y in (0..h).rev() {
            if rows[y * w + x] {
                next = Some(y);
            }
            let down = next.map_or(usize::MAX, |n| n - y);
            out[y * w + x] = up[y].min(down) <= r;
        }
    }
    out
}

/// Boundary counts of one image's prediction against its labels (`w × h`, row-major).
pub fn boundary_counts(pred: &[u8], gt: &[u8], w: usize, h: usize, tolerance: usize) -> BoundaryCounts {
    let bp = boundary(pred, gt, w, h);
    let bg = boundary(gt, gt, w, h);
    let (dp, dg) = (dilate(&bp, w, h, tolerance), dilate(&bg, w, h, tolerance));
    let mut c = BoundaryCounts::default();
    for i in 0..w * h {
        if bp[i] {
            c.pred_total += 1;
            c.pred_matched += dg[i] as u64;
        }
        if bg[i] {
            c.gt_total += 1;
            c.gt_matched += dp[i] as u64;
        }
    }
    c
}

/// Confusion and boundary counts of one method over images.
#[derive(Debug, Clone)]
pub struct CameraSegScore {
    pub confusion: ConfusionMatrix,
    pub boundary: BoundaryCounts,
    pub tolerance: usize,
    pub images: usize,
    /// Each image's confusion (bootstrap intervals over images).
    pub per_image: Vec<ConfusionMatrix>,
}

/// The report of one method.
#[derive(Debug, Clone, Serialize)]
pub struct CameraSegReport {
    pub images: usize,
    pub segmentation: SegmentationReport,
    pub boundary_f: f64,
    pub boundary_precision: f64,
    pub boundary_recall: f64,
    pub boundary_tolerance_px: usize,
}

impl CameraSegScore {
    pub fn new(tolerance: usize) -> Self {
        CameraSegScore {
            confusion: ConfusionMatrix::camera(),
            boundary: BoundaryCounts::default(),
            tolerance,
            images: 0,
            per_image: Vec::new(),
        }
    }

    /// Adds one frame's images of a row (counted by [`evaluate`]).
    pub fn absorb(&mut self, row: &FrameRow) {
        for c in &row.confusion {
            self.images += 1;
            self.confusion.merge(c);
            self.per_image.push(c.clone());
        }
        self.boundary.merge(&row.boundary);
    }

    pub fn report(&self) -> CameraSegReport {
        CameraSegReport {
            images: self.images,
            segmentation: self.confusion.camera_report(),
            boundary_f: self.boundary.f_score(),
            boundary_precision: self.boundary.precision(),
            boundary_recall: self.boundary.recall(),
            boundary_tolerance_px: self.tolerance,
        }
    }
}

/// mIoU(b) − mIoU(a) over the same images, with its 95% percentile interval from `draws`
/// bootstrap resamplings of the images (paired: both methods on each drawn set).
pub fn paired_miou(a: &CameraSegScore, b: &CameraSegScore, draws: usize, seed: u64) -> super::bootstrap::Interval {
    use rand::{Rng, SeedableRng};
    let n = a.per_image.len().min(b.per_image.len());
    let estimate = b.confusion.camera_report().miou - a.confusion.camera_report().miou;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut diffs: Vec<f64> = (0..draws)
        .map(|_| {
            let (mut ca, mut cb) = (ConfusionMatrix::camera(), ConfusionMatrix::camera());
            for _ in 0..n {
                let i = rng.random_range(0..n);
                ca.merge(&a.per_image[i]);
                cb.merge(&b.per_image[i]);
            }
            cb.camera_report().miou - ca.camera_report().miou
        })
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((q * diffs.len() as f64).ceil() as usize).clamp(1, diffs.len()) - 1];
    if diffs.is_empty() {
        return super::bootstrap::Interval { estimate, low: estimate, high: estimate };
    }
    super::bootstrap::Interval { estimate, low: at(0.025), high: at(0.975) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_f_is_one_on_the_truth_and_falls_with_shift() {
        let (w, h) = (40, 30);
        // Two classes split at column 20, an undefined band on the top rows.
        let gt: Vec<u8> = (0..w * h)
            .map(|i| {
                if i / w < 3 {
                    0
                } else if i % w < 20 {
                    5
                } else {
                    7
                }
            })
            .collect();
        let same = boundary_counts(&gt, &gt, w, h, 0);
        assert_eq!(same.f_score(), 1.0);
        // Boundary pixels: both sides of the split, on the 27 labelled rows.
        assert_eq!(same.gt_total, 2 * 27);
        // The split moved by 3 columns (boundary columns 22, 23 against 19, 20): every pixel
        // matched at tolerance 3, half at 2, none at 1.
        let shifted: Vec<u8> = (0..w * h).map(|i| if i % w < 23 { 5 } else { 7 }).collect();
        assert_eq!(boundary_counts(&shifted, &gt, w, h, 3).f_score(), 1.0);
        assert_eq!(boundary_counts(&shifted, &gt, w, h, 1).f_score(), 0.0);
        let two = boundary_counts(&shifted, &gt, w, h, 2);
        assert!((two.precision() - 0.5).abs() < 1e-12 && (two.recall() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn dilation_is_the_chebyshev_ball() {
        let (w, h) = (9, 7);
        let mut m = vec![false; w * h];
        m[3 * w + 4] = true;
        let d = dilate(&m, w, h, 2);
        for y in 0..h {
            for x in 0..w {
                let inside = (x as i32 - 4).abs() <= 2 && (y as i32 - 3).abs() <= 2;
                assert_eq!(d[y * w + x], inside, "({x},{y})");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The evaluation: every labelled camera image of the selected frames, each method on it.

use std::time::Instant;

use super::partial::{check_shard_set, in_input_order, read_partial, write_partial};
use super::run::EvalError;
use crate::error::{Error, Location, Result};
use crate::io::shard::Shard;
use crate::io::v2::{Component, FrameRequest};
use crate::models::image_encoder::decode_frame_images;
use crate::models::image_encoder::preprocess::RgbView;
use crate::models::seg::refiner::{Refiner, refine_image};
use crate::models::seg::selector::{TauChoice, TauChooser};
use crate::models::seg::{DenseOutput, DenseSegModel, Entropy};
use crate::pipeline::{FrameSelection, Source};
use crate::scene::Frame;
use crate::sparse::layers::RunCtx;

/// What a frame is read with for camera segmentation.
pub fn camera_request() -> FrameRequest {
    FrameRequest::only(&[Component::CameraImage, Component::CameraCalibration, Component::CameraSegmentation])
        .without_second_returns()
}

/// One labelled image of a frame: decoded RGB and its semantic classes at full resolution.
pub struct LabelledImage {
    pub camera: crate::scene::CameraName,
    pub rgb: image::RgbImage,
    /// Semantic class per pixel, row-major (0 = undefined or not one of the 29 classes).
    pub classes: Vec<u8>,
}

/// The frame's cameras that have an image, a calibration and a segmentation label. A label
/// whose size is not the image's is an error naming the camera; cameras without a label are
/// skipped.
pub fn labelled_images(frame: &Frame, at: &Location) -> Result<Vec<LabelledImage>> {
    let images = decode_frame_images(frame, at)?;
    let mut out = Vec::new();
    for ((camera, _), rgb) in images.cameras.iter().zip(images.images) {
        let Some(label) = frame.cameras.iter().find(|c| c.camera == *camera).and_then(|c| c.segmentation.as_ref())
        else {
            continue;
        };
        let at = at.clone().frame(frame.timestamp_micros).detail(format!("camera {camera} segmentation"));
        if (label.width, label.height) != rgb.dimensions() {
            return Err(Error::invalid(
                at,
                format!("a label of the image's size {}x{}", rgb.width(), rgb.height()),
                format!("{}x{}", label.width, label.height),
            ));
        }
        if label.divisor <= 0 {
            return Err(Error::invalid(at, "a positive panoptic_label_divisor", label.divisor.to_string()));
        }
        let d = label.divisor as u32;
        let classes = label
            .values
            .iter()
            .map(|&v| {
                let c = v as u32 / d;
                if (c as usize) < crate::models::seg::CLASSES { c as u8 } else { 0 }
            })
            .collect();
        out.push(LabelledImage { camera: *camera, rgb, classes });
    }
    Ok(out)
}

/// Seconds (summed over images, or per image in a report) of each stage of one method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageMs {
    pub preprocess: f64,
    pub model: f64,
    /// Logits → classes (and entropy), then nearest-neighbour to full resolution.
    pub classify: f64,
    /// The entropy selector (SparseRefine only).
    pub select: f64,
    /// Gathering the selected pixels' RGB and low-resolution logits (SparseRefine only).
    pub gather: f64,
    /// The sparse refiner and the ensembler, and writing their classes back (SparseRefine only).
    pub refine: f64,
    pub total: f64,
}

impl StageMs {
    fn add(&mut self, o: &StageMs) {
        self.preprocess += o.preprocess;
        self.model += o.model;
        self.classify += o.classify;
        self.select += o.select;
        self.gather += o.gather;
        self.refine += o.refine;
        self.total += o.total;
    }
    fn scaled(&self, f: f64) -> StageMs {
        StageMs {
            preprocess: self.preprocess * f,
            model: self.model * f,
            classify: self.classify * f,
            select: self.select * f,
            gather: self.gather * f,
            refine: self.refine * f,
            total: self.total * f,
        }
    }
}

/// A selection against the dense prediction's errors, on labelled pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectionCounts {
    pub labelled: u64,
    pub selected: u64,
    /// Labelled pixels the dense prediction gets wrong, and those of them selected.
    pub wrong: u64,
    pub wrong_selected: u64,
}

impl SelectionCounts {
    fn add(&mut self, o: &SelectionCounts) {
        self.labelled += o.labelled;
        self.selected += o.selected;
        self.wrong += o.wrong;
        self.wrong_selected += o.wrong_selected;
    }
}

/// One method (a dense scale, or SparseRefine on it) over the evaluated images.
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    pub method: String,
    pub scale: f64,
    pub report: CameraSegReport,
    pub ms_per_image: StageMs,
    /// With a τ: the share of labelled pixels it selects, and of the dense errors.
    pub tau: Option<f32>,
    pub selected: Option<f64>,
    pub error_recall: Option<f64>,
    /// mIoU − the dense full-resolution model's, on the same images (95% bootstrap interval
    /// over images); for methods below full resolution when scale 1 is evaluated too.
    pub miou_vs_full: Option<super::bootstrap::Interval>,
    /// SparseRefine: mIoU − the dense model's at the same scale.
    pub miou_vs_dense: Option<super::bootstrap::Interval>,
}

/// Bootstrap resamplings of the images for the mIoU intervals.
pub const BOOTSTRAP_DRAWS: usize = 1000;

/// A dense model at one scale; with a τ its selection is reported, with a refiner too
/// SparseRefine runs on it (a second row, sharing the dense pass and its time).
pub struct DenseMethod {
    pub model: DenseSegModel,
    pub tau: Option<f32>,
    pub refiner: Option<Refiner>,
}

/// One row of the report as the evaluation runs it: a dense scale, or SparseRefine on the
/// dense row just before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSpec {
    pub method: String,
    pub scale: f64,
    pub tau: Option<f32>,
    pub refined: bool,
}

/// The report's rows for `methods`, in order.
pub fn rows_of(methods: &[DenseMethod]) -> Vec<RowSpec> {
    let mut rows = Vec::new();
    for m in methods {
        let scale = m.model.scale();
        rows.push(RowSpec { method: format!("dense ×{scale}"), scale, tau: m.tau, refined: false });
        if m.refiner.is_some() {
            rows.push(RowSpec { method: format!("refine ×{scale}"), scale, tau: m.tau, refined: true });
        }
    }
    rows
}

/// One row's counts on one frame's labelled images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameRow {
    /// Each image's confusion, in camera order (the bootstrap resamples images).
    pub confusion: Vec<ConfusionMatrix>,
    pub boundary: BoundaryCounts,
    pub selection: SelectionCounts,
    /// Seconds over the frame's images.
    pub seconds: StageMs,
}

impl FrameRow {
    fn new(seconds: StageMs) -> Self {
        FrameRow {
            confusion: Vec::new(),
            boundary: BoundaryCounts::default(),
            selection: SelectionCounts::default(),
            seconds,
        }
    }

    /// Adds one image: predicted and true classes at full resolution (`0` in `gt` = not scored).
    fn add_image(&mut self, pred: &[u8], gt: &[u8], w: usize, h: usize, tolerance: usize) {
        let mut own = ConfusionMatrix::camera();
        for (&p, &g) in pred.iter().zip(gt) {
            if g != 0 {
                own.add(g as usize, p as usize);
            }
        }
        self.confusion.push(own);
        self.boundary.merge(&boundary_counts(pred, gt, w, h, tolerance));
    }
}

/// A frame with labelled camera images: where it is in the input (unit, frame index: the
/// order a single process reads frames in) and each row's counts on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegFrame {
    pub key: (u64, u64),
    pub rows: Vec<FrameRow>,
}

/// Runs each method on every labelled camera image of `selection`'s frames (the methods in
/// turn on each frame) and keeps each frame's counts, in input order; [`report`] (or a
/// [`CameraSegPartial`] of them) gives the metrics. `on_image` is called after each image
/// (progress).
pub fn evaluate(
    source: &Source,
    selection: &FrameSelection,
    methods: &mut [DenseMethod],
    tolerance: usize,
    mut on_image: impl FnMut(),
) -> Result<Vec<SegFrame>> {
    let selection = selection.clone().request(camera_request());
    let ctx = RunCtx::default();
    let mut frames = Vec::new();
    for frame in source.frames(&selection)? {
        let frame = frame?;
        let images = labelled_images(&frame.frame, &frame.at)?;
        if images.is_empty() {
            continue;
        }
        let views: Vec<RgbView<'_>> = images.iter().map(|i| RgbView::from(&i.rgb)).collect();
        let mut rows = Vec::new();
        for m in methods.iter_mut() {
            let t = Instant::now();
            let (outs, times) = m.model.run(&views, m.tau.map_or(Entropy::None, Entropy::Above))?;
            let t_full = Instant::now();
            let preds: Vec<Vec<u8>> = outs.iter().map(DenseOutput::full_classes).collect();
            let full_s = t_full.elapsed().as_secs_f64();
            let dense_s = StageMs {
                preprocess: times.preprocess,
                model: times.model,
                classify: times.classify + full_s,
                total: t.elapsed().as_secs_f64(),
                ..StageMs::default()
            };
            let mut dense = FrameRow::new(dense_s);
            // SparseRefine pays the dense pass (without the dense row's selection time).
            let mut refined = m.refiner.as_ref().map(|_| FrameRow::new(dense_s));
            for ((img, out), pred) in images.iter().zip(&outs).zip(&preds) {
                dense.add_image(pred, &img.classes, out.width, out.height, tolerance);
                let Some(tau) = m.tau else { continue };
                let t = Instant::now();
                let sel = crate::models::seg::selector::select(out, tau);
                let select_s = t.elapsed().as_secs_f64();
                dense.selection.add(&count_selection(&sel, pred, &img.classes, out.width));
                if let (Some(refiner), Some(row)) = (&m.refiner, refined.as_mut()) {
                    let (classes, gather_s, refine_s) = refine_image(refiner, out, pred, &img.rgb, &sel, &ctx)?;
                    row.add_image(&classes, &img.classes, out.width, out.height, tolerance);
                    row.seconds.add(&StageMs {
                        select: select_s,
                        gather: gather_s,
                        refine: refine_s,
                        total: select_s + gather_s + refine_s,
                        ..StageMs::default()
                    });
                }
            }
            if let Some(row) = refined.as_mut() {
                // The same selection against the same dense errors.
                row.selection = dense.selection;
            }
            rows.push(dense);
            rows.extend(refined);
        }
        frames.push(SegFrame { key: (frame.unit as u64, frame.index as u64), rows });
        for _ in &images {
            on_image();
        }
    }
    Ok(frames)
}

/// The report of `frames` (in input order) for `rows`; every frame must hold a count of
/// each row (what [`evaluate`] writes, and [`CameraSegPartial::read`] checks).
pub fn report(rows: &[RowSpec], tolerance: usize, frames: &[SegFrame]) -> Vec<MethodReport> {
    let mut scores: Vec<CameraSegScore> = rows.iter().map(|_| CameraSegScore::new(tolerance)).collect();
    let mut seconds = vec![StageMs::default(); rows.len()];
    let mut selection = vec![SelectionCounts::default(); rows.len()];
    for frame in frames {
        for (r, counts) in frame.rows.iter().enumerate() {
            scores[r].absorb(counts);
            seconds[r].add(&counts.seconds);
            selection[r].add(&counts.selection);
        }
    }
    let full = rows.iter().position(|r| !r.refined && r.scale == 1.0);
    rows.iter()
        .enumerate()
        .map(|(r, spec)| {
            let score = &scores[r];
            let sel = &selection[r];
            MethodReport {
                method: spec.method.clone(),
                scale: spec.scale,
                report: score.report(),
                ms_per_image: seconds[r].scaled(1e3 / score.images.max(1) as f64),
                tau: spec.tau,
                selected: spec.tau.map(|_| sel.selected as f64 / sel.labelled.max(1) as f64),
                error_recall: spec.tau.map(|_| sel.wrong_selected as f64 / sel.wrong.max(1) as f64),
                miou_vs_full: full
                    .filter(|_| spec.scale != 1.0)
                    .map(|f| paired_miou(&scores[f], score, BOOTSTRAP_DRAWS, 0)),
                // A refined row follows its dense row.
                miou_vs_dense: (spec.refined && r > 0).then(|| paired_miou(&scores[r - 1], score, BOOTSTRAP_DRAWS, 1)),
            }
        })
        .collect()
}

/// The selection `sel` against the dense prediction's errors on labelled pixels.
fn count_selection(sel: &[(u32, u32)], pred: &[u8], gt: &[u8], width: usize) -> SelectionCounts {
    let mut chosen = vec![false; pred.len()];
    for &(u, v) in sel {
        chosen[v as usize * width + u as usize] = true;
    }
    let mut c = SelectionCounts::default();
    for ((&p, &g), &picked) in pred.iter().zip(gt).zip(&chosen) {
        if g == 0 {
            continue;
        }
        c.labelled += 1;
        c.selected += picked as u64;
        if p != g {
            c.wrong += 1;
            c.wrong_selected += picked as u64;
        }
    }
    c
}

/// What a camera-segmentation partial file starts with; another value is refused.
pub const PARTIAL_FORMAT: &str = "scenetok-cameraseg-partial/1";

/// A shard's camera-segmentation evaluation (`eval --task camera-seg --shard I/N --partial`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraSegPartial {
    pub format: String,
    /// The dense model's config, the refiners' folder and the data as given on the command
    /// line, the rows (τ included) and the boundary tolerance: the same on every shard.
    pub model: String,
    pub refiners: String,
    pub data: String,
    pub rows: Vec<RowSpec>,
    pub tolerance: usize,
    pub shard: Shard,
    /// In key order.
    pub frames: Vec<SegFrame>,
}

impl CameraSegPartial {
    pub fn new(
        model: &Path,
        refiners: &Path,
        data: &Path,
        rows: Vec<RowSpec>,
        tolerance: usize,
        shard: Shard,
        mut frames: Vec<SegFrame>,
    ) -> Self {
        frames.sort_by_key(|f| f.key);
        CameraSegPartial {
            format: PARTIAL_FORMAT.into(),
            model: model.display().to_string(),
            refiners: refiners.display().to_string(),
            data: data.display().to_string(),
            rows,
            tolerance,
            shard,
            frames,
        }
    }

    /// Labelled images in the partial.
    pub fn images(&self) -> usize {
        self.frames.iter().map(|f| f.rows.first().map_or(0, |r| r.confusion.len())).sum()
    }

    /// What must be the same on every shard, in words.
    fn identity(&self) -> String {
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("{}{}", r.method, r.tau.map_or(String::new(), |t| format!(" (τ {t})"))))
            .collect();
        format!(
            "model {} (refiners {}) on {}, rows {}, boundary tolerance {}",
            self.model,
            self.refiners,
            self.data,
            rows.join(", "),
            self.tolerance
        )
    }

    /// The whole evaluation from every shard's partial (`names` say where each came from).
    pub fn merge(parts: Vec<(String, CameraSegPartial)>) -> std::result::Result<CameraSegPartial, EvalError> {
        check_shard_set(parts.iter().map(|(name, p)| (name.as_str(), p.identity(), p.shard)))?;
        let mut parts = parts.into_iter().map(|(_, p)| p);
        let Some(mut whole) = parts.next() else { return Err(EvalError::Other("no partial results to merge".into())) };
        for p in parts {
            whole.frames.extend(p.frames);
        }
        in_input_order(&mut whole.frames, |f| f.key, |f| format!("frame {:?}", f.key))?;
        whole.shard = Shard::ALL;
        Ok(whole)
    }

    /// The report of the whole evaluation; no labelled image is an error about the data (an
    /// mIoU over nothing would read as 0, not as "nothing to score").
    pub fn report(&self) -> Result<Vec<MethodReport>> {
        if self.images() == 0 {
            return Err(Error::invalid(
                Location::file(Path::new(&self.data)),
                "camera images with segmentation labels (camera_segmentation)",
                "none in the selected frames",
            ));
        }
        Ok(report(&self.rows, self.tolerance, &self.frames))
    }

    /// Writes the partial (JSON for a `.json` name, else MessagePack: [`Encoding`](super::partial::Encoding)), whole or not at all.
    pub fn write(&self, path: &Path) -> std::result::Result<(), EvalError> {
        write_partial(path, self)
    }

    /// Reads a partial written by [`write`](Self::write): every frame must count every row,
    /// each row the same images, each matrix the 29 camera classes.
    pub fn read(path: &Path) -> std::result::Result<CameraSegPartial, EvalError> {
        let p = read_partial(path, PARTIAL_FORMAT, |p: &CameraSegPartial| &p.format)?;
        let classes = ConfusionMatrix::camera().classes();
        for f in &p.frames {
            let images = f.rows.first().map_or(0, |r| r.confusion.len());
            let fits = f.rows.len() == p.rows.len()
                && f.rows
                    .iter()
                    .all(|r| r.confusion.len() == images && r.confusion.iter().all(|c| c.classes() == classes));
            if !fits {
                let at = Location::file(path).detail(format!("frame {:?}", f.key));
                let expected =
                    format!("counts of {} row(s), each of the same images over {classes} classes", p.rows.len());
                return Err(Error::invalid(at, expected, format!("{} row(s) of other shapes", f.rows.len())).into());
            }
        }
        Ok(p)
    }
}

/// Chooses τ for `model` on the labelled images of `selection` (validation frames, never the
/// scored ones): the largest τ that selects at least `recall` of its errors.
pub fn choose_tau(
    source: &Source,
    selection: &FrameSelection,
    model: &mut DenseSegModel,
    recall: f64,
) -> Result<TauChoice> {
    let selection = selection.clone().request(camera_request());
    let mut chooser = TauChooser::default();
    let mut seen = 0usize;
    for frame in source.frames(&selection)? {
        let frame = frame?;
        let images = labelled_images(&frame.frame, &frame.at)?;
        let views: Vec<RgbView<'_>> = images.iter().map(|i| RgbView::from(&i.rgb)).collect();
        if views.is_empty() {
            continue;
        }
        let (outs, _) = model.run(&views, Entropy::Exact)?;
        for (img, out) in images.iter().zip(&outs) {
            chooser.add(out, &img.classes);
            seen += 1;
        }
    }
    if seen == 0 {
        return Err(Error::invalid(
            Location::file(source.path()),
            "camera images with segmentation labels to choose τ on",
            "none in the selected frames",
        ));
    }
    Ok(chooser.choose(recall))
}

/// The methods side by side: mIoU, boundary F, selection, ms per image; then per-class IoU.
pub fn table(reports: &[MethodReport]) -> String {
    let mut s = format!(
        "camera segmentation: {} images\n  {:<16} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        reports.first().map_or(0, |r| r.report.images),
        "method",
        "mIoU",
        "bF",
        "τ",
        "selected",
        "err.rec.",
        "model ms",
        "cls ms",
        "refine ms",
        "total ms"
    );
    let opt = |v: Option<f64>, pct: bool| {
        v.map_or("-".to_string(), |x| if pct { format!("{:.1}%", 100.0 * x) } else { format!("{x:.3}") })
    };
    for r in reports {
        s += &format!(
            "  {:<16} {:>7.4} {:>7.4} {:>8} {:>9} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
            r.method,
            r.report.segmentation.miou,
            r.report.boundary_f,
            opt(r.tau.map(f64::from), false),
            opt(r.selected, true),
            opt(r.error_recall, true),
            r.ms_per_image.model,
            r.ms_per_image.classify,
            r.ms_per_image.select + r.ms_per_image.gather + r.ms_per_image.refine,
            r.ms_per_image.total
        );
    }
    let iv = |i: &super::bootstrap::Interval| format!("{:+.4} [{:+.4}, {:+.4}]", i.estimate, i.low, i.high);
    for r in reports {
        if let Some(i) = &r.miou_vs_full {
            s += &format!("  {:<16} mIoU − dense ×1: {}", r.method, iv(i));
            if let Some(d) = &r.miou_vs_dense {
                s += &format!("; − dense ×{}: {}", r.scale, iv(d));
            }
            s += "  (95% bootstrap over images)\n";
        }
    }
    s += &format!(
        "  {:<24}{}\n",
        "per-class IoU",
        reports.iter().map(|r| format!(" {:>12}", r.method)).collect::<String>()
    );
    if let Some(first) = reports.first() {
        for (i, c) in first.report.segmentation.classes.iter().enumerate() {
            if c.support == 0 && reports.iter().all(|r| r.report.segmentation.classes[i].iou.is_none()) {
                continue;
            }
            s += &format!("  {:<24}", c.class);
            for r in reports {
                s +=
                    &format!(" {:>12}", r.report.segmentation.classes[i].iou.map_or("-".into(), |v| format!("{v:.3}")));
            }
            s += "\n";
        }
    }
    s
}
