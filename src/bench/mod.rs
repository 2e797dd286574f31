//! `scenetok bench`: benchmarks that measure real work against a baseline run in the same
//! invocation (these machines are noisy; only same-run ratios mean something).

pub mod gemm;
pub mod image;
pub mod io;
pub mod metrics;
pub mod sparse_cases;
pub mod viz;

/// The median of `v` (the upper one for an even count); 0 for none.
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
