//! The stages that exist: points, the LiDAR encoder, the image encoder, the scene tokens.

mod image;
mod lidar;
mod points;
mod tokens;

pub use image::ImageStage;
pub use lidar::LidarStage;
pub use points::PointsStage;
pub use tokens::TokensStage;
