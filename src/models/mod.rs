//! Models: motion prediction (the predictor contract and the baselines), the LiDAR encoder
//! (sparse-conv MinkUNet), the image encoder (ONNX) and the scene tokens (MoST elements).

pub mod det;
pub mod image_encoder;
pub mod lidar_seg;
pub mod motion;
pub mod nn;
pub mod scene_tokens;
pub mod seg;
