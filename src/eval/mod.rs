//! Metrics and evaluation: WOMD motion metrics, segmentation mIoU, 2-D and 3-D detection AP,
//! latency per stage, the evaluation runner, its outputs and reports.

pub mod assignment;
pub mod detection2d;
pub mod detection3d;
pub mod lidar_seg;
pub mod motion;
pub mod outputs;
pub mod report;
pub mod runner;
pub mod segmentation;
pub mod trajectory_type;
