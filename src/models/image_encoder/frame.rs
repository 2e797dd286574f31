//! A frame's cameras as one batch: decode the JPEGs (in parallel), check them against
//! their calibrations, order them as Waymo's camera projection does.

use image::RgbImage;
use rayon::prelude::*;

use super::points::CAMERA_ORDER;
use crate::error::{Error, Location, Result};
use crate::geom::camera::CameraModel;
use crate::io::image::{decode_jpeg_into, jpeg_dimensions};
use crate::scene::{CameraName, Frame};

/// The decoded camera images of one frame with their camera models, in [`CAMERA_ORDER`]
/// (then any other camera by name value). `images[n]` is image `n` of the batch.
#[derive(Debug, Clone, Default)]
pub struct FrameImages {
    pub cameras: Vec<(CameraName, CameraModel)>,
    pub images: Vec<RgbImage>,
}

/// Decodes every camera of `frame` that has an image and a calibration. `at` locates errors
/// (the frame's timestamp and the camera are added).
pub fn decode_frame_images(frame: &Frame, at: &Location) -> Result<FrameImages> {
    let mut out = FrameImages { cameras: Vec::new(), images: Vec::new() };
    decode_frame_images_into(frame, at, &mut out)?;
    Ok(out)
}

/// [`decode_frame_images`] into `out`, whose image memory is reused (frame after frame of a
/// segment, same-sized images decode without fresh pages). On error `out` is unspecified.
pub fn decode_frame_images_into(frame: &Frame, at: &Location, out: &mut FrameImages) -> Result<()> {
    let mut cams: Vec<_> = frame.cameras.iter().filter(|c| !c.jpeg.is_empty()).collect();
    let rank =
        |n: CameraName| CAMERA_ORDER.iter().position(|c| *c == n).unwrap_or(CAMERA_ORDER.len() + n.value() as usize);
    cams.sort_by_key(|c| rank(c.camera));
    out.images.resize_with(cams.len(), || RgbImage::new(0, 0));
    out.cameras.clear();
    let decoded: Vec<Result<(CameraName, CameraModel)>> = cams
        .par_iter()
        .zip(out.images.par_iter_mut())
        .map(|(c, img)| {
            let at = at.clone().frame(frame.timestamp_micros).detail(format!("camera {}", c.camera));
            let calib =
                c.calibration.as_ref().ok_or_else(|| Error::invalid(at.clone(), "a camera calibration", "none"))?;
            // The header's size first: a JPEG claiming another size (or a huge one) is an
            // error before its pixels are allocated.
            let (w, h) = jpeg_dimensions(&c.jpeg, &at)?;
            if (w, h) != (calib.width, calib.height) {
                return Err(Error::invalid(
                    at,
                    format!("an image of the calibrated size {}x{}", calib.width, calib.height),
                    format!("a {w}x{h} image"),
                ));
            }
            decode_jpeg_into(&c.jpeg, &at, img)?;
            Ok((c.camera, CameraModel::new(calib)))
        })
        .collect();
    for d in decoded {
        out.cameras.push(d?);
    }
    Ok(())
}
