//! What the cameras draw: the faces of a [`Snapshot`] (static triangles and meshes built
//! from object boxes) and their appearance (procedural asphalt grain, sky gradient).
//!
//! All appearance noise is a pure function of the world position, so images are
//! deterministic whatever the thread count.

use crate::scene::{Box3d, CameraSegClass};
use crate::sim::raster::Face;
use crate::sim::snapshot::{ObjectKind, SceneObject, Snapshot};

/// Everything a camera draws at one instant, indexed `0..len()`: the static triangles
/// first, then the object faces.
pub struct SceneFaces<'a> {
    pub snapshot: &'a Snapshot,
    pub objects: Vec<Face>,
}

impl<'a> SceneFaces<'a> {
    /// The faces of a snapshot; object `j` of `snapshot.objects` gets object id `j + 1`.
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let mut objects = Vec::with_capacity(snapshot.objects.len() * 24);
        for (j, o) in snapshot.objects.iter().enumerate() {
            object_faces(o, j as u32 + 1, &mut objects);
        }
        SceneFaces { snapshot, objects }
    }
    pub fn len(&self) -> usize {
        self.snapshot.static_world.triangles.len() + self.objects.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Face `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Face {
        let statics = &self.snapshot.static_world.triangles;
        match statics.get(i) {
            Some(t) => Face {
                v: [to_arr(&t.v[0]), to_arr(&t.v[1]), to_arr(&t.v[2])],
                albedo: t.material.color,
                class: t.material.camera_class,
                object: 0,
            },
            None => self.objects[i - statics.len()],
        }
    }
    /// Albedo, class and object of face `i`, without its vertices (the shading path).
    #[inline]
    pub fn surface(&self, i: usize) -> ([u8; 3], CameraSegClass, u32) {
        let statics = &self.snapshot.static_world.triangles;
        match statics.get(i) {
            Some(t) => (t.material.color, t.material.camera_class, 0),
            None => {
                let f = &self.objects[i - statics.len()];
                (f.albedo, f.class, f.object)
            }
        }
    }
}

fn to_arr(p: &nalgebra::Vector3<f64>) -> [f64; 3] {
    [p.x, p.y, p.z]
}

/// A part of an object's mesh: a box given as fractions of the object's box
/// (`[from, to]` along length, width and height, each in 0..1).
struct Part {
    frac: [[f64; 2]; 3],
    albedo: [u8; 3],
}

const CONE_ORANGE: [u8; 3] = [245, 110, 20];
const WINDOW: [u8; 3] = [40, 48, 60];
const TYRE: [u8; 3] = [30, 30, 30];

fn darker(c: [u8; 3], f: f32) -> [u8; 3] {
    c.map(|x| (x as f32 * f) as u8)
}

/// Appends the faces of one object: coloured boxes whose union spans the object's box
/// (vehicles: body + glazed cabin; pedestrians: body + head; cyclists: bicycle + rider;
/// cones: base + post), so 2-D boxes of the rendered mask match the projected 3-D box.
pub fn object_faces(o: &SceneObject, object: u32, out: &mut Vec<Face>) {
    let class = o.kind.camera_class();
    let c = o.color;
    let full = [0.0, 1.0];
    let parts: Vec<Part> = match o.kind {
        ObjectKind::Car => vec![
            Part { frac: [full, full, [0.0, 0.55]], albedo: c },
            Part { frac: [[0.15, 0.8], [0.04, 0.96], [0.55, 1.0]], albedo: WINDOW },
        ],
        ObjectKind::Truck | ObjectKind::StalledTruck => vec![
            Part { frac: [[0.78, 1.0], full, [0.0, 1.0]], albedo: c },
            Part { frac: [[0.0, 0.76], full, [0.0, 1.0]], albedo: darker([220, 220, 215], 0.95) },
        ],
        ObjectKind::Bus => vec![
            Part { frac: [full, full, [0.0, 0.6]], albedo: c },
            Part { frac: [full, full, [0.6, 0.85]], albedo: WINDOW },
            Part { frac: [full, full, [0.85, 1.0]], albedo: c },
        ],
        ObjectKind::Pedestrian => vec![
            Part { frac: [full, full, [0.0, 0.86]], albedo: c },
            Part { frac: [[0.25, 0.75], [0.25, 0.75], [0.86, 1.0]], albedo: [205, 160, 130] },
        ],
        ObjectKind::Cyclist => vec![
            Part { frac: [full, [0.4, 0.6], [0.0, 0.5]], albedo: TYRE },
            Part { frac: [[0.3, 0.7], full, [0.5, 1.0]], albedo: c },
        ],
        ObjectKind::Cone => vec![
            Part { frac: [full, full, [0.0, 0.12]], albedo: CONE_ORANGE },
            Part { frac: [[0.3, 0.7], [0.3, 0.7], [0.12, 1.0]], albedo: CONE_ORANGE },
        ],
        ObjectKind::Debris | ObjectKind::Barrier => vec![Part { frac: [full, full, full], albedo: c }],
    };
    for p in &parts {
        push_box(&o.bbox, &p.frac, p.albedo, class, object, out);
    }
}

/// The 12 triangles of a sub-box of `b`.
fn push_box(b: &Box3d, frac: &[[f64; 2]; 3], albedo: [u8; 3], class: CameraSegClass, object: u32, out: &mut Vec<Face>) {
    let (s, c) = b.heading.sin_cos();
    let corner = |i: usize, j: usize, k: usize| {
        let dx = (frac[0][i] - 0.5) * b.size.x;
        let dy = (frac[1][j] - 0.5) * b.size.y;
        let dz = (frac[2][k] - 0.5) * b.size.z;
        [b.center.x + c * dx - s * dy, b.center.y + s * dx + c * dy, b.center.z + dz]
    };
    // Quads as corner index triples (length, width, height ∈ {0, 1}).
    const QUADS: [[[usize; 3]; 4]; 6] = [
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], // bottom
        [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], // top
        [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], // right side
        [[0, 1, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1]], // left side
        [[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]], // rear
        [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]], // front
    ];
    for q in &QUADS {
        let p = q.map(|[i, j, k]| corner(i, j, k));
        out.push(Face { v: [p[0], p[1], p[2]], albedo, class, object });
        out.push(Face { v: [p[0], p[2], p[3]], albedo, class, object });
    }
}

/// A deterministic hash of an integer lattice point to `[0, 1)`.
#[inline]
fn hash2(x: i64, y: i64, seed: u64) -> f32 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ seed;
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// `floor` without the libm call (the dev profile does not inline it).
#[inline(always)]
fn fast_floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// The lattice values of the last value-noise cell looked up: neighbouring pixels mostly
/// share a cell, so a renderer keeps one per row and hashes 4× less (same values).
#[derive(Debug, Clone, Copy)]
pub struct NoiseCache {
    key: (i64, i64, u64),
    corners: [f32; 4],
}

impl Default for NoiseCache {
    fn default() -> Self {
        // Seed 0 is never used, so the first lookup always misses.
        NoiseCache { key: (0, 0, 0), corners: [0.0; 4] }
    }
}

/// Bilinear value noise at `cell` metres, in `[-1, 1]`.
#[inline(always)]
fn value_noise(x: f64, y: f64, cell: f64, seed: u64, cache: &mut NoiseCache) -> f32 {
    let (fx, fy) = (x / cell, y / cell);
    let (ix, iy) = (fast_floor(fx), fast_floor(fy));
    let (tx, ty) = ((fx - ix) as f32, (fy - iy) as f32);
    let (ix, iy) = (ix as i64, iy as i64);
    if cache.key != (ix, iy, seed) {
        cache.key = (ix, iy, seed);
        cache.corners =
            [hash2(ix, iy, seed), hash2(ix + 1, iy, seed), hash2(ix, iy + 1, seed), hash2(ix + 1, iy + 1, seed)];
    }
    let [h00, h10, h01, h11] = cache.corners;
    let a = h00 * (1.0 - tx) + h10 * tx;
    let b = h01 * (1.0 - tx) + h11 * tx;
    (a * (1.0 - ty) + b * ty) * 2.0 - 1.0
}

/// Texture factor of a surface at a world point: asphalt grain and patches on the ground,
/// leaf clumps on vegetation, weathering on buildings; 1 elsewhere.
pub fn texture(class: CameraSegClass, p: [f64; 3]) -> f32 {
    texture_cached(class, p, &mut NoiseCache::default())
}

/// [`texture`] with a [`NoiseCache`] kept between calls (identical values).
#[inline]
pub fn texture_cached(class: CameraSegClass, p: [f64; 3], cache: &mut NoiseCache) -> f32 {
    use CameraSegClass as C;
    match class {
        C::Road | C::Ground | C::Sidewalk => {
            let grain = hash2(fast_floor(p[0] * 20.0) as i64, fast_floor(p[1] * 20.0) as i64, 1) * 2.0 - 1.0;
            1.0 + 0.07 * grain + 0.08 * value_noise(p[0], p[1], 2.5, 2, cache)
        }
        C::LaneMarker | C::RoadMarker => {
            1.0 + 0.04 * (hash2(fast_floor(p[0] * 20.0) as i64, fast_floor(p[1] * 20.0) as i64, 3) * 2.0 - 1.0)
        }
        C::Vegetation => 1.0 + 0.25 * value_noise(p[0] + p[2], p[1] - p[2], 0.4, 4, cache),
        C::Building => 1.0 + 0.06 * value_noise(p[0] + p[1], p[2], 1.5, 5, cache),
        _ => 1.0,
    }
}

/// Sky colour for a world-frame viewing direction with elevation sine `up`: pale at the
/// horizon, deeper blue towards the zenith.
pub fn sky(up: f64) -> [u8; 3] {
    let t = up.clamp(0.0, 1.0).sqrt() as f32;
    let horizon = [205.0f32, 218.0, 232.0];
    let zenith = [80.0f32, 130.0, 205.0];
    [0, 1, 2].map(|i| (horizon[i] + (zenith[i] - horizon[i]) * t) as u8)
}

/// The colour of a lit surface: albedo × shade × texture, clamped.
#[inline]
pub fn lit(albedo: [u8; 3], factor: f32) -> [u8; 3] {
    albedo.map(|a| (a as f32 * factor).clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_bounded() {
        for i in 0..1000 {
            let p = [i as f64 * 0.37, i as f64 * -1.3, 0.0];
            let t = texture(CameraSegClass::Road, p);
            assert_eq!(t, texture(CameraSegClass::Road, p));
            assert!((0.8..=1.2).contains(&t), "{t}");
        }
        assert_eq!(texture(CameraSegClass::Car, [1.0, 2.0, 3.0]), 1.0);
    }
}
