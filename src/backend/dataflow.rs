//! The conv dataflows (docs/sparse-conv.md): every one computes `Y[o,:] = Σ_k
//! X[map(o,k),:]·W[k]` from the same kernel map, and they agree up to fp32 summation order.
//! [`Dataflow`] is the configuration the autotuner searches; each backend runs every one
//! ([`super::Backend::sparse_conv`]).

use serde::{Deserialize, Serialize};

/// A dataflow and its parameters (the autotuner's search space, docs/sparse-conv.md#autotuner).
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
    /// Output-stationary implicit GEMM with the gather fused into the micro-kernel: each
    /// micro-tile of rows (bitmask-sorted) keeps its sums in registers over every offset it
    /// uses, reading input rows straight from `X` and writing each output row once. `sorted`
    /// orders rows by bitmask over the whole map (fewest offsets per tile); otherwise by
    /// bitmask within each 128 rows of the map's spatial order (neighbouring rows read
    /// neighbouring inputs: fewer cache misses). See [`super::RowOrder`].
    FusedGather { sorted: bool },
}

impl Dataflow {
    /// What runs where no tuning is stored, and the tuner's baseline: the fused-gather
    /// implicit GEMM in bitmask order, the fastest single dataflow of `scenetok bench sparse`
    /// on the CPU (widths 0.25-1.0). TorchSparse++'s own default (mode0 forward) is the
    /// unsorted implicit GEMM, [`Dataflow::UPSTREAM_DEFAULT`].
    pub const DEFAULT: Dataflow = Dataflow::FusedGather { sorted: true };
    /// TorchSparse++'s mode0 forward: unsorted implicit GEMM.
    pub const UPSTREAM_DEFAULT: Dataflow = Dataflow::ImplicitGemm { sorted: false, split: 1 };

    /// A short name for tables, e.g. `igemm-sorted-s2`.
    pub fn label(&self) -> String {
        match self {
            Dataflow::GatherScatter { epsilon, mm_thresh } => format!("gather-scatter(e{epsilon:.1},t{mm_thresh})"),
            Dataflow::FetchOnDemand { tile } => format!("fetch-on-demand(t{tile})"),
            Dataflow::ImplicitGemm { sorted: false, .. } => "igemm-unsorted".to_string(),
            Dataflow::ImplicitGemm { sorted: true, split } => format!("igemm-sorted-s{split}"),
            Dataflow::FusedGather { sorted: true } => "igemm-fused-sorted".to_string(),
            Dataflow::FusedGather { sorted: false } => "igemm-fused".to_string(),
        }
    }

    /// The autotuner's candidates for one layer group.
    pub fn candidates() -> Vec<Dataflow> {
        let mut v = vec![Dataflow::ImplicitGemm { sorted: false, split: 1 }];
        v.extend((1..=4).map(|split| Dataflow::ImplicitGemm { sorted: true, split }));
        v.extend([false, true].map(|sorted| Dataflow::FusedGather { sorted }));
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
            Dataflow::FusedGather { sorted: false },
            Dataflow::FusedGather { sorted: true },
        ]
    }
}
