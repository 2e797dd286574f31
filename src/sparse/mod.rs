//! scenetok's sparse-convolution engine (TorchSparse++, reference/algorithms.md §A):
//! voxelization, kernel maps by hashing (the `out_in_map` contract), the dataflows behind
//! one backend trait, layers, networks and the autotuner.

pub mod dataflow;
pub mod export;
pub mod gemm;
pub mod hash;
pub mod kmap;
pub mod layers;
pub mod nets;
pub mod tensor;
pub mod tune;
pub mod voxelize;
pub mod weights;

pub use dataflow::{ConvBackend, ConvProblem, Cpu, Dataflow};
pub use kmap::{ConvGeom, KernelMap};
pub use tensor::{KmapKey, SparseTensor};
