//! Compute devices. A [`Device`] (the CPU, or a CUDA GPU) owns the memory of the tensors
//! that live on it ([`Tensor`]) and runs every op the models need through one [`Backend`]
//! trait: dense ops (GEMM with a fused bias and activation, residual add, concatenation)
//! and the sparse-conv engine's (voxelization, kernel maps, the conv dataflows). Every op is
//! fallible: an out-of-memory or a failed kernel launch is an error, never a panic.
//!
//! Call sites hold a `Device` and never branch on what it is. The CUDA backend in this
//! version is a stand-in ([`cuda`]): asking for `cuda` names what is missing (the driver, or
//! the kernels, which `kernels/*.cu` will hold) and nothing else changes.
//!
//! Coordinates and kernel maps are host data ([`KernelMap`], the `out_in_map` contract of
//! docs/sparse-conv.md); features and weights are device data.

pub mod cpu;
pub mod cuda;
mod dataflow;
mod device;
pub mod kmap;
pub mod lowp;
mod tensor;

pub use dataflow::Dataflow;
pub use device::{Device, DeviceSpec};
pub use kmap::{ConvGeom, KernelMap, MICRO_ROWS, ROW_TILE, RowOrder, TilePlan, kernel_indices};
pub use lowp::{LowpConv, Precision};
pub use tensor::Tensor;

use crate::error::Result;

/// An activation fused into an op's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `x·Φ(x)` with the exact (erf) Gaussian CDF, PyTorch's default `GELU`; erf to 1.5·10⁻⁷.
    Gelu,
}

impl Activation {
    #[inline]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::None => v,
            Activation::Relu => v.max(0.0),
            Activation::Gelu => cpu::dense::gelu(v),
        }
    }
}

/// What a conv does to its sums before they are stored: `act(y + bias + residual)`, in
/// that order (the bias, then a residual connection's row, then the activation), so a
/// residual block's second conv, its skip and the block's ReLU are one pass over the output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// `[1 × cout]`.
    pub bias: Option<&'a Tensor>,
    /// `[n_out × cout]`, added row by row.
    pub residual: Option<&'a Tensor>,
    pub act: Activation,
}

/// A shared two-layer MLP over sets, max-pooled per set (PointNet; the motion transformer's
/// agent-history and polyline encoders, per step / per point): for every valid row `r`,
/// `h = relu(x[r]·w1 + b1 + Σ table[index[r]])` and `y = h·w2 + b2`; per group of `group`
/// consecutive rows, the column-wise max of `y` over its valid rows (zeros where none).
/// Invalid rows are never computed, and the hidden layer never leaves the cache.
#[derive(Debug, Clone, Copy)]
pub struct SetEncoder<'a> {
    /// `[k × hidden]`, `[1 × hidden]`.
    pub first: (&'a Tensor, &'a Tensor),
    /// Learned tables `[_ × hidden]` and one row index per input row.
    pub embeddings: &'a [(&'a Tensor, &'a [u32])],
    /// `[hidden × out]`, `[1 × out]`.
    pub second: (&'a Tensor, &'a Tensor),
    pub group: usize,
    /// One flag per input row.
    pub valid: &'a [bool],
}

/// One frame's points as the voxelizer takes them: `xyz [N, 3]` and features `[N, C]`.
#[derive(Debug, Clone, Copy)]
pub struct PointsRef<'a> {
    pub xyz: &'a [[f32; 3]],
    pub feats: &'a [f32],
    pub channels: usize,
}

/// Voxelized points: the voxels of a batch of frames.
#[derive(Debug, Clone)]
pub struct Voxels {
    /// `(b, x, y, z)` per voxel, sorted; `b` is the frame's index in the batch.
    pub coords: Vec<[i32; 4]>,
    /// Spatial extent per axis: coordinates lie in `[0, range)`.
    pub range: [i32; 3],
    /// Mean point features per voxel, `[voxels, C]`.
    pub feats: Tensor,
    /// Per frame, per point: the voxel row holding it (`None` for non-finite points).
    pub point_to_voxel: Vec<Vec<Option<u32>>>,
    /// World position of voxel index 0 on each axis (grid origin), metres.
    pub origin: [f32; 3],
    pub voxel_size: f32,
}

/// An index of [`Backend::scatter_rows`] whose row is dropped (a padding token).
pub const DROP_ROW: u32 = u32::MAX;
/// A window of [`Backend::window_attention`] with no mask.
pub const NO_MASK: u32 = u32::MAX;

/// How a conv's kernel map relates its outputs to its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// Outputs are the inputs (stride 1).
    Submanifold,
    /// Downsampling with the spconv output rule.
    Strided,
    /// Transposed, generating every output a dense transposed conv would.
    Generative,
}

/// A kernel map with the coordinates of its outputs (for [`MapKind::Submanifold`] the
/// inputs' own: `coords` is `None`).
#[derive(Debug)]
pub struct BuiltMap {
    pub map: KernelMap,
    pub coords: Option<(Vec<[i32; 4]>, [i32; 3])>,
}

/// Every op a model runs, on one device. Tensors passed in must live on this backend's
/// device (a tensor of another device is an error).
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The device's name: `cpu`, `cuda:0`.
    fn name(&self) -> String;
    /// What tuning records are keyed by: the device and what makes its timings its own
    /// (thread count on the CPU, the GPU model on CUDA).
    fn tuning_key(&self) -> String;

    /// Copies host values `[rows × cols]` (row-major) onto the device.
    fn upload(&self, host: &[f32], rows: usize, cols: usize) -> Result<Tensor>;
    /// [`Backend::upload`] of values the caller gives up: the CPU keeps them without a copy.
    fn upload_vec(&self, host: Vec<f32>, rows: usize, cols: usize) -> Result<Tensor> {
        self.upload(&host, rows, cols)
    }
    /// Copies a tensor to the host, row-major.
    fn download(&self, x: &Tensor) -> Result<Vec<f32>>;

    /// `act(x · w + bias)`: `x [n × k]`, `w [k × m]`, `bias [1 × m]` (a linear layer, a
    /// 1×1×1 conv).
    fn matmul(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor>;
    /// `x ← act(x + bias)` row by row.
    fn bias_act(&self, x: &mut Tensor, bias: Option<&Tensor>, act: Activation) -> Result<()>;
    /// `x ← act(x + y)` (a residual connection).
    fn add_act(&self, x: &mut Tensor, y: &Tensor, act: Activation) -> Result<()>;
    /// `[a | b]`: the columns of `b` after those of `a`, row by row.
    fn concat_cols(&self, a: &Tensor, b: &Tensor) -> Result<Tensor>;

    /// LayerNorm of every row: `(x − mean) / √(var + eps) · gamma + beta` (biased variance;
    /// `gamma`, `beta` `[1 × cols]`).
    fn layer_norm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor>;
    /// `x[r] ← act(x[r] + table[index[r]])`: a learned embedding added to every row.
    fn add_rows(&self, x: &mut Tensor, table: &Tensor, index: &[u32], act: Activation) -> Result<()>;
    /// `y[r] ← (y[r] + table[index[r]]) / √(var(x[r]) + eps) + beta` (biased variance, as
    /// LayerNorm): the epilogue of a linear map that a LayerNorm of `x` was folded into
    /// (`y` the map of the un-normalised, centred input; `beta [1 × y.cols]`).
    fn fold_norm(
        &self,
        y: &mut Tensor,
        x: &Tensor,
        eps: f32,
        table: &Tensor,
        index: &[u32],
        beta: &Tensor,
    ) -> Result<()>;
    /// The rows `index` of `parts` stacked one above the other (a gather; rows may repeat).
    fn gather_rows(&self, parts: &[&Tensor], index: &[u32]) -> Result<Tensor>;
    /// `x[index[i]] ← rows[i]` for every `i` whose index is not [`DROP_ROW`] (the inverse of
    /// [`Backend::gather_rows`]; rows not written keep their values).
    fn scatter_rows(&self, x: &mut Tensor, rows: &Tensor, index: &[u32]) -> Result<()>;
    /// [`SetEncoder`] on `x [rows × k]`: `[rows / group × out]`.
    fn set_encoder(&self, x: &Tensor, enc: &SetEncoder<'_>) -> Result<Tensor>;
    /// Scaled dot-product attention over `batch` independent problems, `heads` heads each:
    /// `q [batch·n × d]`, `kv [batch·m × 2d]` (each row its key, then its value: one GEMM
    /// projects both); key `j` of problem `b` takes part where `key_valid[b·m + j]` (all when
    /// `None`). A query with no valid key gets zeros.
    fn attention(
        &self,
        q: &Tensor,
        kv: &Tensor,
        batch: usize,
        heads: usize,
        key_valid: Option<&[bool]>,
    ) -> Result<Tensor>;

    /// Self-attention inside windows (Swin's W-MSA): `qkv [windows·n × 3d]` holds each
    /// token's query, key and value (heads side by side in each); every window's scores get
    /// `bias [heads·n × n]` added (the relative position bias) and, where
    /// `mask = Some((masks, kinds))` and `kinds[w]` is not [`NO_MASK`], the `[n × n]` block
    /// `kinds[w]` of `masks` too (the shifted windows' region mask). Output `[windows·n × d]`.
    fn window_attention(
        &self,
        qkv: &Tensor,
        n: usize,
        heads: usize,
        bias: &Tensor,
        mask: Option<(&Tensor, &[u32])>,
    ) -> Result<Tensor>;

    /// Voxelizes frames into one batch (`floor(p / voxel_size)`, shifted to start at 0, mean
    /// features per voxel, range rounded up to a multiple of 16).
    fn voxelize(&self, frames: &[PointsRef<'_>], voxel_size: f32) -> Result<Voxels>;
    /// The kernel map of a conv over `coords` (spatial extent `range`).
    fn kernel_map(&self, coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom, kind: MapKind) -> Result<BuiltMap>;
    /// The map of the transposed conv (its outputs are `map`'s inputs).
    fn transpose_map(&self, map: &KernelMap) -> Result<KernelMap>;
    /// `Y[o] = epi(Σ_k X[map(o, k)] · W[k])` with `dataflow`: `x [n_in × cin]`,
    /// `w [K·cin × cout]` (weight `k`'s rows `k·cin .. (k+1)·cin`).
    fn sparse_conv(
        &self,
        dataflow: &Dataflow,
        map: &KernelMap,
        x: &Tensor,
        w: &Tensor,
        epi: &Epilogue<'_>,
    ) -> Result<Tensor>;
    /// `act(conv(x) + bias + residual)` ([`Epilogue`]; ReLU or none) in `precision` (BF16 or
    /// INT8) with the weights packed when the model was prepared ([`lowp`]); the gather is
    /// fused into the kernel (no dataflow choice), the epilogue into its store. A precision
    /// `w` lacks, or F32, is an error.
    fn sparse_conv_lowp(
        &self,
        map: &KernelMap,
        x: &Tensor,
        w: &LowpConv,
        precision: Precision,
        epi: &Epilogue<'_>,
    ) -> Result<Tensor>;
}
