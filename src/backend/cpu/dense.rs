//! The transformer ops on the CPU: LayerNorm, embedding adds, row gathers, masked max
//! pooling and multi-head attention. Plain loops over rows (rayon across rows or heads);
//! the products inside attention go through the one GEMM ([`super::gemm`]).

use rayon::prelude::*;

use crate::backend::Activation;

/// Rows per rayon task for the row-wise ops (cheap per row: amortise the scheduling).
const ROWS: usize = 64;

pub fn layer_norm(x: &[f32], cols: usize, gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(ROWS * cols).zip(x.par_chunks(ROWS * cols)).for_each(|(out, x)| {
        for (o, r) in out.chunks_mut(cols).zip(x.chunks(cols)) {
            let mean = r.iter().sum::<f32>() / cols as f32;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((o, v), (g, b)) in o.iter_mut().zip(r).zip(gamma.iter().zip(beta)) {
                *o = (v - mean) * inv * g + b;
            }
        }
    });
    out
}

pub fn add_rows(x: &mut [f32], cols: usize, table: &[f32], index: &[u32], act: Activation) {
    if cols == 0 {
        return;
    }
    x.par_chunks_mut(ROWS * cols).zip(index.par_chunks(ROWS)).for_each(|(x, index)| {
        for (r, &i) in x.chunks_mut(cols).zip(index) {
            let t = &table[i as usize * cols..(i as usize + 1) * cols];
            r.iter_mut().zip(t).for_each(|(v, t)| *v = act.apply(*v + t));
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

pub fn masked_max(x: &[f32], cols: usize, group: usize, valid: &[bool]) -> Vec<f32> {
    let groups = valid.len() / group.max(1);
    let mut out = vec![0.0f32; groups * cols];
    if cols == 0 || group == 0 {
        return out;
    }
    out.par_chunks_mut(cols).enumerate().for_each(|(g, o)| {
        let mut any = false;
        for r in g * group..(g + 1) * group {
            if !valid[r] {
                continue;
            }
            let row = &x[r * cols..(r + 1) * cols];
            if any {
                o.iter_mut().zip(row).for_each(|(o, v)| *o = o.max(*v));
            } else {
                o.copy_from_slice(row);
                any = true;
            }
        }
    });
    out
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

pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: AttentionShape, key_valid: Option<&[bool]>) -> Vec<f32> {
    let AttentionShape { batch, n, m, d, heads } = s;
    let dh = d / heads.max(1);
    let scale = 1.0 / (dh as f32).sqrt();
    let per_head: Vec<Vec<f32>> = (0..batch * heads)
        .into_par_iter()
        .map(|bh| {
            let (b, h) = (bh / heads, bh % heads);
            let cols = h * dh..(h + 1) * dh;
            let qh: Vec<f32> = (0..n).flat_map(|i| &q[(b * n + i) * d..][cols.clone()]).copied().collect();
            let mut kt = vec![0.0f32; dh * m];
            let mut vh = vec![0.0f32; m * dh];
            for j in 0..m {
                let row = (b * m + j) * d;
                for (c, &x) in k[row..][cols.clone()].iter().enumerate() {
                    kt[c * m + j] = x;
                }
                vh[j * dh..(j + 1) * dh].copy_from_slice(&v[row..][cols.clone()]);
            }
            let mut scores = vec![0.0f32; n * m];
            super::gemm::sgemm(n, dh, m, &qh, &kt, 0.0, &mut scores);
            for row in scores.chunks_mut(m.max(1)) {
                let mut max = f32::NEG_INFINITY;
                for (j, x) in row.iter_mut().enumerate() {
                    if key_valid.is_some_and(|kv| !kv[b * m + j]) {
                        *x = f32::NEG_INFINITY;
                    } else {
                        *x *= scale;
                        max = max.max(*x);
                    }
                }
                if max == f32::NEG_INFINITY {
                    row.fill(0.0);
                    continue;
                }
                let mut sum = 0.0f32;
                for x in row.iter_mut() {
                    *x = (*x - max).exp();
                    sum += *x;
                }
                row.iter_mut().for_each(|x| *x /= sum);
            }
            let mut out = vec![0.0f32; n * dh];
            super::gemm::sgemm(n, m, dh, &scores, &vh, 0.0, &mut out);
            out
        })
        .collect();
    let mut out = vec![0.0f32; batch * n * d];
    for (bh, o) in per_head.iter().enumerate() {
        let (b, h) = (bh / heads, bh % heads);
        for i in 0..n {
            out[(b * n + i) * d + h * dh..][..dh].copy_from_slice(&o[i * dh..(i + 1) * dh]);
        }
    }
    out
}
