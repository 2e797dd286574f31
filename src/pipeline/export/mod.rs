//! What the pipeline writes for other tools: per-point image features (`scenetok
//! features`), the LiDAR trainer's input (`scenetok sparse export`) and the motion
//! transformer's training shards (`scenetok dataset motion`).

pub mod features;
pub mod lidar_points;
pub mod motion_dataset;

pub use features::{ExportOptions, ExportSummary, check_outputs, export_features};
pub use lidar_points::export_lidar_points;
