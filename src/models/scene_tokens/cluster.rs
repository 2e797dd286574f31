//! Open-set objects: connected components of points on a voxel grid.
//!
//! The points are binned into cubic voxels of `voxel` metres; two occupied voxels are
//! connected when they touch by a face, an edge or a corner (26-connectivity), so two
//! points end in one cluster when a chain of occupied voxels joins them (gaps narrower
//! than about one voxel are bridged, wider ones split). Components with fewer than
//! `min_points` points are noise and belong to no cluster.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The parameters of [`connected_components`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterParams {
    /// Voxel side, metres.
    pub voxel: f32,
    /// The fewest points a cluster may have.
    pub min_points: usize,
}

/// Clusters of the points `members` (indices into `xyz`), each a list of point indices in
/// ascending order; clusters ordered by their lowest point index (deterministic).
pub fn connected_components(xyz: &[[f32; 3]], members: &[u32], p: ClusterParams) -> Vec<Vec<u32>> {
    let key = |q: [f32; 3]| -> [i32; 3] { q.map(|v| (v / p.voxel).floor() as i32) };
    // Occupied voxels, numbered in first-seen order.
    let mut voxel_of: KeyMap<u32> = KeyMap::with_capacity_and_hasher(members.len(), Default::default());
    let mut point_voxel = Vec::with_capacity(members.len());
    for &i in members {
        let n = voxel_of.len() as u32;
        point_voxel.push(*voxel_of.entry(pack(key(xyz[i as usize]))).or_insert(n));
    }
    let mut uf = UnionFind::new(voxel_of.len());
    for (&k, &v) in &voxel_of {
        let k = unpack(k);
        // Half of the 26 neighbours: the other half finds this voxel from theirs.
        for d in HALF_NEIGHBOURS {
            if let Some(&w) = voxel_of.get(&pack([k[0] + d[0], k[1] + d[1], k[2] + d[2]])) {
                uf.union(v, w);
            }
        }
    }
    let mut by_root: HashMap<u32, Vec<u32>, BuildHasherDefault<KeyHasher>> = HashMap::default();
    let mut sorted: Vec<(u32, u32)> = members.iter().zip(&point_voxel).map(|(&i, &v)| (i, v)).collect();
    sorted.sort_unstable();
    let mut order = Vec::new();
    for (i, v) in sorted {
        let r = uf.find(v);
        let list = by_root.entry(r).or_insert_with(|| {
            order.push(r);
            Vec::new()
        });
        list.push(i);
    }
    order.into_iter().filter_map(|r| by_root.remove(&r)).filter(|c| c.len() >= p.min_points).collect()
}

/// A map keyed by [`pack`]ed grid coordinates.
pub(super) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Grid coordinates (21 bits each, two's complement: ±10⁶ cells) as one key.
pub(super) fn pack(k: [i32; 3]) -> u64 {
    const M: u64 = (1 << 21) - 1;
    ((k[0] as u64 & M) << 42) | ((k[1] as u64 & M) << 21) | (k[2] as u64 & M)
}

fn unpack(k: u64) -> [i32; 3] {
    // Shift each field to the top and back to sign-extend it.
    [((k << 1) as i64 >> 43) as i32, ((k << 22) as i64 >> 43) as i32, ((k << 43) as i64 >> 43) as i32]
}

/// One multiply per key (the keys are packed coordinates, not attacker-chosen; SipHash,
/// the std default, made the hashing the largest part of the clustering).
#[derive(Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(26) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// The 13 offsets `d` with `d > 0` lexicographically among the 26 neighbours.
const HALF_NEIGHBOURS: [[i32; 3]; 13] = {
    let mut out = [[0; 3]; 13];
    let mut n = 0;
    let mut i = 0;
    while i < 27 {
        let d = [i / 9 - 1, (i / 3) % 3 - 1, i % 3 - 1];
        if d[0] > 0 || (d[0] == 0 && (d[1] > 0 || (d[1] == 0 && d[2] > 0))) {
            out[n] = d;
            n += 1;
        }
        i += 1;
    }
    out
};

/// Disjoint sets with path halving and union by size.
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind { parent: (0..n as u32).collect(), size: vec![1; n] }
    }
    fn find(&mut self, mut v: u32) -> u32 {
        while self.parent[v as usize] != v {
            let up = self.parent[self.parent[v as usize] as usize];
            self.parent[v as usize] = up;
            v = up;
        }
        v
    }
    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ClusterParams = ClusterParams { voxel: 0.4, min_points: 3 };

    fn blob(c: [f32; 3], n: usize) -> Vec<[f32; 3]> {
        (0..n).map(|k| [c[0] + 0.05 * (k % 4) as f32, c[1] + 0.05 * (k / 4) as f32, c[2]]).collect()
    }

    #[test]
    fn separate_blobs_are_separate_clusters_and_chains_join() {
        let mut xyz = blob([0.0, 0.0, 0.0], 8);
        xyz.extend(blob([3.0, 0.0, 0.0], 8));
        // A chain of points 0.3 m apart from the second blob: one cluster with it.
        xyz.extend((1..6).map(|k| [3.15 + 0.3 * k as f32, 0.05, 0.0]));
        // Two lone points: noise.
        xyz.push([10.0, 10.0, 0.0]);
        xyz.push([-10.0, 10.0, 0.0]);
        let all: Vec<u32> = (0..xyz.len() as u32).collect();
        let c = connected_components(&xyz, &all, P);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], (0..8).collect::<Vec<u32>>());
        assert_eq!(c[1], (8..21).collect::<Vec<u32>>());
    }

    #[test]
    fn a_diagonal_neighbour_connects_and_a_one_voxel_gap_splits() {
        // Voxel (0,0,0) and (1,1,1) touch at a corner; (3,0,0) is two voxels away.
        let xyz =
            vec![[0.1, 0.1, 0.1], [0.5, 0.5, 0.5], [0.1, 0.1, 0.2], [1.3, 0.1, 0.1], [1.3, 0.2, 0.1], [1.3, 0.3, 0.1]];
        let all: Vec<u32> = (0..6).collect();
        let c = connected_components(&xyz, &all, P);
        assert_eq!(c, vec![vec![0, 1, 2], vec![3, 4, 5]]);
        // Only the members take part.
        assert!(connected_components(&xyz, &[0, 1], P).is_empty());
        assert_eq!(HALF_NEIGHBOURS.len(), 13);
    }

    #[test]
    fn packed_keys_round_trip_with_their_signs() {
        for k in [[0, 0, 0], [-1, 2, -3], [1_000_000, -1_000_000, 7], [-1_048_576, 1_048_575, -1]] {
            assert_eq!(unpack(pack(k)), k);
        }
    }
}
