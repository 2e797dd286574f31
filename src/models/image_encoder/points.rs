//! Image features for every LiDAR point (the MoST step): project the point into the
//! cameras (global shutter, reference/waymo.md §2.3), take the first camera in Waymo's
//! `lidar_camera_projection` order whose image holds the point, and sample that camera's
//! feature map bilinearly there. Points that no camera sees get zeros and `seen = false`.

use nalgebra::Vector3;
use ndarray::Array2;
use rayon::prelude::*;

use super::features::FeatureMap;
use crate::error::{Error, Location, Result};
use crate::geom::camera::CameraModel;
use crate::scene::CameraName;

/// The camera order of `lidar_camera_projection` (reference/waymo.md §1.4): the first
/// camera in this order whose image holds a point is its camera.
pub const CAMERA_ORDER: [CameraName; 5] =
    [CameraName::Front, CameraName::FrontLeft, CameraName::FrontRight, CameraName::SideLeft, CameraName::SideRight];

/// Points at least this many per rayon task (projection is cheap; avoid tiny tasks).
const CHUNK: usize = 4096;

/// The image feature of each point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointFeatures {
    /// The camera that sees each point (`None` when none does).
    pub camera: Vec<Option<CameraName>>,
    /// Pixel position in that camera (pixel 0 spans `[0, 1)`); NaN when unseen.
    pub uv: Vec<[f32; 2]>,
    /// `[N, C]`, zeros for unseen points.
    pub features: Array2<f32>,
}

impl PointFeatures {
    pub fn seen(&self, i: usize) -> bool {
        self.camera[i].is_some()
    }
    pub fn seen_count(&self) -> usize {
        self.camera.iter().filter(|c| c.is_some()).count()
    }
}

/// The first camera (in [`CAMERA_ORDER`]) whose image holds the vehicle-frame point `p`:
/// `(index into cameras, u, v)`.
pub fn choose_camera(
    cameras: &[(CameraName, CameraModel)],
    order: &[usize],
    p: &Vector3<f64>,
) -> Option<(usize, f64, f64)> {
    order.iter().find_map(|&i| {
        let pr = cameras[i].1.project_vehicle_point(p)?;
        pr.in_image.then_some((i, pr.u, pr.v))
    })
}

/// Indices of `cameras` in projection order (cameras outside [`CAMERA_ORDER`] last).
pub fn projection_order(cameras: &[(CameraName, CameraModel)]) -> Vec<usize> {
    let rank = |n: CameraName| CAMERA_ORDER.iter().position(|c| *c == n).unwrap_or(CAMERA_ORDER.len());
    let mut idx: Vec<usize> = (0..cameras.len()).collect();
    idx.sort_by_key(|&i| rank(cameras[i].0));
    idx
}

/// Image features of vehicle-frame points. `cameras[n]` is the camera of image `n` of the
/// batch that produced `map`.
pub fn point_features(
    points: &[[f32; 3]],
    cameras: &[(CameraName, CameraModel)],
    map: &FeatureMap,
) -> Result<PointFeatures> {
    let batch = map.data.shape()[0];
    if cameras.len() != batch {
        return Err(Error::invalid(
            Location::default().detail(format!("feature map `{}`", map.name)),
            format!("one camera per image of the batch ({batch})"),
            format!("{} cameras", cameras.len()),
        ));
    }
    for (n, (name, model)) in cameras.iter().enumerate() {
        let g = &map.geometry[n];
        if (g.width as f64, g.height as f64) != (model.width, model.height) {
            return Err(Error::invalid(
                Location::default().detail(format!("camera {name}")),
                format!("an image of the calibrated size {}x{}", model.width, model.height),
                format!("{}x{}", g.width, g.height),
            ));
        }
    }
    let order = projection_order(cameras);
    let grids: Vec<_> = (0..batch).map(|n| map.channels_last(n)).collect();
    let c = map.channels();
    let n = points.len();
    let mut features = vec![0.0f32; n * c];
    let mut camera = vec![None; n];
    let mut uv = vec![[f32::NAN; 2]; n];
    features
        .par_chunks_mut(CHUNK * c)
        .zip(camera.par_chunks_mut(CHUNK))
        .zip(uv.par_chunks_mut(CHUNK))
        .zip(points.par_chunks(CHUNK))
        .for_each(|(((f, cam), uv), pts)| {
            for (j, p) in pts.iter().enumerate() {
                let pv = Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64);
                let Some((i, u, v)) = choose_camera(cameras, &order, &pv) else { continue };
                cam[j] = Some(cameras[i].0);
                uv[j] = [u as f32, v as f32];
                let (x, y) = map.cell_of(i, u, v);
                grids[i].sample(x, y, &mut f[j * c..(j + 1) * c]);
            }
        });
    let features = Array2::from_shape_vec((n, c), features)
        .map_err(|e| Error::invalid(Location::default().detail("point features"), "an [N, C] array", e.to_string()))?;
    Ok(PointFeatures { camera, uv, features })
}
