//! Open-set objects: connected components of points on a voxel grid.
//!
//! The points are binned into cubic voxels of `voxel` metres; two occupied voxels are
//! connected when they touch by a face, an edge or a corner (26-connectivity), so two
//! points end in one cluster when a chain of occupied voxels joins them (gaps narrower
//! than about one voxel are bridged, wider ones split). Components with fewer than
//! `min_points` points are noise and belong to no cluster.

use std::collections::HashMap;

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
    let mut voxel_of: HashMap<[i32; 3], u32> = HashMap::with_capacity(members.len());
    let mut point_voxel = Vec::with_capacity(members.len());
    for &i in members {
        let n = voxel_of.len() as u32;
        point_voxel.push(*voxel_of.entry(key(xyz[i as usize])).or_insert(n));
    }
    let mut uf = UnionFind::new(voxel_of.len());
    for (&k, &v) in &voxel_of {
        // Half of the 26 neighbours: the other half finds this voxel from theirs.
        for d in HALF_NEIGHBOURS {
            if let Some(&w) = voxel_of.get(&[k[0] + d[0], k[1] + d[1], k[2] + d[2]]) {
                uf.union(v, w);
            }
        }
    }
    let mut by_root: HashMap<u32, Vec<u32>> = HashMap::new();
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
}
