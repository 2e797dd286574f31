//! A tiny, deterministic v2 dataset with every component filled in: the built-in input of
//! `scenetok fixture` and of the tests, small enough to read in milliseconds. Its values
//! are consistent (points in front of the sensors, boxes around ground-truth tracks) but
//! it is no world: the synthetic world comes from `scenetok generate`.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use nalgebra::{Matrix4, Vector3, vector};

use crate::error::Result;
use crate::io::v2::SegmentWriter;
use crate::scene::*;

/// The fixture's segment name, in Waymo's `{id}_{start}_{end}` style.
pub const SEGMENT: &str = "00000000000000000001_0000_000_0020_000";
/// Frames at 10 Hz.
pub const FRAMES: usize = 3;
pub const FIRST_TIMESTAMP: i64 = 1_600_000_000_000_000;

/// TOP: explicit inclinations; FRONT: uniform.
pub const TOP_SHAPE: [usize; 2] = [8, 32];
pub const FRONT_SHAPE: [usize; 2] = [4, 16];
pub const CAMERA_SIZE: [u32; 2] = [32, 24];

fn translation(x: f64, y: f64, z: f64, yaw: f64) -> Transform {
    let (s, c) = yaw.sin_cos();
    Transform(Matrix4::new(c, -s, 0.0, x, s, c, 0.0, y, 0.0, 0.0, 1.0, z, 0.0, 0.0, 0.0, 1.0))
}

fn lidar_calibrations() -> Vec<LidarCalibration> {
    let top_incl: Vec<f64> = (0..TOP_SHAPE[0]).map(|i| (-17.6 + 20.0 * i as f64 / 7.0).to_radians()).collect();
    vec![
        LidarCalibration {
            laser: LaserName::Top,
            extrinsic: translation(1.43, 0.0, 2.18, 0.0148),
            beam_inclination: BeamInclination {
                min: top_incl[0],
                max: top_incl[TOP_SHAPE[0] - 1],
                values: Some(top_incl),
            },
        },
        LidarCalibration {
            laser: LaserName::Front,
            extrinsic: translation(4.07, 0.0, 0.69, 0.0),
            beam_inclination: BeamInclination { min: -PI / 2.0, max: PI / 6.0, values: None },
        },
    ]
}

fn camera_calibration() -> CameraCalibration {
    let [w, h] = CAMERA_SIZE;
    CameraCalibration {
        camera: CameraName::Front,
        intrinsic: Intrinsics {
            f_u: 40.0,
            f_v: 40.0,
            c_u: w as f64 / 2.0,
            c_v: h as f64 / 2.0,
            k1: 0.03,
            k2: -0.3,
            p1: 0.0005,
            p2: -0.0003,
            k3: 0.0,
        },
        extrinsic: translation(1.54, -0.02, 2.11, 0.0),
        width: w,
        height: h,
        rolling_shutter: RollingShutterDirection::GlobalShutter,
    }
}

/// A range image `[H, W, 4]` whose range varies smoothly, with a few empty pixels.
fn range_image(h: usize, w: usize, seed: f32) -> RangeImage<f32> {
    let mut ri = RangeImage::zeros(h, w, 4);
    for r in 0..h {
        for c in 0..w {
            let range =
                if (r * w + c) % 11 == 3 { 0.0 } else { 5.0 + 2.0 * r as f32 + ((c as f32 + seed) * 0.3).sin() };
            ri.set(r, c, 0, range);
            ri.set(r, c, 1, 0.1 + 0.01 * c as f32);
            ri.set(r, c, 2, 0.05);
            ri.set(r, c, 3, if c == 0 { 1.0 } else { -1.0 });
        }
    }
    ri
}

fn jpeg(seed: u8) -> Result<Vec<u8>> {
    let [w, h] = CAMERA_SIZE;
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 8) as u8, (y * 10) as u8, seed.wrapping_mul(40)]));
    crate::io::image::encode_jpeg(&img, 90)
}

/// The fixture's map: one lane, its road line and a crosswalk.
pub fn map() -> Vec<MapFeature> {
    let line = |y: f64| (0..6).map(|i| vector![i as f64 * 10.0, y, 0.0]).collect::<Vec<Vector3<f64>>>();
    let mut lane = MapFeature::new(1, MapFeatureType::LaneSurfaceStreet, line(0.0));
    lane.speed_limit_mph = Some(25.0);
    lane.exit_lanes = vec![4];
    let mut next =
        MapFeature::new(4, MapFeatureType::LaneSurfaceStreet, vec![vector![50.0, 0.0, 0.0], vector![60.0, 0.0, 0.0]]);
    next.entry_lanes = vec![1];
    let crosswalk =
        vec![vector![30.0, -5.0, 0.0], vector![33.0, -5.0, 0.0], vector![33.0, 5.0, 0.0], vector![30.0, 5.0, 0.0]];
    vec![
        lane,
        MapFeature::new(2, MapFeatureType::RoadLineSolidSingleWhite, line(1.8)),
        MapFeature::new(3, MapFeatureType::Crosswalk, crosswalk),
        next,
    ]
}

/// The fixture's frames, in memory.
pub fn frames() -> Result<Vec<Frame>> {
    let calibs = lidar_calibrations();
    let cam = camera_calibration();
    let mut out = Vec::with_capacity(FRAMES);
    for i in 0..FRAMES {
        let t = i as f64 * 0.1;
        let ts = FIRST_TIMESTAMP + i as i64 * 100_000;
        let [th, tw] = TOP_SHAPE;
        let [fh, fw] = FRONT_SHAPE;
        let mut top = LaserFrame::new(LaserName::Top);
        top.calibration = Some(calibs[0].clone());
        top.return1 = Some(range_image(th, tw, i as f32));
        top.return2 = Some(RangeImage::zeros(th, tw, 4));
        let mut pose = RangeImage::zeros(th, tw, 6);
        let mut projection = RangeImage::zeros(th, tw, 6);
        let mut seg = RangeImage::zeros(th, tw, 2);
        for r in 0..th {
            for c in 0..tw {
                pose.set(r, c, 2, 0.001 * c as f32);
                pose.set(r, c, 3, (5.0 * t) as f32 + 0.001 * c as f32);
                if c < tw / 4 {
                    projection.set(r, c, 0, CameraName::Front.value() as f32);
                    projection.set(r, c, 1, (c * 4) as f32);
                    projection.set(r, c, 2, (r * 3) as f32);
                }
                let class = if r < 2 {
                    LidarSegClass::Road
                } else if c % 8 == 0 {
                    LidarSegClass::Car
                } else {
                    LidarSegClass::Building
                };
                seg.set(r, c, 0, if class == LidarSegClass::Car { 1 + (c / 8) as i32 } else { 0 });
                seg.set(r, c, 1, class.value() as i32);
            }
        }
        top.pose = Some(pose);
        top.camera_projection1 = Some(projection);
        top.segmentation1 = Some(seg);
        let mut front = LaserFrame::new(LaserName::Front);
        front.calibration = Some(calibs[1].clone());
        front.return1 = Some(range_image(fh, fw, 2.0 + i as f32));

        let [w, h] = CAMERA_SIZE;
        let divisor = 1000;
        let values: Vec<u16> = (0..w * h)
            .map(|p| {
                let (x, y) = (p % w, p / w);
                let class = if y < h / 3 {
                    CameraSegClass::Sky
                } else if x > w / 2 && y > h / 2 {
                    CameraSegClass::Car
                } else {
                    CameraSegClass::Road
                };
                let instance = if class == CameraSegClass::Car { 1 } else { 0 };
                (class.value() as u16) * divisor as u16 + instance
            })
            .collect();
        let camera = CameraFrame {
            camera: CameraName::Front,
            calibration: Some(cam.clone()),
            jpeg: jpeg(i as u8)?,
            pose: Some(translation(5.0 * t, 0.0, 0.0, 0.0)),
            motion: ImageMotion {
                linear_velocity: [5.0, 0.0, 0.0],
                pose_timestamp: ts as f64 * 1e-6,
                ..Default::default()
            },
            segmentation: Some(PanopticLabel {
                camera: CameraName::Front,
                divisor,
                width: w,
                height: h,
                values,
                local_instance_ids: vec![1],
                global_instance_ids: vec![7],
                is_tracked: vec![true],
                sequence_id: "fixture".into(),
            }),
        };

        let lidar_box = |id: &str, x: f64, y: f64, kind: BoxType| LidarBox {
            object_id: id.into(),
            bbox: Box3d { center: vector![x - 5.0 * t, y, 1.0], size: vector![4.5, 2.0, 1.6], heading: 0.05 },
            kind,
            num_lidar_points_in_box: 120,
            num_top_lidar_points_in_box: 100,
            speed: vector![5.0, 0.0, 0.0],
            acceleration: vector![0.0, 0.0, 0.0],
            detection_difficulty: DifficultyLevel::Level1,
            tracking_difficulty: DifficultyLevel::Level1,
        };
        out.push(Frame {
            segment: SEGMENT.into(),
            timestamp_micros: ts,
            vehicle_pose: Some(translation(5.0 * t, 0.0, 0.0, 0.0)),
            lasers: vec![top, front],
            cameras: vec![camera],
            lidar_boxes: vec![
                lidar_box("car_a", 15.0, 0.0, BoxType::Vehicle),
                lidar_box("ped_b", 12.0, 4.0, BoxType::Pedestrian),
            ],
            camera_boxes: vec![CameraBox {
                camera: CameraName::Front,
                object_id: "cam_a".into(),
                bbox: Box2d::from_min_max(16.0, 12.0, 30.0, 22.0),
                kind: BoxType::Vehicle,
                detection_difficulty: DifficultyLevel::Level1,
                tracking_difficulty: DifficultyLevel::Unknown,
            }],
            projected_lidar_boxes: vec![CameraBox {
                camera: CameraName::Front,
                object_id: "car_a".into(),
                bbox: Box2d::from_min_max(15.5, 11.0, 31.0, 23.0),
                kind: BoxType::Vehicle,
                detection_difficulty: DifficultyLevel::Unknown,
                tracking_difficulty: DifficultyLevel::Unknown,
            }],
            associations: vec![BoxAssociation {
                camera: CameraName::Front,
                camera_object_id: "cam_a".into(),
                laser_object_id: "car_a".into(),
            }],
            stats: Some(FrameStats {
                time_of_day: "Day".into(),
                location: "location_fixture".into(),
                weather: "sunny".into(),
                lidar_object_counts: vec![(BoxType::Vehicle, 1), (BoxType::Pedestrian, 1)],
                camera_object_counts: vec![(BoxType::Vehicle, 1)],
            }),
        });
    }
    Ok(out)
}

/// Writes the fixture as a v2 dataset under `root`; returns the files written.
pub fn write(root: &Path) -> Result<Vec<PathBuf>> {
    let mut w = SegmentWriter::new(root, SEGMENT);
    for f in frames()? {
        w.write_frame(&f)?;
    }
    w.write_map(&map())?;
    w.finish()
}
