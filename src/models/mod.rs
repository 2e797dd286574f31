//! Models: the motion baselines and the image encoder.

pub mod baselines;
pub mod image_encoder;
pub mod lane_follower;
