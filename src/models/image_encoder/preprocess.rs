//! Camera images → the model's input batch: resize (bilinear), normalise, channel order,
//! layout, batch padding. `tools/image_reference.py` is the NumPy reference that the
//! integration tests hold this to (within 1e-5 on the same decoded pixels).

use rayon::prelude::*;

use super::config::{ChannelOrder, Layout, ModelConfig};
use crate::error::{Error, Location, Result};

/// A decoded RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
}

impl<'a> RgbView<'a> {
    /// Checks that `pixels` holds `width × height × 3` bytes.
    pub fn new(width: u32, height: u32, pixels: &'a [u8]) -> Result<Self> {
        let want = width as usize * height as usize * 3;
        if pixels.len() != want || width == 0 || height == 0 {
            return Err(Error::invalid(
                Location::default().detail("RGB image"),
                format!("{width}x{height}x3 = {want} bytes (non-empty)"),
                format!("{} bytes", pixels.len()),
            ));
        }
        Ok(RgbView { width, height, pixels })
    }
}

impl<'a> From<&'a image::RgbImage> for RgbView<'a> {
    fn from(img: &'a image::RgbImage) -> Self {
        RgbView { width: img.width(), height: img.height(), pixels: img.as_raw() }
    }
}

/// Where one camera image sits in the model input: camera pixel `(u, v)` (pixel 0 spans
/// `[0, 1)`) is input position `(u · scale_x, v · scale_y)`. The image fills the top-left
/// `content_width × content_height` of the input; the rest is padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageGeometry {
    /// The original image size.
    pub width: u32,
    pub height: u32,
    /// Its size in the model input (before padding).
    pub content_width: u32,
    pub content_height: u32,
    pub scale_x: f64,
    pub scale_y: f64,
}

impl ImageGeometry {
    pub fn new(width: u32, height: u32, content_width: u32, content_height: u32) -> Self {
        ImageGeometry {
            width,
            height,
            content_width,
            content_height,
            scale_x: content_width as f64 / width as f64,
            scale_y: content_height as f64 / height as f64,
        }
    }
    /// Camera pixel → model-input pixel (continuous, edge-based coordinates).
    pub fn to_input(&self, u: f64, v: f64) -> (f64, f64) {
        (u * self.scale_x, v * self.scale_y)
    }
}

/// A preprocessed batch: the input tensor's data and each image's geometry.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[N, 3, H, W]` or `[N, H, W, 3]` per the config's layout.
    pub data: Vec<f32>,
    pub shape: [usize; 4],
    /// The padded input size (all images).
    pub input_width: u32,
    pub input_height: u32,
    pub geometry: Vec<ImageGeometry>,
}

/// Source index pairs and the weight of the second, per output coordinate: bilinear with
/// half-pixel centres (`src = (dst + 0.5) · in/out − 0.5`, clamped to the image), the
/// convention of OpenCV's INTER_LINEAR and PyTorch's `align_corners=False` without
/// antialiasing. At a factor of exactly 1/2 this is the 2×2 box average.
pub(crate) fn taps(input: u32, output: u32) -> Vec<(usize, usize, f32)> {
    let ratio = input as f64 / output as f64;
    let last = input as usize - 1;
    (0..output)
        .map(|d| {
            let s = ((d as f64 + 0.5) * ratio - 0.5).clamp(0.0, last as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(last);
            (i0, i1, (s - i0 as f64) as f32)
        })
        .collect()
}

/// Resizes, normalises and lays out `images` into one batch.
pub fn preprocess(config: &ModelConfig, images: &[RgbView<'_>]) -> Result<Batch> {
    let mut batch = Batch { data: Vec::new(), shape: [0; 4], input_width: 0, input_height: 0, geometry: Vec::new() };
    preprocess_into(config, images, &mut batch)?;
    Ok(batch)
}

/// As [`preprocess`], reusing `batch`'s buffer (no allocation when the size is unchanged).
pub fn preprocess_into(config: &ModelConfig, images: &[RgbView<'_>], batch: &mut Batch) -> Result<()> {
    plan_batch(config, images, batch)?;
    let mut data = std::mem::take(&mut batch.data);
    data.resize(batch.shape.iter().product(), 0.0);
    write_batch(config, images, batch, &mut data);
    batch.data = data;
    Ok(())
}

/// Sets `batch`'s shape, input size and geometry for `images` (its data is left alone).
pub fn plan_batch(config: &ModelConfig, images: &[RgbView<'_>], batch: &mut Batch) -> Result<()> {
    if images.is_empty() {
        return Err(Error::invalid(Location::file(&config.path), "at least one image", "an empty batch"));
    }
    let sizes: Vec<(u32, u32)> = images.iter().map(|im| config.resized_size(im.width, im.height)).collect();
    let (w, h) = config.batch_size(&sizes);
    let (wu, hu) = (w as usize, h as usize);
    batch.input_width = w;
    batch.input_height = h;
    batch.shape = match config.layout {
        Layout::Nchw => [images.len(), 3, hu, wu],
        Layout::Nhwc => [images.len(), hu, wu, 3],
    };
    batch.geometry =
        images.iter().zip(&sizes).map(|(im, &(cw, ch))| ImageGeometry::new(im.width, im.height, cw, ch)).collect();
    Ok(())
}

/// Writes the batch that [`plan_batch`] planned into `data` (its shape's element count):
/// every element, padding included, so `data` may hold anything before (e.g. the model's
/// bound input tensor, written in place to save a copy of the whole batch).
pub fn write_batch(config: &ModelConfig, images: &[RgbView<'_>], batch: &Batch, data: &mut [f32]) {
    let (wu, hu) = (batch.input_width as usize, batch.input_height as usize);
    let plane = wu * hu;
    let per_image = plane * 3;
    debug_assert_eq!(data.len(), per_image * images.len());
    let sizes: Vec<(usize, usize)> =
        batch.geometry.iter().map(|g| (g.content_width as usize, g.content_height as usize)).collect();

    // Model channel c reads source channel src[c]; scale/offset fold mean and std.
    let src: [usize; 3] = match config.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let norm = (src, config.mean, config.std);
    let xtaps: Vec<Vec<(usize, usize, f32)>> =
        images.iter().zip(&sizes).map(|(im, &(cw, _))| taps(im.width, cw as u32)).collect();
    let ytaps: Vec<Vec<(usize, usize, f32)>> =
        images.iter().zip(&sizes).map(|(im, &(_, ch))| taps(im.height, ch as u32)).collect();

    // One output row: horizontal then vertical interpolation of the two source rows, in
    // f32, in the same order as the reference. Rows below the content and columns right of
    // it are padding: 0 after normalisation, i.e. the mean colour.
    fn row_values(
        images: &[RgbView<'_>],
        xtaps: &[Vec<(usize, usize, f32)>],
        ytaps: &[Vec<(usize, usize, f32)>],
        norm: &([usize; 3], [f32; 3], [f32; 3]),
        n: usize,
        y: usize,
        mut out: impl FnMut(usize, usize, f32),
    ) {
        let (src, mean, std) = norm;
        let im = &images[n];
        let stride = im.width as usize * 3;
        let (y0, y1, wy) = ytaps[n][y];
        let r0 = &im.pixels[y0 * stride..(y0 + 1) * stride];
        let r1 = &im.pixels[y1 * stride..(y1 + 1) * stride];
        for (x, &(x0, x1, wx)) in xtaps[n].iter().enumerate() {
            for (c, &s) in src.iter().enumerate() {
                let a = (1.0 - wx) * r0[x0 * 3 + s] as f32 + wx * r0[x1 * 3 + s] as f32;
                let b = (1.0 - wx) * r1[x0 * 3 + s] as f32 + wx * r1[x1 * 3 + s] as f32;
                let v = (1.0 - wy) * a + wy * b;
                out(x, c, (v - mean[c]) / std[c]);
            }
        }
    }

    // One task per (image, output row): rows are independent and images differ in size.
    match config.layout {
        Layout::Nhwc => {
            let rows = data.par_chunks_mut(wu * 3).enumerate().map(|(i, row)| (i / hu, i % hu, row));
            rows.for_each(|(n, y, row)| {
                let (cw, ch) = sizes[n];
                if y >= ch {
                    row.fill(0.0);
                    return;
                }
                row_values(images, &xtaps, &ytaps, &norm, n, y, |x, c, v| row[x * 3 + c] = v);
                row[cw * 3..].fill(0.0);
            })
        }
        Layout::Nchw => {
            // NCHW rows are split across three planes: a task owns one output row of all
            // three planes of an image.
            let mut tasks: Vec<(usize, usize, [&mut [f32]; 3])> = Vec::with_capacity(images.len() * hu);
            for (n, chunk) in data.chunks_mut(per_image).enumerate() {
                let (p0, rest) = chunk.split_at_mut(plane);
                let (p1, p2) = rest.split_at_mut(plane);
                for (y, ((a, b), c)) in p0.chunks_mut(wu).zip(p1.chunks_mut(wu)).zip(p2.chunks_mut(wu)).enumerate() {
                    tasks.push((n, y, [a, b, c]));
                }
            }
            tasks.into_par_iter().for_each(|(n, y, mut planes)| {
                let (cw, ch) = sizes[n];
                if y >= ch {
                    planes.iter_mut().for_each(|p| p.fill(0.0));
                    return;
                }
                row_values(images, &xtaps, &ytaps, &norm, n, y, |x, c, v| planes[c][x] = v);
                planes.iter_mut().for_each(|p| p[cw..].fill(0.0));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::image_encoder::config::default_config_path;

    fn config() -> ModelConfig {
        ModelConfig::load(default_config_path(&crate::locate::DataDir::locate(None).unwrap())).unwrap()
    }

    #[test]
    fn half_scale_is_the_box_average_and_padding_is_the_mean() {
        // 4×2 image → 2×1 content, padded to 32×32.
        let px: Vec<u8> = (0..24).map(|i| (i * 10) as u8).collect();
        let img = RgbView::new(4, 2, &px).unwrap();
        let b = preprocess(&config(), &[img]).unwrap();
        assert_eq!(b.shape, [1, 3, 32, 32]);
        let g = b.geometry[0];
        assert_eq!((g.content_width, g.content_height, g.scale_x, g.scale_y), (2, 1, 0.5, 0.5));
        let at = |c: usize, y: usize, x: usize| b.data[(c * 32 + y) * 32 + x];
        // Output (0,0), channel R: mean of pixels (0,0),(1,0),(0,1),(1,1) = R values 0,30,120,150.
        let want = ((0.0 + 30.0 + 120.0 + 150.0) / 4.0 - 127.0) / 128.0;
        assert!((at(0, 0, 0) - want).abs() < 1e-6, "{} {want}", at(0, 0, 0));
        let want_g1 = ((70.0 + 100.0 + 190.0 + 220.0) / 4.0 - 127.0) / 128.0;
        assert!((at(1, 0, 1) - want_g1).abs() < 1e-6);
        assert_eq!(at(0, 1, 0), 0.0);
        assert_eq!(at(2, 0, 2), 0.0);
    }

    #[test]
    fn nhwc_bgr_matches_nchw_rgb() {
        let px: Vec<u8> = (0..(37 * 23 * 3)).map(|i| (i * 7 % 251) as u8).collect();
        let img = RgbView::new(37, 23, &px).unwrap();
        let a = config();
        let mut b = a.clone();
        b.layout = Layout::Nhwc;
        b.channel_order = ChannelOrder::Bgr;
        let (x, y) = (preprocess(&a, &[img]).unwrap(), preprocess(&b, &[img]).unwrap());
        let (h, w) = (x.shape[2], x.shape[3]);
        for c in 0..3 {
            for r in 0..h {
                for q in 0..w {
                    assert_eq!(x.data[(c * h + r) * w + q], y.data[(r * w + q) * 3 + (2 - c)]);
                }
            }
        }
    }

    #[test]
    fn writing_over_old_data_leaves_nothing_of_it() {
        // Two images of different sizes (padding right and below), both layouts.
        let px1: Vec<u8> = (0..(37 * 23 * 3)).map(|i| (i * 7 % 251) as u8).collect();
        let px2: Vec<u8> = (0..(50 * 11 * 3)).map(|i| (i * 13 % 241) as u8).collect();
        let imgs = [RgbView::new(37, 23, &px1).unwrap(), RgbView::new(50, 11, &px2).unwrap()];
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let mut cfg = config();
            cfg.layout = layout;
            let fresh = preprocess(&cfg, &imgs).unwrap();
            let mut planned = fresh.clone();
            planned.data.clear();
            plan_batch(&cfg, &imgs, &mut planned).unwrap();
            let mut data = vec![f32::NAN; fresh.data.len()];
            write_batch(&cfg, &imgs, &planned, &mut data);
            assert!(data == fresh.data, "{layout:?}");
            assert!(fresh.data.iter().filter(|v| **v == 0.0).count() > fresh.data.len() / 2);
        }
    }

    #[test]
    fn wrong_pixel_count_is_an_error() {
        let e = RgbView::new(4, 4, &[0u8; 10]).unwrap_err().to_string();
        assert!(e.contains("4x4x3 = 48 bytes") && e.contains("10 bytes"), "{e}");
    }
}
