//! Ground removal: per-cell lowest points, a plane fitted to them robustly, and a height
//! band above each cell's ground.
//!
//! 1. The points within `range` of the sensor are binned into square cells of `cell`
//!    metres; each cell keeps its lowest z.
//! 2. A plane `z = a·x + b·y + c` is fitted by least squares to the cell minima, starting
//!    flat at their median and refitted three times on the cells within `max_step` of the
//!    last fit (roofs of large objects and overhangs drop out).
//! 3. A cell's ground height is its lowest z when that is within `max_step` of the plane
//!    (kerbs, gentle slopes and bumps follow the data), else the plane's height there (a
//!    cell covered by a truck roof has no ground return of its own).
//! 4. A point is ground when it lies less than `band` above its cell's ground height.
//!
//! Points out of range or not finite are neither ground nor obstacle: [`GroundModel`] says
//! `None` for them.

use super::grid::PointGrid;

/// What the ground removal decides per point.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundModel {
    /// Per point: its height above the local ground (metres), `None` when the point is not
    /// finite or out of range.
    pub height: Vec<Option<f32>>,
    /// The fitted plane `[a, b, c]`: `z = a·x + b·y + c` (vehicle frame).
    pub plane: [f64; 3],
    /// Cells whose own lowest point was taken as their ground.
    pub ground_cells: usize,
}

impl GroundModel {
    /// Whether point `i` is ground (within `band` above the local ground height).
    pub fn is_ground(&self, i: usize, band: f32) -> bool {
        self.height[i].is_some_and(|h| h < band)
    }
}

/// The parameters of [`fit_ground`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundParams {
    /// Cell side, metres.
    pub cell: f32,
    /// Horizontal range from the vehicle origin, metres.
    pub range: f32,
    /// How far a cell's lowest point may lie from the plane and still be its ground.
    pub max_step: f32,
}

/// Fits the ground of one frame's points (vehicle frame).
pub fn fit_ground(xyz: &[[f32; 3]], p: GroundParams) -> GroundModel {
    fit_ground_on(xyz, &PointGrid::new(xyz, p.range, p.cell), p.max_step)
}

/// [`fit_ground`] on the points already binned into its cells (`grid` of `cell` metres over
/// `range`).
pub(super) fn fit_ground_on(xyz: &[[f32; 3]], grid: &PointGrid, max_step: f32) -> GroundModel {
    let side = grid.side();
    let mut lowest = vec![f32::INFINITY; side * side];
    for (i, q) in xyz.iter().enumerate() {
        if let Some(c) = grid.cell_of(i) {
            lowest[c] = lowest[c].min(q[2]);
        }
    }
    let minima: Vec<(f64, f64, f64)> = lowest
        .iter()
        .enumerate()
        .filter(|(_, z)| z.is_finite())
        .map(|(c, &z)| {
            let (x, y) = grid.center(c);
            (x, y, z as f64)
        })
        .collect();
    let plane = fit_plane(&minima, max_step as f64);
    let mut ground_cells = 0;
    let ground: Vec<f32> = lowest
        .iter()
        .enumerate()
        .map(|(c, &z)| {
            if !z.is_finite() {
                return f32::NAN;
            }
            let (x, y) = grid.center(c);
            let planar = plane[0] * x + plane[1] * y + plane[2];
            if (z as f64 - planar).abs() <= max_step as f64 {
                ground_cells += 1;
                z
            } else {
                planar as f32
            }
        })
        .collect();
    let height = xyz.iter().enumerate().map(|(i, q)| grid.cell_of(i).map(|c| q[2] - ground[c])).collect();
    GroundModel { height, plane, ground_cells }
}

/// Least-squares plane through `(x, y, z)` samples, robust to samples far above it: start
/// flat at the median z, then three refits on the samples within `tol` of the last plane.
/// Fewer than three inliers keep the last plane.
fn fit_plane(samples: &[(f64, f64, f64)], tol: f64) -> [f64; 3] {
    if samples.is_empty() {
        return [0.0; 3];
    }
    let mut zs: Vec<f64> = samples.iter().map(|s| s.2).collect();
    zs.sort_by(f64::total_cmp);
    let mut plane = [0.0, 0.0, zs[zs.len() / 2]];
    for _ in 0..3 {
        // Normal equations of z = a x + b y + c over the inliers.
        let mut m = nalgebra::Matrix3::<f64>::zeros();
        let mut r = nalgebra::Vector3::<f64>::zeros();
        let mut n = 0;
        for &(x, y, z) in samples {
            if (z - (plane[0] * x + plane[1] * y + plane[2])).abs() > tol {
                continue;
            }
            let v = nalgebra::Vector3::new(x, y, 1.0);
            m += v * v.transpose();
            r += v * z;
            n += 1;
        }
        if n < 3 {
            break;
        }
        match m.lu().solve(&r) {
            Some(s) => plane = [s[0], s[1], s[2]],
            None => break,
        }
    }
    plane
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: GroundParams = GroundParams { cell: 1.0, range: 40.0, max_step: 0.5 };

    /// A sloped ground sampled on a grid, a 3 m truck-like block on it and a cone.
    fn scene() -> (Vec<[f32; 3]>, usize, usize) {
        let ground_z = |x: f32, y: f32| 0.02 * x - 0.01 * y - 1.8;
        let mut xyz = Vec::new();
        let mut x = -30.0;
        while x < 30.0 {
            let mut y = -30.0;
            while y < 30.0 {
                // No ground seen under the block.
                if !(10.0..14.0).contains(&x) || !(-1.0..1.0).contains(&y) {
                    xyz.push([x, y, ground_z(x, y)]);
                }
                y += 0.5;
            }
            x += 0.5;
        }
        let first_block = xyz.len();
        for i in 0..16 {
            for j in 0..8 {
                let (x, y) = (10.0 + i as f32 * 0.25, -1.0 + j as f32 * 0.25);
                xyz.push([x, y, ground_z(x, y) + 3.0]);
            }
        }
        let first_cone = xyz.len();
        for k in 0..6 {
            xyz.push([-5.0, 5.0 + 0.05 * k as f32, ground_z(-5.0, 5.0) + 0.3 + 0.1 * k as f32]);
        }
        xyz.push([f32::NAN, 0.0, 0.0]);
        xyz.push([100.0, 0.0, 0.0]);
        (xyz, first_block, first_cone)
    }

    #[test]
    fn sloped_ground_is_ground_and_what_stands_on_it_is_not() {
        let (xyz, first_block, first_cone) = scene();
        let g = fit_ground(&xyz, P);
        assert!((g.plane[0] - 0.02).abs() < 1e-3 && (g.plane[1] + 0.01).abs() < 1e-3, "{:?}", g.plane);
        assert!((g.plane[2] + 1.8).abs() < 0.05, "{:?}", g.plane);
        assert!((0..first_block).all(|i| g.is_ground(i, 0.25)));
        // The block's roof is 3 m above the plane: its cells take the plane as ground.
        for i in first_block..first_cone {
            let h = g.height[i].unwrap();
            assert!((h - 3.0).abs() < 0.05, "block point {i} at {h} m");
        }
        assert!((first_cone..first_cone + 6).all(|i| !g.is_ground(i, 0.25)));
        // Not finite, out of range: no height.
        assert_eq!(g.height[xyz.len() - 2], None);
        assert_eq!(g.height[xyz.len() - 1], None);
    }

    #[test]
    fn no_points_fit_a_flat_plane_at_zero() {
        let g = fit_ground(&[], P);
        assert_eq!(g.plane, [0.0; 3]);
        assert!(g.height.is_empty());
    }
}
