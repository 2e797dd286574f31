//! The transformer ops on the CPU: LayerNorm, embedding adds, row gathers, the fused set
//! encoder (PointNet MLP + max pool) and multi-head attention. Plain loops over rows (rayon
//! across row tiles or problems); the products go through the one GEMM ([`super::gemm`]),
//! inside attention on strided views.

use rayon::prelude::*;

use super::gemm;
use crate::backend::Activation;

/// Rows per rayon task for the row-wise ops (cheap per row: amortise the scheduling).
const ROWS: usize = 64;

pub fn layer_norm(x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS * cols).zip(x.par_chunks(ROWS * cols)).for_each(|(out, x)| {
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { layer_norm_rows_avx2(out, x, cols, gamma, beta, eps) };
        }
        layer_norm_rows(out, x, cols, gamma, beta, eps);
    });
    out
}

/// Whether `_avx2` variants may run (the build targets baseline x86-64: SSE2); the host
/// passes of the models outside the backend ask it too.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn layer_norm_rows_avx2(out: &mut [f32], x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    layer_norm_rows(out, x, cols, gamma, beta, eps);
}

#[inline(always)]
fn layer_norm_rows(out: &mut [f32], x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    for (o, r) in out.chunks_mut(cols).zip(x.chunks(cols)) {
        let (mean, inv) = mean_and_inv_std(r, eps);
        for ((o, v), (g, b)) in o.iter_mut().zip(r).zip(gamma.iter().zip(beta)) {
            *o = (v - mean) * inv * g + b;
        }
    }
}

/// A row's mean and `1 / √(var + eps)` (biased variance), as LayerNorm takes them.
#[inline(always)]
fn mean_and_inv_std(r: &[f32], eps: f32) -> (f32, f32) {
    let mean = lane_sum(r, |v| v) / r.len() as f32;
    let var = lane_sum(r, |v| (v - mean) * (v - mean)) / r.len() as f32;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `Σ f(x)` with 8 partial sums (a single accumulator is a serial chain that cannot vectorise).
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let (chunks, tail) = x.as_chunks::<8>();
    let mut lanes = [0.0f32; 8];
    for c in chunks {
        for i in 0..8 {
            lanes[i] += f(c[i]);
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

pub fn add_rows(x: &mut [f32], cols: usize, table: &[f32], index: &[u32], act: Activation) {
    if cols == 0 {
        return;
    }
    x.par_chunks_mut(ROWS * cols).zip(index.par_chunks(ROWS)).for_each(|(x, index)| {
        for (r, &i) in x.chunks_mut(cols).zip(index) {
            let t = &table[i as usize * cols..(i as usize + 1) * cols];
            // The plain add as its own loop (it vectorises; `apply` per value does not).
            r.iter_mut().zip(t).for_each(|(v, t)| *v += t);
            if act != Activation::None {
                r.iter_mut().for_each(|v| *v = act.apply(*v));
            }
        }
    });
}

/// [`crate::backend::Backend::fold_norm`] on host rows (`y` of `cols`, `x` of `xcols`).
#[allow(clippy::too_many_arguments)]
pub fn fold_norm(
    y: &mut [f32],
    cols: usize,
    x: &[f32],
    xcols: usize,
    eps: f32,
    table: &[f32],
    index: &[u32],
    beta: &[f32],
) {
    if cols == 0 || xcols == 0 {
        return;
    }
    let chunks = y.par_chunks_mut(ROWS * cols).zip(x.par_chunks(ROWS * xcols)).zip(index.par_chunks(ROWS));
    chunks.for_each(|((y, x), index)| {
        for ((yr, xr), &i) in y.chunks_mut(cols).zip(x.chunks(xcols)).zip(index) {
            let (_, inv) = mean_and_inv_std(xr, eps);
            let t = &table[i as usize * cols..][..cols];
            for ((v, t), b) in yr.iter_mut().zip(t).zip(beta) {
                *v = (*v + t) * inv + b;
            }
        }
    });
}

/// `parts` with their row counts, stacked; `index` addresses the stack.
pub fn gather_rows(parts: &[(&[f32], usize)], cols: usize, index: &[u32]) -> Vec<f32> {
    let mut starts = Vec::with_capacity(parts.len());
    let mut at = 0usize;
    for (_, rows) in parts {
        starts.push(at);
        at += rows;
    }
    let mut out = vec![0.0f32; index.len() * cols];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS * cols).zip(index.par_chunks(ROWS)).for_each(|(out, index)| {
        for (o, &i) in out.chunks_mut(cols).zip(index) {
            let i = i as usize;
            let p = starts.partition_point(|&s| s <= i) - 1;
            let r = i - starts[p];
            o.copy_from_slice(&parts[p].0[r * cols..(r + 1) * cols]);
        }
    });
    out
}

/// `x[index[i]] ← rows[i]`, skipping [`crate::backend::DROP_ROW`] (indices checked by the
/// caller). One pass in index order: a later duplicate wins.
pub fn scatter_rows(x: &mut [f32], cols: usize, rows: &[f32], index: &[u32]) {
    if cols == 0 {
        return;
    }
    for (row, &i) in rows.chunks_exact(cols).zip(index) {
        if i != crate::backend::DROP_ROW {
            x[i as usize * cols..][..cols].copy_from_slice(row);
        }
    }
}

/// The weights of a [`crate::backend::SetEncoder`] on the host.
pub struct SetLayers<'a> {
    pub w1: &'a [f32],
    pub b1: &'a [f32],
    pub tables: Vec<(&'a [f32], &'a [u32])>,
    pub w2: &'a [f32],
    pub b2: &'a [f32],
    pub hidden: usize,
    pub out: usize,
}

/// Rows of input per set-encoder task (its hidden layer stays in L2).
const SET_ROWS: usize = 256;

pub fn set_encoder(x: &[f32], k: usize, l: &SetLayers<'_>, group: usize, valid: &[bool]) -> Vec<f32> {
    let (hidden, cols) = (l.hidden, l.out);
    let mut out = vec![0.0f32; valid.len() / group.max(1) * cols];
    if cols == 0 || group == 0 {
        return out;
    }
    let groups_per_task = (SET_ROWS / group).max(1);
    out.par_chunks_mut(groups_per_task * cols).enumerate().for_each(|(task, out)| {
        let first_row = task * groups_per_task * group;
        let rows: Vec<usize> = (first_row..first_row + out.len() / cols * group).filter(|&r| valid[r]).collect();
        if rows.is_empty() {
            return;
        }
        let mut xs = Vec::with_capacity(rows.len() * k);
        rows.iter().for_each(|&r| xs.extend_from_slice(&x[r * k..(r + 1) * k]));
        let mut h = gemm::sgemm_vec(rows.len(), k, hidden, &xs, l.w1, false);
        for (hr, &r) in h.chunks_mut(hidden).zip(&rows) {
            hr.iter_mut().zip(l.b1).for_each(|(v, b)| *v += b);
            for (table, index) in &l.tables {
                let t = &table[index[r] as usize * hidden..][..hidden];
                hr.iter_mut().zip(t).for_each(|(v, t)| *v += t);
            }
            hr.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        let y = gemm::sgemm_vec(rows.len(), hidden, cols, &h, l.w2, false);
        // max(y + b) = max(y) + b exactly (rounding is monotonic): the bias goes on once per set.
        let mut seen = vec![false; out.len() / cols];
        for (yr, &r) in y.chunks(cols).zip(&rows) {
            let g = r / group - task * groups_per_task;
            let o = &mut out[g * cols..(g + 1) * cols];
            if seen[g] {
                o.iter_mut().zip(yr).for_each(|(o, v)| *o = o.max(*v));
            } else {
                o.copy_from_slice(yr);
                seen[g] = true;
            }
        }
        for (o, _) in out.chunks_mut(cols).zip(&seen).filter(|(_, s)| **s) {
            o.iter_mut().zip(l.b2).for_each(|(o, b)| *o += b);
        }
    });
    out
}

/// Shapes of one [`window_attention`] call.
#[derive(Debug, Clone, Copy)]
pub struct WindowShape {
    pub windows: usize,
    /// Tokens per window.
    pub n: usize,
    pub d: usize,
    pub heads: usize,
}

/// Swin's window attention (see [`crate::backend::Backend::window_attention`]): one task per
/// window; per head, `softmax(q·kᵀ/√dh + bias + mask)·v` through the GEMM on strided views.
pub fn window_attention(qkv: &[f32], s: WindowShape, bias: &[f32], masks: Option<(&[f32], &[u32])>) -> Vec<f32> {
    let WindowShape { windows, n, d, heads } = s;
    let dh = d / heads.max(1);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut out = vec![0.0f32; windows * n * d];
    if n == 0 || d == 0 {
        return out;
    }
    let all = vec![true; n];
    out.par_chunks_mut(n * d).enumerate().for_each(|(w, out)| {
        let x = &qkv[w * n * 3 * d..][..n * 3 * d];
        let mask = masks.and_then(|(m, kinds)| {
            let k = kinds[w];
            (k != crate::backend::NO_MASK).then(|| &m[k as usize * n * n..][..n * n])
        });
        // The keys, transposed once per window (columns d..2d of each row).
        let mut kt = vec![0.0f32; d * n];
        for j in 0..n {
            for (c, &v) in x[j * 3 * d + d..][..d].iter().enumerate() {
                kt[c * n + j] = v;
            }
        }
        let mut scores = vec![0.0f32; n * n];
        for h in 0..heads {
            let cols = h * dh;
            let qh = gemm::View::new(&x[cols..], n, dh, 3 * d, 1);
            let kth = gemm::View::new(&kt[cols * n..], dh, n, n, 1);
            gemm::sgemm_view(qh, kth, scale, false, &mut scores, n);
            let b = &bias[h * n * n..][..n * n];
            match mask {
                Some(m) => scores.iter_mut().zip(b).zip(m).for_each(|((s, b), m)| *s += b + m),
                None => scores.iter_mut().zip(b).for_each(|(s, b)| *s += b),
            }
            softmax_rows(&mut scores, &all);
            let p = gemm::View::new(&scores, n, n, n, 1);
            let vh = gemm::View::new(&x[2 * d + cols..], n, dh, 3 * d, 1);
            gemm::sgemm_view(p, vh, 1.0, false, &mut out[cols..], d);
        }
    });
    out
}

/// `x·Φ(x)`, `Φ` through erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5·10⁻⁷) with
/// [`exp_nonpositive`]: no libm call, so the epilogue loops vectorise.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152, 1.061_405_4];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let erf = 1.0 - poly * exp_nonpositive(-z * z);
    let erf = if x < 0.0 { -erf } else { erf };
    0.5 * x * (1.0 + erf)
}

/// `kt[c·m + j] = kv[j·2d + c]` for the `d` key columns, in 16 × 16 blocks: a row-by-row
/// scatter writes each value to another cache line (stride `m`), a block touches 16 lines
/// and fills them before moving on.
fn transpose_keys(kv: &[f32], d: usize, m: usize, kt: &mut [f32]) {
    const B: usize = 16;
    for j0 in (0..m).step_by(B) {
        for c0 in (0..d).step_by(B) {
            for j in j0..(j0 + B).min(m) {
                let row = &kv[j * 2 * d..][c0..(c0 + B).min(d)];
                for (c, &x) in (c0..).zip(row) {
                    kt[c * m + j] = x;
                }
            }
        }
    }
}

/// Shapes of one [`attention`] call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    /// Queries and keys per problem.
    pub n: usize,
    pub m: usize,
    pub d: usize,
    pub heads: usize,
}

/// `kv` rows: the key, then the value (`2d` values).
pub fn attention(q: &[f32], kv: &[f32], s: AttentionShape, key_valid: Option<&[bool]>) -> Vec<f32> {
    let AttentionShape { batch, n, m, d, heads } = s;
    let dh = d / heads.max(1);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut out = vec![0.0f32; batch * n * d];
    if n == 0 || d == 0 {
        return out;
    }
    // One task per problem: it owns its n output rows and walks the heads, reading each
    // head's queries and values in place through strided views. The keys are transposed once
    // per problem so each head's `Kᵀ` is a contiguous row block (a strided `Kᵀ` makes the
    // GEMM pack it column by column, 4× slower at these sizes).
    out.par_chunks_mut(n * d).enumerate().for_each(|(b, out)| {
        let (qb, kvb) = (&q[b * n * d..][..n * d], &kv[b * m * 2 * d..][..m * 2 * d]);
        let all;
        let valid = match key_valid {
            Some(f) => &f[b * m..(b + 1) * m],
            None => {
                all = vec![true; m];
                &all[..]
            }
        };
        let mut kt = vec![0.0f32; d * m];
        transpose_keys(kvb, d, m, &mut kt);
        let mut scores = vec![0.0f32; n * m];
        for h in 0..heads {
            let cols = h * dh;
            let qh = gemm::View::new(&qb[cols..], n, dh, d, 1);
            let kth = gemm::View::new(&kt[cols * m..], dh, m, m, 1);
            gemm::sgemm_view(qh, kth, scale, false, &mut scores, m);
            softmax_rows(&mut scores, valid);
            let p = gemm::View::new(&scores, n, m, m, 1);
            let vh = gemm::View::new(&kvb[d + cols..], m, dh, 2 * d, 1);
            gemm::sgemm_view(p, vh, 1.0, false, &mut out[cols..], d);
        }
    });
    out
}

/// Softmax of every `valid.len()`-wide row of `scores` over the keys whose flag is set; a
/// row with none gets zeros. Compiled for AVX2 + FMA where the CPU has them (8 lanes
/// instead of SSE2's 4).
fn softmax_rows(scores: &mut [f32], valid: &[bool]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { softmax_rows_avx2(scores, valid) };
    }
    softmax_rows_generic(scores, valid);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(scores: &mut [f32], valid: &[bool]) {
    softmax_rows_generic(scores, valid);
}

#[inline(always)]
fn softmax_rows_generic(scores: &mut [f32], valid: &[bool]) {
    // Fixed-size lanes, one accumulator each, masks applied with bit selects: no indexing,
    // no branches and no serial float reduction (which the compiler may not reorder), so
    // both loops vectorise.
    const L: usize = 8;
    let keep = |x: f32, ok: bool, other: f32| {
        let m = (ok as u32).wrapping_neg();
        f32::from_bits((x.to_bits() & m) | (other.to_bits() & !m))
    };
    let (vs, v_tail) = valid.as_chunks::<L>();
    for row in scores.chunks_mut(valid.len().max(1)) {
        let (xs, x_tail) = row.as_chunks::<L>();
        let mut lanes = [f32::NEG_INFINITY; L];
        for (x, v) in xs.iter().zip(vs) {
            for i in 0..L {
                let y = keep(x[i], v[i], f32::NEG_INFINITY);
                lanes[i] = if y > lanes[i] { y } else { lanes[i] };
            }
        }
        let max =
            x_tail.iter().zip(v_tail).fold(lanes.into_iter().fold(f32::NEG_INFINITY, f32::max), |a, (&x, &ok)| {
                a.max(keep(x, ok, f32::NEG_INFINITY))
            });
        if max == f32::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        let exp = |x: f32, ok: bool| keep(exp_nonpositive(x - max), ok, 0.0);
        let (xs, x_tail) = row.as_chunks_mut::<L>();
        let mut sums = [0.0f32; L];
        for (x, v) in xs.iter_mut().zip(vs) {
            for i in 0..L {
                x[i] = exp(x[i], v[i]);
                sums[i] += x[i];
            }
        }
        let mut sum = sums.iter().sum::<f32>();
        for (x, &ok) in x_tail.iter_mut().zip(v_tail) {
            *x = exp(*x, ok);
            sum += *x;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

/// `eˣ` for `x ≤ 0` (0 below −87), relative error < 4·10⁻⁷: `x = n·ln2 + r` with
/// `|r| ≤ ln2/2`, a degree-6 Taylor polynomial for `eʳ`, `2ⁿ` built in the exponent bits.
/// Plain float and integer arithmetic (the rounding by adding 1.5·2²³, no `floor` or
/// float-to-int cast, which are libm calls or range checks on the baseline x86-64 target),
/// so softmax's loop vectorises where libm's `expf` does not.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits.
    let x = if x < -87.0 { -87.0 } else { x };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let two_n = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(two_n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// erf-based GELU against the f64 formula (erf by its Taylor series, exact here).
    #[test]
    fn gelu_equals_the_erf_formula() {
        fn erf(x: f64) -> f64 {
            // Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)) · 2/√π; |x| ≤ 6 converges in f64 well within 200 terms.
            let (mut term, mut sum) = (x, x);
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        for i in -800..=800 {
            let x = i as f64 / 100.0;
            let want = if x.abs() > 5.0 { x.max(0.0) } else { 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)) };
            let got = gelu(x as f32) as f64;
            assert!((got - want).abs() <= 2e-6 * (1.0 + x.abs()), "gelu({x}) = {got}, want {want}");
        }
    }

    /// Window attention equals the naive per-window formula (f64) with bias and masks on some
    /// windows only.
    #[test]
    fn window_attention_equals_the_naive_formula() {
        let (windows, n, heads, dh) = (5, 9, 3, 4);
        let d = heads * dh;
        let qkv = values(windows * n * 3 * d, 11);
        let bias = values(heads * n * n, 12);
        let masks: Vec<f32> = values(2 * n * n, 13).iter().map(|v| if *v > 0.3 { -100.0 } else { 0.0 }).collect();
        let kinds = [crate::backend::NO_MASK, 1, 0, crate::backend::NO_MASK, 1];
        let got = window_attention(&qkv, WindowShape { windows, n, d, heads }, &bias, Some((&masks, &kinds)));
        for w in 0..windows {
            for h in 0..heads {
                for i in 0..n {
                    let at = |j: usize, part: usize, c: usize| qkv[(w * n + j) * 3 * d + part * d + h * dh + c] as f64;
                    let s: Vec<f64> = (0..n)
                        .map(|j| {
                            let dot: f64 = (0..dh).map(|c| at(i, 0, c) * at(j, 1, c)).sum();
                            let m = if kinds[w] == crate::backend::NO_MASK {
                                0.0
                            } else {
                                masks[kinds[w] as usize * n * n + i * n + j] as f64
                            };
                            dot / (dh as f64).sqrt() + bias[h * n * n + i * n + j] as f64 + m
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..dh {
                        let want: f64 = (0..n).map(|j| e[j] / sum * at(j, 2, c)).sum();
                        let g = got[(w * n + i) * d + h * dh + c] as f64;
                        assert!((g - want).abs() < 1e-5, "window {w} head {h} token {i}: {g} vs {want}");
                    }
                }
            }
        }
    }

    /// The fused set encoder equals the unfused layers (f64), with groups that straddle task
    /// tiles, sets with no valid member (zeros) and invalid rows holding garbage.
    #[test]
    fn set_encoder_equals_the_unfused_layers() {
        let (k, hidden, cols, group, groups) = (4, 24, 40, 20, 37);
        let rows = group * groups;
        let mut x = values(rows * k, 1);
        let valid: Vec<bool> = (0..rows).map(|r| r / group % 5 != 3 && r % 7 != 2).collect();
        (0..rows).filter(|&r| !valid[r]).for_each(|r| x[r * k] = f32::NAN);
        let (w1, b1, w2, b2) = (values(k * hidden, 2), values(hidden, 3), values(hidden * cols, 4), values(cols, 5));
        let table = values(6 * hidden, 6);
        let index: Vec<u32> = (0..rows as u32).map(|r| r % 6).collect();
        let layers =
            SetLayers { w1: &w1, b1: &b1, tables: vec![(&table, &index)], w2: &w2, b2: &b2, hidden, out: cols };
        let got = set_encoder(&x, k, &layers, group, &valid);
        for g in 0..groups {
            let mut want = vec![f64::NEG_INFINITY; cols];
            for r in (g * group..(g + 1) * group).filter(|&r| valid[r]) {
                let h: Vec<f64> = (0..hidden)
                    .map(|j| {
                        let v = (0..k).map(|i| x[r * k + i] as f64 * w1[i * hidden + j] as f64).sum::<f64>()
                            + b1[j] as f64
                            + table[index[r] as usize * hidden + j] as f64;
                        v.max(0.0)
                    })
                    .collect();
                for (c, w) in want.iter_mut().enumerate() {
                    let y = (0..hidden).map(|j| h[j] * w2[j * cols + c] as f64).sum::<f64>() + b2[c] as f64;
                    *w = w.max(y);
                }
            }
            let none = want[0] == f64::NEG_INFINITY;
            for (c, w) in want.iter().enumerate() {
                let (got, w) = (got[g * cols + c] as f64, if none { 0.0 } else { *w });
                assert!((got - w).abs() < 1e-4 * (1.0 + w.abs()), "set {g}, column {c}: {got} vs {w}");
            }
        }
    }

    #[test]
    fn exp_matches_libm_on_the_softmax_range() {
        for i in 0..=100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            assert!(((got - want) / want).abs() < 4e-7, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1e4) < 1e-37);
    }

    /// Attention equals the naive per-head softmax(q·kᵀ/√dh)·v, masked keys left out and a
    /// query with no valid key giving zeros; shapes below and across the key transpose's
    /// 16 × 16 blocks.
    #[test]
    fn attention_equals_the_naive_formula() {
        for shape in [(3, 5, 7, 2, 4), (3, 4, 37, 3, 8)] {
            attention_case(shape);
        }
    }

    fn attention_case((batch, n, m, heads, dh): (usize, usize, usize, usize, usize)) {
        let d = heads * dh;
        let (q, kv) = (values(batch * n * d, 7), values(batch * m * 2 * d, 8));
        let k = |row: usize, c: usize| kv[row * 2 * d + c] as f64;
        let v = |row: usize, c: usize| kv[row * 2 * d + d + c] as f64;
        let mut key_valid: Vec<bool> = (0..batch * m).map(|j| j % 3 != 1).collect();
        key_valid[2 * m..3 * m].fill(false);
        let got = attention(&q, &kv, AttentionShape { batch, n, m, d, heads }, Some(&key_valid));
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..n {
                    let s: Vec<f64> = (0..m)
                        .map(|j| {
                            (0..dh)
                                .map(|c| q[(b * n + i) * d + h * dh + c] as f64 * k(b * m + j, h * dh + c))
                                .sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let ok = |j: usize| key_valid[b * m + j];
                    let max = (0..m).filter(|&j| ok(j)).map(|j| s[j]).fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = (0..m).map(|j| if ok(j) { (s[j] - max).exp() } else { 0.0 }).collect();
                    let sum: f64 = e.iter().sum();
                    for c in 0..dh {
                        let want = if sum > 0.0 {
                            (0..m).map(|j| e[j] / sum * v(b * m + j, h * dh + c)).sum::<f64>()
                        } else {
                            0.0
                        };
                        let got = got[(b * n + i) * d + h * dh + c] as f64;
                        assert!((got - want).abs() < 1e-5, "problem {b}, head {h}, query {i}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
