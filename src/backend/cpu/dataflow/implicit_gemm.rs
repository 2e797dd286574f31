//! Implicit GEMM (TorchSparse++): output-stationary, `M = N_out` in tiles of 128 rows,
//! reduction over `K·Cin` gathered through `out_in_map` (−1 loads zeros).
//!
//! Unsorted: every tile reduces over all K offsets, so missing neighbours cost work.
//! Sorted: per split group the rows are ordered by their neighbour bitmask and an offset is
//! skipped for a whole tile when its bit is 0 in the tile's OR-reduced mask; results go back
//! through `reorder_loc`. Splits run one after another, each adding its partial sum (the
//! GPU writes `[S, N_out, Cout]` partials and sums them: the same arithmetic).

use rayon::prelude::*;

use super::{ConvProblem, RowsPtr};
use crate::backend::ROW_TILE;
use crate::backend::cpu::gemm::sgemm;

pub(super) fn run(p: &ConvProblem<'_>, sorted: bool, split: usize) -> Vec<f32> {
    let map = p.map;
    let mut y = vec![0.0f32; map.n_out * p.cout];
    if map.n_out == 0 {
        return y;
    }
    let kv = map.volume;
    if !sorted {
        let all: Vec<usize> = (0..kv).collect();
        // Tiles own their output rows: write straight into Y.
        y.par_chunks_mut(ROW_TILE * p.cout).enumerate().for_each_init(
            || Buffers::new(ROW_TILE, kv, p.cin),
            |buf, (t, yt)| {
                let rows: Vec<u32> = (t * ROW_TILE..t * ROW_TILE + yt.len() / p.cout).map(|o| o as u32).collect();
                tile_gemm(p, &rows, &all, buf, yt);
            },
        );
        return y;
    }
    let sm = map.sorted(split);
    let out = RowsPtr::new(&mut y, p.cout);
    for (g, (order, masks)) in sm.reorder.iter().zip(&sm.reduced_mask).enumerate() {
        let base = g * sm.group_len;
        order.par_chunks(ROW_TILE).zip(masks.par_iter()).for_each_init(
            || (Buffers::new(ROW_TILE, sm.group_len, p.cin), vec![0.0f32; ROW_TILE * p.cout]),
            |(buf, c), (rows, &mask)| {
                if mask == 0 {
                    return;
                }
                let ks: Vec<usize> = (0..sm.group_len).filter(|i| mask >> i & 1 == 1).map(|i| base + i).collect();
                let c = &mut c[..rows.len() * p.cout];
                tile_gemm(p, rows, &ks, buf, c);
                for (r, &o) in rows.iter().enumerate() {
                    // SAFETY: within a split group every output row appears once.
                    unsafe { out.add_row(o as usize, &c[r * p.cout..(r + 1) * p.cout]) };
                }
            },
        );
    }
    y
}

/// Per-thread tile buffers: gathered A `[rows × |ks|·cin]` and packed weights.
struct Buffers {
    a: Vec<f32>,
    w: Vec<f32>,
}

impl Buffers {
    fn new(rows: usize, ks: usize, cin: usize) -> Self {
        Buffers { a: Vec::with_capacity(rows * ks * cin), w: Vec::new() }
    }
}

/// `C[rows] = Σ_{k∈ks} X[map(row,k)]·W[k]` as one GEMM with reduction `|ks|·cin`: gather A
/// row by row through the map (zeros for −1), pack the used weight blocks.
fn tile_gemm(p: &ConvProblem<'_>, rows: &[u32], ks: &[usize], buf: &mut Buffers, c: &mut [f32]) {
    let (cin, cout) = (p.cin, p.cout);
    let red = ks.len() * cin;
    buf.a.clear();
    buf.a.resize(rows.len() * red, 0.0);
    for (r, &o) in rows.iter().enumerate() {
        let row = p.map.row(o as usize);
        let dst = &mut buf.a[r * red..(r + 1) * red];
        for (j, &k) in ks.iter().enumerate() {
            let i = row[k];
            if i >= 0 {
                let i = i as usize;
                dst[j * cin..(j + 1) * cin].copy_from_slice(&p.x[i * cin..(i + 1) * cin]);
            }
        }
    }
    // Contiguous offsets (the unsorted case, a full mask) need no packing.
    let contiguous = ks.windows(2).all(|w| w[1] == w[0] + 1);
    let w: &[f32] = if contiguous {
        &p.w[ks[0] * cin * cout..(ks[0] + ks.len()) * cin * cout]
    } else {
        buf.w.clear();
        for &k in ks {
            buf.w.extend_from_slice(&p.w[k * cin * cout..(k + 1) * cin * cout]);
        }
        &buf.w
    };
    sgemm(rows.len(), red, cout, &buf.a, w, 0.0, c);
}
