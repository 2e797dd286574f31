//! Gather–GEMM–scatter with adaptive grouping (TorchSparse MLSys'22; the only dataflow
//! upstream has on the CPU). Per offset: gather the inputs, GEMM with `W[k]`, scatter-add.

use rayon::prelude::*;

use super::{ConvProblem, RowsPtr, gather_rows, identity_gemm};
use crate::backend::cpu::gemm::sgemm;

/// Rows of one GEMM job.
const CHUNK: usize = 256;

pub(super) fn run(p: &ConvProblem<'_>, epsilon: f32, mm_thresh: usize) -> Vec<f32> {
    let map = p.map;
    let mut y = vec![0.0f32; map.n_out * p.cout];
    if let Some(c) = map.identity {
        identity_gemm(p, c, &mut y);
    }
    let pairs_arc = map.pairs();
    let pairs: &crate::backend::kmap::PairList = &pairs_arc;
    let kv = map.volume;
    // Symmetric order (0, K−1, 1, K−2, …): mirrored offsets have equal pair counts in a
    // submanifold map, so neighbours in this order group well.
    let order: Vec<usize> = (0..kv.div_ceil(2))
        .flat_map(|i| if i == kv - 1 - i { vec![i] } else { vec![i, kv - 1 - i] })
        .filter(|&k| Some(k) != map.identity && pairs.size(k) > 0)
        .collect();
    let out = RowsPtr::new(&mut y, p.cout);
    for group in groups(&order, |k| pairs.size(k), epsilon) {
        let max = group.iter().map(|&k| pairs.size(k)).max().unwrap_or(0);
        // Jobs: (offset, row range). A batched group is one parallel pass over every
        // offset's rows (upstream: one padded bmm); a large group runs offset by offset.
        let jobs_of = |ks: &[usize]| -> Vec<(usize, usize, usize)> {
            ks.iter()
                .flat_map(|&k| {
                    let n = pairs.size(k);
                    (0..n).step_by(CHUNK).map(move |s| (k, s, (s + CHUNK).min(n)))
                })
                .collect()
        };
        let batches: Vec<Vec<usize>> =
            if max < mm_thresh { vec![group.clone()] } else { group.iter().map(|&k| vec![k]).collect() };
        for ks in batches {
            let jobs = jobs_of(&ks);
            // Gather + GEMM in parallel into per-job buffers…
            let results: Vec<Vec<f32>> = jobs
                .par_iter()
                .map(|&(k, s, e)| {
                    let mut a = vec![0.0f32; (e - s) * p.cin];
                    gather_rows(p.x, p.cin, &pairs.inputs[k][s..e], &mut a);
                    let mut c = vec![0.0f32; (e - s) * p.cout];
                    sgemm(e - s, p.cin, p.cout, &a, &p.w[k * p.cin * p.cout..(k + 1) * p.cin * p.cout], 0.0, &mut c);
                    c
                })
                .collect();
            // …then scatter offset by offset: within one offset every output row is
            // distinct, so its jobs can add in parallel.
            for &k in &ks {
                jobs.par_iter().zip(results.par_iter()).filter(|((jk, _, _), _)| *jk == k).for_each(
                    |(&(_, s, e), c)| {
                        for (r, &o) in pairs.outputs[k][s..e].iter().enumerate() {
                            // SAFETY: outputs of one offset are distinct rows.
                            unsafe { out.add_row(o as usize, &c[r * p.cout..(r + 1) * p.cout]) };
                        }
                    },
                );
            }
        }
    }
    y
}

/// Adaptive grouping (`group_strategy_generation`): walk `order`, start a new group when
/// `1 − min/max` of the group's sizes would exceed `epsilon`.
fn groups(order: &[usize], size: impl Fn(usize) -> usize, epsilon: f32) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for &k in order {
        let s = size(k);
        let (nlo, nhi) = (lo.min(s), hi.max(s));
        let spread = if nhi == 0 { 0.0 } else { 1.0 - nlo as f32 / nhi as f32 };
        match out.last_mut() {
            Some(g) if spread <= epsilon => {
                g.push(k);
                (lo, hi) = (nlo, nhi);
            }
            _ => {
                out.push(vec![k]);
                (lo, hi) = (s, s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn grouping_splits_on_spread() {
        let sizes = [100, 95, 50, 48, 10];
        let g = super::groups(&[0, 1, 2, 3, 4], |k| sizes[k], 0.1);
        assert_eq!(g, vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(super::groups(&[0, 1, 2, 3, 4], |k| sizes[k], 1.0).len(), 1);
        assert_eq!(super::groups(&[0, 1, 2, 3, 4], |k| sizes[k], 0.0).len(), 5);
    }
}
