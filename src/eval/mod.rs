//! Metrics and evaluation: WOMD motion metrics, LiDAR segmentation mIoU, camera segmentation
//! mIoU, 2-D and 3-D detection AP, kinematic realism of tracks, the evaluation runner, its outputs
//! and reports.

pub mod assignment;
pub mod attention;
pub mod bootstrap;
pub mod camera_det;
pub mod camera_seg;
pub mod detection2d;
pub mod detection3d;
pub mod kinematics;
pub mod lidar_seg;
pub mod motion;
pub mod outputs;
pub mod partial;
pub mod report;
pub mod run;
pub mod runner;
pub mod segmentation;
pub mod subset;
