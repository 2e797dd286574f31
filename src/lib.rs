//! scenetok: perception and motion prediction on Waymo-format data.
//!
//! The layers, from the bottom; each uses only those below it (docs/ARCHITECTURE.md has the
//! module map and one frame's way through them):
//!
//! * [`scene`]: the in-memory data model (frames, range images, calibrations, boxes, tracks,
//!   the map, Waymo's enums, motion predictions and trajectory types); [`error`].
//! * [`geom`]: range images ⇄ points, camera projection, boxes, polylines.
//! * [`backend`]: compute devices (the CPU; a stand-in CUDA backend) with tensors in their
//!   own memory and every op the models run (GEMM, voxelization, kernel maps, sparse-conv
//!   dataflows). [`locate`]: where models, weights and the ONNX Runtime library are found.
//! * [`io`]: Waymo v2 parquet (read and write), WOMD `Scenario` and v1 `Frame` TFRecords,
//!   what a path holds ([`io::detect`]), inspection, the built-in fixture.
//! * [`sparse`]: the sparse-convolution engine above the backend (sparse tensors, layers,
//!   MinkUNet and SparseResNet21D, weights, the autotuner).
//! * [`models`]: the motion predictor contract and baselines, the LiDAR encoder, the ONNX
//!   image encoder.
//! * [`pipeline`]: sources (any input), the per-frame context and stages, per-stage timing,
//!   what the pipeline exports.
//! * [`sim`]: the synthetic world written as a v2 dataset.
//! * [`eval`]: metrics (motion, segmentation, detection), the evaluation runner, reports.
//! * [`viz`]: rerun recordings of inputs and outputs (cargo feature `viz`).
//! * `stream`: the streaming server over Arrow Flight (cargo feature `serve`).
//! * [`bench`]: benchmarks against baselines run in the same invocation.
//!
//! The `scenetok` command (`src/cli/`) sits on top and is not part of the library. Both
//! features are on by default; `--no-default-features` builds the library without rerun and
//! the gRPC stack (what a package that only reads, evaluates and runs models needs).

// Errors carry their full location (file, column, row, frame); they are the cold path.
#![allow(clippy::result_large_err)]

pub mod backend;
pub mod bench;
pub mod error;
pub mod eval;
#[doc(hidden)]
pub mod fuzzing;
pub mod geom;
pub mod io;
pub mod locate;
pub mod models;
pub mod pipeline;
pub mod scene;
pub mod sim;
pub mod sparse;
#[cfg(feature = "serve")]
pub mod stream;
#[cfg(feature = "viz")]
pub mod viz;

pub use error::{Error, Location, Result};
