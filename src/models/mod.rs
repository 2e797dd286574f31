//! Models: motion prediction (the predictor contract and the baselines), the LiDAR encoder
//! (sparse-conv MinkUNet) and the image encoder (ONNX).

pub mod image_encoder;
pub mod lidar_seg;
pub mod motion;
