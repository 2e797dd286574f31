//! Camera detection with SparseViT (arXiv 2303.17605, ../shared/reference/algorithms.md
//! §C): a Swin backbone that skips the windows with the smallest activations, at per-block
//! [`Ratios`].

mod backbone;
mod config;
pub mod detector;
mod head;
mod ratios;
pub mod search;
mod windows;

pub use backbone::{Backbone, BackboneOutput, BlockWindows, ChwImage, FeatureMap};
pub use config::SwinConfig;
pub use detector::{DecodeOptions, Detection, Detector, DetectorOutput};
pub use ratios::Ratios;
