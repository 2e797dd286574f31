//! A small CPU rasterizer for the synthetic cameras: perspective-correct z-buffer over an
//! undistorted pinhole image, near-plane clipping, deferred flat shading.
//!
//! Pipeline per image:
//! 1. *Setup* (rayon over faces): world → camera, clip against the near plane (x > [`NEAR`]),
//!    project to pinhole pixels, cull what misses the image, compute the flat shade factor.
//!    Output order equals input order, so everything after is deterministic.
//! 2. *Binning* into horizontal stripes, in face order.
//! 3. *Rasterization* (rayon over stripes): the faces of a stripe are drawn front to back
//!    (by their nearest vertex). For every row the covered span of pixel centres is solved
//!    from the three edge equations (no per-pixel edge tests), then `1/depth` — affine in
//!    screen space, hence perspective-correct, clamped to the face's own range — is tested
//!    against the z-buffer. Ties keep the earlier face in input order (an explicit tie rule,
//!    so the result depends neither on the drawing order nor on thread scheduling).
//!    Occlusion culling: every row is cut into `TILE`-pixel segments with a conservative
//!    farthest depth each; a face segment entirely behind it is skipped without per-pixel
//!    work (most of a city street is hidden behind the nearest façades).
//!
//! Shading reads the face id and depth per pixel afterwards (see `sim::camera`), so only
//! visible pixels are shaded.

use nalgebra::{Matrix3, Vector3};
use rayon::prelude::*;

use crate::scene::CameraSegClass;

/// Near clipping plane, metres along the optical axis.
pub const NEAR: f64 = 0.1;
/// Rows per rasterization stripe (the unit of parallel work).
const STRIPE_ROWS: usize = 16;
/// Pixels per occlusion-culling segment of a row.
const TILE: usize = 32;
/// Decals (lane and road markings) win depth ties against the road under them: their
/// `1/depth` is scaled up by this factor (≈ 2 cm at 100 m), like a polygon offset.
const DECAL_BIAS: f64 = 1.0 + 2e-4;

/// The undistorted pinhole image that is rasterized (pixel 0 spans `[0, 1)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pinhole {
    pub f_u: f64,
    pub f_v: f64,
    pub c_u: f64,
    pub c_v: f64,
    pub width: usize,
    pub height: usize,
}

/// A rigid map `p ↦ R·p + t` as plain arrays (the dev profile does not fully inline
/// nalgebra's generic code in hot loops).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rigid {
    pub r: [[f64; 3]; 3],
    pub t: [f64; 3],
}

impl Rigid {
    pub fn new(r: &Matrix3<f64>, t: &Vector3<f64>) -> Self {
        Rigid {
            r: [
                [r[(0, 0)], r[(0, 1)], r[(0, 2)]],
                [r[(1, 0)], r[(1, 1)], r[(1, 2)]],
                [r[(2, 0)], r[(2, 1)], r[(2, 2)]],
            ],
            t: [t.x, t.y, t.z],
        }
    }
    #[inline(always)]
    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let r = &self.r;
        [
            r[0][0] * p[0] + r[0][1] * p[1] + r[0][2] * p[2] + self.t[0],
            r[1][0] * p[0] + r[1][1] * p[1] + r[1][2] * p[2] + self.t[1],
            r[2][0] * p[0] + r[2][1] * p[1] + r[2][2] * p[2] + self.t[2],
        ]
    }
    /// The rotation alone.
    #[inline(always)]
    pub fn rotate(&self, p: [f64; 3]) -> [f64; 3] {
        let r = &self.r;
        [
            r[0][0] * p[0] + r[0][1] * p[1] + r[0][2] * p[2],
            r[1][0] * p[0] + r[1][1] * p[1] + r[1][2] * p[2],
            r[2][0] * p[0] + r[2][1] * p[1] + r[2][2] * p[2],
        ]
    }
}

/// One triangle to draw, in world coordinates, with what shading and labelling need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub v: [[f64; 3]; 3],
    /// Albedo, sRGB.
    pub albedo: [u8; 3],
    pub class: CameraSegClass,
    /// 1-based index of the scene object the face belongs to; 0 for the static world.
    pub object: u32,
}

/// A face after setup: screen-space vertices `(u, v, 1/depth)` and its shade.
#[derive(Debug, Clone, Copy)]
struct ScreenTri {
    p: [[f64; 3]; 3],
    /// Index into the faces given to [`rasterize`].
    face: u32,
    shade: f32,
    /// Depth-test bias ([`DECAL_BIAS`] for markings, else 1).
    bias: f64,
    /// Range of the biased `1/depth` over the triangle (its vertices).
    zmin: f64,
    zmax: f64,
}

/// Lighting: a sun direction (world frame, unit) with lambertian diffuse plus ambient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Light {
    pub sun: [f64; 3],
    pub ambient: f32,
    pub diffuse: f32,
}

impl Default for Light {
    fn default() -> Self {
        let s = [0.45f64, 0.3, 0.84];
        let n = (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).sqrt();
        Light { sun: [s[0] / n, s[1] / n, s[2] / n], ambient: 0.5, diffuse: 0.55 }
    }
}

/// The rasterized image: per pinhole pixel the winning face (or `u32::MAX` for none), its
/// `1/depth` (0 for none) and the face's shade factor.
#[derive(Debug, Clone)]
pub struct GBuffer {
    pub width: usize,
    pub height: usize,
    pub face: Vec<u32>,
    pub inv_depth: Vec<f32>,
    /// Shade factor per face index (only meaningful for faces that were drawn).
    pub shade: Vec<f32>,
}

/// Sentinel face id of an empty pixel.
pub const NO_FACE: u32 = u32::MAX;

/// Rasterizes `faces` as seen by a camera at `world_to_cam` (camera frame x forward, y left,
/// z up). `faces` is given as a length and an accessor so callers need not copy large static
/// worlds into one vector.
pub fn rasterize<F>(pinhole: &Pinhole, world_to_cam: &Rigid, light: &Light, n_faces: usize, face_at: F) -> GBuffer
where
    F: Fn(usize) -> Face + Sync,
{
    // The camera centre in world coordinates (for two-sided lighting): -Rᵀ t.
    let r = &world_to_cam.r;
    let t = &world_to_cam.t;
    let cam_pos = [
        -(r[0][0] * t[0] + r[1][0] * t[1] + r[2][0] * t[2]),
        -(r[0][1] * t[0] + r[1][1] * t[1] + r[2][1] * t[2]),
        -(r[0][2] * t[0] + r[1][2] * t[1] + r[2][2] * t[2]),
    ];
    let tris: Vec<ScreenTri> = (0..n_faces)
        .into_par_iter()
        .with_min_len(1024)
        .flat_map_iter(|i| {
            let (tris, n) = setup(pinhole, world_to_cam, light, &cam_pos, i as u32, &face_at(i));
            tris.into_iter().take(n)
        })
        .collect();

    let mut shade = vec![0.0f32; n_faces];
    for t in &tris {
        shade[t.face as usize] = t.shade;
    }

    let n_stripes = pinhole.height.div_ceil(STRIPE_ROWS);
    let mut bins: Vec<Vec<u32>> = vec![Vec::new(); n_stripes];
    for (i, t) in tris.iter().enumerate() {
        let (v0, v1) = v_range(t);
        let s0 = ((v0.max(0.0) as usize) / STRIPE_ROWS).min(n_stripes.saturating_sub(1));
        let s1 = ((v1.max(0.0) as usize) / STRIPE_ROWS).min(n_stripes.saturating_sub(1));
        for bin in &mut bins[s0..=s1] {
            bin.push(i as u32);
        }
    }

    let (w, h) = (pinhole.width, pinhole.height);
    let mut face = vec![NO_FACE; w * h];
    let mut inv_depth = vec![0.0f32; w * h];
    face.par_chunks_mut(STRIPE_ROWS * w)
        .zip(inv_depth.par_chunks_mut(STRIPE_ROWS * w))
        .zip(bins.par_iter())
        .enumerate()
        .for_each(|(s, ((face, depth), bin))| {
            let row0 = s * STRIPE_ROWS;
            let rows = face.len() / w.max(1);
            // Front to back: nearest vertex first, then input order (keys are unique, so the
            // order is deterministic).
            let mut order: Vec<(u64, u32)> =
                bin.iter().map(|&ti| (u64::MAX - tris[ti as usize].zmax.to_bits(), ti)).collect();
            order.sort_unstable();
            // f64 depth for the tests, f32 for storage: ties between coplanar faces are
            // resolved in f64, then stored.
            let mut zbuf = vec![0.0f64; rows * w];
            let mut coarse = Coarse::new(rows, w);
            for &(_, ti) in &order {
                let t = &tris[ti as usize];
                draw(t, ti, row0, rows, w, &mut zbuf, face, &mut coarse);
            }
            for (d, z) in depth.iter_mut().zip(&zbuf) {
                *d = *z as f32;
            }
        });
    // Faces hold the screen-triangle index during rasterization; map back to face ids.
    for f in face.iter_mut() {
        if *f != NO_FACE {
            *f = tris[*f as usize].face;
        }
    }
    GBuffer { width: w, height: h, face, inv_depth, shade }
}

fn v_range(t: &ScreenTri) -> (f64, f64) {
    let v = [t.p[0][1], t.p[1][1], t.p[2][1]];
    (v[0].min(v[1]).min(v[2]), v[0].max(v[1]).max(v[2]))
}

/// World → camera, near clipping, projection, culling and shading of one face: 0, 1 or 2
/// screen triangles (the first `n` of the array: no allocation per face).
fn setup(
    pin: &Pinhole,
    w2c: &Rigid,
    light: &Light,
    cam_pos: &[f64; 3],
    index: u32,
    f: &Face,
) -> ([ScreenTri; 2], usize) {
    const NONE: ([ScreenTri; 2], usize) =
        ([ScreenTri { p: [[0.0; 3]; 3], face: 0, shade: 0.0, bias: 1.0, zmin: 0.0, zmax: 0.0 }; 2], 0);
    let c = [w2c.apply(f.v[0]), w2c.apply(f.v[1]), w2c.apply(f.v[2])];
    if (c[0][0] <= NEAR && c[1][0] <= NEAR && c[2][0] <= NEAR) || c.iter().flatten().any(|x| !x.is_finite()) {
        return NONE;
    }
    // Sutherland–Hodgman against x = NEAR: a triangle becomes a triangle or a quad.
    let mut poly: [[f64; 3]; 4] = [[0.0; 3]; 4];
    let mut n = 0;
    for i in 0..3 {
        let (a, b) = (c[i], c[(i + 1) % 3]);
        let (ina, inb) = (a[0] > NEAR, b[0] > NEAR);
        if ina {
            poly[n] = a;
            n += 1;
        }
        if ina != inb {
            let s = (NEAR - a[0]) / (b[0] - a[0]);
            poly[n] = [NEAR, a[1] + s * (b[1] - a[1]), a[2] + s * (b[2] - a[2])];
            n += 1;
        }
    }
    let mut scr = [[0.0; 3]; 4];
    for i in 0..n {
        let p = poly[i];
        let iz = 1.0 / p[0];
        scr[i] = [pin.c_u - pin.f_u * p[1] * iz, pin.c_v - pin.f_v * p[2] * iz, iz];
    }
    let scr = &scr[..n];
    let (mut u0, mut u1, mut v0, mut v1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for p in scr {
        u0 = u0.min(p[0]);
        u1 = u1.max(p[0]);
        v0 = v0.min(p[1]);
        v1 = v1.max(p[1]);
    }
    if u1 < 0.0 || v1 < 0.0 || u0 > pin.width as f64 || v0 > pin.height as f64 {
        return NONE;
    }
    let shade = shade_of(light, cam_pos, f);
    let bias =
        if matches!(f.class, CameraSegClass::LaneMarker | CameraSegClass::RoadMarker) { DECAL_BIAS } else { 1.0 };
    let mut out = NONE;
    for k in 1..n - 1 {
        let p = [scr[0], scr[k], scr[k + 1]];
        let zmin = p[0][2].min(p[1][2]).min(p[2][2]) * bias;
        let zmax = p[0][2].max(p[1][2]).max(p[2][2]) * bias;
        out.0[k - 1] = ScreenTri { p, face: index, shade, bias, zmin, zmax };
    }
    out.1 = n - 2;
    out
}

/// Two-sided lambertian shade: the normal is flipped to face the camera.
fn shade_of(light: &Light, cam_pos: &[f64; 3], f: &Face) -> f32 {
    let e1 = sub(f.v[1], f.v[0]);
    let e2 = sub(f.v[2], f.v[0]);
    let mut n = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
    let len = dot(n, n).sqrt();
    if len == 0.0 {
        return light.ambient;
    }
    n = [n[0] / len, n[1] / len, n[2] / len];
    if dot(n, sub(*cam_pos, f.v[0])) < 0.0 {
        n = [-n[0], -n[1], -n[2]];
    }
    light.ambient + light.diffuse * dot(n, light.sun).max(0.0) as f32
}

#[inline(always)]
fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline(always)]
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Draws one screen triangle into a stripe of `rows` rows starting at image row `row0`.
#[allow(clippy::too_many_arguments)]
fn draw(
    t: &ScreenTri,
    id: u32,
    row0: usize,
    rows: usize,
    w: usize,
    zbuf: &mut [f64],
    face: &mut [u32],
    coarse: &mut Coarse,
) {
    let [a, b, c] = t.p;
    let bias = t.bias;
    // Signed doubled area; orient counter-clockwise in (u, v) so inside means all edges ≥ 0.
    let area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
    if area == 0.0 || !area.is_finite() {
        return;
    }
    let (b, c) = if area < 0.0 { (c, b) } else { (b, c) };
    let area = area.abs();
    // Edge i: E(u, v) = A u + B v + C, ≥ 0 inside.
    let edges = [edge(a, b), edge(b, c), edge(c, a)];
    // 1/depth as a plane over (u, v) via barycentrics: iz = Σ λ_i iz_i, λ from the edges
    // opposite each vertex (edge bc → a, ca → b, ab → c).
    let (ea, eb, ec) = (edges[1], edges[2], edges[0]);
    let za = a[2] / area;
    let zb = b[2] / area;
    let zc = c[2] / area;
    let pa = ea[0] * za + eb[0] * zb + ec[0] * zc;
    let pb = ea[1] * za + eb[1] * zb + ec[1] * zc;
    let pc = ea[2] * za + eb[2] * zb + ec[2] * zc;

    let vmin = a[1].min(b[1]).min(c[1]);
    let vmax = a[1].max(b[1]).max(c[1]);
    // Rows whose centre y + 0.5 lies in [vmin, vmax], within the stripe.
    let r0 = (-floor(0.5 - vmin)).max(row0 as f64) as usize;
    let r1f = floor(vmax - 0.5).min((row0 + rows) as f64 - 1.0);
    if r1f < r0 as f64 {
        return;
    }
    let r1 = r1f as usize;
    let wf = w as f64;
    // Whole-triangle occlusion test against the stripe's columns of segments.
    let umin = a[0].min(b[0]).min(c[0]).max(0.0);
    let umax = a[0].max(b[0]).max(c[0]).min(wf - 1.0);
    if umax < umin {
        return;
    }
    if (umin as usize / TILE..=umax as usize / TILE).all(|tile| coarse.column_far(tile) > t.zmax) {
        return;
    }
    // -1/A per edge, so the span bounds need no division per row.
    let inv = edges.map(|e| if e[0] != 0.0 { -1.0 / e[0] } else { 0.0 });
    for row in r0..=r1 {
        let yc = row as f64 + 0.5;
        let (mut lo, mut hi) = (0.5f64, wf - 0.5);
        for (e, r) in edges.iter().zip(&inv) {
            let k = e[1] * yc + e[2];
            if e[0] > 0.0 {
                lo = lo.max(k * r);
            } else if e[0] < 0.0 {
                hi = hi.min(k * r);
            } else if k < 0.0 {
                hi = -1.0;
            }
        }
        if hi < lo {
            continue;
        }
        let x0 = (-floor(0.5 - lo)).max(0.0) as usize;
        let x1f = floor(hi - 0.5).min(wf - 1.0);
        if x1f < x0 as f64 {
            continue;
        }
        let x1 = x1f as usize;
        let r = row - row0;
        let base = r * w;
        let row_z = pb * yc + pc;
        let (zlo, zhi) = (t.zmin, t.zmax);
        let mut x = x0;
        while x <= x1 {
            let tile = x / TILE;
            let (t0, t1) = (tile * TILE, ((tile + 1) * TILE).min(w));
            let end = (t1 - 1).min(x1);
            let ci = r * coarse.per_row + tile;
            if coarse.far[ci] > zhi {
                x = end + 1;
                continue;
            }
            if coarse.dirty[ci] {
                coarse.far[ci] = zbuf[base + t0..base + t1].iter().fold(f64::INFINITY, |m, &z| m.min(z));
                coarse.dirty[ci] = false;
                coarse.column_dirty[tile] = true;
                if coarse.far[ci] > zhi {
                    x = end + 1;
                    continue;
                }
            }
            // Slices, not indices: the span loop runs without bounds checks.
            let span = base + x..base + end + 1;
            let mut wrote = false;
            let mut far = f64::INFINITY;
            for ((z, f), px) in zbuf[span.clone()].iter_mut().zip(&mut face[span]).zip(x..) {
                let iz = ((pa * (px as f64 + 0.5) + row_z) * bias).clamp(zlo, zhi);
                if iz > *z || (iz == *z && id < *f) {
                    *z = iz;
                    *f = id;
                    wrote = true;
                }
                far = far.min(*z);
            }
            if x == t0 && end + 1 == t1 {
                coarse.far[ci] = far;
                coarse.dirty[ci] = false;
                coarse.column_dirty[tile] = true;
            } else if wrote {
                coarse.dirty[ci] = true;
            }
            x = end + 1;
        }
    }
}

/// Conservative farthest `1/depth` of every `TILE`-pixel segment of the rows of a stripe:
/// never above the true minimum of the z-buffer over the segment; `dirty` marks segments
/// written since it was last made exact. Per column of segments (all rows of the stripe),
/// the minimum of `far`, recomputed when needed after a change.
struct Coarse {
    per_row: usize,
    far: Vec<f64>,
    dirty: Vec<bool>,
    column: Vec<f64>,
    column_dirty: Vec<bool>,
}

impl Coarse {
    fn new(rows: usize, w: usize) -> Self {
        let per_row = w.div_ceil(TILE);
        Coarse {
            per_row,
            far: vec![0.0; rows * per_row],
            dirty: vec![false; rows * per_row],
            column: vec![0.0; per_row],
            column_dirty: vec![false; per_row],
        }
    }

    /// Conservative farthest `1/depth` of column `tile` over the stripe.
    #[inline]
    fn column_far(&mut self, tile: usize) -> f64 {
        if self.column_dirty[tile] {
            self.column_dirty[tile] = false;
            self.column[tile] = self.far[tile..].iter().step_by(self.per_row).fold(f64::INFINITY, |m, &z| m.min(z));
        }
        self.column[tile]
    }
}

/// `floor` without the libm call (not inlined without SSE4.1); exact for |x| < 2⁵².
#[inline(always)]
fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// Edge from `p` to `q` as `[A, B, C]` with `A u + B v + C ≥ 0` on the inner side of a
/// counter-clockwise (in u, v) triangle.
#[inline(always)]
fn edge(p: [f64; 3], q: [f64; 3]) -> [f64; 3] {
    let a = -(q[1] - p[1]);
    let b = q[0] - p[0];
    [a, b, -(a * p[0] + b * p[1])]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> Pinhole {
        Pinhole { f_u: 50.0, f_v: 50.0, c_u: 32.0, c_v: 24.0, width: 64, height: 48 }
    }

    fn ident() -> Rigid {
        Rigid::new(&Matrix3::identity(), &Vector3::zeros())
    }

    fn face(v: [[f64; 3]; 3], object: u32) -> Face {
        Face { v, albedo: [100, 100, 100], class: CameraSegClass::Car, object }
    }

    #[test]
    fn nearer_face_wins_and_depth_is_exact() {
        // Two squares facing the camera at 10 m and 5 m; the nearer one is drawn first.
        let quad = |x: f64, o: u32| {
            [
                face([[x, 1.0, 1.0], [x, -1.0, 1.0], [x, -1.0, -1.0]], o),
                face([[x, 1.0, 1.0], [x, -1.0, -1.0], [x, 1.0, -1.0]], o),
            ]
        };
        let mut faces = quad(5.0, 1).to_vec();
        faces.extend(quad(10.0, 2));
        let g = rasterize(&pin(), &ident(), &Light::default(), faces.len(), |i| faces[i]);
        let c = 24 * 64 + 32;
        assert!(g.face[c] == 0 || g.face[c] == 1, "{}", g.face[c]);
        assert!((g.inv_depth[c] - 0.2).abs() < 1e-6);
        assert_eq!(g.face[0], NO_FACE);
    }

    #[test]
    fn triangle_crossing_the_near_plane_is_clipped() {
        // A ground strip from behind the camera to far ahead: must cover the lower centre
        // and nothing above the horizon.
        let faces = [
            face([[-5.0, 2.0, -1.0], [50.0, 2.0, -1.0], [50.0, -2.0, -1.0]], 0),
            face([[-5.0, 2.0, -1.0], [50.0, -2.0, -1.0], [-5.0, -2.0, -1.0]], 0),
        ];
        let g = rasterize(&pin(), &ident(), &Light::default(), 2, |i| faces[i]);
        for row in 0..24 {
            for col in 0..64 {
                assert_eq!(g.face[row * 64 + col], NO_FACE, "above horizon at {row},{col}");
            }
        }
        // Bottom rows see the ground about 2 m ahead: covered across the strip's width.
        for col in 20..44 {
            assert_ne!(g.face[47 * 64 + col], NO_FACE, "bottom row at {col}");
            let depth = 1.0 / g.inv_depth[47 * 64 + col] as f64;
            assert!((depth - 50.0 / 23.5).abs() < 1e-3, "{depth}");
        }
    }
}
