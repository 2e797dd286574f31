//! What the pipeline writes for other tools: per-point image features (`scenetok
//! features`) and the LiDAR trainer's input (`scenetok sparse export`).

pub mod features;
pub mod lidar_points;

pub use features::{ExportOptions, ExportSummary, check_outputs, export_features};
pub use lidar_points::export_lidar_points;
