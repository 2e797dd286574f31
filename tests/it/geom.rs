//! scenetok::geom: upstream test vectors (docs/geometry.md#upstream-test-vector), range image round trips,
//! camera projection and boxes.

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};
use std::time::Instant;

use nalgebra::Vector3;
use scenetok::geom::{
    CameraModel, GeomError, OrientedRect, azimuths, bev_iou, gather_pixels, inclinations, intersection_area, iou_3d,
    laser_frame_to_points, points_to_range_image, project_box_to_image, range_image_to_cartesian,
    range_image_to_points, rotation_from_rpy, transform_box, transform_from_rpy_xyz,
};
use scenetok::scene::{
    BeamInclination, Box3d, CameraCalibration, CameraName, Intrinsics, LaserFrame, LaserName, LidarCalibration,
    RangeImage, RollingShutterDirection, Transform,
};

/// A small deterministic generator (xorshift64*), so tests need no extra dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn lidar(laser: LaserName, extrinsic: Transform, min: f64, max: f64, values: Option<Vec<f64>>) -> LidarCalibration {
    LidarCalibration { laser, extrinsic, beam_inclination: BeamInclination { min, max, values } }
}

fn assert_xyz(got: [f32; 3], want: [f64; 3], tol: f64, what: &str) {
    for k in 0..3 {
        assert!((got[k] as f64 - want[k]).abs() <= tol, "{what}: got {got:?}, want {want:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Upstream vectors (v2/perception/utils/lidar_utils_test.py, transform_utils).

/// The upstream fixture: ranges -12..11 as [3,2,4], identity extrinsic, inclinations
/// [-π/2, 0, π/2], every pixel posed at [π/2, π/2, π/2, 1, 2, 3], identity frame pose.
fn upstream_fixture() -> (RangeImage<f32>, LidarCalibration, RangeImage<f32>) {
    let ri = RangeImage::new([3, 2, 4], (-12..12).map(|v| v as f32).collect()).unwrap();
    let calib =
        lidar(LaserName::Top, Transform::identity(), -FRAC_PI_2, FRAC_PI_2, Some(vec![-FRAC_PI_2, 0.0, FRAC_PI_2]));
    let pose_px = [FRAC_PI_2 as f32, FRAC_PI_2 as f32, FRAC_PI_2 as f32, 1.0, 2.0, 3.0];
    let pose = RangeImage::new([3, 2, 6], pose_px.repeat(6)).unwrap();
    (ri, calib, pose)
}

#[test]
fn upstream_cartesian_vector() {
    let (ri, calib, pose) = upstream_fixture();
    let cart = range_image_to_cartesian(&ri, &calib, Some(&pose), Some(&Transform::identity())).unwrap();
    assert_eq!(cart.shape(), [3, 2, 3]);
    let want = [
        [[-11.0, 2.0, 3.0], [-7.0, 2.0, 3.0]],
        [[1.0, -2.0, 3.0], [1.0, 2.0, 3.0]],
        [[-3.0, 2.0, 3.0], [-7.0, 2.0, 3.0]],
    ];
    for (h, want_row) in want.iter().enumerate() {
        for (w, want_px) in want_row.iter().enumerate() {
            let p = cart.pixel(h, w);
            assert_xyz([p[0], p[1], p[2]], *want_px, 1e-5, &format!("pixel ({h}, {w})"));
        }
    }
}

#[test]
fn upstream_point_cloud_vector() {
    let (ri, calib, pose) = upstream_fixture();
    let cloud = range_image_to_points(&ri, &calib, Some(&pose), Some(&Transform::identity())).unwrap();
    assert_eq!(cloud.len(), 2);
    assert_xyz(cloud.xyz[0], [-3.0, 2.0, 3.0], 1e-5, "point 0");
    assert_xyz(cloud.xyz[1], [-7.0, 2.0, 3.0], 1e-5, "point 1");
    assert_eq!(cloud.pixels, vec![[2, 0], [2, 1]]);
    assert_eq!(cloud.feature(0), &[4.0, 5.0, 6.0, 7.0]);
    assert_eq!(cloud.range(1), 8.0);
}

#[test]
fn upstream_rotation_vector() {
    let r = rotation_from_rpy(FRAC_PI_2, FRAC_PI_2, FRAC_PI_2);
    let want = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]];
    for i in 0..3 {
        for j in 0..3 {
            assert!((r[(i, j)] - want[i][j]).abs() < 1e-12, "{r}");
        }
    }
}

#[test]
fn upstream_pointwise_camera_projection() {
    let (ri, calib, pose) = upstream_fixture();
    let cloud = range_image_to_points(&ri, &calib, Some(&pose), Some(&Transform::identity())).unwrap();
    let cp = RangeImage::new([3, 2, 6], (0..36).collect::<Vec<i32>>()).unwrap();
    assert_eq!(gather_pixels(&cp, &cloud).unwrap(), (24..36).collect::<Vec<i32>>());
}

#[test]
fn pose_needs_both_pixel_and_frame_pose() {
    let (ri, calib, pose) = upstream_fixture();
    // Without the frame pose, upstream does no compensation: plain spherical points.
    let cloud = range_image_to_points(&ri, &calib, Some(&pose), None).unwrap();
    assert_xyz(cloud.xyz[0], [0.0, 0.0, -4.0], 1e-5, "uncompensated point 0");
}

// ---------------------------------------------------------------------------------------
// Range image ⇄ points round trips.

/// Points at pixel centres (the row's inclination, the column's azimuth) of random distinct
/// pixels, so each lands back on its own pixel.
fn pixel_centre_points(
    calib: &LidarCalibration,
    h: usize,
    w: usize,
    n: usize,
    rng: &mut Rng,
) -> Vec<([usize; 2], f64, Vector3<f64>)> {
    let incl = inclinations(calib, h).unwrap();
    let az = azimuths(&calib.extrinsic, w);
    let mut taken = vec![false; h * w];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let (row, col) = (rng.below(h), rng.below(w));
        if std::mem::replace(&mut taken[row * w + col], true) {
            continue;
        }
        let r = rng.uniform(1.0, 80.0);
        let (ci, si) = (incl[row].cos(), incl[row].sin());
        let p_sensor = Vector3::new(r * ci * az[col].cos(), r * ci * az[col].sin(), r * si);
        out.push(([row, col], r, calib.extrinsic.apply(&p_sensor)));
    }
    out
}

fn round_trip(calib: &LidarCalibration, h: usize, w: usize, n: usize, seed: u64) {
    let mut rng = Rng(seed);
    let pts = pixel_centre_points(calib, h, w, n, &mut rng);
    let vehicle: Vec<Vector3<f64>> = pts.iter().map(|p| p.2).collect();
    let ri = points_to_range_image(&vehicle, calib, h, w).unwrap();
    assert_eq!(ri.shape(), [h, w, 1]);
    for ([row, col], r, _) in &pts {
        let got = ri.get(*row, *col, 0) as f64;
        assert!((got - r).abs() < 1e-3, "pixel ({row}, {col}): range {got}, want {r}");
    }
    assert_eq!(ri.values.iter().filter(|v| **v > 0.0).count(), n, "every point has its own pixel");

    let cloud = range_image_to_points(&ri, calib, None, None).unwrap();
    assert_eq!(cloud.len(), n);
    let mut by_pixel = std::collections::HashMap::new();
    for (px, _, p) in &pts {
        by_pixel.insert([px[0] as u16, px[1] as u16], *p);
    }
    for i in 0..cloud.len() {
        let want = by_pixel[&cloud.pixels[i]];
        assert!((cloud.point(i) - want).norm() < 1e-3, "pixel {:?}: {} vs {}", cloud.pixels[i], cloud.point(i), want);
    }
    // Row-major output order.
    assert!(cloud.pixels.windows(2).all(|p| p[0] < p[1]));
}

/// A TOP-like laser: 64 explicit, unevenly spaced inclinations and a yawed, slightly tilted
/// extrinsic.
fn top_like() -> LidarCalibration {
    let mut rng = Rng(7);
    let mut values: Vec<f64> =
        (0..64).map(|i| -0.31 + 0.35 * (i as f64 / 63.0).powf(1.3) + rng.uniform(-1e-4, 1e-4)).collect();
    values.sort_by(f64::total_cmp);
    let extrinsic = transform_from_rpy_xyz(0.004, -0.006, 2.6, 1.43, 0.0, 2.18);
    lidar(LaserName::Top, extrinsic, values[0], values[63], Some(values))
}

#[test]
fn round_trip_top_like() {
    round_trip(&top_like(), 64, 2650, 20_000, 11);
}

#[test]
fn round_trip_uniform_inclination() {
    let extrinsic = transform_from_rpy_xyz(0.0, 0.01, FRAC_PI_2 + 0.02, 1.5, 1.0, 1.0);
    let calib = lidar(LaserName::SideLeft, extrinsic, -FRAC_PI_2, PI / 6.0, None);
    round_trip(&calib, 200, 600, 10_000, 12);
}

#[test]
fn pixel_pose_matches_hand_computation() {
    let calib = top_like();
    let (h, w) = (64, 64);
    let mut rng = Rng(3);
    let ri = RangeImage::new(
        [h, w, 4],
        (0..h * w * 4).map(|i| if i % 4 == 0 { rng.uniform(0.5, 70.0) as f32 } else { 0.25 }).collect(),
    )
    .unwrap();
    let pose_vals: Vec<f32> = (0..h * w)
        .flat_map(|_| {
            [
                rng.uniform(-0.02, 0.02),
                rng.uniform(-0.02, 0.02),
                rng.uniform(-PI, PI),
                rng.uniform(-50.0, 50.0),
                rng.uniform(-50.0, 50.0),
                rng.uniform(-1.0, 1.0),
            ]
        })
        .map(|v| v as f32)
        .collect();
    let pose = RangeImage::new([h, w, 6], pose_vals).unwrap();
    let frame_pose = transform_from_rpy_xyz(0.01, -0.01, 1.0, 20.0, -10.0, 0.5);
    let cloud = range_image_to_points(&ri, &calib, Some(&pose), Some(&frame_pose)).unwrap();
    let plain = range_image_to_points(&ri, &calib, None, None).unwrap();
    assert_eq!(cloud.len(), h * w);
    for i in (0..cloud.len()).step_by(97) {
        let [ph, pw] = cloud.pixels[i];
        let px = pose.pixel(ph as usize, pw as usize);
        let pixel_pose =
            transform_from_rpy_xyz(px[0] as f64, px[1] as f64, px[2] as f64, px[3] as f64, px[4] as f64, px[5] as f64);
        let want = frame_pose.inverse_rigid().apply(&pixel_pose.apply(&plain.point(i)));
        assert!((cloud.point(i) - want).norm() < 1e-3, "pixel ({ph}, {pw})");
    }
}

/// The chunked, multi-threaded conversion (a TOP-sized image) against the per-pixel
/// Cartesian image: same points in row-major order, same pixels and channels, bit-identical
/// coordinates, with invalid ranges scattered everywhere, empty rows, and pixels whose pose
/// differs from their column's; with more workers than cores, so chunks wait on each other.
#[test]
fn chunked_conversion_equals_the_per_pixel_image() {
    let calib = top_like();
    let (h, w) = (64, 2650);
    let mut rng = Rng(17);
    let values: Vec<f32> = (0..h * w)
        .flat_map(|i| {
            let range = match rng.below(10) {
                _ if (i / w) % 13 == 5 => 0.0, // whole empty rows
                0 => f32::NAN,
                1 => -1.0,
                2 => 0.0,
                3 => f32::INFINITY,
                _ => rng.uniform(0.5, 75.0) as f32,
            };
            [range, rng.uniform(0.0, 1.0) as f32, rng.uniform(0.0, 2.0) as f32, (i % 2) as f32]
        })
        .collect();
    let ri = RangeImage::new([h, w, 4], values).unwrap();
    let mut pose_vals = Vec::with_capacity(h * w * 6);
    for _ in 0..h {
        for col in 0..w {
            let t = col as f32 * 1e-4;
            let own = rng.below(50) == 0;
            let yaw = if own { 0.7 } else { 0.5 + t };
            pose_vals.extend_from_slice(&[0.001, -0.002, yaw, 10.0 + t, 20.0, 0.3]);
        }
    }
    let pose = RangeImage::new([h, w, 6], pose_vals).unwrap();
    let frame_pose = transform_from_rpy_xyz(0.001, -0.002, 0.5, 10.0, 20.0, 0.3);
    let image = range_image_to_cartesian(&ri, &calib, Some(&pose), Some(&frame_pose)).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(5).build().unwrap();
    for _ in 0..3 {
        let cloud = pool.install(|| range_image_to_points(&ri, &calib, Some(&pose), Some(&frame_pose)).unwrap());
        let mut i = 0;
        for row in 0..h {
            for col in 0..w {
                let px = ri.pixel(row, col);
                if !(px[0] > 0.0 && px[0].is_finite()) {
                    continue;
                }
                assert_eq!(cloud.pixels[i], [row as u16, col as u16], "point {i}");
                assert_eq!(cloud.feature(i), px, "point {i}");
                assert_eq!(cloud.xyz[i], [0, 1, 2].map(|k| image.get(row, col, k)), "point {i}");
                i += 1;
            }
        }
        assert_eq!(cloud.len(), i);
        assert_eq!(cloud.features.len(), 4 * i);
    }
}

#[test]
fn laser_frame_both_returns_share_the_pose() {
    let (ri, calib, pose) = upstream_fixture();
    let mut laser = LaserFrame::new(LaserName::Top);
    laser.return1 = Some(ri.clone());
    let mut ri2 = ri.clone();
    ri2.set(0, 0, 0, 1.0); // one more valid pixel in return 2
    laser.return2 = Some(ri2);
    laser.pose = Some(pose);
    // No calibration: a clear error.
    let err = laser_frame_to_points(&laser, None).unwrap_err();
    assert!(err.to_string().contains("TOP"), "{err}");
    laser.calibration = Some(calib);
    let pts = laser_frame_to_points(&laser, Some(&Transform::identity())).unwrap();
    let (r1, r2) = (pts.return1.unwrap(), pts.return2.unwrap());
    assert_eq!(r1.len(), 2);
    assert_eq!(r2.len(), 3);
    // Return 2's point at (0,0), range 1, incl π/2: sensor (0,0,1) → pose → (1+1, 2, 3).
    assert_xyz(r2.xyz[0], [2.0, 2.0, 3.0], 1e-5, "return 2 posed");
    assert_xyz(r2.xyz[1], [-3.0, 2.0, 3.0], 1e-5, "return 2 point 1");
}

#[test]
fn validation_errors() {
    let calib = top_like();
    let ri = RangeImage::<f32>::zeros(32, 10, 4);
    let err = range_image_to_points(&ri, &calib, None, None).unwrap_err();
    assert_eq!(err, GeomError::InclinationCount { expected: 32, found: 64 });
    assert!(points_to_range_image(&[Vector3::new(1.0, 0.0, 0.0)], &calib, 32, 10).is_err());
}

#[test]
fn full_top_image_is_fast() {
    let calib = top_like();
    let (h, w) = (64, 2650);
    let mut rng = Rng(5);
    let ri = RangeImage::new(
        [h, w, 4],
        (0..h * w * 4).map(|i| if i % 4 == 0 { rng.uniform(-1.0, 75.0) as f32 } else { 1.0 }).collect(),
    )
    .unwrap();
    let pose_px = [0.001f32, -0.002, 0.5, 10.0, 20.0, 0.3];
    let pose = RangeImage::new([h, w, 6], pose_px.repeat(h * w)).unwrap();
    let frame_pose = transform_from_rpy_xyz(0.001, -0.002, 0.5, 10.0, 20.0, 0.3);
    let mut best = f64::INFINITY;
    let mut best_posed = f64::INFINITY;
    let mut n = 0;
    for _ in 0..30 {
        let t = Instant::now();
        n = range_image_to_points(&ri, &calib, None, None).unwrap().len();
        best = best.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let posed = range_image_to_points(&ri, &calib, Some(&pose), Some(&frame_pose)).unwrap();
        best_posed = best_posed.min(t.elapsed().as_secs_f64());
        assert_eq!(posed.len(), n);
    }
    eprintln!(
        "TOP 64×2650 → {n} points: {:.2} ms, with pixel pose {:.2} ms (best of 30)",
        best * 1e3,
        best_posed * 1e3
    );
    // Generous: CI builds this crate at opt-level 1 on 2 shared cores.
    assert!(best_posed < 0.2, "conversion took {best_posed} s");
}

// ---------------------------------------------------------------------------------------
// Camera.

/// A camera with Waymo-like FRONT intrinsics and distortion, mounted yawed and pitched.
fn front_camera() -> CameraModel {
    CameraModel::new(&CameraCalibration {
        camera: CameraName::Front,
        intrinsic: Intrinsics::from_array(&[2055.6, 2055.9, 939.6, 641.1, 0.032, -0.321, 0.000793, -0.000625, 0.0]),
        extrinsic: transform_from_rpy_xyz(-0.003, 0.01, 0.02, 1.54, -0.02, 2.12),
        width: 1920,
        height: 1280,
        rolling_shutter: RollingShutterDirection::GlobalShutter,
    })
}

/// A distortion-free camera with dyadic numbers, so image edges are hit exactly.
fn dyadic_camera() -> CameraModel {
    CameraModel::new(&CameraCalibration {
        camera: CameraName::Front,
        intrinsic: Intrinsics::from_array(&[1024.0, 1024.0, 512.0, 256.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        extrinsic: Transform::identity(),
        width: 1024,
        height: 512,
        rolling_shutter: RollingShutterDirection::GlobalShutter,
    })
}

#[test]
fn camera_unproject_project_round_trip() {
    let cam = front_camera();
    let mut rng = Rng(21);
    for _ in 0..2000 {
        let (u, v, depth) = (rng.uniform(0.0, 1920.0), rng.uniform(0.0, 1280.0), rng.uniform(1.0, 80.0));
        let p = cam.unproject(u, v, depth);
        let proj = cam.project_vehicle_point(&p).expect("in front");
        assert!(proj.valid && proj.in_image);
        assert!((proj.u - u).abs() < 1e-6 && (proj.v - v).abs() < 1e-6, "({u}, {v}) → ({}, {})", proj.u, proj.v);
        assert!((proj.depth - depth).abs() < 1e-9);
    }
}

#[test]
fn camera_project_unproject_round_trip() {
    let cam = front_camera();
    let mut rng = Rng(22);
    let pts: Vec<Vector3<f64>> = (0..2000)
        .map(|_| {
            let d = rng.uniform(2.0, 60.0);
            cam.camera_to_vehicle(&Vector3::new(d, rng.uniform(-0.4, 0.4) * d, rng.uniform(-0.3, 0.3) * d))
        })
        .collect();
    let proj = cam.project_points(&pts);
    for (p, pr) in pts.iter().zip(&proj) {
        let pr = pr.expect("in front");
        assert!(pr.valid);
        let back = cam.unproject(pr.u, pr.v, pr.depth);
        assert!((back - p).norm() < 1e-6, "{p} → {back}");
    }
}

#[test]
fn camera_behind_is_not_projectable() {
    let cam = front_camera();
    assert!(cam.project_vehicle_point(&cam.camera_to_vehicle(&Vector3::new(-1.0, 0.0, 0.0))).is_none());
    // Exactly on the camera plane (x = 0) is behind too; tested in camera coordinates
    // because a vehicle round trip would not land exactly on 0.
    assert!(cam.project_camera_point(&Vector3::new(0.0, 1.0, 0.0)).is_none());
    assert!(cam.project_points(&[cam.camera_to_vehicle(&Vector3::new(-3.0, 1.0, 1.0))])[0].is_none());
}

#[test]
fn camera_distortion_out_of_range_is_invalid_far_direction() {
    let cam = front_camera();
    let k = cam.intrinsics;
    // 45° to the right of the axis: r² = 1, rd = 1 + 0.032 - 0.321 = 0.711 < 0.8.
    let pr = cam.project_vehicle_point(&cam.camera_to_vehicle(&Vector3::new(3.0, -3.0, 0.0))).unwrap();
    assert!(!pr.valid && !pr.in_image);
    let diag = 1920f64.hypot(1280.0);
    assert!((pr.u - (k.c_u + diag)).abs() < 1e-9 && (pr.v - k.c_v).abs() < 1e-9, "{pr:?}");
    // Straight up and left: direction (-1, -1)/√2.
    let pr = cam.project_vehicle_point(&cam.camera_to_vehicle(&Vector3::new(1.0, 2.0, 2.0))).unwrap();
    assert!(!pr.valid);
    let s = diag / 2f64.sqrt();
    assert!((pr.u - (k.c_u - s)).abs() < 1e-9 && (pr.v - (k.c_v - s)).abs() < 1e-9, "{pr:?}");
}

#[test]
fn camera_in_image_edges() {
    let cam = dyadic_camera();
    let at = |y: f64, z: f64| cam.project_vehicle_point(&Vector3::new(4.0, y, z)).unwrap();
    let left = at(2.0, 0.0); // u = 0
    assert_eq!(left.u, 0.0);
    assert!(left.in_image);
    let right = at(-2.0, 0.0); // u = width
    assert_eq!(right.u, 1024.0);
    assert!(!right.in_image);
    let top = at(0.0, 1.0); // v = 0
    assert_eq!(top.v, 0.0);
    assert!(top.in_image);
    let bottom = at(0.0, -1.0); // v = height
    assert_eq!(bottom.v, 512.0);
    assert!(!bottom.in_image);
    let inside = at(-1.99, -0.99);
    assert!(inside.in_image && inside.u < 1024.0 && inside.v < 512.0);
}

#[test]
fn box_projection_is_clamped_min_max_of_corners() {
    let cam = dyadic_camera();
    let b = Box3d { center: Vector3::new(10.0, 0.5, 0.2), size: Vector3::new(2.0, 1.0, 1.5), heading: 0.3 };
    let got = project_box_to_image(&b, &cam).unwrap().min_max();
    let proj: Vec<_> = b.corners().iter().map(|c| cam.project_vehicle_point(c).unwrap()).collect();
    let want = [
        proj.iter().map(|p| p.u).fold(f64::INFINITY, f64::min),
        proj.iter().map(|p| p.v).fold(f64::INFINITY, f64::min),
        proj.iter().map(|p| p.u).fold(f64::NEG_INFINITY, f64::max),
        proj.iter().map(|p| p.v).fold(f64::NEG_INFINITY, f64::max),
    ];
    for k in 0..4 {
        assert!((got[k] - want[k]).abs() < 1e-9, "{got:?} vs {want:?}");
    }
    // Partly left of the image: clamped at u = 0.
    let b = Box3d { center: Vector3::new(4.0, 2.0, 0.0), size: Vector3::new(1.0, 1.0, 1.0), heading: 0.0 };
    assert_eq!(project_box_to_image(&b, &cam).unwrap().min_max()[0], 0.0);
    // Straddling the camera plane, or entirely outside the image: no box.
    let b = Box3d { center: Vector3::new(0.0, 0.0, 0.0), size: Vector3::new(4.0, 1.0, 1.0), heading: 0.0 };
    assert!(project_box_to_image(&b, &cam).is_none());
    let b = Box3d { center: Vector3::new(5.0, 40.0, 0.0), size: Vector3::new(1.0, 1.0, 1.0), heading: 0.0 };
    assert!(project_box_to_image(&b, &cam).is_none());
}

// ---------------------------------------------------------------------------------------
// Boxes.

fn bx(x: f64, y: f64, z: f64, l: f64, w: f64, h: f64, heading: f64) -> Box3d {
    Box3d { center: Vector3::new(x, y, z), size: Vector3::new(l, w, h), heading }
}

#[test]
fn iou_identical_is_one_disjoint_is_zero() {
    for heading in [0.0, 0.7, FRAC_PI_2, -2.9] {
        let a = bx(3.0, -1.0, 0.5, 4.5, 1.9, 1.6, heading);
        assert!((bev_iou(&a, &a) - 1.0).abs() < 1e-9, "heading {heading}");
        assert!((iou_3d(&a, &a) - 1.0).abs() < 1e-9, "heading {heading}");
        let far = bx(30.0, -1.0, 0.5, 4.5, 1.9, 1.6, heading);
        assert_eq!(bev_iou(&a, &far), 0.0);
        assert_eq!(iou_3d(&a, &far), 0.0);
        let above = bx(3.0, -1.0, 2.5, 4.5, 1.9, 1.6, heading);
        assert_eq!(iou_3d(&a, &above), 0.0);
    }
}

#[test]
fn iou_45_degree_octagon() {
    // A 2×2 square and the same square turned 45°: the overlap is a regular octagon with
    // inradius 1, area 8·tan(π/8) = 8(√2 − 1); IoU = 8(√2−1) / (8 − 8(√2−1)) = 1/√2.
    let a = bx(0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0);
    let b = bx(0.0, 0.0, 0.0, 2.0, 2.0, 2.0, FRAC_PI_4);
    let area = intersection_area(&a.bev(), &b.bev());
    assert!((area - 8.0 * (2f64.sqrt() - 1.0)).abs() < 1e-9, "{area}");
    assert!((bev_iou(&a, &b) - 1.0 / 2f64.sqrt()).abs() < 1e-9);
    assert!((iou_3d(&a, &b) - 1.0 / 2f64.sqrt()).abs() < 1e-9);
    // Half the height overlapping: inter = 8(√2−1)·1, union = 8 + 8 − inter.
    let c = bx(0.0, 0.0, 1.0, 2.0, 2.0, 2.0, FRAC_PI_4);
    let inter = 8.0 * (2f64.sqrt() - 1.0);
    assert!((iou_3d(&a, &c) - inter / (16.0 - inter)).abs() < 1e-9);
}

#[test]
fn oriented_rect_overlap_for_womd() {
    let car = OrientedRect { center_x: 0.0, center_y: 0.0, length: 4.0, width: 2.0, heading: 0.0 };
    // Crossing at right angles: a 2×2 overlap.
    let crossing = OrientedRect { center_x: 0.0, center_y: 0.0, length: 4.0, width: 2.0, heading: FRAC_PI_2 };
    assert!((intersection_area(&car, &crossing) - 4.0).abs() < 1e-9);
    // Nose to tail with a 10 cm gap: no overlap.
    let ahead = OrientedRect { center_x: 4.1, ..car };
    assert_eq!(intersection_area(&car, &ahead), 0.0);
    // Rotated so a corner just pokes into the car.
    let poke = OrientedRect { center_x: 2.8, center_y: 1.2, length: 2.0, width: 2.0, heading: FRAC_PI_4 };
    assert!(intersection_area(&car, &poke) > 0.0);
}

#[test]
fn corners_order() {
    let b = bx(1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 0.0);
    let c = b.corners();
    let want = [
        [3.0, 3.0, 3.5],
        [-1.0, 3.0, 3.5],
        [-1.0, 1.0, 3.5],
        [3.0, 1.0, 3.5],
        [3.0, 3.0, 2.5],
        [-1.0, 3.0, 2.5],
        [-1.0, 1.0, 2.5],
        [3.0, 1.0, 2.5],
    ];
    for (got, want) in c.iter().zip(want) {
        assert!((got - Vector3::from(want)).norm() < 1e-12, "{got} vs {want:?}");
    }
    // Heading 90°: front-left (+2 along, +1 across) ends up at (−1, +2) from the centre.
    let r = bx(0.0, 0.0, 0.0, 4.0, 2.0, 1.0, FRAC_PI_2).corners();
    assert!((r[0] - Vector3::new(-1.0, 2.0, 0.5)).norm() < 1e-12);
    assert_eq!(b.bev_corners()[2], [-1.0, 1.0]);
}

#[test]
fn contains_point_corners_inside_outside() {
    let b = bx(5.0, -3.0, 1.0, 4.2, 1.8, 1.5, 0.9);
    assert!(b.contains_point(&b.center));
    for c in b.corners() {
        assert!(b.contains_point(&c), "corner {c}");
        let outside = b.center + (c - b.center) * 1.001;
        assert!(!b.contains_point(&outside), "just outside {outside}");
        let inside = b.center + (c - b.center) * 0.999;
        assert!(b.contains_point(&inside));
    }
    // Inside the axis-aligned bounding box but outside the rotated box.
    let [x0, y0] = b.bev_corners()[0];
    let [x1, y1] = b.bev_corners()[3];
    assert!(!b.contains_point(&Vector3::new(x0.max(x1) - 0.01, y0.max(y1) - 0.01, 1.0)));
}

#[test]
fn box_to_world() {
    let pose = transform_from_rpy_xyz(0.0, 0.0, 0.5, 100.0, -20.0, 3.0);
    let b = bx(10.0, 2.0, 0.8, 4.0, 2.0, 1.6, 0.2);
    let w = transform_box(&b, &pose);
    assert!((w.heading - 0.7).abs() < 1e-12);
    assert_eq!(w.size, b.size);
    for (cw, cv) in w.corners().iter().zip(b.corners()) {
        assert!((cw - pose.apply(&cv)).norm() < 1e-9);
    }
    let back = b.transformed(&pose).transformed(&pose.inverse_rigid());
    assert!((back.center - b.center).norm() < 1e-9 && (back.heading - b.heading).abs() < 1e-12);
    // Headings stay in [−π, π).
    assert!((transform_box(&bx(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 3.0), &pose).heading - (3.5 - 2.0 * PI)).abs() < 1e-12);
}
