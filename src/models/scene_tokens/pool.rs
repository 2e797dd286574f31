//! Per-point features pooled over an element's points: the share of points that have one,
//! the channel-wise mean and the channel-wise max over those points.

/// Per-point features of one frame, looked up by the frame's point index (from several
/// threads: elements are pooled in parallel).
pub trait PointFeatureSource: Sync {
    /// Channels per feature.
    fn channels(&self) -> usize;
    /// The feature of point `i`, `None` where the point has none (unseen by every camera,
    /// not voxelized).
    fn feature(&self, i: usize) -> Option<&[f32]>;
}

/// Features stored row by row, one row per point, with a mask of the points that have one.
#[derive(Debug, Clone, Copy)]
pub struct DenseRows<'a> {
    /// `[N, channels]`.
    pub values: &'a [f32],
    pub channels: usize,
    /// Per point; `None`: every point has its row.
    pub valid: Option<&'a [bool]>,
}

impl PointFeatureSource for DenseRows<'_> {
    fn channels(&self) -> usize {
        self.channels
    }
    fn feature(&self, i: usize) -> Option<&[f32]> {
        if self.valid.is_some_and(|v| !v.get(i).copied().unwrap_or(false)) {
            return None;
        }
        self.values.get(i * self.channels..(i + 1) * self.channels)
    }
}

/// The width of a pooled block for `channels`: coverage, mean, max.
pub fn pooled_len(channels: usize) -> usize {
    1 + 2 * channels
}

/// Appends `[coverage, mean[C], max[C]]` of `points` to `out` (zeros where no point has a
/// feature).
pub fn pool_into(source: &dyn PointFeatureSource, points: &[u32], out: &mut Vec<f32>) {
    let c = source.channels();
    let start = out.len();
    out.resize(start + pooled_len(c), 0.0);
    let (head, rest) = out[start..].split_at_mut(1);
    let (mean, max) = rest.split_at_mut(c);
    max.fill(f32::NEG_INFINITY);
    let mut n = 0usize;
    for &i in points {
        let Some(f) = source.feature(i as usize).and_then(|f| f.get(..c)) else { continue };
        n += 1;
        // Two plain loops over equal-length slices: both vectorise (`max` with NaN
        // semantics would not).
        for (m, &v) in mean.iter_mut().zip(f) {
            *m += v;
        }
        for (x, &v) in max.iter_mut().zip(f) {
            if v > *x {
                *x = v;
            }
        }
    }
    if n == 0 {
        max.fill(0.0);
        return;
    }
    head[0] = n as f32 / points.len() as f32;
    let inv = 1.0 / n as f32;
    mean.iter_mut().for_each(|m| *m *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_mean_and_max_over_the_points_that_have_a_feature() {
        let values = [1.0, -1.0, 3.0, 5.0, 100.0, 100.0];
        let valid = [true, true, false];
        let src = DenseRows { values: &values, channels: 2, valid: Some(&valid) };
        let mut out = vec![7.0];
        pool_into(&src, &[0, 1, 2], &mut out);
        assert_eq!(out, vec![7.0, 2.0 / 3.0, 2.0, 2.0, 3.0, 5.0]);
        let mut none = Vec::new();
        pool_into(&src, &[2], &mut none);
        assert_eq!(none, vec![0.0; 5]);
    }
}
