//! Sensor data and calibrations: range images, LiDAR and camera calibrations, boxes.

use nalgebra::{Matrix4, Vector3};
use serde::{Deserialize, Serialize};

use super::enums::{BoxType, CameraName, CameraSegClass, DifficultyLevel, LaserName, RollingShutterDirection};

/// A rigid transform as Waymo stores it: a row-major 4×4 matrix (`fixed_size_list<double>[16]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transform(pub Matrix4<f64>);

impl Transform {
    pub fn identity() -> Self {
        Transform(Matrix4::identity())
    }
    /// From 16 values in row-major order (Waymo's storage order).
    pub fn from_row_major(v: &[f64; 16]) -> Self {
        Transform(Matrix4::from_row_slice(v))
    }
    /// The 16 values in row-major order.
    pub fn to_row_major(&self) -> [f64; 16] {
        let mut out = [0.0; 16];
        for r in 0..4 {
            for c in 0..4 {
                out[r * 4 + c] = self.0[(r, c)];
            }
        }
        out
    }
    pub fn matrix(&self) -> &Matrix4<f64> {
        &self.0
    }
    /// Applies the transform to a point.
    pub fn apply(&self, p: &Vector3<f64>) -> Vector3<f64> {
        let m = &self.0;
        Vector3::new(
            m[(0, 0)] * p.x + m[(0, 1)] * p.y + m[(0, 2)] * p.z + m[(0, 3)],
            m[(1, 0)] * p.x + m[(1, 1)] * p.y + m[(1, 2)] * p.z + m[(1, 3)],
            m[(2, 0)] * p.x + m[(2, 1)] * p.y + m[(2, 2)] * p.z + m[(2, 3)],
        )
    }
    /// The inverse of a rigid transform (rotation transposed), exact for orthonormal R.
    pub fn inverse_rigid(&self) -> Self {
        let m = &self.0;
        let r = m.fixed_view::<3, 3>(0, 0).transpose();
        let t = -(r * m.fixed_view::<3, 1>(0, 3));
        let mut out = Matrix4::identity();
        out.fixed_view_mut::<3, 3>(0, 0).copy_from(&r);
        out.fixed_view_mut::<3, 1>(0, 3).copy_from(&t);
        Transform(out)
    }
    /// `self ∘ other`: first `other`, then `self`.
    pub fn compose(&self, other: &Transform) -> Transform {
        Transform(self.0 * other.0)
    }
    pub fn translation(&self) -> Vector3<f64> {
        Vector3::new(self.0[(0, 3)], self.0[(1, 3)], self.0[(2, 3)])
    }
    /// Yaw of the rotation about z (heading of the x axis in the parent frame).
    pub fn yaw(&self) -> f64 {
        self.0[(1, 0)].atan2(self.0[(0, 0)])
    }
}

/// A dense `[H, W, C]` image stored row-major, channels last, as Waymo's `MatrixShape` does:
/// `v[h, w, c] = values[(h*W + w)*C + c]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeImage<T> {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub values: Vec<T>,
}

impl<T: Copy + Default> RangeImage<T> {
    /// A zero-filled image.
    pub fn zeros(height: usize, width: usize, channels: usize) -> Self {
        RangeImage { height, width, channels, values: vec![T::default(); height * width * channels] }
    }
    /// Builds an image, checking that `values.len() == H*W*C`; the error says what was expected.
    pub fn new(shape: [usize; 3], values: Vec<T>) -> Result<Self, String> {
        let [h, w, c] = shape;
        let expected = h.checked_mul(w).and_then(|x| x.checked_mul(c));
        match expected {
            Some(n) if n == values.len() => Ok(RangeImage { height: h, width: w, channels: c, values }),
            Some(n) => Err(format!("shape [{h}, {w}, {c}] needs {n} values, found {}", values.len())),
            None => Err(format!("shape [{h}, {w}, {c}] overflows")),
        }
    }
    pub fn shape(&self) -> [usize; 3] {
        [self.height, self.width, self.channels]
    }
    #[inline]
    pub fn get(&self, h: usize, w: usize, c: usize) -> T {
        self.values[(h * self.width + w) * self.channels + c]
    }
    #[inline]
    pub fn set(&mut self, h: usize, w: usize, c: usize, v: T) {
        self.values[(h * self.width + w) * self.channels + c] = v;
    }
    /// The `C` channel values of one pixel.
    #[inline]
    pub fn pixel(&self, h: usize, w: usize) -> &[T] {
        let i = (h * self.width + w) * self.channels;
        &self.values[i..i + self.channels]
    }
    /// The same image with every value converted (e.g. v1's int32 camera projections to the
    /// float image v2 stores).
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> RangeImage<U> {
        RangeImage {
            height: self.height,
            width: self.width,
            channels: self.channels,
            values: self.values.iter().map(|&v| f(v)).collect(),
        }
    }
}

/// Beam inclinations of a LiDAR: explicit per-row values (TOP) or a uniform [min, max] range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeamInclination {
    pub min: f64,
    pub max: f64,
    /// Ascending per-row inclinations when the laser has them (TOP: 64 values).
    pub values: Option<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LidarCalibration {
    pub laser: LaserName,
    /// LiDAR → vehicle.
    pub extrinsic: Transform,
    pub beam_inclination: BeamInclination,
}

/// Intrinsics in Waymo's order `[f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    pub f_u: f64,
    pub f_v: f64,
    pub c_u: f64,
    pub c_v: f64,
    pub k1: f64,
    pub k2: f64,
    pub p1: f64,
    pub p2: f64,
    pub k3: f64,
}

impl Intrinsics {
    pub fn from_array(a: &[f64; 9]) -> Self {
        Intrinsics { f_u: a[0], f_v: a[1], c_u: a[2], c_v: a[3], k1: a[4], k2: a[5], p1: a[6], p2: a[7], k3: a[8] }
    }
    pub fn to_array(&self) -> [f64; 9] {
        [self.f_u, self.f_v, self.c_u, self.c_v, self.k1, self.k2, self.p1, self.p2, self.k3]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraCalibration {
    pub camera: CameraName,
    pub intrinsic: Intrinsics,
    /// Camera → vehicle; the camera frame is x forward, y left, z up (not OpenCV).
    pub extrinsic: Transform,
    pub width: u32,
    pub height: u32,
    pub rolling_shutter: RollingShutterDirection,
}

/// An upright 3-D box: `size` is (length along heading, width, height).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Box3d {
    pub center: Vector3<f64>,
    pub size: Vector3<f64>,
    /// Radians, counter-clockwise from +x.
    pub heading: f64,
}

/// An axis-aligned image box: centre and size (width along u, height along v) in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Box2d {
    pub center_x: f64,
    pub center_y: f64,
    pub size_x: f64,
    pub size_y: f64,
}

impl Box2d {
    pub fn from_min_max(u0: f64, v0: f64, u1: f64, v1: f64) -> Self {
        Box2d { center_x: (u0 + u1) / 2.0, center_y: (v0 + v1) / 2.0, size_x: u1 - u0, size_y: v1 - v0 }
    }
    pub fn min_max(&self) -> [f64; 4] {
        let (hx, hy) = (self.size_x / 2.0, self.size_y / 2.0);
        [self.center_x - hx, self.center_y - hy, self.center_x + hx, self.center_y + hy]
    }
    /// Intersection over union with `other` (0 when the union is empty).
    pub fn iou(&self, other: &Box2d) -> f64 {
        let [ax0, ay0, ax1, ay1] = self.min_max();
        let [bx0, by0, bx1, by1] = other.min_max();
        let iw = (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
        let ih = (ay1.min(by1) - ay0.max(by0)).max(0.0);
        let inter = iw * ih;
        let union = self.size_x * self.size_y + other.size_x * other.size_y - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// A 3-D box label (`lidar_box`, v1 `laser_labels`), in the frame's vehicle coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LidarBox {
    /// `key.laser_object_id`: the tracking id, stable across a segment.
    pub object_id: String,
    pub bbox: Box3d,
    pub kind: BoxType,
    pub num_lidar_points_in_box: i64,
    pub num_top_lidar_points_in_box: i64,
    /// Velocity and acceleration, m/s and m/s², vehicle frame.
    pub speed: Vector3<f64>,
    pub acceleration: Vector3<f64>,
    pub detection_difficulty: DifficultyLevel,
    pub tracking_difficulty: DifficultyLevel,
}

/// A 2-D box on one camera (`camera_box`, or `projected_lidar_box` for projected 3-D labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraBox {
    pub camera: CameraName,
    pub object_id: String,
    pub bbox: Box2d,
    pub kind: BoxType,
    pub detection_difficulty: DifficultyLevel,
    pub tracking_difficulty: DifficultyLevel,
}

/// Camera panoptic segmentation: a uint16 PNG of `class * divisor + instance`, decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PanopticLabel {
    pub camera: CameraName,
    pub divisor: i32,
    pub width: u32,
    pub height: u32,
    /// Row-major raw values `class * divisor + instance`.
    pub values: Vec<u16>,
    pub local_instance_ids: Vec<i32>,
    pub global_instance_ids: Vec<i32>,
    pub is_tracked: Vec<bool>,
    pub sequence_id: String,
}

impl PanopticLabel {
    /// Semantic class of one pixel; `None` when the value is not one of the 29 classes.
    pub fn class_at(&self, u: usize, v: usize) -> Option<CameraSegClass> {
        let raw = *self.values.get(v * self.width as usize + u)? as i64;
        if self.divisor <= 0 {
            return None;
        }
        CameraSegClass::from_value(raw / self.divisor as i64)
    }
    pub fn instance_at(&self, u: usize, v: usize) -> Option<i64> {
        let raw = *self.values.get(v * self.width as usize + u)? as i64;
        (self.divisor > 0).then(|| raw % self.divisor as i64)
    }
}
