//! 2-D polylines parameterised by arc length: lane centrelines, sidewalks, predicted paths.

use nalgebra::Vector2;

pub type P2 = Vector2<f64>;

/// A polyline with cumulative arc length at each vertex.
#[derive(Debug, Clone, PartialEq)]
pub struct Polyline {
    pts: Vec<P2>,
    cum: Vec<f64>,
}

/// Unit vector of heading `h`.
pub fn dir(h: f64) -> P2 {
    P2::new(h.cos(), h.sin())
}

/// Left normal of a direction.
pub fn left(v: &P2) -> P2 {
    P2::new(-v.y, v.x)
}

/// Wraps an angle into [-π, π).
pub fn wrap(a: f64) -> f64 {
    let t = (a + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI);
    t - std::f64::consts::PI
}

impl Polyline {
    /// Builds from points, dropping consecutive duplicates. Needs two distinct points.
    pub fn new(points: Vec<P2>) -> Self {
        let mut pts: Vec<P2> = Vec::with_capacity(points.len());
        for p in points {
            if pts.last().is_none_or(|q: &P2| (p - q).norm() > 1e-6) {
                pts.push(p);
            }
        }
        if pts.len() == 1 {
            let p = pts[0];
            pts.push(p + P2::new(1e-3, 0.0));
        }
        let mut cum = Vec::with_capacity(pts.len());
        let mut s = 0.0;
        for i in 0..pts.len() {
            if i > 0 {
                s += (pts[i] - pts[i - 1]).norm();
            }
            cum.push(s);
        }
        Polyline { pts, cum }
    }

    /// A cubic Bézier from `p0` (heading `h0`) to `p3` (heading `h3`), sampled every `step` m.
    pub fn bezier(p0: P2, h0: f64, p3: P2, h3: f64, handle: f64, step: f64) -> Self {
        let p1 = p0 + dir(h0) * handle;
        let p2 = p3 - dir(h3) * handle;
        let approx = (p1 - p0).norm() + (p2 - p1).norm() + (p3 - p2).norm();
        let n = ((approx / step).ceil() as usize).clamp(2, 2000);
        let pts = (0..=n)
            .map(|i| {
                let t = i as f64 / n as f64;
                let u = 1.0 - t;
                p0 * (u * u * u) + p1 * (3.0 * u * u * t) + p2 * (3.0 * u * t * t) + p3 * (t * t * t)
            })
            .collect();
        Polyline::new(pts)
    }

    /// The path a lane takes around a corner from `p0` (heading `h0`) to `p3` (heading `h3`):
    /// straight along the longer leg, then a circular arc (its cubic approximation) tangent
    /// to both legs, so the turn is as wide as the corner allows. `None` when the legs do not
    /// meet ahead of `p0` and behind `p3` (parallel, or an S-bend).
    pub fn fillet(p0: P2, h0: f64, p3: P2, h3: f64, step: f64) -> Option<Self> {
        let (d0, d3, gap) = (dir(h0), dir(h3), p3 - p0);
        let det = d0.x * d3.y - d0.y * d3.x;
        if det.abs() < 1e-3 {
            return None;
        }
        // p0 + a·d0 = p3 − b·d3: the corner where the legs meet.
        let a = (gap.x * d3.y - gap.y * d3.x) / det;
        let b = (d0.x * gap.y - d0.y * gap.x) / det;
        if a <= 0.0 || b <= 0.0 {
            return None;
        }
        let m = a.min(b);
        let (q0, q3) = (p0 + d0 * (a - m), p3 - d3 * (b - m));
        let turn = wrap(h3 - h0).abs();
        // A cubic's handle that best matches a circular arc of angle φ: 4/3·tan(φ/4)·R, with
        // R = m / tan(φ/2) the radius of the arc whose tangent points lie m from the corner.
        let handle = 4.0 / 3.0 * (turn / 4.0).tan() / (turn / 2.0).tan() * m;
        let mut pts = Vec::new();
        let n = ((q0 - p0).norm() / step).ceil() as usize;
        pts.extend((0..n).map(|i| p0 + (q0 - p0) * (i as f64 / n as f64)));
        pts.extend_from_slice(Polyline::bezier(q0, h0, q3, h3, handle, step).points());
        let n = ((p3 - q3).norm() / step).ceil() as usize;
        pts.extend((1..=n).map(|i| q3 + (p3 - q3) * (i as f64 / n as f64)));
        Some(Polyline::new(pts))
    }

    pub fn points(&self) -> &[P2] {
        &self.pts
    }
    pub fn length(&self) -> f64 {
        *self.cum.last().unwrap_or(&0.0)
    }
    pub fn start(&self) -> P2 {
        self.pts[0]
    }
    pub fn end(&self) -> P2 {
        self.pts[self.pts.len() - 1]
    }

    fn segment(&self, s: f64) -> usize {
        let s = s.clamp(0.0, self.length());
        match self.cum.binary_search_by(|c| c.partial_cmp(&s).unwrap_or(std::cmp::Ordering::Less)) {
            Ok(i) => i.min(self.pts.len() - 2),
            Err(i) => i.saturating_sub(1).min(self.pts.len() - 2),
        }
    }

    /// Position and heading at arc length `s` (clamped to the ends; extrapolated linearly
    /// beyond them so motion past an end stays smooth).
    pub fn pose_at(&self, s: f64) -> (P2, f64) {
        let i = self.segment(s);
        let (a, b) = (self.pts[i], self.pts[i + 1]);
        let seg = b - a;
        let len = seg.norm().max(1e-9);
        let t = (s - self.cum[i]) / len;
        let p = if s < 0.0 || s > self.length() { a + seg * t } else { a + seg * t.clamp(0.0, 1.0) };
        (p, seg.y.atan2(seg.x))
    }

    pub fn heading_at(&self, s: f64) -> f64 {
        self.pose_at(s).1
    }
    pub fn start_heading(&self) -> f64 {
        self.heading_at(0.0)
    }
    pub fn end_heading(&self) -> f64 {
        self.heading_at(self.length())
    }

    /// The smallest radius of curvature along the line: the circle through each three
    /// consecutive points (infinite for a straight line or fewer than three points).
    pub fn min_radius(&self) -> f64 {
        self.pts
            .windows(3)
            .map(|w| {
                let (ab, bc, ac) = (w[1] - w[0], w[2] - w[1], w[2] - w[0]);
                let cross = (ab.x * bc.y - ab.y * bc.x).abs();
                if cross < 1e-12 { f64::INFINITY } else { ab.norm() * bc.norm() * ac.norm() / (2.0 * cross) }
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Arc length and signed lateral offset (left positive) of the closest point.
    pub fn project(&self, p: &P2) -> (f64, f64) {
        let mut best = (f64::INFINITY, 0.0, 0.0);
        for i in 0..self.pts.len() - 1 {
            let (a, b) = (self.pts[i], self.pts[i + 1]);
            let seg = b - a;
            let len2 = seg.norm_squared().max(1e-12);
            let t = ((p - a).dot(&seg) / len2).clamp(0.0, 1.0);
            let q = a + seg * t;
            let d2 = (p - q).norm_squared();
            if d2 < best.0 {
                let side = seg.x * (p.y - a.y) - seg.y * (p.x - a.x);
                best = (d2, self.cum[i] + t * len2.sqrt(), d2.sqrt() * side.signum());
            }
        }
        (best.1, best.2)
    }

    /// The polyline shifted `d` metres to the left (negative: right), point by point along
    /// the averaged vertex normals.
    pub fn offset(&self, d: f64) -> Polyline {
        let n = self.pts.len();
        let pts = (0..n)
            .map(|i| {
                let before = if i > 0 {
                    (self.pts[i] - self.pts[i - 1]).normalize()
                } else {
                    (self.pts[1] - self.pts[0]).normalize()
                };
                let after = if i + 1 < n { (self.pts[i + 1] - self.pts[i]).normalize() } else { before };
                let tangent = (before + after).try_normalize(1e-9).unwrap_or(before);
                // Keep the offset distance constant at corners (miter), bounded for sharp ones.
                let cos_half = tangent.dot(&before).max(0.5);
                self.pts[i] + left(&tangent) * (d / cos_half)
            })
            .collect();
        Polyline::new(pts)
    }

    pub fn reversed(&self) -> Polyline {
        Polyline::new(self.pts.iter().rev().copied().collect())
    }

    /// Resampled every `step` metres (ends kept).
    pub fn resampled(&self, step: f64) -> Polyline {
        let n = ((self.length() / step).ceil() as usize).max(1);
        Polyline::new((0..=n).map(|i| self.pose_at(self.length() * i as f64 / n as f64).0).collect())
    }

    /// The part between arc lengths `a` and `b`.
    pub fn slice(&self, a: f64, b: f64) -> Polyline {
        let (a, b) = (a.clamp(0.0, self.length()), b.clamp(0.0, self.length()));
        let mut pts = vec![self.pose_at(a).0];
        for (i, c) in self.cum.iter().enumerate() {
            if *c > a && *c < b {
                pts.push(self.pts[i]);
            }
        }
        pts.push(self.pose_at(b).0);
        Polyline::new(pts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arc_length_pose_projection_and_offset() {
        let l = Polyline::new(vec![P2::new(0.0, 0.0), P2::new(10.0, 0.0), P2::new(10.0, 10.0)]);
        assert!((l.length() - 20.0).abs() < 1e-12);
        let (p, h) = l.pose_at(15.0);
        assert!((p - P2::new(10.0, 5.0)).norm() < 1e-12 && (h - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        let (s, d) = l.project(&P2::new(5.0, 2.0));
        assert!((s - 5.0).abs() < 1e-12 && (d - 2.0).abs() < 1e-12);
        let (_, d) = l.project(&P2::new(12.0, 5.0));
        assert!((d + 2.0).abs() < 1e-12, "right of the path is negative");
        let o = l.offset(-1.0);
        assert!((o.start() - P2::new(0.0, -1.0)).norm() < 1e-9);
        assert!((o.points()[1] - P2::new(11.0, -1.0)).norm() < 1e-9, "{:?}", o.points()[1]);
        assert!((wrap(3.5 * std::f64::consts::PI) + 0.5 * std::f64::consts::PI).abs() < 1e-12);
    }

    #[test]
    fn min_radius_of_a_sampled_circle_is_its_radius() {
        let circle = Polyline::new((0..=40).map(|i| P2::new(7.0, 0.0) + dir(i as f64 * 0.05) * 7.0).collect());
        assert!((circle.min_radius() - 7.0).abs() < 1e-9, "{}", circle.min_radius());
        assert_eq!(
            Polyline::new(vec![P2::new(0.0, 0.0), P2::new(1.0, 0.0), P2::new(2.0, 0.0)]).min_radius(),
            f64::INFINITY
        );
    }

    /// Around a right angle whose legs are 20 and 8 m long: straight for 12 m, then an arc
    /// of radius 8 (the cubic deviates from the circle by well under 1%).
    #[test]
    fn fillet_turns_as_wide_as_the_corner_allows() {
        let (p0, p3) = (P2::new(0.0, 0.0), P2::new(20.0, -8.0));
        let f = Polyline::fillet(p0, 0.0, p3, -std::f64::consts::FRAC_PI_2, 0.5).expect("the legs meet");
        assert!((f.start() - p0).norm() < 1e-9 && (f.end() - p3).norm() < 1e-9);
        assert!((f.min_radius() - 8.0).abs() < 0.3, "{}", f.min_radius());
        assert!(f.pose_at(11.0).1.abs() < 1e-9, "straight along the longer leg first");
        assert!((f.end_heading() + std::f64::consts::FRAC_PI_2).abs() < 0.05);
        assert!(Polyline::fillet(p0, 0.0, P2::new(10.0, 3.0), 0.0, 0.5).is_none(), "parallel legs");
    }

    #[test]
    fn bezier_meets_its_ends_with_their_headings() {
        let b = Polyline::bezier(P2::new(0.0, 0.0), 0.0, P2::new(10.0, 10.0), std::f64::consts::FRAC_PI_2, 5.0, 0.5);
        assert!((b.end() - P2::new(10.0, 10.0)).norm() < 1e-9);
        assert!(b.start_heading().abs() < 0.05 && (b.end_heading() - std::f64::consts::FRAC_PI_2).abs() < 0.05);
    }
}
