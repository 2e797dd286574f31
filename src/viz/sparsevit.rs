//! SparseViT on one camera image: per stage, the image with each window shaded by how many of
//! the stage's regular-window blocks ran it (bright: every block, dark: pruned by all), and the
//! boxes (ground truth white, detections coloured by class), as panels for one grid picture
//! and as rerun images.

use image::{Rgb, RgbImage};

use crate::models::det::{BlockWindows, Detection};
use crate::scene::{Box2d, BoxType, CameraName};

/// One camera's detector run.
pub struct SparseVitView<'a> {
    pub camera: CameraName,
    pub rgb: &'a RgbImage,
    /// Camera pixels per model-input pixel.
    pub to_camera: f64,
    /// Model-input pixels per stage-0 token, and tokens per window side.
    pub patch: usize,
    pub window: usize,
    /// Per stage, per block.
    pub windows: &'a [Vec<BlockWindows>],
    pub detections: &'a [Detection],
    pub truth: &'a [(BoxType, Box2d)],
}

fn class_colour(c: BoxType) -> Rgb<u8> {
    match c {
        BoxType::Vehicle => Rgb([255, 60, 40]),
        BoxType::Pedestrian => Rgb([40, 200, 255]),
        BoxType::Cyclist => Rgb([255, 220, 0]),
        _ => Rgb([200, 0, 200]),
    }
}

/// A `w·h` image shrunk by `factor` (the pixel at each block's centre).
fn shrink(rgb: &RgbImage, f: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    RgbImage::from_fn(w.div_ceil(f), h.div_ceil(f), |x, y| {
        *rgb.get_pixel((x * f + f / 2).min(w - 1), (y * f + f / 2).min(h - 1))
    })
}

fn rectangle(img: &mut RgbImage, b: &Box2d, scale: f64, colour: Rgb<u8>, thick: u32) {
    let [x0, y0, x1, y1] = b.min_max().map(|v| (v / scale).round().max(0.0) as u32);
    let (w, h) = img.dimensions();
    for t in 0..thick {
        for x in x0..=x1.min(w.saturating_sub(1)) {
            for y in [y0 + t, y1.saturating_sub(t)] {
                if y < h {
                    img.put_pixel(x, y, colour);
                }
            }
        }
        for y in y0..=y1.min(h.saturating_sub(1)) {
            for x in [x0 + t, x1.saturating_sub(t)] {
                if x < w {
                    img.put_pixel(x, y, colour);
                }
            }
        }
    }
}

/// One panel per stage, then the boxes panel; each `1 / factor` of the camera's size.
pub fn panels(v: &SparseVitView<'_>, factor: u32) -> Vec<RgbImage> {
    let f = factor.max(1);
    let base = shrink(v.rgb, f);
    let mut out = Vec::new();
    for (s, blocks) in v.windows.iter().enumerate() {
        let regular: Vec<&BlockWindows> = blocks.iter().filter(|b| !b.shifted).collect();
        let Some(first) = regular.first() else { continue };
        let (ny, nx) = first.grid;
        let mut runs = vec![0usize; ny * nx];
        for b in &regular {
            b.kept.iter().for_each(|&w| runs[w as usize] += 1);
        }
        // A window's side in panel pixels.
        let side = (v.window * (v.patch << s)) as f64 * v.to_camera / f as f64;
        let mut panel = base.clone();
        for (x, y, p) in panel.enumerate_pixels_mut() {
            let (wy, wx) = ((y as f64 / side) as usize, (x as f64 / side) as usize);
            let share = if wy < ny && wx < nx { runs[wy * nx + wx] as f64 / regular.len() as f64 } else { 0.0 };
            let edge = (x as f64 % side) < 1.0 || (y as f64 % side) < 1.0;
            *p = if edge { Rgb([255, 255, 255]) } else { Rgb(p.0.map(|c| (c as f64 * (0.25 + 0.75 * share)) as u8)) };
        }
        out.push(panel);
    }
    let mut boxes = base;
    for (_, b) in v.truth {
        rectangle(&mut boxes, b, f as f64, Rgb([255, 255, 255]), 1);
    }
    for d in v.detections.iter().filter(|d| d.score >= 0.3) {
        rectangle(&mut boxes, &d.bbox, f as f64, class_colour(d.class), 2);
    }
    out.push(boxes);
    out
}

/// Logs the panels under `sparsevit/<camera>/{stage0,…,boxes}`.
pub fn log(
    rec: &rerun::RecordingStream,
    v: &SparseVitView<'_>,
    factor: u32,
) -> Result<(), rerun::RecordingStreamError> {
    let panels = panels(v, factor);
    let n = panels.len();
    for (i, p) in panels.into_iter().enumerate() {
        let name = if i + 1 == n { "boxes".to_string() } else { format!("stage{i}") };
        let (w, h) = p.dimensions();
        rec.log(format!("sparsevit/{}/{name}", v.camera), &rerun::Image::from_rgb24(p.into_raw(), [w, h]))?;
    }
    Ok(())
}
