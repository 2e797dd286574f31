//! Implicit GEMM with the gather fused into the micro-kernel, in f32: no gathered copy of A,
//! no packing at call time, each output row written once (the scatter is the kernel's store).
//!
//! A micro-tile of [`MR`] output rows keeps `MR × 32` accumulators in registers across every
//! offset its rows use; per offset and input channel it broadcasts each row's input value
//! straight from `X` (a missing neighbour reads a row of zeros) and multiplies it with the
//! offset's weight row `W[k][j][col..col+32]`, read unpacked from the layer's `[K·cin × cout]`
//! weights (the last vector masked when `cout` is not a multiple of 16). Which rows form a
//! micro-tile and which offsets it visits is the map's [`TilePlan`], built once per map and
//! shared by every layer on it (building it per call cost as much as the arithmetic on
//! narrow layers). This is the INT8 / BF16 kernels' structure ([`super::super::lowp`]) with
//! f32 FMAs, so layers pay nothing to convert their inputs.
//!
//! AVX-512F where the CPU has it (chosen at run time), a portable loop with the same order of
//! sums otherwise.

use rayon::prelude::*;

use super::{ConvProblem, HostEpilogue, RowsPtr};
use crate::backend::{Activation, MICRO_ROWS as MR, ROW_TILE, RowOrder, TilePlan};

/// Outputs per vector.
const LANES: usize = 16;

/// Whether this CPU runs the AVX-512 kernel.
pub(in crate::backend::cpu) fn has_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

pub(super) fn run(p: &ConvProblem<'_>, sorted: bool, epi: &HostEpilogue<'_>) -> Vec<f32> {
    run_with(p, sorted, epi, has_simd())
}

fn run_with(p: &ConvProblem<'_>, sorted: bool, epi: &HostEpilogue<'_>, simd: bool) -> Vec<f32> {
    let (map, cin, cout) = (p.map, p.cin, p.cout);
    if map.n_out == 0 || cout == 0 {
        return vec![0.0f32; map.n_out * cout];
    }
    // Cached on the map: every layer on it walks the same plan.
    let plan = map.tile_plan(if sorted { RowOrder::Sorted } else { RowOrder::Window });
    let zeros = vec![0.0f32; cin.max(cout)];
    // Every output value is stored once by the kernels (the plan holds every output row
    // once, the column blocks cover every output), so the output is not zeroed first.
    let mut y: Vec<f32> = Vec::with_capacity(map.n_out * cout);
    // SAFETY: the capacity holds `n_out` rows of `cout`; threads write disjoint rows.
    let out = unsafe { RowsPtr::from_raw(y.as_mut_ptr(), map.n_out, cout) };
    // ReLU and no activation are fused into the store; GELU (no sparse model uses it)
    // follows in a pass of its own.
    let (relu, after) = match epi.act {
        Activation::None => (false, None),
        Activation::Relu => (true, None),
        Activation::Gelu => (false, Some(Activation::Gelu)),
    };
    let store = Store { bias: epi.bias, relu };
    let per_chunk = ROW_TILE / MR;
    (0..plan.tiles().div_ceil(per_chunk)).into_par_iter().for_each_init(
        || (vec![0.0f32; cout], Vec::with_capacity(per_chunk)),
        |(spill, rows), c| {
            let tiles = c * per_chunk..((c + 1) * per_chunk).min(plan.tiles());
            // The rows each micro-tile writes and their residual rows: every output row
            // appears once in the plan, so this chunk owns them; slots past the map's end
            // write the spill row and read zeros.
            rows.clear();
            rows.extend(tiles.clone().map(|t| {
                let tile = plan.tile_rows(t);
                let dst = std::array::from_fn(|r| match tile.get(r) {
                    // SAFETY: see above (one owner per output row).
                    Some(&o) => unsafe { out.row_ptr(o as usize) },
                    None => spill.as_mut_ptr(),
                });
                let res = std::array::from_fn(|r| match (tile.get(r), epi.residual) {
                    (Some(&o), Some(res)) => res[o as usize * cout..(o as usize + 1) * cout].as_ptr(),
                    _ => zeros.as_ptr(),
                });
                TileRows { dst, res: epi.residual.map(|_| res) }
            }));
            let chunk = Chunk { p, plan: &plan, zeros: &zeros, tiles, rows, store: &store };
            if simd {
                simd_tiles(&chunk);
            } else {
                portable_tiles(&chunk);
            }
        },
    );
    // SAFETY: every value was written (see above).
    unsafe { y.set_len(map.n_out * cout) };
    if let Some(act) = after {
        super::super::epilogue(&mut y, cout, None, act);
    }
    y
}

/// Where a micro-tile's rows go: each row's output (`cout` writable values) and, with a
/// residual, each row's residual row (`cout` values).
struct TileRows {
    dst: [*mut f32; MR],
    res: Option<[*const f32; MR]>,
}

/// What the kernels do to a row's sums as they store it: `+ bias`, `+ residual`, ReLU.
struct Store<'a> {
    bias: Option<&'a [f32]>,
    relu: bool,
}

/// One chunk's micro-tiles and where they read and write.
struct Chunk<'a> {
    p: &'a ConvProblem<'a>,
    plan: &'a TilePlan,
    /// `[max(cin, cout)]` zeros, the row a missing neighbour reads.
    zeros: &'a [f32],
    tiles: std::ops::Range<usize>,
    rows: &'a [TileRows],
    store: &'a Store<'a>,
}

/// The portable path: the same sums in the same order as the SIMD kernel (per output, over
/// the tile's offsets ascending, then input channels), the same epilogue.
fn portable_tiles(c: &Chunk<'_>) {
    let (x, w, cin, cout) = (c.p.x, c.p.w, c.p.cin, c.p.cout);
    let mut acc = vec![0.0f32; cout];
    for (t, rows) in c.tiles.clone().zip(c.rows) {
        let (ks, inputs) = c.plan.tile(t);
        for (r, &dst) in rows.dst.iter().enumerate() {
            acc.fill(0.0);
            for (&k, idx) in ks.iter().zip(inputs) {
                let i = idx[r] as usize;
                let xr = if idx[r] == TilePlan::ABSENT { &c.zeros[..cin] } else { &x[i * cin..(i + 1) * cin] };
                for (j, &v) in xr.iter().enumerate() {
                    let row = (k as usize * cin + j) * cout;
                    for (a, &ww) in acc.iter_mut().zip(&w[row..row + cout]) {
                        *a = v.mul_add(ww, *a);
                    }
                }
            }
            if let Some(b) = c.store.bias {
                acc.iter_mut().zip(b).for_each(|(a, b)| *a += b);
            }
            if let Some(res) = rows.res {
                // SAFETY: `res[r]` points at `cout` values (see `run_with`).
                let res = unsafe { std::slice::from_raw_parts(res[r], cout) };
                acc.iter_mut().zip(res).for_each(|(a, r)| *a += r);
            }
            if c.store.relu {
                // As the SIMD kernel's `max(a, 0)`: zero for NaN and −0.
                acc.iter_mut().for_each(|a| *a = if *a > 0.0 { *a } else { 0.0 });
            }
            // SAFETY: `dst` points at `cout` values this chunk owns (see `run_with`).
            unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), dst, cout) };
        }
    }
}

/// Every micro-tile of a chunk: column blocks of 32 outputs outside, micro-tiles inside, so a
/// block's weights stay in cache across the chunk's rows.
fn simd_tiles(c: &Chunk<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        let (cin, cout) = (c.p.cin, c.p.cout);
        let (n_in, kv) = (c.p.map.n_in, c.p.map.volume);
        // The bounds every pointer in the kernel stays within: the operands' sizes here, the
        // plan's offsets (< K) and inputs (< n_in or absent) by its construction.
        assert!(c.zeros.len() >= cin && c.p.x.len() >= n_in * cin && c.p.w.len() >= kv * cin * cout);
        assert!(c.store.bias.is_none_or(|b| b.len() >= cout));
        let bias = c.store.bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
        let mut col = 0;
        while col < cout {
            let width = (cout - col).min(2 * LANES);
            // The block's vectors: 16-lane ones, or 8-lane ones where 16-lane vectors would
            // leave lanes idle (24 outputs: three ymm, not two zmm with 8 lanes idle; where
            // 512-bit FMAs issue as two 256-bit halves, as on this AMD EPYC, idle lanes cost
            // as much as busy ones).
            let (nz, ny) = match width {
                w if w > 24 => (2, 0),
                w if w > 16 => (0, 3),
                w if w > 8 => (1, 0),
                _ => (0, 1),
            };
            let tail = width - if ny == 0 { LANES * (nz - 1) } else { 8 * (ny - 1) };
            let last_mask = if tail >= LANES { u16::MAX } else { (1u16 << tail) - 1 };
            for (t, rows) in c.tiles.clone().zip(c.rows) {
                let (ks, inputs) = c.plan.tile(t);
                let args = x86::Args {
                    x: c.p.x.as_ptr(),
                    zeros: c.zeros.as_ptr(),
                    inputs,
                    w: c.p.w.as_ptr(),
                    ks,
                    cin,
                    cout,
                    col,
                    last_mask,
                    dst: &rows.dst,
                    res: rows.res.as_ref(),
                    bias,
                    relu: c.store.relu,
                };
                // SAFETY: bounds as asserted above and guaranteed by `TilePlan`; rows own
                // `cout` values each and residual rows hold `cout`; the CPU has AVX-512F and
                // VL (`has_simd`, checked by the caller).
                unsafe {
                    match (nz, ny) {
                        (2, _) => x86::tile::<2, 0>(&args),
                        (1, _) => x86::tile::<1, 0>(&args),
                        (_, 3) => x86::tile::<0, 3>(&args),
                        _ => x86::tile::<0, 1>(&args),
                    }
                }
            }
            col += width;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_tiles(c);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, MR, TilePlan};

    /// A micro-kernel's operands (see `super::Chunk`) and its column block from `col`: `NZ`
    /// vectors of 16 outputs, then `NY` of 8; the last vector masked by `last_mask`.
    pub(super) struct Args<'a> {
        pub x: *const f32,
        pub zeros: *const f32,
        pub inputs: &'a [[u32; MR]],
        pub w: *const f32,
        pub ks: &'a [u16],
        pub cin: usize,
        pub cout: usize,
        pub col: usize,
        pub last_mask: u16,
        pub dst: &'a [*mut f32; MR],
        /// Each row's residual row, when the conv adds one.
        pub res: Option<&'a [*const f32; MR]>,
        /// `[cout]`, or null without a bias.
        pub bias: *const f32,
        pub relu: bool,
    }

    /// `dst[r][col..] = epi(Σ_t Σ_j x[inputs[t][r]][j] · w[ks[t]][j][col..])` for `MR` rows ×
    /// the block's vectors, accumulated in registers; `epi` adds the bias, then the residual
    /// row, then takes the ReLU.
    ///
    /// # Safety
    /// The CPU has AVX-512F and VL; every input row other than [`TilePlan::ABSENT`] is
    /// `< n_in` with `x` holding `n_in × cin` values, `zeros` holds `cin`, `w` holds
    /// `K × cin × cout` with every `ks[t] < K`, every `dst[r]` holds `cout` writable values,
    /// every `res[r]` and a non-null `bias` hold `cout`, and the block's unmasked lanes lie
    /// below `cout`.
    #[target_feature(enable = "avx512f,avx512vl")]
    pub(super) unsafe fn tile<const NZ: usize, const NY: usize>(a: &Args<'_>) {
        let zmask = |v: usize| if v + 1 == NZ && NY == 0 { a.last_mask } else { u16::MAX };
        let ymask = |v: usize| if v + 1 == NY { a.last_mask as u8 } else { u8::MAX };
        let ycol = |v: usize| a.col + LANES * NZ + 8 * v;
        let row = |i: u32| if i == TilePlan::ABSENT { a.zeros } else { unsafe { a.x.add(i as usize * a.cin) } };
        let mut cz = [[_mm512_setzero_ps(); NZ]; MR];
        let mut cy = [[_mm256_setzero_ps(); NY]; MR];
        for (t, (idx, &k)) in a.inputs.iter().zip(a.ks).enumerate() {
            // SAFETY (every pointer below): the caller's contract.
            let wk = unsafe { a.w.add(k as usize * a.cin * a.cout) };
            let xr: [*const f32; MR] = std::array::from_fn(|r| row(idx[r]));
            // The next offset's rows are gathered from anywhere in X: fetch them while this
            // one computes (hardware prefetchers cannot guess them).
            if let Some(next) = a.inputs.get(t + 1) {
                for &i in next {
                    let p = row(i);
                    for line in (0..a.cin).step_by(LANES) {
                        // A prefetch never faults; the address is in bounds anyway.
                        _mm_prefetch::<_MM_HINT_T0>(unsafe { p.add(line) } as *const i8);
                    }
                }
            }
            for j in 0..a.cin {
                let wj = unsafe { wk.add(j * a.cout) };
                let bz: [__m512; NZ] =
                    std::array::from_fn(|v| unsafe { _mm512_maskz_loadu_ps(zmask(v), wj.add(a.col + LANES * v)) });
                let by: [__m256; NY] =
                    std::array::from_fn(|v| unsafe { _mm256_maskz_loadu_ps(ymask(v), wj.add(ycol(v))) });
                for r in 0..MR {
                    // One kind of vector per block (NZ = 0 or NY = 0): a broadcast load each.
                    let x = unsafe { xr[r].add(j).read() };
                    for v in 0..NZ {
                        cz[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(x), bz[v], cz[r][v]);
                    }
                    for v in 0..NY {
                        cy[r][v] = _mm256_fmadd_ps(_mm256_set1_ps(x), by[v], cy[r][v]);
                    }
                }
            }
        }
        // SAFETY: the caller's contract.
        unsafe { store(a, cz, cy) };
    }

    /// The epilogue and store of a micro-tile's accumulators. Kept out of [`tile`]: inlined
    /// there, it changed how the compiler scheduled the main loop (all eight broadcasts
    /// first), and the 24 accumulators of a three-ymm block spilled to the stack. They are
    /// passed by value: a reference would pin them to the stack for the whole loop.
    ///
    /// # Safety
    /// As [`tile`].
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn store<const NZ: usize, const NY: usize>(a: &Args<'_>, cz: [[__m512; NZ]; MR], cy: [[__m256; NY]; MR]) {
        let zmask = |v: usize| if v + 1 == NZ && NY == 0 { a.last_mask } else { u16::MAX };
        let ymask = |v: usize| if v + 1 == NY { a.last_mask as u8 } else { u8::MAX };
        for r in 0..MR {
            for (v, &acc) in cz[r].iter().enumerate() {
                let (m, at) = (zmask(v), a.col + LANES * v);
                let mut y = acc;
                if !a.bias.is_null() {
                    y = _mm512_add_ps(y, unsafe { _mm512_maskz_loadu_ps(m, a.bias.add(at)) });
                }
                if let Some(res) = a.res {
                    y = _mm512_add_ps(y, unsafe { _mm512_maskz_loadu_ps(m, res[r].add(at)) });
                }
                if a.relu {
                    y = _mm512_max_ps(y, _mm512_setzero_ps());
                }
                unsafe { _mm512_mask_storeu_ps(a.dst[r].add(at), m, y) };
            }
            for (v, &acc) in cy[r].iter().enumerate() {
                let (m, at) = (ymask(v), a.col + LANES * NZ + 8 * v);
                let mut y = acc;
                if !a.bias.is_null() {
                    y = _mm256_add_ps(y, unsafe { _mm256_maskz_loadu_ps(m, a.bias.add(at)) });
                }
                if let Some(res) = a.res {
                    y = _mm256_add_ps(y, unsafe { _mm256_maskz_loadu_ps(m, res[r].add(at)) });
                }
                if a.relu {
                    y = _mm256_max_ps(y, _mm256_setzero_ps());
                }
                unsafe { _mm256_mask_storeu_ps(a.dst[r].add(at), m, y) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::KernelMap;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    /// The SIMD and portable paths agree bit for bit (same sums, same order, same epilogue)
    /// and equal the f64 conv, on shapes with partial tiles, masked vectors, wide outputs and
    /// a large volume, with and without the bias, the residual and the ReLU.
    #[test]
    fn fused_gather_matches_the_f64_conv() {
        for (cin, cout, volume) in [
            (4, 8, 27),
            (13, 40, 8),
            (64, 96, 27),
            (24, 24, 27),
            (5, 20, 27),
            (7, 28, 8),
            (9, 12, 27),
            (3, 70, 125),
            (1, 1, 1),
        ] {
            let (n_in, n_out) = (300, 203);
            let m = KernelMap::random(n_in, n_out, volume, cin as u64 + cout as u64);
            let x = values(n_in * cin, 7);
            let w = values(volume * cin * cout, 3);
            let bias = values(cout, 11);
            let residual = values(n_out * cout, 5);
            let p = ConvProblem { map: &m, x: &x, cin, w: &w, cout };
            let epilogues = [
                HostEpilogue::default(),
                HostEpilogue { bias: Some(&bias), residual: None, act: Activation::Relu },
                HostEpilogue { bias: Some(&bias), residual: Some(&residual), act: Activation::Relu },
                HostEpilogue { bias: None, residual: Some(&residual), act: Activation::None },
            ];
            for (sorted, epi) in [false, true].into_iter().flat_map(|s| epilogues.iter().map(move |e| (s, e))) {
                let portable = run_with(&p, sorted, epi, false);
                for o in 0..n_out {
                    for c in 0..cout {
                        let conv: f64 = m
                            .row(o)
                            .iter()
                            .enumerate()
                            .filter(|(_, i)| **i >= 0)
                            .flat_map(|(k, &i)| (0..cin).map(move |j| (k, i as usize, j)))
                            .map(|(k, i, j)| x[i * cin + j] as f64 * w[(k * cin + j) * cout + c] as f64)
                            .sum();
                        let mut want = conv
                            + epi.bias.map_or(0.0, |b| b[c] as f64)
                            + epi.residual.map_or(0.0, |r| r[o * cout + c] as f64);
                        if epi.act == Activation::Relu {
                            want = want.max(0.0);
                        }
                        let got = portable[o * cout + c] as f64;
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{cin}→{cout} K{volume} [{o},{c}]: {got} vs {want}"
                        );
                    }
                }
                if has_simd() {
                    let simd = run_with(&p, sorted, epi, true);
                    assert!(simd.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()), "avx512 ≠ portable");
                }
            }
        }
    }
}
