//! Image features for every LiDAR point (the MoST step): project the point into the
//! cameras (global shutter, docs/geometry.md#camera-projection), take the first camera in Waymo's
//! `lidar_camera_projection` order whose image holds the point, and sample that camera's
//! feature map bilinearly there. Points that no camera sees get zeros and `seen = false`.

use nalgebra::Vector3;
use ndarray::Array2;
use rayon::prelude::*;

use super::features::FeatureMap;
use crate::error::{Error, Location, Result};
use crate::geom::camera::CameraModel;
use crate::scene::CameraName;

/// The camera order of `lidar_camera_projection` (docs/formats.md#lidar_camera_projection-channels-and-camera-order): the first
/// camera in this order whose image holds a point is its camera.
pub const CAMERA_ORDER: [CameraName; 5] =
    [CameraName::Front, CameraName::FrontLeft, CameraName::FrontRight, CameraName::SideLeft, CameraName::SideRight];

/// Points at least this many per rayon task (projection is cheap; avoid tiny tasks).
const CHUNK: usize = 4096;

/// The image feature of each point.
#[derive(Debug, Clone, PartialEq, Default)]
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

/// Points on the border of the image checked to bound its field of view.
const BORDER_SAMPLES: usize = 64;
/// Safety margin on that bound (the distortion is smooth: the bound between samples is
/// off by far less).
const CULL_MARGIN: f64 = 1.05;

/// A conservative bound of a camera's field of view in normalised (undistorted)
/// coordinates: a point outside it cannot land in the image, so most of the points behind
/// or beside a camera are rejected without the distortion polynomial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldOfView {
    max_u: f64,
    max_v: f64,
}

impl FieldOfView {
    pub fn of(model: &CameraModel) -> Self {
        let (w, h) = (model.width, model.height);
        let (mut max_u, mut max_v) = (0.0f64, 0.0f64);
        for i in 0..=BORDER_SAMPLES {
            let t = i as f64 / BORDER_SAMPLES as f64;
            for (u, v) in [(t * w, 0.0), (t * w, h), (0.0, t * h), (w, t * h)] {
                let (un, vn) = model.image_to_direction(u, v);
                max_u = max_u.max(un.abs());
                max_v = max_v.max(vn.abs());
            }
        }
        FieldOfView { max_u: max_u * CULL_MARGIN, max_v: max_v * CULL_MARGIN }
    }
    /// False only for camera-frame points that certainly miss the image.
    fn may_see(&self, pc: &Vector3<f64>) -> bool {
        pc.x > 0.0 && pc.y.abs() <= self.max_u * pc.x && pc.z.abs() <= self.max_v * pc.x
    }
}

/// The first camera (in [`CAMERA_ORDER`]) whose image holds the vehicle-frame point `p`:
/// `(index into cameras, u, v)`. `order` comes from [`projection_order`], `fov[i]` from
/// [`FieldOfView::of`] for camera `i`.
pub fn choose_camera(
    cameras: &[(CameraName, CameraModel)],
    order: &[usize],
    fov: &[FieldOfView],
    p: &Vector3<f64>,
) -> Option<(usize, f64, f64)> {
    order.iter().find_map(|&i| {
        let model = &cameras[i].1;
        let pc = model.vehicle_to_camera(p);
        if !fov[i].may_see(&pc) {
            return None;
        }
        let pr = model.project_camera_point(&pc)?;
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
    let mut out = PointFeatures::default();
    point_features_into(points, cameras, map, &mut out)?;
    Ok(out)
}

/// [`point_features`] into `out`, reusing its memory (the features of a TOP return at 112
/// channels are ~75 MB: fresh pages each frame cost about as much as the sampling).
pub fn point_features_into(
    points: &[[f32; 3]],
    cameras: &[(CameraName, CameraModel)],
    map: &FeatureMap,
    out: &mut PointFeatures,
) -> Result<()> {
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
    let fov: Vec<FieldOfView> = cameras.iter().map(|(_, m)| FieldOfView::of(m)).collect();
    let grids: Vec<_> = (0..batch).map(|n| map.channels_last(n)).collect();
    let c = map.channels();
    let n = points.len();
    // Every element below is written for every point, so stale values cannot survive.
    let (mut features, _) = std::mem::take(&mut out.features).into_raw_vec_and_offset();
    features.resize(n * c, 0.0);
    out.camera.resize(n, None);
    out.uv.resize(n, [f32::NAN; 2]);
    features
        .par_chunks_mut(CHUNK * c)
        .zip(out.camera.par_chunks_mut(CHUNK))
        .zip(out.uv.par_chunks_mut(CHUNK))
        .zip(points.par_chunks(CHUNK))
        .for_each(|(((f, cam), uv), pts)| {
            for (j, p) in pts.iter().enumerate() {
                let pv = Vector3::new(p[0] as f64, p[1] as f64, p[2] as f64);
                let feature = &mut f[j * c..(j + 1) * c];
                match choose_camera(cameras, &order, &fov, &pv) {
                    Some((i, u, v)) => {
                        cam[j] = Some(cameras[i].0);
                        uv[j] = [u as f32, v as f32];
                        let (x, y) = map.cell_of(i, u, v);
                        grids[i].sample(x, y, feature);
                    }
                    None => {
                        cam[j] = None;
                        uv[j] = [f32::NAN; 2];
                        feature.fill(0.0);
                    }
                }
            }
        });
    out.features = Array2::from_shape_vec((n, c), features)
        .map_err(|e| Error::invalid(Location::default().detail("point features"), "an [N, C] array", e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use ndarray::Array4;

    use super::*;
    use crate::models::image_encoder::preprocess::ImageGeometry;
    use crate::scene::{CameraCalibration, Intrinsics, RollingShutterDirection, Transform};

    /// A 200×100 pinhole camera (f = 100, centre (100, 50)) at the origin looking along
    /// `yaw` (radians, vehicle frame).
    fn camera(name: CameraName, yaw: f64) -> (CameraName, CameraModel) {
        let (c, s) = (yaw.cos(), yaw.sin());
        let extrinsic =
            Transform::from_row_major(&[c, -s, 0.0, 0.0, s, c, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let calib = CameraCalibration {
            camera: name,
            intrinsic: Intrinsics::from_array(&[100.0, 100.0, 100.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
            extrinsic,
            width: 200,
            height: 100,
            rolling_shutter: RollingShutterDirection::GlobalShutter,
        };
        (name, CameraModel::new(&calib))
    }

    /// Image n's channel 0 holds n, channel 1 holds the cell column: a sample tells which
    /// image it came from and where.
    fn map(n: usize) -> FeatureMap {
        let g = ImageGeometry::new(200, 100, 200, 100);
        let data = Array4::from_shape_fn((n, 2, 10, 20), |(b, k, _, q)| if k == 0 { b as f32 } else { q as f32 });
        FeatureMap::new("m".into(), 10, data, vec![g; n])
    }

    #[test]
    fn hand_made_points_take_the_first_camera_in_waymo_order() {
        // Given in the "wrong" order: FRONT_LEFT (looking 45° left) first, then FRONT.
        let cams = vec![camera(CameraName::FrontLeft, std::f64::consts::FRAC_PI_4), camera(CameraName::Front, 0.0)];
        let pts = [
            [10.0, 0.0, 0.0],            // straight ahead: FRONT, principal point
            [10.0, 9.0, 0.0],            // 42° left: both see it, FRONT wins (u = 100 - 90 = 10)
            [1.736_482, 9.848_078, 0.0], // 80° left: only FRONT_LEFT (35° off its axis)
            [-10.0, 0.0, 0.0],           // behind both
            [10.0, 0.0, 100.0],          // far above: outside both images
        ];
        let f = point_features(&pts, &cams, &map(2)).unwrap();
        assert_eq!(
            f.camera,
            vec![Some(CameraName::Front), Some(CameraName::Front), Some(CameraName::FrontLeft), None, None]
        );
        assert!((f.uv[0][0] - 100.0).abs() < 1e-4 && (f.uv[0][1] - 50.0).abs() < 1e-4, "{:?}", f.uv[0]);
        assert!((f.uv[1][0] - 10.0).abs() < 1e-4);
        let want = 100.0 - 100.0 * 35f32.to_radians().tan();
        assert!((f.uv[2][0] - want).abs() < 1e-3, "{:?} {want}", f.uv[2]);
        // FRONT is image 1 of the batch; the principal point is cell x = 100/10 - 0.5 = 9.5.
        assert_eq!(f.features.row(0).to_vec(), vec![1.0, 9.5]);
        assert_eq!(f.features[[2, 0]], 0.0);
        assert!(f.uv[3][0].is_nan() && f.features.row(3).iter().all(|v| *v == 0.0));
        assert_eq!(f.seen_count(), 3);
    }

    #[test]
    fn reused_memory_keeps_nothing_of_the_last_call() {
        let cams = vec![camera(CameraName::FrontLeft, std::f64::consts::FRAC_PI_4), camera(CameraName::Front, 0.0)];
        let seen: Vec<[f32; 3]> = (0..5000).map(|i| [10.0, (i % 17) as f32 - 8.0, 0.0]).collect();
        let mixed: Vec<[f32; 3]> = (0..3000).map(|i| [if i % 3 == 0 { -10.0 } else { 10.0 }, 1.0, 0.0]).collect();
        let mut out = PointFeatures::default();
        for pts in [&seen, &mixed] {
            point_features_into(pts, &cams, &map(2), &mut out).unwrap();
            let fresh = point_features(pts, &cams, &map(2)).unwrap();
            assert_eq!((&out.camera, &out.features), (&fresh.camera, &fresh.features));
            // Unseen points' pixels are NaN: compare bits.
            let bits = |f: &PointFeatures| f.uv.iter().map(|p| p.map(f32::to_bits)).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&fresh));
        }
        assert_eq!(out.seen_count(), 2000);
    }

    #[test]
    fn the_field_of_view_cull_never_rejects_a_point_in_the_image() {
        // A distorted camera: every pixel's ray must pass the cull (and project back).
        let (name, _) = camera(CameraName::Front, 0.0);
        let mut calib = CameraCalibration {
            camera: name,
            intrinsic: Intrinsics::from_array(&[100.0, 100.0, 100.0, 50.0, -0.15, 0.05, 0.001, -0.001, 0.0]),
            extrinsic: Transform::identity(),
            width: 200,
            height: 100,
            rolling_shutter: RollingShutterDirection::GlobalShutter,
        };
        calib.extrinsic.0[(0, 3)] = 1.5;
        let m = CameraModel::new(&calib);
        let fov = FieldOfView::of(&m);
        let cams = [(name, m.clone())];
        for v in (0..100).map(|i| i as f64 + 0.5) {
            for u in (0..200).map(|i| i as f64 + 0.5) {
                let (un, vn) = m.image_to_direction(u, v);
                let p = m.camera_to_vehicle(&Vector3::new(7.0, -un * 7.0, -vn * 7.0));
                let (_, pu, pv) = choose_camera(&cams, &[0], &[fov], &p).expect("an image pixel is seen");
                assert!((pu - u).abs() < 1e-6 && (pv - v).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn a_batch_that_does_not_fit_the_cameras_is_an_error() {
        let cams = vec![camera(CameraName::Front, 0.0)];
        let e = point_features(&[[1.0, 0.0, 0.0]], &cams, &map(2)).unwrap_err().to_string();
        assert!(e.contains("one camera per image of the batch (2)"), "{e}");
        let mut m = map(1);
        m.geometry[0] = ImageGeometry::new(100, 100, 100, 100);
        let e = point_features(&[[1.0, 0.0, 0.0]], &cams, &m).unwrap_err().to_string();
        assert!(e.contains("camera FRONT") && e.contains("200x100") && e.contains("100x100"), "{e}");
    }
}
