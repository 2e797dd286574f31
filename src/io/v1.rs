//! v1 perception `Frame` TFRecords → [`scene::Frame`].
//!
//! Calibrations, range images (both returns, TOP's pixel pose, camera projections and
//! segmentation: see `v1_range_image`), camera images (still JPEG-encoded), panoptic labels
//! (decoded), 3-D labels, projected and native 2-D labels, and stats.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use nalgebra::Vector3;
use prost::Message;

use super::image::decode_png_u16;
use super::proto;
use super::tfrecord::DecodedRecords;
use crate::error::{Error, Location, Result};
use crate::scene::{
    BeamInclination, Box2d, Box3d, BoxAssociation, BoxType, CameraBox, CameraCalibration, CameraFrame, CameraName,
    DifficultyLevel, Frame, FrameStats, ImageMotion, Intrinsics, LaserFrame, LaserName, LidarBox, LidarCalibration,
    PanopticLabel, RollingShutterDirection, Transform,
};

/// Reads every frame of a v1 TFRecord file.
pub fn read_frames(path: impl AsRef<Path>) -> Result<Vec<Frame>> {
    open_frames(path)?.collect()
}

/// Streams the frames of a v1 TFRecord file (a segment file is about 1 GB: stream it).
pub fn open_frames(path: impl AsRef<Path>) -> Result<FrameReader<BufReader<File>>> {
    DecodedRecords::open(path, decode_frame)
}

/// An iterator of decoded frames (see [`DecodedRecords::new`] for other readers).
pub type FrameReader<R> = DecodedRecords<R, Frame>;

/// Decodes and converts one serialized v1 `Frame`.
pub fn decode_frame(bytes: &[u8], at: &Location) -> Result<Frame> {
    let msg = proto::Frame::decode(bytes).map_err(|e| Error::decode(at.clone(), "Frame protobuf", e))?;
    convert_frame(&msg, at)
}

/// Converts a decoded v1 `Frame`.
pub fn convert_frame(msg: &proto::Frame, at: &Location) -> Result<Frame> {
    let timestamp_micros = msg.timestamp_micros.unwrap_or(0);
    let at = at.clone().frame(timestamp_micros);
    let context = msg.context.clone().unwrap_or_default();

    let camera_calibrations =
        context.camera_calibrations.iter().map(|c| camera_calibration(c, &at)).collect::<Result<Vec<_>>>()?;
    let laser_calibrations = context
        .laser_calibrations
        .iter()
        .map(|c| laser_calibration(c, &at.clone().column("context.laser_calibrations")))
        .collect::<Result<Vec<_>>>()?;

    // Lasers: every calibrated laser, plus any laser entry that has no calibration.
    let mut lasers: Vec<LaserFrame> = laser_calibrations
        .into_iter()
        .map(|c| {
            let mut l = LaserFrame::new(c.laser);
            l.calibration = Some(c);
            l
        })
        .collect();
    // Entries without a name carry nothing (the public sample has five fully empty ones,
    // its range images stripped); skip those rather than reject the frame.
    for l in msg.lasers.iter().filter(|l| l.name.is_some()) {
        let name = laser_name(l.name, &at.clone().column("lasers"))?;
        let i = match lasers.iter().position(|x| x.laser == name) {
            Some(i) => i,
            None => {
                lasers.push(LaserFrame::new(name));
                lasers.len() - 1
            }
        };
        super::v1_range_image::fill_laser(&mut lasers[i], l, &at)?;
    }

    let mut cameras =
        msg.images.iter().map(|img| camera_frame(img, &camera_calibrations, &at)).collect::<Result<Vec<_>>>()?;

    let lidar_boxes = msg
        .laser_labels
        .iter()
        .enumerate()
        .map(|(i, l)| lidar_box(l, &at.clone().column(format!("laser_labels[{i}]"))))
        .collect::<Result<Vec<_>>>()?;

    let projected_lidar_boxes = camera_boxes(&msg.projected_lidar_labels, "projected_lidar_labels", true, &at)?;
    let camera_boxes_v = camera_boxes(&msg.camera_labels, "camera_labels", false, &at)?;

    // Camera labels that name their laser object become associations.
    let mut associations = Vec::new();
    for cl in &msg.camera_labels {
        let camera = camera_name(cl.name, &at.clone().column("camera_labels"))?;
        for l in &cl.labels {
            if let Some(laser_id) = l.association.as_ref().and_then(|a| a.laser_object_id.clone()) {
                associations.push(BoxAssociation {
                    camera,
                    camera_object_id: l.id.clone().unwrap_or_default(),
                    laser_object_id: laser_id,
                });
            }
        }
    }

    let stats = context.stats.as_ref().map(|s| stats(s, &at)).transpose()?;
    // The same sensor order as the v2 frame reader, whatever order the file used.
    lasers.sort_by_key(|l| l.laser);
    cameras.sort_by_key(|c| c.camera);

    Ok(Frame {
        segment: context.name.clone().unwrap_or_default(),
        timestamp_micros,
        vehicle_pose: msg.pose.as_ref().map(|t| transform(t, &at.clone().column("pose"))).transpose()?,
        lasers,
        cameras,
        lidar_boxes,
        camera_boxes: camera_boxes_v,
        projected_lidar_boxes,
        associations,
        stats,
    })
}

pub(crate) fn laser_name(v: Option<i32>, at: &Location) -> Result<LaserName> {
    let v = v.unwrap_or(0);
    LaserName::from_value(v.into()).ok_or_else(|| Error::invalid(at.clone(), LaserName::expected(), v.to_string()))
}

pub(crate) fn camera_name(v: Option<i32>, at: &Location) -> Result<CameraName> {
    let v = v.unwrap_or(0);
    CameraName::from_value(v.into()).ok_or_else(|| Error::invalid(at.clone(), CameraName::expected(), v.to_string()))
}

fn box_type(v: Option<i32>, at: &Location) -> Result<BoxType> {
    let v = v.unwrap_or(0);
    BoxType::from_value(v.into()).ok_or_else(|| Error::invalid(at.clone(), BoxType::expected(), v.to_string()))
}

fn difficulty(v: Option<i32>, at: &Location) -> Result<DifficultyLevel> {
    let v = v.unwrap_or(0);
    DifficultyLevel::from_value(v.into())
        .ok_or_else(|| Error::invalid(at.clone(), DifficultyLevel::expected(), v.to_string()))
}

pub(crate) fn transform(t: &proto::Transform, at: &Location) -> Result<Transform> {
    let v: &[f64; 16] = t.transform.as_slice().try_into().map_err(|_| {
        Error::invalid(at.clone(), "a 4×4 row-major transform (16 values)", format!("{} values", t.transform.len()))
    })?;
    Ok(Transform::from_row_major(v))
}

fn camera_calibration(c: &proto::CameraCalibration, at: &Location) -> Result<CameraCalibration> {
    let at = at.clone().column("context.camera_calibrations");
    let camera = camera_name(c.name, &at)?;
    let at = at.detail(format!("camera {camera}"));
    let intrinsic: &[f64; 9] = c.intrinsic.as_slice().try_into().map_err(|_| {
        Error::invalid(
            at.clone(),
            "9 intrinsics [f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]",
            format!("{} values", c.intrinsic.len()),
        )
    })?;
    let extrinsic = match &c.extrinsic {
        Some(t) => transform(t, &at)?,
        None => return Err(Error::invalid(at, "an extrinsic transform", "none")),
    };
    let size = |v: Option<i32>, what: &str| {
        let v = v.unwrap_or(0);
        u32::try_from(v)
            .ok()
            .filter(|&u| u > 0)
            .ok_or_else(|| Error::invalid(at.clone(), format!("a positive image {what}"), v.to_string()))
    };
    let width = size(c.width, "width")?;
    let height = size(c.height, "height")?;
    let rs = c.rolling_shutter_direction.unwrap_or(0);
    let rolling_shutter = RollingShutterDirection::from_value(rs.into())
        .ok_or_else(|| Error::invalid(at.clone(), RollingShutterDirection::expected(), rs.to_string()))?;
    Ok(CameraCalibration {
        camera,
        intrinsic: Intrinsics::from_array(intrinsic),
        extrinsic,
        width,
        height,
        rolling_shutter,
    })
}

/// A laser's calibration; `at` names where it is stored.
pub(crate) fn laser_calibration(c: &proto::LaserCalibration, at: &Location) -> Result<LidarCalibration> {
    let laser = laser_name(c.name, at)?;
    let at = at.clone().detail(format!("laser {laser}"));
    let extrinsic = match &c.extrinsic {
        Some(t) => transform(t, &at)?,
        None => return Err(Error::invalid(at, "an extrinsic transform", "none")),
    };
    let values = (!c.beam_inclinations.is_empty()).then(|| c.beam_inclinations.clone());
    // With explicit values the min/max fields may be absent; fall back to the values' range.
    let lo = values.as_ref().and_then(|v| v.iter().copied().reduce(f64::min));
    let hi = values.as_ref().and_then(|v| v.iter().copied().reduce(f64::max));
    let (min, max) = match (c.beam_inclination_min.or(lo), c.beam_inclination_max.or(hi)) {
        (Some(min), Some(max)) => (min, max),
        _ => return Err(Error::invalid(at, "beam_inclination_min and _max, or explicit beam_inclinations", "neither")),
    };
    Ok(LidarCalibration { laser, extrinsic, beam_inclination: BeamInclination { min, max, values } })
}

fn camera_frame(img: &proto::CameraImage, calibrations: &[CameraCalibration], at: &Location) -> Result<CameraFrame> {
    let camera = camera_name(img.name, &at.clone().column("images"))?;
    let at = at.clone().column("images").detail(format!("camera {camera}"));
    let v = img.velocity.unwrap_or_default();
    let f = |x: Option<f32>| f64::from(x.unwrap_or(0.0));
    let motion = ImageMotion {
        linear_velocity: [f(v.v_x), f(v.v_y), f(v.v_z)],
        angular_velocity: [v.w_x.unwrap_or(0.0), v.w_y.unwrap_or(0.0), v.w_z.unwrap_or(0.0)],
        pose_timestamp: img.pose_timestamp.unwrap_or(0.0),
        shutter: img.shutter.unwrap_or(0.0),
        camera_trigger_time: img.camera_trigger_time.unwrap_or(0.0),
        camera_readout_done_time: img.camera_readout_done_time.unwrap_or(0.0),
    };
    let segmentation = img
        .camera_segmentation_label
        .as_ref()
        .map(|s| panoptic(s, camera, &at.clone().column("images.camera_segmentation_label")))
        .transpose()?;
    Ok(CameraFrame {
        camera,
        calibration: calibrations.iter().find(|c| c.camera == camera).cloned(),
        jpeg: img.image.clone().unwrap_or_default(),
        pose: img.pose.as_ref().map(|t| transform(t, &at)).transpose()?,
        motion,
        segmentation,
    })
}

fn panoptic(s: &proto::CameraSegmentationLabel, camera: CameraName, at: &Location) -> Result<PanopticLabel> {
    let at = at.clone().detail(format!("camera {camera}"));
    let divisor = s.panoptic_label_divisor.unwrap_or(0);
    if divisor <= 0 {
        return Err(Error::invalid(at, "a positive panoptic_label_divisor", divisor.to_string()));
    }
    let png = s.panoptic_label.as_deref().unwrap_or_default();
    let (width, height, values) = decode_png_u16(png, &at)?;
    let m = &s.instance_id_to_global_id_mapping;
    Ok(PanopticLabel {
        camera,
        divisor,
        width,
        height,
        values,
        local_instance_ids: m.iter().map(|x| x.local_instance_id.unwrap_or(0)).collect(),
        global_instance_ids: m.iter().map(|x| x.global_instance_id.unwrap_or(0)).collect(),
        is_tracked: m.iter().map(|x| x.is_tracked.unwrap_or(false)).collect(),
        sequence_id: s.sequence_id.clone().unwrap_or_default(),
    })
}

fn lidar_box(l: &proto::Label, at: &Location) -> Result<LidarBox> {
    let b = l.r#box.unwrap_or_default();
    let m = l.metadata.unwrap_or_default();
    let z = |x: Option<f64>| x.unwrap_or(0.0);
    Ok(LidarBox {
        object_id: l.id.clone().unwrap_or_default(),
        bbox: Box3d {
            center: Vector3::new(z(b.center_x), z(b.center_y), z(b.center_z)),
            size: Vector3::new(z(b.length), z(b.width), z(b.height)),
            heading: z(b.heading),
        },
        kind: box_type(l.r#type, at)?,
        num_lidar_points_in_box: i64::from(l.num_lidar_points_in_box.unwrap_or(0)),
        num_top_lidar_points_in_box: i64::from(l.num_top_lidar_points_in_box.unwrap_or(0)),
        speed: Vector3::new(z(m.speed_x), z(m.speed_y), z(m.speed_z)),
        acceleration: Vector3::new(z(m.accel_x), z(m.accel_y), z(m.accel_z)),
        detection_difficulty: difficulty(l.detection_difficulty_level, at)?,
        tracking_difficulty: difficulty(l.tracking_difficulty_level, at)?,
    })
}

/// 2-D boxes per camera. Projected labels carry the laser id with a `_<CAMERA>` suffix
/// (`<laser_id>_FRONT`); it is stripped so `object_id` joins with the 3-D label.
fn camera_boxes(
    groups: &[proto::CameraLabels],
    field: &str,
    strip_suffix: bool,
    at: &Location,
) -> Result<Vec<CameraBox>> {
    let mut out = Vec::new();
    for (g, cl) in groups.iter().enumerate() {
        let here = at.clone().column(format!("{field}[{g}]"));
        let camera = camera_name(cl.name, &here)?;
        let suffix = format!("_{}", camera.name());
        for (i, l) in cl.labels.iter().enumerate() {
            let here = here.clone().detail(format!("camera {camera}, label {i}"));
            let id = l.id.clone().unwrap_or_default();
            let object_id = match id.strip_suffix(&suffix) {
                Some(base) if strip_suffix => base.to_string(),
                _ => id,
            };
            let b = l.r#box.unwrap_or_default();
            out.push(CameraBox {
                camera,
                object_id,
                // Image boxes: `length` is the extent along u (x), `width` along v (y).
                bbox: Box2d {
                    center_x: b.center_x.unwrap_or(0.0),
                    center_y: b.center_y.unwrap_or(0.0),
                    size_x: b.length.unwrap_or(0.0),
                    size_y: b.width.unwrap_or(0.0),
                },
                kind: box_type(l.r#type, &here)?,
                detection_difficulty: difficulty(l.detection_difficulty_level, &here)?,
                tracking_difficulty: difficulty(l.tracking_difficulty_level, &here)?,
            });
        }
    }
    Ok(out)
}

fn stats(s: &proto::Stats, at: &Location) -> Result<FrameStats> {
    let at = at.clone().column("context.stats");
    let counts = |v: &[proto::ObjectCount]| {
        v.iter().map(|c| Ok((box_type(c.r#type, &at)?, c.count.unwrap_or(0)))).collect::<Result<Vec<_>>>()
    };
    Ok(FrameStats {
        time_of_day: s.time_of_day.clone().unwrap_or_default(),
        location: s.location.clone().unwrap_or_default(),
        weather: s.weather.clone().unwrap_or_default(),
        lidar_object_counts: counts(&s.laser_object_counts)?,
        camera_object_counts: counts(&s.camera_object_counts)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> proto::Transform {
        proto::Transform { transform: vec![1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1.] }
    }

    fn frame() -> proto::Frame {
        let label = |id: &str| proto::Label {
            r#box: Some(proto::LabelBox {
                center_x: Some(10.0),
                length: Some(4.0),
                width: Some(2.0),
                ..Default::default()
            }),
            r#type: Some(1),
            id: Some(id.into()),
            ..Default::default()
        };
        proto::Frame {
            context: Some(proto::Context {
                name: Some("seg".into()),
                camera_calibrations: vec![proto::CameraCalibration {
                    name: Some(2),
                    intrinsic: vec![1000.0, 1000.0, 960.0, 640.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                    extrinsic: Some(ident()),
                    width: Some(1920),
                    height: Some(1280),
                    rolling_shutter_direction: Some(2),
                }],
                laser_calibrations: vec![proto::LaserCalibration {
                    name: Some(1),
                    beam_inclinations: vec![-0.3, 0.0, 0.1],
                    extrinsic: Some(ident()),
                    ..Default::default()
                }],
                stats: None,
            }),
            timestamp_micros: Some(5),
            // An empty laser entry, as in the public sample: skipped, not an error.
            lasers: vec![proto::Laser { name: None, ..Default::default() }],
            pose: Some(ident()),
            laser_labels: vec![label("abc")],
            projected_lidar_labels: vec![proto::CameraLabels { name: Some(2), labels: vec![label("abc_FRONT_LEFT")] }],
            ..Default::default()
        }
    }

    #[test]
    fn converts_and_strips_projected_suffix() {
        let f = decode_frame(&frame().encode_to_vec(), &Location::file("f")).expect("valid");
        assert_eq!(f.segment, "seg");
        assert_eq!(f.projected_lidar_boxes[0].object_id, f.lidar_boxes[0].object_id);
        assert_eq!(f.projected_lidar_boxes[0].bbox.size_x, 4.0);
        let top = f.laser(LaserName::Top).and_then(|l| l.calibration.as_ref()).expect("TOP calibration");
        assert_eq!((top.beam_inclination.min, top.beam_inclination.max), (-0.3, 0.1));
        assert!(f.cameras.is_empty(), "no images in this frame");
    }

    #[test]
    fn unknown_names_are_errors() {
        let mut m = frame();
        if let Some(c) = m.context.as_mut() {
            c.laser_calibrations[0].name = Some(9);
        }
        let msg = convert_frame(&m, &Location::file("f.tfrecord").record(0)).expect_err("bad laser").to_string();
        assert!(
            msg.contains("f.tfrecord") && msg.contains("record 0") && msg.contains("1=TOP") && msg.contains("found 9"),
            "{msg}"
        );

        let mut m = frame();
        m.projected_lidar_labels[0].name = Some(0);
        let msg = convert_frame(&m, &Location::file("f")).expect_err("bad camera").to_string();
        assert!(msg.contains("camera name"), "{msg}");
    }
}
