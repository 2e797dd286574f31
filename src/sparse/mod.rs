//! scenetok's sparse-convolution engine (TorchSparse++, docs/sparse-conv.md) above the
//! device backends: sparse tensors with their kernel-map caches, layers, networks (MinkUNet,
//! SparseResNet21D), weights and the autotuner. The ops themselves (voxelization, kernel
//! maps, the dataflows) are the device's ([`crate::backend::Backend`]).

pub mod calib;
pub mod layers;
pub mod nets;
pub mod quant;
pub mod tensor;
pub mod tune;
pub mod voxelize;
pub mod weights;

pub use tensor::{KmapKey, SparseTensor};
pub use voxelize::{Voxelized, voxelize};
