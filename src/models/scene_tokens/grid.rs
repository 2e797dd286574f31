//! A bird's-eye grid of point indices (counting sort by cell): the points near a box or in
//! a tile without a pass over the whole frame.

/// Points binned into square cells over `[-range, range)²`; points outside, or not finite,
/// are in no cell.
pub struct PointGrid {
    range: f32,
    cell: f32,
    side: usize,
    /// `starts[c]..starts[c + 1]` indexes `points` for cell `c`.
    starts: Vec<u32>,
    points: Vec<u32>,
    /// The cell of each point, `u32::MAX` for none.
    cell_of: Vec<u32>,
}

impl PointGrid {
    pub fn new(xyz: &[[f32; 3]], range: f32, cell: f32) -> Self {
        let side = ((2.0 * range / cell).ceil() as usize).max(1);
        let cell_of: Vec<u32> = xyz
            .iter()
            .map(|q| {
                if !q.iter().all(|v| v.is_finite()) || q[0].abs() >= range || q[1].abs() >= range {
                    return u32::MAX;
                }
                let cx = (((q[0] + range) / cell) as usize).min(side - 1);
                let cy = (((q[1] + range) / cell) as usize).min(side - 1);
                (cy * side + cx) as u32
            })
            .collect();
        let mut starts = vec![0u32; side * side + 1];
        for &c in cell_of.iter().filter(|&&c| c != u32::MAX) {
            starts[c as usize + 1] += 1;
        }
        for c in 0..side * side {
            starts[c + 1] += starts[c];
        }
        let mut fill = starts.clone();
        let mut points = vec![0u32; starts[side * side] as usize];
        for (i, &c) in cell_of.iter().enumerate() {
            if c != u32::MAX {
                points[fill[c as usize] as usize] = i as u32;
                fill[c as usize] += 1;
            }
        }
        PointGrid { range, cell, side, starts, points, cell_of }
    }

    /// Cells per side.
    pub fn side(&self) -> usize {
        self.side
    }

    /// The cell of point `i` (`None`: out of range or not finite).
    pub fn cell_of(&self, i: usize) -> Option<usize> {
        self.cell_of.get(i).filter(|&&c| c != u32::MAX).map(|&c| c as usize)
    }

    /// The centre `(x, y)` of cell `c`.
    pub fn center(&self, c: usize) -> (f64, f64) {
        let (cx, cy) = (c % self.side, c / self.side);
        let at = |k: usize| (k as f64 + 0.5) * self.cell as f64 - self.range as f64;
        (at(cx), at(cy))
    }

    /// The points of square tiles of `tile` metres laid over the same area from the same
    /// corner, tile by tile (row-major), each tile's cells in row-major order. A tile that
    /// is not a whole number of cells is rounded to the nearest one (at least one cell).
    pub fn tiles(&self, tile: f32) -> Vec<impl Iterator<Item = u32> + '_> {
        let k = ((tile / self.cell).round() as usize).max(1);
        let per_side = self.side.div_ceil(k);
        let mut out = Vec::with_capacity(per_side * per_side);
        for ty in 0..per_side {
            for tx in 0..per_side {
                let rows = ty * k..((ty + 1) * k).min(self.side);
                let (x0, x1) = (tx * k, ((tx + 1) * k).min(self.side));
                out.push(rows.flat_map(move |cy| {
                    let (a, b) = (self.starts[cy * self.side + x0], self.starts[cy * self.side + x1]);
                    self.points[a as usize..b as usize].iter().copied()
                }));
            }
        }
        out
    }

    /// Every point in the cells that overlap the axis-aligned square `[x0, x1] × [y0, y1]`
    /// (a superset of the points inside it), cell by cell.
    pub fn near(&self, x0: f32, x1: f32, y0: f32, y1: f32) -> impl Iterator<Item = u32> + '_ {
        let to_cell = |v: f32| (((v + self.range) / self.cell).floor().max(0.0) as usize).min(self.side - 1);
        let empty = x1 < -self.range || y1 < -self.range || x0 >= self.range || y0 >= self.range;
        let (cx0, cx1, cy0, cy1) = (to_cell(x0), to_cell(x1), to_cell(y0), to_cell(y1));
        let rows = if empty { 0..0 } else { cy0..cy1 + 1 };
        rows.flat_map(move |cy| {
            let (a, b) = (self.starts[cy * self.side + cx0], self.starts[cy * self.side + cx1 + 1]);
            self.points[a as usize..b as usize].iter().copied()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_returns_the_points_of_the_overlapped_cells() {
        let xyz = [[0.5, 0.5, 0.0], [1.5, 0.5, 0.0], [-3.5, 2.0, 0.0], [9.0, 0.0, 0.0], [f32::NAN, 0.0, 0.0]];
        let g = PointGrid::new(&xyz, 5.0, 1.0);
        let mut got: Vec<u32> = g.near(0.1, 1.2, 0.0, 0.9).collect();
        got.sort();
        assert_eq!(got, vec![0, 1]);
        assert_eq!(g.near(-4.0, -3.0, 1.5, 2.5).collect::<Vec<_>>(), vec![2]);
        assert_eq!(g.near(20.0, 30.0, 0.0, 1.0).count(), 0);
        assert_eq!(g.near(-100.0, 100.0, -100.0, 100.0).count(), 3);
        // Tiles of 4 m over the 10 cells per side: 3 × 3, the last ones narrower.
        let tiles: Vec<Vec<u32>> = g.tiles(4.0).into_iter().map(|t| t.collect()).collect();
        assert_eq!(tiles.len(), 9);
        assert_eq!(tiles[4], vec![0, 1]);
        assert_eq!(tiles[3], vec![2]);
        assert_eq!(tiles.iter().map(|t| t.len()).sum::<usize>(), 3);
    }
}
