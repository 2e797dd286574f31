//! Point clouds → voxels on the CPU (`sparse_quantize` + `spvoxelize`, docs/sparse-conv.md):
//! `c = floor(p / voxel)`, hash dedup, mean pooling of point features, the point → voxel
//! index kept for devoxelization; several frames batch into one tensor with the batch index
//! in `b`.

use std::collections::HashMap;

use super::tensor;
use crate::backend::{PointsRef, Voxels};
use crate::error::{Error, Result};

/// Voxelizes frames into one batched tensor. Coordinates are `floor(p / voxel_size)`
/// shifted by the smallest voxel over the batch so that they start at 0; voxels are
/// ordered by `(b, x, y, z)`; features are the mean of their points' features.
/// Non-finite points map to `None`.
pub fn voxelize(frames: &[PointsRef<'_>], voxel_size: f32) -> Result<Voxels> {
    let channels = frames.first().map_or(0, |f| f.channels);
    if let Some((b, f)) =
        frames.iter().enumerate().find(|(_, f)| f.channels != channels || f.feats.len() != f.xyz.len() * channels)
    {
        return Err(Error::device(
            "cpu",
            format!(
                "voxelize: frame {b} has {} feature values for {} points of {} channels (the batch has {channels})",
                f.feats.len(),
                f.xyz.len(),
                f.channels
            ),
        ));
    }
    if !(voxel_size.is_finite() && voxel_size > 0.0) {
        return Err(Error::device("cpu", format!("voxelize: a voxel size of {voxel_size} m")));
    }
    let cell = |p: &[f32; 3]| -> Option<[i64; 3]> {
        p.iter().all(|v| v.is_finite()).then(|| std::array::from_fn(|a| (p[a] / voxel_size).floor() as i64))
    };
    let mut lo = [i64::MAX; 3];
    for f in frames {
        for c in f.xyz.iter().filter_map(cell) {
            for a in 0..3 {
                lo[a] = lo[a].min(c[a]);
            }
        }
    }
    if lo[0] == i64::MAX {
        lo = [0; 3];
    }
    // Dedup by coordinate; rows are renumbered in sorted order afterwards.
    let mut index: HashMap<[i32; 4], u32> = HashMap::new();
    let mut coords: Vec<[i32; 4]> = Vec::new();
    let mut p2v: Vec<Vec<Option<u32>>> = Vec::with_capacity(frames.len());
    for (b, f) in frames.iter().enumerate() {
        let mut map = Vec::with_capacity(f.xyz.len());
        for p in f.xyz {
            let v = cell(p).and_then(|c| {
                let rel: [i64; 3] = std::array::from_fn(|a| c[a] - lo[a]);
                rel.iter()
                    .all(|&r| r <= i32::MAX as i64)
                    .then(|| [b as i32, rel[0] as i32, rel[1] as i32, rel[2] as i32])
            });
            map.push(v.map(|c| {
                *index.entry(c).or_insert_with(|| {
                    coords.push(c);
                    coords.len() as u32 - 1
                })
            }));
        }
        p2v.push(map);
    }
    let mut order: Vec<u32> = (0..coords.len() as u32).collect();
    order.sort_unstable_by_key(|&i| coords[i as usize]);
    let mut rank = vec![0u32; coords.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    let sorted: Vec<[i32; 4]> = order.iter().map(|&i| coords[i as usize]).collect();
    let mut sums = vec![0.0f64; sorted.len() * channels];
    let mut counts = vec![0u32; sorted.len()];
    for (f, map) in frames.iter().zip(p2v.iter_mut()) {
        for (i, v) in map.iter_mut().enumerate() {
            if let Some(v) = v {
                *v = rank[*v as usize];
                let r = *v as usize;
                counts[r] += 1;
                for c in 0..channels {
                    sums[r * channels + c] += f.feats[i * channels + c] as f64;
                }
            }
        }
    }
    let feats: Vec<f32> =
        sums.iter().enumerate().map(|(j, s)| (s / counts[j / channels.max(1)].max(1) as f64) as f32).collect();
    let mut range = [1i32; 3];
    for c in &sorted {
        for a in 0..3 {
            range[a] = range[a].max(c[a + 1] + 1);
        }
    }
    // A multiple of 16: four stride-2 k2 levels (spconv's valid-conv range rule) then keep
    // every voxel, none falls off an odd-sized edge.
    let range = range.map(|r| (r + 15) / 16 * 16);
    let n = sorted.len();
    Ok(Voxels {
        coords: sorted,
        range,
        feats: tensor(feats, n, channels),
        point_to_voxel: p2v,
        origin: std::array::from_fn(|a| lo[a] as f32 * voxel_size),
        voxel_size,
    })
}
