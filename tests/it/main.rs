//! The one integration-test crate (one binary links faster than many); each module is one area.

// Errors carry their full location; see src/lib.rs.
#![allow(clippy::result_large_err)]

mod camera_det;
mod camera_seg;
mod cli;
mod common;
mod formats;
mod fuzz_regressions;
mod fuzz_smoke;
mod geom;
mod geom_pvps;
mod hostile;
mod image_encoder;
mod motion_dataset;
mod motion_metrics;
mod motion_tokens;
mod motion_transformer;
mod quant;
mod report;
mod scene_tokens;
mod shards;
mod sim_camera;
mod sim_generate;
mod sim_kinematics;
mod sim_lidar;
mod sim_world;
mod sparse;
mod stream;
mod v2_parquet;
mod viz;
mod womd_sensors;
