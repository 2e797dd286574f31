//! Kernel maps on the CPU, built by hashing: submanifold (with the mirror trick), strided
//! (spconv output rule), generative transposed.

use rayon::prelude::*;

use super::hash::{CoordHash, Ravel};
use crate::backend::kmap::{ConvGeom, KernelMap, kernel_indices};

/// Submanifold map: outputs = inputs, neighbour of `c` at offset `k` = `c + (k − c₀)·d`
/// with `c₀ = (k−1)/2` per odd axis and 0 per even axis. With every axis odd only half the
/// offsets are queried: a hit `j` of `i` at `k` also fills the mirror `map[j, K−1−k] = i`.
pub fn submanifold(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> KernelMap {
    let idx = kernel_indices(geom.kernel);
    let kv = idx.len();
    let odd = geom.kernel.iter().all(|k| k % 2 == 1);
    let offsets: Vec<[i32; 3]> = idx
        .iter()
        .map(|ix| {
            std::array::from_fn(|a| {
                let c0 = if geom.kernel[a] % 2 == 1 { (geom.kernel[a] - 1) / 2 } else { 0 };
                (ix[a] as i32 - c0 as i32) * geom.dilation[a] as i32
            })
        })
        .collect();
    let table = CoordHash::build(coords, Ravel::covering(coords, range));
    let n = coords.len();
    let query = |c: [i32; 4], off: [i32; 3]| table.get([c[0], c[1] + off[0], c[2] + off[1], c[3] + off[2]]);
    let mut rows = vec![-1i32; n * kv];
    if odd {
        let centre = kv / 2;
        // Half the offsets, queried in parallel; the mirror writes go to other rows, so
        // they are applied afterwards in one sequential pass.
        let hits: Vec<Vec<(u32, u32)>> = coords
            .par_iter()
            .map(|&c| (0..centre).filter_map(|k| query(c, offsets[k]).map(|j| (k as u32, j))).collect::<Vec<_>>())
            .collect();
        for (i, h) in hits.iter().enumerate() {
            rows[i * kv + centre] = i as i32;
            for &(k, j) in h {
                rows[i * kv + k as usize] = j as i32;
                rows[j as usize * kv + kv - 1 - k as usize] = i as i32;
            }
        }
        KernelMap::from_rows(n, n, kv, rows, Some(centre))
    } else {
        rows.par_chunks_mut(kv).zip(coords.par_iter()).for_each(|(row, &c)| {
            for (k, off) in offsets.iter().enumerate() {
                if let Some(j) = query(c, *off) {
                    row[k] = j as i32;
                }
            }
        });
        KernelMap::from_rows(n, n, kv, rows, None)
    }
}

/// Strided (downsampling) map with the spconv output rule: input `i` feeds output
/// `o = (c_i + p − k'·d) / s` where divisible and `0 ≤ o < range_out`; outputs are the
/// sorted unique such `o`. Returns the output coordinates, their range and the map.
pub fn strided(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> (Vec<[i32; 4]>, [i32; 3], KernelMap) {
    let out_range = geom.down_range(range);
    let idx = kernel_indices(geom.kernel);
    let emit = |c: [i32; 4], ix: [usize; 3]| -> Option<[i32; 4]> {
        let mut o = [c[0], 0, 0, 0];
        for a in 0..3 {
            let v = c[a + 1] + geom.padding[a] as i32 - (ix[a] * geom.dilation[a]) as i32;
            let s = geom.stride[a] as i32;
            if v < 0 || v % s != 0 || v / s >= out_range[a] {
                return None;
            }
            o[a + 1] = v / s;
        }
        Some(o)
    };
    scatter_map(coords, out_range, &idx, emit)
}

/// Generative transposed map: every input `i` reaches `o = c_i·s − p + k'·d` inside the
/// output range; the outputs are all such `o` (sorted), as a dense conv_transpose3d would
/// produce them.
pub fn generative(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> (Vec<[i32; 4]>, [i32; 3], KernelMap) {
    let out_range = geom.up_range(range);
    let idx = kernel_indices(geom.kernel);
    let emit = |c: [i32; 4], ix: [usize; 3]| -> Option<[i32; 4]> {
        let mut o = [c[0], 0, 0, 0];
        for a in 0..3 {
            let v = c[a + 1] * geom.stride[a] as i32 - geom.padding[a] as i32 + (ix[a] * geom.dilation[a]) as i32;
            if v < 0 || v >= out_range[a] {
                return None;
            }
            o[a + 1] = v;
        }
        Some(o)
    };
    scatter_map(coords, out_range, &idx, emit)
}

/// Shared by [`strided`] and [`generative`]: emit (output key, offset, input) for every
/// input and offset, take the sorted unique outputs, fill the map.
fn scatter_map(
    coords: &[[i32; 4]],
    out_range: [i32; 3],
    idx: &[[usize; 3]],
    emit: impl Fn([i32; 4], [usize; 3]) -> Option<[i32; 4]> + Sync,
) -> (Vec<[i32; 4]>, [i32; 3], KernelMap) {
    let kv = idx.len();
    let batches = coords.iter().map(|c| c[0]).max().map_or(1, |b| b + 1);
    let ravel =
        Ravel { min: [0; 4], size: [batches as u64, out_range[0] as u64, out_range[1] as u64, out_range[2] as u64] };
    let triples: Vec<(u64, u32, u32)> = coords
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, &c)| {
            let emit = &emit;
            idx.iter().enumerate().filter_map(move |(k, &ix)| {
                let o = emit(c, ix)?;
                Some((ravel.key(o)?, k as u32, i as u32))
            })
        })
        .collect();
    let mut keys: Vec<u64> = triples.par_iter().map(|t| t.0).collect();
    keys.par_sort_unstable();
    keys.dedup();
    let out: Vec<[i32; 4]> = keys.par_iter().map(|&k| ravel.unravel(k)).collect();
    let mut rows = vec![-1i32; out.len() * kv];
    for &(key, k, i) in &triples {
        // `keys` is sorted: the output row is its position.
        if let Ok(o) = keys.binary_search(&key) {
            rows[o * kv + k as usize] = i as i32;
        }
    }
    let n_out = out.len();
    (out, out_range, KernelMap::from_rows(coords.len(), n_out, kv, rows, None))
}
