//! The static world as triangles with materials, built from a [`RoadNetwork`]: road
//! surfaces, lane markings, crosswalks, raised sidewalks with curb faces, grass, buildings,
//! trees, street-light poles and stop signs. The LiDAR ray caster and the cameras share it.
//!
//! Heights keep coplanar surfaces apart so no two materials fight at one depth: grass lies at
//! [`GRASS_Z`], roads at 0, paint at [`PAINT_Z`], sidewalks at [`SIDEWALK_Z`].

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::road::{Road, RoadNetwork};
use super::snapshot::{Material, P3, StaticWorld, Triangle};
use crate::geom::polyline::{P2, Polyline, dir, left};
use crate::scene::{CameraSegClass, LidarSegClass};

/// Grass and other ground between the roads, slightly below the road surface.
pub const GRASS_Z: f64 = -0.02;
/// Lane markings and crosswalks: thin strips raised above the road.
pub const PAINT_Z: f64 = 0.01;
/// Top of sidewalks (the curb height).
pub const SIDEWALK_Z: f64 = 0.15;
const SIDEWALK_WIDTH: f64 = 3.0;
/// How far the ground reaches beyond the outermost intersections (more than TOP's 75 m).
const GROUND_MARGIN: f64 = 130.0;
const GROUND_TILE: f64 = 10.0;
/// Distance from an intersection centre to where its roads begin (as the road generator).
const NODE_CLEARANCE: f64 = 22.0;
/// Sampling step along roads, m.
const STEP: f64 = 1.0;

const fn mat(lidar_class: LidarSegClass, camera_class: CameraSegClass, reflectivity: f32, color: [u8; 3]) -> Material {
    Material { lidar_class, camera_class, reflectivity, color }
}

/// The materials of the synthetic world (reflectivity is the head-on LiDAR intensity).
pub mod materials {
    use super::*;
    pub const ROAD: Material = mat(LidarSegClass::Road, CameraSegClass::Road, 0.08, [68, 68, 72]);
    pub const LANE_WHITE: Material = mat(LidarSegClass::LaneMarker, CameraSegClass::LaneMarker, 0.75, [232, 232, 228]);
    pub const LANE_YELLOW: Material = mat(LidarSegClass::LaneMarker, CameraSegClass::LaneMarker, 0.65, [226, 186, 40]);
    pub const CROSSWALK: Material = mat(LidarSegClass::LaneMarker, CameraSegClass::RoadMarker, 0.7, [236, 236, 236]);
    pub const SPEED_BUMP: Material = mat(LidarSegClass::Road, CameraSegClass::RoadMarker, 0.3, [210, 180, 50]);
    /// Concrete driveways across the sidewalk and into the lots (drivable: road classes).
    pub const DRIVEWAY: Material = mat(LidarSegClass::Road, CameraSegClass::Road, 0.22, [150, 148, 140]);
    pub const SIDEWALK: Material = mat(LidarSegClass::Sidewalk, CameraSegClass::Sidewalk, 0.25, [172, 170, 164]);
    pub const CURB: Material = mat(LidarSegClass::Curb, CameraSegClass::Sidewalk, 0.3, [190, 188, 182]);
    pub const GRASS: Material = mat(LidarSegClass::OtherGround, CameraSegClass::Ground, 0.2, [88, 124, 60]);
    pub const TRUNK: Material = mat(LidarSegClass::TreeTrunk, CameraSegClass::Vegetation, 0.25, [96, 70, 44]);
    pub const CANOPY: Material = mat(LidarSegClass::Vegetation, CameraSegClass::Vegetation, 0.35, [58, 108, 48]);
    pub const POLE: Material = mat(LidarSegClass::Pole, CameraSegClass::Pole, 0.4, [128, 128, 134]);
    pub const SIGN: Material = mat(LidarSegClass::Sign, CameraSegClass::Sign, 0.9, [196, 28, 32]);
    /// Buildings vary in colour; this is the base.
    pub const BUILDING: Material = mat(LidarSegClass::Building, CameraSegClass::Building, 0.3, [150, 140, 130]);
}
use materials as m;

/// Collects triangles; helpers for the shapes the world is made of.
#[derive(Default)]
pub struct MeshBuilder {
    pub triangles: Vec<Triangle>,
}

fn p3(p: &P2, z: f64) -> P3 {
    P3::new(p.x, p.y, z)
}

impl MeshBuilder {
    pub fn tri(&mut self, a: P3, b: P3, c: P3, material: Material) {
        // Degenerate triangles can never be hit; keep them out of the BVH.
        if (b - a).cross(&(c - a)).norm_squared() > 1e-16 {
            self.triangles.push(Triangle { v: [a, b, c], material });
        }
    }
    /// A quad `a b c d` (in order around its edge) as two triangles.
    pub fn quad(&mut self, a: P3, b: P3, c: P3, d: P3, material: Material) {
        self.tri(a, b, c, material);
        self.tri(a, c, d, material);
    }
    /// A horizontal band between two point rows of equal length at height `z`.
    pub fn band(&mut self, left: &[P2], right: &[P2], z: f64, material: Material) {
        for i in 0..left.len().min(right.len()).saturating_sub(1) {
            self.quad(p3(&left[i], z), p3(&right[i], z), p3(&right[i + 1], z), p3(&left[i + 1], z), material);
        }
    }
    /// A vertical wall along a point row, from `z0` to `z1`.
    pub fn wall(&mut self, line: &[P2], z0: f64, z1: f64, material: Material) {
        for w in line.windows(2) {
            self.quad(p3(&w[0], z0), p3(&w[1], z0), p3(&w[1], z1), p3(&w[0], z1), material);
        }
    }
    /// An upright box (no bottom face): footprint centre, length along `heading`, width,
    /// from `z0` to `z1`.
    #[allow(clippy::too_many_arguments)] // the box's natural parameters, all scalars
    pub fn upright_box(&mut self, c: P2, heading: f64, length: f64, width: f64, z0: f64, z1: f64, material: Material) {
        let (u, v) = (dir(heading) * (length / 2.0), left(&dir(heading)) * (width / 2.0));
        let ring = [c + u + v, c - u + v, c - u - v, c + u - v, c + u + v];
        self.wall(&ring, z0, z1, material);
        self.quad(p3(&ring[0], z1), p3(&ring[1], z1), p3(&ring[2], z1), p3(&ring[3], z1), material);
    }
    /// A closed vertical prism with a regular `sides`-gon section (poles, trunks).
    pub fn cylinder(&mut self, c: P2, radius: f64, z0: f64, z1: f64, sides: usize, material: Material) {
        let ring: Vec<P2> =
            (0..=sides).map(|i| c + dir(i as f64 / sides as f64 * std::f64::consts::TAU) * radius).collect();
        self.wall(&ring, z0, z1, material);
        for w in ring.windows(2) {
            self.tri(p3(&c, z1), p3(&w[0], z1), p3(&w[1], z1), material);
        }
    }
    /// A low-poly sphere (tree canopies).
    pub fn sphere(&mut self, c: P3, radius: f64, material: Material) {
        let (n_lat, n_lon) = (4, 8);
        let pt = |i: usize, j: usize| {
            let lat = std::f64::consts::PI * (i as f64 / n_lat as f64 - 0.5);
            let lon = std::f64::consts::TAU * j as f64 / n_lon as f64;
            c + P3::new(lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()) * radius
        };
        for i in 0..n_lat {
            for j in 0..n_lon {
                self.quad(pt(i, j), pt(i, j + 1), pt(i + 1, j + 1), pt(i + 1, j), material);
            }
        }
    }
    /// A convex polygon, fanned from its first corner, at height `z`.
    pub fn polygon(&mut self, corners: &[P2], z: f64, material: Material) {
        for i in 1..corners.len().saturating_sub(1) {
            self.tri(p3(&corners[0], z), p3(&corners[i], z), p3(&corners[i + 1], z), material);
        }
    }
}

/// Points at signed lateral offset `d(s)` (left positive) of `line` at arc lengths `s`, from
/// the line's local heading: exact offsets of the smooth road curves, one per `s`.
fn offset_at(line: &Polyline, s: &[f64], d: impl Fn(f64) -> f64) -> Vec<P2> {
    s.iter()
        .map(|&s| {
            let (p, h) = line.pose_at(s);
            p + left(&dir(h)) * d(s)
        })
        .collect()
}

/// Arc lengths from `a` to `b` every [`STEP`] (both ends included).
fn stations(a: f64, b: f64) -> Vec<f64> {
    let n = (((b - a) / STEP).ceil() as usize).max(1);
    (0..=n).map(|i| a + (b - a) * i as f64 / n as f64).collect()
}

impl StaticWorld {
    /// Builds the static world of a road network. Deterministic for the rng's state.
    pub fn from_network(net: &RoadNetwork, rng: &mut ChaCha8Rng) -> StaticWorld {
        let mut mb = MeshBuilder::default();
        ground(net, &mut mb);
        for road in &net.roads {
            road_surface(road, &mut mb);
            markings(road, &mut mb);
            sidewalks(road, &mut mb);
        }
        intersections(net, &mut mb);
        for area in &net.areas {
            use crate::scene::MapFeatureType as T;
            match area.kind {
                T::Crosswalk => mb.polygon(&area.corners, PAINT_Z, m::CROSSWALK),
                T::SpeedBump => mb.polygon(&area.corners, 0.05, m::SPEED_BUMP),
                T::Driveway => driveway(&area.corners, &mut mb),
                _ => {}
            }
        }
        for road in &net.roads {
            roadside(net, road, rng, &mut mb);
        }
        stop_signs(net, &mut mb);
        StaticWorld { triangles: mb.triangles }
    }
}

/// A driveway strip `[road edge a, road edge b, far b, far a]`: concrete on top of the
/// sidewalk, then down at lot level beyond it (no slab floating over the grass).
fn driveway(corners: &[P2], mb: &mut MeshBuilder) {
    let [c0, c1, c2, c3] = match corners {
        [a, b, c, d] => [*a, *b, *c, *d],
        _ => return,
    };
    let depth = (c3 - c0).norm();
    if depth <= SIDEWALK_WIDTH {
        mb.polygon(corners, SIDEWALK_Z + 0.005, m::DRIVEWAY);
        return;
    }
    let f = SIDEWALK_WIDTH / depth;
    let (m0, m1) = (c0 + (c3 - c0) * f, c1 + (c2 - c1) * f);
    mb.polygon(&[c0, c1, m1, m0], SIDEWALK_Z + 0.005, m::DRIVEWAY);
    mb.polygon(&[m0, m1, c2, c3], GRASS_Z + 0.01, m::DRIVEWAY);
}

fn ground(net: &RoadNetwork, mb: &mut MeshBuilder) {
    let (mut lo, mut hi) = (P2::new(f64::INFINITY, f64::INFINITY), P2::new(f64::NEG_INFINITY, f64::NEG_INFINITY));
    for n in &net.nodes {
        lo = lo.inf(&n.pos);
        hi = hi.sup(&n.pos);
    }
    if !lo.x.is_finite() {
        return;
    }
    // Tiles, not one huge quad: big triangles would make every BVH box span the world.
    let (x0, y0) = (lo.x - GROUND_MARGIN, lo.y - GROUND_MARGIN);
    let nx = ((hi.x - lo.x + 2.0 * GROUND_MARGIN) / GROUND_TILE).ceil() as usize;
    let ny = ((hi.y - lo.y + 2.0 * GROUND_MARGIN) / GROUND_TILE).ceil() as usize;
    for i in 0..nx {
        for j in 0..ny {
            let (a, b) = (x0 + i as f64 * GROUND_TILE, y0 + j as f64 * GROUND_TILE);
            let corners = [
                P2::new(a, b),
                P2::new(a + GROUND_TILE, b),
                P2::new(a + GROUND_TILE, b + GROUND_TILE),
                P2::new(a, b + GROUND_TILE),
            ];
            mb.polygon(&corners, GRASS_Z, m::GRASS);
        }
    }
}

/// The paved surface between the two curbs, widened where turn pockets open.
fn road_surface(road: &Road, mb: &mut MeshBuilder) {
    let s = stations(0.0, road.centre.length());
    let (l, r) = (
        offset_at(&road.centre, &s, |s| road.edge_offset(1.0, s)),
        offset_at(&road.centre, &s, |s| road.edge_offset(-1.0, s)),
    );
    mb.band(&l, &r, 0.0, m::ROAD);
}

/// A painted strip between lateral offsets `d0 < d1`, optionally dashed (`dash`, `gap`).
fn paint(line: &Polyline, d0: f64, d1: f64, dash: Option<(f64, f64)>, material: Material, mb: &mut MeshBuilder) {
    let len = line.length();
    let pieces: Vec<(f64, f64)> = match dash {
        None => vec![(0.0, len)],
        Some((on, off)) => {
            let mut v = Vec::new();
            let mut a = off / 2.0;
            while a < len {
                v.push((a, (a + on).min(len)));
                a += on + off;
            }
            v
        }
    };
    for (a, b) in pieces {
        let s = stations(a, b);
        mb.band(&offset_at(line, &s, |_| d1), &offset_at(line, &s, |_| d0), PAINT_Z, material);
    }
}

/// Paint along the road's lines ([`Road::lines`], the same the map carries): the double
/// yellow centre line, broken and solid white lines, turn pocket lines.
fn markings(road: &Road, mb: &mut MeshBuilder) {
    use crate::scene::MapFeatureType as T;
    for line in road.lines() {
        let path = &line.path;
        match line.kind {
            T::RoadLineSolidDoubleYellow => {
                paint(path, 0.06, 0.18, None, m::LANE_YELLOW, mb);
                paint(path, -0.18, -0.06, None, m::LANE_YELLOW, mb);
            }
            T::RoadLineBrokenSingleWhite => paint(path, -0.075, 0.075, Some((3.0, 6.0)), m::LANE_WHITE, mb),
            _ => paint(path, -0.075, 0.075, None, m::LANE_WHITE, mb),
        }
    }
}

fn sidewalks(road: &Road, mb: &mut MeshBuilder) {
    let s = stations(0.0, road.centre.length());
    for side in [-1.0, 1.0] {
        let curb = offset_at(&road.centre, &s, |s| road.edge_offset(side, s));
        let outer = offset_at(&road.centre, &s, |s| road.edge_offset(side, s) + side * SIDEWALK_WIDTH);
        mb.band(&curb, &outer, SIDEWALK_Z, m::SIDEWALK);
        mb.wall(&curb, 0.0, SIDEWALK_Z, m::CURB);
        mb.wall(&outer, GRASS_Z, SIDEWALK_Z, m::CURB);
    }
}

/// Intersection road surfaces (fans from the centre to the road mouths and the corner
/// curbs) and the corner sidewalks, following the network's `corner_edges` construction.
fn intersections(net: &RoadNetwork, mb: &mut MeshBuilder) {
    let corners = net.corner_edges();
    let mut corner_i = 0;
    for n in 0..net.nodes.len() {
        let centre = net.nodes[n].pos;
        let ends = net.road_ends(n);
        if ends.len() < 2 {
            continue;
        }
        for (i, (_, l, r)) in ends.iter().enumerate() {
            mb.tri(p3(&centre, 0.0), p3(r, 0.0), p3(l, 0.0), m::ROAD);
            // corner_edges emits one curve per consecutive pair, in this same order.
            let Some(curve) = corners.get(corner_i + i) else { continue };
            let gap = (ends[(i + 1) % ends.len()].0 - ends[i].0).rem_euclid(std::f64::consts::TAU);
            // The outside of a bend (> 200°) has no corner of its own to pave.
            if gap > 200f64.to_radians() {
                continue;
            }
            let pts = curve.points();
            for w in pts.windows(2) {
                mb.tri(p3(&centre, 0.0), p3(&w[0], 0.0), p3(&w[1], 0.0), m::ROAD);
            }
            // The sidewalk lies on the side of the curve away from the intersection centre.
            let mid = curve.pose_at(curve.length() / 2.0).0;
            let probe = curve.offset(1.0).pose_at(curve.length() / 2.0).0;
            let side = if (probe - centre).norm() > (mid - centre).norm() { 1.0 } else { -1.0 };
            let outer = curve.offset(side * SIDEWALK_WIDTH);
            let outer = outer.points();
            if outer.len() == pts.len() {
                mb.band(pts, outer, SIDEWALK_Z, m::SIDEWALK);
                mb.wall(outer, GRASS_Z, SIDEWALK_Z, m::CURB);
            }
            mb.wall(pts, 0.0, SIDEWALK_Z, m::CURB);
        }
        corner_i += ends.len();
    }
}

/// Whether a ground point is clear of every road (with its sidewalk) and intersection.
fn clear_of_roads(net: &RoadNetwork, p: &P2, margin: f64) -> bool {
    let roads_clear = net.roads.iter().all(|r| {
        let (s, d) = r.centre.project(p);
        d.abs() > r.edge_offset(d.signum(), s).abs() + SIDEWALK_WIDTH + margin
    });
    roads_clear && net.nodes.iter().all(|n| (n.pos - p).norm() > NODE_CLEARANCE + SIDEWALK_WIDTH + margin)
}

/// Buildings, trees and street lights along both sides of a road.
fn roadside(net: &RoadNetwork, road: &Road, rng: &mut ChaCha8Rng, mb: &mut MeshBuilder) {
    let len = road.centre.length();
    for side in [-1.0f64, 1.0] {
        // Buildings: a row with gaps, set back from the sidewalk, facing the road.
        let mut s = 4.0;
        while s < len - 4.0 {
            let length = rng.random_range(10.0..26.0);
            let depth = rng.random_range(8.0..16.0);
            let height = rng.random_range(5.0..24.0);
            let setback = rng.random_range(1.5..6.0);
            let place = rng.random_bool(0.8);
            let (p, h) = road.centre.pose_at((s + length / 2.0).min(len));
            // The curb along the building's frontage, pockets included.
            let hw = (0..=4).map(|k| road.edge_offset(side, s + length * k as f64 / 4.0).abs()).fold(0.0, f64::max);
            let d = side * (hw + SIDEWALK_WIDTH + setback + depth / 2.0);
            let c = p + left(&dir(h)) * d;
            let footprint = {
                let (u, v) = (dir(h) * (length / 2.0), left(&dir(h)) * (depth / 2.0));
                [c + u + v, c - u + v, c - u - v, c + u - v, c]
            };
            if place && s + length < len - 4.0 && footprint.iter().all(|q| clear_of_roads(net, q, 1.0)) {
                let tint = rng.random_range(0.6..1.2f32);
                let mut mat = m::BUILDING;
                mat.color = mat.color.map(|c| (c as f32 * tint).min(255.0) as u8);
                mat.reflectivity = rng.random_range(0.2..0.45);
                mb.upright_box(c, h, length, depth, GRASS_Z, height, mat);
            }
            s += length + rng.random_range(2.0..8.0);
        }
        // Trees on the sidewalk's outer half.
        let mut s = 6.0;
        while s < len - 6.0 {
            if rng.random_bool(0.6) {
                let (p, h) = road.centre.pose_at(s);
                let c = p + left(&dir(h)) * (road.edge_offset(side, s) + side * SIDEWALK_WIDTH * 0.65);
                let trunk = rng.random_range(2.2..3.4);
                let radius = rng.random_range(1.3..2.4);
                mb.cylinder(c, 0.16, SIDEWALK_Z, SIDEWALK_Z + trunk, 6, m::TRUNK);
                mb.sphere(p3(&c, SIDEWALK_Z + trunk + radius * 0.7), radius, m::CANOPY);
            }
            s += rng.random_range(10.0..18.0);
        }
        // Street lights near the curb.
        let mut s = rng.random_range(5.0..20.0);
        while s < len - 5.0 {
            let (p, h) = road.centre.pose_at(s);
            let c = p + left(&dir(h)) * (road.edge_offset(side, s) + side * 0.45);
            mb.cylinder(c, 0.11, SIDEWALK_Z, 7.0, 6, m::POLE);
            s += rng.random_range(28.0..40.0);
        }
    }
}

/// A post with an octagonal plate facing the traffic it controls.
fn stop_signs(net: &RoadNetwork, mb: &mut MeshBuilder) {
    for sign in &net.stop_signs {
        let facing = sign
            .lanes
            .first()
            .and_then(|&l| net.lanes.get(l))
            .map(|l| l.path.end_heading() + std::f64::consts::PI)
            .unwrap_or(0.0);
        let base = sign.pos;
        mb.cylinder(base, 0.04, 0.0, 2.1, 6, m::POLE);
        // The plate sits 5 cm in front of the post, perpendicular to `facing`.
        let c = p3(&(base + dir(facing) * 0.05), 2.45);
        let across = left(&dir(facing));
        let r = 0.38;
        let ring: Vec<P3> = (0..=8)
            .map(|i| {
                let a = (i as f64 + 0.5) / 8.0 * std::f64::consts::TAU;
                c + P3::new(across.x, across.y, 0.0) * (r * a.cos()) + P3::new(0.0, 0.0, r * a.sin())
            })
            .collect();
        for w in ring.windows(2) {
            mb.tri(c, w[0], w[1], m::SIGN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::road::RoadConfig;
    use rand::SeedableRng;

    /// Whether `p` lies inside the triangle's ground projection.
    fn inside_xy(v: &[P3; 3], p: &P2) -> bool {
        let cross = |a: &P3, b: &P3| (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
        let (c0, c1, c2) = (cross(&v[0], &v[1]), cross(&v[1], &v[2]), cross(&v[2], &v[0]));
        (c0 >= 0.0 && c1 >= 0.0 && c2 >= 0.0) || (c0 <= 0.0 && c1 <= 0.0 && c2 <= 0.0)
    }

    #[test]
    fn network_world_has_every_static_class_and_a_sane_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let net = RoadNetwork::generate(&RoadConfig::default(), &mut rng);
        let world = StaticWorld::from_network(&net, &mut rng);
        let n = world.triangles.len();
        assert!((20_000..400_000).contains(&n), "{n} triangles");
        for class in [
            LidarSegClass::Road,
            LidarSegClass::LaneMarker,
            LidarSegClass::Sidewalk,
            LidarSegClass::Curb,
            LidarSegClass::OtherGround,
            LidarSegClass::Building,
            LidarSegClass::TreeTrunk,
            LidarSegClass::Vegetation,
            LidarSegClass::Pole,
            LidarSegClass::Sign,
        ] {
            assert!(world.triangles.iter().any(|t| t.material.lidar_class == class), "{class:?} missing");
        }
        // Every driveway of the map is paved: on the sidewalk and down at lot level beyond it.
        let driveways = net.areas.iter().filter(|a| a.kind == crate::scene::MapFeatureType::Driveway).count();
        assert!(driveways > 0);
        let paved: Vec<&Triangle> = world.triangles.iter().filter(|t| t.material == m::DRIVEWAY).collect();
        assert_eq!(paved.len(), driveways * 4, "two quads per driveway");
        let on_sidewalk = paved.iter().filter(|t| t.v.iter().all(|v| (v.z - SIDEWALK_Z - 0.005).abs() < 1e-9)).count();
        assert_eq!(on_sidewalk, driveways * 2);
        // Paint follows the map's road lines, turn pocket lines included; the paved road
        // reaches the widened curbs.
        let covered = |p: &P2, mat: Material| world.triangles.iter().any(|t| t.material == mat && inside_xy(&t.v, p));
        let mut pocket_lines = 0;
        for road in &net.roads {
            for line in road.lines() {
                let len = line.path.length();
                let (mat, step) = match line.kind {
                    crate::scene::MapFeatureType::RoadLineSolidSingleWhite => (m::LANE_WHITE, 2.5),
                    _ => continue,
                };
                pocket_lines += road.pockets.iter().flatten().count();
                let mut s = 0.5;
                while s < len - 0.5 {
                    let p = line.path.pose_at(s).0;
                    assert!(covered(&p, mat), "no paint on a solid line at {p:?}");
                    s += step;
                }
            }
            for (k, s) in [(0, road.centre.length() - 3.0), (1, 3.0)] {
                if road.pockets[k].is_some() {
                    let side = if k == 0 { -1.0 } else { 1.0 };
                    let (p, h) = road.centre.pose_at(s);
                    let q = p + left(&dir(h)) * (road.edge_offset(side, s) - side * 0.3);
                    assert!(covered(&q, m::ROAD), "the widened road is paved at {q:?}");
                }
            }
        }
        assert!(pocket_lines > 0);
        let again = StaticWorld::from_network(&net, &mut ChaCha8Rng::seed_from_u64(1));
        let again2 = StaticWorld::from_network(&net, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(again.triangles, again2.triangles);
    }
}
