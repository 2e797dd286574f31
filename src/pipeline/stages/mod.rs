//! The stages that exist: points, the LiDAR encoder, the image encoder, the scene tokens, the
//! camera-segmentation head (SparseRefine), the camera-detection head (SparseViT).

mod camera_det;
mod camera_seg;
mod image;
mod lidar;
mod points;
mod tokens;

pub use camera_det::CameraDetStage;
pub use camera_seg::CameraSegStage;
pub use image::ImageStage;
pub use lidar::LidarStage;
pub use points::PointsStage;
pub use tokens::TokensStage;
