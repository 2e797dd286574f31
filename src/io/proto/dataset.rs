//! The v1 perception `Frame` (`dataset.proto`), the subset scenetok reads. Range images
//! (`Frame.lasers[].ri_return*`) are not declared: scenetok reads LiDAR from v2 parquet.

use super::label::Label;

/// A 4×4 row-major transform (16 values).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Transform {
    #[prost(double, repeated, packed = "false", tag = "1")]
    pub transform: Vec<f64>,
}

/// Ego velocity at an image's pose timestamp (global frame).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Velocity {
    #[prost(float, optional, tag = "1")]
    pub v_x: Option<f32>,
    #[prost(float, optional, tag = "2")]
    pub v_y: Option<f32>,
    #[prost(float, optional, tag = "3")]
    pub v_z: Option<f32>,
    #[prost(double, optional, tag = "4")]
    pub w_x: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub w_y: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub w_z: Option<f64>,
}

/// Intrinsics, extrinsic and image size of one camera.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CameraCalibration {
    /// `CameraName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub name: Option<i32>,
    /// `[f_u, f_v, c_u, c_v, k1, k2, p1, p2, k3]`.
    #[prost(double, repeated, packed = "false", tag = "2")]
    pub intrinsic: Vec<f64>,
    /// Camera → vehicle.
    #[prost(message, optional, tag = "3")]
    pub extrinsic: Option<Transform>,
    #[prost(int32, optional, tag = "4")]
    pub width: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub height: Option<i32>,
    /// `CameraCalibration.RollingShutterReadOutDirection`.
    #[prost(int32, optional, tag = "6")]
    pub rolling_shutter_direction: Option<i32>,
}

/// Beam inclinations and extrinsic of one LiDAR.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LaserCalibration {
    /// `LaserName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub name: Option<i32>,
    /// Non-empty when the beams are not uniformly spaced (TOP).
    #[prost(double, repeated, packed = "false", tag = "2")]
    pub beam_inclinations: Vec<f64>,
    #[prost(double, optional, tag = "3")]
    pub beam_inclination_min: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub beam_inclination_max: Option<f64>,
    /// LiDAR → vehicle.
    #[prost(message, optional, tag = "5")]
    pub extrinsic: Option<Transform>,
}

/// `Context.Stats.ObjectCount`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ObjectCount {
    /// `Label.Type`.
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub count: Option<i32>,
}

/// `Context.Stats`: per-segment conditions and object counts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stats {
    #[prost(message, repeated, tag = "1")]
    pub laser_object_counts: Vec<ObjectCount>,
    #[prost(string, optional, tag = "2")]
    pub time_of_day: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub location: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub weather: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub camera_object_counts: Vec<ObjectCount>,
}

/// What is shared by every frame of a segment.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Context {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub camera_calibrations: Vec<CameraCalibration>,
    #[prost(message, repeated, tag = "3")]
    pub laser_calibrations: Vec<LaserCalibration>,
    #[prost(message, optional, tag = "4")]
    pub stats: Option<Stats>,
}

/// `CameraSegmentationLabel.InstanceIDToGlobalIDMapping`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct InstanceIdToGlobalIdMapping {
    #[prost(int32, optional, tag = "1")]
    pub local_instance_id: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub global_instance_id: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub is_tracked: Option<bool>,
}

/// Panoptic segmentation of one camera image.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CameraSegmentationLabel {
    #[prost(int32, optional, tag = "1")]
    pub panoptic_label_divisor: Option<i32>,
    /// uint16 PNG of `class * divisor + instance`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub panoptic_label: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "3")]
    pub instance_id_to_global_id_mapping: Vec<InstanceIdToGlobalIdMapping>,
    #[prost(string, optional, tag = "4")]
    pub sequence_id: Option<String>,
    /// uint8 PNG: how many cameras see each pixel (for wSTQ).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub num_cameras_covered: Option<Vec<u8>>,
}

/// One camera's JPEG with its pose and shutter timing.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CameraImage {
    /// `CameraName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub name: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub image: Option<Vec<u8>>,
    /// Vehicle → world at `pose_timestamp`.
    #[prost(message, optional, tag = "3")]
    pub pose: Option<Transform>,
    #[prost(message, optional, tag = "4")]
    pub velocity: Option<Velocity>,
    #[prost(double, optional, tag = "5")]
    pub pose_timestamp: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub shutter: Option<f64>,
    #[prost(double, optional, tag = "7")]
    pub camera_trigger_time: Option<f64>,
    #[prost(double, optional, tag = "8")]
    pub camera_readout_done_time: Option<f64>,
    #[prost(message, optional, tag = "10")]
    pub camera_segmentation_label: Option<CameraSegmentationLabel>,
}

/// The labels of one camera.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CameraLabels {
    /// `CameraName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub name: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub labels: Vec<Label>,
}

/// One LiDAR's entry in a frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Laser {
    /// `LaserName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub name: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub ri_return1: Option<RangeImage>,
    #[prost(message, optional, tag = "3")]
    pub ri_return2: Option<RangeImage>,
}

/// One return of a LiDAR: zlib-compressed, serialized `MatrixFloat` / `MatrixInt32` images
/// (the deprecated uncompressed `range_image` (1) and the flow image (5) are not read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeImage {
    /// `[H, W, 4]` MatrixFloat: range, intensity, elongation, no-label-zone.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub range_image_compressed: Option<Vec<u8>>,
    /// `[H, W, 6]` MatrixInt32: (camera, x, y) of the first two cameras.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub camera_projection_compressed: Option<Vec<u8>>,
    /// `[H, W, 6]` MatrixFloat: roll, pitch, yaw, x, y, z per pixel (first return only).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub range_image_pose_compressed: Option<Vec<u8>>,
    /// `[H, W, 2]` MatrixInt32: instance id, semantic class (TOP only).
    #[prost(bytes = "vec", optional, tag = "6")]
    pub segmentation_label_compressed: Option<Vec<u8>>,
}

/// `MatrixShape`: dims, outermost first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MatrixShape {
    #[prost(int32, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i32>,
}

/// Row-major float matrix.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MatrixFloat {
    #[prost(float, repeated, tag = "1")]
    pub data: Vec<f32>,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<MatrixShape>,
}

/// Row-major int32 matrix.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MatrixInt32 {
    #[prost(int32, repeated, tag = "1")]
    pub data: Vec<i32>,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<MatrixShape>,
}

/// One v1 frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(message, optional, tag = "1")]
    pub context: Option<Context>,
    #[prost(int64, optional, tag = "2")]
    pub timestamp_micros: Option<i64>,
    /// Vehicle → world; the frame of the 3-D laser labels.
    #[prost(message, optional, tag = "3")]
    pub pose: Option<Transform>,
    #[prost(message, repeated, tag = "4")]
    pub images: Vec<CameraImage>,
    #[prost(message, repeated, tag = "5")]
    pub lasers: Vec<Laser>,
    #[prost(message, repeated, tag = "6")]
    pub laser_labels: Vec<Label>,
    #[prost(message, repeated, tag = "8")]
    pub camera_labels: Vec<CameraLabels>,
    #[prost(message, repeated, tag = "9")]
    pub projected_lidar_labels: Vec<CameraLabels>,
}
