//! Camera semantic segmentation with SparseRefine (arXiv 2407.19014; reference/algorithms.md §B):
//! a dense model run on a downsampled image, the full-resolution pixels whose upsampled
//! prediction is uncertain, and (next) a sparse 2-D U-Net refining only those.
//!
//! * [`dense`]: the dense model (ONNX, through the image encoder's session) at one scale.
//! * [`logits`]: stride-4 logits → per-pixel classes and entropy (one kernel for every scale).
//! * [`selector`]: the entropy selector and the rule that chooses τ on validation images.

pub mod dense;
pub mod logits;
pub mod refiner;
pub mod selector;

pub use dense::{CLASSES, CONFIG_FILE, DenseOutput, DenseSegModel};
pub use logits::Entropy;
