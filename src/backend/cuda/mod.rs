//! The CUDA backend's stand-in. This version has no CUDA kernels yet (`kernels/` will hold
//! them as `.cu` sources compiled at first use by NVRTC through cudarc), so no CUDA device
//! can be opened: [`open`] says why in one line (no NVIDIA driver on this machine, or a
//! driver but no kernels in this build) and call sites stay the same as they will be once
//! the backend exists. The types are uninhabited: no value of them can be made, so every
//! method below is unreachable by construction, not by a runtime check.

use std::sync::Arc;

use super::{
    Activation, Backend, BuiltMap, ConvGeom, Dataflow, Epilogue, KernelMap, LowpConv, MapKind, PointsRef, Precision,
    SetEncoder, Tensor, Voxels,
};
use crate::error::{Error, Result};

/// A CUDA device (none can be opened in this version).
#[derive(Debug)]
pub enum CudaBackend {}

/// Device memory of a CUDA tensor (none can exist in this version).
#[derive(Debug, Clone)]
pub enum CudaStorage {}

impl CudaStorage {
    pub(crate) fn device_name(&self) -> &'static str {
        match *self {}
    }
}

/// Whether the NVIDIA driver library (`libcuda.so`) can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library by its usual names; nothing is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Opens GPU `ordinal`: an error naming what is missing.
pub fn open(ordinal: usize) -> Result<Arc<CudaBackend>> {
    let device = format!("cuda:{ordinal}");
    if !driver_present() {
        return Err(Error::device(
            device,
            "no NVIDIA driver on this machine (libcuda.so could not be loaded); run with --device cpu",
        ));
    }
    Err(Error::device(
        device,
        "this build of scenetok has no CUDA kernels yet (the GPU backend is future work: kernels/ will hold them); run with --device cpu",
    ))
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        match *self {}
    }
    fn tuning_key(&self) -> String {
        match *self {}
    }
    fn upload(&self, _: &[f32], _: usize, _: usize) -> Result<Tensor> {
        match *self {}
    }
    fn download(&self, _: &Tensor) -> Result<Vec<f32>> {
        match *self {}
    }
    fn matmul(&self, _: &Tensor, _: &Tensor, _: Option<&Tensor>, _: Activation) -> Result<Tensor> {
        match *self {}
    }
    fn bias_act(&self, _: &mut Tensor, _: Option<&Tensor>, _: Activation) -> Result<()> {
        match *self {}
    }
    fn add_act(&self, _: &mut Tensor, _: &Tensor, _: Activation) -> Result<()> {
        match *self {}
    }
    fn concat_cols(&self, _: &Tensor, _: &Tensor) -> Result<Tensor> {
        match *self {}
    }
    fn layer_norm(&self, _: &Tensor, _: &Tensor, _: &Tensor, _: f32) -> Result<Tensor> {
        match *self {}
    }
    fn add_rows(&self, _: &mut Tensor, _: &Tensor, _: &[u32], _: Activation) -> Result<()> {
        match *self {}
    }
    fn gather_rows(&self, _: &[&Tensor], _: &[u32]) -> Result<Tensor> {
        match *self {}
    }
    fn fold_norm(&self, _: &mut Tensor, _: &Tensor, _: f32, _: &Tensor, _: &[u32], _: &Tensor) -> Result<()> {
        match *self {}
    }
    fn set_encoder(&self, _: &Tensor, _: &SetEncoder<'_>) -> Result<Tensor> {
        match *self {}
    }
    fn attention(&self, _: &Tensor, _: &Tensor, _: usize, _: usize, _: Option<&[bool]>) -> Result<Tensor> {
        match *self {}
    }
    fn scatter_rows(&self, _: &mut Tensor, _: &Tensor, _: &[u32]) -> Result<()> {
        match *self {}
    }
    fn window_attention(
        &self,
        _: &Tensor,
        _: usize,
        _: usize,
        _: &Tensor,
        _: Option<(&Tensor, &[u32])>,
    ) -> Result<Tensor> {
        match *self {}
    }
    fn voxelize(&self, _: &[PointsRef<'_>], _: f32) -> Result<Voxels> {
        match *self {}
    }
    fn kernel_map(&self, _: &[[i32; 4]], _: [i32; 3], _: &ConvGeom, _: MapKind) -> Result<BuiltMap> {
        match *self {}
    }
    fn transpose_map(&self, _: &KernelMap) -> Result<KernelMap> {
        match *self {}
    }
    fn sparse_conv(&self, _: &Dataflow, _: &KernelMap, _: &Tensor, _: &Tensor, _: &Epilogue<'_>) -> Result<Tensor> {
        match *self {}
    }
    fn sparse_conv_lowp(
        &self,
        _: &KernelMap,
        _: &Tensor,
        _: &LowpConv,
        _: Precision,
        _: &Epilogue<'_>,
    ) -> Result<Tensor> {
        match *self {}
    }
}
