//! The image foundation model through ONNX Runtime (the camera half of the scene tokens).
//!
//! * [`config`]: the model config (`data/models/*.toml`): input size policy, normalisation,
//!   channel order and layout, which outputs are feature maps (and their strides), ViT
//!   patch tokens (and their grid) or vectors.
//! * [`preprocess`]: decoded RGB → the model's input batch (bilinear resize, normalise,
//!   layout, batch padding), with each image's geometry.
//! * [`encoder`]: the ONNX Runtime session (tuned options, pre-allocated reused I/O),
//!   checked against its config at load.
//! * [`features`]: outputs as tensors with their pixel ↔ cell geometry; bilinear sampling.
//! * [`points`]: an image feature for every LiDAR point (camera chosen as Waymo's
//!   `lidar_camera_projection` does).
//! * [`frame`]: a frame's five cameras as one batch.
//! * [`huge_pages`]: transparent huge pages for the session's arena.

//!
//! The default backbone is EfficientNet-Lite0 (ImageNet), `data/models/efficientnet_lite0.*`,
//! exported by `tools/export_image_model.py`.

pub mod config;
pub mod encoder;
pub mod features;
pub mod frame;
pub mod huge_pages;
pub mod points;
pub mod preprocess;

pub use config::{DEFAULT_CONFIG, ModelConfig, default_config_path};
pub use encoder::{EncoderOptions, ImageEncoder, runtime_library_path};
pub use features::{FeatureMap, Outputs};
pub use frame::{FrameImages, decode_frame_images, decode_frame_images_into};
pub use points::{PointFeatures, point_features, point_features_into};
pub use preprocess::{Batch, ImageGeometry, RgbView, preprocess};
