//! Models. For now: the motion baselines.

pub mod baselines;
pub mod lane_follower;
pub mod lidar_seg;
