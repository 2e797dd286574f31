//! Upright 3-D boxes: corners, point containment, oriented BEV / 3-D IoU (convex polygon
//! clipping), oriented-rectangle overlap, and frame changes.

use nalgebra::Vector3;

use super::pose::normalize_angle;
use crate::scene::{Box3d, Transform};

/// Slack for "on the boundary" tests, in metres (or m² for cross products of metre-scale
/// vectors): keeps corners inside their own box and makes identical polygons clip cleanly.
const EPS: f64 = 1e-9;

/// An oriented rectangle in the ground plane (BEV box, WOMD agent footprint).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrientedRect {
    pub center_x: f64,
    pub center_y: f64,
    /// Extent along the heading.
    pub length: f64,
    /// Extent across the heading.
    pub width: f64,
    /// Radians, counter-clockwise from +x.
    pub heading: f64,
}

impl OrientedRect {
    /// Corners counter-clockwise: front-left, rear-left, rear-right, front-right
    /// ("front" = +heading, "left" = +90° from heading).
    pub fn corners(&self) -> [[f64; 2]; 4] {
        let (s, c) = self.heading.sin_cos();
        let (hl, hw) = (self.length / 2.0, self.width / 2.0);
        [(hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw)]
            .map(|(dx, dy)| [self.center_x + c * dx - s * dy, self.center_y + s * dx + c * dy])
    }

    pub fn area(&self) -> f64 {
        self.length * self.width
    }
}

impl Box3d {
    /// The 8 corners: top face (z + h/2) then bottom face (z − h/2), each counter-clockwise
    /// seen from above as front-left, rear-left, rear-right, front-right (Waymo's
    /// `get_upright_3d_box_corners` order).
    pub fn corners(&self) -> [Vector3<f64>; 8] {
        let bev = self.bev().corners();
        let hh = self.size.z / 2.0;
        let mut out = [Vector3::zeros(); 8];
        for (i, [x, y]) in bev.iter().enumerate() {
            out[i] = Vector3::new(*x, *y, self.center.z + hh);
            out[i + 4] = Vector3::new(*x, *y, self.center.z - hh);
        }
        out
    }

    /// The footprint in the ground plane.
    pub fn bev(&self) -> OrientedRect {
        OrientedRect {
            center_x: self.center.x,
            center_y: self.center.y,
            length: self.size.x,
            width: self.size.y,
            heading: self.heading,
        }
    }

    /// The 4 footprint corners, in [`OrientedRect::corners`] order.
    pub fn bev_corners(&self) -> [[f64; 2]; 4] {
        self.bev().corners()
    }

    pub fn volume(&self) -> f64 {
        self.size.x * self.size.y * self.size.z
    }

    /// Whether `p` is inside the box or on its surface (within 1e-9 m).
    pub fn contains_point(&self, p: &Vector3<f64>) -> bool {
        let d = p - self.center;
        let (s, c) = self.heading.sin_cos();
        // Rotate by −heading into the box frame.
        let along = c * d.x + s * d.y;
        let across = -s * d.x + c * d.y;
        along.abs() <= self.size.x / 2.0 + EPS
            && across.abs() <= self.size.y / 2.0 + EPS
            && d.z.abs() <= self.size.z / 2.0 + EPS
    }

    /// The box in another frame: `t` maps this box's frame to the target (e.g. the frame's
    /// vehicle → world pose). The box stays upright; its heading turns by `t`'s yaw.
    pub fn transformed(&self, t: &Transform) -> Box3d {
        transform_box(self, t)
    }
}

/// See [`Box3d::transformed`].
pub fn transform_box(b: &Box3d, t: &Transform) -> Box3d {
    Box3d { center: t.apply(&b.center), size: b.size, heading: normalize_angle(b.heading + t.yaw()) }
}

/// Twice the signed area (positive when counter-clockwise).
fn signed_area2(poly: &[[f64; 2]]) -> f64 {
    let n = poly.len();
    (0..n)
        .map(|i| {
            let (a, b) = (poly[i], poly[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum()
}

/// Area of a simple polygon (either orientation).
pub fn polygon_area(poly: &[[f64; 2]]) -> f64 {
    signed_area2(poly).abs() / 2.0
}

/// `(b - a) × (p - a)`: positive when `p` is left of the directed line a → b.
fn cross(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

fn ccw(poly: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut v = poly.to_vec();
    if signed_area2(&v) < 0.0 {
        v.reverse();
    }
    v
}

/// The intersection of two convex polygons (Sutherland–Hodgman), counter-clockwise; empty
/// when they do not overlap. Either input orientation is accepted.
pub fn convex_polygon_intersection(subject: &[[f64; 2]], clip: &[[f64; 2]]) -> Vec<[f64; 2]> {
    if subject.len() < 3 || clip.len() < 3 {
        return Vec::new();
    }
    let clip = ccw(clip);
    let mut out = ccw(subject);
    let mut input = Vec::with_capacity(out.len() + clip.len());
    for i in 0..clip.len() {
        if out.is_empty() {
            break;
        }
        let (a, b) = (clip[i], clip[(i + 1) % clip.len()]);
        std::mem::swap(&mut input, &mut out);
        out.clear();
        for j in 0..input.len() {
            let (p, q) = (input[j], input[(j + 1) % input.len()]);
            let (cp, cq) = (cross(a, b, p), cross(a, b, q));
            let (p_in, q_in) = (cp >= -EPS, cq >= -EPS);
            if p_in {
                out.push(p);
            }
            if p_in != q_in {
                // One side strictly outside, so cp − cq is bounded away from 0.
                let t = (cp / (cp - cq)).clamp(0.0, 1.0);
                out.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
            }
        }
    }
    if out.len() < 3 { Vec::new() } else { out }
}

/// Overlap area of two oriented rectangles (0 when disjoint or only touching, up to
/// rounding of ~1e-9 m²).
pub fn intersection_area(a: &OrientedRect, b: &OrientedRect) -> f64 {
    // Rectangles whose circumscribed circles are apart cannot meet: most pairs in a scene
    // (the motion metrics' overlap test, detection matching) end here without clipping.
    let reach = a.length.hypot(a.width) / 2.0 + b.length.hypot(b.width) / 2.0;
    if (a.center_x - b.center_x).hypot(a.center_y - b.center_y) > reach + 1e-6 {
        return 0.0;
    }
    polygon_area(&convex_polygon_intersection(&a.corners(), &b.corners()))
}

/// Intersection over union of the boxes' footprints (heading-aware); 0 when both are
/// degenerate.
pub fn bev_iou(a: &Box3d, b: &Box3d) -> f64 {
    let inter = intersection_area(&a.bev(), &b.bev());
    let union = a.bev().area() + b.bev().area() - inter;
    if union > 0.0 { (inter / union).clamp(0.0, 1.0) } else { 0.0 }
}

/// 3-D intersection over union of upright boxes: BEV overlap × z overlap.
pub fn iou_3d(a: &Box3d, b: &Box3d) -> f64 {
    let z_lo = (a.center.z - a.size.z / 2.0).max(b.center.z - b.size.z / 2.0);
    let z_hi = (a.center.z + a.size.z / 2.0).min(b.center.z + b.size.z / 2.0);
    let dz = (z_hi - z_lo).max(0.0);
    if dz == 0.0 {
        return 0.0;
    }
    let inter = intersection_area(&a.bev(), &b.bev()) * dz;
    let union = a.volume() + b.volume() - inter;
    if union > 0.0 { (inter / union).clamp(0.0, 1.0) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_box(x: f64, y: f64, heading: f64) -> Box3d {
        Box3d { center: Vector3::new(x, y, 0.0), size: Vector3::new(2.0, 2.0, 2.0), heading }
    }

    #[test]
    fn square_intersection() {
        let a = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]];
        let b = [[1.0, 1.0], [1.0, 3.0], [3.0, 3.0], [3.0, 1.0]]; // clockwise on purpose
        let i = convex_polygon_intersection(&a, &b);
        assert!((polygon_area(&i) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn touching_rects_do_not_overlap() {
        let a = unit_box(0.0, 0.0, 0.0).bev();
        let b = unit_box(2.0, 0.0, 0.0).bev();
        assert!(intersection_area(&a, &b) < 1e-8);
        let c = unit_box(1.9, 0.0, 0.0).bev();
        assert!((intersection_area(&a, &c) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn degenerate_boxes_have_zero_iou() {
        let z = Box3d { center: Vector3::zeros(), size: Vector3::zeros(), heading: 0.0 };
        assert_eq!(bev_iou(&z, &z), 0.0);
        assert_eq!(iou_3d(&z, &z), 0.0);
    }
}
