//! Fetch-on-demand (PCEngine, MLSys'23): no materialised gather buffer; each tile of an
//! offset's pair list gathers its rows into a thread-local tile, multiplies and accumulates
//! into `Y` at once. On the CPU the GPU's `atomicAdd` becomes offset-by-offset execution
//! (an offset's outputs are distinct), with the tiles of one offset in parallel.

use rayon::prelude::*;

use super::{ConvProblem, RowsPtr, gather_rows, identity_gemm};
use crate::backend::cpu::gemm::sgemm;

pub(super) fn run(p: &ConvProblem<'_>, tile: usize) -> Vec<f32> {
    let map = p.map;
    let mut y = vec![0.0f32; map.n_out * p.cout];
    if let Some(c) = map.identity {
        identity_gemm(p, c, &mut y);
    }
    let pairs = map.pairs();
    let out = RowsPtr::new(&mut y, p.cout);
    for k in (0..map.volume).filter(|&k| Some(k) != map.identity) {
        let (ins, outs) = (&pairs.inputs[k], &pairs.outputs[k]);
        let w = &p.w[k * p.cin * p.cout..(k + 1) * p.cin * p.cout];
        ins.par_chunks(tile).zip(outs.par_chunks(tile)).for_each_init(
            || (vec![0.0f32; tile * p.cin], vec![0.0f32; tile * p.cout]),
            |(a, c), (ins, outs)| {
                let n = ins.len();
                gather_rows(p.x, p.cin, ins, &mut a[..n * p.cin]);
                sgemm(n, p.cin, p.cout, a, w, 0.0, c);
                for (r, &o) in outs.iter().enumerate() {
                    // SAFETY: outputs of one offset are distinct rows.
                    unsafe { out.add_row(o as usize, &c[r * p.cout..(r + 1) * p.cout]) };
                }
            },
        );
    }
    y
}
