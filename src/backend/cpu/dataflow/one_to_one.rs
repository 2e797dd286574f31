//! Maps where every output has exactly one input: a transposed conv whose kernel equals its
//! stride (the U-Nets' k2 s2 up-sampling), where each coarse row fans out to its children.
//! Output-stationary dataflows run such a map as a gather of one input row per output and a
//! K = cin product per row, at a few GFLOP/s. Input-stationary instead: one dense GEMM
//! `X · [W_0 | W_1 | … | W_{K−1}]` gives every input row's product for every offset, and each
//! output row is its input's block for its offset. Worth it where most of those products are
//! used: 2-D images, whose coarse pixels have nearly all four children, not LiDAR voxels
//! (about 2.4 of 8 children).

use rayon::prelude::*;

use super::{ConvProblem, HostEpilogue};
use crate::backend::KernelMap;
use crate::backend::cpu::gemm::sgemm_vec;

/// An output row without input ([`single_inputs`]).
const NONE: u32 = u32::MAX;

/// The input and offset of every output row (`NONE` for a row without one), if none has
/// more than one and at least half of the GEMM's `n_in × K` products would be used;
/// otherwise `None`.
pub fn single_inputs(map: &KernelMap) -> Option<Vec<(u32, u32)>> {
    if map.n_out == 0 || 2 * map.n_out < map.volume * map.n_in {
        return None;
    }
    (0..map.n_out)
        .into_par_iter()
        .map(|o| {
            let mut found = None;
            for (k, &i) in map.row(o).iter().enumerate() {
                if i >= 0 {
                    if found.is_some() {
                        return None;
                    }
                    found = Some((i as u32, k as u32));
                }
            }
            Some(found.unwrap_or((NONE, 0)))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ConvGeom;
    use crate::backend::cpu::kmap::strided;

    /// The transposed map of a 2-D k2 s2 down-sampling (pixels of a 9 × 7 image with a few
    /// missing) runs as one GEMM and equals the implicit GEMM over the same map; a 3-D map
    /// with sparse children does not qualify.
    #[test]
    fn transposed_k2_equals_the_implicit_gemm() {
        let coords: Vec<[i32; 4]> =
            (0..9).flat_map(|u| (0..7).map(move |v| [0, u, v, 0])).filter(|c| (c[1] * 7 + c[2]) % 11 != 3).collect();
        let geom = ConvGeom { kernel: [2, 2, 1], stride: [2, 2, 1], padding: [0; 3], dilation: [1; 3] };
        let (_, _, down) = strided(&coords, [9, 7, 1], &geom);
        let up = down.transposed();
        let single = single_inputs(&up).expect("one input per output, densely");
        assert_eq!(single.len(), coords.len());
        // The last column and row (odd sizes) have no coarse parent.
        assert!(single.iter().any(|&(i, _)| i == NONE) && single.iter().any(|&(i, _)| i != NONE));
        let (cin, cout) = (5, 3);
        let x: Vec<f32> = (0..up.n_in * cin).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let w: Vec<f32> = (0..up.volume * cin * cout).map(|i| ((i * 53 % 29) as f32 - 14.0) / 9.0).collect();
        let p = ConvProblem { map: &up, x: &x, cin, w: &w, cout };
        let want = super::super::implicit_gemm::run(&p, false, 1);
        let none = HostEpilogue { bias: None, residual: None, act: crate::backend::Activation::None };
        let got = run(&p, &single, &none);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let sparse: Vec<[i32; 4]> = (0..20).map(|i| [0, 2 * i, 2 * i, 2 * i]).collect();
        let (_, _, down3) = strided(&sparse, [40, 40, 40], &ConvGeom::cube(2, 2));
        assert!(single_inputs(&down3.transposed()).is_none(), "1 of 8 children: not worth a GEMM");
    }
}
