//! Ray casting acceleration: a bounding volume hierarchy (binned SAH build, flattened nodes,
//! stack traversal) over any primitives with bounding boxes, and the triangle mesh of the
//! static world built on it (Möller–Trumbore intersection).
//!
//! Math is on plain `[f64; 3]` arrays: our crate builds at opt-level 1 in the dev profile,
//! where nalgebra's generic operators are not fully inlined and would dominate the ray loop.
//! Node bounds are f32 (half the cache footprint), rounded outwards so no hit is lost; the
//! primitive tests themselves are f64.

use super::snapshot::{Material, StaticWorld, Triangle};

/// A 3-vector as a plain array.
pub type V3 = [f64; 3];

#[inline(always)]
pub fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline(always)]
pub fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
#[inline(always)]
pub fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
#[inline(always)]
pub fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline(always)]
pub fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
/// `a` scaled to unit length; the zero vector stays zero.
#[inline(always)]
pub fn normalized(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    if n > 0.0 { scale(a, 1.0 / n) } else { a }
}

/// A ray `origin + t·dir`; `dir` is unit length so `t` is a distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ray {
    pub origin: V3,
    pub dir: V3,
}

impl Ray {
    pub fn at(&self, t: f64) -> V3 {
        add(self.origin, scale(self.dir, t))
    }
}

/// An axis-aligned bounding box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aabb {
    pub min: V3,
    pub max: V3,
}

impl Aabb {
    pub const EMPTY: Aabb = Aabb { min: [f64::INFINITY; 3], max: [f64::NEG_INFINITY; 3] };

    pub fn grow_point(&mut self, p: V3) {
        self.grow(&Aabb { min: p, max: p });
    }
    pub fn grow(&mut self, b: &Aabb) {
        for k in 0..3 {
            self.min[k] = self.min[k].min(b.min[k]);
            self.max[k] = self.max[k].max(b.max[k]);
        }
    }
    pub fn centre(&self) -> V3 {
        scale(add(self.min, self.max), 0.5)
    }
    fn half_area(&self) -> f64 {
        let d = sub(self.max, self.min);
        if d[0] < 0.0 { 0.0 } else { d[0] * d[1] + d[1] * d[2] + d[2] * d[0] }
    }
}

/// One flattened node. An inner node's left child directly follows it and `index` is its
/// right child; a leaf holds primitives `index .. index + count` of the BVH's order.
#[derive(Debug, Clone, Copy)]
struct Node {
    min: [f32; 3],
    max: [f32; 3],
    index: u32,
    /// 0 for inner nodes.
    count: u32,
}

/// A bounding volume hierarchy over primitives `0..n`, each known only by its box.
#[derive(Debug, Clone, Default)]
pub struct Bvh {
    nodes: Vec<Node>,
    /// Primitive indices in leaf order.
    order: Vec<u32>,
}

const MAX_LEAF: usize = 4;
const BINS: usize = 12;
/// Deep enough for any tree the builder makes (it stops splitting at this depth).
const MAX_DEPTH: usize = 60;

/// f64 → f32 rounded down/up so the f32 box still contains the f64 one.
fn round_down(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) > x { f.next_down() } else { f }
}
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x { f.next_up() } else { f }
}

impl Bvh {
    /// Builds the hierarchy with a binned surface-area heuristic. Deterministic: it depends
    /// only on the boxes and their order.
    pub fn build(boxes: &[Aabb]) -> Bvh {
        let mut order: Vec<u32> = (0..boxes.len() as u32).collect();
        let centres: Vec<V3> = boxes.iter().map(Aabb::centre).collect();
        let mut nodes = Vec::with_capacity(boxes.len() / 2 + 1);
        if !boxes.is_empty() {
            build_node(boxes, &centres, &mut order, 0, &mut nodes, 0);
        }
        Bvh { nodes, order }
    }

    /// Whether the hierarchy holds no primitives.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Visits the primitives whose boxes the ray may hit before `t_max`, near boxes first.
    /// `hit(prim, t_max)` returns the distance of a hit closer than `t_max`, which then
    /// shortens the ray. Returns the closest hit `(t, prim)`.
    #[inline]
    pub fn closest<F: FnMut(usize, f64) -> Option<f64>>(
        &self,
        ray: &Ray,
        t_min: f64,
        mut t_max: f64,
        mut hit: F,
    ) -> Option<(f64, usize)> {
        if self.nodes.is_empty() {
            return None;
        }
        let o = ray.origin.map(|v| v as f32);
        let inv = ray.dir.map(|d| if d == 0.0 { f32::INFINITY } else { (1.0 / d) as f32 });
        // The f32 origin can be off by ~1e-5 m; pad the slab interval to stay conservative.
        let pad = 1e-3f32;
        slab(&self.nodes[0], o, inv, t_max as f32 + pad)?;
        let mut best = None;
        let mut stack = [(0u32, 0f32); MAX_DEPTH + 2];
        let mut sp = 0usize;
        let mut node_i = 0usize;
        loop {
            let node = &self.nodes[node_i];
            if node.count > 0 {
                let start = node.index as usize;
                for &p in &self.order[start..start + node.count as usize] {
                    if let Some(t) = hit(p as usize, t_max)
                        && t >= t_min
                        && t < t_max
                    {
                        t_max = t;
                        best = Some((t, p as usize));
                    }
                }
            } else {
                let (l, r) = (node_i + 1, node.index as usize);
                let tl = slab(&self.nodes[l], o, inv, t_max as f32 + pad);
                let tr = slab(&self.nodes[r], o, inv, t_max as f32 + pad);
                match (tl, tr) {
                    (Some(a), Some(b)) => {
                        let (near, far) = if a <= b { (l, r) } else { (r, l) };
                        stack[sp] = (far as u32, a.max(b));
                        sp += 1;
                        node_i = near;
                        continue;
                    }
                    (Some(_), None) => {
                        node_i = l;
                        continue;
                    }
                    (None, Some(_)) => {
                        node_i = r;
                        continue;
                    }
                    (None, None) => {}
                }
            }
            // Pop the next far child that the shortened ray can still reach.
            loop {
                if sp == 0 {
                    return best;
                }
                sp -= 1;
                let (n, t_enter) = stack[sp];
                if t_enter <= t_max as f32 + pad {
                    node_i = n as usize;
                    break;
                }
            }
        }
    }
}

/// Entry distance of the ray into a node's box, if it enters before `t_max`.
#[inline(always)]
fn slab(node: &Node, o: [f32; 3], inv: [f32; 3], t_max: f32) -> Option<f32> {
    let mut t0 = -1e-3f32;
    let mut t1 = t_max;
    for k in 0..3 {
        let a = (node.min[k] - o[k]) * inv[k];
        let b = (node.max[k] - o[k]) * inv[k];
        // NaN (0·∞ for a ray in a slab's plane) must not shrink the interval: min/max
        // ignore NaN operands.
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        t0 = t0.max(lo);
        t1 = t1.min(hi);
    }
    (t0 <= t1).then_some(t0)
}

fn build_node(boxes: &[Aabb], centres: &[V3], order: &mut [u32], first: usize, nodes: &mut Vec<Node>, depth: usize) {
    let mut bounds = Aabb::EMPTY;
    let mut cbounds = Aabb::EMPTY;
    for &p in order.iter() {
        bounds.grow(&boxes[p as usize]);
        cbounds.grow_point(centres[p as usize]);
    }
    let me = nodes.len();
    nodes.push(Node {
        min: bounds.min.map(round_down),
        max: bounds.max.map(round_up),
        index: first as u32,
        count: order.len() as u32,
    });
    if order.len() <= MAX_LEAF || depth >= MAX_DEPTH {
        return;
    }
    let Some(mid) = sah_split(boxes, centres, order, &cbounds, bounds.half_area()) else {
        return;
    };
    let (left, right) = order.split_at_mut(mid);
    build_node(boxes, centres, left, first, nodes, depth + 1);
    let right_i = nodes.len();
    build_node(boxes, centres, right, first + mid, nodes, depth + 1);
    nodes[me].index = right_i as u32;
    nodes[me].count = 0;
}

/// Partitions `order` by the cheapest binned SAH plane; returns the split position, or
/// `None` when keeping a leaf is cheaper or no plane separates the centres.
// `axis` indexes both the bounds and every centre: an index loop reads clearest.
#[allow(clippy::needless_range_loop)]
fn sah_split(boxes: &[Aabb], centres: &[V3], order: &mut [u32], cb: &Aabb, parent_area: f64) -> Option<usize> {
    let mut best: Option<(f64, usize, usize)> = None; // (cost, axis, bin)
    for axis in 0..3 {
        let (lo, hi) = (cb.min[axis], cb.max[axis]);
        if hi - lo <= 1e-12 {
            continue;
        }
        let k = BINS as f64 / (hi - lo);
        let bin_of = |c: f64| (((c - lo) * k) as usize).min(BINS - 1);
        let mut bin_box = [Aabb::EMPTY; BINS];
        let mut bin_n = [0usize; BINS];
        for &p in order.iter() {
            let b = bin_of(centres[p as usize][axis]);
            bin_box[b].grow(&boxes[p as usize]);
            bin_n[b] += 1;
        }
        // Sweep from the right to get suffix areas, then from the left.
        let mut right_area = [0.0; BINS];
        let mut right_n = [0usize; BINS];
        let (mut acc, mut n) = (Aabb::EMPTY, 0);
        for b in (1..BINS).rev() {
            acc.grow(&bin_box[b]);
            n += bin_n[b];
            right_area[b] = acc.half_area();
            right_n[b] = n;
        }
        let (mut acc, mut n) = (Aabb::EMPTY, 0);
        for b in 0..BINS - 1 {
            acc.grow(&bin_box[b]);
            n += bin_n[b];
            if n == 0 || right_n[b + 1] == 0 {
                continue;
            }
            let cost = acc.half_area() * n as f64 + right_area[b + 1] * right_n[b + 1] as f64;
            if best.is_none_or(|(c, _, _)| cost < c) {
                best = Some((cost, axis, b));
            }
        }
    }
    let (cost, axis, bin) = best?;
    // Leaf cost vs. traversal cost + children (in units of one primitive test).
    if order.len() <= 2 * MAX_LEAF && cost / parent_area.max(1e-12) + 1.0 >= order.len() as f64 {
        return None;
    }
    let (lo, hi) = (cb.min[axis], cb.max[axis]);
    let k = BINS as f64 / (hi - lo);
    let goes_left = |p: u32| ((((centres[p as usize][axis] - lo) * k) as usize).min(BINS - 1)) <= bin;
    // In-place stable-enough partition (deterministic).
    let mut i = 0;
    for j in 0..order.len() {
        if goes_left(order[j]) {
            order.swap(i, j);
            i += 1;
        }
    }
    (i > 0 && i < order.len()).then_some(i)
}

/// A triangle prepared for Möller–Trumbore: a vertex and two edges.
#[derive(Debug, Clone, Copy)]
struct PreparedTriangle {
    v0: V3,
    e1: V3,
    e2: V3,
}

/// Ray ∩ triangle (both sides), returning the distance.
#[inline(always)]
fn moller_trumbore(tri: &PreparedTriangle, ray: &Ray) -> Option<f64> {
    let p = cross(ray.dir, tri.e2);
    let det = dot(tri.e1, p);
    if det.abs() < 1e-14 {
        return None;
    }
    let inv = 1.0 / det;
    let s = sub(ray.origin, tri.v0);
    let u = dot(s, p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = cross(s, tri.e1);
    let v = dot(ray.dir, q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    Some(dot(tri.e2, q) * inv)
}

/// The hit of a ray on the static world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Distance along the (unit) ray.
    pub t: f64,
    /// Index into [`StaticWorld::triangles`].
    pub triangle: usize,
    /// Unit geometric normal, facing the ray's origin.
    pub normal: V3,
}

/// The static world's triangles with a BVH over them; build once per world and share it
/// between frames and sensors.
#[derive(Debug, Clone)]
pub struct TriangleMesh {
    bvh: Bvh,
    prepared: Vec<PreparedTriangle>,
    materials: Vec<Material>,
}

impl TriangleMesh {
    pub fn new(world: &StaticWorld) -> TriangleMesh {
        Self::from_triangles(&world.triangles)
    }

    pub fn from_triangles(triangles: &[Triangle]) -> TriangleMesh {
        let to_v = |p: &nalgebra::Vector3<f64>| [p.x, p.y, p.z];
        let prepared: Vec<PreparedTriangle> = triangles
            .iter()
            .map(|t| {
                let [a, b, c] = [to_v(&t.v[0]), to_v(&t.v[1]), to_v(&t.v[2])];
                PreparedTriangle { v0: a, e1: sub(b, a), e2: sub(c, a) }
            })
            .collect();
        let boxes: Vec<Aabb> = triangles
            .iter()
            .map(|t| {
                let mut b = Aabb::EMPTY;
                t.v.iter().for_each(|p| b.grow_point(to_v(p)));
                b
            })
            .collect();
        TriangleMesh { bvh: Bvh::build(&boxes), prepared, materials: triangles.iter().map(|t| t.material).collect() }
    }

    pub fn len(&self) -> usize {
        self.prepared.len()
    }
    pub fn is_empty(&self) -> bool {
        self.prepared.is_empty()
    }
    pub fn material(&self, triangle: usize) -> &Material {
        &self.materials[triangle]
    }

    /// The closest hit with `t_min <= t < t_max`.
    pub fn intersect(&self, ray: &Ray, t_min: f64, t_max: f64) -> Option<Hit> {
        let (t, i) = self.bvh.closest(ray, t_min, t_max, |p, _| moller_trumbore(&self.prepared[p], ray))?;
        Some(Hit { t, triangle: i, normal: self.normal_towards(i, ray) })
    }

    /// Every hit with `t_min <= t < t_max`, nearest first (for multi-return models and tests).
    pub fn intersect_all(&self, ray: &Ray, t_min: f64, t_max: f64) -> Vec<Hit> {
        let mut out = Vec::new();
        let mut from = t_min;
        // Repeated closest-hit queries: a handful of surfaces per ray at most.
        while let Some(h) = self.intersect(ray, from, t_max) {
            from = h.t + 1e-6;
            out.push(h);
        }
        out
    }

    /// Brute force over every triangle: the reference the BVH is tested against.
    pub fn intersect_brute_force(&self, ray: &Ray, t_min: f64, t_max: f64) -> Option<Hit> {
        let mut best: Option<(f64, usize)> = None;
        for (i, tri) in self.prepared.iter().enumerate() {
            if let Some(t) = moller_trumbore(tri, ray)
                && t >= t_min
                && t < t_max
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, i));
            }
        }
        best.map(|(t, i)| Hit { t, triangle: i, normal: self.normal_towards(i, ray) })
    }

    fn normal_towards(&self, i: usize, ray: &Ray) -> V3 {
        let tri = &self.prepared[i];
        let n = normalized(cross(tri.e1, tri.e2));
        if dot(n, ray.dir) > 0.0 { scale(n, -1.0) } else { n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_and_triangle_basics() {
        let tri = PreparedTriangle { v0: [1.0, -1.0, -1.0], e1: [0.0, 2.0, 0.0], e2: [0.0, 0.0, 2.0] };
        let ray = Ray { origin: [0.0, -0.5, -0.5], dir: [1.0, 0.0, 0.0] };
        assert_eq!(moller_trumbore(&tri, &ray), Some(1.0));
        let miss = Ray { origin: [0.0, 2.0, 0.0], dir: [1.0, 0.0, 0.0] };
        assert_eq!(moller_trumbore(&tri, &miss), None);
        let boxes = [Aabb { min: [0.0; 3], max: [1.0; 3] }];
        let bvh = Bvh::build(&boxes);
        let r = Ray { origin: [-1.0, 0.5, 0.5], dir: [1.0, 0.0, 0.0] };
        assert!(bvh.closest(&r, 0.0, 10.0, |_, _| Some(1.0)).is_some());
        let r = Ray { origin: [-1.0, 2.5, 0.5], dir: [1.0, 0.0, 0.0] };
        assert!(bvh.closest(&r, 0.0, 10.0, |_, _| Some(1.0)).is_none());
    }
}
