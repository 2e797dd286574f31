//! Global-shutter camera projection, exactly as docs/geometry.md#camera-projection (upstream
//! `camera_model.cc` without rolling-shutter compensation, which is out of scope).
//!
//! The camera frame is x forward (optical axis), y left, z up; normalised image
//! coordinates are `u_n = -y/x`, `v_n = -z/x`; distortion is OpenCV-style radial
//! (k1, k2, k3) plus tangential (p1, p2).

use nalgebra::{Matrix3, Vector3};

use super::pose::rotation_of;
use crate::scene::{Box2d, Box3d, CameraCalibration, Intrinsics};

/// Below and above these radial factors the distortion polynomial is not trusted
/// (upstream's limits): the projection is marked invalid and only its direction is kept.
const MIN_RADIAL_DISTORTION: f64 = 0.8;
const MAX_RADIAL_DISTORTION: f64 = 1.2;
/// Iterations of the undistortion fixed point (upstream's limit).
const MAX_UNDISTORT_ITERATIONS: usize = 20;

/// A point projected onto the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// Pixel coordinates; pixel 0 spans `[0, 1)` (u to the right, v down).
    pub u: f64,
    pub v: f64,
    /// Distance along the optical axis (camera-frame x), metres; always > 0.
    pub depth: f64,
    /// `valid && 0 <= u < width && 0 <= v < height`.
    pub in_image: bool,
    /// False when the distortion factor left [0.8, 1.2]: `(u, v)` is then only a far point
    /// (one image diagonal from the principal point) in the point's direction.
    pub valid: bool,
}

/// A pinhole camera with distortion, built from a [`CameraCalibration`].
#[derive(Debug, Clone, PartialEq)]
pub struct CameraModel {
    pub intrinsics: Intrinsics,
    pub width: f64,
    pub height: f64,
    /// Camera → vehicle.
    cam_to_vehicle_r: Matrix3<f64>,
    cam_to_vehicle_t: Vector3<f64>,
    /// Vehicle → camera (the rigid inverse of the extrinsic).
    vehicle_to_cam_r: Matrix3<f64>,
    vehicle_to_cam_t: Vector3<f64>,
}

impl CameraModel {
    /// The global-shutter model of a calibration (its rolling-shutter direction is ignored).
    /// The extrinsic is assumed rigid.
    pub fn new(calib: &CameraCalibration) -> Self {
        let inv = calib.extrinsic.inverse_rigid();
        CameraModel {
            intrinsics: calib.intrinsic,
            width: calib.width as f64,
            height: calib.height as f64,
            cam_to_vehicle_r: rotation_of(&calib.extrinsic),
            cam_to_vehicle_t: calib.extrinsic.translation(),
            vehicle_to_cam_r: rotation_of(&inv),
            vehicle_to_cam_t: inv.translation(),
        }
    }

    /// A vehicle-frame point in camera coordinates.
    pub fn vehicle_to_camera(&self, p: &Vector3<f64>) -> Vector3<f64> {
        self.vehicle_to_cam_r * p + self.vehicle_to_cam_t
    }

    /// A camera-frame point in vehicle coordinates.
    pub fn camera_to_vehicle(&self, p: &Vector3<f64>) -> Vector3<f64> {
        self.cam_to_vehicle_r * p + self.cam_to_vehicle_t
    }

    /// Projects a vehicle-frame point; `None` when it is not in front of the camera
    /// (camera-frame x ≤ 0, or not finite).
    pub fn project_vehicle_point(&self, p: &Vector3<f64>) -> Option<Projection> {
        self.project_camera_point(&self.vehicle_to_camera(p))
    }

    /// Projects a camera-frame point (see [`CameraModel::project_vehicle_point`]).
    pub fn project_camera_point(&self, pc: &Vector3<f64>) -> Option<Projection> {
        // On or behind the camera plane, or NaN.
        if pc.x.is_nan() || pc.x <= 0.0 {
            return None;
        }
        let (u, v, valid) = self.direction_to_image(-pc.y / pc.x, -pc.z / pc.x);
        if !(u.is_finite() && v.is_finite()) {
            return None;
        }
        let in_image = valid && (0.0..self.width).contains(&u) && (0.0..self.height).contains(&v);
        Some(Projection { u, v, depth: pc.x, in_image, valid })
    }

    /// Projects many vehicle-frame points (rayon-parallel for large batches).
    pub fn project_points(&self, points: &[Vector3<f64>]) -> Vec<Option<Projection>> {
        use rayon::prelude::*;
        if points.len() < 8192 {
            points.iter().map(|p| self.project_vehicle_point(p)).collect()
        } else {
            points.par_iter().map(|p| self.project_vehicle_point(p)).collect()
        }
    }

    /// Normalised coordinates → pixel (`DirectionToImage`): `(u, v, valid)`.
    pub fn direction_to_image(&self, u_n: f64, v_n: f64) -> (f64, f64, bool) {
        let k = &self.intrinsics;
        let r2 = u_n * u_n + v_n * v_n;
        let rd = radial_factor(k, r2);
        if !(MIN_RADIAL_DISTORTION..=MAX_RADIAL_DISTORTION).contains(&rd) {
            // The polynomial has left its calibrated range; keep only the direction, put
            // one image diagonal away so it lands outside the image.
            let diag = self.width.hypot(self.height);
            let norm = r2.sqrt();
            return (u_n / norm * diag + k.c_u, v_n / norm * diag + k.c_v, false);
        }
        let u_nd = u_n * rd + 2.0 * k.p1 * u_n * v_n + k.p2 * (r2 + 2.0 * u_n * u_n);
        let v_nd = v_n * rd + k.p1 * (r2 + 2.0 * v_n * v_n) + 2.0 * k.p2 * u_n * v_n;
        (u_nd * k.f_u + k.c_u, v_nd * k.f_v + k.c_v, true)
    }

    /// Pixel → normalised coordinates (`ImageToDirection`): the fixed-point undistortion,
    /// at most 20 iterations, stopping when the step is below `1e-12/(f_u² + f_v²)`.
    pub fn image_to_direction(&self, u: f64, v: f64) -> (f64, f64) {
        let k = &self.intrinsics;
        let u_nd = (u - k.c_u) / k.f_u;
        let v_nd = (v - k.c_v) / k.f_v;
        let tol = 1e-12 / (k.f_u * k.f_u + k.f_v * k.f_v);
        let (mut un, mut vn) = (u_nd, v_nd);
        for _ in 0..MAX_UNDISTORT_ITERATIONS {
            let r2 = un * un + vn * vn;
            let rd = radial_factor(k, r2);
            let nu = (u_nd - (2.0 * k.p1 * un * vn + k.p2 * (r2 + 2.0 * un * un))) / rd;
            let nv = (v_nd - (2.0 * k.p2 * un * vn + k.p1 * (r2 + 2.0 * vn * vn))) / rd;
            let (du, dv) = (nu - un, nv - vn);
            un = nu;
            vn = nv;
            if du * du + dv * dv < tol {
                break;
            }
        }
        (un, vn)
    }

    /// The vehicle-frame point seen at pixel `(u, v)` at `depth` metres along the optical
    /// axis: the inverse of [`CameraModel::project_vehicle_point`] for valid projections.
    pub fn unproject(&self, u: f64, v: f64, depth: f64) -> Vector3<f64> {
        let (un, vn) = self.image_to_direction(u, v);
        self.camera_to_vehicle(&Vector3::new(depth, -un * depth, -vn * depth))
    }
}

fn radial_factor(k: &Intrinsics, r2: f64) -> f64 {
    let r4 = r2 * r2;
    1.0 + k.k1 * r2 + k.k2 * r4 + k.k3 * r4 * r2
}

/// The image box of a vehicle-frame 3-D box, as Waymo's `projected_lidar_labels`: the
/// min/max of its 8 projected corners, clamped to `[0, width] × [0, height]`.
///
/// `None` when any corner is behind the camera (a box crossing the camera plane would need
/// near-plane clipping, which Waymo's labels do not show) or when the clamped box is empty
/// (entirely outside the image). A corner whose distortion is out of range contributes its
/// far direction point, so after clamping the box reaches the image border on that side.
pub fn project_box_to_image(b: &Box3d, model: &CameraModel) -> Option<Box2d> {
    let (mut u0, mut v0) = (f64::INFINITY, f64::INFINITY);
    let (mut u1, mut v1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for c in b.corners() {
        let p = model.project_vehicle_point(&c)?;
        u0 = u0.min(p.u);
        v0 = v0.min(p.v);
        u1 = u1.max(p.u);
        v1 = v1.max(p.v);
    }
    let (u0, u1) = (u0.clamp(0.0, model.width), u1.clamp(0.0, model.width));
    let (v0, v1) = (v0.clamp(0.0, model.height), v1.clamp(0.0, model.height));
    (u1 > u0 && v1 > v0).then(|| Box2d::from_min_max(u0, v0, u1, v1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{CameraName, RollingShutterDirection, Transform};

    fn pinhole() -> CameraModel {
        CameraModel::new(&CameraCalibration {
            camera: CameraName::Front,
            intrinsic: Intrinsics::from_array(&[1000.0, 1000.0, 960.0, 640.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
            extrinsic: Transform::identity(),
            width: 1920,
            height: 1280,
            rolling_shutter: RollingShutterDirection::GlobalShutter,
        })
    }

    #[test]
    fn pinhole_axes() {
        let m = pinhole();
        // Left (+y) maps to smaller u, up (+z) to smaller v.
        let p = m.project_vehicle_point(&Vector3::new(10.0, 1.0, 2.0)).unwrap();
        assert!((p.u - (960.0 - 100.0)).abs() < 1e-9);
        assert!((p.v - (640.0 - 200.0)).abs() < 1e-9);
        assert_eq!(p.depth, 10.0);
        assert!(p.valid && p.in_image);
    }

    #[test]
    fn behind_and_nan_are_not_projectable() {
        let m = pinhole();
        assert!(m.project_vehicle_point(&Vector3::new(0.0, 1.0, 1.0)).is_none());
        assert!(m.project_vehicle_point(&Vector3::new(-5.0, 0.0, 0.0)).is_none());
        assert!(m.project_vehicle_point(&Vector3::new(f64::NAN, 0.0, 0.0)).is_none());
    }
}
