//! Points → the sparse tensor a network takes, on a device.

use crate::backend::{Device, PointsRef};
use crate::error::Result;

use super::tensor::SparseTensor;

/// A voxelized batch: the tensor, and per input point its voxel row (or `None` for points
/// that are not finite).
#[derive(Debug, Clone)]
pub struct Voxelized {
    pub tensor: SparseTensor,
    /// Per frame, per point: the voxel row holding it.
    pub point_to_voxel: Vec<Vec<Option<u32>>>,
    /// World position of voxel index 0 on each axis (grid origin), metres.
    pub origin: [f32; 3],
    pub voxel_size: f32,
}

/// Voxelizes frames into one batched tensor on `device` (`floor(p / voxel_size)` shifted by
/// the smallest voxel over the batch, voxels sorted by `(b, x, y, z)`, mean features).
pub fn voxelize(device: &Device, frames: &[PointsRef<'_>], voxel_size: f32) -> Result<Voxelized> {
    let v = device.backend().voxelize(frames, voxel_size)?;
    Ok(Voxelized {
        tensor: SparseTensor::new(device, v.coords, v.feats, v.range)?,
        point_to_voxel: v.point_to_voxel,
        origin: v.origin,
        voxel_size: v.voxel_size,
    })
}
