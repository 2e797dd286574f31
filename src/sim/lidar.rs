//! The five Waymo LiDARs: calibrations shaped like the real rig and a ray-casting model that
//! writes range images (range, intensity, elongation, no-label-zone), an optional second
//! return, TOP's per-pixel pose and TOP's segmentation, plus per-object point counts.
//!
//! Pixel (h, w) is cast along exactly the direction `geom::range_image_to_points` derives
//! for it (`geom::inclinations` / `geom::azimuths`), from the pose the reader will apply,
//! so a range image converts back onto the surfaces its rays hit.
//!
//! Conventions chosen here (Waymo does not document them all):
//! - A pixel without a hit before the maximum range (TOP 75 m, others 20 m) is all zeros.
//! - No-label-zone channel: `1.0` if the hit lies inside one of
//!   [`LidarOptions::no_label_zones`] (world x/y polygons), `-1.0` otherwise.
//! - TOP spins once per 0.1 s; column `w` fires at fraction `(w + 0.5)/W` of the sweep,
//!   which ends at the snapshot time. Its pixel pose interpolates the ego pose between
//!   [`LidarOptions::sweep_start_pose`] and the snapshot's pose. Objects move during the
//!   sweep too: a TOP column sees each object where its velocity put it when the column
//!   fired (exactly, per column), so fast objects are skewed as on a real spinning lidar,
//!   while their labels stay at the snapshot time. The short-range lasers are cast from the
//!   snapshot's pose and time (they have no pose image, so readers use the frame pose).
//! - Return 2 is the first non-vegetation surface behind a vegetation (canopy) hit; all
//!   other pixels have no second return.
//! - Point counts cover return-1 points on the object that lie inside its box.

use nalgebra::Vector3;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::bvh::{Aabb, Bvh, Ray, TriangleMesh, V3, add, dot, normalized, sub};
use super::snapshot::{ObjectKind, SceneObject, Snapshot};
use crate::geom::polyline::P2;
use crate::geom::{GeomError, azimuths, inclinations, rotation_from_rpy, rotation_of, transform_from_rpy_xyz};
use crate::scene::{BeamInclination, LaserFrame, LaserName, LidarCalibration, LidarSegClass, RangeImage, Transform};

/// Range images' height × width for every laser: full Waymo size or scaled down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LidarScale {
    /// TOP `[H, W]` (Waymo: 64 × 2650).
    pub top: [usize; 2],
    /// FRONT, SIDE_LEFT, SIDE_RIGHT, REAR `[H, W]` (Waymo: 200 × 600).
    pub short: [usize; 2],
}

impl LidarScale {
    /// Waymo's shapes.
    pub fn full() -> Self {
        LidarScale { top: [64, 2650], short: [200, 600] }
    }
    /// Waymo's shapes with heights divided by `h_div` and widths by `w_div` (at least 1 each).
    pub fn divided(h_div: usize, w_div: usize) -> Self {
        let d = |n: usize, k: usize| (n / k.max(1)).max(1);
        let f = Self::full();
        LidarScale {
            top: [d(f.top[0], h_div), d(f.top[1], w_div)],
            short: [d(f.short[0], h_div), d(f.short[1], w_div)],
        }
    }
    /// A small preset for tests: TOP 8 × 165, others 25 × 37.
    pub fn tiny() -> Self {
        Self::divided(8, 16)
    }
    /// `[H, W]` of one laser.
    pub fn shape(&self, laser: LaserName) -> [usize; 2] {
        if laser == LaserName::Top { self.top } else { self.short }
    }
}

/// TOP's lowest and highest beam, radians.
const TOP_MIN_DEG: f64 = -17.6;
const TOP_MAX_DEG: f64 = 2.4;
/// Maximum ranges, m.
pub const TOP_MAX_RANGE: f64 = 75.0;
pub const SHORT_MAX_RANGE: f64 = 20.0;
/// TOP's sweep time, s.
pub const SWEEP_SECONDS: f64 = 0.1;

/// TOP's `h` beam inclinations, ascending from −17.6° to +2.4°, spaced more densely near the
/// top (the horizon) where far objects need the resolution, as the real sensor.
pub fn top_inclinations(h: usize) -> Vec<f64> {
    if h == 1 {
        return vec![0.0];
    }
    (0..h)
        .map(|i| {
            // u = 0 at the highest beam; spacing grows with u^1.6 towards the ground.
            let u = 1.0 - i as f64 / (h - 1) as f64;
            (TOP_MAX_DEG - (TOP_MAX_DEG - TOP_MIN_DEG) * u.powf(1.6)).to_radians()
        })
        .collect()
}

/// A short-range laser's mount: its spin axis points horizontally into the car, so its
/// −90°..+30° beams cover a dome facing `outward` (vehicle-frame heading, radians).
fn outward_mount(outward: f64, pos: [f64; 3]) -> Transform {
    let out = Vector3::new(outward.cos(), outward.sin(), 0.0);
    let x = Vector3::new(0.0, 0.0, 1.0);
    let z = -out;
    let y = z.cross(&x);
    let mut r = nalgebra::Matrix3::zeros();
    r.set_column(0, &x);
    r.set_column(1, &y);
    r.set_column(2, &z);
    crate::geom::rigid_transform(&r, &Vector3::new(pos[0], pos[1], pos[2]))
}

/// The five calibrations (TOP, FRONT, SIDE_LEFT, SIDE_RIGHT, REAR) for range images of
/// `scale`'s shapes: TOP on the roof with explicit inclinations, the others uniform −90°..+30°.
pub fn lidar_rig(scale: &LidarScale) -> Vec<LidarCalibration> {
    let top_values = top_inclinations(scale.top[0]);
    let top = LidarCalibration {
        laser: LaserName::Top,
        extrinsic: transform_from_rpy_xyz(0.0012, -0.0021, 0.0065, 1.43, 0.0, 2.184),
        beam_inclination: BeamInclination {
            min: top_values.first().copied().unwrap_or(0.0),
            max: top_values.last().copied().unwrap_or(0.0),
            values: Some(top_values),
        },
    };
    let short = |laser, outward: f64, pos| LidarCalibration {
        laser,
        extrinsic: outward_mount(outward, pos),
        beam_inclination: BeamInclination { min: (-90f64).to_radians(), max: 30f64.to_radians(), values: None },
    };
    use std::f64::consts::{FRAC_PI_2, PI};
    vec![
        top,
        short(LaserName::Front, 0.0, [4.07, 0.0, 0.69]),
        short(LaserName::SideLeft, FRAC_PI_2, [3.25, 1.03, 0.98]),
        short(LaserName::SideRight, -FRAC_PI_2, [3.25, -1.03, 0.98]),
        short(LaserName::Rear, PI, [-1.15, 0.0, 0.46]),
    ]
}

/// Settings of the LiDAR model.
#[derive(Debug, Clone, Default)]
pub struct LidarOptions {
    /// Produce return 2 (behind vegetation).
    pub second_return: bool,
    /// World x/y polygons whose points get no-label-zone = 1.
    pub no_label_zones: Vec<Vec<P2>>,
    /// Ego pose (vehicle → world) when TOP's sweep began, 0.1 s before the snapshot; `None`
    /// means the ego stood still.
    pub sweep_start_pose: Option<Transform>,
    /// Overrides the maximum range of every laser, m.
    pub max_range: Option<f64>,
}

/// One part of an object's shape: an upright box in world coordinates.
#[derive(Debug, Clone, Copy)]
struct Part {
    object: usize,
    centre: V3,
    half: V3,
    cos: f64,
    sin: f64,
    /// The object's velocity: at time offset `dt` the part is centred at `centre + vel·dt`.
    vel: V3,
}

impl Part {
    fn at(&self, dt: f64) -> Part {
        Part { centre: add(self.centre, [self.vel[0] * dt, self.vel[1] * dt, self.vel[2] * dt]), ..*self }
    }
}

/// Inset of shape parts from the label box, so every hit lies strictly inside the box.
const PART_INSET: f64 = 0.002;

/// Parts of one object, as fractions of its box: (centre offset along, across, up; size).
fn shape_parts(kind: ObjectKind) -> &'static [([f64; 3], [f64; 3])] {
    match kind {
        // Body over the full footprint, a narrower cabin set back on top.
        ObjectKind::Car => &[([0.0, 0.0, -0.2], [1.0, 1.0, 0.6]), ([-0.08, 0.0, 0.3], [0.55, 0.92, 0.4])],
        // People are thinner than their boxes.
        ObjectKind::Pedestrian => &[([0.0, 0.0, 0.0], [0.6, 0.7, 1.0])],
        ObjectKind::Cyclist => &[([0.0, 0.0, -0.25], [1.0, 0.4, 0.5]), ([0.0, 0.0, 0.25], [0.4, 0.7, 0.5])],
        // A cone: a wide base and a narrow top.
        ObjectKind::Cone => &[([0.0, 0.0, -0.4], [1.0, 1.0, 0.2]), ([0.0, 0.0, 0.1], [0.45, 0.45, 0.8])],
        ObjectKind::Truck | ObjectKind::Bus | ObjectKind::StalledTruck | ObjectKind::Debris | ObjectKind::Barrier => {
            &[([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])]
        }
    }
}

/// The dynamic objects of one snapshot as box parts with a small BVH; build once per
/// snapshot and share between the lasers.
#[derive(Debug, Clone)]
pub struct ObjectScene {
    parts: Vec<Part>,
    bvh: Bvh,
}

impl ObjectScene {
    pub fn new(objects: &[SceneObject]) -> ObjectScene {
        let mut parts = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            let b = &o.bbox;
            let (sin, cos) = b.heading.sin_cos();
            for (off, size) in shape_parts(o.kind) {
                let local = [off[0] * b.size.x, off[1] * b.size.y, off[2] * b.size.z];
                let centre = [
                    b.center.x + cos * local[0] - sin * local[1],
                    b.center.y + sin * local[0] + cos * local[1],
                    b.center.z + local[2],
                ];
                let half = [
                    (size[0] * b.size.x / 2.0 - PART_INSET).max(PART_INSET),
                    (size[1] * b.size.y / 2.0 - PART_INSET).max(PART_INSET),
                    (size[2] * b.size.z / 2.0 - PART_INSET).max(PART_INSET),
                ];
                let vel = [o.velocity.x, o.velocity.y, o.velocity.z];
                parts.push(Part { object: i, centre, half, cos, sin, vel });
            }
        }
        let boxes: Vec<Aabb> = parts
            .iter()
            .map(|p| {
                let ex = p.cos.abs() * p.half[0] + p.sin.abs() * p.half[1];
                let ey = p.sin.abs() * p.half[0] + p.cos.abs() * p.half[1];
                let e = [ex, ey, p.half[2]];
                // Cover every position of the part over one sweep before the snapshot.
                let (a, b) = (p.at(-SWEEP_SECONDS).centre, p.centre);
                let lo = [0, 1, 2].map(|k| a[k].min(b[k]) - e[k]);
                let hi = [0, 1, 2].map(|k| a[k].max(b[k]) + e[k]);
                Aabb { min: lo, max: hi }
            })
            .collect();
        ObjectScene { bvh: Bvh::build(&boxes), parts }
    }

    /// The closest object hit before `t_max`: (t, object index, unit normal facing the ray).
    pub fn intersect(&self, ray: &Ray, t_max: f64) -> Option<(f64, usize, V3)> {
        self.intersect_at(ray, t_max, 0.0)
    }

    /// [`ObjectScene::intersect`] with every object moved by its velocity over `dt` seconds
    /// (`-0.1 ≤ dt ≤ 0`: during the sweep that ends at the snapshot).
    pub fn intersect_at(&self, ray: &Ray, t_max: f64, dt: f64) -> Option<(f64, usize, V3)> {
        let part = |i: usize| if dt == 0.0 { self.parts[i] } else { self.parts[i].at(dt) };
        let (t, p) = self.bvh.closest(ray, 0.0, t_max, |i, _| ray_box(&part(i), ray).map(|(t, _)| t))?;
        let (_, normal) = ray_box(&part(p), ray)?;
        Some((t, self.parts[p].object, normal))
    }
}

/// Ray ∩ upright box in the box frame (slabs); the entry distance and world normal. A ray
/// starting inside the box does not hit it.
#[inline]
fn ray_box(p: &Part, ray: &Ray) -> Option<(f64, V3)> {
    let d = sub(ray.origin, p.centre);
    let o = [p.cos * d[0] + p.sin * d[1], -p.sin * d[0] + p.cos * d[1], d[2]];
    let v = ray.dir;
    let dir = [p.cos * v[0] + p.sin * v[1], -p.sin * v[0] + p.cos * v[1], v[2]];
    let (mut t0, mut t1, mut axis) = (f64::NEG_INFINITY, f64::INFINITY, 0);
    for k in 0..3 {
        if dir[k] == 0.0 {
            if o[k].abs() > p.half[k] {
                return None;
            }
            continue;
        }
        let inv = 1.0 / dir[k];
        let (a, b) = ((-p.half[k] - o[k]) * inv, (p.half[k] - o[k]) * inv);
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        if lo > t0 {
            t0 = lo;
            axis = k;
        }
        t1 = t1.min(hi);
    }
    if t0 > t1 || t0 <= 0.0 {
        return None;
    }
    let mut n_local = [0.0; 3];
    n_local[axis] = -dir[axis].signum();
    let n = [p.cos * n_local[0] - p.sin * n_local[1], p.sin * n_local[0] + p.cos * n_local[1], n_local[2]];
    Some((t0, n))
}

/// One simulated laser: its frame and how many return-1 points hit each object.
#[derive(Debug, Clone)]
pub struct LidarSim {
    pub frame: LaserFrame,
    /// Per `snapshot.objects` index: return-1 points on the object inside its box.
    pub points_in_box: Vec<u32>,
}

/// All lasers of a rig for one snapshot.
#[derive(Debug, Clone)]
pub struct RigSim {
    /// In the rig's order.
    pub lasers: Vec<LaserFrame>,
    /// Per object: points of all lasers (`num_lidar_points_in_box`).
    pub points_in_box: Vec<u32>,
    /// Per object: TOP points only (`num_top_lidar_points_in_box`).
    pub top_points_in_box: Vec<u32>,
}

/// Simulates every laser of `rig` (from [`lidar_rig`] with the same `scale`).
pub fn simulate_rig(
    mesh: &TriangleMesh,
    snapshot: &Snapshot,
    rig: &[LidarCalibration],
    scale: &LidarScale,
    options: &LidarOptions,
    rng: &mut ChaCha8Rng,
) -> Result<RigSim, GeomError> {
    let objects = ObjectScene::new(&snapshot.objects);
    let n = snapshot.objects.len();
    let mut out = RigSim { lasers: Vec::new(), points_in_box: vec![0; n], top_points_in_box: vec![0; n] };
    for calib in rig {
        let sim = simulate_lidar(mesh, &objects, snapshot, calib, scale.shape(calib.laser), options, rng)?;
        for (i, c) in sim.points_in_box.iter().enumerate() {
            out.points_in_box[i] += c;
            if calib.laser == LaserName::Top {
                out.top_points_in_box[i] += c;
            }
        }
        out.lasers.push(sim.frame);
    }
    Ok(out)
}

/// What a ray hit.
#[derive(Debug, Clone, Copy)]
struct Surface {
    t: f64,
    normal: V3,
    reflectivity: f32,
    class: LidarSegClass,
    /// Instance id (objects) or 0.
    instance: i32,
    /// Index into `snapshot.objects`.
    object: Option<usize>,
}

/// Everything one pixel produces.
#[derive(Debug, Clone, Copy, Default)]
struct PixelOut {
    r1: [f32; 4],
    r2: [f32; 4],
    seg1: [i32; 2],
    seg2: [i32; 2],
    /// Object counted for return 1.
    counted: Option<usize>,
}

/// Roll, pitch, yaw, x, y, z of a rigid transform (inverse of `rotation_from_rpy`).
fn rpy_xyz(t: &Transform) -> [f64; 6] {
    let m = t.matrix();
    let pitch = (-m[(2, 0)]).clamp(-1.0, 1.0).asin();
    [m[(2, 1)].atan2(m[(2, 2)]), pitch, m[(1, 0)].atan2(m[(0, 0)]), m[(0, 3)], m[(1, 3)], m[(2, 3)]]
}

fn lerp_pose(a: &[f64; 6], b: &[f64; 6], f: f64) -> [f64; 6] {
    let mut out = [0.0; 6];
    for k in 0..6 {
        let d = if k < 3 { crate::geom::normalize_angle(b[k] - a[k]) } else { b[k] - a[k] };
        out[k] = a[k] + d * f;
    }
    out
}

/// A rotation and translation as plain arrays.
#[derive(Clone, Copy)]
struct Rigid {
    r: [[f64; 3]; 3],
    t: V3,
}

impl Rigid {
    fn from_transform(t: &Transform) -> Rigid {
        let m = rotation_of(t);
        let tr = t.translation();
        Rigid { r: [0, 1, 2].map(|i| [m[(i, 0)], m[(i, 1)], m[(i, 2)]]), t: [tr.x, tr.y, tr.z] }
    }
    fn rotate(&self, v: V3) -> V3 {
        [dot(self.r[0], v), dot(self.r[1], v), dot(self.r[2], v)]
    }
    fn apply(&self, v: V3) -> V3 {
        add(self.rotate(v), self.t)
    }
}

/// SplitMix64: a per-pixel hash, so noise does not depend on rayon's scheduling.
fn hash_unit(seed: u64, index: u64) -> f64 {
    let mut z = seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Even-odd point-in-polygon test.
fn in_polygon(p: &P2, poly: &[P2]) -> bool {
    let mut inside = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + n - 1) % n]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
    }
    inside
}

/// Simulates one laser for a snapshot: a `[H, W]` range image (`shape`) per return, TOP's
/// pixel poses and segmentation, and per-object point counts. `mesh` is the snapshot's
/// static world ([`TriangleMesh::new`]), `objects` its [`ObjectScene`]. Draws one value from
/// `rng` (the noise seed); the result does not depend on the number of threads.
pub fn simulate_lidar(
    mesh: &TriangleMesh,
    objects: &ObjectScene,
    snapshot: &Snapshot,
    calib: &LidarCalibration,
    shape: [usize; 2],
    options: &LidarOptions,
    rng: &mut ChaCha8Rng,
) -> Result<LidarSim, GeomError> {
    let [height, width] = shape;
    let is_top = calib.laser == LaserName::Top;
    let seed: u64 = rng.random();
    let incl = inclinations(calib, height)?;
    let az = azimuths(&calib.extrinsic, width);
    let ext = Rigid::from_transform(&calib.extrinsic);
    let max_range = options.max_range.unwrap_or(if is_top { TOP_MAX_RANGE } else { SHORT_MAX_RANGE });

    // Per column: the vehicle pose its rays start from. For TOP it is stored (as f32) in the
    // pose image, and rays use the f32 values so the reader reproduces them exactly.
    let end = rpy_xyz(&snapshot.ego_pose);
    let start = options.sweep_start_pose.as_ref().map(rpy_xyz).unwrap_or(end);
    let col_pose: Vec<([f32; 6], Rigid)> = (0..width)
        .map(|w| {
            if is_top {
                let p = lerp_pose(&start, &end, (w as f64 + 0.5) / width as f64).map(|v| v as f32);
                let r = rotation_from_rpy(p[0] as f64, p[1] as f64, p[2] as f64);
                let t = crate::geom::rigid_transform(&r, &Vector3::new(p[3] as f64, p[4] as f64, p[5] as f64));
                (p, Rigid::from_transform(&t))
            } else {
                ([0.0; 6], Rigid::from_transform(&snapshot.ego_pose))
            }
        })
        .collect();
    let row_dir: Vec<(f64, f64)> = incl.iter().map(|i| (i.cos(), i.sin())).collect();
    let col_dir: Vec<(f64, f64)> = az.iter().map(|a| (a.cos(), a.sin())).collect();

    // When each column fired, relative to the snapshot (TOP with a sweep only).
    let sweeping = is_top && options.sweep_start_pose.is_some();
    let col_dt = |w: usize| if sweeping { -(1.0 - (w as f64 + 0.5) / width as f64) * SWEEP_SECONDS } else { 0.0 };
    let cast = |ray: &Ray, t_min: f64, skip_vegetation: bool, dt: f64| -> Option<Surface> {
        let mut from = t_min;
        let mut stat = None;
        // Skipping vegetation (for return 2) walks through the canopy's triangles.
        for _ in 0..16 {
            match mesh.intersect(ray, from, max_range) {
                Some(h) if skip_vegetation && mesh.material(h.triangle).lidar_class == LidarSegClass::Vegetation => {
                    from = h.t + 1e-4;
                }
                other => {
                    stat = other;
                    break;
                }
            }
        }
        let stat_t = stat.map_or(max_range, |h| h.t);
        if let Some((t, obj, normal)) = objects.intersect_at(ray, stat_t, dt)
            && t >= t_min
        {
            let o = &snapshot.objects[obj];
            return Some(Surface {
                t,
                normal,
                reflectivity: object_reflectivity(o.kind),
                class: o.kind.lidar_class(),
                instance: o.instance as i32,
                object: Some(obj),
            });
        }
        stat.map(|h| {
            let mat = mesh.material(h.triangle);
            Surface {
                t: h.t,
                normal: h.normal,
                reflectivity: mat.reflectivity,
                class: mat.lidar_class,
                instance: 0,
                object: None,
            }
        })
    };

    let channels = |s: &Surface, ray: &Ray, idx: u64| -> ([f32; 4], [i32; 2], f64) {
        let range = s.t as f32;
        let cos = dot(s.normal, ray.dir).abs();
        let noise = 1.0 + 0.06 * (hash_unit(seed, idx) - 0.5);
        let intensity = (s.reflectivity as f64 * cos * noise).max(0.0) as f32;
        let vegetation = if s.class == LidarSegClass::Vegetation { 0.25 } else { 0.0 };
        let elongation = (0.03 + 0.3 * (1.0 - cos) + vegetation) as f32;
        // The point as the reader will reconstruct it (f32 range).
        let p = ray.at(range as f64);
        let nlz = options.no_label_zones.iter().any(|z| in_polygon(&P2::new(p[0], p[1]), z));
        (
            [range, intensity, elongation, if nlz { 1.0 } else { -1.0 }],
            [s.instance, s.class.value() as i32],
            range as f64,
        )
    };

    let rows: Vec<Vec<PixelOut>> = (0..height)
        .into_par_iter()
        .map(|h| {
            let (ci, si) = row_dir[h];
            (0..width)
                .map(|w| {
                    let (ca, sa) = col_dir[w];
                    let dir_v = ext.rotate([ci * ca, ci * sa, si]);
                    let pose = &col_pose[w].1;
                    let ray = Ray { origin: pose.apply(ext.t), dir: normalized(pose.rotate(dir_v)) };
                    let mut px = PixelOut::default();
                    let idx = (h * width + w) as u64;
                    let dt = col_dt(w);
                    let Some(s1) = cast(&ray, 0.0, false, dt) else { return px };
                    let (c1, seg1, r1) = channels(&s1, &ray, idx * 2);
                    px.r1 = c1;
                    px.seg1 = seg1;
                    if let Some(obj) = s1.object {
                        let p = ray.at(r1);
                        // Counted against the label box, at the snapshot time (as Waymo's counts).
                        if snapshot.objects[obj].bbox.contains_point(&Vector3::new(p[0], p[1], p[2])) {
                            px.counted = Some(obj);
                        }
                    }
                    if options.second_return
                        && s1.class == LidarSegClass::Vegetation
                        && let Some(s2) = cast(&ray, s1.t + 0.05, true, dt)
                    {
                        let (c2, seg2, _) = channels(&s2, &ray, idx * 2 + 1);
                        px.r2 = c2;
                        px.seg2 = seg2;
                    }
                    px
                })
                .collect()
        })
        .collect();

    let mut frame = LaserFrame::new(calib.laser);
    frame.calibration = Some(calib.clone());
    let mut r1 = RangeImage::<f32>::zeros(height, width, 4);
    let mut r2 = RangeImage::<f32>::zeros(height, width, 4);
    let mut seg1 = RangeImage::<i32>::zeros(height, width, 2);
    let mut seg2 = RangeImage::<i32>::zeros(height, width, 2);
    let mut points_in_box = vec![0u32; snapshot.objects.len()];
    for (h, row) in rows.iter().enumerate() {
        for (w, px) in row.iter().enumerate() {
            let i = h * width + w;
            r1.values[i * 4..i * 4 + 4].copy_from_slice(&px.r1);
            r2.values[i * 4..i * 4 + 4].copy_from_slice(&px.r2);
            seg1.values[i * 2..i * 2 + 2].copy_from_slice(&px.seg1);
            seg2.values[i * 2..i * 2 + 2].copy_from_slice(&px.seg2);
            if let Some(o) = px.counted {
                points_in_box[o] += 1;
            }
        }
    }
    frame.return1 = Some(r1);
    if options.second_return {
        frame.return2 = Some(r2);
    }
    if is_top {
        let mut pose = RangeImage::<f32>::zeros(height, width, 6);
        for h in 0..height {
            for (w, (p, _)) in col_pose.iter().enumerate() {
                let i = (h * width + w) * 6;
                pose.values[i..i + 6].copy_from_slice(p);
            }
        }
        frame.pose = Some(pose);
        frame.segmentation1 = Some(seg1);
        if options.second_return {
            frame.segmentation2 = Some(seg2);
        }
    }
    Ok(LidarSim { frame, points_in_box })
}

/// Head-on intensity of an object's surface.
fn object_reflectivity(kind: ObjectKind) -> f32 {
    match kind {
        ObjectKind::Car | ObjectKind::Truck | ObjectKind::Bus | ObjectKind::StalledTruck => 0.45,
        ObjectKind::Pedestrian | ObjectKind::Cyclist => 0.3,
        // Retro-reflective bands.
        ObjectKind::Cone | ObjectKind::Barrier => 0.85,
        ObjectKind::Debris => 0.2,
    }
}
