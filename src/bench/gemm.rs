//! `scenetok bench gemm`: the CPU GEMM every model calls ([`crate::backend::cpu::gemm`])
//! against NumPy's OpenBLAS in the same run, on squares and on the sparse engine's shapes.
//!
//! Both sides multiply the same float32 operands (one formula, see
//! `tools/bench/gemm_baseline.py`) into a preallocated C on every thread of the machine, one
//! timer around each product, best of `reps` after a warm-up; the checksums (sum of C in f64)
//! are taken after the timers and must agree. The baseline runs with `OPENBLAS_NUM_THREADS`
//! set to our thread count and without `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE`, which these
//! machines set and which slow OpenBLAS down. Two more rows show how the sparse dataflows call
//! the GEMM (row tiles of 128 over rayon, one single-threaded product per tile) with the new
//! kernels and with the previous ones (ndarray's `matrixmultiply`).

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;
use serde::Deserialize;

use crate::backend::ROW_TILE;
use crate::backend::cpu::gemm::{sgemm, sgemm_matrixmultiply, sgemm_parallel};
use crate::error::{Error, Location, Result};

/// What a shape stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    Square,
    /// One kernel offset of gather-GEMM-scatter: pairs × C_in by C_in × C_out.
    GatherScatter,
    /// Implicit GEMM: voxels × 27·C_in by 27·C_in × C_out.
    ImplicitGemm,
}

impl ShapeKind {
    fn label(self) -> &'static str {
        match self {
            ShapeKind::Square => "square",
            ShapeKind::GatherScatter => "gather-scatter",
            ShapeKind::ImplicitGemm => "implicit GEMM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub kind: ShapeKind,
}

impl Shape {
    fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
}

/// The shapes measured: squares, and the sparse engine's tall-skinny products at the channel
/// widths of MinkUNet (32-256), with as many rows as a full-size frame gives them.
pub fn shapes(quick: bool) -> Vec<Shape> {
    let sq = |s| Shape { m: s, k: s, n: s, kind: ShapeKind::Square };
    let gs = |c| Shape { m: 65536, k: c, n: c, kind: ShapeKind::GatherScatter };
    let ig = |m, c| Shape { m, k: 27 * c, n: c, kind: ShapeKind::ImplicitGemm };
    let mut v = vec![sq(1024), sq(2048)];
    if !quick {
        v.push(sq(4096));
    }
    v.extend([gs(32), gs(64), gs(128), gs(256)]);
    v.extend([ig(65536, 32), ig(32768, 64), ig(16384, 128), ig(8192, 256)]);
    v
}

/// The Python that runs the baseline, and its script.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub python: PathBuf,
    pub script: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GemmOptions {
    pub baseline: Option<Baseline>,
    /// Timed products per side and shape (after one warm-up).
    pub reps: usize,
    /// What to multiply ([`shapes`] for the benchmark).
    pub shapes: Vec<Shape>,
}

/// One shape's best times (seconds) and checksums.
#[derive(Debug, Clone)]
pub struct ShapeResult {
    pub shape: Shape,
    /// Ours, one product over all threads.
    pub ours: f64,
    /// Ours the way the dataflows call it (row tiles over rayon).
    pub ours_tiled: f64,
    /// The previous kernels (`matrixmultiply`), row tiles over rayon.
    pub matrixmultiply_tiled: f64,
    pub baseline: Option<f64>,
    pub checksum: f64,
    pub baseline_checksum: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct GemmBench {
    pub threads: usize,
    pub blas: Option<String>,
    pub results: Vec<ShapeResult>,
}

/// The operand both sides use: `((i·mult) mod modulus)·0.01` in float32.
fn operand(len: usize, mult: usize, modulus: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * mult) % modulus) as f32 * 0.01).collect()
}

/// Best seconds of `reps` calls of `f` after one warm-up.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

type Engine = fn(usize, usize, usize, &[f32], &[f32], f32, &mut [f32]);

fn tiled(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32], engine: Engine) {
    let (k, n) = (s.k, s.n);
    c.par_chunks_mut(ROW_TILE * n).zip(a.par_chunks(ROW_TILE * k)).for_each(|(c, a)| {
        engine(c.len() / n, k, n, a, b, 0.0, c);
    });
}

fn checksum(c: &[f32]) -> f64 {
    c.iter().map(|&x| x as f64).sum()
}

pub fn run(opts: &GemmOptions) -> Result<GemmBench> {
    let shapes = &opts.shapes;
    let mut results = Vec::new();
    for s in shapes {
        let (a, b) = (operand(s.m * s.k, 7919, 97), operand(s.k * s.n, 104_729, 89));
        let mut c = vec![0.0f32; s.m * s.n];
        let ours = best_of(opts.reps, || sgemm_parallel(s.m, s.k, s.n, &a, &b, 0.0, &mut c));
        let sum = checksum(&c);
        let ours_tiled = best_of(opts.reps, || tiled(s, &a, &b, &mut c, sgemm));
        let tiled_sum = checksum(&c);
        let matrixmultiply_tiled = best_of(opts.reps, || tiled(s, &a, &b, &mut c, sgemm_matrixmultiply));
        let mm_sum = checksum(&c);
        for (what, other) in [("tiled", tiled_sum), ("matrixmultiply", mm_sum)] {
            if !agree(sum, other) {
                return Err(Error::invalid(
                    Location::default(),
                    "every engine to compute the same product",
                    format!("{}×{}×{}: checksum {sum} vs {other} ({what})", s.m, s.k, s.n),
                ));
            }
        }
        results.push(ShapeResult {
            shape: *s,
            ours,
            ours_tiled,
            matrixmultiply_tiled,
            baseline: None,
            checksum: sum,
            baseline_checksum: None,
        });
    }
    let threads = rayon::current_num_threads();
    let mut blas = None;
    if let Some(b) = &opts.baseline {
        let out = run_baseline(b, threads, opts.reps, shapes)?;
        for (r, got) in results.iter_mut().zip(&out.shapes) {
            if (got.m, got.k, got.n) != (r.shape.m, r.shape.k, r.shape.n) || !agree(r.checksum, got.checksum) {
                return Err(Error::invalid(
                    Location::file(&b.script),
                    "the same product as scenetok's",
                    format!(
                        "{}×{}×{} (checksum {}) vs {}×{}×{} (checksum {})",
                        r.shape.m, r.shape.k, r.shape.n, r.checksum, got.m, got.k, got.n, got.checksum
                    ),
                ));
            }
            r.baseline = Some(got.seconds);
            r.baseline_checksum = Some(got.checksum);
        }
        blas = Some(format!("NumPy {} ({})", out.numpy, out.blas.trim()));
    }
    Ok(GemmBench { threads, blas, results })
}

/// Checksums of one product summed in different orders agree to float32 rounding.
fn agree(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
}

#[derive(Deserialize)]
struct BaselineOut {
    blas: String,
    numpy: String,
    shapes: Vec<BaselineShape>,
}

#[derive(Deserialize)]
struct BaselineShape {
    m: usize,
    k: usize,
    n: usize,
    seconds: f64,
    checksum: f64,
}

/// Our GFLOP/s on `A[m×k]·B[k×n]` the way the sparse dataflows multiply (row tiles over rayon,
/// [`sgemm`] per tile), best of `reps` after a warm-up.
pub fn tiled_gflops(m: usize, k: usize, n: usize, reps: usize) -> f64 {
    let s = Shape { m, k, n, kind: ShapeKind::Square };
    let (a, b) = (operand(m * k, 7919, 97), operand(k * n, 104_729, 89));
    let mut c = vec![0.0f32; m * n];
    s.flops() / best_of(reps, || tiled(&s, &a, &b, &mut c, sgemm)) / 1e9
}

/// OpenBLAS (NumPy) GFLOP/s on plain `(m, k, n)` products, all threads, best of `reps`; and
/// the name of the BLAS. For benches that hold their own kernels against it.
pub fn openblas_gflops(b: &Baseline, reps: usize, shapes: &[(usize, usize, usize)]) -> Result<(String, Vec<f64>)> {
    let shapes: Vec<Shape> = shapes.iter().map(|&(m, k, n)| Shape { m, k, n, kind: ShapeKind::Square }).collect();
    let out = run_baseline(b, rayon::current_num_threads(), reps, &shapes)?;
    let gflops = shapes.iter().zip(&out.shapes).map(|(s, r)| s.flops() / r.seconds / 1e9).collect();
    Ok((format!("NumPy {} ({})", out.numpy, out.blas.trim()), gflops))
}

fn run_baseline(b: &Baseline, threads: usize, reps: usize, shapes: &[Shape]) -> Result<BaselineOut> {
    let list: Vec<String> = shapes.iter().map(|s| format!("{},{},{}", s.m, s.k, s.n)).collect();
    let mut command = std::process::Command::new(&b.python);
    command
        .arg(&b.script)
        .args(["--threads", &threads.to_string(), "--reps", &reps.to_string()])
        .arg(list.join(";"))
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .env_remove("OPENBLAS_CORETYPE")
        .env_remove("OPENBLAS_L2_SIZE");
    super::run_python_json(command, &b.python, &b.script)
}

impl GemmBench {
    /// The table, with the ratios against OpenBLAS and the goals.
    pub fn report(&self) -> String {
        let gf = |s: &Shape, secs: f64| s.flops() / secs / 1e9;
        let mut out = format!(
            "GEMM, float32, {} threads on both sides; best of the timed products; GFLOP/s\nbaseline: {}\n\n",
            self.threads,
            self.blas.as_deref().unwrap_or("none (--no-baseline)")
        );
        out.push_str("| shape (m×k×n) | kind | scenetok | OpenBLAS | scenetok / OpenBLAS | scenetok, dataflow tiles | matrixmultiply, dataflow tiles |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.results {
            let s = &r.shape;
            let (base, ratio) = match r.baseline {
                Some(b) => (format!("{:.1}", gf(s, b)), format!("{:.2}", b / r.ours)),
                None => ("—".into(), "—".into()),
            };
            out.push_str(&format!(
                "| {}×{}×{} | {} | {:.1} | {base} | {ratio} | {:.1} | {:.1} |\n",
                s.m,
                s.k,
                s.n,
                s.kind.label(),
                gf(s, r.ours),
                gf(s, r.ours_tiled),
                gf(s, r.matrixmultiply_tiled)
            ));
        }
        for (kinds, goal, what) in [
            (&[ShapeKind::Square][..], 0.85, "squares"),
            (&[ShapeKind::GatherScatter, ShapeKind::ImplicitGemm][..], 0.70, "sparse engine shapes"),
        ] {
            let ratios: Vec<f64> = self
                .results
                .iter()
                .filter(|r| kinds.contains(&r.shape.kind))
                .filter_map(|r| r.baseline.map(|b| b / r.ours))
                .collect();
            if let (Some(lo), Some(hi)) =
                (ratios.iter().copied().reduce(f64::min), ratios.iter().copied().reduce(f64::max))
            {
                out.push_str(&format!(
                    "\n{what}: scenetok at {:.0}-{:.0}% of OpenBLAS (goal ≥ {:.0}%: {})",
                    lo * 100.0,
                    hi * 100.0,
                    goal * 100.0,
                    if lo >= goal { "met" } else { "not met" }
                ));
            }
        }
        out.push('\n');
        out
    }
}
