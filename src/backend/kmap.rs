//! Kernel maps (docs/sparse-conv.md): the `out_in_map` contract that drives every dataflow
//! on every device, its derived forms (pair lists, the sorted implicit-GEMM order) and the
//! conv geometry. Backends build maps ([`super::Backend::kernel_map`]); the CPU's hashing
//! construction is in [`super::cpu::kmap`].
//!
//! Coordinates follow the spconv output rule ("range-shrinking"): a stride-`s` conv maps
//! output `o` to inputs `o·s − p + k'·d`, so every level lives on a compact integer grid and
//! a dense conv3d over that grid is an exact oracle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

/// Rows of `out_in_map` are padded to a multiple of this (the GPU CTA M tile).
pub const ROW_TILE: usize = 128;

/// Kernel size, stride, padding and dilation of a conv, per axis (x, y, z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
}

impl ConvGeom {
    /// A cubic kernel `k` with stride `s`; padding `(k−1)/2` for odd `k` with stride 1
    /// (submanifold), 0 otherwise (spconv semantics).
    pub fn cube(k: usize, s: usize) -> Self {
        let p = if s == 1 && k % 2 == 1 { (k - 1) / 2 } else { 0 };
        ConvGeom { kernel: [k; 3], stride: [s; 3], padding: [p; 3], dilation: [1; 3] }
    }
    /// Kernel volume K.
    pub fn volume(&self) -> usize {
        self.kernel.iter().product()
    }
    /// Whether the conv keeps the coordinate set (all strides 1).
    pub fn is_submanifold(&self) -> bool {
        self.stride == [1, 1, 1]
    }
    /// Output spatial range of a strided conv: `(R + 2p − d(k−1) − 1)/s + 1` per axis.
    pub fn down_range(&self, range: [i32; 3]) -> [i32; 3] {
        std::array::from_fn(|a| {
            let span = range[a] as i64 + 2 * self.padding[a] as i64 - (self.dilation[a] * (self.kernel[a] - 1)) as i64;
            ((span - 1).div_euclid(self.stride[a] as i64) + 1).max(1) as i32
        })
    }
    /// Output spatial range of a transposed conv: `(R − 1)·s − 2p + d(k−1) + 1`.
    pub fn up_range(&self, range: [i32; 3]) -> [i32; 3] {
        std::array::from_fn(|a| {
            ((range[a] as i64 - 1) * self.stride[a] as i64 - 2 * self.padding[a] as i64
                + (self.dilation[a] * (self.kernel[a] - 1)) as i64
                + 1)
            .max(1) as i32
        })
    }
}

/// The kernel offsets in weight order, per axis `0..k` (not centred). Odd kernels on every
/// axis run x fastest, then y, then z (`idx = x + kx·(y + ky·z)`, MinkowskiEngine's order);
/// a kernel with an even axis runs z fastest (TorchSparse's even-kernel order).
pub fn kernel_indices(kernel: [usize; 3]) -> Vec<[usize; 3]> {
    let [kx, ky, kz] = kernel;
    let mut out = Vec::with_capacity(kx * ky * kz);
    if kernel.iter().all(|k| k % 2 == 1) {
        for z in 0..kz {
            for y in 0..ky {
                for x in 0..kx {
                    out.push([x, y, z]);
                }
            }
        }
    } else {
        for x in 0..kx {
            for y in 0..ky {
                for z in 0..kz {
                    out.push([x, y, z]);
                }
            }
        }
    }
    out
}

/// The gather map of one conv: `out_in_map[o·K + k]` = the input row feeding output `o`
/// through weight `k`, or −1; rows padded with −1 to a multiple of [`ROW_TILE`].
#[derive(Debug)]
pub struct KernelMap {
    pub n_in: usize,
    pub n_out: usize,
    /// Kernel volume K.
    pub volume: usize,
    pub out_in_map: Vec<i32>,
    /// `Some(k)` when weight `k` maps every output to the input of the same row (the centre
    /// of an odd submanifold conv): dataflows run it as one plain GEMM.
    pub identity: Option<usize>,
    pairs: OnceLock<Arc<PairList>>,
    sorted: Mutex<HashMap<usize, Arc<SortedMap>>>,
}

/// The pair-list form (gather/scatter, fetch-on-demand): per offset k, the (input, output)
/// pairs with a neighbour, sorted by output.
#[derive(Debug, Default)]
pub struct PairList {
    pub inputs: Vec<Vec<u32>>,
    pub outputs: Vec<Vec<u32>>,
}

impl PairList {
    /// Pair count of offset `k` (`nbsizes[k]`).
    pub fn size(&self, k: usize) -> usize {
        self.inputs[k].len()
    }
}

/// The sorted implicit-GEMM form with `split` offset groups (docs/sparse-conv.md#sorted-implicit-gemm): per group, the rows
/// ordered by descending bitmask (`reorder_loc`), and per 128-row tile of that order the
/// OR of the bitmasks (`reduced_mask`).
#[derive(Debug)]
pub struct SortedMap {
    /// Offsets per group, `L = ceil(K / split)`.
    pub group_len: usize,
    /// Per group: sorted position → original output row.
    pub reorder: Vec<Vec<u32>>,
    /// Per group: per tile of [`ROW_TILE`] sorted rows, bit `i` = offset `s·L + i` is used.
    pub reduced_mask: Vec<Vec<u32>>,
}

impl KernelMap {
    /// A map from its dense rows (`n_out × K`, unpadded). The padding is added here.
    pub fn from_rows(n_in: usize, n_out: usize, volume: usize, mut rows: Vec<i32>, identity: Option<usize>) -> Self {
        debug_assert_eq!(rows.len(), n_out * volume);
        rows.resize(n_out.div_ceil(ROW_TILE) * ROW_TILE * volume, -1);
        KernelMap {
            n_in,
            n_out,
            volume,
            out_in_map: rows,
            identity,
            pairs: OnceLock::new(),
            sorted: Mutex::new(HashMap::new()),
        }
    }

    /// Row `o` of the map.
    #[inline]
    pub fn row(&self, o: usize) -> &[i32] {
        &self.out_in_map[o * self.volume..(o + 1) * self.volume]
    }

    /// Number of (input, output, offset) triples: the conv's real work.
    pub fn n_pairs(&self) -> usize {
        self.out_in_map.iter().filter(|&&v| v >= 0).count()
    }

    /// The pair-list form (`nonzero(out_in_map.T != −1)`), built once.
    pub fn pairs(&self) -> Arc<PairList> {
        self.pairs
            .get_or_init(|| {
                let (inputs, outputs) = (0..self.volume)
                    .into_par_iter()
                    .map(|k| {
                        let (mut ins, mut outs) = (Vec::new(), Vec::new());
                        for o in 0..self.n_out {
                            let i = self.out_in_map[o * self.volume + k];
                            if i >= 0 {
                                ins.push(i as u32);
                                outs.push(o as u32);
                            }
                        }
                        (ins, outs)
                    })
                    .unzip();
                Arc::new(PairList { inputs, outputs })
            })
            .clone()
    }

    /// The sorted form with `split` groups (1..=4), built once per split.
    pub fn sorted(&self, split: usize) -> Arc<SortedMap> {
        let split = split.clamp(1, self.volume.max(1));
        let mut cache = self.sorted.lock().unwrap_or_else(|p| p.into_inner());
        cache.entry(split).or_insert_with(|| Arc::new(self.build_sorted(split))).clone()
    }

    fn build_sorted(&self, split: usize) -> SortedMap {
        let group_len = self.volume.div_ceil(split);
        assert!(group_len <= 32, "a bitmask group holds at most 32 offsets (K = {}, split {split})", self.volume);
        let mut reorder = Vec::with_capacity(split);
        let mut reduced_mask = Vec::with_capacity(split);
        for s in 0..split {
            let ks = s * group_len..((s + 1) * group_len).min(self.volume);
            let masks: Vec<u32> = (0..self.n_out)
                .into_par_iter()
                .map(|o| {
                    let row = self.row(o);
                    ks.clone().enumerate().fold(0u32, |m, (i, k)| m | (((row[k] >= 0) as u32) << i))
                })
                .collect();
            let mut order: Vec<u32> = (0..self.n_out as u32).collect();
            // Descending mask; stable, so equal masks keep their (spatially coherent) order.
            order.par_sort_by_key(|&o| std::cmp::Reverse(masks[o as usize]));
            let tiles = order.chunks(ROW_TILE).map(|t| t.iter().fold(0, |m, &o| m | masks[o as usize])).collect();
            reorder.push(order);
            reduced_mask.push(tiles);
        }
        SortedMap { group_len, reorder, reduced_mask }
    }

    /// The map of the transposed conv (docs/sparse-conv.md#transposed-maps): `t[i, k] = o` wherever `self[o, k] = i`.
    /// Its outputs are this map's inputs.
    pub fn transposed(&self) -> KernelMap {
        let k = self.volume;
        let mut rows = vec![-1i32; self.n_in * k];
        for o in 0..self.n_out {
            for (kk, &i) in self.row(o).iter().enumerate() {
                if i >= 0 {
                    rows[i as usize * k + kk] = o as i32;
                }
            }
        }
        KernelMap::from_rows(self.n_out, self.n_in, k, rows, self.identity)
    }
}
