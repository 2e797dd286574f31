//! The LiDAR encoder as a 23-class LiDAR segmenter: points of a frame → voxels (0.1 m) →
//! MinkUNet → per-voxel logits → per-point classes; its evaluation (per-class IoU, mIoU) and
//! the training-data export for the PyTorch twin (`tools/train/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Location, Result};
use crate::eval::segmentation::ConfusionMatrix;
use crate::geom::range_image::{gather_pixels, range_image_to_points};
use crate::io::v2::{Component, Dataset, FrameRequest};
use crate::scene::enums::LaserName;
use crate::scene::frame::Frame;
use crate::sparse::layers::RunCtx;
use crate::sparse::nets::{MinkUNet, MinkUNetConfig};
use crate::sparse::voxelize::{PointsRef, voxelize};
use crate::sparse::weights::Params;

/// Per-point input features: x, y, z (metres, vehicle frame) and intensity.
pub const FEATURES: usize = 4;
/// Number of classes (`Segmentation.Type`, 0 = undefined is never scored).
pub const CLASSES: usize = 23;
/// The shipped weights, relative to the crate root.
pub const DEFAULT_WEIGHTS: &str = "data/weights/lidar_seg_minkunet.safetensors";

/// Points of one frame with their features and labels.
#[derive(Debug, Clone, Default)]
pub struct LidarPoints {
    pub xyz: Vec<[f32; 3]>,
    /// `[N, FEATURES]`.
    pub feats: Vec<f32>,
    /// Semantic class per point, −1 where the laser has no label.
    pub labels: Vec<i32>,
}

impl LidarPoints {
    pub fn len(&self) -> usize {
        self.xyz.len()
    }
    pub fn is_empty(&self) -> bool {
        self.xyz.is_empty()
    }
    /// As input to the voxelizer.
    pub fn as_ref(&self) -> PointsRef<'_> {
        PointsRef { xyz: &self.xyz, feats: &self.feats, channels: FEATURES }
    }
}

/// The first-return points of `lasers` (all lasers when empty), ego-motion compensated,
/// with labels from `lidar_segmentation` where the frame has them.
pub fn frame_points(frame: &Frame, lasers: &[LaserName], file: &Path) -> Result<LidarPoints> {
    let mut out = LidarPoints::default();
    for laser in &frame.lasers {
        if !lasers.is_empty() && !lasers.contains(&laser.laser) {
            continue;
        }
        let (Some(ri), Some(calib)) = (&laser.return1, &laser.calibration) else { continue };
        let at = || Location::file(file).frame(frame.timestamp_micros).detail(format!("laser {}", laser.laser.name()));
        let cloud = range_image_to_points(ri, calib, laser.pose.as_ref(), frame.vehicle_pose.as_ref())
            .map_err(|e| Error::invalid(at(), "a convertible range image", e.to_string()))?;
        let labels = match &laser.segmentation1 {
            Some(seg) => {
                let px = gather_pixels(seg, &cloud).map_err(|e| {
                    Error::invalid(at(), "a segmentation image of the range image's size", e.to_string())
                })?;
                px.chunks_exact(seg.channels).map(|p| p[1]).collect()
            }
            None => vec![-1; cloud.len()],
        };
        for i in 0..cloud.len() {
            let p = cloud.xyz[i];
            out.xyz.push(p);
            out.feats.extend_from_slice(&[p[0], p[1], p[2], cloud.feature(i)[crate::geom::range_image::INTENSITY]]);
        }
        out.labels.extend(labels);
    }
    Ok(out)
}

/// Calls `f(segment, timestamp, points)` for every frame of a v2 dataset (first `max_frames`
/// per segment when given).
pub fn for_each_frame(
    root: &Path,
    lasers: &[LaserName],
    max_frames: Option<usize>,
    mut f: impl FnMut(&str, i64, LidarPoints) -> Result<()>,
) -> Result<usize> {
    let ds = Dataset::open(root)?;
    let request = FrameRequest::only(&[
        Component::Lidar,
        Component::LidarCalibration,
        Component::LidarPose,
        Component::LidarSegmentation,
        Component::VehiclePose,
    ])
    .without_second_returns();
    let mut n = 0;
    let segments: Vec<String> = ds.segments().map(str::to_string).collect();
    for seg in &segments {
        let file = ds.components(seg)?.get(&Component::Lidar).map(|i| i.path.clone()).unwrap_or_else(|| root.into());
        for (i, frame) in ds.frames(seg, &request)?.enumerate() {
            if max_frames.is_some_and(|m| i >= m) {
                break;
            }
            let frame = frame?;
            let pts = frame_points(&frame, lasers, &file)?;
            f(seg, frame.timestamp_micros, pts)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The trained segmenter.
pub struct LidarSegModel {
    pub net: MinkUNet,
    pub voxel_size: f32,
}

impl LidarSegModel {
    /// Loads weights written by `tools/train/train_lidar_seg.py` (the config is in the
    /// file's metadata: `width`, `voxel_size`).
    pub fn load(path: &Path) -> Result<Self> {
        let mut p = Params::load(path)?;
        let meta = |p: &Params, key: &str| -> Result<f32> {
            p.metadata(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
                Error::invalid(Location::file(path).detail("safetensors metadata"), format!("a number `{key}`"), "none")
            })
        };
        let width = meta(&p, "width")?;
        let voxel_size = meta(&p, "voxel_size")?;
        let config = MinkUNetConfig { in_channels: FEATURES, num_classes: CLASSES, width };
        Ok(LidarSegModel { net: MinkUNet::build(config, &mut p)?, voxel_size })
    }

    /// The shipped weights' path.
    pub fn default_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS)
    }

    /// The class of every point (argmax of its voxel's logits; 0 for points outside the grid).
    pub fn predict(&self, pts: &LidarPoints, ctx: &RunCtx<'_>) -> Vec<i32> {
        let v = voxelize(&[pts.as_ref()], self.voxel_size);
        if v.tensor.is_empty() {
            return vec![0; pts.len()];
        }
        let out = self.net.forward(&v.tensor, ctx);
        let k = CLASSES;
        let voxel_class: Vec<i32> = out
            .logits
            .chunks_exact(k)
            .map(|row| {
                row.iter().enumerate().fold((0, f32::MIN), |m, (i, &x)| if x > m.1 { (i, x) } else { m }).0 as i32
            })
            .collect();
        v.point_to_voxel[0].iter().map(|vx| vx.map_or(0, |r| voxel_class[r as usize])).collect()
    }
}

/// Per-class IoU over labelled points (class 0, undefined, is ignored).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegReport {
    pub frames: usize,
    pub points: usize,
    /// `(class, IoU, labelled points)` for every class that occurs in labels or predictions.
    pub classes: Vec<(String, f64, u64)>,
    /// Mean IoU over the classes present in the labels or the predictions.
    pub miou: f64,
}

/// Confusion counts → report, on the shared segmentation metric
/// ([`crate::eval::segmentation::ConfusionMatrix`]: per-class IoU, mean over the classes in
/// the labels or the predictions, as upstream).
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

/// Evaluates the model on the TOP lidar's labelled points of every frame.
pub fn evaluate(root: &Path, model: &LidarSegModel, max_frames: Option<usize>) -> Result<SegReport> {
    evaluate_with(root, model, max_frames, &RunCtx::default())
}

/// [`evaluate`] with a run context (e.g. a stored tuning's dataflow choices).
pub fn evaluate_with(
    root: &Path,
    model: &LidarSegModel,
    max_frames: Option<usize>,
    ctx: &RunCtx<'_>,
) -> Result<SegReport> {
    let mut conf = Confusion::default();
    for_each_frame(root, &[LaserName::Top], max_frames, |_, _, pts| {
        let pred = model.predict(&pts, ctx);
        conf.add(&pred, &pts.labels);
        Ok(())
    })?;
    Ok(conf.report())
}

/// Writes the TOP lidar's labelled points of every frame as `OUT/{segment}_{ts}.safetensors`
/// (`xyz [N,3]`, `feats [N,4]`, `labels [N]` i32) for the PyTorch trainer. Returns the count.
pub fn export(root: &Path, out: &Path) -> Result<usize> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(Location::file(out), e))?;
    for_each_frame(root, &[LaserName::Top], None, |seg, ts, pts| {
        let path = out.join(format!("{seg}_{ts}.safetensors"));
        let xyz: Vec<u8> = pts.xyz.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let feats: Vec<u8> = pts.feats.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Vec<u8> = pts.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let n = pts.len();
        fn view<'a>(
            path: &Path,
            dt: safetensors::Dtype,
            shape: Vec<usize>,
            data: &'a [u8],
        ) -> Result<safetensors::tensor::TensorView<'a>> {
            safetensors::tensor::TensorView::new(dt, shape, data)
                .map_err(|e| Error::decode(Location::file(path), "tensor", e))
        }
        let tensors: HashMap<String, _> = [
            ("xyz".to_string(), view(&path, safetensors::Dtype::F32, vec![n, 3], &xyz)?),
            ("feats".to_string(), view(&path, safetensors::Dtype::F32, vec![n, FEATURES], &feats)?),
            ("labels".to_string(), view(&path, safetensors::Dtype::I32, vec![n], &labels)?),
        ]
        .into_iter()
        .collect();
        let bytes = safetensors::serialize(tensors, None)
            .map_err(|e| Error::decode(Location::file(&path), "safetensors", e))?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(Location::file(&path), e))
    })
}
