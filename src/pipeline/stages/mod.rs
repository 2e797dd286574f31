//! The stages that exist: points, the LiDAR encoder, the image encoder, the scene tokens, the
//! camera-segmentation head (SparseRefine), the camera-detection head (SparseViT), motion over
//! a stream's recent frames.

mod camera_det;
mod camera_seg;
mod image;
mod lidar;
pub mod motion;
mod points;
mod tokens;

pub use camera_det::CameraDetStage;
pub use camera_seg::CameraSegStage;
pub use image::ImageStage;
pub use lidar::LidarStage;
pub use motion::{MotionOutput, MotionStage, SegmentMaps};
pub use points::PointsStage;
pub use tokens::TokensStage;
