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

use super::{ConvProblem, RowsPtr};
use crate::backend::{MICRO_ROWS as MR, ROW_TILE, RowOrder, TilePlan};

/// Outputs per vector.
const LANES: usize = 16;

/// Whether this CPU runs the AVX-512 kernel.
pub(in crate::backend::cpu) fn has_simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

pub(super) fn run(p: &ConvProblem<'_>, sorted: bool) -> Vec<f32> {
    run_with(p, sorted, has_simd())
}

fn run_with(p: &ConvProblem<'_>, sorted: bool, simd: bool) -> Vec<f32> {
    let (map, cin, cout) = (p.map, p.cin, p.cout);
    let mut y = vec![0.0f32; map.n_out * cout];
    if map.n_out == 0 || cout == 0 {
        return y;
    }
    // Cached on the map: every layer on it walks the same plan.
    let plan = map.tile_plan(if sorted { RowOrder::Sorted } else { RowOrder::Window });
    let zeros = vec![0.0f32; cin.max(1)];
    let out = RowsPtr::new(&mut y, cout);
    let per_chunk = ROW_TILE / MR;
    (0..plan.tiles().div_ceil(per_chunk)).into_par_iter().for_each_init(
        || (vec![0.0f32; cout], Vec::with_capacity(per_chunk)),
        |(spill, rows), c| {
            let tiles = c * per_chunk..((c + 1) * per_chunk).min(plan.tiles());
            // The rows each micro-tile writes: every output row appears once in the plan, so
            // this chunk owns them; slots past the map's end go to the spill row.
            rows.clear();
            rows.extend(tiles.clone().map(|t| {
                let tile = plan.tile_rows(t);
                std::array::from_fn(|r| match tile.get(r) {
                    // SAFETY: see above (one owner per output row).
                    Some(&o) => unsafe { out.row_mut(o as usize) }.as_mut_ptr(),
                    None => spill.as_mut_ptr(),
                })
            }));
            let chunk = Chunk { p, plan: &plan, zeros: &zeros, tiles, rows };
            if simd {
                simd_tiles(&chunk);
            } else {
                portable_tiles(&chunk);
            }
        },
    );
    y
}

/// One chunk's micro-tiles and where they read and write.
struct Chunk<'a> {
    p: &'a ConvProblem<'a>,
    plan: &'a TilePlan,
    /// `[cin]` zeros, the row a missing neighbour reads.
    zeros: &'a [f32],
    tiles: std::ops::Range<usize>,
    /// Per micro-tile, its rows' output pointers (`cout` writable values each).
    rows: &'a [[*mut f32; MR]],
}

/// The portable path: the same sums in the same order as the SIMD kernel (per output, over
/// the tile's offsets ascending, then input channels).
fn portable_tiles(c: &Chunk<'_>) {
    let (x, w, cin, cout) = (c.p.x, c.p.w, c.p.cin, c.p.cout);
    let mut acc = vec![0.0f32; cout];
    for (t, rows) in c.tiles.clone().zip(c.rows) {
        let (ks, inputs) = c.plan.tile(t);
        for (r, &dst) in rows.iter().enumerate() {
            acc.fill(0.0);
            for (&k, idx) in ks.iter().zip(inputs) {
                let i = idx[r] as usize;
                let xr = if idx[r] == TilePlan::ABSENT { c.zeros } else { &x[i * cin..(i + 1) * cin] };
                for (j, &v) in xr.iter().enumerate() {
                    let row = (k as usize * cin + j) * cout;
                    for (a, &ww) in acc.iter_mut().zip(&w[row..row + cout]) {
                        *a = v.mul_add(ww, *a);
                    }
                }
            }
            // SAFETY: `dst` points at `cout` values this chunk owns (see `run_with`).
            unsafe { std::slice::from_raw_parts_mut(dst, cout) }.copy_from_slice(&acc);
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
        let mut col = 0;
        while col < cout {
            let width = (cout - col).min(2 * LANES);
            let nb = width.div_ceil(LANES);
            let tail = width - (nb - 1) * LANES;
            let last_mask = if tail == LANES { u16::MAX } else { (1u16 << tail) - 1 };
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
                    rows,
                };
                // SAFETY: bounds as asserted above and guaranteed by `TilePlan`; rows own
                // `cout` values each; the CPU has AVX-512F (`has_simd`, checked by the caller).
                unsafe { if nb == 2 { x86::tile::<2>(&args) } else { x86::tile::<1>(&args) } }
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

    /// A micro-kernel's operands (see `super::Chunk`) and its column block `col ..
    /// col + 16·NB`, the last vector masked by `last_mask`.
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
        pub rows: &'a [*mut f32; MR],
    }

    /// `rows[r][col..] = Σ_t Σ_j x[inputs[t][r]][j] · w[ks[t]][j][col..]` for `MR` rows ×
    /// `NB` vectors, accumulated in registers.
    ///
    /// # Safety
    /// The CPU has AVX-512F; every input row other than [`TilePlan::ABSENT`] is `< n_in` with
    /// `x` holding `n_in × cin` values, `zeros` holds `cin`, `w` holds `K × cin × cout` with
    /// every `ks[t] < K`, every `rows[r]` holds `cout` writable values, and
    /// `col + 16·(NB − 1) < cout`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile<const NB: usize>(a: &Args<'_>) {
        let mask = |j: usize| if j + 1 == NB { a.last_mask } else { u16::MAX };
        let row = |i: u32| if i == TilePlan::ABSENT { a.zeros } else { unsafe { a.x.add(i as usize * a.cin) } };
        let mut c = [[_mm512_setzero_ps(); NB]; MR];
        for (t, (idx, &k)) in a.inputs.iter().zip(a.ks).enumerate() {
            // SAFETY (every pointer below): the caller's contract.
            let wk = unsafe { a.w.add(k as usize * a.cin * a.cout + a.col) };
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
                let mut b = [_mm512_setzero_ps(); NB];
                for (v, b) in b.iter_mut().enumerate() {
                    *b = unsafe { _mm512_maskz_loadu_ps(mask(v), wk.add(j * a.cout + LANES * v)) };
                }
                for r in 0..MR {
                    let x = _mm512_set1_ps(unsafe { xr[r].add(j).read() });
                    for v in 0..NB {
                        c[r][v] = _mm512_fmadd_ps(x, b[v], c[r][v]);
                    }
                }
            }
        }
        for (r, acc) in c.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                unsafe { _mm512_mask_storeu_ps(a.rows[r].add(a.col + LANES * v), mask(v), *acc) };
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

    /// The SIMD and portable paths agree bit for bit (same sums, same order) and equal the
    /// f64 conv, on shapes with partial tiles, masked vectors, wide outputs and a large volume.
    #[test]
    fn fused_gather_matches_the_f64_conv() {
        for (cin, cout, volume) in [(4, 8, 27), (13, 40, 8), (64, 96, 27), (24, 24, 27), (3, 70, 125), (1, 1, 1)] {
            let (n_in, n_out) = (300, 203);
            let m = KernelMap::random(n_in, n_out, volume, cin as u64 + cout as u64);
            let x = values(n_in * cin, 7);
            let w = values(volume * cin * cout, 3);
            let p = ConvProblem { map: &m, x: &x, cin, w: &w, cout };
            for sorted in [false, true] {
                let portable = run_with(&p, sorted, false);
                for o in 0..n_out {
                    for c in 0..cout {
                        let want: f64 = m
                            .row(o)
                            .iter()
                            .enumerate()
                            .filter(|(_, i)| **i >= 0)
                            .flat_map(|(k, &i)| (0..cin).map(move |j| (k, i as usize, j)))
                            .map(|(k, i, j)| x[i * cin + j] as f64 * w[(k * cin + j) * cout + c] as f64)
                            .sum();
                        let got = portable[o * cout + c] as f64;
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{cin}→{cout} K{volume} [{o},{c}]: {got} vs {want}"
                        );
                    }
                }
                if has_simd() {
                    let simd = run_with(&p, sorted, true);
                    assert!(simd.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()), "avx512 ≠ portable");
                }
            }
        }
    }
}
