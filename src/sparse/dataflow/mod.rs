//! The conv dataflows (reference/algorithms.md §A.3): every one computes
//! `Y[o,:] = Σ_k X[map(o,k),:]·W[k]` from the same [`KernelMap`], and they agree up to fp32
//! summation order. [`Dataflow`] is the tunable configuration; [`ConvBackend`] runs one, so
//! a GPU backend implements the same trait over device buffers.

mod fetch_on_demand;
mod gather_scatter;
mod implicit_gemm;

use serde::{Deserialize, Serialize};

use super::kmap::KernelMap;

/// A dataflow and its parameters (the autotuner's search space, §A.4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dataflow", rename_all = "snake_case")]
pub enum Dataflow {
    /// Gather–GEMM–scatter per offset with adaptive grouping: offsets ordered
    /// `(0, K−1, 1, K−2, …)`, a new group when `1 − min/max > epsilon`; groups whose largest
    /// offset has fewer than `mm_thresh` pairs run as one batched pass.
    GatherScatter { epsilon: f32, mm_thresh: usize },
    /// Fused per-tile gather → GEMM → accumulate over the pair list, `tile` pairs a tile.
    FetchOnDemand { tile: usize },
    /// Output-stationary implicit GEMM over 128-row tiles gathering through `out_in_map`;
    /// `sorted` reorders rows by neighbour bitmask per split group and skips offsets absent
    /// from a whole tile; `split` (1..=4) groups the offsets (split-K over offsets).
    ImplicitGemm { sorted: bool, split: usize },
}

impl Dataflow {
    /// The default (TorchSparse++'s mode0 forward): unsorted implicit GEMM.
    pub const DEFAULT: Dataflow = Dataflow::ImplicitGemm { sorted: false, split: 1 };

    /// A short name for tables, e.g. `igemm-sorted-s2`.
    pub fn label(&self) -> String {
        match self {
            Dataflow::GatherScatter { epsilon, mm_thresh } => format!("gather-scatter(e{epsilon:.1},t{mm_thresh})"),
            Dataflow::FetchOnDemand { tile } => format!("fetch-on-demand(t{tile})"),
            Dataflow::ImplicitGemm { sorted: false, .. } => "igemm-unsorted".to_string(),
            Dataflow::ImplicitGemm { sorted: true, split } => format!("igemm-sorted-s{split}"),
        }
    }

    /// The autotuner's candidates for one layer group.
    pub fn candidates() -> Vec<Dataflow> {
        let mut v = vec![Dataflow::ImplicitGemm { sorted: false, split: 1 }];
        v.extend((1..=4).map(|split| Dataflow::ImplicitGemm { sorted: true, split }));
        v.extend([64, 256].map(|tile| Dataflow::FetchOnDemand { tile }));
        for epsilon in [0.0, 0.3, 0.5] {
            for mm_thresh in [0, 10_000, 25_000] {
                v.push(Dataflow::GatherScatter { epsilon, mm_thresh });
            }
        }
        v
    }

    /// One representative per dataflow kind (benchmark tables).
    pub fn representatives() -> Vec<Dataflow> {
        vec![
            Dataflow::GatherScatter { epsilon: 0.3, mm_thresh: 10_000 },
            Dataflow::FetchOnDemand { tile: 128 },
            Dataflow::ImplicitGemm { sorted: false, split: 1 },
            Dataflow::ImplicitGemm { sorted: true, split: 1 },
            Dataflow::ImplicitGemm { sorted: true, split: 3 },
        ]
    }
}

/// One conv to run: input rows `x [n_in × cin]`, weights `w [K × cin × cout]`, the map.
#[derive(Clone, Copy)]
pub struct ConvProblem<'a> {
    pub map: &'a KernelMap,
    pub x: &'a [f32],
    pub cin: usize,
    pub w: &'a [f32],
    pub cout: usize,
}

/// Something that runs a dataflow: the CPU here, a GPU backend later.
pub trait ConvBackend: Send + Sync {
    /// `Y [n_out × cout]` of the conv, computed with `dataflow`.
    fn conv(&self, dataflow: &Dataflow, p: &ConvProblem<'_>) -> Vec<f32>;
    /// Name of the device, for tuning records.
    fn device(&self) -> String;
}

/// The CPU backend: rayon over row tiles, [`super::gemm::sgemm`] inside.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl ConvBackend for Cpu {
    fn conv(&self, dataflow: &Dataflow, p: &ConvProblem<'_>) -> Vec<f32> {
        debug_assert_eq!(p.x.len(), p.map.n_in * p.cin);
        debug_assert_eq!(p.w.len(), p.map.volume * p.cin * p.cout);
        match *dataflow {
            Dataflow::GatherScatter { epsilon, mm_thresh } => gather_scatter::run(p, epsilon, mm_thresh),
            Dataflow::FetchOnDemand { tile } => fetch_on_demand::run(p, tile.max(1)),
            Dataflow::ImplicitGemm { sorted, split } => implicit_gemm::run(p, sorted, split),
        }
    }
    fn device(&self) -> String {
        format!("cpu-{}t", rayon::current_num_threads())
    }
}

/// A raw pointer to output rows, shared by threads that write disjoint rows (each output
/// has at most one input per offset, so one offset's scatter never writes a row twice).
#[derive(Clone, Copy)]
struct RowsPtr {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
}

// SAFETY: users only write disjoint rows from different threads (see the type's doc).
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}

impl RowsPtr {
    fn new(y: &mut [f32], cols: usize) -> Self {
        RowsPtr { ptr: y.as_mut_ptr(), rows: y.len() / cols.max(1), cols }
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
