//! Metrics and evaluation: WOMD motion metrics, LiDAR segmentation mIoU, camera segmentation
//! mIoU, 2-D and 3-D detection AP, the evaluation runner, its outputs and reports.

pub mod assignment;
pub mod detection2d;
pub mod detection3d;
pub mod lidar_seg;
pub mod motion;
pub mod outputs;
pub mod report;
pub mod runner;
pub mod segmentation;
