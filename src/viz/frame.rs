//! Logging perception frames: the transform tree, point clouds, range images, cameras with
//! their pinholes, panoptic labels, 2-D and 3-D boxes and the tracks of labelled objects.

use std::collections::{BTreeMap, HashMap, VecDeque};

use nalgebra::{Matrix3, Rotation3, UnitQuaternion};
use rayon::prelude::*;
use rerun::RecordingStream;

use super::classes;
use super::paths;
use super::{VizError, VizOptions};
use crate::geom::range_image::{INTENSITY, RANGE};
use crate::geom::{PointCloud, gather_pixels, range_image_to_points};
use crate::scene::{
    BoxType, CameraBox, CameraCalibration, CameraFrame, Frame, LaserFrame, LaserName, LidarBox, LidarCalibration,
    Transform,
};

/// The timeline of perception recordings: the frame timestamp.
pub const TIMELINE: &str = "timestamp";
/// A second timeline: the frame's index in the recording.
pub const FRAME_TIMELINE: &str = "frame";

/// How points are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PointColors {
    /// Turbo colormap of the return intensity; the segmentation class is still attached
    /// (hover a point to see it) where the frame has LiDAR segmentation.
    #[default]
    Intensity,
    /// The 23 LiDAR segmentation classes through the `AnnotationContext` (frames without
    /// segmentation fall back to intensity).
    Class,
}

/// What one logged frame held (for summaries and tests).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrameCounts {
    pub points: BTreeMap<String, usize>,
    pub cameras: usize,
    pub panoptic_labels: usize,
    pub lidar_boxes: usize,
    pub camera_boxes: usize,
    pub range_images: usize,
    /// Scene elements logged (with [`VizOptions::tokens`]).
    pub elements: usize,
}

/// The viewer decodes the JPEG, not scenetok: its header is checked here (cheap) so that a
/// header claiming an absurd size, or another size than the camera's calibration, is an
/// error naming the frame and camera instead of a viewer out of memory or a misplaced image.
fn check_jpeg(frame: &Frame, camera: &CameraFrame) -> Result<(), VizError> {
    let at = crate::Location::default().frame(frame.timestamp_micros).detail(format!("camera {}", camera.camera));
    let (w, h) = crate::io::image::jpeg_dimensions(&camera.jpeg, &at)?;
    if let Some(c) = &camera.calibration
        && (w, h) != (c.width, c.height)
    {
        return Err(crate::Error::invalid(
            at,
            format!("an image of the calibrated size {}x{}", c.width, c.height),
            format!("a {w}x{h} image"),
        )
        .into());
    }
    Ok(())
}

/// Logs frames one at a time into a recording; keeps only what spans frames (which
/// calibrations were logged, the recent positions of each track), never the frames.
pub struct FrameLogger {
    opts: VizOptions,
    lut: [[u8; 3]; 256],
    laser_calibrations: HashMap<LaserName, LidarCalibration>,
    camera_calibrations: HashMap<crate::scene::CameraName, CameraCalibration>,
    tracks: HashMap<String, (BoxType, VecDeque<[f32; 3]>)>,
    frames_logged: i64,
}

impl FrameLogger {
    pub fn new(opts: &VizOptions) -> Self {
        FrameLogger {
            opts: opts.clone(),
            lut: classes::turbo_lut(),
            laser_calibrations: HashMap::new(),
            camera_calibrations: HashMap::new(),
            tracks: HashMap::new(),
            frames_logged: 0,
        }
    }

    /// Logs what holds for the whole recording: the world's axes (z up) and the class
    /// contexts. Call once before the first frame.
    pub fn log_static(&self, rec: &RecordingStream) -> Result<(), VizError> {
        rec.log_static(paths::WORLD, &rerun::ViewCoordinates::RIGHT_HAND_Z_UP())?;
        rec.log_static(format!("{}/points", paths::EGO), &classes::lidar_classes())?;
        rec.log_static(paths::BOXES, &classes::box_types())?;
        rec.log_static(paths::DETECTIONS, &classes::box_types())?;
        rec.log_static(paths::TRACKS, &classes::box_types())?;
        Ok(())
    }

    /// Logs one frame at its timestamp. Lasers and cameras are converted and serialised in
    /// parallel (rerun's recording stream takes logs from any thread).
    pub fn log_frame(&mut self, rec: &RecordingStream, frame: &Frame) -> Result<FrameCounts, VizError> {
        rec.set_time_sequence(FRAME_TIMELINE, self.frames_logged);
        rec.set_timestamp_nanos_since_epoch(TIMELINE, frame.timestamp_micros.saturating_mul(1000));
        self.frames_logged += 1;

        let pose = frame.vehicle_pose.unwrap_or_else(Transform::identity);
        rec.log(paths::EGO, &transform(&pose))?;
        for laser in &frame.lasers {
            self.log_laser_calibration(rec, frame, laser)?;
        }
        for camera in &frame.cameras {
            self.log_camera_calibration(rec, camera)?;
        }

        let this = &*self;
        // Time is thread-local in rerun: each worker takes the frame's time point.
        let time = rec.now();
        let (lasers, cameras) = rayon::join(
            || {
                frame
                    .lasers
                    .par_iter()
                    .map(|l| {
                        rec.set_timepoint(time.clone());
                        this.log_laser(rec, frame, l)
                    })
                    .collect::<Result<Vec<_>, VizError>>()
            },
            || {
                if !this.opts.cameras {
                    return Ok(Vec::new());
                }
                frame
                    .cameras
                    .par_iter()
                    .map(|c| {
                        rec.set_timepoint(time.clone());
                        this.log_camera(rec, frame, c)
                    })
                    .collect::<Result<Vec<_>, VizError>>()
            },
        );
        let mut counts = FrameCounts::default();
        for c in lasers?.into_iter().chain(cameras?) {
            counts.points.extend(c.points);
            counts.cameras += c.cameras;
            counts.panoptic_labels += c.panoptic_labels;
            counts.camera_boxes += c.camera_boxes;
            counts.range_images += c.range_images;
        }
        self.log_boxes(rec, &frame.lidar_boxes)?;
        counts.lidar_boxes = frame.lidar_boxes.len();
        if self.opts.tokens {
            counts.elements = super::elements::log_frame_elements(rec, frame)?;
        }
        self.log_tracks(rec, &pose, &frame.lidar_boxes)?;

        for (name, n) in &counts.points {
            rec.log(format!("{}/points/{name}", paths::METRICS), &rerun::Scalars::single(*n as f64))?;
        }
        rec.log(format!("{}/labels/boxes_3d", paths::METRICS), &rerun::Scalars::single(counts.lidar_boxes as f64))?;
        Ok(counts)
    }

    /// The laser's extrinsic, static, whenever it differs from the one logged before.
    fn log_laser_calibration(
        &mut self,
        rec: &RecordingStream,
        frame: &Frame,
        laser: &LaserFrame,
    ) -> Result<(), VizError> {
        let Some(calib) = &laser.calibration else {
            if laser.return1.is_some() {
                tracing::warn!(
                    "frame {}: laser {} has a range image but no calibration",
                    frame.timestamp_micros,
                    laser.laser
                );
            }
            return Ok(());
        };
        if self.laser_calibrations.get(&laser.laser) != Some(calib) {
            rec.log_static(paths::laser(laser.laser), &transform(&calib.extrinsic))?;
            self.laser_calibrations.insert(laser.laser, calib.clone());
        }
        Ok(())
    }

    /// The camera's extrinsic and pinhole (and the class contexts of its 2-D entities),
    /// static, whenever the calibration differs from the one logged before.
    fn log_camera_calibration(&mut self, rec: &RecordingStream, camera: &CameraFrame) -> Result<(), VizError> {
        let path = paths::camera(camera.camera);
        if let Some(calib) = &camera.calibration
            && self.camera_calibrations.get(&camera.camera) != Some(calib)
        {
            rec.log_static(path.as_str(), &transform(&calib.extrinsic))?;
            rec.log_static(path.as_str(), &pinhole(calib))?;
            rec.log_static(format!("{path}/segmentation"), &classes::camera_classes())?;
            rec.log_static(format!("{path}/boxes"), &classes::box_types())?;
            rec.log_static(format!("{path}/projected_boxes"), &classes::box_types())?;
            self.camera_calibrations.insert(camera.camera, calib.clone());
        }
        Ok(())
    }

    fn log_laser(&self, rec: &RecordingStream, frame: &Frame, laser: &LaserFrame) -> Result<FrameCounts, VizError> {
        let mut counts = FrameCounts::default();
        let Some(calib) = &laser.calibration else { return Ok(counts) };
        let returns = [(&laser.return1, &laser.segmentation1, false), (&laser.return2, &laser.segmentation2, true)];
        for (ri, seg, second) in returns {
            if second && !self.opts.second_returns {
                continue;
            }
            let Some(ri) = ri else { continue };
            if ri.channels <= INTENSITY {
                return Err(VizError::Invalid(format!(
                    "frame {}: {} range image has {} channel(s); expected range and intensity",
                    frame.timestamp_micros, laser.laser, ri.channels
                )));
            }
            let cloud = range_image_to_points(ri, calib, laser.pose.as_ref(), frame.vehicle_pose.as_ref())?;
            let classes = match seg {
                Some(seg) if seg.channels >= 2 => Some(gather_pixels(seg, &cloud)?),
                _ => None,
            };
            rec.log(paths::points(laser.laser, second), &self.points(&cloud, classes.as_deref()))?;
            counts
                .points
                .insert(format!("{}{}", laser.laser.name(), if second { "_return2" } else { "" }), cloud.len());
            if !second && self.opts.range_images {
                rec.log(paths::range_image(laser.laser), &depth_image(ri))?;
                counts.range_images += 1;
            }
        }
        Ok(counts)
    }

    /// Points with intensity colours or class ids; `seg` is the gathered `[N, 2]`
    /// (instance, class) segmentation. The arrays are built directly in Arrow (one copy of
    /// the coordinates) rather than through rerun's per-element `Position3D` serialisation,
    /// which goes through an iterator of optional values per point.
    fn points(&self, cloud: &PointCloud, seg: Option<&[i32]>) -> rerun::Points3D {
        use arrow::array::{FixedSizeListArray, Float32Array, UInt16Array, UInt32Array};
        use std::sync::Arc;
        let item = Arc::new(arrow::datatypes::Field::new("item", arrow::datatypes::DataType::Float32, false));
        let coords = Float32Array::from(cloud.xyz.as_flattened().to_vec());
        let positions = FixedSizeListArray::new(item, 3, Arc::new(coords), None);
        let mut points = rerun::Points3D {
            positions: Some(rerun::SerializedComponentBatch::new(
                Arc::new(positions),
                rerun::Points3D::descriptor_positions(),
            )),
            ..Default::default()
        }
        .with_radii([rerun::Radius::new_ui_points(self.opts.point_radius)]);
        if let Some(seg) = seg {
            let ids: Vec<u16> = seg.chunks_exact(2).map(|p| p[1].clamp(0, u16::MAX as i32) as u16).collect();
            points.class_ids = Some(rerun::SerializedComponentBatch::new(
                Arc::new(UInt16Array::from(ids)),
                rerun::Points3D::descriptor_class_ids(),
            ));
        }
        if seg.is_none() || self.opts.point_colors == PointColors::Intensity {
            let c = cloud.channels;
            let colors: Vec<u32> = cloud
                .features
                .chunks_exact(c)
                .map(|f| {
                    // Waymo intensities are mostly in [0, 1] with retro-reflectors far
                    // above: x/(x+0.25) keeps both readable.
                    let i = f[INTENSITY].max(0.0);
                    let [r, g, b] = self.lut[(i / (i + 0.25) * 255.0) as usize];
                    u32::from_be_bytes([r, g, b, 255])
                })
                .collect();
            points.colors = Some(rerun::SerializedComponentBatch::new(
                Arc::new(UInt32Array::from(colors)),
                rerun::Points3D::descriptor_colors(),
            ));
        }
        points
    }

    fn log_camera(&self, rec: &RecordingStream, frame: &Frame, camera: &CameraFrame) -> Result<FrameCounts, VizError> {
        let mut counts = FrameCounts::default();
        let path = paths::camera(camera.camera);
        if !camera.jpeg.is_empty() {
            check_jpeg(frame, camera)?;
            rec.log(
                format!("{path}/image"),
                &rerun::EncodedImage::new(camera.jpeg.clone()).with_media_type(rerun::MediaType::JPEG),
            )?;
            counts.cameras += 1;
        }
        if self.opts.segmentation
            && let Some(label) = &camera.segmentation
        {
            if label.divisor <= 0 {
                return Err(VizError::Invalid(format!(
                    "frame {}: {} panoptic label divisor {}; expected > 0",
                    frame.timestamp_micros, camera.camera, label.divisor
                )));
            }
            let n = label.width as usize * label.height as usize;
            if label.values.len() != n {
                return Err(VizError::Invalid(format!(
                    "frame {}: {} panoptic label has {} values; expected {}×{} = {n}",
                    frame.timestamp_micros,
                    camera.camera,
                    label.values.len(),
                    label.width,
                    label.height
                )));
            }
            let buffer = arrow::buffer::Buffer::from_vec(panoptic_classes(&label.values, label.divisor as u32));
            rec.log(
                format!("{path}/segmentation"),
                &rerun::SegmentationImage::new(
                    rerun::datatypes::Blob::from(buffer),
                    rerun::datatypes::ImageFormat::segmentation(
                        [label.width, label.height],
                        rerun::ChannelDatatype::U16,
                    ),
                )
                .with_opacity(0.45)
                .with_draw_order(1.0),
            )?;
            counts.panoptic_labels += 1;
        }
        let own = |b: &&CameraBox| b.camera == camera.camera;
        let boxes: Vec<&CameraBox> = frame.camera_boxes.iter().filter(own).collect();
        rec.log(format!("{path}/boxes"), &boxes_2d(&boxes))?;
        counts.camera_boxes += boxes.len();
        let projected: Vec<&CameraBox> = frame.projected_lidar_boxes.iter().filter(own).collect();
        rec.log(format!("{path}/projected_boxes"), &boxes_2d(&projected))?;
        Ok(counts)
    }

    fn log_boxes(&self, rec: &RecordingStream, boxes: &[LidarBox]) -> Result<(), VizError> {
        rec.log(paths::BOXES, &boxes_3d(boxes, None))?;
        Ok(())
    }

    /// The last `track_history` positions of every labelled object, world frame; objects
    /// not seen in this frame are dropped (so memory stays bounded by the objects in view).
    fn log_tracks(&mut self, rec: &RecordingStream, pose: &Transform, boxes: &[LidarBox]) -> Result<(), VizError> {
        let keep = self.opts.track_history;
        if keep == 0 {
            return Ok(());
        }
        let mut seen = HashMap::with_capacity(boxes.len());
        for b in boxes {
            let c = pose.apply(&b.bbox.center);
            let (kind, mut trail) = self.tracks.remove(&b.object_id).unwrap_or((b.kind, VecDeque::new()));
            trail.push_back([c.x as f32, c.y as f32, c.z as f32]);
            while trail.len() > keep {
                trail.pop_front();
            }
            seen.insert(b.object_id.clone(), (kind, trail));
        }
        self.tracks = seen;
        let mut ids: Vec<&String> = self.tracks.keys().filter(|id| self.tracks[*id].1.len() >= 2).collect();
        ids.sort();
        let strips = ids.iter().map(|id| self.tracks[*id].1.iter().copied().collect::<Vec<_>>());
        let class_ids = ids.iter().map(|id| rerun::components::ClassId::from(self.tracks[*id].0.value() as u16));
        rec.log(
            paths::TRACKS,
            &rerun::LineStrips3D::new(strips).with_class_ids(class_ids).with_radii([rerun::Radius::new_ui_points(1.5)]),
        )?;
        Ok(())
    }
}

/// The semantic class of each panoptic value `class * divisor + instance`. A u32 division
/// per pixel costs ~25 ms on a 1920×1280 label; multiplying by the rounded-up reciprocal
/// `⌈2³²/d⌉` and shifting is exact for 16-bit values and any `d < 2¹⁶` (the rounding error,
/// below `v/2³² < 2⁻¹⁶`, never reaches the next multiple of `1/d`) and vectorises.
pub fn panoptic_classes(values: &[u16], divisor: u32) -> Vec<u16> {
    if divisor >= 1 << 16 {
        return vec![0; values.len()];
    }
    let m = (1u64 << 32).div_ceil(divisor.max(1) as u64);
    values.iter().map(|&v| ((v as u64 * m) >> 32) as u16).collect()
}

/// A rigid Waymo transform (row-major 4×4, child → parent) as a rerun `Transform3D`.
pub fn transform(t: &Transform) -> rerun::Transform3D {
    let tr = t.translation();
    rerun::Transform3D::from_translation_rotation(
        [tr.x as f32, tr.y as f32, tr.z as f32],
        rerun::Quaternion::from_xyzw(rotation_xyzw(t)),
    )
}

/// The rotation of a transform as a unit quaternion `[x, y, z, w]`. `from_matrix` finds the
/// nearest rotation, so a slightly non-orthonormal calibration (float32 storage) still
/// gives a proper quaternion.
pub fn rotation_xyzw(t: &Transform) -> [f32; 4] {
    let r: Matrix3<f64> = t.matrix().fixed_view::<3, 3>(0, 0).into_owned();
    let q = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix(&r));
    [q.i as f32, q.j as f32, q.k as f32, q.w as f32]
}

/// The camera's intrinsics as a rerun `Pinhole`. Waymo's camera frame is x forward, y left,
/// z up (docs/geometry.md#frames-and-conventions): `u = -y/x·f_u + c_u`, `v = -z/x·f_v + c_v`, which is
/// exactly rerun's pinhole with `camera_xyz = FLU`. Lens distortion is not modelled by
/// rerun; Waymo's is small (projected boxes move by a few pixels at the image corners).
pub fn pinhole(calib: &CameraCalibration) -> rerun::Pinhole {
    let i = &calib.intrinsic;
    rerun::Pinhole::from_focal_length_and_resolution(
        [i.f_u as f32, i.f_v as f32],
        [calib.width as f32, calib.height as f32],
    )
    .with_principal_point([i.c_u as f32, i.c_v as f32])
    .with_camera_xyz(rerun::components::ViewCoordinates::FLU)
    .with_image_plane_distance(2.0)
}

/// The range channel as a depth image in metres (no return = 0, which rerun leaves empty).
pub fn depth_image(ri: &crate::scene::RangeImage<f32>) -> rerun::DepthImage {
    let range: Vec<f32> = ri.values.chunks_exact(ri.channels.max(1)).map(|px| px[RANGE].max(0.0)).collect();
    rerun::DepthImage::new(
        rerun::datatypes::Blob::from(arrow::buffer::Buffer::from_vec(range)),
        rerun::datatypes::ImageFormat::depth([ri.width as u32, ri.height as u32], rerun::ChannelDatatype::F32),
    )
    .with_meter(1.0)
    .with_colormap(rerun::components::Colormap::Turbo)
}

fn short_id(id: &str) -> &str {
    // Waymo ids are 22-character base64; 6 characters tell tracks apart on screen.
    id.get(..6).unwrap_or(id)
}

/// 3-D labels (or detections with `scores`): class colour, "TYPE id" labels.
pub fn boxes_3d(boxes: &[LidarBox], scores: Option<&[f32]>) -> rerun::Boxes3D {
    let labels = boxes.iter().enumerate().map(|(k, b)| match scores {
        Some(s) => format!("{} {:.2}", b.kind.name(), s.get(k).copied().unwrap_or(f32::NAN)),
        None => format!("{} {}", b.kind.name(), short_id(&b.object_id)),
    });
    rerun::Boxes3D::from_centers_and_half_sizes(
        boxes.iter().map(|b| b.bbox.center.map(|v| v as f32).into()).collect::<Vec<[f32; 3]>>(),
        boxes.iter().map(|b| (b.bbox.size / 2.0).map(|v| v as f32).into()).collect::<Vec<[f32; 3]>>(),
    )
    .with_quaternions(boxes.iter().map(|b| {
        let (s, c) = (b.bbox.heading / 2.0).sin_cos();
        rerun::Quaternion::from_xyzw([0.0, 0.0, s as f32, c as f32])
    }))
    .with_class_ids(boxes.iter().map(|b| rerun::components::ClassId::from(b.kind.value() as u16)))
    .with_labels(labels)
}

fn boxes_2d(boxes: &[&CameraBox]) -> rerun::Boxes2D {
    rerun::Boxes2D::from_centers_and_sizes(
        boxes.iter().map(|b| [b.bbox.center_x as f32, b.bbox.center_y as f32]),
        boxes.iter().map(|b| [b.bbox.size_x as f32, b.bbox.size_y as f32]),
    )
    .with_class_ids(boxes.iter().map(|b| rerun::components::ClassId::from(b.kind.value() as u16)))
    .with_labels(boxes.iter().map(|b| format!("{} {}", b.kind.name(), short_id(&b.object_id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panoptic_classes_match_integer_division() {
        let values: Vec<u16> = (0..=u16::MAX).collect();
        for d in [1u32, 3, 7, 256, 1000, 4099, 65535] {
            let got = panoptic_classes(&values, d);
            assert!(values.iter().zip(&got).all(|(v, c)| (*v as u32 / d) as u16 == *c), "divisor {d}");
        }
        assert!(panoptic_classes(&[5, 70000u32 as u16], 1 << 16).iter().all(|c| *c == 0));
    }

    #[test]
    fn transform_quaternion_reproduces_the_rotation() {
        let t = crate::geom::transform_from_rpy_xyz(0.1, -0.2, 2.5, 1.0, 2.0, 3.0);
        let [x, y, z, w] = rotation_xyzw(&t).map(|v| v as f64);
        let q = UnitQuaternion::from_quaternion(nalgebra::Quaternion::new(w, x, y, z));
        for v in [nalgebra::Vector3::x(), nalgebra::Vector3::y(), nalgebra::Vector3::new(0.3, -1.0, 2.0)] {
            let expected = t.apply(&v) - t.translation();
            assert!((q * v - expected).norm() < 1e-6, "{v:?}");
        }
    }

    /// rerun projects a pinhole's camera-frame point after turning `camera_xyz` into its
    /// right-down-forward frame: with FLU that is (right, down, fwd) = (-y, -z, x), which must
    /// equal Waymo's undistorted projection `u = -y/x·f_u + c_u`, `v = -z/x·f_v + c_v`.
    #[test]
    fn flu_pinhole_matches_the_waymo_camera_model() {
        use crate::scene::{CameraName, Intrinsics, RollingShutterDirection};
        let calib = CameraCalibration {
            camera: CameraName::Front,
            intrinsic: Intrinsics {
                f_u: 2000.0,
                f_v: 2010.0,
                c_u: 960.0,
                c_v: 640.0,
                k1: 0.0,
                k2: 0.0,
                p1: 0.0,
                p2: 0.0,
                k3: 0.0,
            },
            extrinsic: Transform::identity(),
            width: 1920,
            height: 1280,
            rolling_shutter: RollingShutterDirection::GlobalShutter,
        };
        let flu = rerun::components::ViewCoordinates::FLU;
        let axis = |a: Option<rerun::external::re_sdk_types::view_coordinates::SignedAxis3>,
                    p: &nalgebra::Vector3<f64>| {
            use rerun::external::re_sdk_types::view_coordinates::{Axis3, Sign};
            let a = a.expect("a complete basis");
            let v = match a.axis {
                Axis3::X => p.x,
                Axis3::Y => p.y,
                Axis3::Z => p.z,
            };
            if a.sign == Sign::Negative { -v } else { v }
        };
        let model = crate::geom::CameraModel::new(&calib);
        for p in [nalgebra::Vector3::new(10.0, 2.0, -1.0), nalgebra::Vector3::new(25.0, -7.0, 3.0)] {
            // "down" is minus "up".
            let (right, down, fwd) = (axis(flu.right(), &p), -axis(flu.up(), &p), axis(flu.forward(), &p));
            let u = calib.intrinsic.f_u * right / fwd + calib.intrinsic.c_u;
            let v = calib.intrinsic.f_v * down / fwd + calib.intrinsic.c_v;
            let w = model.project_camera_point(&p).expect("in front");
            assert!(
                (u - w.u).abs() < 1e-9 && (v - w.v).abs() < 1e-9,
                "{p:?}: rerun ({u}, {v}) vs waymo ({}, {})",
                w.u,
                w.v
            );
        }
    }
}
