//! WOMD's sensor data for the history steps (v1.2+): `compressed_lidar.proto` (delta-encoded,
//! zlib-compressed range images per laser) and `camera_tokens.proto` (VQ-GAN codebook indices
//! per camera), attached to a `Scenario` as fields 12 and 13.

use super::dataset::{LaserCalibration, Transform};

/// One return of one laser: `[H, W, 4]` range image and (return 1, TOP) `[H, W, 6]` pixel pose,
/// each a zlib-compressed [`DeltaEncodedData`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompressedRangeImage {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub range_image_delta_compressed: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub range_image_pose_delta_compressed: Option<Vec<u8>>,
}

/// Shape `[H, W, C]` and one quantization step per channel.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaMetadata {
    #[prost(int32, repeated, packed = "false", tag = "1")]
    pub shape: Vec<i32>,
    #[prost(float, repeated, packed = "false", tag = "2")]
    pub quant_precision: Vec<f32>,
}

/// A quantized image, channel-major: the run lengths of its non-zero mask (starting with a
/// run of non-zeros, possibly empty) and the differences between consecutive non-zero values.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeltaEncodedData {
    #[prost(sint64, repeated, packed = "true", tag = "1")]
    pub residual: Vec<i64>,
    #[prost(uint32, repeated, packed = "true", tag = "2")]
    pub mask: Vec<u32>,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<DeltaMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CompressedLaser {
    /// `LaserName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub name: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub ri_return1: Option<CompressedRangeImage>,
    #[prost(message, optional, tag = "3")]
    pub ri_return2: Option<CompressedRangeImage>,
}

/// The LiDAR of one history step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompressedFrameLaserData {
    #[prost(message, repeated, tag = "1")]
    pub lasers: Vec<CompressedLaser>,
    #[prost(message, repeated, tag = "2")]
    pub laser_calibrations: Vec<LaserCalibration>,
    /// The SDC's pose (vehicle → world) at the step.
    #[prost(message, optional, tag = "3")]
    pub pose: Option<Transform>,
}

/// One camera's codebook indices for one step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CameraTokens {
    /// `CameraName.Name`.
    #[prost(int32, optional, tag = "1")]
    pub camera_name: Option<i32>,
    #[prost(uint32, repeated, packed = "true", tag = "2")]
    pub tokens: Vec<u32>,
}

/// Every camera's tokens for one step.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FrameCameraTokens {
    #[prost(message, repeated, tag = "1")]
    pub camera_tokens: Vec<CameraTokens>,
}
