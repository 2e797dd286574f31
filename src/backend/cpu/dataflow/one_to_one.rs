//! Maps where every output has at most one input: a transposed conv whose kernel equals its
//! stride (the U-Nets' k2 s2 up-sampling), where each coarse row fans out to its children.
//! The general dataflows run such a map at a few tens of GFLOP/s: their tile plans and
//! offset loops are built for rows with many inputs. Two forms instead:
//! - input-stationary ([`run`]): one dense GEMM `X · [W_0 | W_1 | … | W_{K−1}]` gives every
//!   input row's product for every offset, and each output row is its input's block for its
//!   offset. Worth it where most of those products are used: 2-D images, whose coarse pixels
//!   have nearly all four children;
//! - row by row ([`run_rows`]): each output row is its input row times its offset's weights,
//!   with the epilogue, accumulated in registers and stored once. LiDAR voxels (about 2.4 of
//!   8 children per coarse voxel).

use rayon::prelude::*;

use super::{ConvProblem, HostEpilogue};
use crate::backend::cpu::gemm::sgemm_vec;
use crate::backend::{Activation, KernelMap};

/// An output row without input ([`single_inputs`]).
const NONE: u32 = u32::MAX;

/// How a map with at most one input per output runs ([`classify`]).
pub enum OneInput {
    /// As one dense GEMM ([`run`]).
    Gemm(Vec<(u32, u32)>),
    /// Row by row ([`run_rows`]).
    Rows(Vec<(u32, u32)>),
}

/// The input and offset of every output row (`NONE` for a row without one) if none has more
/// than one, with the form to run it in: the GEMM where at least half of its `n_in × K`
/// products would be used, row by row otherwise if the layer is narrow (`cin · cout` ≤
/// [`ROWS_MAX_WEIGHTS`]). `None` for maps with several inputs per output (every map but a
/// transposed kernel-equals-stride one; rejected at the first rows) and for wide sparse layers,
/// which the dataflows run faster.
pub fn classify(map: &KernelMap, cin: usize, cout: usize) -> Option<OneInput> {
    if map.n_out == 0 || map.volume < 2 || map.identity.is_some() {
        return None;
    }
    let dense = 2 * map.n_out >= map.volume * map.n_in;
    if !dense && cin * cout > ROWS_MAX_WEIGHTS {
        return None;
    }
    let several = |o: usize| map.row(o).iter().filter(|&&i| i >= 0).count() > 1;
    if (0..map.n_out.min(64)).any(several) {
        return None;
    }
    let single = single_inputs(map)?;
    Some(if dense { OneInput::Gemm(single) } else { OneInput::Rows(single) })
}

/// The widest layer (`cin · cout` weights per offset) that runs row by row. The row kernel
/// loads each weight vector once per output row, the fused-gather tiles once per 8 rows: in
/// the LiDAR U-Nets' up-sampling, rows won at 24 → 24 and 32 → 24 (4.2 against 5.6 ms, 2.0
/// against 2.4), tied at 64 → 32 and 64 → 64, and lost from 48 → 48 on (13.3 against 10.3
/// ms; 256 → 256: 18.0 against 5.8).
pub const ROWS_MAX_WEIGHTS: usize = 32 * 32;

/// The input and offset of every output row (`NONE` for a row without one), if none has
/// more than one; otherwise `None`.
fn single_inputs(map: &KernelMap) -> Option<Vec<(u32, u32)>> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let several = AtomicBool::new(false);
    let mut single = vec![(NONE, 0u32); map.n_out];
    single.par_chunks_mut(ROWS).enumerate().for_each(|(c, chunk)| {
        for (o, s) in chunk.iter_mut().enumerate() {
            for (k, &i) in map.row(c * ROWS + o).iter().enumerate() {
                if i >= 0 {
                    if s.0 != NONE {
                        several.store(true, Ordering::Relaxed);
                        return;
                    }
                    *s = (i as u32, k as u32);
                }
            }
        }
    });
    (!several.into_inner()).then_some(single)
}

/// `Y [n_out × cout]` of the conv through one GEMM, `single` from [`single_inputs`], with
/// the epilogue applied as each chunk of output rows is written (no pass of its own).
pub fn run(p: &ConvProblem<'_>, single: &[(u32, u32)], epi: &HostEpilogue<'_>) -> Vec<f32> {
    let (cin, cout, kv) = (p.cin, p.cout, p.map.volume);
    let n_out = p.map.n_out;
    // Weights `[K][cin][cout]` side by side: `[cin][K·cout]`.
    let mut wide = vec![0f32; cin * kv * cout];
    for k in 0..kv {
        for c in 0..cin {
            wide[(c * kv + k) * cout..][..cout].copy_from_slice(&p.w[(k * cin + c) * cout..][..cout]);
        }
    }
    let all = sgemm_vec(p.map.n_in, cin, kv * cout, p.x, &wide, true);
    let mut y: Vec<f32> = Vec::with_capacity(n_out * cout);
    if cout > 0 {
        const ROWS: usize = 512;
        let chunks = y.spare_capacity_mut()[..n_out * cout].par_chunks_mut(ROWS * cout);
        chunks.zip(single.par_chunks(ROWS)).enumerate().for_each(|(c, (out, single))| {
            for (row, &(i, k)) in out.chunks_exact_mut(cout).zip(single) {
                let from = if i == NONE { None } else { Some(&all[(i as usize * kv + k as usize) * cout..][..cout]) };
                for (j, v) in row.iter_mut().enumerate() {
                    v.write(from.map_or(0.0, |f| f[j]));
                }
            }
            // SAFETY: every value of the chunk was written just above; `MaybeUninit<f32>`
            // has `f32`'s layout.
            let out = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
            match epi.residual {
                None => super::super::epilogue_rows(out, cout, epi.bias, epi.act),
                // In the other dataflows' order: `act((y + b) + r)`.
                Some(res) => {
                    for (row, res) in out.chunks_exact_mut(cout).zip(res[c * ROWS * cout..].chunks_exact(cout)) {
                        for (j, (v, r)) in row.iter_mut().zip(res).enumerate() {
                            *v = epi.act.apply(*v + epi.bias.map_or(0.0, |b| b[j]) + r);
                        }
                    }
                }
            }
        });
    }
    // SAFETY: all n_out × cout values were written (none when cout = 0).
    unsafe { y.set_len(n_out * cout) };
    y
}

/// Output rows per rayon task in [`run_rows`].
const ROWS: usize = 256;

/// `Y [n_out × cout]` of the conv row by row: `act(x[i]·W[k] + bias + residual)` for each
/// output row with its one input `i` through offset `k` (`single` from [`classify`]; a row
/// without input gets the epilogue of zero). Columns in blocks of up to 32 whose sums stay in
/// registers over the input's channels (AVX2 where the CPU has it); the weights, padded to
/// whole blocks of 8 columns, stay in cache (a few KB per offset).
pub fn run_rows(p: &ConvProblem<'_>, single: &[(u32, u32)], epi: &HostEpilogue<'_>) -> Vec<f32> {
    let (cin, cout, n_out) = (p.cin, p.cout, p.map.n_out);
    let mut y = vec![0f32; n_out * cout];
    if cout == 0 {
        return y;
    }
    let (w, bias) = padded_operands(p.w, cout, epi.bias);
    let block = RowBlock { x: p.x, cin, cout, w: &w, padded: bias.len(), bias: &bias, act: epi.act };
    y.par_chunks_mut(ROWS * cout).zip(single.par_chunks(ROWS)).enumerate().for_each(|(c, (out, single))| {
        let res = epi.residual.map(|r| &r[c * ROWS * cout..][..out.len()]);
        #[cfg(target_arch = "x86_64")]
        if crate::backend::cpu::dense::avx2_fma() {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { block.rows_avx2(out, single, res) };
        }
        block.rows(out, single, res);
    });
    y
}

/// The weights `[K·cin × cout]` and bias `[cout]` (zeros without one) with every row padded
/// with zeros to whole vectors of 8.
fn padded_operands(w: &[f32], cout: usize, bias: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    let padded = cout.next_multiple_of(8);
    let mut wp = vec![0f32; w.len() / cout * padded];
    for (dst, src) in wp.chunks_exact_mut(padded).zip(w.chunks_exact(cout)) {
        dst[..cout].copy_from_slice(src);
    }
    let mut bp = vec![0f32; padded];
    if let Some(b) = bias {
        bp[..cout].copy_from_slice(b);
    }
    (wp, bp)
}

/// [`run_rows`]'s operands: weights `[K][cin][padded]` and bias `[padded]` padded with zeros.
struct RowBlock<'a> {
    x: &'a [f32],
    cin: usize,
    cout: usize,
    w: &'a [f32],
    padded: usize,
    bias: &'a [f32],
    act: Activation,
}

impl RowBlock<'_> {
    /// Column blocks of up to 32 (the padded width is a multiple of 8).
    #[inline(always)]
    fn each_block(&self, mut f: impl FnMut(usize, usize)) {
        let mut col = 0;
        while col < self.padded {
            let n = (self.padded - col).min(32);
            f(col, n);
            col += n;
        }
    }

    /// Row `r`'s sums for columns `col..` (`acc`, padded) through the epilogue into `row`.
    #[inline(always)]
    fn store(&self, row: &mut [f32], r: usize, res: Option<&[f32]>, col: usize, acc: &[f32]) {
        let width = acc.len().min(self.cout - col);
        let dst = &mut row[col..col + width];
        match res {
            Some(res) => {
                let res = &res[r * self.cout + col..][..width];
                for ((d, &a), &rv) in dst.iter_mut().zip(acc).zip(res) {
                    *d = self.act.apply(a + rv);
                }
            }
            None => {
                for (d, &a) in dst.iter_mut().zip(acc) {
                    *d = self.act.apply(a);
                }
            }
        }
    }

    /// The input row and offset weights `[cin][padded]` of an output row, if it has an input.
    #[inline(always)]
    fn operands(&self, (i, k): (u32, u32)) -> Option<(&[f32], &[f32])> {
        let (cin, padded) = (self.cin, self.padded);
        (i != NONE).then(|| (&self.x[i as usize * cin..][..cin], &self.w[k as usize * cin * padded..][..cin * padded]))
    }

    fn rows(&self, out: &mut [f32], single: &[(u32, u32)], res: Option<&[f32]>) {
        self.each_block(|col, n| {
            for (r, (row, &s)) in out.chunks_exact_mut(self.cout).zip(single).enumerate() {
                let mut acc = [0f32; 32];
                acc[..n].copy_from_slice(&self.bias[col..col + n]);
                if let Some((xr, wk)) = self.operands(s) {
                    for (&v, wr) in xr.iter().zip(wk.chunks_exact(self.padded)) {
                        for (a, &ww) in acc[..n].iter_mut().zip(&wr[col..col + n]) {
                            *a = v.mul_add(ww, *a);
                        }
                    }
                }
                self.store(row, r, res, col, &acc[..n]);
            }
        });
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2(&self, out: &mut [f32], single: &[(u32, u32)], res: Option<&[f32]>) {
        // The weights and bias as vectors: loads through slices of `__m256` carry no
        // per-load pointer checks in this build (debug assertions on), whose loads
        // through `_mm256_loadu_ps` went by way of the stack.
        let vectors = |v: &[f32]| -> Vec<x86::__m256> {
            v.chunks_exact(8).map(|c| x86::to_vector(c.try_into().expect("8 values"))).collect()
        };
        let (w, bias) = (vectors(self.w), vectors(self.bias));
        self.each_block(|col, n| match n / 8 {
            1 => self.block_avx2::<1>(out, single, res, col, &w, &bias),
            2 => self.block_avx2::<2>(out, single, res, col, &w, &bias),
            3 => self.block_avx2::<3>(out, single, res, col, &w, &bias),
            _ => self.block_avx2::<4>(out, single, res, col, &w, &bias),
        });
    }

    /// Columns `col..col + 8·V` of every row, `V` vectors of sums in registers; `w` and
    /// `bias` are [`RowBlock`]'s as vectors of 8.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    fn block_avx2<const V: usize>(
        &self,
        out: &mut [f32],
        single: &[(u32, u32)],
        res: Option<&[f32]>,
        col: usize,
        w: &[x86::__m256],
        bias: &[x86::__m256],
    ) {
        use x86::*;
        let (cin, per_row, first) = (self.cin, self.padded / 8, col / 8);
        let bias: &[__m256; V] = bias[first..first + V].try_into().expect("V vectors");
        for (r, (row, &(i, k))) in out.chunks_exact_mut(self.cout).zip(single).enumerate() {
            let mut acc = *bias;
            if i != NONE {
                let xr = &self.x[i as usize * cin..][..cin];
                let wk = &w[k as usize * cin * per_row..][..cin * per_row];
                for (&x, wr) in xr.iter().zip(wk.chunks_exact(per_row)) {
                    let wr: &[__m256; V] = wr[first..first + V].try_into().expect("V vectors");
                    let b = _mm256_set1_ps(x);
                    for (a, &wv) in acc.iter_mut().zip(wr) {
                        *a = _mm256_fmadd_ps(b, wv, *a);
                    }
                }
            }
            let width = (8 * V).min(self.cout - col);
            let relu = match self.act {
                Activation::Relu => true,
                Activation::None => false,
                Activation::Gelu => {
                    let sums: [[f32; 8]; V] = acc.map(from_vector);
                    self.store(row, r, res, col, sums.as_flattened());
                    continue;
                }
            };
            // Whole vectors stored as vectors, a last partial one value by value.
            let res = res.map(|res| &res[r * self.cout + col..][..width]);
            let dst = &mut row[col..col + width];
            for (v, &a) in acc.iter().enumerate() {
                let n = (width - (8 * v).min(width)).min(8);
                let mut y = a;
                let full = n == 8;
                if let Some(res) = res {
                    let rv: [f32; 8] = if full {
                        res[8 * v..8 * v + 8].try_into().expect("8 values")
                    } else {
                        std::array::from_fn(|j| if j < n { res[8 * v + j] } else { 0.0 })
                    };
                    y = _mm256_add_ps(y, to_vector(rv));
                }
                if relu {
                    y = _mm256_max_ps(y, _mm256_setzero_ps());
                }
                let y = from_vector(y);
                if full {
                    let d: &mut [f32; 8] = (&mut dst[8 * v..8 * v + 8]).try_into().expect("8 values");
                    *d = y;
                } else {
                    dst[8 * v..].iter_mut().zip(y).for_each(|(d, y)| *d = y);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    pub use std::arch::x86_64::*;

    #[inline(always)]
    pub fn to_vector(v: [f32; 8]) -> __m256 {
        // SAFETY: `__m256` is eight `f32`s.
        unsafe { std::mem::transmute(v) }
    }

    #[inline(always)]
    pub fn from_vector(v: __m256) -> [f32; 8] {
        // SAFETY: as above.
        unsafe { std::mem::transmute(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ConvGeom;
    use crate::backend::cpu::kmap::strided;

    /// The transposed map of a 2-D k2 s2 down-sampling (pixels of a 9 × 7 image with a few
    /// missing) runs as one GEMM and equals the implicit GEMM over the same map.
    #[test]
    fn transposed_k2_equals_the_implicit_gemm() {
        let coords: Vec<[i32; 4]> =
            (0..9).flat_map(|u| (0..7).map(move |v| [0, u, v, 0])).filter(|c| (c[1] * 7 + c[2]) % 11 != 3).collect();
        let geom = ConvGeom { kernel: [2, 2, 1], stride: [2, 2, 1], padding: [0; 3], dilation: [1; 3] };
        let (_, _, down) = strided(&coords, [9, 7, 1], &geom);
        let up = down.transposed();
        let Some(OneInput::Gemm(single)) = classify(&up, 5, 3) else { panic!("one input per output, densely") };
        assert_eq!(single.len(), coords.len());
        // The last column and row (odd sizes) have no coarse parent.
        assert!(single.iter().any(|&(i, _)| i == NONE) && single.iter().any(|&(i, _)| i != NONE));
        let (cin, cout) = (5, 3);
        let x: Vec<f32> = (0..up.n_in * cin).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let w: Vec<f32> = (0..up.volume * cin * cout).map(|i| ((i * 53 % 29) as f32 - 14.0) / 9.0).collect();
        let p = ConvProblem { map: &up, x: &x, cin, w: &w, cout };
        let want = super::super::implicit_gemm::run(&p, false, 1);
        let none = HostEpilogue { bias: None, residual: None, act: Activation::None };
        let got = run(&p, &single, &none);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    /// A sparse 3-D up-sampling (voxels with 1-3 of their parent's 8 children; the odd range's
    /// last plane without a parent) runs row by row and equals the implicit GEMM with the same
    /// epilogue, for widths below one vector, of whole vectors and past one block of 32, with
    /// and without bias, residual and ReLU, on the SIMD and the portable path; down-sampling
    /// and submanifold maps are not one-input maps.
    #[test]
    fn sparse_transposed_k2_runs_row_by_row() {
        let mut s = 11u64;
        let mut next = |m: i32| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % m as u64) as i32
        };
        let mut fine: Vec<[i32; 4]> =
            (0..700).map(|_| [next(2), 2 * next(20) + next(2), 2 * next(20) + next(2), next(41)]).collect();
        fine.sort_unstable();
        fine.dedup();
        let range = [40, 40, 41];
        let (_, _, down) = strided(&fine, range, &ConvGeom::cube(2, 2));
        assert!(classify(&down, 4, 3).is_none(), "several children per coarse voxel");
        let sub = crate::backend::cpu::kmap::submanifold(&fine, range, &ConvGeom::cube(3, 1));
        assert!(classify(&sub, 4, 3).is_none());
        let up = down.transposed();
        assert!(classify(&up, 48, 48).is_none(), "wide layers run through the dataflows");
        let Some(OneInput::Rows(single)) = classify(&up, 24, 24) else { panic!("sparse one-input map") };
        assert!(single.iter().any(|&(i, _)| i == NONE), "z = 40 has no parent");
        for (cin, cout) in [(4, 3), (24, 24), (7, 37)] {
            let x: Vec<f32> = (0..up.n_in * cin).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
            let w: Vec<f32> = (0..up.volume * cin * cout).map(|i| ((i * 53 % 29) as f32 - 14.0) / 9.0).collect();
            let bias: Vec<f32> = (0..cout).map(|j| j as f32 / 5.0 - 2.0).collect();
            let residual: Vec<f32> = (0..up.n_out * cout).map(|i| ((i * 13 % 17) as f32 - 8.0) / 3.0).collect();
            let p = ConvProblem { map: &up, x: &x, cin, w: &w, cout };
            let sums = super::super::implicit_gemm::run(&p, false, 1);
            for (bias, residual, act) in [
                (None, None, Activation::None),
                (Some(&bias[..]), None, Activation::Relu),
                (Some(&bias[..]), Some(&residual[..]), Activation::Relu),
            ] {
                let epi = HostEpilogue { bias, residual, act };
                let mut want = sums.clone();
                crate::backend::cpu::epilogue_with_residual(&mut want, cout, &epi);
                let got = run_rows(&p, &single, &epi);
                // The portable path over the same operands.
                let (wp, bp) = padded_operands(&w, cout, bias);
                let block = RowBlock { x: &x, cin, cout, w: &wp, padded: bp.len(), bias: &bp, act };
                let mut portable = vec![f32::NAN; up.n_out * cout];
                block.rows(&mut portable, &single, residual);
                for (i, ((a, p), b)) in got.iter().zip(&portable).zip(&want).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{cout} columns, value {i}: {a} vs {b}");
                    assert!((p - b).abs() <= 1e-5 * (1.0 + b.abs()), "portable, value {i}: {p} vs {b}");
                }
            }
        }
    }
}
