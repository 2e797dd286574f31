//! Coordinate hashing: the bounding-box ravel key and an open-addressing table
//! (docs/sparse-conv.md#coordinate-hashing, upstream `hashmap_on_the_fly`): key = ravel over the box + 1, so 0
//! marks an empty slot; linear probing; capacity `max(512, 2·N)` rounded to a power of two.

/// Mixed-radix ravel of `(b, x, y, z)` over a box `[min, min + size)`; `b` is the most
/// significant digit, so sorting keys sorts coordinates by `(b, x, y, z)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ravel {
    pub min: [i32; 4],
    pub size: [u64; 4],
}

impl Ravel {
    /// The box of a coordinate set, grown by `pad` on every spatial side (so that queries at
    /// neighbouring offsets stay inside it) and never smaller than `[0, range)` spatially.
    pub fn covering(coords: &[[i32; 4]], range: [i32; 3]) -> Self {
        let mut min = [0i32, 0, 0, 0];
        let mut max = [0i32, range[0] - 1, range[1] - 1, range[2] - 1];
        for c in coords {
            for (a, &v) in c.iter().enumerate() {
                min[a] = min[a].min(v);
                max[a] = max[a].max(v);
            }
        }
        let size = std::array::from_fn(|a| (max[a] as i64 - min[a] as i64 + 1).max(1) as u64);
        Ravel { min, size }
    }

    /// The key of `c`, or `None` outside the box.
    #[inline]
    pub fn key(&self, c: [i32; 4]) -> Option<u64> {
        let mut k = 0u64;
        for ((&v, &min), &size) in c.iter().zip(&self.min).zip(&self.size) {
            let d = v as i64 - min as i64;
            if d < 0 || d as u64 >= size {
                return None;
            }
            k = k * size + d as u64;
        }
        Some(k)
    }

    /// The coordinate of a key made by [`Ravel::key`].
    #[inline]
    pub fn unravel(&self, mut k: u64) -> [i32; 4] {
        let mut c = [0i32; 4];
        for a in (0..4).rev() {
            c[a] = (k % self.size[a]) as i32 + self.min[a];
            k /= self.size[a];
        }
        c
    }
}

/// murmur3's 64-bit finaliser: spreads the dense ravel keys over the table.
#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Coordinate → row index, open addressing with linear probing. Keys are stored as
/// `ravel + 1` (0 = empty), as u64 (the original's signed int64 slot can go negative).
#[derive(Debug, Clone)]
pub struct CoordHash {
    ravel: Ravel,
    keys: Vec<u64>,
    vals: Vec<u32>,
    mask: usize,
}

impl CoordHash {
    /// A table holding `coords[i] → i`. Duplicate coordinates keep the first row.
    pub fn build(coords: &[[i32; 4]], ravel: Ravel) -> Self {
        let cap = (2 * coords.len()).max(512).next_power_of_two();
        let mut t = CoordHash { ravel, keys: vec![0; cap], vals: vec![0; cap], mask: cap - 1 };
        for (i, &c) in coords.iter().enumerate() {
            if let Some(k) = ravel.key(c) {
                t.insert(k + 1, i as u32);
            }
        }
        t
    }

    fn insert(&mut self, key: u64, val: u32) {
        let mut s = fmix64(key) as usize & self.mask;
        loop {
            if self.keys[s] == 0 {
                self.keys[s] = key;
                self.vals[s] = val;
                return;
            }
            if self.keys[s] == key {
                return;
            }
            s = (s + 1) & self.mask;
        }
    }

    /// The row holding `c`, if any.
    #[inline]
    pub fn get(&self, c: [i32; 4]) -> Option<u32> {
        let key = self.ravel.key(c)? + 1;
        let mut s = fmix64(key) as usize & self.mask;
        loop {
            let k = self.keys[s];
            if k == key {
                return Some(self.vals[s]);
            }
            if k == 0 {
                return None;
            }
            s = (s + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ravel_round_trips_and_orders() {
        let coords = [[0, 3, -2, 5], [1, 0, 0, 0], [0, 3, -2, 4]];
        let r = Ravel::covering(&coords, [4, 1, 6]);
        for c in coords {
            assert_eq!(r.unravel(r.key(c).unwrap()), c);
        }
        assert!(r.key([0, 3, -2, 4]).unwrap() < r.key([0, 3, -2, 5]).unwrap());
        assert!(r.key([0, 3, -2, 5]).unwrap() < r.key([1, 0, 0, 0]).unwrap());
        assert_eq!(r.key([2, 0, 0, 0]), None);
    }

    #[test]
    fn table_finds_every_coordinate_and_nothing_else() {
        let coords: Vec<[i32; 4]> = (0..2000).map(|i| [i % 2, (i * 7) % 50, (i * 13) % 40, i / 50]).collect();
        let r = Ravel::covering(&coords, [1, 1, 1]);
        let t = CoordHash::build(&coords, r);
        for (i, &c) in coords.iter().enumerate() {
            let j = t.get(c).unwrap() as usize;
            assert_eq!(coords[j], c, "row {i}");
        }
        assert_eq!(t.get([0, 51, 0, 0]), None);
        assert_eq!(t.get([0, -1, 0, 0]), None);
    }
}
