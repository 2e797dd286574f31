//! Kernel maps on the CPU, built by hashing: submanifold (with the mirror trick), strided
//! (spconv output rule), generative transposed.

use rayon::prelude::*;

use super::hash::{CoordHash, Ravel};
use crate::backend::kmap::{ConvGeom, KernelMap, kernel_indices};

/// Submanifold map: outputs = inputs, neighbour of `c` at offset `k` = `c + (k − c₀)·d`
/// with `c₀ = (k−1)/2` per odd axis and 0 per even axis.
///
/// Coordinates in ascending ravel order without duplicates (what voxelization and every
/// strided or transposed map produce) take a merge join: the ravel key is linear in the
/// coordinate, so per offset the neighbours' keys `key(c) + Δ_k` ascend with the rows, and
/// offsets that differ only in z (the ravel's fastest axis) have adjacent keys: one forward
/// scan over the sorted keys per (x, y) column of the kernel finds them all, chunks of rows
/// in parallel, with no random access. Other coordinate sets are hashed
/// ([`submanifold_hashed`]).
pub fn submanifold(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> KernelMap {
    let offsets = submanifold_offsets(geom);
    let kv = offsets.len();
    let ravel = Ravel::covering(coords, range);
    let keys: Option<Vec<u64>> = coords.iter().map(|&c| ravel.key(c)).collect();
    let Some(keys) = keys.filter(|k| k.windows(2).all(|w| w[0] < w[1])) else {
        return submanifold_hashed(coords, range, geom);
    };
    let n = coords.len();
    let identity = geom.kernel.iter().all(|k| k % 2 == 1).then_some(kv / 2);
    let size = ravel.size;
    let span = |a: usize| (ravel.min[a + 1] as i64, size[a + 1] as i64);
    // Offsets that differ only along z have neighbours at adjacent keys (z is the ravel's
    // fastest axis): one scan per (x, y) column of the kernel finds them all, 9 scans for a
    // 3×3×3 kernel instead of 27. Per column: its key difference at dz = 0 and its offsets
    // as (k, dz) ascending in dz.
    struct Column {
        dxy: [i32; 2],
        delta: i64,
        /// `(k, dz)`, ascending in dz.
        dzs: Vec<(usize, i32)>,
    }
    let mut columns: Vec<Column> = Vec::new();
    for (k, o) in offsets.iter().enumerate() {
        let delta = (o[0] as i64 * size[2] as i64 + o[1] as i64) * size[3] as i64;
        match columns.iter_mut().find(|c| c.dxy == [o[0], o[1]]) {
            Some(c) => c.dzs.push((k, o[2])),
            None => columns.push(Column { dxy: [o[0], o[1]], delta, dzs: vec![(k, o[2])] }),
        }
    }
    for c in &mut columns {
        c.dzs.sort_unstable_by_key(|&(_, dz)| dz);
    }
    let inside = |v: i32, d: i32, a: usize| {
        let (lo, len) = span(a);
        let v = v as i64 + d as i64 - lo;
        v >= 0 && v < len
    };
    const CHUNK: usize = 2048;
    let mut rows = Vec::with_capacity(n.div_ceil(crate::backend::ROW_TILE) * crate::backend::ROW_TILE * kv);
    rows.resize(n * kv, -1i32);

    rows.par_chunks_mut(CHUNK * kv).enumerate().for_each(|(ci, out)| {
        let lo = ci * CHUNK;
        let rows_here = out.len() / kv;
        for Column { dxy: [dx, dy], delta, dzs } in &columns {
            let dz_min = dzs[0].1 as i64;
            let mut j: Option<usize> = None;
            for r in 0..rows_here {
                let i = lo + r;
                let c = &coords[i];
                if !inside(c[1], *dx, 0) || !inside(c[2], *dy, 1) {
                    continue;
                }
                // Inside the box along x and y the column's keys are exact and ascend with
                // `i`; each dz is checked against z's bounds (past them a key would wrap).
                let base = keys[i] as i64 + delta;
                // Not below the column's lowest z (a key there would wrap); still ascending.
                let first = (base + dz_min).max(base - (c[3] as i64 - span(2).0)) as u64;
                let j = j.get_or_insert_with(|| keys.partition_point(|&x| x < first));
                while *j < n && keys[*j] < first {
                    *j += 1;
                }
                let mut m = *j;
                for &(k, dz) in dzs {
                    if !inside(c[3], dz, 2) {
                        continue;
                    }
                    let t = (base + dz as i64) as u64;
                    while m < n && keys[m] < t {
                        m += 1;
                    }
                    if m < n && keys[m] == t {
                        out[r * kv + k] = m as i32;
                    }
                }
            }
        }
    });
    KernelMap::from_rows(n, n, kv, rows, identity)
}

/// A submanifold conv's offsets `(k − c₀)·d` in kernel order.
fn submanifold_offsets(geom: &ConvGeom) -> Vec<[i32; 3]> {
    kernel_indices(geom.kernel)
        .iter()
        .map(|ix| {
            std::array::from_fn(|a| {
                let c0 = if geom.kernel[a] % 2 == 1 { (geom.kernel[a] - 1) / 2 } else { 0 };
                (ix[a] as i32 - c0 as i32) * geom.dilation[a] as i32
            })
        })
        .collect()
}

/// [`submanifold`] by hashing, for any coordinate set (duplicates keep their first row).
/// With every axis odd only half the offsets are queried: a hit `j` of `i` at `k` also fills
/// the mirror `map[j, K−1−k] = i`.
pub fn submanifold_hashed(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> KernelMap {
    let offsets = submanifold_offsets(geom);
    let kv = offsets.len();
    let odd = geom.kernel.iter().all(|k| k % 2 == 1);
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
    // `keys` is sorted: a triple's output row is its key's position (searched in parallel;
    // the writes, to rows of any input, in one pass after).
    let at: Vec<usize> = triples.par_iter().map(|t| keys.binary_search(&t.0).unwrap_or(usize::MAX)).collect();
    let mut rows = vec![-1i32; out.len() * kv];
    for (&(_, k, i), &o) in triples.iter().zip(&at) {
        if o != usize::MAX {
            rows[o * kv + k as usize] = i as i32;
        }
    }
    let n_out = out.len();
    (out, out_range, KernelMap::from_rows(coords.len(), n_out, kv, rows, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merge join and the hash table give the same maps on sorted coordinates (with a
    /// batch axis, odd / even / mixed kernels, dilation, neighbours outside the box), and
    /// unsorted or duplicated coordinates fall back to hashing.
    #[test]
    fn merge_join_equals_hashing() {
        let mut s = 7u64;
        let mut next = |m: i32| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % m as u64) as i32
        };
        let mut coords: Vec<[i32; 4]> = (0..3000).map(|_| [next(2), next(20) - 3, next(15), next(9)]).collect();
        coords.sort_unstable();
        coords.dedup();
        let range = [17, 15, 9];
        for (kernel, dilation) in [([3, 3, 3], [1, 1, 1]), ([2, 2, 2], [1, 1, 1]), ([3, 1, 5], [2, 1, 1])] {
            let geom = ConvGeom { kernel, dilation, ..ConvGeom::cube(3, 1) };
            let merged = submanifold(&coords, range, &geom);
            let hashed = submanifold_hashed(&coords, range, &geom);
            assert_eq!(merged.out_in_map, hashed.out_in_map, "kernel {kernel:?} dilation {dilation:?}");
            assert_eq!(merged.identity, hashed.identity);
            assert!(merged.n_pairs() > coords.len(), "neighbours were found");
        }
        let mut shuffled = coords.clone();
        shuffled.swap(0, 100);
        shuffled.push(shuffled[5]);
        let geom = ConvGeom::cube(3, 1);
        assert_eq!(
            submanifold(&shuffled, range, &geom).out_in_map,
            submanifold_hashed(&shuffled, range, &geom).out_in_map
        );
    }
}
