//! The dataflows on the CPU: rayon over row tiles or pair tiles, [`super::gemm::sgemm`]
//! inside.

mod fetch_on_demand;
mod fused_gather;
mod gather_scatter;
mod implicit_gemm;
mod one_to_one;

use crate::backend::{Activation, Dataflow, KernelMap};

/// One conv to run: input rows `x [n_in × cin]`, weights `w [K × cin × cout]`, the map.
#[derive(Clone, Copy)]
pub struct ConvProblem<'a> {
    pub map: &'a KernelMap,
    pub x: &'a [f32],
    pub cin: usize,
    pub w: &'a [f32],
    pub cout: usize,
}

/// A conv's epilogue on host values (see [`crate::backend::Epilogue`]): `bias [cout]`,
/// `residual [n_out × cout]`.
#[derive(Clone, Copy, Default)]
pub struct HostEpilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub act: Activation,
}

/// `Y [n_out × cout]` of the conv, computed with `dataflow`, its epilogue applied. The
/// caller checked the shapes. The fused-gather kernels apply the epilogue as they store
/// each row; the other dataflows scatter-add into their output, so it follows in one pass.
/// A map whose outputs each have at most one input ([`one_to_one`]: a transposed conv whose
/// kernel equals its stride) runs as one GEMM (dense) or row by row (sparse and narrow)
/// whatever the dataflow.
pub fn run(dataflow: &Dataflow, p: &ConvProblem<'_>, epi: &HostEpilogue<'_>) -> Vec<f32> {
    debug_assert_eq!(p.x.len(), p.map.n_in * p.cin);
    debug_assert_eq!(p.w.len(), p.map.volume * p.cin * p.cout);
    debug_assert!(epi.residual.is_none_or(|r| r.len() == p.map.n_out * p.cout));
    match one_to_one::classify(p.map, p.cin, p.cout) {
        Some(one_to_one::OneInput::Gemm(single)) => return one_to_one::run(p, &single, epi),
        Some(one_to_one::OneInput::Rows(single)) => return one_to_one::run_rows(p, &single, epi),
        None => {}
    }
    let mut y = match *dataflow {
        Dataflow::GatherScatter { epsilon, mm_thresh } => gather_scatter::run(p, epsilon, mm_thresh),
        Dataflow::FetchOnDemand { tile } => fetch_on_demand::run(p, tile.max(1)),
        Dataflow::ImplicitGemm { sorted, split } => implicit_gemm::run(p, sorted, split),
        Dataflow::FusedGather { sorted } => return fused_gather::run(p, sorted, epi),
    };
    super::epilogue_with_residual(&mut y, p.cout, epi);
    y
}

/// A raw pointer to output rows, shared by threads that write disjoint rows (each output
/// has at most one input per offset, so one offset's scatter never writes a row twice).
#[derive(Clone, Copy)]
pub(in crate::backend::cpu) struct RowsPtr {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
}

// SAFETY: users only write disjoint rows from different threads (see the type's doc).
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    pub(in crate::backend::cpu) fn new(y: &mut [f32], cols: usize) -> Self {
        RowsPtr { ptr: y.as_mut_ptr(), rows: y.len() / cols.max(1), cols }
    }
    /// Rows of `cols` values at `ptr`, which need not be initialised yet.
    ///
    /// # Safety
    /// `ptr` is valid for writes of `rows × cols` values while the `RowsPtr` is used.
    pub(in crate::backend::cpu) unsafe fn from_raw(ptr: *mut f32, rows: usize, cols: usize) -> Self {
        RowsPtr { ptr, rows, cols }
    }
    /// Row `r`'s first value, to write `cols` values through (initialised or not).
    ///
    /// # Safety
    /// No other thread may touch row `r` while the pointer is used.
    #[inline]
    pub(in crate::backend::cpu) unsafe fn row_ptr(&self, r: usize) -> *mut f32 {
        assert!(r < self.rows);
        // SAFETY: in bounds (checked above).
        unsafe { self.ptr.add(r * self.cols) }
    }
    /// Row `r`, to write.
    ///
    /// # Safety
    /// No other thread may touch row `r` while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(in crate::backend::cpu) unsafe fn row_mut(&self, r: usize) -> &mut [f32] {
        assert!(r < self.rows);
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.cols), self.cols) }
    }
    /// Adds `src` to row `r`.
    ///
    /// # Safety
    /// No other thread may touch row `r` at the same time.
    #[inline]
    unsafe fn add_row(&self, r: usize, src: &[f32]) {
        assert!(r < self.rows && src.len() == self.cols);
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.cols), self.cols) };
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

/// `Y = X·W[k]` for the identity offset of a submanifold map, in parallel row tiles.
fn identity_gemm(p: &ConvProblem<'_>, k: usize, y: &mut [f32]) {
    use rayon::prelude::*;
    const T: usize = 256;
    let w = &p.w[k * p.cin * p.cout..(k + 1) * p.cin * p.cout];
    y.par_chunks_mut(T * p.cout).zip(p.x.par_chunks(T * p.cin)).for_each(|(y, x)| {
        super::gemm::sgemm(y.len() / p.cout, p.cin, p.cout, x, w, 1.0, y);
    });
}

/// Copies input rows `idx` into `buf [idx.len() × cin]`.
#[inline]
fn gather_rows(x: &[f32], cin: usize, idx: &[u32], buf: &mut [f32]) {
    for (dst, &i) in buf.chunks_exact_mut(cin).zip(idx) {
        dst.copy_from_slice(&x[i as usize * cin..(i as usize + 1) * cin]);
    }
}
