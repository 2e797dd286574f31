//! A frame's cameras as one batch: decode the JPEGs (in parallel), check them against
//! their calibrations, order them as Waymo's camera projection does.

use image::RgbImage;
use rayon::prelude::*;

use super::points::CAMERA_ORDER;
use crate::error::{Error, Location, Result};
use crate::geom::camera::CameraModel;
use crate::io::image::decode_jpeg;
use crate::scene::{CameraName, Frame};

/// The decoded camera images of one frame with their camera models, in [`CAMERA_ORDER`]
/// (then any other camera by name value). `images[n]` is image `n` of the batch.
#[derive(Debug, Clone)]
pub struct FrameImages {
    pub cameras: Vec<(CameraName, CameraModel)>,
    pub images: Vec<RgbImage>,
}

/// Decodes every camera of `frame` that has an image and a calibration. `at` locates errors
/// (the frame's timestamp and the camera are added).
pub fn decode_frame_images(frame: &Frame, at: &Location) -> Result<FrameImages> {
    let mut cams: Vec<_> = frame.cameras.iter().filter(|c| !c.jpeg.is_empty()).collect();
    let rank =
        |n: CameraName| CAMERA_ORDER.iter().position(|c| *c == n).unwrap_or(CAMERA_ORDER.len() + n.value() as usize);
    cams.sort_by_key(|c| rank(c.camera));
    let decoded: Vec<Result<((CameraName, CameraModel), RgbImage)>> = cams
        .par_iter()
        .map(|c| {
            let at = at.clone().frame(frame.timestamp_micros).detail(format!("camera {}", c.camera));
            let calib =
                c.calibration.as_ref().ok_or_else(|| Error::invalid(at.clone(), "a camera calibration", "none"))?;
            let img = decode_jpeg(&c.jpeg, &at)?;
            if (img.width(), img.height()) != (calib.width, calib.height) {
                return Err(Error::invalid(
                    at,
                    format!("an image of the calibrated size {}x{}", calib.width, calib.height),
                    format!("a {}x{} image", img.width(), img.height()),
                ));
            }
            Ok(((c.camera, CameraModel::new(calib)), img))
        })
        .collect();
    let mut out = FrameImages { cameras: Vec::new(), images: Vec::new() };
    for d in decoded {
        let (cam, img) = d?;
        out.cameras.push(cam);
        out.images.push(img);
    }
    Ok(out)
}
