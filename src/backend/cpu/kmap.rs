//! Kernel maps on the CPU, built by hashing: submanifold (with the mirror trick), strided
//! (spconv output rule), generative transposed.

use rayon::prelude::*;

use super::hash::{CoordHash, Ravel};
use crate::backend::kmap::{ConvGeom, KernelMap, kernel_indices};

/// Submanifold map: outputs = inputs, neighbour of `c` at offset `k` = `c + (k − c₀)·d`
/// with `c₀ = (k−1)/2` per odd axis and 0 per even axis.
///
/// Coordinates in ascending ravel order without duplicates (what voxelization and every
/// strided or transposed map produce) are looked up through a **column grid**: the ravel key
/// runs z fastest, so the rows of one (b, x, y) column are a contiguous run, and an array over
/// all columns of the box holds where each run starts. A neighbour at (dx, dy, dz) is then
/// one read of that array (the column at (x + dx, y + dy)) and a scan of its short run for
/// z + dz; offsets that differ only in z share the read. Rows are independent, so chunks of
/// them run in parallel. A box with far more columns than rows (the array would cost more
/// than the rows), and other coordinate sets, are hashed ([`submanifold_hashed`]).
pub fn submanifold(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> KernelMap {
    let offsets = submanifold_offsets(geom);
    let kv = offsets.len();
    let ravel = Ravel::covering(coords, range);
    let n = coords.len();
    let size = ravel.size;
    // A flat set (one z: an image's pixels) has at most one row per column, so most of the
    // column array would be empty cells (an image's box is all of its pixels): its rows are
    // grouped by line (b, x) instead, and a neighbour is found by walking the neighbouring
    // line, whose rows ascend in y as this line's do (the carried lower bounds below).
    let by_line = size[3] == 1;
    let units_in_box = size[0].saturating_mul(size[1]).saturating_mul(if by_line { 1 } else { size[2] });
    if n == 0 || n >= u32::MAX as usize || units_in_box > (COLUMNS_PER_ROW * n as u64).max(MIN_COLUMNS) {
        return submanifold_hashed(coords, range, geom);
    }
    let keys: Option<Vec<u64>> = coords.par_iter().map(|&c| ravel.key(c)).collect();
    let Some(keys) = keys.filter(|k| k.par_windows(2).all(|w| w[0] < w[1])) else {
        return submanifold_hashed(coords, range, geom);
    };
    let identity = geom.kernel.iter().all(|k| k % 2 == 1).then_some(kv / 2);
    let keys_per_unit = if by_line { size[2] * size[3] } else { size[3] };
    let column_of = |i: usize| (keys[i] / keys_per_unit) as usize;
    let start = column_starts(n, units_in_box as usize, &column_of);

    // Offsets grouped by kernel column (dx, dy): its step in the column array and, per z
    // difference from its lowest dz, the offset's index k (`kv`, a scratch slot, for a
    // difference that is no offset of the kernel: dilation's gaps).
    // `step`: the neighbouring column's (or line's) index minus this row's; `key_step`: the
    // difference of their keys at the same z.
    struct Column {
        dxy: [i32; 2],
        step: i64,
        key_step: i64,
        dz_min: i64,
        slot_of_dz: Vec<usize>,
    }
    let mut columns: Vec<Column> = Vec::new();
    for o in &offsets {
        if !columns.iter().any(|c| c.dxy == [o[0], o[1]]) {
            let key_step = (o[0] as i64 * size[2] as i64 + o[1] as i64) * size[3] as i64;
            let step = if by_line { o[0] as i64 } else { key_step / size[3] as i64 };
            // In a flat set only dz = 0 can have a neighbour (and along a line, a z step
            // would alias a y step).
            let dzs = offsets
                .iter()
                .enumerate()
                .filter(|(_, p)| p[..2] == o[..2] && (!by_line || p[2] == 0))
                .map(|(k, p)| (k, p[2] as i64));
            let dz_min = dzs.clone().map(|(_, dz)| dz).min().unwrap_or(0);
            let dz_max = dzs.clone().map(|(_, dz)| dz).max().unwrap_or(0);
            let mut slot_of_dz = vec![kv; (dz_max - dz_min + 1) as usize];
            for (k, dz) in dzs {
                slot_of_dz[(dz - dz_min) as usize] = k;
            }
            columns.push(Column { dxy: [o[0], o[1]], step, key_step, dz_min, slot_of_dz });
        }
    }
    let inside = |v: i32, d: i32, a: usize| {
        let v = v as i64 + d as i64 - ravel.min[a + 1] as i64;
        v >= 0 && v < size[a + 1] as i64
    };
    // Every row is written whole below, in parallel: the allocation is not filled first (the
    // allocator's zeroing of a reused block runs on one thread, before the parallel work).
    let mut rows: Vec<i32> = Vec::with_capacity(n.div_ceil(crate::backend::ROW_TILE) * crate::backend::ROW_TILE * kv);
    const CHUNK: usize = 1024;
    // The keys with `span` sentinels after them, so the fixed-length checks below may read
    // past the last row.
    let span = columns.iter().map(|c| c.slot_of_dz.len()).max().unwrap_or(1);
    let padded: Vec<u64> = keys.iter().copied().chain(std::iter::repeat_n(u64::MAX, span)).collect();
    rows.spare_capacity_mut()[..n * kv].par_chunks_mut(CHUNK * kv).enumerate().for_each(|(ci, out)| {
        let mut scratch = vec![-1i32; kv + 1];
        // Per kernel column, where the previous row's search ended: rows of one column come
        // in ascending z, so their neighbours' lower bounds ascend too.
        let mut from = vec![0usize; columns.len()];
        let mut previous = usize::MAX;
        for (r, row) in out.chunks_exact_mut(kv).enumerate() {
            scratch.fill(-1);
            let i = ci * CHUNK + r;
            let c = &coords[i];
            let here = column_of(i);
            let same_column = here == previous;
            previous = here;
            for (q, Column { dxy: [dx, dy], step, key_step, dz_min, slot_of_dz }) in columns.iter().enumerate() {
                if !inside(c[1], *dx, 0) || !inside(c[2], *dy, 1) {
                    continue;
                }
                let col = (here as i64 + step) as usize;
                let end = start[col + 1] as usize;
                let mut m = if same_column { from[q] } else { start[col] as usize };
                // The first row of the neighbouring column (or line) at or above the key of
                // (x + dx, y + dy, z + dz_min), which `inside` keeps in the box, so nothing
                // wraps into another column or line.
                // Signed: below the box's lowest z, `lo` is negative.
                let lo = keys[i] as i64 + key_step + dz_min;
                while m < end && (keys[m] as i64) < lo {
                    m += 1;
                }
                from[q] = m;
                // The next `span` rows from there, without branches: a row past the column's
                // end or a z difference that is no offset goes to the scratch slot.
                for j in 0..span {
                    let d = (padded[m + j] as i64).wrapping_sub(lo) as u64;
                    let slot = if m + j < end && d < slot_of_dz.len() as u64 { slot_of_dz[d as usize] } else { kv };
                    scratch[slot] = (m + j) as i32;
                }
            }
            for (o, &v) in row.iter_mut().zip(&scratch[..kv]) {
                o.write(v);
            }
        }
    });
    // SAFETY: the loop above wrote all `n · kv` values.
    unsafe { rows.set_len(n * kv) };
    KernelMap::from_rows(n, n, kv, rows, identity)
}

/// The column grid's size limit: columns per row of the coordinate set (or this many in all,
/// whichever is more). A 0.1 m LiDAR frame has ~15 columns in its box per voxel.
const COLUMNS_PER_ROW: u64 = 64;
const MIN_COLUMNS: u64 = 1 << 20;

/// For rows sorted by column (`column_of` ascending), `start[c]` = the first row whose column
/// is at least `c`, for `c` in `0..=columns`: the rows of column `c` are
/// `start[c]..start[c + 1]`. Chunks of rows fill disjoint ranges of the array in parallel.
fn column_starts(n: usize, columns: usize, column_of: &(impl Fn(usize) -> usize + Sync)) -> Vec<u32> {
    const CHUNK: usize = 4096;
    let mut start = vec![0u32; columns + 1];
    // Chunk `j` (rows a..b) owns the cells after the column of row a − 1 up to the column of
    // row b − 1; the last chunk also owns the cells after the last row's column.
    let mut pieces = Vec::with_capacity(n.div_ceil(CHUNK));
    let mut rest = &mut start[..];
    let mut first_cell = 0usize;
    for a in (0..n).step_by(CHUNK) {
        let b = (a + CHUNK).min(n);
        let last_cell = if b == n { columns } else { column_of(b - 1) };
        let (mine, tail) = rest.split_at_mut(last_cell + 1 - first_cell);
        pieces.push((a, b, first_cell, mine));
        rest = tail;
        first_cell = last_cell + 1;
    }
    pieces.into_par_iter().for_each(|(a, b, first_cell, cells)| {
        let mut cell = first_cell;
        for i in a..b {
            let c = column_of(i);
            while cell <= c {
                cells[cell - first_cell] = i as u32;
                cell += 1;
            }
        }
        for v in &mut cells[cell - first_cell..] {
            *v = b as u32;
        }
    });
    start
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
    strided_disjoint(coords, range, geom).unwrap_or_else(|| strided_by_sorting(coords, range, geom))
}

/// [`strided`] where the kernel tiles the grid (kernel = stride, no padding, no dilation):
/// each input feeds exactly one output, `c div s` through offset `c mod s`, so the outputs
/// are the inputs' distinct parents in key order. Where the output box has few cells per
/// input (images), they are marked in an array over the box whose running count numbers
/// them; elsewhere (LiDAR levels: 80-300 cells per input) the inputs' (parent key, row)
/// pairs are sorted, one per input. `None` where the kernel does not tile, or the box's keys
/// do not fit 32 bits.
fn strided_disjoint(
    coords: &[[i32; 4]],
    range: [i32; 3],
    geom: &ConvGeom,
) -> Option<(Vec<[i32; 4]>, [i32; 3], KernelMap)> {
    let tiles = (0..3).all(|a| geom.kernel[a] == geom.stride[a] && geom.padding[a] == 0 && geom.dilation[a] == 1);
    let out_range = geom.down_range(range);
    let batches = coords.iter().map(|c| c[0]).max().map_or(1, |b| b + 1);
    let ravel =
        Ravel { min: [0; 4], size: [batches as u64, out_range[0] as u64, out_range[1] as u64, out_range[2] as u64] };
    let cells = ravel.size.iter().try_fold(1u64, |p, &s| p.checked_mul(s))?;
    if !tiles || coords.is_empty() || cells > 1 << 32 || coords.len() >= 1 << 31 {
        return None;
    }
    let s: [i32; 3] = std::array::from_fn(|a| geom.stride[a] as i32);
    // Kernel index of each offset (x, y, z) in `kernel_indices` order.
    let mut index = vec![0u32; geom.volume()];
    for (k, ix) in kernel_indices(geom.kernel).iter().enumerate() {
        index[(ix[0] * geom.kernel[1] + ix[1]) * geom.kernel[2] + ix[2]] = k as u32;
    }
    // An input's output (its parent) and its offset in that output's kernel.
    let parent = |c: &[i32; 4]| -> ([i32; 4], u32) {
        let (x, y, z) = (div_mod(c[1], s[0]), div_mod(c[2], s[1]), div_mod(c[3], s[2]));
        let ix = (x.1 as usize * geom.kernel[1] + y.1 as usize) * geom.kernel[2] + z.1 as usize;
        ([c[0], x.0, y.0, z.0], index[ix])
    };
    let kv = geom.volume();
    let (out, rows) = if cells <= CELLS_PER_INPUT * coords.len() as u64 {
        // Per input: its output's key and its offset (or none: outside the output box).
        let fed: Vec<Option<(u64, u32)>> = coords
            .par_iter()
            .map(|c| {
                let (o, k) = parent(c);
                Some((ravel.key(o)?, k))
            })
            .collect();
        let mut number = vec![0u32; cells as usize];
        for &(key, _) in fed.iter().flatten() {
            number[key as usize] = 1;
        }
        let mut out = Vec::new();
        let mut count = 0u32;
        for (key, v) in number.iter_mut().enumerate() {
            if *v != 0 {
                out.push(ravel.unravel(key as u64));
                *v = count;
                count += 1;
            }
        }
        let mut rows = vec![-1i32; out.len() * kv];
        for (i, f) in fed.iter().enumerate() {
            if let Some((key, k)) = *f {
                rows[number[key as usize] as usize * kv + k as usize] = i as i32;
            }
        }
        (out, rows)
    } else {
        // Key above, row below: sorting the words sorts by parent, then by row. Inputs
        // outside the output box get the largest word and are dropped after the sort.
        let mut keyed: Vec<u64> = coords
            .par_iter()
            .enumerate()
            .map(|(i, c)| ravel.key(parent(c).0).map_or(u64::MAX, |key| (key << 32) | i as u64))
            .collect();
        // Inputs in ravel order (voxelization's, every map's outputs) have their parents'
        // slabs (b, x div s) ascending already: only each slab's words need sorting, small
        // sorts side by side instead of one large one.
        let slab_cells = ravel.size[2] * ravel.size[3];
        let slab = |w: u64| if w == u64::MAX { u64::MAX } else { (w >> 32) / slab_cells };
        if keyed.par_windows(2).all(|p| slab(p[0]) <= slab(p[1])) {
            keyed.par_chunk_by_mut(|a, b| slab(*a) == slab(*b)).for_each(<[u64]>::sort_unstable);
        } else {
            keyed.par_sort_unstable();
        }
        let fed = keyed.partition_point(|&w| w != u64::MAX);
        let n_out = keyed[..fed].chunk_by(|a, b| a >> 32 == b >> 32).count();
        let (mut out, mut rows) = (Vec::with_capacity(n_out), vec![-1i32; n_out * kv]);
        let mut last = u64::MAX;
        for &w in &keyed[..fed] {
            let i = (w & u32::MAX as u64) as usize;
            let (o, k) = parent(&coords[i]);
            if w >> 32 != last {
                out.push(o);
                last = w >> 32;
            }
            rows[(out.len() - 1) * kv + k as usize] = i as i32;
        }
        (out, rows)
    };
    let n_out = out.len();
    Some((out, out_range, KernelMap::from_rows(coords.len(), n_out, kv, rows, None)))
}

/// `(c div s, c mod s)`, Euclidean, for a stride `s > 0`: shifts where it is a power of two
/// (every U-Net's), a division otherwise (a division per axis and input was most of the
/// down-sampling map's time).
#[inline]
fn div_mod(c: i32, s: i32) -> (i32, i32) {
    if s & (s - 1) == 0 { (c >> s.trailing_zeros(), c & (s - 1)) } else { (c.div_euclid(s), c.rem_euclid(s)) }
}

/// The output box's size limit for the array in [`strided_disjoint`], in cells per input: a
/// pass over the box costs about what sorting the inputs' keys does at ~16 cells per input
/// (2-D images at 3-4% of their pixels: ~8; LiDAR levels: 80-300).
const CELLS_PER_INPUT: u64 = 16;

/// [`strided`] for any kernel: every (input, offset) pair's output, sorted.
fn strided_by_sorting(coords: &[[i32; 4]], range: [i32; 3], geom: &ConvGeom) -> (Vec<[i32; 4]>, [i32; 3], KernelMap) {
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

    /// Kernels that tile the grid build the same strided maps as the general path: 2-D pixels
    /// and a small 3-D box with a batch axis (marked in an array), a large sparse box (one
    /// sorted key per input).
    #[test]
    fn disjoint_strided_maps_equal_the_sorted_ones() {
        let pixels: Vec<[i32; 4]> = (0..31)
            .flat_map(|u| (0..17).map(move |v| [0, u, v, 0]))
            .filter(|c| (c[1] * 5 + c[2] * 3) % 7 < 4)
            .collect();
        let mut s = 5u64;
        let mut next = |m: i32| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % m as u64) as i32
        };
        let mut voxels: Vec<[i32; 4]> = (0..900).map(|_| [next(2), next(12), next(10), next(9)]).collect();
        voxels.sort_unstable();
        voxels.dedup();
        let cases = [
            (
                &pixels,
                [31, 17, 1],
                ConvGeom { kernel: [2, 2, 1], stride: [2, 2, 1], padding: [0; 3], dilation: [1; 3] },
            ),
            (&voxels, [12, 10, 9], ConvGeom::cube(2, 2)),
        ];
        for (coords, range, geom) in cases {
            let fast = strided_disjoint(coords, range, &geom).expect("tiles, small box");
            let sorted = strided_by_sorting(coords, range, &geom);
            assert_eq!(fast.0, sorted.0);
            assert_eq!(fast.1, sorted.1);
            assert_eq!(fast.2.out_in_map, sorted.2.out_in_map);
            assert_eq!(fast.2.n_out, sorted.2.n_out);
        }
        // A box with far more cells than inputs (LiDAR levels) sorts the parents' keys: two
        // batches, several children per parent, and inputs on the odd range's last plane,
        // whose parent lies outside the output box.
        let mut far: Vec<[i32; 4]> = (0..400)
            .map(|_| {
                let (b, x, y, z) = (next(2), next(40) * 25, next(30) * 33, next(21) * 3);
                [b, x + next(2), y + next(2), (z + next(2)).min(60)]
            })
            .collect();
        far.sort_unstable();
        far.dedup();
        let range = [1001, 1000, 61];
        let geom = ConvGeom::cube(2, 2);
        let fast = strided_disjoint(&far, range, &geom).expect("tiles: sorted parents");
        let sorted = strided_by_sorting(&far, range, &geom);
        assert_eq!(fast.0, sorted.0);
        assert_eq!(fast.1, sorted.1);
        assert_eq!(fast.2.out_in_map, sorted.2.out_in_map);
        assert!(fast.0.len() < far.len(), "some parents have several children");
        assert!(far.iter().any(|c| c[3] == 60), "an input without a parent");
        assert!(strided_disjoint(&voxels, [12, 10, 9], &ConvGeom::cube(3, 2)).is_none());
    }

    /// The column grid and the hash table give the same maps on sorted coordinates (with a
    /// batch axis, odd / even / mixed kernels, dilation, neighbours outside the box), and
    /// unsorted or duplicated coordinates fall back to hashing.
    #[test]
    fn column_grid_equals_hashing() {
        let mut s = 7u64;
        let mut next = |m: i32| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % m as u64) as i32
        };
        let mut coords: Vec<[i32; 4]> = (0..3000).map(|_| [next(2), next(20) - 3, next(15), next(9)]).collect();
        coords.sort_unstable();
        coords.dedup();
        let range = [17, 15, 9];
        // The last: z offsets −2, 0, 2, whose gaps fall in the scratch slot.
        for (kernel, dilation) in
            [([3, 3, 3], [1, 1, 1]), ([2, 2, 2], [1, 1, 1]), ([3, 1, 5], [2, 1, 1]), ([3, 3, 3], [1, 1, 2])]
        {
            let geom = ConvGeom { kernel, dilation, ..ConvGeom::cube(3, 1) };
            let grid = submanifold(&coords, range, &geom);
            let hashed = submanifold_hashed(&coords, range, &geom);
            assert_eq!(grid.out_in_map, hashed.out_in_map, "kernel {kernel:?} dilation {dilation:?}");
            assert_eq!(grid.identity, hashed.identity);
            assert!(grid.n_pairs() > coords.len(), "neighbours were found");
        }
        // A flat set (an image's pixels: one z), grouped by line.
        let mut flat: Vec<[i32; 4]> = (0..2500).map(|_| [next(2), next(40), next(30), 0]).collect();
        flat.sort_unstable();
        flat.dedup();
        for (kernel, dilation) in
            [([3, 3, 1], [1, 1, 1]), ([2, 2, 1], [1, 1, 1]), ([3, 5, 1], [2, 1, 1]), ([3, 3, 3], [1; 3])]
        {
            let geom = ConvGeom { kernel, dilation, ..ConvGeom::cube(3, 1) };
            let grid = submanifold(&flat, [40, 30, 1], &geom);
            assert_eq!(grid.out_in_map, submanifold_hashed(&flat, [40, 30, 1], &geom).out_in_map, "flat {kernel:?}");
            assert!(grid.n_pairs() > flat.len(), "neighbours were found");
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
