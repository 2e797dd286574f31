//! One typed record per component row, with its decoding from a normalised batch and its
//! encoding into the declared schema. Keys are kept with each record so that components
//! can be joined on them, never on row order.

use arrow::array::RecordBatch;
use nalgebra::{Vector3, vector};

use super::columns::{Cols, F32, F64, I8, I32, I64, TableBuilder};
use super::schema::{Component, key};
use crate::error::{Error, Result};
use crate::scene::*;

/// `(segment, frame timestamp)`: the key shared by every per-frame component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameKey {
    pub segment: String,
    pub timestamp_micros: i64,
}

/// A row of one component.
pub trait Record: Sized {
    const COMPONENT: Component;
    /// Decodes row `row`; `cols` holds at least the columns this record reads.
    fn decode(cols: &Cols, row: usize) -> Result<Self>;
    /// Appends this record as one row (the caller ends the row).
    fn encode(&self, t: &mut TableBuilder);
    /// Column names this record may skip when the caller does not need them.
    fn optional_bulk_columns() -> &'static [&'static str] {
        &[]
    }
}

/// Decodes every row of a normalised batch.
pub fn decode_all<R: Record>(cols: &Cols) -> Result<Vec<R>> {
    (0..cols.num_rows()).map(|row| R::decode(cols, row)).collect()
}

/// Encodes records into one batch in the declared schema.
pub fn encode_all<'a, R: Record + 'a>(records: impl IntoIterator<Item = &'a R>) -> RecordBatch {
    let mut t = TableBuilder::new(R::COMPONENT);
    for r in records {
        r.encode(&mut t);
        t.end_row();
    }
    t.finish()
}

fn frame_key(cols: &Cols, row: usize) -> Result<FrameKey> {
    Ok(FrameKey { segment: cols.str(key::SEGMENT, row)?.to_string(), timestamp_micros: cols.i64(key::TIMESTAMP, row)? })
}

fn put_frame_key(t: &mut TableBuilder, k: &FrameKey) {
    t.str(key::SEGMENT, &k.segment).i64(key::TIMESTAMP, k.timestamp_micros);
}

// ---------------------------------------------------------------------------------------
// Range-image components: lidar, lidar_pose, lidar_camera_projection, lidar_segmentation.

macro_rules! range_image_record {
    ($(#[$m:meta])* $name:ident, $comp:expr, $prefix:literal, $arrow:ty, $native:ty, $put:ident, two_returns: $two:tt, check: $check:path) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            pub key: FrameKey,
            pub laser: LaserName,
            pub return1: RangeImage<$native>,
            pub return2: Option<RangeImage<$native>>,
        }

        impl Record for $name {
            const COMPONENT: Component = $comp;
            fn decode(cols: &Cols, row: usize) -> Result<Self> {
                let key = frame_key(cols, row)?;
                let laser = cols.enum_value(key::LASER, row)?;
                let r1 = concat!("[", $prefix, "].range_image_return1");
                let return1 = cols.range_image::<$arrow>(r1, row).map_err(|e| at_frame(e, &key, laser))?
                    .ok_or_else(|| Error::invalid(cols.at(concat!("[", $prefix, "].range_image_return1.values"), row).frame(key.timestamp_micros), "a range image", "null"))?;
                let return2 = if $two && cols_has(cols, concat!("[", $prefix, "].range_image_return2.values")) {
                    cols.range_image::<$arrow>(concat!("[", $prefix, "].range_image_return2"), row).map_err(|e| at_frame(e, &key, laser))?
                } else {
                    None
                };
                for (ret, image) in [(1, Some(&return1)), (2, return2.as_ref())] {
                    if let Some(Err((expected, found))) = image.map($check) {
                        let column = format!(concat!("[", $prefix, "].range_image_return{}.values"), ret);
                        let at = cols.at(&column, row).frame(key.timestamp_micros).detail(format!("laser {laser}"));
                        return Err(Error::invalid(at, expected, found));
                    }
                }
                Ok($name { key, laser, return1, return2 })
            }
            fn encode(&self, t: &mut TableBuilder) {
                put_frame_key(t, &self.key);
                t.i8(key::LASER, self.laser.value() as i8);
                t.$put(concat!("[", $prefix, "].range_image_return1"), &self.return1);
                if let Some(r2) = &self.return2 {
                    t.$put(concat!("[", $prefix, "].range_image_return2"), r2);
                }
            }
            fn optional_bulk_columns() -> &'static [&'static str] {
                if $two {
                    &[concat!("[", $prefix, "].range_image_return2.values"), concat!("[", $prefix, "].range_image_return2.shape")]
                } else {
                    &[]
                }
            }
        }
    };
}

fn cols_has(cols: &Cols, name: &str) -> bool {
    cols.has(name)
}

/// Adds the frame and laser to a range-image error, which only knew the row.
fn at_frame(e: Error, key: &FrameKey, laser: LaserName) -> Error {
    match e {
        Error::Invalid { at, expected, found } => {
            Error::Invalid { at: at.frame(key.timestamp_micros).detail(format!("laser {laser}")), expected, found }
        }
        other => other,
    }
}

range_image_record!(
    /// `lidar`: `[H, W, 4]` range, intensity, elongation, no-label-zone per return.
    LidarRecord, Component::Lidar, "LiDARComponent", F32, f32, range_image_f32, two_returns: true, check: finite_ranges
);
range_image_record!(
    /// `lidar_pose`: `[H, W, 6]` per-pixel vehicle pose; TOP only, return 1 only.
    LidarPoseRecord, Component::LidarPose, "LiDARPoseComponent", F32, f32, range_image_f32, two_returns: false,
    check: any_values
);
range_image_record!(
    /// `lidar_camera_projection`: `[H, W, 6]` (camera, x, y) ×2 per return.
    LidarCameraProjectionRecord, Component::LidarCameraProjection, "LiDARCameraProjectionComponent", F32, f32,
    range_image_f32, two_returns: true, check: any_values
);
range_image_record!(
    /// `lidar_segmentation`: `[H, W, 2]` instance id and semantic class per return.
    LidarSegmentationRecord, Component::LidarSegmentation, "LiDARSegmentationLabelComponent", I32, i32,
    range_image_i32, two_returns: true, check: known_classes
);

/// What a range-image check found wrong: (expected, found).
pub(crate) type Wrong = (String, String);

fn any_values<T>(_: &RangeImage<T>) -> Result<(), Wrong> {
    Ok(())
}

/// The range channel of a lidar image: finite (no return is ≤ 0, never NaN or infinity,
/// which would pass for no return or put points at infinity).
pub(crate) fn finite_ranges(image: &RangeImage<f32>) -> Result<(), Wrong> {
    let c = image.channels.max(1);
    match image.values.iter().step_by(c).position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(p) => Err((
            "finite ranges in channel 0 (≤ 0 for no return)".into(),
            format!("{} at pixel [{}, {}]", image.values[p * c], p / image.width.max(1), p % image.width.max(1)),
        )),
    }
}

/// The class channel (1) of a lidar segmentation label: one of the 23 classes (an unknown
/// one would be dropped from every score unseen).
pub(crate) fn known_classes(image: &RangeImage<i32>) -> Result<(), Wrong> {
    if image.channels < 2 {
        return Err(("2 channels (instance id, class)".into(), format!("{} channel(s)", image.channels)));
    }
    let c = image.channels;
    let bad = image.values.iter().skip(1).step_by(c).position(|&v| LidarSegClass::from_value(v.into()).is_none());
    match bad {
        None => Ok(()),
        Some(p) => Err((
            LidarSegClass::expected(),
            format!("{} at pixel [{}, {}]", image.values[p * c + 1], p / image.width.max(1), p % image.width.max(1)),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Calibrations (one row per sensor per segment).

#[derive(Debug, Clone, PartialEq)]
pub struct LidarCalibrationRecord {
    pub segment: String,
    pub calibration: LidarCalibration,
}

const LC: &str = "[LiDARCalibrationComponent]";

impl Record for LidarCalibrationRecord {
    const COMPONENT: Component = Component::LidarCalibration;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let values =
            cols.list::<F64>("[LiDARCalibrationComponent].beam_inclination.values", row)?.filter(|v| !v.is_empty());
        let calibration = LidarCalibration {
            laser: cols.enum_value(key::LASER, row)?,
            extrinsic: cols.transform("[LiDARCalibrationComponent].extrinsic.transform", row)?,
            beam_inclination: BeamInclination {
                min: cols.f64_or("[LiDARCalibrationComponent].beam_inclination.min", row, f64::NAN)?,
                max: cols.f64_or("[LiDARCalibrationComponent].beam_inclination.max", row, f64::NAN)?,
                values: values.map(|v| v.to_vec()),
            },
        };
        let b = &calibration.beam_inclination;
        if b.values.is_none() && !(b.min.is_finite() && b.max.is_finite()) {
            return Err(Error::invalid(
                cols.at("[LiDARCalibrationComponent].beam_inclination.min", row)
                    .detail(format!("laser {}", calibration.laser)),
                "beam_inclination.values, or finite min and max",
                "neither",
            ));
        }
        Ok(LidarCalibrationRecord { segment: cols.str(key::SEGMENT, row)?.to_string(), calibration })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let c = &self.calibration;
        t.str(key::SEGMENT, &self.segment)
            .i8(key::LASER, c.laser.value() as i8)
            .transform(&format!("{LC}.extrinsic.transform"), &c.extrinsic)
            .f64(&format!("{LC}.beam_inclination.min"), c.beam_inclination.min)
            .f64(&format!("{LC}.beam_inclination.max"), c.beam_inclination.max);
        if let Some(v) = &c.beam_inclination.values {
            t.list_f64(&format!("{LC}.beam_inclination.values"), v);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraCalibrationRecord {
    pub segment: String,
    pub calibration: CameraCalibration,
}

const CC: &str = "[CameraCalibrationComponent]";

impl Record for CameraCalibrationRecord {
    const COMPONENT: Component = Component::CameraCalibration;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let f = |n: &str| cols.f64(&format!("{CC}.intrinsic.{n}"), row);
        let d = |n: &str| cols.f64_or(&format!("{CC}.intrinsic.{n}"), row, 0.0);
        let dim = |n: &str| -> Result<u32> {
            let name = format!("{CC}.{n}");
            let v = cols.prim::<I32>(&name, row)?;
            u32::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| Error::invalid(cols.at(&name, row), "a positive size in pixels", v.to_string()))
        };
        let calibration = CameraCalibration {
            camera: cols.enum_value(key::CAMERA, row)?,
            intrinsic: Intrinsics {
                f_u: f("f_u")?,
                f_v: f("f_v")?,
                c_u: f("c_u")?,
                c_v: f("c_v")?,
                k1: d("k1")?,
                k2: d("k2")?,
                p1: d("p1")?,
                p2: d("p2")?,
                k3: d("k3")?,
            },
            extrinsic: cols.transform(&format!("{CC}.extrinsic.transform"), row)?,
            width: dim("width")?,
            height: dim("height")?,
            rolling_shutter: cols.enum_or(
                &format!("{CC}.rolling_shutter_direction"),
                row,
                RollingShutterDirection::Unknown,
            )?,
        };
        Ok(CameraCalibrationRecord { segment: cols.str(key::SEGMENT, row)?.to_string(), calibration })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let c = &self.calibration;
        let i = &c.intrinsic;
        t.str(key::SEGMENT, &self.segment).i8(key::CAMERA, c.camera.value() as i8);
        for (n, v) in [
            ("f_u", i.f_u),
            ("f_v", i.f_v),
            ("c_u", i.c_u),
            ("c_v", i.c_v),
            ("k1", i.k1),
            ("k2", i.k2),
            ("p1", i.p1),
            ("p2", i.p2),
            ("k3", i.k3),
        ] {
            t.f64(&format!("{CC}.intrinsic.{n}"), v);
        }
        t.transform(&format!("{CC}.extrinsic.transform"), &c.extrinsic)
            .i32(&format!("{CC}.width"), c.width as i32)
            .i32(&format!("{CC}.height"), c.height as i32)
            .i8(&format!("{CC}.rolling_shutter_direction"), c.rolling_shutter.value() as i8);
    }
}

// ---------------------------------------------------------------------------------------
// Cameras.

/// `camera_image`: the JPEG and its pose and shutter timing.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraImageRecord {
    pub key: FrameKey,
    pub camera: CameraName,
    pub jpeg: Vec<u8>,
    pub pose: Option<Transform>,
    pub motion: ImageMotion,
}

const CI: &str = "[CameraImageComponent]";

impl Record for CameraImageRecord {
    const COMPONENT: Component = Component::CameraImage;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let key = frame_key(cols, row)?;
        let f32_or0 =
            |n: &str| -> Result<f64> { Ok(cols.opt_prim::<F32>(&format!("{CI}.{n}"), row)?.unwrap_or(0.0) as f64) };
        let f64_or0 = |n: &str| cols.f64_or(&format!("{CI}.{n}"), row, 0.0);
        let motion = ImageMotion {
            linear_velocity: [
                f32_or0("velocity.linear_velocity.x")?,
                f32_or0("velocity.linear_velocity.y")?,
                f32_or0("velocity.linear_velocity.z")?,
            ],
            angular_velocity: [
                f64_or0("velocity.angular_velocity.x")?,
                f64_or0("velocity.angular_velocity.y")?,
                f64_or0("velocity.angular_velocity.z")?,
            ],
            pose_timestamp: f64_or0("pose_timestamp")?,
            shutter: f64_or0("rolling_shutter_params.shutter")?,
            camera_trigger_time: f64_or0("rolling_shutter_params.camera_trigger_time")?,
            camera_readout_done_time: f64_or0("rolling_shutter_params.camera_readout_done_time")?,
        };
        Ok(CameraImageRecord {
            camera: cols.enum_value(key::CAMERA, row)?,
            jpeg: cols.bin(&format!("{CI}.image"), row)?.to_vec(),
            pose: cols.opt_transform(&format!("{CI}.pose.transform"), row)?,
            motion,
            key,
        })
    }
    fn encode(&self, t: &mut TableBuilder) {
        put_frame_key(t, &self.key);
        let m = &self.motion;
        t.i8(key::CAMERA, self.camera.value() as i8).bin(&format!("{CI}.image"), &self.jpeg);
        if let Some(p) = &self.pose {
            t.transform(&format!("{CI}.pose.transform"), p);
        }
        for (axis, i) in [("x", 0), ("y", 1), ("z", 2)] {
            t.f32(&format!("{CI}.velocity.linear_velocity.{axis}"), m.linear_velocity[i] as f32);
            t.f64(&format!("{CI}.velocity.angular_velocity.{axis}"), m.angular_velocity[i]);
        }
        t.f64(&format!("{CI}.pose_timestamp"), m.pose_timestamp)
            .f64(&format!("{CI}.rolling_shutter_params.shutter"), m.shutter)
            .f64(&format!("{CI}.rolling_shutter_params.camera_trigger_time"), m.camera_trigger_time)
            .f64(&format!("{CI}.rolling_shutter_params.camera_readout_done_time"), m.camera_readout_done_time);
    }
}

/// `camera_segmentation`: the panoptic label, kept encoded (uint16 PNG) as stored; decode
/// with [`CameraSegmentationRecord::decode_label`].
#[derive(Debug, Clone, PartialEq)]
pub struct CameraSegmentationRecord {
    pub key: FrameKey,
    pub camera: CameraName,
    pub divisor: i32,
    pub png: Vec<u8>,
    pub local_instance_ids: Vec<i32>,
    pub global_instance_ids: Vec<i32>,
    pub is_tracked: Vec<bool>,
    pub sequence_id: String,
    pub num_cameras_covered: Option<Vec<u8>>,
}

const CS: &str = "[CameraSegmentationLabelComponent]";

impl Record for CameraSegmentationRecord {
    const COMPONENT: Component = Component::CameraSegmentation;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let key = frame_key(cols, row)?;
        let divisor_col = format!("{CS}.panoptic_label_divisor");
        let divisor = cols.prim::<I32>(&divisor_col, row)?;
        if divisor <= 0 {
            return Err(Error::invalid(
                cols.at(&divisor_col, row).frame(key.timestamp_micros),
                "a positive divisor",
                divisor.to_string(),
            ));
        }
        let map = |n: &str| -> Result<Vec<i32>> {
            Ok(cols
                .list::<I32>(&format!("{CS}.instance_id_to_global_id_mapping.{n}"), row)?
                .map(|v| v.to_vec())
                .unwrap_or_default())
        };
        Ok(CameraSegmentationRecord {
            camera: cols.enum_value(key::CAMERA, row)?,
            divisor,
            png: cols.bin(&format!("{CS}.panoptic_label"), row)?.to_vec(),
            local_instance_ids: map("local_instance_ids")?,
            global_instance_ids: map("global_instance_ids")?,
            is_tracked: cols
                .list_bool(&format!("{CS}.instance_id_to_global_id_mapping.is_tracked"), row)?
                .unwrap_or_default(),
            sequence_id: cols.opt_str(&format!("{CS}.sequence_id"), row)?.unwrap_or_default().to_string(),
            num_cameras_covered: cols.opt_bin(&format!("{CS}.num_cameras_covered"), row)?.map(|b| b.to_vec()),
            key,
        })
    }
    fn encode(&self, t: &mut TableBuilder) {
        put_frame_key(t, &self.key);
        t.i8(key::CAMERA, self.camera.value() as i8)
            .i32(&format!("{CS}.panoptic_label_divisor"), self.divisor)
            .bin(&format!("{CS}.panoptic_label"), &self.png)
            .list_i32(&format!("{CS}.instance_id_to_global_id_mapping.local_instance_ids"), &self.local_instance_ids)
            .list_i32(&format!("{CS}.instance_id_to_global_id_mapping.global_instance_ids"), &self.global_instance_ids)
            .list_bool(&format!("{CS}.instance_id_to_global_id_mapping.is_tracked"), &self.is_tracked)
            .str(&format!("{CS}.sequence_id"), &self.sequence_id);
        // Waymo's writer stores empty bytes when the field is absent, and its dataclasses fail
        // on a null here: never write null.
        t.bin(&format!("{CS}.num_cameras_covered"), self.num_cameras_covered.as_deref().unwrap_or(&[]));
    }
}

// ---------------------------------------------------------------------------------------
// Boxes.

/// `lidar_box`: a 3-D label in the frame's vehicle coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct LidarBoxRecord {
    pub key: FrameKey,
    pub label: LidarBox,
}

const LB: &str = "[LiDARBoxComponent]";

/// The x, y, z column names under a prefix, spelled out once (decoding runs per row).
macro_rules! xyz_names {
    ($prefix:expr) => {
        [concat!($prefix, ".x"), concat!($prefix, ".y"), concat!($prefix, ".z")]
    };
}

/// A finite value (NaN or infinity in a label would turn every metric using it into NaN).
fn finite(cols: &Cols, name: &str, row: usize, v: f64) -> Result<f64> {
    if v.is_finite() { Ok(v) } else { Err(Error::invalid(cols.at(name, row), "a finite number", v.to_string())) }
}

fn vec3(cols: &Cols, names: [&str; 3], row: usize, required: bool) -> Result<Vector3<f64>> {
    let get = |n: &str| {
        let v = if required { cols.f64(n, row) } else { cols.f64_or(n, row, 0.0) }?;
        finite(cols, n, row, v)
    };
    Ok(vector![get(names[0])?, get(names[1])?, get(names[2])?])
}

/// A box size: finite and not negative on any axis.
fn size3(cols: &Cols, names: [&str; 3], row: usize) -> Result<Vector3<f64>> {
    let v = vec3(cols, names, row, true)?;
    for (n, x) in names.iter().zip(v.iter()) {
        if *x < 0.0 {
            return Err(Error::invalid(cols.at(n, row), "a box size of at least 0 m", x.to_string()));
        }
    }
    Ok(v)
}

fn put_vec3(t: &mut TableBuilder, prefix: &str, v: &Vector3<f64>) {
    t.f64(&format!("{prefix}.x"), v.x).f64(&format!("{prefix}.y"), v.y).f64(&format!("{prefix}.z"), v.z);
}

impl Record for LidarBoxRecord {
    const COMPONENT: Component = Component::LidarBox;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let key = frame_key(cols, row)?;
        let label = LidarBox {
            object_id: cols.str(key::LASER_OBJECT, row)?.to_string(),
            bbox: Box3d {
                center: vec3(cols, xyz_names!("[LiDARBoxComponent].box.center"), row, true)?,
                size: size3(cols, xyz_names!("[LiDARBoxComponent].box.size"), row)?,
                heading: finite(
                    cols,
                    "[LiDARBoxComponent].box.heading",
                    row,
                    cols.f64("[LiDARBoxComponent].box.heading", row)?,
                )?,
            },
            kind: cols.enum_value("[LiDARBoxComponent].type", row)?,
            num_lidar_points_in_box: cols
                .opt_prim::<I64>("[LiDARBoxComponent].num_lidar_points_in_box", row)?
                .unwrap_or(0),
            num_top_lidar_points_in_box: cols
                .opt_prim::<I64>("[LiDARBoxComponent].num_top_lidar_points_in_box", row)?
                .unwrap_or(0),
            speed: vec3(cols, xyz_names!("[LiDARBoxComponent].speed"), row, false)?,
            acceleration: vec3(cols, xyz_names!("[LiDARBoxComponent].acceleration"), row, false)?,
            detection_difficulty: cols.enum_or(
                "[LiDARBoxComponent].difficulty_level.detection",
                row,
                DifficultyLevel::Unknown,
            )?,
            tracking_difficulty: cols.enum_or(
                "[LiDARBoxComponent].difficulty_level.tracking",
                row,
                DifficultyLevel::Unknown,
            )?,
        };
        Ok(LidarBoxRecord { key, label })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let l = &self.label;
        put_frame_key(t, &self.key);
        t.str(key::LASER_OBJECT, &l.object_id);
        put_vec3(t, &format!("{LB}.box.center"), &l.bbox.center);
        put_vec3(t, &format!("{LB}.box.size"), &l.bbox.size);
        t.f64(&format!("{LB}.box.heading"), l.bbox.heading)
            .i8(&format!("{LB}.type"), l.kind.value() as i8)
            .i64(&format!("{LB}.num_lidar_points_in_box"), l.num_lidar_points_in_box)
            .i64(&format!("{LB}.num_top_lidar_points_in_box"), l.num_top_lidar_points_in_box);
        put_vec3(t, &format!("{LB}.speed"), &l.speed);
        put_vec3(t, &format!("{LB}.acceleration"), &l.acceleration);
        t.i8(&format!("{LB}.difficulty_level.detection"), l.detection_difficulty.value() as i8)
            .i8(&format!("{LB}.difficulty_level.tracking"), l.tracking_difficulty.value() as i8);
    }
}

fn box2d(cols: &Cols, prefix: &str, row: usize) -> Result<Box2d> {
    let get = |part: &str| {
        let name = format!("{prefix}.box.{part}");
        let v = finite(cols, &name, row, cols.f64(&name, row)?)?;
        if part.starts_with("size") && v < 0.0 {
            return Err(Error::invalid(cols.at(&name, row), "a box size of at least 0 pixels", v.to_string()));
        }
        Ok(v)
    };
    Ok(Box2d { center_x: get("center.x")?, center_y: get("center.y")?, size_x: get("size.x")?, size_y: get("size.y")? })
}

fn put_box2d(t: &mut TableBuilder, prefix: &str, b: &Box2d) {
    t.f64(&format!("{prefix}.box.center.x"), b.center_x)
        .f64(&format!("{prefix}.box.center.y"), b.center_y)
        .f64(&format!("{prefix}.box.size.x"), b.size_x)
        .f64(&format!("{prefix}.box.size.y"), b.size_y);
}

/// `camera_box`: a 2-D label drawn on one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraBoxRecord {
    pub key: FrameKey,
    pub label: CameraBox,
}

const CB: &str = "[CameraBoxComponent]";

impl Record for CameraBoxRecord {
    const COMPONENT: Component = Component::CameraBox;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let key = frame_key(cols, row)?;
        let label = CameraBox {
            camera: cols.enum_value(key::CAMERA, row)?,
            object_id: cols.str(key::CAMERA_OBJECT, row)?.to_string(),
            bbox: box2d(cols, CB, row)?,
            kind: cols.enum_value(&format!("{CB}.type"), row)?,
            detection_difficulty: cols.enum_or(
                &format!("{CB}.difficulty_level.detection"),
                row,
                DifficultyLevel::Unknown,
            )?,
            tracking_difficulty: cols.enum_or(
                &format!("{CB}.difficulty_level.tracking"),
                row,
                DifficultyLevel::Unknown,
            )?,
        };
        Ok(CameraBoxRecord { key, label })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let l = &self.label;
        put_frame_key(t, &self.key);
        t.i8(key::CAMERA, l.camera.value() as i8).str(key::CAMERA_OBJECT, &l.object_id);
        put_box2d(t, CB, &l.bbox);
        t.i8(&format!("{CB}.type"), l.kind.value() as i8)
            .i8(&format!("{CB}.difficulty_level.detection"), l.detection_difficulty.value() as i8)
            .i8(&format!("{CB}.difficulty_level.tracking"), l.tracking_difficulty.value() as i8);
    }
}

/// `projected_lidar_box`: a 3-D label projected into one camera; `object_id` is the laser id.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedLidarBoxRecord {
    pub key: FrameKey,
    pub label: CameraBox,
}

const PB: &str = "[ProjectedLiDARBoxComponent]";

impl Record for ProjectedLidarBoxRecord {
    const COMPONENT: Component = Component::ProjectedLidarBox;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let key = frame_key(cols, row)?;
        let label = CameraBox {
            camera: cols.enum_value(key::CAMERA, row)?,
            object_id: cols.str(key::LASER_OBJECT, row)?.to_string(),
            bbox: box2d(cols, PB, row)?,
            kind: cols.enum_value(&format!("{PB}.type"), row)?,
            detection_difficulty: DifficultyLevel::Unknown,
            tracking_difficulty: DifficultyLevel::Unknown,
        };
        Ok(ProjectedLidarBoxRecord { key, label })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let l = &self.label;
        put_frame_key(t, &self.key);
        t.i8(key::CAMERA, l.camera.value() as i8).str(key::LASER_OBJECT, &l.object_id);
        put_box2d(t, PB, &l.bbox);
        t.i8(&format!("{PB}.type"), l.kind.value() as i8);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssociationRecord {
    pub key: FrameKey,
    pub association: BoxAssociation,
}

impl Record for AssociationRecord {
    const COMPONENT: Component = Component::CameraToLidarBoxAssociation;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        Ok(AssociationRecord {
            key: frame_key(cols, row)?,
            association: BoxAssociation {
                camera: cols.enum_value(key::CAMERA, row)?,
                camera_object_id: cols.str(key::CAMERA_OBJECT, row)?.to_string(),
                laser_object_id: cols.str(key::LASER_OBJECT, row)?.to_string(),
            },
        })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let a = &self.association;
        put_frame_key(t, &self.key);
        t.i8(key::CAMERA, a.camera.value() as i8)
            .str(key::CAMERA_OBJECT, &a.camera_object_id)
            .str(key::LASER_OBJECT, &a.laser_object_id);
    }
}

// ---------------------------------------------------------------------------------------
// Pose, stats, keypoints, map.

#[derive(Debug, Clone, PartialEq)]
pub struct VehiclePoseRecord {
    pub key: FrameKey,
    /// Vehicle → world.
    pub world_from_vehicle: Transform,
}

const VP: &str = "[VehiclePoseComponent].world_from_vehicle.transform";

impl Record for VehiclePoseRecord {
    const COMPONENT: Component = Component::VehiclePose;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let world_from_vehicle = cols.transform(VP, row)?;
        if world_from_vehicle.0.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(cols.at(VP, row), "a transform of finite numbers", "NaN or infinity"));
        }
        Ok(VehiclePoseRecord { key: frame_key(cols, row)?, world_from_vehicle })
    }
    fn encode(&self, t: &mut TableBuilder) {
        put_frame_key(t, &self.key);
        t.transform(VP, &self.world_from_vehicle);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatsRecord {
    pub key: FrameKey,
    pub stats: FrameStats,
}

const ST: &str = "[StatsComponent]";

fn counts(cols: &Cols, which: &str, row: usize) -> Result<Vec<(BoxType, i32)>> {
    let types_name = format!("{ST}.{which}_object_counts.types");
    let types = cols.list::<I8>(&types_name, row)?.unwrap_or_default();
    let counts = cols.list::<I32>(&format!("{ST}.{which}_object_counts.counts"), row)?.unwrap_or_default();
    if types.len() != counts.len() {
        return Err(Error::invalid(
            cols.at(&types_name, row),
            format!("as many types as counts ({})", counts.len()),
            types.len().to_string(),
        ));
    }
    types
        .iter()
        .zip(counts)
        .map(|(t, c)| {
            BoxType::from_value(*t as i64)
                .map(|t| (t, *c))
                .ok_or_else(|| Error::invalid(cols.at(&types_name, row), BoxType::expected(), t.to_string()))
        })
        .collect()
}

impl Record for StatsRecord {
    const COMPONENT: Component = Component::Stats;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let s = |n: &str| -> Result<String> {
            Ok(cols.opt_str(&format!("{ST}.{n}"), row)?.unwrap_or_default().to_string())
        };
        Ok(StatsRecord {
            key: frame_key(cols, row)?,
            stats: FrameStats {
                time_of_day: s("time_of_day")?,
                location: s("location")?,
                weather: s("weather")?,
                lidar_object_counts: counts(cols, "lidar", row)?,
                camera_object_counts: counts(cols, "camera", row)?,
            },
        })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let s = &self.stats;
        put_frame_key(t, &self.key);
        t.str(&format!("{ST}.time_of_day"), &s.time_of_day)
            .str(&format!("{ST}.location"), &s.location)
            .str(&format!("{ST}.weather"), &s.weather);
        for (which, c) in [("lidar", &s.lidar_object_counts), ("camera", &s.camera_object_counts)] {
            let types: Vec<i8> = c.iter().map(|(t, _)| t.value() as i8).collect();
            let counts: Vec<i32> = c.iter().map(|(_, n)| *n).collect();
            t.list_i8(&format!("{ST}.{which}_object_counts.types"), &types)
                .list_i32(&format!("{ST}.{which}_object_counts.counts"), &counts);
        }
    }
}

/// `camera_hkp`: human keypoints of one camera object (read for inspection; no model uses them).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraKeypointsRecord {
    pub key: FrameKey,
    pub camera: CameraName,
    pub object_id: String,
    pub types: Vec<i32>,
    /// Pixel coordinates per keypoint.
    pub location_px: Vec<[f64; 2]>,
}

const HKP: &str = "[CameraHumanKeypointsComponent].camera_keypoints[*]";

impl Record for CameraKeypointsRecord {
    const COMPONENT: Component = Component::CameraHkp;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let types = cols.list::<I32>(&format!("{HKP}.type"), row)?.unwrap_or_default().to_vec();
        let xs_name = format!("{HKP}.keypoint_2d.location_px.x");
        let xs = cols.list::<F64>(&xs_name, row)?.unwrap_or_default();
        let ys = cols.list::<F64>(&format!("{HKP}.keypoint_2d.location_px.y"), row)?.unwrap_or_default();
        if xs.len() != ys.len() {
            return Err(Error::invalid(
                cols.at(&xs_name, row),
                format!("{} x values like y", ys.len()),
                xs.len().to_string(),
            ));
        }
        Ok(CameraKeypointsRecord {
            key: frame_key(cols, row)?,
            camera: cols.enum_value(key::CAMERA, row)?,
            object_id: cols.str(key::CAMERA_OBJECT, row)?.to_string(),
            types,
            location_px: xs.iter().zip(ys).map(|(x, y)| [*x, *y]).collect(),
        })
    }
    fn encode(&self, t: &mut TableBuilder) {
        put_frame_key(t, &self.key);
        let xs: Vec<f64> = self.location_px.iter().map(|p| p[0]).collect();
        let ys: Vec<f64> = self.location_px.iter().map(|p| p[1]).collect();
        t.i8(key::CAMERA, self.camera.value() as i8)
            .str(key::CAMERA_OBJECT, &self.object_id)
            .list_i32(&format!("{HKP}.type"), &self.types)
            .list_f64(&format!("{HKP}.keypoint_2d.location_px.x"), &xs)
            .list_f64(&format!("{HKP}.keypoint_2d.location_px.y"), &ys);
    }
}

/// scenetok's `map_feature` extension row.
#[derive(Debug, Clone, PartialEq)]
pub struct MapFeatureRecord {
    pub segment: String,
    pub feature: MapFeature,
}

const MF: &str = "[MapFeatureComponent]";

impl Record for MapFeatureRecord {
    const COMPONENT: Component = Component::MapFeature;
    fn decode(cols: &Cols, row: usize) -> Result<Self> {
        let id = cols.i64(key::MAP_FEATURE, row)?;
        let xs_name = format!("{MF}.polyline.x");
        let xs = cols.list::<F64>(&xs_name, row)?.unwrap_or_default();
        let ys = cols.list::<F64>(&format!("{MF}.polyline.y"), row)?.unwrap_or_default();
        let zs = cols.list::<F64>(&format!("{MF}.polyline.z"), row)?.unwrap_or_default();
        if xs.len() != ys.len() || xs.len() != zs.len() {
            return Err(Error::invalid(
                cols.at(&xs_name, row).detail(format!("map feature {id}")),
                "polyline.x, .y and .z of one length",
                format!("{}, {} and {}", xs.len(), ys.len(), zs.len()),
            ));
        }
        let ids = |n: &str| -> Result<Vec<i64>> {
            Ok(cols.list::<I64>(&format!("{MF}.{n}"), row)?.map(|v| v.to_vec()).unwrap_or_default())
        };
        let polyline = xs.iter().zip(ys).zip(zs).map(|((x, y), z)| vector![*x, *y, *z]).collect();
        let mut feature = MapFeature::new(id, cols.enum_value(&format!("{MF}.type"), row)?, polyline);
        feature.entry_lanes = ids("entry_lanes")?;
        feature.exit_lanes = ids("exit_lanes")?;
        feature.left_neighbors = ids("left_neighbors")?;
        feature.right_neighbors = ids("right_neighbors")?;
        feature.speed_limit_mph = cols.opt_prim::<F64>(&format!("{MF}.speed_limit_mph"), row)?;
        feature.controlled_lanes = ids("controlled_lanes")?;
        Ok(MapFeatureRecord { segment: cols.str(key::SEGMENT, row)?.to_string(), feature })
    }
    fn encode(&self, t: &mut TableBuilder) {
        let f = &self.feature;
        let xs: Vec<f64> = f.polyline.iter().map(|p| p.x).collect();
        let ys: Vec<f64> = f.polyline.iter().map(|p| p.y).collect();
        let zs: Vec<f64> = f.polyline.iter().map(|p| p.z).collect();
        t.str(key::SEGMENT, &self.segment)
            .i64(key::MAP_FEATURE, f.id)
            .i8(&format!("{MF}.type"), f.feature_type.value() as i8)
            .list_f64(&format!("{MF}.polyline.x"), &xs)
            .list_f64(&format!("{MF}.polyline.y"), &ys)
            .list_f64(&format!("{MF}.polyline.z"), &zs)
            .list_i64(&format!("{MF}.entry_lanes"), &f.entry_lanes)
            .list_i64(&format!("{MF}.exit_lanes"), &f.exit_lanes)
            .list_i64(&format!("{MF}.left_neighbors"), &f.left_neighbors)
            .list_i64(&format!("{MF}.right_neighbors"), &f.right_neighbors)
            .list_i64(&format!("{MF}.controlled_lanes"), &f.controlled_lanes);
        if let Some(v) = f.speed_limit_mph {
            t.f64(&format!("{MF}.speed_limit_mph"), v);
        }
    }
}
