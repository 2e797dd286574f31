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
    /// [`KernelMap::n_pairs`], counted once.
    pair_count: OnceLock<usize>,
    sorted: Mutex<HashMap<usize, Arc<SortedMap>>>,
    plans: Mutex<HashMap<RowOrder, Arc<TilePlan>>>,
}

/// Output rows per micro-tile of the fused-gather kernels ([`TilePlan`]).
pub const MICRO_ROWS: usize = 8;

/// The order the fused-gather kernels run a map's output rows in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowOrder {
    /// By neighbour bitmask over the whole map (the sorted form's order, volume ≤ 32): a
    /// micro-tile's rows share the most offsets, but neighbouring rows read far-apart inputs.
    Sorted,
    /// By neighbour bitmask within each [`ROW_TILE`] rows of the map's own (spatial) order:
    /// fewer shared offsets, but a chunk's inputs lie in one neighbourhood (cache-friendly).
    Window,
}

/// How the fused-gather kernels walk a map, built once per map and order and shared by every
/// layer on that map: the rows in run order cut into micro-tiles of [`MICRO_ROWS`]
/// (chunk `c` of [`ROW_TILE`] rows is micro-tiles `c·ROW_TILE/MICRO_ROWS ..`), and per
/// micro-tile the offsets its rows use with each row's input per offset.
///
/// Only [`KernelMap::tile_plan`] builds one, so its invariants hold for the kernels that read
/// it without checks: every output row appears once, every offset is below the map's volume,
/// and every input is below the map's `n_in` or [`TilePlan::ABSENT`].
#[derive(Debug)]
pub struct TilePlan {
    /// Output rows in run order.
    rows: Vec<u32>,
    /// Micro-tile `t` owns entries `spans[t]..spans[t + 1]` of `ks` and `inputs`.
    spans: Vec<u32>,
    /// Offsets, ascending within a micro-tile.
    ks: Vec<u16>,
    /// Per entry of `ks`, each row's input row ([`TilePlan::ABSENT`] when it has none, and
    /// for the rows past the map's end in the last micro-tile).
    inputs: Vec<[u32; MICRO_ROWS]>,
}

impl TilePlan {
    pub const ABSENT: u32 = u32::MAX;

    pub fn tiles(&self) -> usize {
        self.spans.len() - 1
    }

    /// Micro-tile `t`'s rows (the last one may hold fewer than [`MICRO_ROWS`]).
    pub fn tile_rows(&self, t: usize) -> &[u32] {
        &self.rows[t * MICRO_ROWS..((t + 1) * MICRO_ROWS).min(self.rows.len())]
    }

    /// Micro-tile `t`'s entries: its offsets and each row's input per offset.
    pub fn tile(&self, t: usize) -> (&[u16], &[[u32; MICRO_ROWS]]) {
        let r = self.spans[t] as usize..self.spans[t + 1] as usize;
        (&self.ks[r.clone()], &self.inputs[r])
    }
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
            pair_count: OnceLock::new(),
            sorted: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// A random map for tests: `n_out` rows over `n_in` inputs, each offset present with
    /// probability ~1/2 (a fixed LCG, so `seed` decides it).
    #[cfg(test)]
    pub(crate) fn random(n_in: usize, n_out: usize, volume: usize, seed: u64) -> KernelMap {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        let rows = (0..n_out * volume).map(|_| if next() % 2 == 0 { (next() % n_in) as i32 } else { -1 }).collect();
        KernelMap::from_rows(n_in, n_out, volume, rows, None)
    }

    /// Row `o` of the map.
    #[inline]
    pub fn row(&self, o: usize) -> &[i32] {
        &self.out_in_map[o * self.volume..(o + 1) * self.volume]
    }

    /// Number of (input, output, offset) triples: the conv's real work. Counted once per
    /// map, in parallel: the per-layer statistics ask for it on every conv, and a scan of a
    /// full-resolution map per conv cost benchmarks ~25 ms per LiDAR frame.
    pub fn n_pairs(&self) -> usize {
        *self
            .pair_count
            .get_or_init(|| self.out_in_map.par_chunks(1 << 16).map(|c| c.iter().filter(|&&v| v >= 0).count()).sum())
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
            // Descending mask; equal masks keep their (spatially coherent) order.
            let order = order_by_descending_mask(&masks, ks.len());
            let tiles = order.chunks(ROW_TILE).map(|t| t.iter().fold(0, |m, &o| m | masks[o as usize])).collect();
            reorder.push(order);
            reduced_mask.push(tiles);
        }
        SortedMap { group_len, reorder, reduced_mask }
    }

    /// The fused-gather kernels' plan in `order`, built once per order.
    pub fn tile_plan(&self, order: RowOrder) -> Arc<TilePlan> {
        if let Some(p) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(&order) {
            return p.clone();
        }
        // Built outside the lock (it runs in parallel); a racing build gives the same plan.
        let plan = Arc::new(self.build_plan(order));
        self.plans.lock().unwrap_or_else(|p| p.into_inner()).entry(order).or_insert(plan).clone()
    }

    /// Row `o`'s neighbour bitmask (volume ≤ 64): bit `k` set where offset `k` has an input.
    /// Plans take it twice per row (window sort, micro-tile union), so four entries at a time
    /// from their sign bits where the CPU allows (SSE2: every x86-64).
    fn mask(&self, o: u32) -> u64 {
        let row = self.row(o as usize);
        let mut absent = 0u64;
        let mut k = 0;
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__m128i, _mm_castsi128_ps, _mm_loadu_si128, _mm_movemask_ps};
            while k + 4 <= row.len() {
                // SAFETY: SSE2 is part of x86-64; the four values lie inside `row`.
                let signs =
                    unsafe { _mm_movemask_ps(_mm_castsi128_ps(_mm_loadu_si128(row[k..].as_ptr() as *const __m128i))) };
                absent |= (signs as u64) << k;
                k += 4;
            }
        }
        for (j, &i) in row.iter().enumerate().skip(k) {
            absent |= ((i < 0) as u64) << j;
        }
        let all = if row.len() >= 64 { u64::MAX } else { (1u64 << row.len()) - 1 };
        !absent & all
    }

    /// Asks the CPU to bring map rows `os` into its cache (a hint: nothing where the
    /// architecture has no prefetch).
    fn prefetch_rows(&self, os: &[u32]) {
        #[cfg(target_arch = "x86_64")]
        for &o in os {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // A row's first value, every 16th, and its last (rows need not start on a line).
            let row = self.row(o as usize);
            for v in row.iter().step_by(16).chain(row.last()) {
                // SAFETY: a prefetch never faults; the address lies in the row.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(v as *const i32 as *const i8) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = os;
    }

    fn build_plan(&self, order: RowOrder) -> TilePlan {
        let (kv, n_in) = (self.volume, self.n_in);
        assert!(kv <= 1 << 16 && n_in < u32::MAX as usize, "a map of volume {kv} over {n_in} inputs");
        let bitmasks = kv <= 64;
        // Each row's neighbour mask, once: the window sort and every micro-tile's union read it.
        let masks: Vec<u64> =
            if bitmasks { (0..self.n_out as u32).into_par_iter().map(|o| self.mask(o)).collect() } else { Vec::new() };
        let rows: Vec<u32> = match order {
            // The sorted form's order (`sorted(1).reorder[0]`), from the masks at hand.
            RowOrder::Sorted if kv <= 32 => {
                order_by_descending_mask(&masks.iter().map(|&m| m as u32).collect::<Vec<_>>(), kv)
            }
            RowOrder::Window if bitmasks => {
                let mut rows: Vec<u32> = (0..self.n_out as u32).collect();
                rows.par_chunks_mut(ROW_TILE).for_each(|c| {
                    // By mask, ties in row order.
                    let mut keyed = [(0u64, 0u32); ROW_TILE];
                    let keyed = &mut keyed[..c.len()];
                    keyed.iter_mut().zip(c.iter()).for_each(|(k, &o)| *k = (masks[o as usize], o));
                    keyed.sort_unstable();
                    c.iter_mut().zip(keyed.iter()).for_each(|(o, &(_, k))| *o = k);
                });
                rows
            }
            _ => (0..self.n_out as u32).collect(),
        };
        let tiles = rows.len().div_ceil(MICRO_ROWS);
        // The offsets a micro-tile visits: those any of its rows has an input at.
        let offsets = |t: usize| -> u64 {
            let tile = &rows[t * MICRO_ROWS..((t + 1) * MICRO_ROWS).min(rows.len())];
            tile.iter().fold(0u64, |m, &o| m | masks[o as usize])
        };
        let visits = |t: usize| -> Vec<u16> {
            let tile = &rows[t * MICRO_ROWS..((t + 1) * MICRO_ROWS).min(rows.len())];
            (0..kv).filter(|&k| tile.iter().any(|&o| self.row(o as usize)[k] >= 0)).map(|k| k as u16).collect()
        };
        // Two passes without intermediate buffers: the entry count of every micro-tile, then
        // every chunk of micro-tiles fills its own slice of the offsets and inputs.
        let counts: Vec<u32> = (0..tiles)
            .into_par_iter()
            .map(|t| if bitmasks { offsets(t).count_ones() } else { visits(t).len() as u32 })
            .collect();
        let mut spans = Vec::with_capacity(tiles + 1);
        spans.push(0u32);
        for c in &counts {
            spans.push(spans[spans.len() - 1] + c);
        }
        let total = spans[tiles] as usize;
        // Not filled first: every entry is written once below, in parallel (a serial fill of
        // a full-resolution plan's ~4 MB showed in its build time).
        let mut ks: Vec<u16> = Vec::with_capacity(total);
        let mut inputs: Vec<[u32; MICRO_ROWS]> = Vec::with_capacity(total);
        let per_chunk = ROW_TILE / MICRO_ROWS;
        let mut parts = Vec::with_capacity(tiles.div_ceil(per_chunk));
        let (mut ks_rest, mut in_rest) =
            (&mut ks.spare_capacity_mut()[..total], &mut inputs.spare_capacity_mut()[..total]);
        for c in 0..tiles.div_ceil(per_chunk) {
            let t = c * per_chunk..((c + 1) * per_chunk).min(tiles);
            let len = (spans[t.end] - spans[t.start]) as usize;
            let (k, kr) = std::mem::take(&mut ks_rest).split_at_mut(len);
            let (i, ir) = std::mem::take(&mut in_rest).split_at_mut(len);
            (ks_rest, in_rest) = (kr, ir);
            parts.push((t, k, i));
        }
        // A map entry past the inputs cannot occur (maps are built here); reading it as
        // absent keeps every kernel access in bounds regardless. −1 (no input) is u32::MAX,
        // ABSENT itself.
        let limit = n_in as u32;
        parts.into_par_iter().for_each(|(range, ks, inputs)| {
            let mut e = 0;
            for t in range {
                // In the sorted order a micro-tile's map rows lie anywhere in the map: fetch
                // the rows two micro-tiles ahead while this one is filled.
                self.prefetch_rows(
                    &rows[((t + 2) * MICRO_ROWS).min(rows.len())..((t + 3) * MICRO_ROWS).min(rows.len())],
                );
                let tile = &rows[t * MICRO_ROWS..((t + 1) * MICRO_ROWS).min(rows.len())];
                let map_rows: [Option<&[i32]>; MICRO_ROWS] =
                    std::array::from_fn(|r| tile.get(r).map(|&o| self.row(o as usize)));
                let mut put = |k: usize| {
                    ks[e].write(k as u16);
                    inputs[e].write(std::array::from_fn(|r| match map_rows[r] {
                        Some(row) => {
                            let i = row[k] as u32;
                            if i < limit { i } else { TilePlan::ABSENT }
                        }
                        None => TilePlan::ABSENT,
                    }));
                    e += 1;
                };
                if bitmasks {
                    let mut union = offsets(t);
                    while union != 0 {
                        put(union.trailing_zeros() as usize);
                        union &= union - 1;
                    }
                } else {
                    visits(t).into_iter().for_each(|k| put(k as usize));
                }
            }
            // Each micro-tile put as many entries as it counted, so the part is full (checked:
            // the lengths below rely on it).
            assert_eq!(e, ks.len(), "a plan part left entries unwritten");
        });
        // SAFETY: every part wrote each of its entries (asserted above), and the parts cover
        // `0..total` of both buffers.
        unsafe {
            ks.set_len(total);
            inputs.set_len(total);
        }
        TilePlan { rows, spans, ks, inputs }
    }

    /// The map of the transposed conv (docs/sparse-conv.md#transposed-maps): `t[i, k] = o` wherever `self[o, k] = i`.
    /// Its outputs are this map's inputs.
    pub fn transposed(&self) -> KernelMap {
        use std::sync::atomic::{AtomicI32, Ordering};
        let k = self.volume;
        // A conv's geometry gives each (input, offset) at most one output, so the rows are
        // written in parallel without two writes to one slot; atomics keep any other map sound.
        let rows: Vec<AtomicI32> = (0..self.n_in * k).map(|_| AtomicI32::new(-1)).collect();
        (0..self.n_out).into_par_iter().with_min_len(1 << 12).for_each(|o| {
            for (kk, &i) in self.row(o).iter().enumerate() {
                if i >= 0 {
                    rows[i as usize * k + kk].store(o as i32, Ordering::Relaxed);
                }
            }
        });
        let rows = rows.into_iter().map(AtomicI32::into_inner).collect();
        KernelMap::from_rows(self.n_out, self.n_in, k, rows, self.identity)
    }
}

/// Row indices ordered by descending mask, ties in ascending row order (a stable order).
/// Masks of at most 16 bits (kernels of up to 16 offsets per group: the 2-D 3×3 convs, the
/// k2 s2 down-sampling) are counted into buckets in one stable pass; wider ones (3×3×3: 27)
/// in two, the low half of the bits, then the high half (a sort of the full-resolution LiDAR
/// level's rows took 4-5 ms of its 12 ms plan).
fn order_by_descending_mask(masks: &[u32], bits: usize) -> Vec<u32> {
    assert!(bits <= 32, "masks of {bits} bits");
    if bits > 16 {
        // Ascending `!mask` is descending mask; each pass is stable, so equal masks keep
        // their row order.
        let low = bits / 2;
        let digit =
            |o: u32, shift: usize, width: usize| ((!masks[o as usize] >> shift) & ((1u32 << width) - 1)) as usize;
        let by_low = counting_pass(0..masks.len() as u32, masks.len(), 1 << low, |o| digit(o, 0, low));
        return counting_pass(by_low.into_iter(), masks.len(), 1 << (bits - low), |o| digit(o, low, bits - low));
    }
    // One counting pass: ascending `!mask` is descending mask.
    let full = (1u32 << bits) - 1;
    counting_pass(0..masks.len() as u32, masks.len(), 1 << bits, |o| (!masks[o as usize] & full) as usize)
}

/// The `n` rows of `rows` ordered by `bucket(row)` ascending, stably (one counting pass).
fn counting_pass(
    rows: impl Iterator<Item = u32> + Clone,
    n: usize,
    buckets: usize,
    bucket: impl Fn(u32) -> usize,
) -> Vec<u32> {
    let mut next = vec![0u32; buckets];
    for o in rows.clone() {
        next[bucket(o)] += 1;
    }
    let mut at = 0u32;
    for slot in next.iter_mut() {
        let count = *slot;
        *slot = at;
        at += count;
    }
    let mut order = vec![0u32; n];
    for o in rows {
        let b = bucket(o);
        order[next[b] as usize] = o;
        next[b] += 1;
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every plan runs every output row once and visits every (row, offset) pair of the map
    /// exactly once with its input, each micro-tile's offsets ascending; windows keep their
    /// 128 rows.
    #[test]
    fn counted_mask_order_equals_the_sorted_one() {
        for (n, bits) in [(0, 9), (1, 4), (5000, 9), (5000, 16), (3000, 27), (3000, 17), (0, 27), (4000, 32)] {
            let masks: Vec<u32> =
                (0..n as u64).map(|i| ((i * 2654435761) >> 7) as u32 & (u32::MAX >> (32 - bits))).collect();
            let mut want: Vec<u32> = (0..n as u32).collect();
            want.sort_by_key(|&o| (std::cmp::Reverse(masks[o as usize]), o));
            assert_eq!(order_by_descending_mask(&masks, bits), want, "{n} rows, {bits} bits");
        }
        // Wide masks with many ties (LiDAR rows share few neighbour patterns): row order kept.
        let masks: Vec<u32> = (0..5000u32).map(|i| ((i % 7) << 20) | (i % 3) | ((i % 5 == 0) as u32) << 26).collect();
        let mut want: Vec<u32> = (0..5000).collect();
        want.sort_by_key(|&o| (std::cmp::Reverse(masks[o as usize]), o));
        assert_eq!(order_by_descending_mask(&masks, 27), want, "ties");
    }

    #[test]
    fn tile_plans_cover_every_pair_once() {
        for (n_out, volume) in [(1, 27), (203, 27), (300, 8), (130, 125), (64, 1)] {
            let m = KernelMap::random(97, n_out, volume, (n_out * volume) as u64);
            for order in [RowOrder::Sorted, RowOrder::Window] {
                let plan = m.tile_plan(order);
                let mut rows = plan.rows.clone();
                rows.sort_unstable();
                assert_eq!(rows, (0..n_out as u32).collect::<Vec<_>>(), "{order:?}");
                if order == RowOrder::Window {
                    for (c, chunk) in plan.rows.chunks(ROW_TILE).enumerate() {
                        assert!(chunk.iter().all(|&o| o as usize / ROW_TILE == c));
                    }
                }
                assert_eq!(plan.tiles(), n_out.div_ceil(MICRO_ROWS));
                let mut seen = vec![-1i32; n_out * volume];
                for t in 0..plan.tiles() {
                    let (ks, inputs) = plan.tile(t);
                    assert!(ks.windows(2).all(|w| w[0] < w[1]));
                    for (&k, idx) in ks.iter().zip(inputs) {
                        for (r, &i) in idx.iter().enumerate() {
                            match plan.tile_rows(t).get(r) {
                                Some(&o) if i != TilePlan::ABSENT => {
                                    let slot = &mut seen[o as usize * volume + k as usize];
                                    assert_eq!(*slot, -1, "visited twice");
                                    *slot = i as i32;
                                }
                                Some(_) => {}
                                None => assert_eq!(i, TilePlan::ABSENT, "a slot past the end reads"),
                            }
                        }
                    }
                }
                assert_eq!(seen[..], m.out_in_map[..n_out * volume], "{order:?} n_out {n_out} K {volume}");
            }
        }
    }
}
