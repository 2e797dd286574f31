//! SparseRefine, camera by camera: the image, the dense low-resolution prediction, the pixels the
//! entropy selector picked (over the image, in yellow), the refined result and the ground truth,
//! as one grid picture (a row per camera) and as rerun images.

use image::{Rgb, RgbImage};

use super::classes::camera_class_color;
use crate::scene::{CameraName, CameraSegClass};

/// One camera's panels at full resolution.
pub struct RefineView<'a> {
    pub camera: CameraName,
    pub rgb: &'a RgbImage,
    pub dense: &'a [u8],
    /// Row-major, one per pixel.
    pub selected: &'a [bool],
    pub refined: &'a [u8],
    pub truth: &'a [u8],
}

fn class_rgb(c: u8) -> [u8; 3] {
    CameraSegClass::from_value(c as i64).map_or([0, 0, 0], camera_class_color)
}

/// The five panels of one camera, each `width / factor` pixels wide: a panel pixel shows the
/// full-resolution pixel at its block's centre; the selection panel marks a block when any of
/// its pixels is selected (thin selections stay visible when shrunk).
pub fn panels(v: &RefineView<'_>, factor: u32) -> [RgbImage; 5] {
    let (w, h) = v.rgb.dimensions();
    let f = factor.max(1);
    let (pw, ph) = (w.div_ceil(f), h.div_ceil(f));
    let centre = |x: u32, y: u32| ((x * f + f / 2).min(w - 1), (y * f + f / 2).min(h - 1));
    let classes = |data: &[u8]| {
        RgbImage::from_fn(pw, ph, |x, y| {
            let (u, q) = centre(x, y);
            Rgb(class_rgb(data[(q * w + u) as usize]))
        })
    };
    let image = RgbImage::from_fn(pw, ph, |x, y| {
        let (u, q) = centre(x, y);
        *v.rgb.get_pixel(u, q)
    });
    let selection = RgbImage::from_fn(pw, ph, |x, y| {
        let any = (y * f..((y + 1) * f).min(h))
            .any(|q| (x * f..((x + 1) * f).min(w)).any(|u| v.selected[(q * w + u) as usize]));
        let (u, q) = centre(x, y);
        let p = v.rgb.get_pixel(u, q).0;
        if any { Rgb([255, 220, 0]) } else { Rgb(p.map(|c| c / 3)) }
    });
    [image, classes(v.dense), selection, classes(v.refined), classes(v.truth)]
}

/// A grid: one row per camera, its panels side by side, 4-pixel white gutters.
pub fn grid<R: AsRef<[RgbImage]>>(rows: &[R]) -> RgbImage {
    const GAP: u32 = 4;
    let width = rows.iter().map(|r| r.as_ref().iter().map(|p| p.width() + GAP).sum::<u32>()).max().unwrap_or(0);
    let height: u32 = rows.iter().map(|r| r.as_ref().first().map_or(0, |p| p.height()) + GAP).sum();
    let mut out = RgbImage::from_pixel(width.max(1), height.max(1), Rgb([255, 255, 255]));
    let mut y = 0;
    for r in rows {
        let mut x = 0;
        for p in r.as_ref() {
            image::imageops::replace(&mut out, p, x as i64, y as i64);
            x += p.width() + GAP;
        }
        y += r.as_ref().first().map_or(0, |p| p.height()) + GAP;
    }
    out
}

/// Logs one camera's panels under `refine/<camera>/{image,dense,selected,refined,truth}`.
pub fn log(rec: &rerun::RecordingStream, v: &RefineView<'_>, factor: u32) -> Result<(), rerun::RecordingStreamError> {
    let names = ["image", "dense", "selected", "refined", "truth"];
    for (name, p) in names.iter().zip(panels(v, factor)) {
        let (w, h) = p.dimensions();
        rec.log(format!("refine/{}/{name}", v.camera), &rerun::Image::from_rgb24(p.into_raw(), [w, h]))?;
    }
    Ok(())
}
