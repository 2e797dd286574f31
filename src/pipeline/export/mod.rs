//! What the pipeline writes for other tools: per-point image features (`scenetok
//! features`), the LiDAR trainer's input (`scenetok sparse export`), the motion
//! transformer's training shards (`scenetok dataset motion`) and the scene elements
//! (`scenetok tokens`).

pub mod features;
pub mod lidar_points;
pub mod motion_dataset;
pub mod tokens;

pub use features::{ExportOptions, ExportSummary, check_outputs, export_features};
pub use lidar_points::export_lidar_points;
pub use tokens::{TokenExport, TokenSummary, check_token_outputs, export_tokens, token_pipeline, token_points_path};
