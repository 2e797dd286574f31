//! A dense `[rows × cols]` f32 matrix in a device's memory: features of a sparse tensor,
//! weights, logits. Only its backend reads or writes the values; the host gets a copy.

use super::cuda::CudaStorage;

/// Where a tensor's values are.
#[derive(Debug, Clone)]
pub(crate) enum Storage {
    Cpu(Vec<f32>),
    // The stand-in CUDA backend has no memory to hold (its storage type is uninhabited); the
    // variant is here so every match on a tensor's storage already covers the GPU.
    #[expect(dead_code, reason = "no CUDA tensor can exist until the CUDA backend has kernels")]
    Cuda(CudaStorage),
}

/// A row-major matrix on a device.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub(crate) storage: Storage,
    rows: usize,
    cols: usize,
}

impl Tensor {
    pub(crate) fn new(storage: Storage, rows: usize, cols: usize) -> Self {
        Tensor { storage, rows, cols }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
    /// The same values read as `[rows × cols]` (row-major: `[4m × c]` becomes `[m × 4c]` with
    /// every four consecutive rows side by side); `None` when the sizes differ.
    pub fn reshape(self, rows: usize, cols: usize) -> Option<Tensor> {
        (rows * cols == self.rows * self.cols).then_some(Tensor { rows, cols, ..self })
    }

    /// The name of the device holding it.
    pub fn device_name(&self) -> &'static str {
        match self.storage {
            Storage::Cpu(_) => "cpu",
            Storage::Cuda(ref s) => s.device_name(),
        }
    }
    /// The values when they are in host memory (a CPU tensor), for code that reads them
    /// in place (per-point gathers); `None` on a GPU: use [`super::Backend::download`].
    pub fn as_host(&self) -> Option<&[f32]> {
        match &self.storage {
            Storage::Cpu(v) => Some(v),
            Storage::Cuda(_) => None,
        }
    }
    /// The values, moved out, when they are in host memory; the tensor back otherwise.
    pub fn into_host(self) -> Result<Vec<f32>, Tensor> {
        match self.storage {
            Storage::Cpu(v) => Ok(v),
            Storage::Cuda(_) => Err(self),
        }
    }
}
