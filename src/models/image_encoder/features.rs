//! Model outputs as tensors with their pixel ↔ cell geometry, and bilinear sampling.
//!
//! Geometry: cell `(r, c)` of a map with stride `s` covers model-input pixels
//! `[c·s, (c+1)·s) × [r·s, (r+1)·s)` and sits at their centre `((c+½)·s, (r+½)·s)`
//! (continuous, edge-based coordinates: pixel 0 spans `[0, 1)`). A camera pixel `(u, v)`
//! is input position `(u·scale_x, v·scale_y)` (see [`ImageGeometry`]), so its continuous
//! cell position is `(u·scale_x / s − ½, v·scale_y / s − ½)`; sampling is bilinear between
//! the four nearest cell centres, clamped to the cells that hold image content (never the
//! batch padding). This is `grid_sample(align_corners=False, padding_mode="border")`.

use ndarray::{Array2, Array4};

use super::preprocess::ImageGeometry;

/// One spatial output: `[N, C, H, W]` for the N images of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    pub name: String,
    /// Model-input pixels per cell.
    pub stride: u32,
    pub data: Array4<f32>,
    /// Each image's place in the model input.
    pub geometry: Vec<ImageGeometry>,
}

impl FeatureMap {
    pub fn new(name: String, stride: u32, data: Array4<f32>, geometry: Vec<ImageGeometry>) -> Self {
        FeatureMap { name, stride, data, geometry }
    }
    pub fn channels(&self) -> usize {
        self.data.shape()[1]
    }
    /// Cells (width, height) of the whole map.
    pub fn cells(&self) -> (usize, usize) {
        (self.data.shape()[3], self.data.shape()[2])
    }
    /// Cells (width, height) that hold image `n`'s content (the rest saw only padding
    /// or the image's last pixels).
    pub fn content_cells(&self, n: usize) -> (usize, usize) {
        let g = &self.geometry[n];
        let (w, h) = self.cells();
        let s = self.stride;
        ((g.content_width.div_ceil(s) as usize).clamp(1, w), (g.content_height.div_ceil(s) as usize).clamp(1, h))
    }
    /// Continuous cell position of camera pixel `(u, v)` of image `n`.
    pub fn cell_of(&self, n: usize, u: f64, v: f64) -> (f64, f64) {
        let (x, y) = self.geometry[n].to_input(u, v);
        let s = self.stride as f64;
        (x / s - 0.5, y / s - 0.5)
    }
    /// Centre of cell `(col, row)` in camera pixels of image `n` (the inverse of
    /// [`FeatureMap::cell_of`]).
    pub fn pixel_of(&self, n: usize, col: f64, row: f64) -> (f64, f64) {
        let g = &self.geometry[n];
        let s = self.stride as f64;
        ((col + 0.5) * s / g.scale_x, (row + 0.5) * s / g.scale_y)
    }
    /// Image `n`'s content cells, channels last (`[h][w][C]`), for fast per-point sampling.
    pub fn channels_last(&self, n: usize) -> ChannelsLast {
        let (cw, ch) = self.content_cells(n);
        let c = self.channels();
        let mut data = vec![0.0; cw * ch * c];
        let img = self.data.index_axis(ndarray::Axis(0), n);
        for k in 0..c {
            let plane = img.index_axis(ndarray::Axis(0), k);
            for r in 0..ch {
                for q in 0..cw {
                    data[(r * cw + q) * c + k] = plane[[r, q]];
                }
            }
        }
        ChannelsLast { width: cw, height: ch, channels: c, data }
    }
    /// Bilinear sample of image `n` at camera pixel `(u, v)` into `out` (C values).
    pub fn sample(&self, n: usize, u: f64, v: f64, out: &mut [f32]) {
        let (x, y) = self.cell_of(n, u, v);
        let (cw, ch) = self.content_cells(n);
        let ((x0, x1, wx), (y0, y1, wy)) = (corners(x, cw), corners(y, ch));
        let img = self.data.index_axis(ndarray::Axis(0), n);
        for (k, o) in out.iter_mut().enumerate().take(self.channels()) {
            let p = img.index_axis(ndarray::Axis(0), k);
            let top = (1.0 - wx) * p[[y0, x0]] + wx * p[[y0, x1]];
            let bottom = (1.0 - wx) * p[[y1, x0]] + wx * p[[y1, x1]];
            *o = (1.0 - wy) * top + wy * bottom;
        }
    }
}

/// The two neighbouring cells and the weight of the second, clamped to `[0, n-1]`.
fn corners(x: f64, n: usize) -> (usize, usize, f32) {
    let last = (n - 1) as f64;
    let x = x.clamp(0.0, last);
    let i0 = x.floor() as usize;
    let i1 = (i0 + 1).min(n - 1);
    (i0, i1, (x - i0 as f64) as f32)
}

/// One image's map, channels last, content cells only.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelsLast {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl ChannelsLast {
    /// Bilinear sample at continuous cell position `(x, y)` (see [`FeatureMap::cell_of`]).
    pub fn sample(&self, x: f64, y: f64, out: &mut [f32]) {
        let ((x0, x1, wx), (y0, y1, wy)) = (corners(x, self.width), corners(y, self.height));
        let c = self.channels;
        let at = |r: usize, q: usize| &self.data[(r * self.width + q) * c..][..c];
        let (a, b, d, e) = (at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1));
        for k in 0..c {
            let top = (1.0 - wx) * a[k] + wx * b[k];
            let bottom = (1.0 - wx) * d[k] + wx * e[k];
            out[k] = (1.0 - wy) * top + wy * bottom;
        }
    }
}

/// Everything one batch run returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outputs {
    /// Spatial outputs in config order.
    pub maps: Vec<FeatureMap>,
    /// `[N, C]` outputs in config order.
    pub vectors: Vec<(String, Array2<f32>)>,
    pub geometry: Vec<ImageGeometry>,
    /// The padded model-input size (width, height).
    pub input_size: (u32, u32),
}

impl Outputs {
    pub fn map(&self, name: &str) -> Option<&FeatureMap> {
        self.maps.iter().find(|m| m.name == name)
    }
    pub fn vector(&self, name: &str) -> Option<&Array2<f32>> {
        self.vectors.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-image, 2-channel map whose values are affine in the cell position: bilinear
    /// sampling must reproduce the affine function exactly inside the content.
    fn affine_map() -> FeatureMap {
        // Input 64×32 at stride 8 → 8×4 cells; the image is 128×64 at scale 0.5 and fills
        // 64×24 of the input (content 8×3 cells).
        let g = ImageGeometry::new(128, 48, 64, 24);
        let data = Array4::from_shape_fn((1, 2, 4, 8), |(_, k, r, q)| if k == 0 { q as f32 } else { 10.0 * r as f32 });
        FeatureMap::new("m".into(), 8, data, vec![g])
    }

    #[test]
    fn cell_and_pixel_are_inverse_and_centres_sample_exactly() {
        let m = affine_map();
        assert_eq!(m.content_cells(0), (8, 3));
        let (u, v) = m.pixel_of(0, 3.0, 1.0);
        assert_eq!((u, v), (56.0, 48.0 / 2.0));
        let (x, y) = m.cell_of(0, u, v);
        assert!((x - 3.0).abs() < 1e-12 && (y - 1.0).abs() < 1e-12);
        let mut out = [0.0; 2];
        m.sample(0, u, v, &mut out);
        assert_eq!(out, [3.0, 10.0]);
        // Between centres: linear.
        let (u2, v2) = m.pixel_of(0, 3.25, 1.5);
        m.sample(0, u2, v2, &mut out);
        assert!((out[0] - 3.25).abs() < 1e-6 && (out[1] - 15.0).abs() < 1e-5, "{out:?}");
        // Beyond the content (row 3 is padding): clamped to the last content row.
        m.sample(0, 10.0, 47.9, &mut out);
        assert_eq!(out[1], 20.0);
        // Before the first centre: clamped.
        m.sample(0, 0.0, 0.0, &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn channels_last_agrees_with_direct_sampling() {
        let m = affine_map();
        let cl = m.channels_last(0);
        for (u, v) in [(0.5, 0.5), (37.2, 11.9), (127.9, 47.9), (64.0, 30.0)] {
            let (mut a, mut b) = ([0.0; 2], [0.0; 2]);
            m.sample(0, u, v, &mut a);
            let (x, y) = m.cell_of(0, u, v);
            cl.sample(x, y, &mut b);
            assert_eq!(a, b);
        }
    }
}
