//! Single-precision GEMM on the CPU, the one every CPU model calls: the `gemm` crate's packed
//! kernels (the crate candle uses), with AVX-512 micro-kernels where the CPU has them and AVX2 /
//! FMA otherwise, chosen at run time. [`sgemm`] runs on the calling thread (the sparse
//! dataflows parallelise over row tiles themselves); [`sgemm_parallel`] spreads one product
//! over rayon's pool. ndarray's `matrixmultiply` (the previous engine) stays available as
//! [`sgemm_matrixmultiply`] so `scenetok bench gemm` can show what changed.

use std::mem::MaybeUninit;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// `C[m×n] = A[m×k]·B[k×n] + beta·C`, all row-major and contiguous, on this thread.
#[inline]
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    run(m, k, n, a, b, beta, c, gemm::Parallelism::None);
}

/// [`sgemm`] with the product split over rayon's threads.
pub fn sgemm_parallel(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    run(m, k, n, a, b, beta, c, par);
}

/// `C[m×n] = A[m×k]·B[k×n]` into memory not yet initialised (a fresh output: no pass to zero
/// it first, which the transformer's many small GEMMs pay for); every element of `c` is
/// written, and returned as initialised. `parallel`: split over rayon's threads.
pub fn sgemm_uninit<'c>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    c: &'c mut [MaybeUninit<f32>],
    parallel: bool,
) -> &'c mut [f32] {
    let c = &mut c[..m * n];
    if k == 0 {
        c.iter_mut().for_each(|x| {
            x.write(0.0);
        });
    } else if m > 0 && n > 0 {
        let threads = rayon::current_num_threads();
        let par = if parallel && threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        // SAFETY: `c` holds exactly m×n values; with beta = 0 the kernel writes every one of
        // them and reads none (`read_dst` is false).
        let (a, b) = (View::new(&a[..m * k], m, k, k, 1), View::new(&b[..k * n], k, n, n, 1));
        unsafe { gemm_raw(a, b, 1.0, 0.0, c.as_mut_ptr().cast::<f32>(), n, par) };
    }
    // SAFETY: every element was written above (m×n of them; none when m or n is 0), and
    // `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { std::slice::from_raw_parts_mut(c.as_mut_ptr().cast::<f32>(), c.len()) }
}

/// `A[m×k]·B[k×n]` as a new row-major vector, written once (no zeroing pass).
pub fn sgemm_vec(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], parallel: bool) -> Vec<f32> {
    let mut c = Vec::with_capacity(m * n);
    sgemm_uninit(m, k, n, a, b, &mut c.spare_capacity_mut()[..m * n], parallel);
    // SAFETY: `sgemm_uninit` wrote all m·n values.
    unsafe { c.set_len(m * n) };
    c
}

#[allow(clippy::too_many_arguments)]
fn run(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32], par: gemm::Parallelism) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 {
        // An empty sum: C = beta·C (and exactly 0 for beta = 0, whatever C held).
        c.iter_mut().for_each(|x| *x = if beta == 0.0 { 0.0 } else { *x * beta });
        return;
    }
    let (a, b) = (View::new(&a[..m * k], m, k, k, 1), View::new(&b[..k * n], k, n, n, 1));
    // SAFETY: both views are contiguous over exactly their slices; C is m×n values, borrowed
    // mutably, so it aliases neither.
    unsafe { gemm_raw(a, b, 1.0, beta, c.as_mut_ptr(), n, par) };
}

/// The crate's one call, for every entry point here: `C = alpha·A·B + beta·C`, C at
/// `c[i·c_row_stride + j]`; with `beta == 0` C is written and never read.
///
/// # Safety
/// Every element `a` and `b` address lies inside their slices; `c` points to `a.rows` rows of
/// `c_row_stride` values with `b.cols` of each writable, aliasing neither operand; with
/// `beta != 0` those values are initialised.
unsafe fn gemm_raw(
    a: View<'_>,
    b: View<'_>,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    c_row_stride: usize,
    par: gemm::Parallelism,
) {
    debug_assert!(a.cols == b.rows);
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            c,
            1,
            c_row_stride as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            // The crate computes dst = alpha·dst + beta·lhs·rhs: its names are swapped.
            beta,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

/// A matrix inside a slice: element `(i, j)` at `data[i·row_stride + j·col_stride]` (a
/// transposed or column-sliced view costs nothing: attention reads each head's columns and
/// the keys transposed this way).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> View<'a> {
        View { data, rows, cols, row_stride, col_stride }
    }

    /// Every element lies inside `len` values.
    fn fits(rows: usize, cols: usize, rs: usize, cs: usize, len: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    }
}

/// `C = alpha·A·B` (beta = 0) or `C += alpha·A·B` (accumulate) on strided views, on this thread;
/// C is `a.rows × b.cols` at `c[i·c_row_stride + j]`.
///
/// # Panics
/// When the shapes disagree or a view reaches outside its slice (a caller's bug, not data).
pub fn sgemm_view(a: View<'_>, b: View<'_>, alpha: f32, accumulate: bool, c: &mut [f32], c_row_stride: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions of a strided GEMM");
    assert!(View::fits(m, k, a.row_stride, a.col_stride, a.data.len()), "A inside its slice");
    assert!(View::fits(k, n, b.row_stride, b.col_stride, b.data.len()), "B inside its slice");
    assert!(View::fits(m, n, c_row_stride, 1, c.len()), "C inside its slice");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| c[i * c_row_stride..][..n].fill(0.0));
        }
        return;
    }
    // SAFETY: the asserts above put every element the strides address inside the three
    // slices; C is borrowed mutably, so it aliases neither A nor B, and it is initialised.
    let beta = if accumulate { 1.0 } else { 0.0 };
    unsafe { gemm_raw(a, b, alpha, beta, c.as_mut_ptr(), c_row_stride, gemm::Parallelism::None) };
}

/// The previous engine: ndarray's `matrixmultiply`, single-threaded (for comparisons).
pub fn sgemm_matrixmultiply(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let a = ArrayView2::from_shape((m, k), &a[..m * k]).expect("A is m×k");
    let b = ArrayView2::from_shape((k, n), &b[..k * n]).expect("B is k×n");
    let mut c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("C is m×n");
    general_mat_mul(1.0, &a, &b, beta, &mut c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &[f32]) -> Vec<f64> {
        (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                beta as f64 * c[ij] as f64 + (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>()
            })
            .collect()
    }

    /// Every engine equals the f64 product, with and without accumulation, on shapes that
    /// are not multiples of any micro-kernel (and the degenerate ones).
    #[test]
    fn every_engine_matches_the_naive_product() {
        type Engine = fn(usize, usize, usize, &[f32], &[f32], f32, &mut [f32]);
        let engines: [(&str, Engine); 3] =
            [("gemm", sgemm), ("gemm parallel", sgemm_parallel), ("matrixmultiply", sgemm_matrixmultiply)];
        for (m, k, n) in [(5, 7, 3), (1, 1, 1), (37, 70, 33), (300, 129, 65), (4, 0, 3), (0, 4, 3)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.25 - 1.5).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 - 3.0).collect();
            for beta in [0.0, 1.0] {
                let c0: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
                let want = naive(m, k, n, &a, &b, beta, &c0);
                for (name, f) in engines {
                    let mut c = c0.clone();
                    f(m, k, n, &a, &b, beta, &mut c);
                    for (x, w) in c.iter().zip(&want) {
                        assert!(
                            (*x as f64 - w).abs() < 1e-3 * (1.0 + w.abs()),
                            "{name} {m}×{k}×{n} β={beta}: {x} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
