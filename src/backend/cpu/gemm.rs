//! Single-precision GEMM on the CPU: ndarray's `matrixmultiply` kernels (packed, SIMD,
//! single-threaded; parallelism comes from the callers' row tiles under rayon).

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};

/// `C[m×n] = A[m×k]·B[k×n] + beta·C`, all row-major and contiguous.
#[inline]
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    let a = ArrayView2::from_shape((m, k), &a[..m * k]).expect("A is m×k");
    let b = ArrayView2::from_shape((k, n), &b[..k * n]).expect("B is k×n");
    let mut c = ArrayViewMut2::from_shape((m, n), &mut c[..m * n]).expect("C is m×n");
    general_mat_mul(1.0, &a, &b, beta, &mut c);
}

/// This machine's SGEMM throughput in GFLOP/s: `A[m×k]·B[k×n]` split into row tiles of
/// `tile` rows over rayon, the way the dataflows call [`sgemm`]; best of `reps` timings.
pub fn measure_sgemm(m: usize, k: usize, n: usize, tile: usize, reps: usize) -> f64 {
    use rayon::prelude::*;
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 97) as f32 * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 89) as f32 * 0.01).collect();
    let mut c = vec![0.0f32; m * n];
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = std::time::Instant::now();
        c.par_chunks_mut(tile * n).zip(a.par_chunks(tile * k)).for_each(|(c, a)| {
            let rows = c.len() / n;
            sgemm(rows, k, n, a, &b, 0.0, c);
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    #[test]
    fn sgemm_matches_naive() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut c = vec![1.0f32; m * n];
        super::sgemm(m, k, n, &a, &b, 1.0, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-4);
            }
        }
    }
}
