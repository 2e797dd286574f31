//! The LiDAR encoder as a 23-class LiDAR segmenter: a frame's points → voxels (0.1 m) →
//! MinkUNet on a device → per-voxel logits → per-point classes, and the last decoder level's
//! voxel features (what scene tokens pool).

use std::path::Path;

use crate::backend::{Device, PointsRef};
use crate::error::{Error, Location, Result};
use crate::geom::range_image::{INTENSITY, PointCloud};
use crate::sparse::SparseTensor;
use crate::sparse::layers::RunCtx;
use crate::sparse::nets::{MinkUNet, MinkUNetConfig};
use crate::sparse::quant::{self, Guard, QuantPlan};
use crate::sparse::voxelize::voxelize;
use crate::sparse::weights::Params;

/// Per-point input features: x, y, z (metres, vehicle frame) and intensity.
pub const FEATURES: usize = 4;
/// Number of classes (`Segmentation.Type`, 0 = undefined is never scored).
pub const CLASSES: usize = 23;
/// The shipped weights' file under the data folder's `weights/`.
pub const WEIGHTS_FILE: &str = "lidar_seg_minkunet.safetensors";

/// One frame's points as the encoder takes them, with their labels.
#[derive(Debug, Clone, Default)]
pub struct LidarPoints {
    pub xyz: Vec<[f32; 3]>,
    /// `[N, FEATURES]`: x, y, z, intensity.
    pub feats: Vec<f32>,
    /// Semantic class per point, −1 where there is no label.
    pub labels: Vec<i32>,
}

impl LidarPoints {
    pub fn len(&self) -> usize {
        self.xyz.len()
    }
    pub fn is_empty(&self) -> bool {
        self.xyz.is_empty()
    }
    /// Appends a cloud's points (its labels, or −1 each).
    pub fn push_cloud(&mut self, cloud: &PointCloud, labels: Option<&[i32]>) {
        self.xyz.extend_from_slice(&cloud.xyz);
        self.feats.reserve(cloud.len() * FEATURES);
        for i in 0..cloud.len() {
            let p = cloud.xyz[i];
            self.feats.extend_from_slice(&[p[0], p[1], p[2], cloud.feature(i)[INTENSITY]]);
        }
        match labels {
            Some(l) => self.labels.extend_from_slice(l),
            None => self.labels.extend(std::iter::repeat_n(-1, cloud.len())),
        }
    }
    /// As input to the voxelizer.
    pub fn as_ref(&self) -> PointsRef<'_> {
        PointsRef { xyz: &self.xyz, feats: &self.feats, channels: FEATURES }
    }
}

/// The trained segmenter on a device.
pub struct LidarSegModel {
    pub net: MinkUNet,
    pub voxel_size: f32,
    pub device: Device,
}

/// What the segmenter says about a frame.
pub struct Segmentation {
    /// The class of every input point (argmax of its voxel's logits; 0 for points without a
    /// voxel).
    pub classes: Vec<i32>,
    /// The last decoder level's voxel features, one row per voxel of the input.
    pub features: SparseTensor,
    /// The voxel (row of `features`) of every input point; `None` for points without one.
    pub point_voxel: Vec<Option<u32>>,
}

impl LidarSegModel {
    /// Loads weights written by `tools/train/train_lidar_seg.py` (the config is in the
    /// file's metadata: `width`, `voxel_size`) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut p = Params::load(path)?;
        let meta = |p: &Params, key: &str| -> Result<f32> {
            p.metadata(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
                Error::invalid(Location::file(path).detail("safetensors metadata"), format!("a number `{key}`"), "none")
            })
        };
        let width = meta(&p, "width")?;
        let voxel_size = meta(&p, "voxel_size")?;
        let config = MinkUNetConfig { in_channels: FEATURES, num_classes: CLASSES, width };
        Ok(LidarSegModel { net: MinkUNet::build(config, &mut p, device)?, voxel_size, device: device.clone() })
    }

    /// Packs INT8 (calibrated on `calib`, frames that are not scored) and BF16 weights into
    /// every conv, and picks each conv's precision under `guard` (docs/quantization.md).
    /// Without calibration frames only BF16 is packed.
    pub fn prepare_lowp(&mut self, calib: &[LidarPoints], alpha: Option<f32>, guard: Guard) -> Result<QuantPlan> {
        let inputs = calib
            .iter()
            .map(|f| Ok(voxelize(&self.device, &[f.as_ref()], self.voxel_size)?.tensor))
            .collect::<Result<Vec<_>>>()?;
        let inputs: Vec<SparseTensor> = inputs.into_iter().filter(|t| !t.is_empty()).collect();
        quant::prepare(&mut self.net, &self.device, &inputs, alpha, guard)
    }

    /// Segments one frame's points.
    pub fn segment(&self, pts: &LidarPoints, ctx: &RunCtx) -> Result<Segmentation> {
        let v = voxelize(&self.device, &[pts.as_ref()], self.voxel_size)?;
        if v.tensor.is_empty() {
            return Ok(Segmentation {
                classes: vec![0; pts.len()],
                features: v.tensor,
                point_voxel: vec![None; pts.len()],
            });
        }
        let out = self.net.forward(&v.tensor, ctx)?;
        let logits = self.device.backend().download(&out.logits)?;
        let voxel_class: Vec<i32> = logits
            .chunks_exact(CLASSES)
            .map(|row| {
                row.iter().enumerate().fold((0, f32::MIN), |m, (i, &x)| if x > m.1 { (i, x) } else { m }).0 as i32
            })
            .collect();
        let classes = v.point_to_voxel[0].iter().map(|vx| vx.map_or(0, |r| voxel_class[r as usize])).collect();
        let point_voxel = v.point_to_voxel.into_iter().next().unwrap_or_default();
        Ok(Segmentation { classes, features: out.features, point_voxel })
    }
}
