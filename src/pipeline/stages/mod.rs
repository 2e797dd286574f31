//! The stages that exist: points, the LiDAR encoder, the image encoder.

mod image;
mod lidar;
mod points;

pub use image::ImageStage;
pub use lidar::LidarStage;
pub use points::PointsStage;
